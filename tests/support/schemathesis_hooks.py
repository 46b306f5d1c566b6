"""Schemathesis hooks for tests/stack/test_schemathesis.py.

The one rule of the API that JSON Schema cannot state: a job's ``range``
``[start, stop]`` needs ``stop >= start`` and at most MAX_TOTAL tasks (one
element compared with another). The document says so in words; generated
ranges are put in order and kept small here, so that "schema-valid" bodies
are ones the server accepts, and everything else is checked as generated.
"""
import schemathesis

MAX_SAFE = 2 ** 53


@schemathesis.hook
def map_body(ctx, body):
    tasks = body.get("tasks") if isinstance(body, dict) else None
    spec = tasks.get("range") if isinstance(tasks, dict) else None
    # Only a pair the schema allows: a negative case (a bound out of range)
    # must stay negative.
    if (isinstance(spec, list) and len(spec) == 2
            and all(type(x) is int and -MAX_SAFE <= x <= MAX_SAFE for x in spec)):
        start, stop = sorted(spec)
        tasks["range"] = [start, min(stop, start + 100)]
    return body
