"""Waiting primitives that fit the process they run in.

The servers run under gevent (wsgi.py patches the standard library before
the app loads); tests and tools may use real threads. Where both must work,
the choice is made here once: gevent's own compiled primitives when threading
is patched (the patched ``threading`` classes are Python code over a patched
Condition, several lock operations per call), ``threading``'s otherwise.
"""
import threading

import gevent.lock
from gevent import monkey


def cooperative():
    """True in a gevent-patched process (the uWSGI and gunicorn workers)."""
    return monkey.is_module_patched("threading")


def semaphore(value, bounded=False):
    """A (bounded) semaphore for this process's kind of concurrency."""
    if cooperative():
        return (gevent.lock.BoundedSemaphore if bounded else gevent.lock.Semaphore)(value)
    return (threading.BoundedSemaphore if bounded else threading.Semaphore)(value)


# For a lock held only over a few list and dict operations, never across a
# greenlet switch: the interpreter's own lock serves threads and greenlets
# alike, without gevent's Python-level acquire.
plain_lock = monkey.get_original("_thread", "allocate_lock")
