"""Loads the Lua scripts once and calls them.

Each ``app/store/lua/<name>.lua`` is one atomic operation with a header naming its
KEYS, ARGV and return value. ``lib.lua`` holds the functions they share and is
put in front of each script when it is registered, so the operations stay
small while the logic lives in one place.

Outside pipelines, scripts run over a small connection stack of their own
(:class:`ScriptRunner`) instead of redis-py's command path: redis-py makes
each connection (handshake, AUTH, SELECT, TLS or UNIX socket, as the URL
says), and then the runner writes the packed EVALSHA to the socket and parses
the reply with a hiredis reader of its own. redis-py's per-command pool
``poll()``, retry wrapper, hooks and parser layers cost more than the lease
script itself on this path (measured: ~115-140 µs of CPU per call through
them, ~55-80 µs straight on the socket, under gevent). The guarantees are the
same: a script unknown after a Redis restart is loaded again, and a broken
connection is dropped and the call retried (every script is safe to re-run).
"""
import os
import socket

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError, NoScriptError, RedisError, TimeoutError

from .concurrency import semaphore

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


def _read(name):
    with open(os.path.join(LUA_DIR, name + ".lua"), encoding="utf-8") as fh:
        return fh.read()


def _pack(sha, keys, args):
    """EVALSHA in RESP (ints, strs and bytes, as the app passes them)."""
    return hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))


_MORE = object()


class _Link:
    """One Redis connection: made by redis-py, then used straight."""

    __slots__ = ("conn", "sock", "reader")

    def __init__(self, conn):
        conn.connect()
        self.conn = conn
        self.sock = conn._sock
        encoding = conn.encoder.encoding if conn.encoder.decode_responses else None
        # Error replies come back as redis-py's own exception types; an
        # incomplete reply as _MORE (redis-py negotiates RESP3, where False
        # is a reply of its own).
        self.reader = hiredis.Reader(encoding=encoding, replyError=BaseParser.parse_error,
                                     notEnoughData=_MORE)

    def call(self, packed):
        sock, reader = self.sock, self.reader
        # send(), not sendall(): gevent's sendall asks the kernel for the
        # send buffer size (a getsockopt) on every call.
        sent = sock.send(packed)
        while sent < len(packed):
            packed = packed[sent:]
            sent = sock.send(packed)
        reply = reader.gets()
        while reply is _MORE:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def close(self):
        self.conn.disconnect()


class ScriptRunner:
    """EVALSHA on up to ``size`` connections of our own, made on demand."""

    ATTEMPTS = 3

    def __init__(self, client, size, timeout):
        self.client = client
        pool = client.connection_pool
        # The pool's own class: TCP, TLS or a UNIX socket, as the URL says.
        self.connection_class = pool.connection_class
        self.kwargs = dict(pool.connection_kwargs)
        self.timeout = timeout
        self.size = size
        self._reset()

    def _reset(self):
        self.pid = os.getpid()
        self.idle = []
        self.slots = semaphore(self.size, bounded=True)

    def evalsha(self, script, keys, args):
        """Run a registered script; one unknown to Redis (restarted) is loaded again."""
        return self._roundtrip(lambda: _pack(script.sha, keys, args), script)

    def command(self, *args):
        """One plain read command (e.g. ZRANGE) over the same lean path."""
        packed = hiredis.pack_command(args)
        return self._roundtrip(lambda: packed)

    def _roundtrip(self, packed, script=None):
        if os.getpid() != self.pid:  # forked: never share a parent's socket
            self._reset()
        if not self.slots.acquire(timeout=self.timeout):
            raise ConnectionError("No connection available.")
        try:
            for attempt in range(self.ATTEMPTS):
                link = self.idle.pop() if self.idle else None
                try:
                    if link is None:
                        link = _Link(self.connection_class(**self.kwargs))
                    reply = link.call(packed())
                except NoScriptError:
                    self.idle.append(link)
                    if script is None:
                        raise
                    script.sha = self.client.script_load(script.script)
                    continue
                except (ConnectionError, TimeoutError, OSError) as err:
                    if link is not None:
                        link.close()
                    if attempt == self.ATTEMPTS - 1:
                        if isinstance(err, socket.timeout):
                            raise TimeoutError("Timeout reading from Redis") from err
                        if not isinstance(err, RedisError):
                            raise ConnectionError("Redis connection error: %s" % err) from err
                        raise
                    continue
                except BaseException:
                    if link is not None:
                        link.close()  # unknown state: never reuse it
                    raise
                self.idle.append(link)
                return reply
            raise ConnectionError("script %s could not be loaded" % script.sha)
        finally:
            self.slots.release()

    def close(self):
        while self.idle:
            self.idle.pop().close()


class Scripts:
    """The registered scripts of one Redis client, by operation name."""

    OPERATIONS = ("create", "append", "seal", "lease", "heartbeat", "complete",
                  "release", "status", "set_state", "retry_dead", "delete", "fleet",
                  "series", "task")

    def __init__(self, client, pool_size=64, pool_timeout=30.0):
        lib = _read("lib")
        self._scripts = {name: client.register_script(lib + "\n" + _read(name))
                         for name in self.OPERATIONS}
        self.runner = ScriptRunner(client, pool_size, pool_timeout)

    def run(self, name, keys, args, client=None):
        """Run operation ``name`` on one job's ``keys`` (in a pipeline if given)."""
        script = self._scripts[name]
        if client is not None:
            return script(keys=keys, args=args, client=client)
        return self.runner.evalsha(script, keys, args)
