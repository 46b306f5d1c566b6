"""One exception tree; each error knows its HTTP status and JSON code.

    JobmasterError
     ├── BadRequest (400)
     ├── Unauthorized (401)
     ├── Forbidden (403)
     ├── NotFound (404)
     ├── Conflict (409)
     │    └── LeaseLost (409)
     ├── TooLarge (413)
     ├── RateLimited (429)
     ├── NotConfigured (501)
     └── Unavailable (503, Retry-After)

The tree is shared by every layer (the domain and the Redis layer raise
these); :mod:`app.web.errors` is the one handler that turns them (and
werkzeug's own HTTP errors, and Redis outages) into ``{"error", "message"}``.
The codes are the wire constants of :mod:`jobmaster.protocol`.
"""
from jobmaster import protocol


class JobmasterError(Exception):
    """Base of every error the API answers with."""

    status = 500
    code = "internal"
    headers = None

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def to_dict(self):
        return {"error": self.code, "message": self.message}


class BadRequest(JobmasterError):
    """The request is malformed or breaks a limit; nothing was changed."""

    status = 400
    code = protocol.ERR_BAD_REQUEST


class Unauthorized(JobmasterError):
    """No bearer token, or one nobody configured."""

    status = 401
    code = protocol.ERR_UNAUTHORIZED
    headers = {"WWW-Authenticate": 'Bearer realm="jobmaster"'}


class Forbidden(JobmasterError):
    """A valid token whose role may not do this."""

    status = 403
    code = protocol.ERR_FORBIDDEN


class NotFound(JobmasterError):
    """No such job, lease or route."""

    status = 404
    code = protocol.ERR_NOT_FOUND


class Conflict(JobmasterError):
    """The job is in a state that does not allow this."""

    status = 409
    code = protocol.ERR_CONFLICT


class LeaseLost(Conflict):
    """The lease expired and its tasks were given back."""

    code = protocol.ERR_LEASE_LOST


class TooLarge(JobmasterError):
    """The body or a list in it is over a limit."""

    status = 413
    code = protocol.ERR_TOO_LARGE


class RateLimited(JobmasterError):
    """Too many requests from one client."""

    status = 429
    code = protocol.ERR_RATE_LIMITED


class NotConfigured(JobmasterError):
    """The deployment has not set up what this needs (the archive, a fleet launcher)."""

    status = 501
    code = "not_configured"


class Unavailable(JobmasterError):
    """Redis (or another required backend) cannot be reached right now."""

    status = 503
    code = protocol.ERR_UNAVAILABLE

    def __init__(self, message, retry_after=1):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
