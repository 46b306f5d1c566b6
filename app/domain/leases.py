"""The lease protocol: lease, heartbeat, complete, release.

Answers to a worker are built as JSON text rather than through ``jsonify``:
a lease of a few hundred tasks is the hottest response the server makes, and
its item payloads and params already are JSON text in Redis, so they are
spliced in without being parsed and re-encoded.
"""
import hashlib
import itertools
import json
import math
import os
import random
import re

from ..errors import BadRequest, LeaseLost, NotFound
from .jobs import lease_seconds, sync_active
from ..metrics import count_tasks
from ..store.backend import check_job_id
from .codec import encode

_LEASE_ID = re.compile(r"^([0-9a-f]{1,64})\.([0-9a-f]{16})$")


# Random lease-id suffixes (64 bits from os.urandom, as secrets.token_hex(8)),
# drawn 256 at a time: one getrandom() per 256 leases instead of one each. A
# forked child starts with none, so no two processes ever share one.
_suffixes = []
os.register_at_fork(after_in_child=_suffixes.clear)


def _random_suffix():
    try:
        return _suffixes.pop()
    except IndexError:
        raw = os.urandom(8 * 256).hex()
        _suffixes.extend(raw[i:i + 16] for i in range(0, len(raw), 16))
        return _suffixes.pop()


def idempotency_key(environ):
    """A client's Idempotency-Key: a retry with it gets the same lease back."""
    return environ.get("HTTP_IDEMPOTENCY_KEY", "")[:200] or None


def lease_request(body, environ):
    """``(job id or None, worker, max tasks, idempotency key)`` of a lease
    request whose body passed schemas.LEASE_REQUEST; NotFound for a job id
    that cannot be ours."""
    job_id = body.get("job")
    if job_id is not None:
        check_job_id(job_id)
    return job_id, body["worker"], body.get("max_tasks") or 0, idempotency_key(environ)


def new_lease_id(job_id, key=None):
    """A fresh lease id, or one derived from the request's Idempotency-Key.

    With a key, a retried request (its answer was lost on the way) names the
    same lease, and the lease script answers with the batch it already made
    instead of leasing a second one.
    """
    if key:
        return "%s.%s" % (job_id, hashlib.sha256(key.encode()).hexdigest()[:16])
    return "%s.%s" % (job_id, _random_suffix())


def job_of(lease_id):
    """The job id inside a lease id, or NotFound for an id that is not ours."""
    m = _LEASE_ID.match(lease_id or "")
    if not m:
        raise NotFound("no such lease: %s" % (lease_id or "")[:80])
    return m.group(1)


class Answer:
    """A lease answer: the JSON text, and the Retry-After it implies."""

    __slots__ = ("status", "text", "retry_after")

    def __init__(self, status, text, retry_after=None):
        self.status, self.text, self.retry_after = status, text, retry_after


DONE = Answer("done", '{"status":"done"}')


def _wait(backend, hint_ms=0):
    """Retry-After with jitter, so a thousand pods do not poll in lockstep."""
    base = backend.config["WAIT_SECONDS"]
    if hint_ms and 0 < hint_ms / 1000.0 < base:
        base = max(0.5, hint_ms / 1000.0)
    delay = round(base * random.uniform(1.0, 1.5), 2)
    return Answer("wait", '{"status":"wait","retry_after":%s}' % delay, delay)


def _ok(backend, job_id, reply):
    """Turn a lease reply ``{'ok', lid, expires, lease_ms, n, ids, attempts, [payloads]}``
    or ``{'span', lid, expires, lease_ms, n, first}`` into an answer."""
    info = backend.job_info(job_id)
    lid, expires, lease_ms, n = reply[1], int(reply[2]), int(reply[3]), reply[4]
    if reply[0] == "span":  # a range job's fresh ids first..first+n-1, first attempts
        ids, tries = range(reply[5], reply[5] + n), itertools.repeat(1, n)
    else:
        ids, tries = reply[5:5 + n], reply[5 + n:5 + 2 * n]
    if info.kind == "range":
        start = info.start
        tasks = ",".join(['{"id":%d,"attempt":%d,"payload":%d}' % (t, a, start + t)
                          for t, a in zip(ids, tries)])
    else:
        tasks = ",".join(['{"id":%d,"attempt":%d,"payload":%s}' % task
                          for task in zip(ids, tries, reply[5 + 2 * n:5 + 3 * n])])
    count_tasks("leased", n)
    # expires_at in seconds with its milliseconds, printed as integers
    # (cheaper than formatting a float, and exact)
    # "command" only for a job that has one: other leases stay as small as before.
    command = ',"command":%s' % info.command if info.command else ""
    text = ('{"status":"ok","lease":{"id":"%s","job":"%s","expires_at":%d.%03d,"lease_seconds":%s},'
            '"params":%s%s,"tasks":[%s]}' % (lid, job_id, *divmod(expires, 1000),
                                            lease_seconds(lease_ms), info.params, command, tasks))
    return Answer("ok", text)


def _answer(backend, job_id, reply):
    """A lease answer for one job's reply, or None when the job is missing."""
    kind = reply[0]
    if kind == "ok" or kind == "span":
        return _ok(backend, job_id, reply)
    if kind == "wait":
        return _wait(backend, int(reply[2]))
    if kind == "done":
        return DONE
    return None


def lease(backend, worker, max_tasks=0, job_id=None, key=None):
    """Lease from one job, or (no job) from the best running job."""
    if job_id is not None:
        reply = backend.lease(job_id, new_lease_id(job_id, key), worker, max_tasks, False)
        answer = _answer(backend, job_id, reply)
        if answer is None:
            raise NotFound("no such job: %s" % job_id)
        if answer is DONE:
            sync_active(backend, job_id, "done")
        return answer
    return lease_any(backend, worker, max_tasks, key=key)


def _by_priority(entries):
    """Job ids, highest priority first, shuffled among equals for fairness."""
    groups = {}
    for job_id, priority in entries:
        groups.setdefault(priority, []).append(job_id)
    for priority in sorted(groups, reverse=True):
        ids = groups[priority]
        random.shuffle(ids)
        yield from ids


def lease_any(backend, worker, max_tasks=0, skip=None, key=None):
    """Try running jobs in priority order; ``wait`` if any is unfinished."""
    r, keys = backend.redis, backend.keys
    unfinished, hint = False, 0
    for job_id in _by_priority(backend.active_jobs()):
        if job_id == skip:
            continue
        reply = backend.lease(job_id, new_lease_id(job_id, key), worker, max_tasks, True)
        if reply[0] == "ok" or reply[0] == "span":
            return _ok(backend, job_id, reply)
        if reply[0] == "wait":
            unfinished = True
            if int(reply[2]) > 0:
                hint = int(reply[2]) if not hint else min(hint, int(reply[2]))
        else:  # done or missing: the hint was stale
            r.zrem(keys.active, job_id)
    return _wait(backend, hint) if unfinished else DONE


def heartbeat(backend, lease_id, lease_seconds=None):
    job_id = job_of(lease_id)
    ms = int(round(lease_seconds * 1000)) if lease_seconds else 0
    reply = backend.run("heartbeat", job_id, [lease_id, ms, backend.reclaim_limit])
    if reply[0] == "missing":
        raise NotFound("no such job: %s" % job_id)
    if reply[0] == "lost":
        raise LeaseLost("lease %s expired; its tasks were given back" % lease_id)
    return {"id": lease_id, "expires_at": int(reply[1]) / 1000.0, "job_state": reply[2]}


def release(backend, lease_id):
    job_id = job_of(lease_id)
    reply = backend.run("release", job_id, [lease_id])
    if reply[0] == "missing":
        raise NotFound("no such job: %s" % job_id)
    return {"released": int(reply[1])}


def _result_args(results, limit):
    """The complete script's (id, ok, body) triples, flat."""
    args = []
    add = args.append
    for item in results:
        tid = item["id"]
        add(tid)
        if item["ok"]:
            add(1)
            add(encode(item.get("result"), limit, "result of task %d", tid))
        else:
            add(0)
            error = item.get("error", "")
            if not isinstance(error, str):
                error = encode(error, limit, "error of task %d", tid)
            elif len(error) > limit:
                error = error[:limit]
            add(error)
    return args


def complete(backend, lease_id, body, worker="", key=None):
    """Record results; maybe release the rest; maybe lease the next batch.

    Returns (document without next, next Answer or None).
    """
    job_id = job_of(lease_id)
    results = body.get("results") or []
    nxt = body.get("next")
    want_next = nxt is not None and nxt is not False
    max_tasks = (nxt.get("max_tasks") or 0) if isinstance(nxt, dict) else 0
    next_key = key and key + ":next"
    next_id = new_lease_id(job_id, next_key) if want_next else ""
    args = [lease_id, worker, 1 if body.get("release") else 0, backend.reclaim_limit,
            next_id, max_tasks, len(results)]
    args += _result_args(results, backend.config["MAX_RESULT_BYTES"])
    reply = backend.run("complete", job_id, args)
    if reply[0] == "missing":
        raise NotFound("no such job: %s" % job_id)
    if reply[0] == "bad":
        raise BadRequest("task id %s is not a task of job %s" % (reply[1], job_id))
    doc = {"accepted": reply[1], "duplicates": reply[2], "retried": reply[3], "dead": reply[4],
           "ignored": reply[5], "released": reply[6]}
    for event, n in (("done", doc["accepted"]), ("retried", doc["retried"]),
                     ("dead", doc["dead"]), ("duplicate", doc["duplicates"])):
        count_tasks(event, n)
    answer = None
    if want_next:
        worker = reply[8]
        answer = _answer(backend, job_id, reply[9:])
        if answer is DONE:
            sync_active(backend, job_id, "done")
        if answer.status != "ok" and reply[7] == 1:
            # The lease was taken from "any job": look beyond this one.
            other = lease_any(backend, worker, max_tasks, skip=job_id, key=next_key)
            if other.status == "ok" or answer is DONE:
                answer = other
    return doc, answer


def retry_after_header(answer):
    return str(max(1, math.ceil(answer.retry_after)))


def merge(doc, answer):
    """The complete response as JSON text, with the next lease spliced in."""
    text = json.dumps(doc, separators=(",", ":"))
    if answer is None:
        return text
    return text[:-1] + ',"next":' + answer.text + "}"
