"""Loads the Lua scripts once and calls them.

Each ``app/lua/<name>.lua`` is one atomic operation with a header naming its
KEYS, ARGV and return value. ``lib.lua`` holds the functions they share and is
put in front of each script when it is registered, so the operations stay
small while the logic lives in one place.

Outside pipelines, scripts run over a small connection stack of their own
(:class:`ScriptRunner`) instead of redis-py's command path: its pool check
(a ``poll`` syscall per command), retry wrapper and metrics hooks cost more
than the lease script itself on this path. The guarantees are the same:
a script unknown after a Redis restart is loaded again, and a broken
connection is dropped and the call retried (every script is safe to re-run).
"""
import os
import threading

from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

try:
    from hiredis import pack_command as _c_pack
except ImportError:  # pragma: no cover - hiredis is a pinned requirement
    _c_pack = None

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


def _read(name):
    with open(os.path.join(LUA_DIR, name + ".lua"), encoding="utf-8") as fh:
        return fh.read()


def _bulk(value):
    if type(value) is not bytes:
        value = (value if type(value) is str else str(value)).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _pack(sha, keys, args):
    """EVALSHA in RESP (ints, strs and bytes, as the app passes them)."""
    if _c_pack is not None:  # hiredis (pinned in requirements.txt): done in C
        return _c_pack(("EVALSHA", sha, len(keys), *keys, *args))
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)), _bulk(sha),
             _bulk(len(keys))]
    parts += [_bulk(k) for k in keys]
    parts += [_bulk(a) for a in args]
    return b"".join(parts)


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
        # gevent patches threading before the app loads (wsgi.py), so this
        # blocks only the waiting greenlet.
        self.slots = threading.BoundedSemaphore(self.size)

    def evalsha(self, script, keys, args):
        if os.getpid() != self.pid:  # forked: never share a parent's socket
            self._reset()
        if not self.slots.acquire(timeout=self.timeout):
            raise ConnectionError("No connection available.")
        try:
            for attempt in range(self.ATTEMPTS):
                conn = self.idle.pop() if self.idle else self.connection_class(**self.kwargs)
                try:
                    conn.send_packed_command([_pack(script.sha, keys, args)], check_health=False)
                    reply = conn.read_response()
                except NoScriptError:
                    self.idle.append(conn)
                    script.sha = self.client.script_load(script.script)
                    continue
                except (ConnectionError, TimeoutError, OSError):
                    conn.disconnect()
                    if attempt == self.ATTEMPTS - 1:
                        raise
                    continue
                except BaseException:
                    conn.disconnect()  # unknown state: never reuse it
                    raise
                self.idle.append(conn)
                return reply
            raise ConnectionError("script %s could not be loaded" % script.sha)
        finally:
            self.slots.release()

    def close(self):
        while self.idle:
            self.idle.pop().disconnect()


class Scripts:
    """The registered scripts of one Redis client, by operation name."""

    OPERATIONS = ("create", "append", "seal", "lease", "heartbeat", "complete",
                  "release", "status", "set_state", "retry_dead", "delete")

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
