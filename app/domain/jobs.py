"""The job lifecycle: create, add items, seal, status, pause/resume/cancel,
delete, results, dead tasks and the per-worker view.

Each state change is one Lua operation (``app/store/lua``); this module turns HTTP
input into script arguments and script replies into documents. The global
indexes ``jobs`` and ``active`` are hints kept beside the per-job truth
(see :mod:`app.store.keys`), which is what lets every job live in one hash slot.
"""
import json
import math
import secrets

from jobmaster import protocol

from ..errors import BadRequest, Conflict, NotFound
from . import settings as job_settings
from . import webhooks
from . import series
from ..store.scripts import OUTBOX_ARCHIVE, OUTBOX_HOOK, OUTBOX_NONE
from .codec import MAX_SAFE, encode

STATES = protocol.JOB_STATES
ACTIVE_STATES = protocol.JOB_ACTIVE_STATES


def new_job_id():
    return secrets.token_hex(8)


def _seconds(ms):
    return None if ms in (None, "") else int(ms) / 1000.0


def lease_seconds(lease_ms):
    """A job's lease length as given: whole seconds stay integers."""
    return lease_ms // 1000 if lease_ms % 1000 == 0 else lease_ms / 1000.0


def decayed_rate(rate, since_ms, now_ms):
    """Tasks/s over about the last minute (see RATE_WINDOW_MS in lib.lua)."""
    if not rate or since_ms in (None, ""):
        return 0.0
    return float(rate) * math.exp(-(now_ms - int(since_ms)) / 60000.0)


def status_document(job_id, st, backend, recent=None):
    """The status document of docs/contract.md §3 from a :class:`replies.Status`
    (and a :class:`replies.SeriesRecent`, for rate, ETA and makespan)."""
    meta = st.meta
    total = int(meta["total"])
    lease_ms = int(meta["lease_ms"])
    state = meta["state"]
    counts = {"total": total, "pending": st.pending, "leased": st.leased, "done": st.done,
              "dead": st.dead}
    created_at, finished_at = _seconds(meta["created_at"]), _seconds(meta.get("finished_at"))
    rate, eta, makespan = series.figures(state, counts, created_at, finished_at, recent)
    if meta["sealed"] != "1" and state != protocol.JOB_COMPLETED:
        eta = None  # more items may come
    params = backend.job_info(job_id).params
    doc = {
        "id": job_id,
        "name": meta["name"],
        "state": state,
        "kind": meta["kind"],
        "created_at": created_at,
        "finished_at": finished_at,
        "sealed": meta["sealed"] == "1",
        "settings": {
            "batch_size": int(meta["batch_size"]),
            "lease_seconds": lease_seconds(lease_ms),
            "max_attempts": int(meta["max_attempts"]),
            "priority": int(meta["priority"]),
            **job_settings.from_meta(meta),
        },
        "params": json.loads(params),
        "counts": counts,
        "rate": rate,
        "eta_seconds": eta,
        "outcome": outcome(state, st.dead),
        "schedule": meta.get("schedule") or None,
        "makespan_seconds": makespan,
        **_archive_counts(meta, st.done),
    }
    if int(meta.get("backoff_ms") or 0):
        # only jobs with retry_backoff have it: the five counts stay the
        # whole document of every other job
        doc["counts"]["backoff"] = st.backoff
    hook = job_settings.webhook_status(meta)
    if hook is not None:
        doc["webhook"] = hook
    return doc


def outcome(state, dead):
    """A finished job's outcome (docs/contract.md §7), None while it may still run."""
    if state == protocol.JOB_COMPLETED:
        return protocol.OUTCOME_PARTIAL if dead else protocol.OUTCOME_SUCCESS
    if state == protocol.JOB_FAILED:
        return protocol.OUTCOME_FAILED
    if state == protocol.JOB_CANCELLED:
        return protocol.OUTCOME_CANCELLED
    return None


def _archive_counts(meta, done):
    """An archive job's ``archive`` part: results in MongoDB, and waiting."""
    if meta.get("outbox") != str(OUTBOX_ARCHIVE):
        return {}
    archived = int(meta.get("archived") or 0)
    return {"archived": False, "archive": {"archived": archived, "backlog": done - archived}}


def outbox_mode(backend):
    """What a new job hands its results on to (scripts.OUTBOX_*): the archive,
    the result hook alone, or nothing (results stay in Redis)."""
    if backend.archive is not None:
        return OUTBOX_ARCHIVE
    return OUTBOX_HOOK if backend.drainer is not None else OUTBOX_NONE


def _range_total(spec, config):
    start, stop = spec
    if not (-MAX_SAFE <= start <= MAX_SAFE and -MAX_SAFE <= stop <= MAX_SAFE):
        raise BadRequest("body.tasks.range: bounds must be within ±2**53")
    if stop < start:
        raise BadRequest("body.tasks.range: stop must not be below start")
    if stop - start > config["MAX_TOTAL"]:
        raise BadRequest("body.tasks.range: at most %d tasks per job" % config["MAX_TOTAL"])
    return start, stop - start


#: Staged items of a create in progress expire after this long unless the
#: create completes, so a request that dies half-way leaves nothing for good.
STAGED_SECONDS = 3600


def _stage(backend, job_id, items):
    """Store ``items`` (any iterable, decoded one at a time) as ids 0..n-1 of a
    job not created yet, ITEMS_CHUNK per script call (stage.lua); their count.
    One chunk of encoded items is alive at a time."""
    limit, size = backend.config["MAX_RESULT_BYTES"], backend.config["ITEMS_CHUNK"]
    chunk, first = [], 0
    for n, item in enumerate(items):
        chunk.append(encode(item, limit, "body.tasks.items[%d]", n))
        if len(chunk) == size:
            backend.ops.stage(job_id, first, STAGED_SECONDS, chunk)
            first, chunk = first + size, []
    if chunk:
        backend.ops.stage(job_id, first, STAGED_SECONDS, chunk)
    return first + len(chunk)


def create(backend, body, items=None, job_id=None):
    """Create a job from a validated POST /jobs body; return its status.

    ``items``: the job's items as an iterable with a length, when the body's
    ``tasks.items`` is a placeholder (a large body, app/web/items_body.py):
    they are stored in chunks before the job is made over them. ``job_id``
    (a schedule's slot names its job) makes the call idempotent: the job is
    made once, later calls answer the status of that one.
    """
    args = _create_args(backend, body, items)
    job_id = job_id or new_job_id()
    priority = args["priority"]
    if args["kind"] == "staged":
        args["total"] = _stage(backend, job_id, items)
    r, keys = backend.redis, backend.keys
    # Index first: a listed id without a job is skipped and cleaned later,
    # while a job missing from the index would be invisible.
    sec, usec = backend.redis.time()
    outbox = outbox_mode(backend)
    with r.pipeline(transaction=False) as pipe:
        # Scored in microseconds of Redis TIME: jobs made in the same
        # millisecond still list newest first.
        pipe.zadd(keys.jobs, {job_id: sec * 1_000_000 + usec}, nx=True)
        pipe.zadd(keys.active, {job_id: priority})
        if outbox:  # the drainers' index (keys.py), due at once
            pipe.zadd(keys.archiving, {job_id: 0}, nx=True)
        pipe.execute()
    state = backend.ops.create(job_id, outbox=outbox, **args)
    if state is None:  # it existed: the same job again
        doc = status(backend, job_id)
        sync_active(backend, job_id, doc["state"], priority)
        return doc
    job_settings.created(backend, job_id, args["extra"])
    if state != protocol.JOB_RUNNING:
        sync_active(backend, job_id, state)
    return status(backend, job_id)


def check(backend, body):
    """Raise BadRequest if ``body`` (schema-valid) would not make a job."""
    _create_args(backend, body)


def _create_args(backend, body, items=None):
    """The create operation's arguments for a validated job body, or
    BadRequest (a staged job's total is counted as its items are stored)."""
    config = backend.config
    tasks = body.get("tasks")
    if tasks is None:  # no tasks yet: an (unsealed) items job to append to
        tasks = {"items": []}
    if ("range" in tasks) == ("items" in tasks):
        raise BadRequest("body.tasks: give exactly one of range or items")
    sealed = body.get("sealed", True)
    encoded = []  # the items sent with the create call itself
    if "range" in tasks:
        if not sealed:
            raise BadRequest("body.sealed: a range job is always sealed")
        start, total = _range_total(tasks["range"], config)
        kind = "range"
    elif items is not None:
        kind, start, total = "staged", 0, 0
    else:
        kind, start, total = "items", 0, len(tasks["items"])
        limit = config["MAX_RESULT_BYTES"]
        encoded = [encode(item, limit, "body.tasks.items[%d]", i)
                   for i, item in enumerate(tasks["items"])]
    lease_ms = int(round(body.get("lease_seconds", protocol.DEFAULT_LEASE_SECONDS) * 1000))
    if lease_ms < 1:
        raise BadRequest("body.lease_seconds: must be at least 0.001")
    params = encode(body.get("params") or {}, config["MAX_RESULT_BYTES"], "body.params")
    return {"name": body["name"], "kind": kind, "start": start, "total": total, "sealed": sealed,
            "batch_size": body.get("batch_size", protocol.DEFAULT_BATCH_SIZE),
            "lease_ms": lease_ms,
            "max_attempts": body.get("max_attempts", protocol.DEFAULT_MAX_ATTEMPTS),
            "priority": body.get("priority", protocol.DEFAULT_PRIORITY), "params": params,
            "extra": job_settings.to_meta(body, config), "items": encoded}


def status(backend, job_id):
    st = backend.ops.status(job_id)  # (NotFound for no such job)
    return status_document(job_id, st, backend, backend.ops.series_recent(job_id))


def list_jobs(backend, state=None, limit=100):
    """Status documents, newest first; drops index entries of deleted jobs."""
    r, keys = backend.redis, backend.keys
    ids = r.zrevrange(keys.jobs, 0, -1 if state else limit - 1)
    docs, stale = [], []
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        for job_id, st, recent in zip(chunk, backend.ops.status_many(chunk),
                                      backend.ops.series_recent_many(chunk)):
            if st is None:
                stale.append(job_id)
                continue
            doc = status_document(job_id, st, backend, recent)
            if state is None or doc["state"] == state:
                docs.append(doc)
        if len(docs) >= limit:
            break
    if stale:
        r.zrem(keys.jobs, *stale)
        r.zrem(keys.active, *stale)
    return docs[:limit]


def sync_active(backend, job_id, state, priority=None):
    """Keep the ``active`` hint in step with a job's new state (and let a
    finished job's webhook leave now)."""
    keys = backend.keys
    if state in ACTIVE_STATES:
        if priority is None:
            priority = int(backend.redis.hget(keys.job_key(job_id, "meta"), "priority") or 0)
        backend.redis.zadd(keys.active, {job_id: priority})
    elif backend.redis.zrem(keys.active, job_id):
        webhooks.nudge(backend, job_id)


def set_state(backend, job_id, action):
    out = backend.ops.set_state(job_id, action)
    if out.status == "conflict":
        raise Conflict("cannot %s a job that is %s" % (action, out.state))
    sync_active(backend, job_id, out.state)
    return status(backend, job_id)


def delete(backend, job_id):
    if backend.archive is not None:
        from . import history

        if history.outbox_of(backend, job_id) == OUTBOX_ARCHIVE:
            return history.delete(backend, job_id)
    existed = backend.ops.delete(job_id) == "ok"
    keys = backend.keys
    backend.redis.zrem(keys.jobs, job_id)
    backend.redis.zrem(keys.active, job_id)
    backend.redis.zrem(keys.archiving, job_id)
    if not existed:
        raise NotFound("no such job: %s" % job_id)
    return {"id": job_id, "deleted": True}


def append(backend, job_id, items, token):
    """Add items to an unsealed items job; ``token`` makes a retry harmless."""
    if backend.job_info(job_id).kind != "items":
        raise Conflict("a range job takes no items")
    limit = backend.config["MAX_RESULT_BYTES"]
    encoded = [encode(item, limit, "item %d", i) for i, item in enumerate(items)]
    out = backend.ops.append(job_id, token, encoded)
    if out.status == "sealed":
        raise Conflict("the job is sealed; it takes no more items")
    if out.status == "closed":
        raise Conflict("the job is %s; it takes no more items" % out.state)
    return {"added": len(items), "first_id": out.first_id, "total": out.total}


def seal(backend, job_id):
    sync_active(backend, job_id, backend.ops.seal(job_id))
    return status(backend, job_id)


def retry_dead(backend, job_id, task=None):
    """Every dead task, or only ``task``, back to pending with fresh attempts."""
    out = backend.ops.retry_dead(job_id, task)
    if out.status == "not_dead":
        raise Conflict("task %d of job %s is not dead" % (task, job_id))
    if out.status == "conflict":
        raise Conflict("the job is %s" % out.state)
    sync_active(backend, job_id, out.state)
    if out.moved:
        webhooks.rewatch(backend, job_id)
    return {"retried": out.moved, "state": out.state}


def require(backend, job_id):
    if not backend.redis.exists(backend.keys.job_key(job_id, "meta")):
        raise NotFound("no such job: %s" % job_id)


def iter_hash(backend, job_id, name, batch=1000):
    """Values of one of a job's hashes, without loading it whole."""
    key = backend.keys.job_key(job_id, name)
    for _field, value in backend.redis.hscan_iter(key, count=batch):
        yield value


def workers(backend, job_id):
    """Per-worker figures; leases held and the latest lease come from the
    lease records themselves, so leasing never has to update a worker."""
    require(backend, job_id)
    r = backend.redis
    sec, usec = r.time()  # (not in the pipeline: a cluster pipeline takes only keyed commands)
    with r.pipeline(transaction=False) as pipe:
        pipe.hgetall(backend.keys.job_key(job_id, "workers"))
        pipe.hvals(backend.keys.job_key(job_id, "leases"))
        raw, records = pipe.execute()
    now = sec * 1000 + usec // 1000
    held, leased_at = {}, {}
    for record in records:
        _any, created, _ids, name = record.split("|", 3)
        held[name] = held.get(name, 0) + 1
        leased_at[name] = max(leased_at.get(name, 0), int(created))
    out = []
    for name in sorted(set(raw) | set(held)):
        w = json.loads(raw[name]) if name in raw else {"d": 0, "f": 0, "x": 0, "s": 0, "r": 0, "rt": now}
        out.append({"worker": name, "done": w["d"], "failed": w["f"], "expired": w["x"],
                    "leases": held.get(name, 0),
                    "last_seen": max(w["s"], leased_at.get(name, 0)) / 1000.0,
                    "rate": round(decayed_rate(w["r"], w["rt"], now), 3)})
    return {"workers": out}
