"""The Lua operations and their typed wrappers.

Each ``app/store/lua/<name>.lua`` is one atomic operation with a header naming its
KEYS, ARGV and return value. the ``lib*.lua`` files (LIBS) hold the functions they share and are
put in front of each script when it is registered, so the operations stay
small while the logic lives in one place.

Every call goes through redis-py (its ``Script``: EVALSHA, and SCRIPT LOAD
again when Redis has forgotten the script after a restart), on the same
client and pool as every other command: on a single Redis through
:class:`.runner.Runner`, which keeps a few of the pool's connections checked
out between calls (a checkout per call cost more than the lease script);
on a Cluster through the cluster client, where the per-job keys share the
hash tag ``{<job>}``, so a script goes to the one node that owns its slot.

:class:`Operations` has one method per Lua file. It names the script's keys
(the job's, from :mod:`.keys`), puts the arguments in the order the script's
header gives, and turns the positional reply into one of the objects in
:mod:`.replies`; a ``{'missing'}`` reply becomes :class:`NotFound` here, once.
Nothing outside this package reads a reply by position.
"""
import itertools
import os

import redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from ..errors import NotFound
from . import replies as R
from .runner import Runner

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")

OPERATIONS = ("create", "stage", "append", "seal", "lease", "heartbeat", "complete",
              "release", "status", "set_state", "retry_dead", "delete",
              "archive_take", "archive_ack", "webhook_mark", "token_issue", "token_check",
              "fleet", "series", "task")


#: What a job hands its accepted results on to (meta ``outbox``; the
#: OUTBOX_* modes of lib_results.lua): nothing (results stay in Redis), the
#: archive (results leave Redis once archived), the result hook alone.
OUTBOX_NONE, OUTBOX_ARCHIVE, OUTBOX_HOOK = 0, 1, 2
#: The error an attempt gets when its lease ran out (lib_tasks.lua return_lease).
EXPIRED_ERROR = "lease expired"

#: The shared functions, in the order they are put in front of every
#: operation (each may use what the ones before it define).
LIBS = ("lib", "lib_results", "lib_tasks", "lib_leasing")


def _read(name):
    with open(os.path.join(LUA_DIR, name + ".lua"), encoding="utf-8") as fh:
        return fh.read()


def _missing(job_id):
    return NotFound("no such job: %s" % job_id)


class Scripts:
    """The registered scripts of one Redis client, by operation name."""

    def __init__(self, client, cluster=False):
        lib = "\n".join(_read(name) for name in LIBS)
        self.client = client
        self.cluster = cluster
        # (a client that never connects computes the SHAs: the app's own may
        # not reach Redis yet; every call names the client it runs on)
        encoder = redis.Redis(decode_responses=True)
        self._scripts = {name: Script(encoder, lib + "\n" + _read(name)) for name in OPERATIONS}
        self.runner = None if cluster else Runner(client)

    def run(self, name, keys, args):
        """Run operation ``name`` on one job's ``keys``."""
        if self.runner is not None:
            return self.runner.evalsha(self._scripts[name], keys, args)
        return self._scripts[name](keys=keys, args=args, client=self.client)

    def run_many(self, name, calls):
        """Run operation ``name`` once per ``(keys, args)``, pipelined; the
        raw replies in order. On a cluster the calls are grouped by the node
        that owns each job's slot, one pipeline per node (redis-py's cluster
        pipeline takes no scripts); a group whose node moved or failed is
        re-run call by call through the cluster client, which follows the
        redirections."""
        script = self._scripts[name]
        if not self.cluster:
            with self.client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    script(keys=keys, args=args, client=pipe)
                return pipe.execute()  # (redis-py loads the script first if Redis lacks it)
        groups = {}
        for i, (keys, _args) in enumerate(calls):
            groups.setdefault(self.client.get_node_from_key(keys[0]).name, []).append(i)
        replies = [None] * len(calls)
        for name_, idx in groups.items():
            node = self.client.get_node(node_name=name_)
            try:
                self._load_on(node)
                with self.client.get_redis_connection(node).pipeline(transaction=False) as pipe:
                    for i in idx:
                        pipe.evalsha(script.sha, len(calls[i][0]), *calls[i][0], *calls[i][1])
                    for i, reply in zip(idx, pipe.execute()):
                        replies[i] = reply
            except RedisError:
                for i in idx:
                    replies[i] = script(keys=calls[i][0], args=calls[i][1], client=self.client)
        return replies

    def _load_on(self, node):
        """Make sure ``node`` knows every script (a new or promoted node may not)."""
        conn = self.client.get_redis_connection(node)
        shas = [s.sha for s in self._scripts.values()]
        if not all(conn.script_exists(*shas)):
            for script in self._scripts.values():
                conn.script_load(script.script)


class Operations:
    """One typed wrapper per Lua operation, on one job at a time."""

    def __init__(self, scripts, keys, reclaim_limit):
        self.scripts = scripts
        self.keys = keys
        self.reclaim_limit = reclaim_limit

    def _run(self, name, job_id, args):
        return self.scripts.run(name, self.keys.job(job_id), args)

    def _checked(self, name, job_id, args):
        reply = self._run(name, job_id, args)
        if reply[0] == "missing":
            raise _missing(job_id)
        return reply

    def create(self, job_id, name, kind, start, total, sealed, batch_size, lease_ms,
               max_attempts, priority, params, extra=(), items=(), outbox=0):
        """The new job's state, or None when it already existed (a re-run).
        ``extra``: the optional settings' meta field/value pairs, flat;
        ``outbox``: what its results are handed to (lib.lua: 0 nothing, 1 the
        archive, 2 the result hook alone)."""
        reply = self._run("create", job_id, [name, kind, start, total, 1 if sealed else 0,
                                             batch_size, lease_ms, max_attempts, priority,
                                             params, outbox, len(extra) // 2, *extra, *items])
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

    def status(self, job_id):
        return R.Status(self._checked("status", job_id, [self.reclaim_limit]))

    def status_many(self, job_ids):
        """One :class:`replies.Status` per job, pipelined; None for a job
        that no longer exists."""
        replies = self.scripts.run_many(
            "status", [(self.keys.job(job_id), [self.reclaim_limit]) for job_id in job_ids])
        return [None if reply[0] == "missing" else R.Status(reply) for reply in replies]

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

    def series_recent(self, job_id):
        """A :class:`replies.SeriesRecent`."""
        return R.SeriesRecent(self._checked("series", job_id, ["recent"]))

    def series_recent_many(self, job_ids):
        """One :class:`replies.SeriesRecent` per job, pipelined (None: no such job)."""
        replies = self.scripts.run_many("series", [(self.keys.job(job_id), ["recent"])
                                                   for job_id in job_ids])
        return [None if reply[0] == "missing" else R.SeriesRecent(reply) for reply in replies]

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

    def webhook_mark(self, job_id, seq, state, error):
        """Record a webhook delivery attempt for finish ``seq``: the attempts
        so far, or None when the job was revived since (or is gone)."""
        reply = self._run("webhook_mark", job_id, [seq, state, error])
        return reply[1] if reply[0] == "ok" else None

    def token_issue(self, job_id, digest, ttl_ms):
        """Store a per-job token's digest; its expiry in ms (NotFound: no job)."""
        return int(self._checked("token_issue", job_id, [digest, ttl_ms])[1])

    def token_check(self, job_id, digest):
        """True while a per-job token is live (never for a job that is gone)."""
        return self._run("token_check", job_id, [digest])[0] == "ok"

    def complete(self, job_id, lease_id, worker, release, next_lease_id, next_max, results):
        """Record ``results`` ((task id, ok, JSON result or error text)
        triples); a :class:`replies.Completed` with the next lease, if asked."""
        args = [lease_id, worker, 1 if release else 0, self.reclaim_limit,
                next_lease_id or "", next_max, len(results)]
        args.extend(itertools.chain.from_iterable(results))
        return R.Completed(self._checked("complete", job_id, args))
