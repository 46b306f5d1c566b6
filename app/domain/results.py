"""``GET /jobs/<id>/results``: every done task exactly once, in task-id order,
wherever its result is (docs/contract.md §6).

- A job without an archive keeps its results in its ``results`` hash; they
  are read by id in slices (HMGET), not with HSCAN, which may return a field
  twice while the hash grows.
- An archive job's results are in its outbox (not archived yet) or in
  MongoDB (archived), or briefly in both. The outbox is read first, then
  MongoDB: a result leaves the outbox only after MongoDB has it, so a task
  done before the read is found in one of the two; the two sorted streams
  are merged and a task found in both is given once.
- A job gone from Redis is read from MongoDB alone.

``ok=False`` gives the failures instead: the tasks that failed for good
(dead), each with its last attempt's error (a done task always succeeded:
a failed attempt goes back to pending or to the dead-letter list).
"""
import heapq
import json

from ..errors import Unavailable
from ..store.scripts import OUTBOX_ARCHIVE
from .archive import ArchiveUnavailable, result_line
from .history import archive_read, job_exists, outbox_of

SLICE = 1000
PIPELINED = 8  # slices per round trip when reading a results hash by id
# Archived results per MongoDB query: on the stand-in (nx-27017) a page
# costs about the same whatever its size (0.22 s for 1,000 of 200,000
# documents, 0.28 s for 5,000), so large pages.
PAGE = 5000


def export(backend, job_id, after=-1, limit=0, ok=None):
    """An iterator of NDJSON lines (no newline). NotFound or Unavailable are
    raised here, before the first line."""
    where = job_exists(backend, job_id)
    if ok is False:
        lines = _failures(backend, job_id, after, where)
    elif where == "archive":
        lines = _merged(backend, job_id, after, [])
    elif outbox_of(backend, job_id) == OUTBOX_ARCHIVE:
        lines = _merged(backend, job_id, after, _outbox(backend, job_id, after))
    else:
        lines = _hash_lines(backend, job_id, "results", after)
    return _first(_limited(lines, limit))


def _first(lines):
    """Run the source up to its first line now, so that its errors become
    a proper answer instead of a cut stream."""
    lines = iter(lines)
    try:
        head = next(lines)
    except StopIteration:
        return iter(())

    def chain():
        yield head
        yield from lines
    return chain()


def _limited(pairs, limit):
    n = 0
    for _task, line in pairs:
        yield line
        n += 1
        if limit and n >= limit:
            return


def _hash_lines(backend, job_id, name, after):
    """(id, value) of a job hash keyed by task id, in id order."""
    r = backend.redis
    total = int(r.hget(backend.keys.job_key(job_id, "meta"), "total") or 0)
    key = backend.keys.job_key(job_id, name)
    start = after + 1
    while start < total:
        with r.pipeline(transaction=False) as pipe:
            slices = []
            for _ in range(PIPELINED):
                if start >= total:
                    break
                ids = list(range(start, min(start + SLICE, total)))
                pipe.hmget(key, ids)
                slices.append(ids)
                start += SLICE
            replies = pipe.execute()
        for ids, values in zip(slices, replies):
            for task, value in zip(ids, values):
                if value is not None:
                    yield task, value


def _line_id(line):
    # lib.lua's result_line starts '{"id":<n>,'
    return int(line[6:line.index(",", 6)])


def _outbox(backend, job_id, after):
    """(id, line) of the results waiting in the job's outbox, sorted."""
    r = backend.redis
    key = backend.keys.job_key(job_id, "outbox")
    found = {}
    start = "-"
    while True:
        entries = r.xrange(key, min=start, max="+", count=500)
        for _entry_id, fields in entries:
            for line in (fields.get("r") or "").split("\n") if "r" in fields else ():
                task = _line_id(line)
                if task > after:
                    found.setdefault(task, line)
        if len(entries) < 500:
            break
        start = "(" + entries[-1][0]
    return sorted(found.items())


def _archived(archive, job_id, after):
    """(task, line) of the archived results, in id order, a page at a time
    (keyset paging: each page starts after the last task seen)."""
    while True:
        docs = archive.find("results", {"job": job_id, "task": {"$gt": after}},
                            sort=[("task", 1)], limit=PAGE)
        for doc in docs:
            yield doc["task"], result_line(doc)
        if len(docs) < PAGE:
            return
        after = docs[-1]["task"]


def _merged(backend, job_id, after, waiting):
    archived = _checked(_archived(backend.archive, job_id, after))
    last = None
    for task, line in heapq.merge(waiting, archived, key=lambda pair: pair[0]):
        if task != last:
            yield task, line
            last = task


def _checked(pairs):
    """Archive reads that fail become 503 before the first line, and cut the
    stream after it (a reader then sees it end early, never a wrong line)."""
    try:
        yield from pairs
    except ArchiveUnavailable as err:
        raise Unavailable("the archive is unreachable (%s)" % err, retry_after=5) from None


def _dead_line(entry):
    return json.dumps({"id": entry["id"], "attempt": entry.get("attempts", entry.get("attempt")),
                       "worker": entry.get("worker"), "ok": False, "error": entry.get("error"),
                       "finished_at": entry.get("at")}, separators=(",", ":"))


def _failures(backend, job_id, after, where):
    if where == "redis":
        for task, raw in _hash_lines(backend, job_id, "dead", after):
            yield task, _dead_line(json.loads(raw))
        return
    # Gone from Redis: the archived attempts that made a task dead, unless a
    # later retry of it succeeded.
    archive = backend.archive
    while True:
        docs = archive_read(lambda: archive.find(
            "attempts", {"job": job_id, "dead": True, "task": {"$gt": after}},
            sort=[("task", 1), ("attempt", 1)], limit=SLICE))
        last = {}
        for doc in docs:
            last[doc["task"]] = doc
        ids = sorted(last)
        done = {d["task"] for d in archive_read(lambda: archive.find(
            "results", {"job": job_id, "task": {"$in": ids}}, projection={"task": 1}))} if ids else set()
        for task in ids:
            if task not in done:
                doc = last[task]
                yield task, _dead_line({"id": task, "attempt": doc["attempt"], "worker": doc["worker"],
                                        "error": doc["error"], "at": doc["at"]})
        if len(docs) < SLICE:
            return
        after = docs[-1]["task"]
