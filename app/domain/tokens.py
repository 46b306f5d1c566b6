"""Per-job worker tokens (docs/contract.md §9): a worker token valid for one
job only, for a limited time.

A token reads ``jmt.<job id>.<43 random url-safe characters>``: the job id
in it tells the server where to look, and only its SHA-256 is stored, in the
job's own ``tokens`` hash (digest -> expiry in ms of Redis TIME), so a
leaked Redis dump holds no usable token, a check is one script call on the
job's hash slot (token_check.lua), and deleting the job (delete.lua
unlinks every job key) revokes its tokens with it. The digest is what is
compared (a hash lookup of a SHA-256: nothing about the token leaks
through timing).
"""
import hashlib
import re
import secrets

from jobmaster import protocol

from ..errors import BadRequest

PREFIX = "jmt."
_TOKEN = re.compile(r"^jmt\.([0-9a-f]{1,64})\.([A-Za-z0-9_-]{43})$")
DEFAULT_TTL_SECONDS = protocol.DEFAULT_TOKEN_TTL_SECONDS
MAX_TTL_SECONDS = protocol.MAX_TOKEN_TTL_SECONDS


def looks_scoped(token):
    """True for the shape of a per-job token (checked before any lookup)."""
    return token.startswith(PREFIX)


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue(backend, job_id, ttl_seconds=None):
    """A new token for ``job_id``: ``{"token", "job", "expires_at"}``."""
    ttl = DEFAULT_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise BadRequest("body.ttl_seconds: must be more than 0 and at most %d" % MAX_TTL_SECONDS)
    token = "%s%s.%s" % (PREFIX, job_id, secrets.token_urlsafe(32))
    expires = backend.ops.token_issue(job_id, digest(token), max(1, int(ttl * 1000)))
    return {"token": token, "job": job_id, "expires_at": expires / 1000.0}


def job_of_token(backend, token):
    """The job a live per-job token is for, or None (unknown, expired, or
    its job deleted): one script call (token_check.lua)."""
    m = _TOKEN.match(token)
    if not m or not backend.ops.token_check(m.group(1), digest(token)):
        return None
    return m.group(1)


def revoke_all(backend, job_id):
    """Revoke every token of a job: ``{"revoked": n}``."""
    from .jobs import require

    require(backend, job_id)
    key = backend.keys.job_key(job_id, "tokens")
    with backend.redis.pipeline() as pipe:  # one key: MULTI is Cluster-safe
        pipe.hlen(key)
        pipe.delete(key)
        n, _ = pipe.execute()
    return {"revoked": n}
