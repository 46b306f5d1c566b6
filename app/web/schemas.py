"""The API's request and response schemas (JSON Schema, OpenAPI 3.0 dialect).

Request schemas are enforced by :func:`app.web.validation.validate`; all of them
are published by :mod:`app.web.openapi`. Limits come from the defaults in
:mod:`app.config` (a deployment that raises them still validates in code).
"""
from ..domain.codec import MAX_SAFE
from .validation import integer, obj, string

MAX_BATCH = 1000
MAX_RESULTS_PER_CALL = 10000

ERROR = obj({"error": {"type": "string"}, "message": {"type": "string"}},
            required=("error", "message"))

JOB_CREATE = obj({
    "name": string(1, 200),
    "tasks": obj({
        "range": {"type": "array", "items": integer(-MAX_SAFE, MAX_SAFE), "minItems": 2,
                  "maxItems": 2, "description": "[start, stop): ids 0..stop-start-1, payload start+id"},
        "items": {"type": "array", "items": {}, "maxItems": 1_000_000,
                  "description": "one task per item; the item is its payload"},
    }, description="exactly one of range or items"),
    "params": {"type": "object", "description": "returned with every lease"},
    "batch_size": integer(1, MAX_BATCH, description="tasks per lease when the worker does not say"),
    "lease_seconds": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 7 * 24 * 3600},
    "max_attempts": integer(1, 1000),
    "priority": integer(-1_000_000, 1_000_000, description="higher first"),
    "sealed": {"type": "boolean", "description": "false: add items later, then seal"},
}, required=("name",))

COUNTS = obj({k: integer(0) for k in ("total", "pending", "leased", "done", "dead")})

JOB_STATUS = obj({
    "id": {"type": "string"}, "name": {"type": "string"},
    "state": {"type": "string", "enum": ["running", "paused", "cancelled", "completed"]},
    "kind": {"type": "string", "enum": ["range", "items"]},
    "created_at": {"type": "number"}, "finished_at": {"type": "number", "nullable": True},
    "sealed": {"type": "boolean"},
    "settings": obj({"batch_size": integer(1), "lease_seconds": {"type": "number"},
                     "max_attempts": integer(1), "priority": integer()}),
    "params": {"type": "object"}, "counts": COUNTS, "rate": {"type": "number"},
    "eta_seconds": {"type": "number", "nullable": True},
    "archived": {"type": "boolean", "description": "with the archive: true when the job's "
                 "Redis state is gone and this document comes from MongoDB"},
    "archive": obj({"archived": integer(0), "backlog": integer(0)},
                   description="with the archive: results in MongoDB, and still waiting in Redis"),
}, required=("id", "name", "state", "counts"))

JOB_LIST = obj({"jobs": {"type": "array", "items": JOB_STATUS}}, required=("jobs",))

LEASE_REQUEST = obj({
    "worker": string(1, 200, description="a name for this worker (pod)"),
    "max_tasks": integer(1, MAX_BATCH, nullable=True),
    "job": {"type": "string", "maxLength": 64, "nullable": True,
            "description": "lease from this job only; absent: any running job"},
}, required=("worker",))

TASK = obj({"id": integer(0), "attempt": integer(1), "payload": {}})

LEASE_ANSWER = obj({
    "status": {"type": "string", "enum": ["ok", "wait", "done"]},
    "lease": obj({"id": {"type": "string"}, "job": {"type": "string"},
                  "expires_at": {"type": "number"}, "lease_seconds": {"type": "number"}}),
    "params": {"type": "object"},
    "tasks": {"type": "array", "items": TASK},
    "retry_after": {"type": "number"},
}, required=("status",))

RESULT = obj({
    "id": integer(0, MAX_SAFE),
    "ok": {"type": "boolean"},
    "result": {"description": "any JSON value (ok results)"},
    "error": {"description": "what went wrong (failed results)"},
}, required=("id", "ok"))

COMPLETE_REQUEST = obj({
    "worker": string(1, 200, description="defaults to the lease's worker"),
    "results": {"type": "array", "items": RESULT, "maxItems": MAX_RESULTS_PER_CALL},
    "release": {"type": "boolean", "description": "give back the unreported rest now"},
    "next": obj({"max_tasks": integer(1, MAX_BATCH, nullable=True)}, nullable=True,
                description="also lease the next batch in this call"),
})

COMPLETE_ANSWER = obj({
    **{k: integer(0) for k in ("accepted", "duplicates", "retried", "dead", "ignored", "released")},
    "next": LEASE_ANSWER,
}, required=("accepted", "duplicates", "retried", "dead"))

HEARTBEAT_REQUEST = obj({
    "lease_seconds": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 7 * 24 * 3600,
                      "nullable": True, "description": "new length; default the job's"},
})
HEARTBEAT_ANSWER = obj({"id": {"type": "string"}, "expires_at": {"type": "number"},
                        "job_state": {"type": "string"}}, required=("expires_at",))
RELEASE_ANSWER = obj({"released": integer(0)}, required=("released",))
APPEND_ANSWER = obj({"added": integer(0), "first_id": integer(0), "total": integer(0)})
DELETED = obj({"id": {"type": "string"}, "deleted": {"type": "boolean"}})
RETRIED = obj({"retried": integer(0), "state": {"type": "string"}})
DEAD_LIST = obj({"count": integer(0), "dead": {"type": "array", "items": obj({
    "id": integer(0), "attempts": integer(0), "error": {}, "worker": {"type": "string"},
    "at": {"type": "number"}, "history": {"type": "array", "items": {"type": "object"}}})}})
ATTEMPT = obj({"task": integer(0), "attempt": integer(1), "worker": {"type": "string"},
               "error": {}, "at": {"type": "number"}, "dead": {"type": "boolean"}})
ATTEMPT_LIST = obj({"attempts": {"type": "array", "items": ATTEMPT}})
FILE = obj({"name": {"type": "string"}, "size": integer(0), "sha256": {"type": "string"},
            "uploaded_by": {"type": "string"}, "at": {"type": "number"}})
FILE_LIST = obj({"files": {"type": "array", "items": FILE}})
WORKER_LIST = obj({"workers": {"type": "array", "items": obj({
    "worker": {"type": "string"}, "done": integer(0), "failed": integer(0),
    "expired": integer(0), "leases": integer(0), "last_seen": {"type": "number"},
    "rate": {"type": "number"}})}})
