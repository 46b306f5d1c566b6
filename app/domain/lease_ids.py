"""Lease ids that only this server can make: ``<job>.<nonce>.<tag>``.

Whoever holds a lease id may report results, heartbeat and release for it,
so an id must not be guessable from what a worker can see (job ids are
public). The tag is a 64-bit keyed BLAKE2b (RFC 7693's MAC mode) of
``<job>.<nonce>`` under a secret, checked before any script runs: a made-up
id is refused without touching Redis's state. (BLAKE2b rather than
HMAC-SHA256: in the request path, just after a socket wait, an HMAC cost
~20 µs and a keyed BLAKE2b ~5, measured in a gevent worker; a lease and a
complete-with-next make or check three. Ids tagged with HMAC-SHA256 by an
earlier version still verify, so a rolling upgrade loses no lease.) A
process remembers the ids it verified lately, so a complete checks its
lease once however many layers ask.

The secret is ``JOBMASTER_LEASE_SECRET`` when set; otherwise one made once in
Redis (``<prefix>:secret``, SET NX) by the first process that needs it, so
every instance shares it with no configuration. Each process reads it once,
and again at most every REFRESH_SECONDS (and, rate-limited, when a tag does
not verify), so that after Redis lost its data the instances converge on one
secret; a process that finds the key gone puts its own back, so ids already
handed out keep verifying.

With an Idempotency-Key the nonce is derived from the key *and its scope*
(the worker's name for a lease; the completed lease for ``complete ...
next``), so a retry names the same lease while another worker sending the
same key gets a lease of its own.
"""
import hashlib
import hmac
import os
import re
import secrets
import time

from ..errors import NotFound

_LEASE_ID = re.compile(r"^([0-9a-f]{1,64})\.([0-9a-f]{16})\.([0-9a-f]{16})$")
REFRESH_SECONDS = 60.0
RECHECK_SECONDS = 1.0
VERIFIED_KEPT = 10000  # lease ids remembered as verified, per process

# Random nonces (64 bits from os.urandom, as secrets.token_hex(8)), drawn 256
# at a time: one getrandom() per 256 leases instead of one each. A forked
# child starts with none, so no two processes ever share one.
_nonces = []
os.register_at_fork(after_in_child=_nonces.clear)


def _random_nonce():
    try:
        return _nonces.pop()
    except IndexError:
        raw = os.urandom(8 * 256).hex()
        _nonces.extend(raw[i:i + 16] for i in range(0, len(raw), 16))
        return _nonces.pop()


class Signer:
    """Signs and checks lease ids for one application."""

    def __init__(self, backend):
        self.backend = backend
        configured = backend.config.get("LEASE_SECRET") or ""
        self.fixed = configured.encode() if configured else None
        self.secrets = []  # the current secret first, then the previous one
        self.secret_bytes = []  # the secrets as bytes, the current one first
        self.checked = self.rechecked = 0.0
        self.verified = {}  # lease id -> job id, of ids verified lately

    def _keys(self, now=None):
        now = time.monotonic() if now is None else now
        if self.fixed is not None:
            if not self.secret_bytes:
                self.secret_bytes = [self.fixed]
                self.verified = {}
        elif not self.secret_bytes or now - self.checked > REFRESH_SECONDS:
            self._read(now)
        return self.secret_bytes

    def _read(self, now):
        """The shared secret from Redis (made there if missing)."""
        r, key = self.backend.redis, self.backend.keys.secret
        mine = self.secrets[0] if self.secrets else secrets.token_hex(32)
        r.set(key, mine, nx=True)
        secret = r.get(key) or mine  # (None: flushed in between; set again next time)
        if not self.secrets or secret != self.secrets[0]:
            self.secrets = [secret] + self.secrets[:1]
            self.secret_bytes = [s.encode() for s in self.secrets]
            self.verified = {}
        self.checked = now

    @staticmethod
    def _tag(secret, job_id, nonce):
        return hashlib.blake2b(("%s.%s" % (job_id, nonce)).encode(), key=_mac_key(secret),
                               digest_size=8).hexdigest()

    @staticmethod
    def _legacy_tag(secret, job_id, nonce):
        """The tag of ids made before keyed BLAKE2b (HMAC-SHA256, 64 bits)."""
        return hmac.digest(secret, ("%s.%s" % (job_id, nonce)).encode(), "sha256").hex()[:16]

    def new(self, job_id, key=None, scope=""):
        """A fresh lease id, or the one an Idempotency-Key names in ``scope``.

        With a key, a retried request (its answer was lost on the way) names
        the same lease, and the lease script answers with the batch it
        already made instead of leasing a second one.
        """
        if key:
            raw = ("%s\0%s" % (scope, key)).encode("utf-8", "surrogatepass")
            nonce = hashlib.sha256(raw).hexdigest()[:16]
        else:
            nonce = _random_nonce()
        return "%s.%s.%s" % (job_id, nonce, self._tag(self._keys()[0], job_id, nonce))

    def job_of(self, lease_id):
        """The job id of a lease id this server made; NotFound for any other."""
        keys = self._keys()  # (first: a new secret forgets what was verified)
        job_id = self.verified.get(lease_id)
        if job_id is not None:
            return job_id
        m = _LEASE_ID.match(lease_id or "")
        if m:
            job_id, nonce, tag = m.groups()
            if self._verifies(job_id, nonce, tag, keys):
                return self._remember(lease_id, job_id)
            now = time.monotonic()
            if self.fixed is None and now - self.rechecked > RECHECK_SECONDS:
                self.rechecked = now
                self._read(now)
                if self._verifies(job_id, nonce, tag, self.secret_bytes):
                    return self._remember(lease_id, job_id)
        raise NotFound("no such lease: %s" % (lease_id or "")[:80])

    def _verifies(self, job_id, nonce, tag, keys):
        return any(hmac.compare_digest(make(secret, job_id, nonce), tag)
                   for make in (self._tag, self._legacy_tag) for secret in keys)

    def _remember(self, lease_id, job_id):
        if len(self.verified) >= VERIFIED_KEPT:
            self.verified = {}
        self.verified[lease_id] = job_id
        return job_id


def _mac_key(secret):
    """BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed down."""
    return secret if len(secret) <= 64 else hashlib.sha256(secret).digest()


def signer(backend):
    """The Signer of this backend (one per application)."""
    found = getattr(backend, "lease_signer", None)
    if found is None:
        found = backend.lease_signer = Signer(backend)
    return found
