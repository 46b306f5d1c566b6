"""Schemathesis hooks for tests/stack/test_schemathesis.py.

The rules of the API that JSON Schema cannot state: a job's ``range``
``[start, stop]`` needs ``stop >= start`` and at most MAX_TOTAL tasks (one
element compared with another); a schedule's ``cron`` is a 5-field cron
expression and its ``timezone`` an IANA zone (a webhook URL has a pattern
in the document, so it needs nothing here). The document says so in
words; generated values are made into ones the server accepts here (ranges
in order and small, a weekly cron, UTC), so that "schema-valid" bodies are
ones the server accepts, and everything else is checked as generated.
"""
import schemathesis

MAX_SAFE = 2 ** 53


#: A string the schema allows (type and length: these fields have no other
#: keyword) becomes one the server accepts; anything else (a negative case)
#: stays as generated.
_ACCEPTED = {"cron": ("0 2 * * 1", 200), "timezone": ("UTC", 64)}


def _fit(body):
    if not isinstance(body, dict):
        return
    for field, (good, longest) in _ACCEPTED.items():
        value = body.get(field)
        if isinstance(value, str) and 1 <= len(value) <= longest:
            body[field] = good
    _order_range(body)
    _fit(body.get("job"))  # a schedule's job body follows the same rules


@schemathesis.hook
def map_body(ctx, body):
    _fit(body)
    return body


def _order_range(body):
    tasks = body.get("tasks") if isinstance(body, dict) else None
    spec = tasks.get("range") if isinstance(tasks, dict) else None
    # Only a pair the schema allows: a negative case (a bound out of range)
    # must stay negative.
    if (isinstance(spec, list) and len(spec) == 2
            and all(type(x) is int and -MAX_SAFE <= x <= MAX_SAFE for x in spec)):
        start, stop = sorted(spec)
        tasks["range"] = [start, min(stop, start + 100)]
