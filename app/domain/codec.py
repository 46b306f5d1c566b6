"""JSON text in and out of the domain: strict parsing, bounded encoding.

Results, items and params are kept in Redis as the JSON text the client
sent (re-encoded compactly), so they are spliced into answers without being
parsed again. These two functions are the only way in and out.
"""
import json

from ..errors import TooLarge

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


def encode(value, limit, what, *what_args):
    """Compact JSON text of ``value``, refusing anything over ``limit`` bytes.

    ``what % what_args`` names the value in the error; it is formatted only
    then (a complete of 100 results calls this 100 times).
    """
    scalar = _SCALARS.get(type(value))
    text = scalar(value) if scalar else _ENCODER.encode(value)
    if len(text) > limit:
        raise TooLarge("%s is larger than %d bytes" % (what % what_args, limit))
    return text
