"""Request schemas and the one validator that enforces them.

The schemas are plain JSON Schema (the OpenAPI 3.0 dialect), so the same
dicts validate requests here and describe them in ``/api/v1/openapi.json``:
the published contract cannot drift from what the code accepts.
"""
import json

from .errors import BadRequest, TooLarge

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}

# Task ids and range bounds must stay exact in Lua (IEEE doubles).
MAX_SAFE = 2 ** 53


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
    schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def validate(value, schema, path="body"):
    """Raise BadRequest naming the first place ``value`` breaks ``schema``."""
    if value is None and schema.get("nullable"):
        return
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        raise BadRequest("%s: must be %s %s" % (path, "an" if kind[0] in "aeiou" else "a", kind))
    if "enum" in schema and value not in schema["enum"]:
        raise BadRequest("%s: must be one of %s" % (path, ", ".join(map(str, schema["enum"]))))
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise BadRequest("%s: must be at least %s" % (path, schema["minimum"]))
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise BadRequest("%s: must be more than %s" % (path, schema["exclusiveMinimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            raise BadRequest("%s: must be at most %s" % (path, schema["maximum"]))
    elif kind == "string":
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("%s: is not valid Unicode (lone surrogate)" % path) from None
        if len(value) < schema.get("minLength", 0):
            raise BadRequest("%s: must not be empty" % path)
        if len(value) > schema.get("maxLength", float("inf")):
            raise BadRequest("%s: must be at most %d characters" % (path, schema["maxLength"]))
    elif kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise BadRequest("%s: needs at least %d items" % (path, schema["minItems"]))
        if len(value) > schema.get("maxItems", float("inf")):
            raise TooLarge("%s: at most %d items per request" % (path, schema["maxItems"]))
        if "items" in schema and schema["items"]:
            for i, item in enumerate(value):
                validate(item, schema["items"], "%s[%d]" % (path, i))
    elif kind == "object":
        for name in schema.get("required", ()):
            if name not in value:
                raise BadRequest("%s.%s: is required" % (path, name))
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                validate(value[name], sub, "%s.%s" % (path, name))


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


def loads(raw):
    """Strict JSON: NaN and Infinity are not JSON and would break NDJSON readers."""
    return json.loads(raw, parse_constant=_no_constants)


def json_body(schema, allow_empty=False):
    """The request's JSON body, validated against ``schema``."""
    from flask import request

    raw = request.get_data(cache=True)
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


def encode(value, limit, what):
    """Compact JSON text of ``value``, refusing anything over ``limit`` bytes."""
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > limit:
        raise TooLarge("%s is larger than %d bytes" % (what, limit))
    return text
