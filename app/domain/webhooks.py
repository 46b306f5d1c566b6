"""The finish webhook (docs/contract.md §7): one signed ``job.finished`` event per
finished job, delivered at least once, by whichever instance gets to it.

State lives in two places, never touched by one command together (Redis
Cluster): the job's ``meta`` (``wh_state``, ``wh_attempts``, ``wh_error``,
``wh_seq``: the truth, updated by ``webhook_mark.lua``) and the global
``webhooks`` index (job id -> when to look at it next). A job with a
webhook enters the index when it is made, so no finish can be missed: every
process's deliverer (a background greenlet, :mod:`app.background`) reads
the entries that are due, and for each one it wins the job's delivery lock
(redis-py's Lock, ``SET NX PX``: it expires like a lease, so a deliverer
that crashes mid-delivery only delays the event), it

- drops the entry of a job that is gone or whose event is delivered or
  abandoned,
- looks again in WATCH_MS at a job that has not finished (the app also
  nudges the entry to "now" when it sees a job finish, so the event leaves
  at once rather than at the next look),
- else POSTs ``{"event": "job.finished", "job": <status>}`` signed with
  ``X-Jobmaster-Signature: sha256=<hex HMAC-SHA256 of the body>`` and
  ``X-Jobmaster-Event: <job>:<finish number>`` (the same on every retry, so
  a receiver can drop repeats). A 2xx is delivered; anything else is
  retried after 2^attempts seconds (at most an hour) until a day has passed
  since the job finished, then abandoned.
"""
import hashlib
import hmac
import json
import logging
import random
from urllib.parse import urlsplit

from jobmaster import protocol

from redis.exceptions import LockError

from ..errors import NotFound

log = logging.getLogger(__name__)

#: How often a running job's entry is looked at (a finish nudges it sooner).
WATCH_MS = 5_000
#: How long a deliverer holds a job's delivery lock at least (and 3x the
#: receiver's timeout if that is longer).
LOCK_MS = 60_000
#: Retry delays: 2^attempts seconds, at most this.
MAX_RETRY_MS = 3_600_000
#: Entries one deliverer takes per round.
ROUND = 20


def watch(backend, job_id, due_ms=None):
    """Put a job with a webhook in the global index (looked at from ``due_ms``)."""
    if due_ms is None:
        due_ms = _now_ms(backend) + WATCH_MS
    backend.redis.zadd(backend.keys.webhooks, {job_id: due_ms})


def rewatch(backend, job_id):
    """A revived job (dead/retry) owes a new event when it finishes again."""
    if backend.redis.hget(backend.keys.job_key(job_id, "meta"), "wh_state") == \
            protocol.WEBHOOK_PENDING:
        backend.redis.zadd(backend.keys.webhooks, {job_id: _now_ms(backend) + WATCH_MS}, nx=True)


def nudge(backend, job_id):
    """The app saw ``job_id`` finish: deliver its event now, not at the next look.

    Only an event never tried yet is moved forward (``LT``: never later), so a
    failing delivery keeps its backoff however often workers ask a finished job.
    """
    if backend.redis.hget(backend.keys.job_key(job_id, "meta"), "wh_state") == \
            protocol.WEBHOOK_PENDING:
        backend.redis.zadd(backend.keys.webhooks, {job_id: 0}, xx=True, lt=True)


def sign(secret, body):
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` (bytes) keyed by ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _now_ms(backend):
    sec, usec = backend.redis.time()
    return sec * 1000 + usec // 1000


def _target(backend, raw):
    """(url, secret) of a job's webhook: its own, else the configured default."""
    if raw:
        hook = json.loads(raw)
        return hook["url"], hook.get("secret") or ""
    return backend.config.get("WEBHOOK_URL") or None, backend.config.get("WEBHOOK_SECRET") or ""


def deliver_due(backend, session, limit=ROUND):
    """One round of the deliverer: handle the index entries that are due.

    ``session`` is a ``requests.Session``. Returns how many events were POSTed.
    """
    now = _now_ms(backend)
    due = backend.redis.zrangebyscore(backend.keys.webhooks, "-inf", now, start=0, num=limit)
    random.shuffle(due)  # several deliverers at once spread over the entries
    sent = 0
    # the lock outlives the longest attempt, so two deliverers never post at once
    hold = max(LOCK_MS / 1000.0, 3 * backend.config["WEBHOOK_TIMEOUT"])
    for job_id in due:
        # redis-py's Lock: SET NX PX with a token of its own, released only
        # by its owner (a lock that expired and was taken is left alone)
        lock = backend.redis.lock(backend.keys.job_key(job_id, "whlock"), timeout=hold,
                                  blocking=False)
        if not lock.acquire():
            continue  # another deliverer has it
        try:
            sent += _handle(backend, session, job_id, now)
        finally:
            try:
                lock.release()
            except LockError:
                pass  # it expired meanwhile: nothing of ours to release
    return sent


def _handle(backend, session, job_id, now):
    from .jobs import status

    r, index = backend.redis, backend.keys.webhooks
    meta = r.hmget(backend.keys.job_key(job_id, "meta"), "state", "wh_state", "wh_attempts",
                   "wh_seq", "webhook", "finished_at")
    state, wh_state, attempts, seq, raw, finished_at = meta
    if state is None or wh_state in (protocol.WEBHOOK_DELIVERED, protocol.WEBHOOK_ABANDONED, None):
        r.zrem(index, job_id)
        return 0
    if state not in protocol.JOB_FINAL_STATES:
        r.zadd(index, {job_id: now + WATCH_MS})
        return 0
    url, secret = _target(backend, raw)
    if url is None:  # the default was unset since: nothing to deliver to
        _mark(backend, job_id, seq, protocol.WEBHOOK_ABANDONED, "no webhook URL configured")
        r.zrem(index, job_id)
        return 0
    try:
        doc = status(backend, job_id)
    except NotFound:
        r.zrem(index, job_id)
        return 0
    body = json.dumps({"event": protocol.EVENT_JOB_FINISHED, "job": doc},
                      separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", protocol.SIGNATURE_HEADER: sign(secret, body),
               protocol.EVENT_ID_HEADER: "%s:%s" % (job_id, seq),
               "User-Agent": "jobmaster-webhook"}
    error = _post(session, url, body, headers, backend.config["WEBHOOK_TIMEOUT"])
    if error is None:
        _mark(backend, job_id, seq, protocol.WEBHOOK_DELIVERED, "")
        r.zrem(index, job_id)
        return 1
    attempts = int(attempts or 0) + 1
    give_up = int(finished_at or now) + backend.config["WEBHOOK_GIVE_UP_SECONDS"] * 1000
    if now >= give_up:
        _mark(backend, job_id, seq, protocol.WEBHOOK_ABANDONED, error)
        r.zrem(index, job_id)
        log.warning("webhook of job %s abandoned after %d attempts: %s", job_id, attempts, error)
    else:
        _mark(backend, job_id, seq, protocol.WEBHOOK_FAILING, error)
        delay = min(MAX_RETRY_MS, 1000 * 2 ** min(attempts, 22))
        r.zadd(index, {job_id: now + int(delay * random.uniform(0.8, 1.0))})
    return 1


def _post(session, url, body, headers, timeout):
    """POST once; None when the receiver answered 2xx, else what went wrong."""
    import requests

    try:
        resp = session.post(url, data=body, headers=headers, timeout=timeout,
                            allow_redirects=False)
    except requests.RequestException as err:
        # the URL may carry credentials: name the host only
        return "%s (%s)" % (type(err).__name__, urlsplit(url).hostname)
    if 200 <= resp.status_code < 300:
        return None
    return "HTTP %d" % resp.status_code


def _mark(backend, job_id, seq, state, error):
    backend.ops.webhook_mark(job_id, seq or 1, state, error[:500])
