"""The Lua operations and their typed wrappers.

Each ``app/store/lua/<name>.lua`` is one atomic operation with a header naming its
KEYS, ARGV and return value. ``lib.lua`` holds the functions they share and is
put in front of each script when it is registered, so the operations stay
small while the logic lives in one place.

Every call goes through redis-py (its ``Script``: EVALSHA, and SCRIPT LOAD
again when Redis has forgotten the script after a restart), on the same
client and pool as every other command, single Redis or Cluster alike: the
per-job keys share the hash tag ``{<job>}``, so the cluster client sends a
script to the one node that owns its slot.

:class:`Operations` has one method per Lua file. It names the script's keys
(the job's, from :mod:`.keys`), puts the arguments in the order the script's
header gives, and turns the positional reply into one of the objects in
:mod:`.replies`; a ``{'missing'}`` reply becomes :class:`NotFound` here, once.
Nothing outside this package reads a reply by position.
"""
import itertools
import os

from redis.exceptions import NoScriptError, ResponseError

from ..errors import NotFound
from . import replies as R

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")

OPERATIONS = ("create", "stage", "append", "seal", "lease", "heartbeat", "complete",
              "release", "status", "set_state", "retry_dead", "delete",
              "archive_take", "archive_ack", "fleet", "series", "task")


def _read(name):
    with open(os.path.join(LUA_DIR, name + ".lua"), encoding="utf-8") as fh:
        return fh.read()


def _missing(job_id):
    return NotFound("no such job: %s" % job_id)


class Scripts:
    """The registered scripts of one Redis client, by operation name."""

    def __init__(self, client):
        lib = _read("lib")
        self.client = client
        self._scripts = {name: client.register_script(lib + "\n" + _read(name))
                         for name in OPERATIONS}

    def run(self, name, keys, args, client=None):
        """Run operation ``name`` on one job's ``keys`` (queued, if ``client``
        is a pipeline: see :meth:`execute`)."""
        return self._scripts[name](keys=keys, args=args, client=client or self.client)

    def execute(self, pipe):
        """Execute a pipeline of scripts; if Redis has forgotten them (a
        restart, a new cluster node), load them all and run it once more
        (every script is safe to re-run)."""
        try:
            return pipe.execute()
        except (NoScriptError, ResponseError) as err:
            if "NOSCRIPT" not in str(err) and not isinstance(err, NoScriptError):
                raise
        self.load()
        return pipe.execute()

    def load(self):
        """SCRIPT LOAD every operation (on every primary of a cluster)."""
        for script in self._scripts.values():
            script.sha = self.client.script_load(script.script)


class Operations:
    """One typed wrapper per Lua operation, on one job at a time."""

    def __init__(self, scripts, keys, reclaim_limit):
        self.scripts = scripts
        self.keys = keys
        self.reclaim_limit = reclaim_limit

    def _run(self, name, job_id, args, client=None):
        return self.scripts.run(name, self.keys.job(job_id), args, client)

    def _checked(self, name, job_id, args):
        reply = self._run(name, job_id, args)
        if reply[0] == "missing":
            raise _missing(job_id)
        return reply

    def create(self, job_id, name, kind, start, total, sealed, batch_size, lease_ms,
               max_attempts, priority, params, items=(), outbox=0, command=""):
        """The new job's state, or None when it already existed (a re-run).
        ``outbox``: what its results are handed to (lib.lua: 0 nothing, 1 the
        archive, 2 the result hook alone). ``command``: the job's raw JSON
        command, or '' for none."""
        reply = self._run("create", job_id, [name, kind, start, total, 1 if sealed else 0,
                                             batch_size, lease_ms, max_attempts, priority,
                                             params, outbox, command, *items])
        return reply[1] if reply[0] == "ok" else None

    def stage(self, job_id, first, ttl_seconds, items):
        """Store ``items`` as ids first.. of a job not created yet, expiring
        after ``ttl_seconds`` unless create (kind 'staged') keeps them.
        False when the job already exists (nothing stored)."""
        return self._run("stage", job_id, [first, ttl_seconds, *items])[0] == "ok"

    def append(self, job_id, token, items):
        return R.Appended(self._checked("append", job_id, [token, *items]))

    def seal(self, job_id):
        """The job's state after sealing."""
        return self._checked("seal", job_id, [])[1]

    def status(self, job_id, client=None):
        """A :class:`replies.Status`; with a pipeline ``client``, queue the
        call and decode its raw reply later with :meth:`status_of`."""
        if client is not None:
            return self._run("status", job_id, [self.reclaim_limit], client)
        return R.Status(self._checked("status", job_id, [self.reclaim_limit]))

    @staticmethod
    def status_of(reply):
        """A queued status call's reply: a Status, or None (no such job)."""
        return None if reply[0] == "missing" else R.Status(reply)

    def set_state(self, job_id, action):
        return R.Outcome(self._checked("set_state", job_id, [action]))

    def retry_dead(self, job_id, task=None):
        """Every dead task, or only ``task`` (an int)."""
        return R.Retried(self._checked("retry_dead", job_id,
                                       ["" if task is None else "%d" % task]))

    def fleet_save(self, job_id, ref, record):
        """Record a launch (JSON text); an :class:`Outcome` ('conflict' when
        the job is finished: nothing recorded)."""
        return R.Outcome(self._checked("fleet", job_id, ["save", ref, record]))

    def fleet_drop(self, job_id, ref):
        return R.Outcome(self._checked("fleet", job_id, ["drop", ref]))

    def series_recent(self, job_id, client=None):
        """A :class:`replies.SeriesRecent`; with a pipeline ``client``, queue
        it and decode the raw reply with :meth:`series_recent_of`."""
        if client is not None:
            return self._run("series", job_id, ["recent"], client)
        return R.SeriesRecent(self._checked("series", job_id, ["recent"]))

    @staticmethod
    def series_recent_of(reply):
        return None if reply[0] == "missing" else R.SeriesRecent(reply)

    def series_points(self, job_id, resolution=""):
        """A :class:`replies.SeriesPoints` ('' picks the resolution)."""
        return R.SeriesPoints(self._checked("series", job_id, ["points", resolution]))

    def task(self, job_id, task_id):
        return R.TaskView(self._checked("task", job_id, ["%d" % task_id]))

    def delete(self, job_id, only_if_archived=False):
        """``ok``, ``missing``, or (``only_if_archived``) ``backlog``: its
        outbox still holds something, and nothing was deleted."""
        return self._run("delete", job_id, ["1" if only_if_archived else "0"])[0]

    def archive_take(self, job_id, consumer, count, claim_ms):
        """A :class:`replies.Taken` batch of the job's outbox, or None (no
        job, or no outbox)."""
        reply = self._run("archive_take", job_id, [consumer, count, claim_ms])
        return None if reply[0] == "missing" else R.Taken(reply)

    def archive_ack(self, job_id, entries):
        """Acknowledge archived outbox entries, ``(entry id, results it held)``
        pairs; an :class:`replies.Acked`."""
        return R.Acked(self._run("archive_ack", job_id,
                                 list(itertools.chain.from_iterable(entries))))

    def heartbeat(self, job_id, lease_id, lease_ms, max_ms):
        """Extend to ``lease_ms`` (0: the job's), never past the job's own
        lease length nor ``max_ms``."""
        return R.Heartbeat(self._checked("heartbeat", job_id,
                                         [lease_id, lease_ms, self.reclaim_limit, max_ms]))

    def release(self, job_id, lease_id):
        """How many tasks went back to pending."""
        return self._checked("release", job_id, [lease_id])[1]

    def lease(self, job_id, requests):
        """One :class:`replies.Lease` per ``(lease id, worker, max tasks,
        any-job flag)`` request, in order (one combined call)."""
        replies = self._run("lease", job_id, [self.reclaim_limit,
                                              *itertools.chain.from_iterable(requests)])
        if replies and replies[0] == "missing":
            return [R.MISSING] * len(requests)
        return [R.lease(reply) for reply in replies]

    def complete(self, job_id, lease_id, worker, release, next_lease_id, next_max, results):
        """Record ``results`` ((task id, ok, JSON result or error text)
        triples); a :class:`replies.Completed` with the next lease, if asked."""
        args = [lease_id, worker, 1 if release else 0, self.reclaim_limit,
                next_lease_id or "", next_max, len(results)]
        args.extend(itertools.chain.from_iterable(results))
        return R.Completed(self._checked("complete", job_id, args))
