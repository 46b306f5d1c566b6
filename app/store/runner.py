"""EVALSHA on a few connections kept checked out of the client's one pool.

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

At most ``keep`` connections are held idle here (8, and never more than a
quarter of the pool); beyond that a connection goes back to the pool, so
plain commands always find theirs there. Errors are handled as redis-py
handles them: a connection error disconnects the connection and the call is
retried on a fresh one by the client's own ``Retry`` (every script is safe
to re-run); a script Redis no longer knows (it restarted) is loaded again,
on the same connection; anything else, a timeout included, drops the
connection (its state is unknown) and is raised.
"""
import os
import time

import hiredis
from redis.exceptions import NoScriptError


class Runner:
    def __init__(self, client, keep=8):
        self.client = client
        self.pool = client.connection_pool
        self.retry = client.get_retry()
        self.keep = max(1, min(keep, self.pool.max_connections // 4))
        # a connection idle this long is health-checked (PING) before use,
        # as redis-py does for its own (health_check_interval)
        self.idle_check = self.pool.connection_kwargs.get("health_check_interval") or 0
        self._reset()

    def _reset(self):
        self.pid = os.getpid()
        self.idle = []  # (connection, when it was last used)

    def _take(self):
        if os.getpid() != self.pid:  # forked: never share a parent's socket
            self._reset()
        if self.idle:
            conn, used = self.idle.pop()
            if self.idle_check and time.monotonic() - used > self.idle_check:
                conn.check_health()
            return conn
        return self.pool.get_connection()

    def _give(self, conn):
        if len(self.idle) < self.keep and os.getpid() == self.pid:
            self.idle.append((conn, time.monotonic()))
        else:
            self.pool.release(conn)

    def evalsha(self, script, keys, args):
        """The reply of ``script`` (a redis-py ``Script``) on ``keys`` and ``args``."""
        conn = self._take()
        try:
            reply = self._call(conn, script, keys, args)
        except BaseException:
            conn.disconnect()  # unknown state: never reuse it as it is
            self.pool.release(conn)
            raise
        self._give(conn)
        return reply

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
