"""The outbox drainer: moves accepted results and failed attempts from each
job's Redis stream (``outbox``, app/store/keys.py) into MongoDB, and hands
results to the result hook.

Every server process runs one (a greenlet under gevent, a thread otherwise),
started in the process that serves, after fork: nothing depends on any one
of them. They share the work through the stream's consumer group: a batch
taken by a drainer stays pending until acknowledged, and one left pending
for ARCHIVE_CLAIM_SECONDS (its drainer was killed, or MongoDB refused the
write) is taken over by whichever drainer looks next (XAUTOCLAIM). A batch
is acknowledged and deleted from Redis only after MongoDB has it, so a
result is in Redis, in MongoDB, or briefly in both, and never in neither.

Which jobs to look at comes from the global ``archiving`` index (a zset of
"next look" times), which only Python touches, so no per-job script crosses
a Redis Cluster slot.
"""
import importlib
import logging
import os
import random
import threading
import time

from .. import metrics
from ..store.concurrency import cooperative
from .archive import ArchiveUnavailable, attempt_doc, result_doc

log = logging.getLogger(__name__)

ACTIVE = ("running", "paused")
ROUND_JOBS = 100  # jobs one round looks at, at most
HOOK_TRIES = 4  # in-process tries of a failing hook before the batch waits for a claim
MAX_BACKOFF = 5.0


class HookFailed(Exception):
    pass


def load_hook(spec):
    """``package.module:function`` -> the function (a bad spec fails at start)."""
    if not spec:
        return None
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError("JOBMASTER_RESULT_HOOK must look like package.module:function")
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    return fn


def now_ms(redis):
    sec, usec = redis.time()
    return sec * 1000 + usec // 1000


class Drainer:
    def __init__(self, backend, archive, hook, config):
        self.backend = backend
        self.archive = archive
        self.hook = hook
        self.batch = config["ARCHIVE_BATCH"]
        self.claim_ms = int(config["ARCHIVE_CLAIM_SECONDS"] * 1000)
        self.idle = config["ARCHIVE_IDLE_SECONDS"]
        self.retention_ms = config["RETENTION_SECONDS"] * 1000
        self.instance = config["INSTANCE"]
        self._pid = None
        self._saved = {}  # job id -> finished_at whose job document this process wrote
        self.stopping = False

    @property
    def consumer(self):
        return "%s:%d" % (self.instance, os.getpid())

    # -- one job -------------------------------------------------------

    def drain_job(self, job_id, claim_ms=None):
        """Archive one batch of ``job_id``'s outbox. Returns ``(entries
        taken, entries left, state, finished_at ms or None)``, or None when the
        job (or its outbox) is gone."""
        claim = self.claim_ms if claim_ms is None else claim_ms
        taken = self.backend.ops.archive_take(job_id, self.consumer, self.batch, claim)
        if taken is None:
            return None
        state, finished, entries = taken.state, taken.finished_ms, taken.entries
        results, attempts, acks = [], [], []
        for entry_id, f in entries:
            n = 0
            if "r" in f:
                lines = f["r"].split("\n")
                results.extend(result_doc(job_id, line) for line in lines)
                n = len(lines)
            elif "a" in f:
                attempts.append(attempt_doc(job_id, f["a"]))
            acks.append((entry_id, n))
        if not entries:
            return 0, taken.waiting, state, finished
        if self.archive is not None:
            if results:
                self.archive.insert("results", results)
            if attempts:
                self.archive.insert("attempts", attempts)
        if self.hook is not None and results:
            self._call_hook([{k: v for k, v in d.items() if k != "_id"} for d in results])
        ack = self.backend.ops.archive_ack(job_id, acks)
        metrics.count_archive("archived", ack.archived)
        return len(entries), ack.waiting, state, finished

    def _call_hook(self, docs):
        delay = 0.5
        for attempt in range(HOOK_TRIES):
            try:
                self.hook(docs)
                return
            except Exception as err:  # the user's code: any exception retries
                metrics.count_archive("hook_errors", 1)
                log.warning("result hook failed (try %d of %d): %r", attempt + 1, HOOK_TRIES, err)
                if attempt + 1 < HOOK_TRIES:
                    time.sleep(delay * random.uniform(0.75, 1.25))
                    delay *= 2
        # Unacknowledged: the batch is taken again after ARCHIVE_CLAIM_SECONDS.
        raise HookFailed("result hook failed %d times" % HOOK_TRIES)

    def drain_all(self, job_id, rounds=1000):
        """Empty one job's outbox now, taking over whatever other drainers
        hold (DELETE and retention need every result archived). Returns the
        entries left (0: all archived)."""
        left = None
        for _ in range(rounds):
            got = self.drain_job(job_id, claim_ms=0)
            if got is None:
                return 0
            taken, left = got[0], got[1]
            if not taken and not left:
                return 0
        return left

    # -- every job -----------------------------------------------------

    def drain_round(self):
        """One look at every due job. Returns the outbox entries archived."""
        r, keys = self.backend.redis, self.backend.keys
        now = now_ms(r)
        due = r.zrangebyscore(keys.archiving, "-inf", now, start=0, num=ROUND_JOBS)
        random.shuffle(due)  # drainers in other processes start elsewhere
        handled = 0
        for job_id in due:
            got = self.drain_job(job_id)
            if got is None:  # its Redis state is gone (deleted or retired)
                r.zrem(keys.archiving, job_id)
                continue
            taken, left, state, finished = got
            handled += taken
            if taken:
                after = 0
            elif left or state in ACTIVE:
                after = self.idle * 1000
            else:
                if self.finished(job_id, finished, now):
                    continue
                after = self.idle * 10000
            r.zadd(keys.archiving, {job_id: now + int(after)}, xx=True)
        return handled

    def finished(self, job_id, finished, now):
        """A finished job whose outbox is empty: write its job document (once
        per process), and past retention remove its Redis state. True when
        it was removed."""
        from . import history

        if self.archive is None:  # a result hook alone: nothing to keep, nothing removed
            return False
        if self._saved.get(job_id) != finished:
            history.save(self.backend, job_id)
            self._saved[job_id] = finished
            if len(self._saved) > 10000:
                self._saved.clear()
        if finished is not None and now - finished >= self.retention_ms:
            return history.retire(self.backend, job_id)
        return False

    # -- the background loop -------------------------------------------

    def ensure_started(self):
        """Start this process's drainer unless it runs already (cheap: a pid
        check; called at start and before requests, so a process forked from
        one that had it starts its own)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        if cooperative():
            import gevent

            gevent.spawn(self._loop)
        else:
            threading.Thread(target=self._loop, name="jobmaster-drainer", daemon=True).start()

    def _loop(self):
        pid = os.getpid()
        failures = 0
        while self._pid == pid and not self.stopping:
            try:
                handled = self.drain_round()
                failures = 0
            except Exception as err:  # MongoDB or Redis away: back off, try again
                failures += 1
                metrics.count_archive("errors", 1)
                if failures & (failures - 1) == 0:  # 1, 2, 4, 8...: a log line, not a flood
                    log.warning("archive drain failed (%d in a row): %s", failures,
                                err if isinstance(err, (ArchiveUnavailable, HookFailed)) else repr(err))
                time.sleep(min(MAX_BACKOFF, 0.05 * 2 ** min(failures, 7)) * random.uniform(0.5, 1.0))
                continue
            time.sleep(self.idle if not handled else 0)
