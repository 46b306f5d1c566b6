"""Lease requests meet Redis before Flask builds them.

A lease waits for its (combined) Redis call, and while it waits its greenlet
is parked and the process serves other requests. Parked inside the view it
holds a whole Flask request across that switch (request context, request
object, hooks' state), interleaved with a dozen others, and ran slower:
measured through nginx on the bench machine (2-s alternating A/B runs, 14
rounds each), machine CPU per lease 854 -> 771 µs and lease÷healthz 0.71
-> 0.82 when the lease was made here first.

So this WSGI middleware leases for ``POST /api/v1/lease`` *before* Flask sees
the request, after the same checks the view makes first (a worker's token, a
body of known length within the limit, the schema, the job id if one is
named) and with the same function the view calls (``leases.lease``). Flask
then handles the request as always (hooks, auth, metrics); the view finds
the answer (or the error the lease raised) in the environ and responds with
it, without reading the body again. A request that fails a check goes the
ordinary way and gets the usual error: a request the view would refuse never
leases anything. A check added to the lease route must be added to
``_checked`` as well.
"""
from .. import metrics
from ..domain import leases
from . import schemas
from .auth import role_for
from .validation import parse_body, take_body

PATH = "/api/v1/lease"
KEY = "jobmaster.early_lease"  # environ key of the Early made for a request


class Early:
    """What the lease call made for one request gave: its answer, or the
    exception it raised."""

    __slots__ = ("_answer", "_error")

    def __init__(self, answer=None, error=None):
        self._answer, self._error = answer, error

    def answer(self):
        """The answer; raises what the call raised, as if the view had made it."""
        if self._error is not None:
            raise self._error
        return self._answer


class EarlyLease:
    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.backend = app.extensions["jobmaster.backend"]
        self.tokens = app.extensions["jobmaster.tokens"]
        self.limit = app.config.get("MAX_CONTENT_LENGTH")

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "POST":
            metrics.mark_start(environ)  # the request's latency includes the lease
            self._lease(environ)
        return self.wsgi_app(environ, start_response)

    def _lease(self, environ):
        request = self._checked(environ)
        if request is None:
            return
        job_id, worker, max_tasks, key = request
        try:
            environ[KEY] = Early(leases.lease(self.backend, worker, max_tasks, job_id, key))
        except Exception as err:
            environ[KEY] = Early(error=err)

    def _checked(self, environ):
        """(job id or None, worker, max tasks, idempotency key) of a lease
        request the view would accept, else None."""
        try:
            role_for(self.tokens, environ.get("HTTP_AUTHORIZATION", ""))
            raw = take_body(environ, self.limit)
            if raw is None:
                return None
            return leases.lease_request(parse_body(raw, schemas.LEASE_REQUEST), environ)
        except Exception:  # refused, or odder: the view gives its usual answer
            return None


def take(environ):
    """The Early made for this request before Flask saw it, or None."""
    return environ.pop(KEY, None)


def init_app(app):
    app.wsgi_app = EarlyLease(app.wsgi_app, app)
