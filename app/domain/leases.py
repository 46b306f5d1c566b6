"""The lease protocol: lease, heartbeat, complete, release.

Answers to a worker are built as JSON text rather than through ``jsonify``:
a lease of a few hundred tasks is the hottest response the server makes, and
its item payloads and params already are JSON text in Redis, so they are
spliced in without being parsed and re-encoded.
"""
import json
import math
import random
import time

from ..errors import BadRequest, LeaseLost, NotFound, Unavailable
from .jobs import lease_seconds, sync_active
from ..metrics import count_tasks
from ..store.backend import check_job_id
from .codec import encode, text
from .lease_ids import signer


def idempotency_key(environ):
    """A client's Idempotency-Key: a retry with it gets the same lease back."""
    return environ.get("HTTP_IDEMPOTENCY_KEY", "")[:200] or None


def stale(environ, limit):
    """True when nginx had this request more than ``limit`` seconds ago
    (``X-Request-Start: t=<seconds>``, set by conf/nginx; absent: not stale).

    The client has then most likely given up on it and retried; a lease made
    for it now would hold its tasks for nobody until it expires. This is also
    what keeps a retried request's lease from being made a second time: a
    first try that arrives after its retry's lease was completed would find
    no lease under its key and make a new one.
    """
    if not limit:
        return False
    raw = environ.get("HTTP_X_REQUEST_START", "")
    try:
        started = float(raw[2:] if raw.startswith("t=") else raw)
    except ValueError:
        return False
    return time.time() - started > limit


def lease_request(body, environ, stale_after=0):
    """``(job id or None, worker, max tasks, idempotency key)`` of a lease
    request whose body passed schemas.LEASE_REQUEST; NotFound for a job id
    that cannot be ours, Unavailable for a request that waited longer than
    ``stale_after`` seconds in the stack (see :func:`stale`)."""
    job_id = body.get("job")
    if job_id is not None:
        check_job_id(job_id)
    if stale(environ, stale_after):
        raise Unavailable("the request waited more than %gs inside the service; retry"
                          % stale_after)
    return job_id, body["worker"], body.get("max_tasks") or 0, idempotency_key(environ)


def new_lease_id(backend, job_id, key=None, scope=""):
    """A signed lease id (see :mod:`app.domain.lease_ids`)."""
    return signer(backend).new(job_id, key, scope)


def job_of(backend, lease_id):
    """The job id inside a lease id this server made, or NotFound."""
    return signer(backend).job_of(lease_id)


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


def _ok(backend, job_id, got):
    """Turn an ``ok`` :class:`replies.Lease` into an answer."""
    info = backend.job_info(job_id)
    if info.kind == "range":
        start = info.start
        tasks = ",".join(['{"id":%d,"attempt":%d,"payload":%d}' % (t, a, start + t)
                          for t, a in zip(got.ids, got.attempts)])
    else:
        tasks = ",".join(['{"id":%d,"attempt":%d,"payload":%s}' % task
                          for task in zip(got.ids, got.attempts, got.payloads)])
    count_tasks("leased", got.n)
    # "command" only for a job that has one: other leases stay as small as before.
    command = ',"command":%s' % info.command if info.command else ""
    # expires_at in seconds with its milliseconds, printed as integers
    # (cheaper than formatting a float, and exact)
    text = ('{"status":"ok","lease":{"id":"%s","job":"%s","expires_at":%d.%03d,"lease_seconds":%s},'
            '"params":%s%s,"tasks":[%s]}' % (got.lease_id, job_id, *divmod(got.expires_ms, 1000),
                                            lease_seconds(got.lease_ms), info.params, command,
                                            tasks))
    return Answer("ok", text)


def _answer(backend, job_id, got):
    """A lease answer for one job's :class:`replies.Lease`, or None when the
    job is missing."""
    status = got.status
    if status == "ok":
        return _ok(backend, job_id, got)
    if status == "wait":
        return _wait(backend, got.wait_ms)
    if status == "done":
        return DONE
    return None


def lease(backend, worker, max_tasks=0, job_id=None, key=None):
    """Lease from one job, or (no job) from the best running job."""
    if job_id is not None:
        answer = _answer(backend, job_id, backend.lease(
            job_id, new_lease_id(backend, job_id, key, worker), worker, max_tasks, False))
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
        got = backend.lease(job_id, new_lease_id(backend, job_id, key, worker), worker,
                            max_tasks, True)
        if got.status == "ok":
            return _ok(backend, job_id, got)
        if got.status == "wait":
            unfinished = True
            if got.wait_ms > 0:
                hint = got.wait_ms if not hint else min(hint, got.wait_ms)
        else:  # done or missing: the hint was stale
            r.zrem(keys.active, job_id)
    return _wait(backend, hint) if unfinished else DONE


def heartbeat(backend, lease_id, lease_seconds=None):
    job_id = job_of(backend, lease_id)
    ms = int(round(lease_seconds * 1000)) if lease_seconds else 0
    beat = backend.ops.heartbeat(job_id, lease_id, ms,
                                 backend.config["MAX_LEASE_SECONDS"] * 1000)
    if beat.status == "lost":
        raise LeaseLost("lease %s expired; its tasks were given back" % lease_id)
    return {"id": lease_id, "expires_at": beat.expires_ms / 1000.0, "job_state": beat.job_state}


def release(backend, lease_id):
    job_id = job_of(backend, lease_id)
    return {"released": int(backend.ops.release(job_id, lease_id))}


def _result_args(results, limit):
    """The complete script's (id, ok, body) triples."""
    out = []
    add = out.append
    for item in results:
        tid = item["id"]
        if item["ok"]:
            add((tid, 1, encode(item.get("result"), limit, "result of task %d", tid)))
        else:
            error = item.get("error", "")
            if isinstance(error, str):
                error = text(error, limit, "error of task %d", tid)
            else:
                error = encode(error, limit, "error of task %d", tid)
            add((tid, 0, error))
    return out


def complete(backend, lease_id, body, worker="", key=None, late=False):
    """Record results; maybe release the rest; maybe lease the next batch.

    Returns (document without next, next Answer or None). ``late``: the
    request waited too long in the stack (see :func:`stale`): its results
    are recorded, but no next lease is made (the answer has no ``next``;
    a client still waiting leases on its own).
    """
    job_id = job_of(backend, lease_id)
    results = body.get("results") or []
    nxt = body.get("next")
    want_next = nxt is not None and nxt is not False and not late
    max_tasks = (nxt.get("max_tasks") or 0) if isinstance(nxt, dict) else 0
    # The next lease's key is scoped to the lease completed: only its holder
    # (who alone knows its id) can retry its way to that next lease.
    next_id = new_lease_id(backend, job_id, key, lease_id) if want_next else ""
    out = backend.ops.complete(job_id, lease_id, worker, body.get("release"), next_id,
                               max_tasks,
                               _result_args(results, backend.config["MAX_RESULT_BYTES"]))
    if out.status == "bad":
        raise BadRequest("task id %s is not a task of job %s" % (out.bad_id, job_id))
    doc = out.counts()
    for event, n in (("done", doc["accepted"]), ("retried", doc["retried"]),
                     ("dead", doc["dead"]), ("duplicate", doc["duplicates"])):
        count_tasks(event, n)
    answer = None
    if want_next:
        worker = out.worker
        answer = _answer(backend, job_id, out.next)
        if answer is DONE:
            sync_active(backend, job_id, "done")
        if answer.status != "ok" and out.any_job:
            # The lease was taken from "any job": look beyond this one.
            other = lease_any(backend, worker, max_tasks, skip=job_id,
                              key=key and "%s\0%s" % (lease_id, key))
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
