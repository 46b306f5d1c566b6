"""EVALSHA on a share of the client's one pool, held between calls.

Every script call of a single Redis goes through here (a Cluster's go
through redis-py's cluster client, which routes them). The connections are
the pool's own (made and counted by it, patient reads and all, see
:mod:`.connection`); what this saves is checking one out and back in per
call. Under gevent that checkout is most of what a call costs the app:
measured in one gevent-patched process against a local Redis
(docs/bench/NOTES.md, "a checkout cache"), a PING through ``Redis.ping()``
211 µs of CPU, through ``get_connection``/``send_packed_command``/
``read_response``/``release`` 158 µs, the same on a connection already in
hand 28 µs. Only public redis-py APIs are used (and hiredis's ``pack_command``).

The runner takes connections from the pool as calls need them, up to its
*share* (all but a quarter of the pool), and keeps them: a call takes an
idle one, a slot of the share bounds how many calls run at once, and a call
that finds every slot taken waits for one (as long as the pool would, and
not at all while Redis is silent: ``StallAwarePool.queued``). The other
quarter stays in the pool for plain commands. An earlier version kept only
8 idle and gave the rest back: under a 1,000-pod swarm (~250 calls at once
per process) most calls then checked a connection out and back in.

Errors are handled as redis-py handles them: a connection error disconnects
the connection and the call is retried on it, reconnected, by the client's
own ``Retry`` (every script is safe to re-run); a script Redis no longer
knows (it restarted) is loaded again, on the same connection; anything else,
a timeout included, disconnects the connection (its state is unknown; it
connects again on its next use) and is raised.
"""
import os
import time

import hiredis
from redis.exceptions import ConnectionError, NoScriptError

from .concurrency import semaphore


class Runner:
    def __init__(self, client):
        self.pool = client.connection_pool
        self.retry = client.get_retry()
        size = self.pool.max_connections
        self.share = max(1, size - max(1, size // 4))
        # a connection idle this long is health-checked (PING) before use,
        # as redis-py does for its own (health_check_interval)
        self.idle_check = self.pool.connection_kwargs.get("health_check_interval") or 0
        self._reset()

    def _reset(self):
        self.pid = os.getpid()
        self.idle = []  # (connection, when it was last used)
        self.slots = semaphore(self.share, bounded=True)

    def _wait_for_slot(self):
        if not self.slots.acquire(timeout=self.pool.timeout):
            raise ConnectionError("No connection available.")

    def _take(self):
        """A connection and when it was last used (None: new), holding a slot."""
        if os.getpid() != self.pid:  # forked: never share a parent's socket
            self._reset()
        if not self.slots.acquire(blocking=False):
            self.pool.queued(self._wait_for_slot, lambda _got: self.slots.release())
        try:
            if self.idle:
                return self.idle.pop()
            return self.pool.get_connection(), None
        except BaseException:
            self.slots.release()
            raise

    def _give(self, conn):
        if os.getpid() == self.pid:
            self.idle.append((conn, time.monotonic()))
            self.slots.release()

    def evalsha(self, script, keys, args):
        """The reply of ``script`` (a redis-py ``Script``) on ``keys`` and ``args``."""
        conn, used = self._take()
        try:
            if self.idle_check and used is not None and time.monotonic() - used > self.idle_check:
                conn.check_health()
            return self._call(conn, script, keys, args)
        except BaseException:
            conn.disconnect()  # unknown state: never reuse it as it is
            raise
        finally:
            self._give(conn)

    def _call(self, conn, script, keys, args):
        def once():
            # hiredis's packer straight: redis-py's wrapper around it walks every
            # argument in Python first (a complete of 100 results has 300+),
            # for argument types this app never sends
            packed = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
            conn.send_packed_command([packed], check_health=False)
            return conn.read_response()

        try:
            return self.retry.call_with_retry(once, lambda _err: conn.disconnect())
        except NoScriptError:
            # loaded on this same connection: through the client it would take
            # a second one from the pool, and callers that each hold one while
            # waiting for another (a fresh Redis, a full pool) wait for ever
            conn.send_command("SCRIPT", "LOAD", script.script, check_health=False)
            script.sha = conn.read_response()
            return self.retry.call_with_retry(once, lambda _err: conn.disconnect())

    def close(self):
        while self.idle:
            self.pool.release(self.idle.pop()[0])
