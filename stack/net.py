"""Loopback ports, process liveness and bounded waiting, for the launcher,
the tests and the load tools alike (one copy of each). Standard library
only: `make stop` runs this with the system's Python, outside the venv."""
import os
import socket
import time


def process_alive(pid):
    """True while ``pid`` exists and is not a zombie (exited, not yet reaped).
    (The client distribution has the same few lines in jobmaster.command:
    neither may import the other, and this one must run without the venv.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def free_port(host="127.0.0.1"):
    """A TCP port on ``host`` that nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.2):
    """True if something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _bindable(port, host="127.0.0.1"):
    try:
        with socket.socket() as s:
            # (as redis-server binds: a port in TIME_WAIT after a stop is free)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        return True
    except OSError:
        return False


def free_cluster_ports(n, first=None):
    """``n`` consecutive free ports whose cluster bus ports (+10000) are free
    too: from ``first`` if they all are, else from wherever they are."""
    bases = ([first] if first else []) + [free_port() for _ in range(200)]
    for base in bases:
        ports = list(range(base, base + n))
        if ports[-1] + 10000 < 65536 and all(_bindable(p) and _bindable(p + 10000)
                                              for p in ports):
            return ports
    raise RuntimeError("no %d free consecutive ports for a Redis Cluster" % n)


def wait_until(predicate, timeout=20.0, interval=0.02, what="condition"):
    """Poll ``predicate`` until it is truthy and return its value; raise
    TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for %s" % what)
        time.sleep(interval)
