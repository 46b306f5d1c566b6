"""Lease requests meet Redis before Flask builds them.

A lease waits for its (combined) Redis call, and while it waits its greenlet
is parked and the process serves other requests. Parked inside the view it
holds a whole Flask request across that switch (request context, request
object, hooks' state), interleaved with a dozen others, and ran slower:
measured through nginx on the bench machine (2-s alternating A/B runs, 14
rounds each), machine CPU per lease 854 -> 771 µs and lease÷healthz 0.71
-> 0.82 when the lease was made here first.

So a lease request has one decision, :func:`decide` (token, role, body,
schema, job id, then the lease itself), and this WSGI middleware makes it
for ``POST`` to the lease route *before* Flask sees the request. The view
(app/web/api/workers.py) answers with the outcome it finds in the environ:
the lease, or the error the decision raised. Only a body this middleware
cannot read up front (chunked, or over the size limit) leaves the decision
to the view, which makes the same one with werkzeug's body reader. Either
way every check runs once, in one place: a check added to :func:`decide`
applies to both.
"""
from jobmaster import protocol
from redis.exceptions import RedisError

from .. import metrics
from ..domain import leases
from ..errors import JobmasterError
from .auth import WORKER, authenticate, check_role
from .validation import parse_body, take_body

KEY = "jobmaster.early_lease"  # environ key of the Outcome made for a request


class Outcome:
    """What a lease request's decision gave: its answer, or the error."""

    __slots__ = ("_answer", "_error")

    def __init__(self, answer=None, error=None):
        self._answer, self._error = answer, error

    def answer(self):
        """The answer; raises what the decision raised, as if the view had."""
        if self._error is not None:
            raise self._error
        return self._answer


def decide(app_state, environ, read_body, schema):
    """The whole decision on one lease request, or None when ``read_body``
    cannot give the body (it returns None: the caller reads it otherwise).
    Every refusal is an error of our tree (or Redis's), kept in the Outcome
    so it is answered exactly as if the view had raised it."""
    backend, tokens = app_state
    try:
        check_role(authenticate(environ, tokens), WORKER)
        raw = read_body()
        if raw is None:
            return None
        job_id, worker, max_tasks, key = leases.lease_request(
            parse_body(raw, schema), environ, backend.config["STALE_SECONDS"])
        return Outcome(leases.lease(backend, worker, max_tasks, job_id, key))
    except (JobmasterError, RedisError) as err:
        return Outcome(error=err)


class EarlyLease:
    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app_state = state(app)
        self.schema = app.extensions["jobmaster.schemas"].LEASE_REQUEST
        self.limit = app.config.get("MAX_CONTENT_LENGTH")
        self.path = protocol.lease_path()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == "POST":
            metrics.mark_start(environ)  # the request's latency includes the lease
            outcome = decide(self.app_state, environ,
                             lambda: take_body(environ, self.limit), self.schema)
            if outcome is not None:
                environ[KEY] = outcome
        return self.wsgi_app(environ, start_response)


def state(app):
    """What :func:`decide` needs from an application: (backend, tokens)."""
    return app.extensions["jobmaster.backend"], app.extensions["jobmaster.tokens"]


def take(environ):
    """The Outcome made for this request before Flask saw it, or None."""
    return environ.pop(KEY, None)


def init_app(app):
    app.wsgi_app = EarlyLease(app.wsgi_app, app)
