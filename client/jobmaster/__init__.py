"""The worker-side client of jobmaster: a library and the ``jobmaster`` CLI.

Depends only on requests, click and the standard library (never on Flask,
gevent or redis), so a pod installs just this distribution,
``jobmaster-client`` (``pip install ./client`` from a clone).

- :class:`Client` (``session.py``): one method per HTTP API call, with
  timeouts and retries.
- :class:`Worker` (``worker.py``): the lease/run/report loop.
- ``errors.py``: the typed exceptions.
- ``cli.py``: the ``jobmaster`` command.
"""
from .errors import (APIError, AuthError, BadRequest, ClientError, Conflict, Forbidden,
                     LeaseLost, NotFound, RateLimited, ServerError, TooLarge, TransportError,
                     Unauthorized, Unavailable)
from .session import Client
from .worker import Batch, Task, Worker, WorkerStopped

__all__ = [
    "Client", "Worker", "Batch", "Task", "WorkerStopped",
    "ClientError", "TransportError", "APIError", "BadRequest", "AuthError", "Unauthorized",
    "Forbidden", "NotFound", "Conflict", "LeaseLost", "TooLarge", "RateLimited",
    "Unavailable", "ServerError",
]
