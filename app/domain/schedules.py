"""Recurring jobs (docs/contract.md §9): a cron expression in a time zone creates
a job from a stored job body at each slot.

Each schedule is one hash (``sched`` in app/store/keys.py); the global
``schedules`` index holds schedule id -> its next slot (ms), so the
background loop of every process (app/background.py) finds the due ones
with one ZRANGEBYSCORE. For a due schedule a process takes the slot's guard
(``SET NX PX`` on the schedule and slot, so of all processes of all
instances one goes on); the slot's job id is derived from the schedule and
the slot, and making a job of an id that exists makes nothing, so even a
process that dies after taking the guard (it expires) cannot cause a
second job: whoever retries makes the same one. A slot missed while
everything was down runs once when it is back (the latest missed slot,
not each of them), and the next slot is the first one after now. Nothing
touches a schedule's keys and the global index in one command (Redis
Cluster).
"""
import datetime
import hashlib
import json
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..errors import BadRequest, NotFound
from . import jobs

#: Schedules one process handles per round.
ROUND = 20
#: How long a slot's guard holds while its job is made (then it is kept
#: for a week, so the slot's claim stays visible).
GUARD_MS = 60_000
GUARD_KEEP_MS = 7 * 86400 * 1000


def _zone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BadRequest("body.timezone: unknown time zone %r" % str(name)[:80]) from None


def check_cron(expr):
    """BadRequest unless ``expr`` is a 5-field cron expression croniter parses."""
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise BadRequest("body.cron: %r is not a cron expression (5 fields: minute hour "
                         "day-of-month month day-of-week)" % expr[:80])


def next_slot(cron, tz, after_ms):
    """The first slot strictly after ``after_ms`` (epoch ms)."""
    start = datetime.datetime.fromtimestamp(after_ms / 1000.0, _zone(tz))
    return int(croniter(cron, start).get_next(datetime.datetime).timestamp() * 1000)


def last_slot(cron, tz, now_ms):
    """The latest slot at or before ``now_ms``."""
    start = datetime.datetime.fromtimestamp(now_ms / 1000.0 + 0.001, _zone(tz))
    return int(croniter(cron, start).get_prev(datetime.datetime).timestamp() * 1000)


def _now_ms(backend):
    sec, usec = backend.redis.time()
    return sec * 1000 + usec // 1000


def create(backend, body):
    """Store a schedule from a validated body; return its document."""
    check_cron(body["cron"])
    tz = body.get("timezone", "UTC")
    _zone(tz)
    try:
        jobs.check(backend, body["job"])
    except BadRequest as err:  # its fields are body.job.*
        raise BadRequest(err.message.replace("body.", "body.job.", 1)) from None
    sid = secrets.token_hex(8)
    now = _now_ms(backend)
    record = {"name": body["name"], "cron": body["cron"], "timezone": tz,
              "job": json.dumps(body["job"], separators=(",", ":")), "created_at": now,
              "next_run": next_slot(body["cron"], tz, now), "last_job": "", "last_slot": ""}
    r, keys = backend.redis, backend.keys
    r.hset(keys.schedule(sid), mapping=record)
    r.zadd(keys.schedules, {sid: record["next_run"]})
    return document(sid, record)


def document(sid, record):
    def seconds(ms):
        return int(ms) / 1000.0 if ms not in (None, "") else None

    return {"id": sid, "name": record["name"], "cron": record["cron"],
            "timezone": record["timezone"], "job": json.loads(record["job"]),
            "created_at": seconds(record["created_at"]), "next_run": seconds(record["next_run"]),
            "last_job": record.get("last_job") or None,
            "last_run": seconds(record.get("last_slot"))}


def _record(backend, sid):
    record = backend.redis.hgetall(backend.keys.schedule(sid))
    if not record:
        raise NotFound("no such schedule: %s" % sid[:80])
    return record


def get(backend, sid):
    return document(sid, _record(backend, sid))


def list_all(backend):
    """Every schedule, soonest next run first; drops index entries of gone ones."""
    r, keys = backend.redis, backend.keys
    out, stale = [], []
    for sid in r.zrange(keys.schedules, 0, -1):
        record = r.hgetall(keys.schedule(sid))
        if record:
            out.append(document(sid, record))
        else:
            stale.append(sid)
    if stale:
        r.zrem(keys.schedules, *stale)
    return out


def delete(backend, sid):
    r, keys = backend.redis, backend.keys
    r.zrem(keys.schedules, sid)
    if not r.delete(keys.schedule(sid)):
        raise NotFound("no such schedule: %s" % sid[:80])
    return {"id": sid, "deleted": True}


def _make_job(backend, sid, record, job_id=None):
    body = dict(json.loads(record["job"]), schedule=sid)
    return jobs.create(backend, body, job_id=job_id)


def run_now(backend, sid):
    """``POST .../run``: a job from the schedule now, outside its slots."""
    record = _record(backend, sid)
    doc = _make_job(backend, sid, record)
    backend.redis.hset(backend.keys.schedule(sid), "last_job", doc["id"])
    return doc


def slot_job_id(sid, slot_ms):
    """The id of the job of one slot: the same whoever makes it."""
    return hashlib.sha256(("%s:%d" % (sid, slot_ms)).encode()).hexdigest()[:16]


def run_due(backend, limit=ROUND):
    """Make the jobs of the schedules whose slot is due; return how many."""
    r, keys = backend.redis, backend.keys
    now = _now_ms(backend)
    made = 0
    for sid in r.zrangebyscore(keys.schedules, "-inf", now, start=0, num=limit):
        record = r.hgetall(keys.schedule(sid))
        if not record:
            r.zrem(keys.schedules, sid)
            continue
        slot = last_slot(record["cron"], record["timezone"], now)
        if record.get("last_slot") != str(slot):
            job_id = slot_job_id(sid, slot)
            guard = keys.schedule_slot(sid, slot)
            if not r.set(guard, job_id, nx=True, px=GUARD_MS):
                # another process is making this slot's job; if it died, its
                # guard expires and the next round makes the (same) job
                continue
            try:
                _make_job(backend, sid, record, job_id)
            except BadRequest:
                pass  # the stored body no longer fits (limits lowered): skip the slot
            r.hset(keys.schedule(sid), mapping={"last_job": job_id, "last_slot": slot})
            r.pexpire(guard, GUARD_KEEP_MS)
            made += 1
        nxt = next_slot(record["cron"], record["timezone"], now)
        r.hset(keys.schedule(sid), "next_run", nxt)
        r.zadd(keys.schedules, {sid: nxt})
    return made
