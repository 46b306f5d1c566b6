"""The client's exception tree.

    ClientError                  anything the client raises on purpose
     ├── TransportError          no usable answer (refused, reset, timed out) after retries
     └── APIError                the server answered {"error": code, "message": ...}
          ├── BadRequest         400: malformed input; nothing was changed
          ├── AuthError          401/403
          │    ├── Unauthorized  401: missing or unknown token
          │    └── Forbidden     403: a worker token tried an admin action
          ├── NotFound           404: no such job, lease or route
          ├── Conflict           409: the job's state does not allow this
          │    └── LeaseLost     409 lease_lost: the lease expired, its tasks went back
          ├── TooLarge           413
          ├── RateLimited        429 (raised only once retries are used up)
          ├── Unavailable        503 (raised only once retries are used up)
          └── ServerError        any other 5xx

Every ``APIError`` carries ``status``, ``code``, ``message`` and the
``request_id`` the server stamped on the answer (quote it in bug reports).
"""


class ClientError(Exception):
    """Base of every error the jobmaster client raises on purpose."""


class TransportError(ClientError):
    """The server could not be reached, or the connection broke, after retries."""


class APIError(ClientError):
    """The server answered with an error body."""

    status = None

    def __init__(self, status, code, message, request_id=None, retry_after=None):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequest(APIError):
    """400: the request was malformed or broke a limit; nothing was changed."""


class AuthError(APIError):
    """401 or 403: the token is missing, unknown, or lacks the role."""


class Unauthorized(AuthError):
    """401: no bearer token, or one the server does not know."""


class Forbidden(AuthError):
    """403: a valid token whose role may not do this (worker vs admin)."""


class NotFound(APIError):
    """404: no such job, lease or route."""


class Conflict(APIError):
    """409: the job (or lease) is in a state that does not allow this."""


class LeaseLost(Conflict):
    """409 ``lease_lost``: the lease expired and its tasks were given back."""


class TooLarge(APIError):
    """413: the body, or a list or result in it, is over a server limit."""


class RateLimited(APIError):
    """429: too many requests (raised once the retry budget is spent)."""


class Unavailable(APIError):
    """503: the server's backend is down (raised once the retry budget is spent)."""


class ServerError(APIError):
    """Any other 5xx answer."""


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
              409: Conflict, 413: TooLarge, 429: RateLimited, 503: Unavailable}


def error_for(status, code, message, request_id=None, retry_after=None):
    """Build the right ``APIError`` subclass for an error answer."""
    if status == 409 and code == "lease_lost":
        cls = LeaseLost
    else:
        cls = _BY_STATUS.get(status)
        if cls is None:
            cls = ServerError if status >= 500 else APIError
    return cls(status, code, message, request_id=request_id, retry_after=retry_after)
