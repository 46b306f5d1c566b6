"""A large job-create body read without building its items all at once.

``json.loads`` of a 51 MB create of a million small items builds a million
dicts at once: one instance went from 81 to 546 MB on it (issue 12). Here
the body is walked with the json module's own C scanner: every value but
``tasks.items`` is decoded as usual (and the body validated against the
schema with an empty list in its place), while the items array is only
measured, then read back one item at a time by :class:`Items`, so the
domain can store it in chunks. At most one chunk of items is alive at once
besides the body's text.
"""
import json
import re
from array import array

from ..domain.codec import loads
from ..errors import BadRequest

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_scanstring = json.decoder.scanstring
#: Bodies up to this size take the ordinary path (one json.loads).
STREAM_BYTES = 1024 * 1024


def _ws(text, i):
    return _WS.match(text, i).end()


class Items:
    """The items of a create body, decoded one at a time, in order.

    ``len()`` is their count; iterating yields each as :func:`codec.loads`
    decodes it (so every item passes the same strict checks as a small body).
    """

    def __init__(self, text, ends, start):
        self.text, self.ends, self.start = text, ends, start

    def __len__(self):
        return len(self.ends)

    def __iter__(self):
        text, begin = self.text, self.start
        for n, end in enumerate(self.ends):
            begin = _ws(text, begin)
            if text[begin] == ",":
                begin = _ws(text, begin + 1)
            try:
                item = loads(text[begin:end])
            except (ValueError, RecursionError) as err:
                raise BadRequest("body.tasks.items[%d]: %s" % (n, err)) from None
            yield item
            begin = end


def _object(text, i, on_value):
    """Walk the object at text[i] == '{'; ``on_value(key, i)`` reads each
    value starting at i and returns where it ends. Returns the end."""
    if text[i] != "{":
        raise ValueError("not an object")
    i = _ws(text, i + 1)
    if text[i] == "}":
        return i + 1
    while True:
        if text[i] != '"':
            raise ValueError("a key must be a string")
        key, i = _scanstring(text, i + 1, True)
        i = _ws(text, i)
        if text[i] != ":":
            raise ValueError("':' expected")
        i = _ws(text, on_value(key, _ws(text, i + 1)))
        if text[i] == "}":
            return i + 1
        if text[i] != ",":
            raise ValueError("',' or '}' expected")
        i = _ws(text, i + 1)


def _array_ends(text, i):
    """Where each element of the array at text[i] == '[' ends, and the array's end."""
    ends = array("q")
    i = _ws(text, i + 1)
    if text[i] == "]":
        return ends, i + 1
    while True:
        _, i = _DECODER.raw_decode(text, i)  # checked strictly when read back
        ends.append(i)
        i = _ws(text, i)
        if text[i] == "]":
            return ends, i + 1
        if text[i] != ",":
            raise ValueError("',' or ']' expected")
        i = _ws(text, i + 1)


def _value(text, i):
    """The JSON value at text[i], decoded by codec.loads (the strict checks of
    any body), and where it ends."""
    _, end = _DECODER.raw_decode(text, i)
    return loads(text[i:end]), end


def split(raw):
    """``(body, items)``: the decoded body with ``tasks.items`` as ``[]``, and
    an :class:`Items` of the real ones (None when the body has no items
    array). A key given twice keeps its last value, as json.loads does.
    BadRequest when the body is not valid JSON."""
    body, found = {}, {}

    def tasks_value(key, i):
        found.pop(key, None)
        if key == "items" and text[i] == "[":
            ends, end = _array_ends(text, i)
            found[key] = Items(text, ends, i + 1)
            found["tasks"][key] = []
            return end
        found["tasks"][key], end = _value(text, i)
        return end

    def body_value(key, i):
        if key == "tasks":
            found.pop("items", None)
            if text[i] == "{":
                found["tasks"] = body[key] = {}
                return _object(text, i, tasks_value)
        body[key], end = _value(text, i)
        return end

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        end = _ws(text, _object(text, _ws(text, 0), body_value))
        if end != len(text):
            raise ValueError("data after the body")
    except (ValueError, IndexError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    return body, found.get("items")
