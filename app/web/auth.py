"""Bearer tokens and roles.

Two roles: ``admin`` may do everything, ``worker`` may only lease, heartbeat,
complete and release. Tokens are compared in constant time against every
configured token (no early exit on the first match), so neither a token's
content nor its position leaks through timing. With no token configured at
all the server runs open, and says so.
"""
import functools
import hmac
import logging

from flask import current_app, g, request

from ..config import split_tokens
from ..errors import Forbidden, Unauthorized

log = logging.getLogger(__name__)

ADMIN = "admin"
WORKER = "worker"


class TokenSet:
    def __init__(self, admin_tokens, worker_tokens):
        self.admin = [t.encode() for t in admin_tokens]
        self.worker = [t.encode() for t in worker_tokens]

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
    tokens = TokenSet(split_tokens(app.config["ADMIN_TOKENS"]),
                      split_tokens(app.config["WORKER_TOKENS"]))
    app.extensions["jobmaster.tokens"] = tokens
    if tokens.open:
        log.warning("AUTH IS OFF: no JOBMASTER_ADMIN_TOKENS or JOBMASTER_WORKER_TOKENS "
                    "configured; anyone who can reach this server may do everything")


def auth_mode():
    return "open" if current_app.extensions["jobmaster.tokens"].open else "tokens"


def role_for(tokens, header):
    """The role an ``Authorization`` header grants (ADMIN when auth is off),
    or Unauthorized."""
    if tokens.open:
        return ADMIN
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    role = tokens.role_of(token.strip())
    if role is None:
        raise Unauthorized("unknown token")
    return role


# environ key of a request's authentication outcome: its role, or the
# Unauthorized it raised. A request is authenticated once, whoever asks
# first (the early lease before Flask, or the view's decorator).
_AUTH = "jobmaster.auth"


def authenticate(environ, tokens):
    """The role this request's token grants; raises Unauthorized. Decided
    once per request and remembered in ``environ``."""
    outcome = environ.get(_AUTH)
    if outcome is None:
        try:
            outcome = role_for(tokens, environ.get("HTTP_AUTHORIZATION", ""))
        except Unauthorized as err:
            outcome = err
        environ[_AUTH] = outcome
    if isinstance(outcome, Unauthorized):
        raise outcome
    return outcome


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
