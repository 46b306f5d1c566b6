"""The one JSON error handler: every error answers ``{"error", "message"}``."""
import logging

import redis
from flask import jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from jobmaster import protocol

from ..errors import (BadRequest, Conflict, Forbidden, JobmasterError, NotFound, RateLimited,
                      TooLarge, Unauthorized, Unavailable)

log = logging.getLogger(__name__)


# werkzeug's own errors (unknown route, wrong method, body too large, bad
# JSON) keep their status but get our shape and a stable code.
_HTTP_CODES = {cls.status: cls.code for cls in (BadRequest, Unauthorized, Forbidden, NotFound,
                                                 Conflict, TooLarge, RateLimited)}
_HTTP_CODES.update({405: protocol.ERR_METHOD_NOT_ALLOWED,
                    415: protocol.ERR_UNSUPPORTED_MEDIA_TYPE})


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
        return _respond(503, Unavailable.code, "Redis is unavailable; retry shortly",
                        {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def _unexpected(err):
        log.exception("unhandled error")
        return _respond(500, "internal", "internal error; see the server log")
