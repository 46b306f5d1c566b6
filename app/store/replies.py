"""What the Lua operations answer, decoded: one class per reply shape.

Each class takes the script's raw reply (the list its header describes) and
names its parts, so a change of a script's reply is made here and in the
script, nowhere else. ``status`` is a string wherever a script can answer
more than one outcome.
"""
import itertools


class Lease:
    """One lease request's answer (lease.lua, or complete.lua's ``next``).

    ``status`` is ``ok``, ``wait``, ``done`` or ``missing`` (no such job).
    For ``ok``: ``ids``, ``attempts`` and (items jobs) ``payloads`` are
    parallel sequences of length ``n``; a span lease (fresh range ids) gets a
    ``range`` of ids and first attempts without a list being built. For
    ``wait``: ``wait_ms`` until the first live lease expires or backed-off
    task is due (0: unknown). ``speculative``: the lease is a backup copy of
    a straggler's tasks (a job with ``speculate``; lib.lua).
    """

    __slots__ = ("status", "lease_id", "expires_ms", "lease_ms", "n", "ids", "attempts",
                 "payloads", "wait_ms", "speculative")

    def __init__(self, status, lease_id=None, expires_ms=0, lease_ms=0, n=0, ids=(),
                 attempts=(), payloads=None, wait_ms=0, speculative=False):
        self.status, self.lease_id, self.expires_ms, self.lease_ms = (
            status, lease_id, expires_ms, lease_ms)
        self.n, self.ids, self.attempts, self.payloads, self.wait_ms = (
            n, ids, attempts, payloads, wait_ms)
        self.speculative = speculative


MISSING = Lease("missing")
DONE = Lease("done")


def lease(reply):
    """A :class:`Lease` from one raw per-request lease reply:
    ``{'ok', lid, expires, lease_ms, n, ids..., attempts..., [payloads...]}``,
    ``{'span', lid, expires, lease_ms, n, first}``, ``{'spec', ...}`` (as
    ``ok``, a speculative copy), ``{'wait', why, ms}``,
    ``{'done'}`` or ``{'missing'}``."""
    kind = reply[0]
    if kind == "span":
        n, first = reply[4], reply[5]
        return Lease("ok", reply[1], int(reply[2]), int(reply[3]), n, range(first, first + n),
                     itertools.repeat(1, n))
    if kind == "ok" or kind == "spec":
        n = reply[4]
        end = 5 + 2 * n
        return Lease("ok", reply[1], int(reply[2]), int(reply[3]), n, reply[5:5 + n],
                     reply[5 + n:end], reply[end:end + n] if len(reply) > end else None,
                     speculative=kind == "spec")
    if kind == "wait":
        return Lease("wait", wait_ms=int(reply[2]))
    return DONE if kind == "done" else MISSING


class Taken:
    """archive_take.lua: a drainer's batch of a job's outbox. ``entries`` are
    ``(entry id, {field: value})``; ``waiting`` counts every entry still in
    the outbox, taken by anyone or not."""

    __slots__ = ("state", "finished_ms", "waiting", "entries")

    def __init__(self, reply):
        self.state = reply[1]
        self.finished_ms = int(reply[2]) if reply[2] else None
        self.waiting = int(reply[3])
        self.entries = [(entry_id, dict(zip(fields[::2], fields[1::2])))
                        for entry_id, fields in reply[4:]]


class Acked:
    """archive_ack.lua: results newly counted as archived, entries left."""

    __slots__ = ("archived", "waiting")

    def __init__(self, reply):
        self.archived, self.waiting = int(reply[1]), int(reply[2])


class Status:
    """status.lua: counts derived from the job's structures, and its meta
    hash; ``backoff``: the part of pending backing off (retry_backoff)."""

    __slots__ = ("now_ms", "pending", "leased", "done", "dead", "meta", "backoff")

    def __init__(self, reply):
        self.now_ms, self.pending, self.leased, self.done, self.dead = (
            int(v) for v in reply[1:6])
        self.meta = dict(zip(reply[6::2], reply[7::2]))
        self.backoff = int(self.meta.pop("#backoff", 0))


class Completed:
    """complete.lua: what became of each result; the next lease, if asked."""

    __slots__ = ("status", "bad_id", "accepted", "duplicates", "retried", "dead", "ignored",
                 "released", "any_job", "worker", "next")

    def __init__(self, reply):
        self.status = reply[0]
        self.bad_id = reply[1] if self.status == "bad" else None
        if self.status != "ok":
            return
        (self.accepted, self.duplicates, self.retried, self.dead, self.ignored,
         self.released) = reply[1:7]
        self.any_job = reply[7] == 1
        self.worker = reply[8]
        self.next = lease(reply[9:]) if len(reply) > 9 else None

    def counts(self):
        """The complete answer's counts, as the API names them."""
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "retried": self.retried, "dead": self.dead, "ignored": self.ignored,
                "released": self.released}


class Outcome:
    """``{'ok'|'conflict', state}`` (set_state.lua)."""

    __slots__ = ("status", "state")

    def __init__(self, reply):
        self.status, self.state = reply[0], reply[1]


class Retried:
    """retry_dead.lua: ``{'ok', moved, state}``, ``{'conflict', state}`` or
    ``{'not_dead'}`` (the one task asked for is not dead)."""

    __slots__ = ("status", "moved", "state")

    def __init__(self, reply):
        self.status = reply[0]
        if self.status == "ok":
            self.moved, self.state = int(reply[1]), reply[2]
        else:
            self.moved, self.state = 0, reply[1] if len(reply) > 1 else None


class Appended:
    """append.lua: ``{'ok', first id, total}``, ``{'sealed'}`` or ``{'closed', state}``."""

    __slots__ = ("status", "first_id", "total", "state")

    def __init__(self, reply):
        self.status = reply[0]
        self.first_id = self.total = self.state = None
        if self.status == "ok":
            self.first_id, self.total = int(reply[1]), int(reply[2])
        elif self.status == "closed":
            self.state = reply[1]


class Heartbeat:
    """heartbeat.lua: ``{'ok', expires ms, job state}`` or ``{'lost'}``."""

    __slots__ = ("status", "expires_ms", "job_state")

    def __init__(self, reply):
        self.status = reply[0]
        self.expires_ms = int(reply[1]) if self.status == "ok" else None
        self.job_state = reply[2] if self.status == "ok" else None


class SeriesRecent:
    """series.lua 'recent': done and failed in about the last minute, from
    ``since_ms``; ``t0_ms`` the job's first activity (-1: none yet)."""

    __slots__ = ("now_ms", "t0_ms", "done", "failed", "since_ms")

    def __init__(self, reply):
        self.now_ms, self.t0_ms, self.done, self.failed, self.since_ms = (
            int(v) for v in reply[1:6])


class SeriesPoints:
    """series.lua 'points': ``done`` and ``failed`` per bucket of
    ``width_ms``, from bucket index ``first`` on, at ``resolution``."""

    __slots__ = ("now_ms", "t0_ms", "resolution", "width_ms", "first", "done", "failed")

    def __init__(self, reply):
        self.now_ms, self.t0_ms = int(reply[1]), int(reply[2])
        self.resolution, self.width_ms, self.first = reply[3], int(reply[4]), int(reply[5])
        values = [int(v) for v in reply[6:]]
        self.done, self.failed = values[0::2], values[1::2]


class TaskView:
    """task.lua: one task as stored (``status`` 'no_task' for an id outside
    the job). Absent parts are None; ``lease`` is the raw lease record."""

    __slots__ = ("status", "state", "tries", "fails", "item", "result", "dead", "lease_id",
                 "lease", "expires_ms")

    def __init__(self, reply):
        self.status = reply[0]
        if self.status != "ok":
            return
        parts = [v if v is not False else None for v in reply[1:10]]
        (self.state, self.tries, self.fails, self.item, self.result, self.dead, self.lease_id,
         self.lease, self.expires_ms) = parts
        self.tries, self.fails = int(self.tries), int(self.fails)
