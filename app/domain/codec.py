"""JSON text in and out of the domain: strict parsing, bounded encoding.

Results, items and params are kept in Redis as the JSON text the client
sent (re-encoded compactly), so they are spliced into answers without being
parsed again. These two functions are the only way in and out.

Two things Python's json reads that are not storable: a number too large
for a double (``1e400`` reads as infinity) and a lone UTF-16 surrogate
(``"\\ud800"``), which no UTF-8 reader (nor Redis's client) accepts. Both are
refused as BadRequest naming the place, at no cost to the common case: the
encoder raises on infinity anyway, and the surrogate check runs only when
the encoded text holds a ``\\ud`` escape at all.
"""
import json
import math

from ..errors import BadRequest, TooLarge

# Task ids and range bounds must stay exact in Lua (IEEE doubles).
MAX_SAFE = 2 ** 53


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def loads(raw):
    """Strict JSON: NaN and Infinity are not JSON and would break NDJSON readers."""
    return _DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SCALARS = {type(None): lambda v: "null", bool: lambda v: "true" if v else "false",
            int: int.__repr__, str: _ENCODER.encode}


def encodable(text):
    """True when ``text`` has no lone surrogate (it can become UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def unstorable(value, path=""):
    """``(path, why)`` of the first out-of-range number or lone surrogate in
    ``value`` (a parsed JSON value), or None."""
    if isinstance(value, str):
        return None if encodable(value) else (path, "is not valid Unicode (lone surrogate)")
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "is a number out of range")
    if isinstance(value, dict):
        for key, item in value.items():
            if not encodable(key):
                return "%s.%s" % (path, key.encode("utf-8", "replace").decode()), \
                    "is a key that is not valid Unicode (lone surrogate)"
            found = unstorable(item, "%s.%s" % (path, key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable(item, "%s[%d]" % (path, i))
            if found:
                return found
    return None


def _refuse(value, what):
    path, why = unstorable(value) or ("", "is not storable JSON")
    raise BadRequest("%s%s: %s" % (what, path, why))


def encode(value, limit, what, *what_args):
    """Compact JSON text of ``value``, refusing anything over ``limit`` bytes.

    ``what % what_args`` names the value in the error; it is formatted only
    then (a complete of 100 results calls this 100 times).
    """
    scalar = _SCALARS.get(type(value))
    try:
        text = scalar(value) if scalar else _ENCODER.encode(value)
    except ValueError:  # an infinity (allow_nan=False)
        _refuse(value, what % what_args)
    if "\\ud" in text and unstorable(value):  # (a valid pair is fine)
        _refuse(value, what % what_args)
    if len(text) > limit:
        raise TooLarge("%s is larger than %d bytes" % (what % what_args, limit))
    return text


def text(value, limit, what, *what_args):
    """A plain string stored as it is (an error message): cut to ``limit``
    characters, refused if it holds a lone surrogate."""
    if not encodable(value):
        raise BadRequest("%s: is not valid Unicode (lone surrogate)" % (what % what_args))
    return value[:limit] if len(value) > limit else value
