"""The Redis side of one application: client, key builder, scripts.

The pool is a ``BlockingConnectionPool`` (one per node in a cluster): under a
burst, greenlets wait for a free connection (up to REDIS_POOL_TIMEOUT)
instead of failing, and the total stays bounded under Redis ``maxclients``.
redis-py resets pools after fork, so creating it in the factory is safe with
uWSGI's pre-fork model. What restarts, pauses and slow reads do to the
connections: :mod:`.connection`.
"""
import re
from collections import OrderedDict

import gevent
import redis
from flask import current_app

from . import connection
from .combine import Combiner
from .concurrency import cooperative
from ..errors import NotFound
from .keys import Keys
from .scripts import Operations, Scripts

_JOB_ID = re.compile(r"^[0-9a-f]{1,64}$")


class JobInfo:
    """What never changes about a job: read once per process and cached."""

    __slots__ = ("kind", "start", "params", "extra")

    def __init__(self, kind, start, params, task_timeout=None, command=None):
        self.kind = kind
        self.start = int(start)  # a range job's payload is start + id
        self.params = params  # raw JSON text, spliced into lease answers
        # JSON members spliced into every lease answer after params (only
        # those a job has: other leases stay as small as before)
        self.extra = (',"task_timeout":%s' % task_timeout if task_timeout else "") + (
            ',"command":%s' % command if command else "")


class Backend:
    """Redis client, keys and scripts of one application."""

    INFO_CACHE_SIZE = 4096

    def __init__(self, config):
        if config["REDIS_MODE"] not in ("single", "cluster"):
            raise ValueError("JOBMASTER_REDIS_MODE must be single or cluster, not %r"
                             % config["REDIS_MODE"])
        self.redis = connection.client(config)
        # /readyz's own small client: a short timeout, never queued behind requests
        self._probe = connection.client(config, config["REDIS_READY_TIMEOUT"], pool_size=2)
        self.keys = Keys(config["KEY_PREFIX"])
        # Set by app.domain.archive.init_app when configured (the archive,
        # the outbox drainer).
        self.archive = None
        self.drainer = None
        self.scripts = Scripts(self.redis, cluster=config["REDIS_MODE"] == "cluster")
        self.config = config
        self.reclaim_limit = config["RECLAIM_LIMIT"]
        self.ops = Operations(self.scripts, self.keys, self.reclaim_limit)
        self._info = OrderedDict()
        self._gather_s = config["LEASE_GATHER_MS"] / 1000.0
        gather = self._gather if self._gather_s > 0 and cooperative() else None
        # (capped: the script unpacks the group's lease ids in one call)
        self._leases = Combiner(self._run_leases, min(1000, config["LEASE_COMBINE"]), gather)
        self._active = Combiner(self._read_active, config["LEASE_COMBINE"])

    def run(self, operation, job_id, args=()):
        """Run one Lua operation on job ``job_id`` and return its raw reply
        (the domain calls the typed wrappers in ``self.ops``; tests of the
        scripts themselves call this)."""
        return self.scripts.run(operation, self.keys.job(job_id), list(args))

    def lease(self, job_id, lease_id, worker, max_tasks, any_job):
        """One lease request's :class:`replies.Lease`, from a lease script call
        combined with the other requests for this job that this process has in
        flight."""
        return self._leases(job_id, (lease_id, worker, max_tasks, 1 if any_job else 0))

    def _gather(self):
        """Before a combined lease call: wait until this process has nothing
        else to run (the requests it has accepted have parsed their bodies and
        joined the queue), or LEASE_GATHER_MS at most. Under load the groups
        then hold everything that has arrived, not only what came during the
        previous call (measured: half the Redis CPU per lease, and a fifth
        less of the worker's); when idle it costs one turn of the loop."""
        with gevent.Timeout(self._gather_s, False):
            gevent.idle()

    def _run_leases(self, job_id, requests):
        return self.ops.lease(job_id, requests)

    def active_jobs(self):
        """[(job id, priority)] of the running jobs: one read of the index,
        shared by the requests that ask for it at the same time (every lease
        that names no job starts here)."""
        return self._active("active", None)

    def _read_active(self, _key, group):
        # (RESP2 gives tuples, RESP3 lists: one shape for the callers)
        entries = [(job_id, float(priority)) for job_id, priority
                   in self.redis.zrange(self.keys.active, 0, -1, withscores=True)]
        return [entries] * len(group)

    def job_info(self, job_id):
        """The job's immutable facts (kind, start, params), or NotFound."""
        info = self._info.get(job_id)
        if info is None:
            kind, start, params, timeout, command = self.redis.hmget(
                self.keys.job_key(job_id, "meta"), "kind", "start", "params", "task_timeout",
                "command")
            if kind is None:
                raise NotFound("no such job: %s" % job_id)
            info = JobInfo(kind, start, params, timeout, command)
            self._info[job_id] = info
            if len(self._info) > self.INFO_CACHE_SIZE:
                self._info.popitem(last=False)
        return info

    def ping(self):
        """Raise unless Redis answers within REDIS_READY_TIMEOUT (in a
        cluster: every primary, each saying the cluster is ok)."""
        if self.config["REDIS_MODE"] == "cluster":
            # PING answers on a node whose cluster is still forming or has
            # lost a shard; CLUSTER INFO says whether it serves its slots.
            states = self._probe.cluster_info(target_nodes=self._probe.PRIMARIES)
            if "cluster_state" in states:  # (one primary: its own answer)
                states = {"the primary": states}
            down = [node for node, info in states.items() if info.get("cluster_state") != "ok"]
            if down:
                raise redis.exceptions.ConnectionError("cluster not ok on %s" % ", ".join(down))
        else:
            self._probe.ping()

    def close(self):
        if self.drainer is not None:
            self.drainer.stopping = True
        if self.archive is not None:
            self.archive.close()
        if self.scripts.runner is not None:
            self.scripts.runner.close()  # (its idle connections go back first)
        for client in (self.redis, self._probe):
            connection.close(client)


def check_job_id(job_id):
    """Refuse ids that cannot be ours before they reach a key name."""
    if not _JOB_ID.match(job_id or ""):
        raise NotFound("no such job: %s" % (job_id or "")[:80])
    return job_id


def init_app(app):
    app.extensions["jobmaster.backend"] = Backend(app.config)


def backend():
    return current_app.extensions["jobmaster.backend"]
