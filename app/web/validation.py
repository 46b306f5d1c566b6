"""Request schemas and the one validator that enforces them.

The schemas are plain JSON Schema (the OpenAPI 3.0 dialect), so the same
dicts validate requests here and describe them in ``/api/v1/openapi.json``:
the published contract cannot drift from what the code accepts.
"""
import io

from flask import current_app, request

from ..domain.codec import encodable, loads
from ..errors import BadRequest, TooLarge

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
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

    A compiled checker answers first; only a body that fails it is walked
    again to name the place (a complete of 100 results is checked on every
    call, and formatting a path per field cost more than the check).
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
        entry = _CHECKERS[id(schema)] = (schema, _compile(schema))
    return entry[1]


def _compile(schema):
    """A predicate that is true exactly when :func:`_explain` raises nothing."""
    kind = schema.get("type")
    if kind is None and not schema.get("anyOf"):
        return _anything
    is_type = _TYPES[kind] if kind else _anything
    nullable = schema.get("nullable", False)
    enum = schema.get("enum")
    if kind in ("integer", "number"):
        low = schema.get("minimum", -float("inf"))
        high = schema.get("maximum", float("inf"))
        strict = schema.get("exclusiveMinimum") is True  # OpenAPI 3.0: a flag on minimum

        if kind == "integer" and not strict:
            def check(v):  # the common case, without a call per check
                return type(v) is int and low <= v <= high
        else:
            def check(v):
                return is_type(v) and low <= v <= high and not (strict and v == low)
    elif kind in ("string", "array"):
        low = schema.get("minLength", schema.get("minItems", 0))
        high = schema.get("maxLength", schema.get("maxItems", float("inf")))
        item = _compile(schema["items"]) if schema.get("items") else _anything

        def check(v):
            if not is_type(v) or not low <= len(v) <= high:
                return False
            if kind == "string":
                return encodable(v)
            if item is not _anything:
                for x in v:
                    if not item(x):
                        return False
            return True
    elif kind == "object":
        required = tuple(schema.get("required", ()))
        # Properties that accept anything need no look-up at all.
        props = tuple((name, _compile(sub)) for name, sub in schema.get("properties", {}).items()
                      if sub.get("type") is not None or sub.get("anyOf"))
        known = None if schema.get("additionalProperties", True) else frozenset(schema["properties"])
        low = schema.get("minProperties", 0)
        high = schema.get("maxProperties", float("inf"))

        def check(v):
            if type(v) is not dict:
                return False
            if known is not None and not known.issuperset(v):
                return False
            if not low <= len(v) <= high:
                return False
            for name in required:
                if name not in v:
                    return False
            for name, sub in props:
                if name in v and not sub(v[name]):
                    return False
            return True
    elif kind == "boolean":
        def check(v):
            return v is True or v is False
    else:
        check = is_type
    alternatives = [_compile(sub) for sub in schema.get("anyOf", ())]
    if alternatives:
        whole = check

        def check(v):  # noqa: F811
            return whole(v) and any(alt(v) for alt in alternatives)
    if enum is not None:
        inner = check

        def check(v):  # noqa: F811
            return v in enum and inner(v)
    if nullable:
        inner_n = check

        def check(v):  # noqa: F811
            return v is None or inner_n(v)
    return check


def _anything(value):
    return True


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
