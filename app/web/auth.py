"""Bearer tokens and roles.

Two roles: ``admin`` may do everything, ``worker`` may only lease, heartbeat,
complete and release. Tokens are compared in constant time against every
configured token (no early exit on the first match), so neither a token's
content nor its position leaks through timing. With no token configured at
all the server runs open, and says so.

A per-job token (``jmt.<job>.<secret>``, app/domain/tokens.py) is a worker
token *scoped* to one job: the request's scope is decided with its role,
once (:func:`authenticate`), and every route that touches a job asks
:func:`require_job` (the lease route: :func:`lease_job`) before it changes
anything, so a scoped token used on another job is a 403 that changed
nothing. A scoped token is honoured (and an unknown one refused) even when
the server runs open: a pod given a job's token never acts on another job.
"""
import functools
import hmac
import logging

from flask import current_app, g, request

from ..config import split_tokens
from ..domain import tokens as job_tokens
from ..errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

ADMIN = "admin"
WORKER = "worker"


class TokenSet:
    def __init__(self, admin_tokens, worker_tokens, lookup=None):
        self.admin = [t.encode() for t in admin_tokens]
        self.worker = [t.encode() for t in worker_tokens]
        # per-job token -> its job id, or None (unknown, expired, job gone)
        self.lookup = lookup or (lambda token: None)

    @property
    def open(self):
        return not self.admin and not self.worker

    def role_of(self, token):
        """Return the role a presented token grants, or None."""
        presented = token.encode()
        is_admin = False
        for t in self.admin:
            is_admin |= hmac.compare_digest(presented, t)
        is_worker = False
        for t in self.worker:
            is_worker |= hmac.compare_digest(presented, t)
        if is_admin:
            return ADMIN
        if is_worker:
            return WORKER
        return None


def init_app(app):
    def lookup(token):
        return job_tokens.job_of_token(app.extensions["jobmaster.backend"], token)

    tokens = TokenSet(split_tokens(app.config["ADMIN_TOKENS"]),
                      split_tokens(app.config["WORKER_TOKENS"]), lookup)
    app.extensions["jobmaster.tokens"] = tokens
    if tokens.open:
        log.warning("AUTH IS OFF: no JOBMASTER_ADMIN_TOKENS or JOBMASTER_WORKER_TOKENS "
                    "configured; anyone who can reach this server may do everything")


def auth_mode():
    return "open" if current_app.extensions["jobmaster.tokens"].open else "tokens"


def role_for(tokens, header):
    """``(role, scope)`` an ``Authorization`` header grants: scope is the job
    of a per-job token, else None (ADMIN, None when auth is off); or
    Unauthorized."""
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if token and job_tokens.looks_scoped(token):
        job_id = tokens.lookup(token)
        if job_id is None:
            raise Unauthorized("unknown or expired job token")
        return WORKER, job_id
    if tokens.open:
        return ADMIN, None
    if not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    role = tokens.role_of(token)
    if role is None:
        raise Unauthorized("unknown token")
    return role, None


# environ key of a request's authentication outcome: its role, or the
# Unauthorized it raised. A request is authenticated once, whoever asks
# first (the early lease before Flask, or the view's decorator).
_AUTH = "jobmaster.auth"


def authenticate(environ, tokens):
    """The role this request's token grants; raises Unauthorized. Decided
    once per request (with its scope, :func:`scope_of`) and remembered in
    ``environ``."""
    outcome = environ.get(_AUTH)
    if outcome is None:
        try:
            outcome = role_for(tokens, environ.get("HTTP_AUTHORIZATION", ""))
        except Unauthorized as err:
            outcome = err
        environ[_AUTH] = outcome
    if isinstance(outcome, Unauthorized):
        raise outcome
    return outcome[0]


def scope_of(environ):
    """The one job this request's token is for, or None (any job)."""
    outcome = environ.get(_AUTH)
    return outcome[1] if isinstance(outcome, tuple) else None


def require_job(environ, job_id):
    """Forbidden unless this request's token may act on job ``job_id`` (a
    per-job token only on its own job). Call it, after authentication,
    before anything is changed: every route of one job (heartbeat,
    complete, release, files) does."""
    scope = scope_of(environ)
    if scope is not None and scope != job_id:
        raise Forbidden("this token is for job %s only" % scope)
    return job_id


def lease_job(environ, job_id):
    """The job a lease request may lease from: the one it names (which a
    per-job token's must be), or a per-job token's own when it names none."""
    scope = scope_of(environ)
    if job_id is None:
        return scope
    return require_job(environ, job_id)


def check_role(granted, role):
    """Forbidden unless ``granted`` may act as ``role`` (admin always may)."""
    if role == ADMIN and granted != ADMIN:
        raise Forbidden("this needs an admin token")


def requires(role):
    """Decorate a view so it needs ``role`` (admin always passes)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            granted = authenticate(request.environ, current_app.extensions["jobmaster.tokens"])
            check_role(granted, role)
            g.role = granted
            return view(*args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorate
