"""Per-job worker tokens (docs/contract.md §9): a worker token valid for one
job only, for a limited time.

A token reads ``jmt.<job id>.<43 random url-safe characters>``: the job id
in it tells the server where to look, and only its SHA-256 is stored, in the
job's own ``tokens`` hash (digest -> expiry in ms of Redis TIME), so a
leaked Redis dump holds no usable token, the lookup is one HGET on the
job's hash slot, and deleting the job (delete.lua unlinks every job key)
revokes its tokens with it. The digest is what is compared (a hash lookup
of a SHA-256: nothing about the token leaks through timing).
"""
import hashlib
import re
import secrets

from jobmaster import protocol

from ..errors import BadRequest, NotFound

PREFIX = "jmt."
_TOKEN = re.compile(r"^jmt\.([0-9a-f]{1,64})\.([A-Za-z0-9_-]{43})$")
DEFAULT_TTL_SECONDS = protocol.DEFAULT_TOKEN_TTL_SECONDS
MAX_TTL_SECONDS = protocol.MAX_TOKEN_TTL_SECONDS


def looks_scoped(token):
    """True for the shape of a per-job token (checked before any lookup)."""
    return token.startswith(PREFIX)


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _now_ms(backend):
    sec, usec = backend.redis.time()
    return sec * 1000 + usec // 1000


def issue(backend, job_id, ttl_seconds=None):
    """A new token for ``job_id``: ``{"token", "job", "expires_at"}``."""
    from .jobs import require

    ttl = DEFAULT_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise BadRequest("body.ttl_seconds: must be more than 0 and at most %d" % MAX_TTL_SECONDS)
    require(backend, job_id)
    token = "%s%s.%s" % (PREFIX, job_id, secrets.token_urlsafe(32))
    expires = _now_ms(backend) + int(ttl * 1000)
    key = backend.keys.job_key(job_id, "tokens")
    backend.redis.hset(key, digest(token), expires)
    if not backend.redis.exists(backend.keys.job_key(job_id, "meta")):
        # deleted while we issued: the token must die with it
        backend.redis.delete(key)
        raise NotFound("no such job: %s" % job_id)
    return {"token": token, "job": job_id, "expires_at": expires / 1000.0}


def job_of_token(backend, token):
    """The job a live per-job token is for, or None (unknown, expired, or
    its job deleted). Expired entries are dropped when met."""
    m = _TOKEN.match(token)
    if not m:
        return None
    job_id = m.group(1)
    key = backend.keys.job_key(job_id, "tokens")
    field = digest(token)
    expires = backend.redis.hget(key, field)
    if expires is None:
        return None
    if int(expires) <= _now_ms(backend):
        backend.redis.hdel(key, field)
        return None
    return job_id


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
