"""Read-only views for the operator's console: one task in full, and the
workers of every recent job in one list."""
import json

from ..errors import NotFound, Unavailable
from . import history, jobs
from .archive import ArchiveUnavailable, result_line
from .codec import loads
from .history import outbox_of
from ..store.scripts import EXPIRED_ERROR, OUTBOX_ARCHIVE


def task(backend, job_id, task_id):
    """GET /jobs/<id>/tasks/<task>: payload, state, attempts, holder, result."""
    try:
        view = backend.ops.task(job_id, task_id)
    except NotFound:
        if backend.archive is None:
            raise
        return archived_task(backend, job_id, task_id)
    if view.status == "no_task":
        raise NotFound("job %s has no task %d" % (job_id, task_id))
    state, tries, fails, item, result, dead, lid, record, expires = (
        view.state, view.tries, view.fails, view.item, view.result, view.dead, view.lease_id,
        view.lease, view.expires_ms)
    info = backend.job_info(job_id)
    payload = info.start + task_id if info.kind == "range" else (loads(item) if item else None)
    doc = {"job": job_id, "id": task_id, "state": state, "payload": payload,
           "attempts": int(tries), "failed_attempts": int(fails),
           "lease": None, "result": loads(result) if result else None,
           "dead": json.loads(dead) if dead else None, "history": []}
    if lid:
        _any, created, _tasks, worker = record.split("|", 3)
        doc["lease"] = {"id": lid, "worker": worker, "leased_at": int(created) / 1000.0,
                        "expires_at": float(expires) / 1000.0 if expires else None}
        doc["history"].append({"attempt": int(tries), "worker": worker, "outcome": "running",
                               "at": int(created) / 1000.0})
    if backend.archive is None or outbox_of(backend, job_id) != OUTBOX_ARCHIVE:
        doc["attempt_log"] = "none"
    else:
        # an archive job's results leave Redis once archived: a done task's is in MongoDB
        doc["attempt_log"] = _from_archive(backend, job_id, task_id, doc,
                                           state == "done" and not result)
    return _outcomes(doc)


def archived_task(backend, job_id, task_id):
    """A task of a job gone from Redis, from the archive alone: its result
    (or how it failed for good) and its failed or expired attempts. The
    payload is not archived (null); a task never finished reads pending."""
    status = history.archived_status(backend, job_id)
    if not 0 <= task_id < status["counts"]["total"]:
        raise NotFound("job %s has no task %d" % (job_id, task_id))
    doc = {"job": job_id, "id": task_id, "state": "pending", "payload": None, "attempts": 0,
           "failed_attempts": 0, "lease": None, "result": None, "dead": None, "history": [],
           "archived": True}
    if _from_archive(backend, job_id, task_id, doc, True) == "unreachable":
        raise Unavailable("the archive is unreachable", retry_after=5)
    doc["attempt_log"] = "archive"
    last = max(doc["history"], key=lambda a: a["attempt"] or 0, default=None)
    if not doc["result"] and last and last["outcome"] == "dead":
        # its last attempt made it dead (and no retry of it succeeded): the dead record
        doc["history"].remove(last)
        doc["dead"] = {"id": task_id, "attempts": last["attempt"], "worker": last["worker"],
                       "error": last["error"], "at": last["at"]}
    doc["state"] = "done" if doc["result"] else "dead" if doc["dead"] else "pending"
    doc["attempts"] = max([a["attempt"] or 0 for a in doc["history"]] or [0])
    return _outcomes(doc)


def _outcomes(doc):
    """The result and the dead record as the history's last entries; the
    counts of a finished task (its counters leave Redis) from its history."""
    r, d = doc["result"], doc["dead"]
    if r:
        doc["history"].append({"attempt": r.get("attempt"), "worker": r.get("worker"),
                               "outcome": "ok", "at": r.get("finished_at")})
    if d:
        doc["history"].append({"attempt": d.get("attempts"), "worker": d.get("worker"),
                               "outcome": "dead", "error": d.get("error"), "at": d.get("at")})
    doc["history"].sort(key=lambda a: (a.get("attempt") or 0, a.get("at") or 0))
    if r or d:
        doc["attempts"] = max([doc["attempts"]] + [a.get("attempt") or 0 for a in doc["history"]])
        doc["failed_attempts"] = max(doc["failed_attempts"], sum(
            1 for a in doc["history"] if a["outcome"] in ("failed", "expired", "dead")))
    return doc


def _from_archive(backend, job_id, task_id, doc, want_result):
    """Add the task's failed and expired attempts from the archive's
    ``attempts`` to ``doc["history"]`` (and, ``want_result``, its result
    from ``results``); say where the history came from: ``archive``, or
    ``unreachable`` (MongoDB did not answer: the rest is still shown).
    Without an archive (``none``) Redis keeps only the current lease, the
    result and the dead record."""
    try:
        # the newest INSPECT_ATTEMPTS: one bounded query whatever the task went through
        docs = backend.archive.find("attempts", {"job": job_id, "task": task_id},
                                    sort=[("attempt", -1)],
                                    limit=backend.config["INSPECT_ATTEMPTS"],
                                    projection={"_id": 0, "job": 0, "task": 0})
        found = want_result and backend.archive.find(
            "results", {"job": job_id, "task": task_id}, limit=1, projection={"_id": 0, "job": 0})
    except ArchiveUnavailable:
        return "unreachable"
    if found:
        doc["result"] = loads(result_line(found[0]))
    last_dead = doc["dead"] and doc["dead"].get("attempts")
    for a in docs:
        if a.get("dead") and a.get("attempt") == last_dead:
            continue  # the dead record says it already, with the full error
        outcome = "expired" if a.get("error") == EXPIRED_ERROR else "failed"
        doc["history"].append({"attempt": a.get("attempt"), "worker": a.get("worker"),
                               "outcome": "dead" if a.get("dead") else outcome,
                               "error": a.get("error"), "at": a.get("at")})
    return "archive"


def all_workers(backend, job_limit=100):
    """GET /workers: every worker of the newest ``job_limit`` jobs, with its
    job; ``stale`` when it has been silent for longer than the job's lease
    (so any lease it held has expired) while the job is still running."""
    now = backend.redis.time()
    now = now[0] + now[1] / 1e6
    out = []
    for doc in jobs.list_jobs(backend, limit=job_limit):
        try:
            rows = jobs.workers(backend, doc["id"])["workers"]
        except NotFound:  # deleted meanwhile
            continue
        lease = doc["settings"]["lease_seconds"]
        for w in rows:
            silent = max(0.0, now - w["last_seen"])
            out.append(dict(w, job=doc["id"], job_name=doc["name"], job_state=doc["state"],
                            silent_seconds=round(silent, 3),
                            stale=doc["state"] == "running" and silent > lease))
    out.sort(key=lambda w: (-w["last_seen"], w["worker"]))
    return {"workers": out, "now": now}
