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
     └── Unavailable (503, Retry-After)

``register(app)`` installs the one handler that turns them (and werkzeug's
own HTTP errors, and Redis outages) into ``{"error", "message"}``.
"""
import logging

import redis
from flask import jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


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
    code = "bad_request"


class Unauthorized(JobmasterError):
    """No bearer token, or one nobody configured."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="jobmaster"'}


class Forbidden(JobmasterError):
    """A valid token whose role may not do this."""

    status = 403
    code = "forbidden"


class NotFound(JobmasterError):
    """No such job, lease or route."""

    status = 404
    code = "not_found"


class Conflict(JobmasterError):
    """The job is in a state that does not allow this."""

    status = 409
    code = "conflict"


class LeaseLost(Conflict):
    """The lease expired and its tasks were given back."""

    code = "lease_lost"


class TooLarge(JobmasterError):
    """The body or a list in it is over a limit."""

    status = 413
    code = "too_large"


class RateLimited(JobmasterError):
    """Too many requests from one client."""

    status = 429
    code = "rate_limited"


class Unavailable(JobmasterError):
    """Redis (or another required backend) cannot be reached right now."""

    status = 503
    code = "unavailable"

    def __init__(self, message, retry_after=1):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


# werkzeug's own errors (unknown route, wrong method, body too large, bad
# JSON) keep their status but get our shape and a stable code.
_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 429: "rate_limited",
}


def _drain_body():
    """Read what is left of the request body before answering early.

    A request refused before its body was read (no token, too large) would
    otherwise leave nginx writing into a closed socket, and the client would
    see nginx's 502 instead of our answer. werkzeug's stream knows how much
    is left (the raw input may block past the body's end, as under werkzeug's
    own server); a body over the limit was never opened, so it is read raw,
    bounded by its Content-Length.
    """
    try:
        try:
            stream = request.stream
        except RequestEntityTooLarge:
            left = min(int(request.environ.get("CONTENT_LENGTH") or 0), 128 << 20)
            raw = request.environ["wsgi.input"]
            while left > 0:
                chunk = raw.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
            return
        while stream.read(1 << 16):
            pass
    except Exception:  # a broken client connection: nothing left to protect
        pass


def _respond(status, code, message, headers=None):
    if status != 503:
        _drain_body()
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register(app):
    """Install the single JSON error handler on ``app``."""

    @app.errorhandler(JobmasterError)
    def _ours(err):
        return _respond(err.status, err.code, err.message, err.headers)

    @app.errorhandler(HTTPException)
    def _http(err):
        code = _HTTP_CODES.get(err.code, "http_%d" % err.code)
        headers = {}
        if err.code == 405 and err.valid_methods:
            headers["Allow"] = ", ".join(err.valid_methods)
        return _respond(err.code, code, err.description or err.name, headers)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    def _redis_down(err):
        log.warning("redis unavailable: %s", err)
        return _respond(503, "unavailable", "Redis is unavailable; retry shortly",
                        {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def _unexpected(err):
        log.exception("unhandled error")
        return _respond(500, "internal", "internal error; see the server log")
