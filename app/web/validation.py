"""Request schemas and the one validator that enforces them.

The schemas are plain JSON Schema (the OpenAPI 3.0 dialect), so the same
dicts validate requests here and describe them in ``/api/v1/openapi.json``:
the published contract cannot drift from what the code accepts.
"""
import io
import re

from flask import current_app, request

from ..domain.codec import encodable, loads
from ..errors import BadRequest, TooLarge
from .checker import compile_schema, is_number

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": is_number,
    "boolean": lambda v: isinstance(v, bool),
}

def integer(minimum=None, maximum=None, **extra):
    schema = {"type": "integer", **extra}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def string(min_length=1, max_length=200, **extra):
    return {"type": "string", "minLength": min_length, "maxLength": max_length, **extra}


def obj(properties, required=(), **extra):
    """An object schema; a request's objects say ``additionalProperties=False``
    (a field the route does not know is a 400 naming it)."""
    schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def validate(value, schema, path="body"):
    """Raise BadRequest naming the first place ``value`` breaks ``schema``.

    A check compiled from the schema (app/web/checker.py) answers first; only
    a body that fails it is walked again to name the place (a complete of
    100 results is checked on every call, and formatting a path per field
    cost more than the check).
    """
    if _checker(schema)(value):
        return
    _explain(value, schema, path)
    raise BadRequest("%s: does not match the schema" % path)  # checker stricter than _explain


# Compiled checkers by id(schema). Each entry keeps its schema alive, so
# an id is never reused by another dict while its checker is cached (each
# application builds its own schemas).
_CHECKERS = {}


def _checker(schema):
    entry = _CHECKERS.get(id(schema))
    if entry is None:
        entry = _CHECKERS[id(schema)] = (schema, compile_schema(schema))
    return entry[1]


def _explain(value, schema, path):
    """Walk ``value`` and raise BadRequest at the first place it breaks ``schema``."""
    if value is None and schema.get("nullable"):
        return
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        raise BadRequest("%s: must be %s %s" % (path, "an" if kind[0] in "aeiou" else "a", kind))
    if "enum" in schema and value not in schema["enum"]:
        raise BadRequest("%s: must be one of %s" % (path, ", ".join(map(str, schema["enum"]))))
    if kind in ("integer", "number"):
        if schema.get("exclusiveMinimum") is True and value <= schema["minimum"]:
            raise BadRequest("%s: must be more than %s" % (path, schema["minimum"]))
        if "minimum" in schema and value < schema["minimum"]:
            raise BadRequest("%s: must be at least %s" % (path, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            raise BadRequest("%s: must be at most %s" % (path, schema["maximum"]))
    elif kind == "string":
        if not encodable(value):
            raise BadRequest("%s: is not valid Unicode (lone surrogate)" % path)
        if len(value) < schema.get("minLength", 0):
            raise BadRequest("%s: must not be empty" % path)
        if len(value) > schema.get("maxLength", float("inf")):
            raise BadRequest("%s: must be at most %d characters" % (path, schema["maxLength"]))
        if schema.get("pattern") and re.search(schema["pattern"], value) is None:
            raise BadRequest("%s: %s" % (path, schema.get("x-message")
                                         or "does not match %s" % schema["pattern"]))
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise BadRequest("%s: needs at least %d items" % (path, schema["minItems"]))
        if len(value) > schema.get("maxItems", float("inf")):
            if schema.get("minItems") == schema["maxItems"]:  # a shape, not a size: malformed
                raise BadRequest("%s: must have exactly %d items" % (path, schema["maxItems"]))
            raise TooLarge("%s: at most %d items per request" % (path, schema["maxItems"]))
        if "items" in schema and schema["items"]:
            for i, item in enumerate(value):
                _explain(item, schema["items"], "%s[%d]" % (path, i))
    elif kind == "object":
        if not schema.get("additionalProperties", True):
            for name in value:
                if name not in schema["properties"]:
                    raise BadRequest("%s.%s: is not a field of this request (known: %s)"
                                     % (path, name, ", ".join(schema["properties"])))
        for name in schema.get("required", ()):
            if name not in value:
                raise BadRequest("%s.%s: is required" % (path, name))
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _explain(value[name], sub, "%s.%s" % (path, name))
        if len(value) < schema.get("minProperties", 0) or \
                len(value) > schema.get("maxProperties", float("inf")):
            raise BadRequest("%s: %s" % (path, schema.get("description", "wrong number of fields")))
    alternatives = schema.get("anyOf", ())
    if alternatives and not any(_checker(sub)(value) for sub in alternatives):
        raise BadRequest("%s: %s" % (path, schema.get("x-message", "matches none of its forms")))


def take_body(environ, limit):
    """Read a request body of known length straight from ``wsgi.input``, once.

    werkzeug's stream wrapper cost ~70-90 µs of uWSGI CPU per request more
    than one ``read(n)`` (measured through nginx on the bench machine), on the
    hottest requests there are. Returns None for a chunked or over-limit body,
    which must go through werkzeug (it knows how to refuse it: 413). The
    bytes read are put back as ``wsgi.input``, so whoever reads the body later
    (the view after app/early_lease.py, the error handler draining it,
    ``get_data``) sees the same bytes and never waits on the socket for more.
    """
    length = environ.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or (limit is not None and int(length) > limit):
        return None
    n = int(length)
    try:
        data = environ["wsgi.input"].read(n) if n else b""
    except OSError:  # the client went away (or stalled) mid-body
        data = b""
    environ["wsgi.input"] = io.BytesIO(data)
    if len(data) < n:
        raise BadRequest("the request body ended early")
    return data


def read_body():
    """The request body (see take_body)."""
    data = take_body(request.environ, current_app.config.get("MAX_CONTENT_LENGTH"))
    return request.get_data(cache=True) if data is None else data


def json_body(schema, allow_empty=False):
    """The request's JSON body, validated against ``schema``."""
    return parse_body(read_body(), schema, allow_empty)


def parse_body(raw, schema, allow_empty=False):
    """A JSON request body (bytes), validated against ``schema``; BadRequest."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("a JSON body is required")
    try:
        body = loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    validate(body, schema)
    return body
