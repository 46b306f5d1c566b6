"""Loads the Lua scripts once and calls them through typed wrappers.

Each ``app/lua/<name>.lua`` is one atomic operation with a header naming its
KEYS, ARGV and return value. ``lib.lua`` holds the functions they share and is
put in front of each script when it is registered, so the operations stay
small while the logic lives in one place. redis-py's Script runs EVALSHA and
reloads the script by itself after a Redis restart (NOSCRIPT).
"""
import os

LUA_DIR = os.path.join(os.path.dirname(__file__), "lua")


def _read(name):
    with open(os.path.join(LUA_DIR, name + ".lua"), encoding="utf-8") as fh:
        return fh.read()


class Scripts:
    """The registered scripts of one Redis client, by operation name."""

    OPERATIONS = ("create", "append", "seal", "lease", "heartbeat", "complete",
                  "release", "status", "set_state", "retry_dead", "delete")

    def __init__(self, client):
        lib = _read("lib")
        self._scripts = {name: client.register_script(lib + "\n" + _read(name))
                         for name in self.OPERATIONS}

    def run(self, name, keys, args, client=None):
        """Run operation ``name`` on one job's ``keys``."""
        return self._scripts[name](keys=keys, args=args, client=client)
