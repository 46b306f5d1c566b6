"""X-Request-ID and X-Served-By on every response.

nginx passes ``$request_id``; a request that reaches the app directly gets a
fresh id. A client-supplied id is kept only if it is short and plain, so it
cannot inject anything into logs.
"""
import re
import uuid

from flask import g, request

_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def init_app(app):
    served_by = app.config["INSTANCE"]

    @app.before_request
    def _take_id():
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _SAFE.match(rid) else uuid.uuid4().hex

    @app.after_request
    def _stamp(response):
        response.headers["X-Request-ID"] = getattr(g, "request_id", None) or uuid.uuid4().hex
        response.headers["X-Served-By"] = served_by
        return response
