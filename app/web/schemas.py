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
    # No "type": one of two shapes, checked by app.domain.jobs.check_command.
    "command": {"description": "what a launched worker runs per task: an argv list of strings, "
                               "or a string run by sh -c; {} stands for the task's payload"},
}, required=("name",))

COUNTS = obj({k: integer(0) for k in ("total", "pending", "leased", "done", "dead")})

JOB_STATUS = obj({
    "id": {"type": "string"}, "name": {"type": "string"},
    "state": {"type": "string", "enum": ["running", "paused", "cancelled", "completed"]},
    "kind": {"type": "string", "enum": ["range", "items"]},
    "created_at": {"type": "number"}, "finished_at": {"type": "number", "nullable": True},
    "sealed": {"type": "boolean"},
    "settings": obj({"batch_size": integer(1), "lease_seconds": {"type": "number"},
                     "max_attempts": integer(1), "priority": integer(),
                     "command": {"nullable": True, "description": "argv list or sh -c string"}}),
    "params": {"type": "object"}, "counts": COUNTS, "rate": {"type": "number"},
    "eta_seconds": {"type": "number", "nullable": True},
    "makespan_seconds": {"type": "number", "nullable": True,
                         "description": "finished jobs: created to finished"},
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
    "command": {"description": "the job's command, when it has one (DESIGN §10)"},
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
    "at": {"type": "number"}})}})
WORKER_LIST = obj({"workers": {"type": "array", "items": obj({
    "worker": {"type": "string"}, "done": integer(0), "failed": integer(0),
    "expired": integer(0), "leases": integer(0), "last_seen": {"type": "number"},
    "rate": {"type": "number"}})}})

FLEET_REQUEST = obj({
    "workers": integer(1, 100000, description="how many workers (pods or processes)"),
    "dry_run": {"type": "boolean", "description": "answer what would be started; start nothing"},
    "launcher": {"type": "string", "enum": ["local", "kubernetes"],
                 "description": "the launcher of a dry run (a launch uses the configured one)"},
    "image": string(1, 500, description="worker image (kubernetes); default JOBMASTER_WORKER_IMAGE"),
    "concurrency": integer(1, 1024, description="tasks each worker runs at once"),
}, required=("workers",))
FLEET_ANSWER = obj({
    "launcher": {"type": "string"}, "launched": integer(0), "ref": {"type": "string", "nullable": True},
    "dry_run": {"type": "boolean"}, "workers": {"type": "array", "items": {"type": "string"}},
    "manifest": {"type": "object", "description": "dry run: what would be started"},
}, required=("launcher", "launched", "ref"))
FLEET_STATUS = obj({
    "job": {"type": "string"}, "launcher": {"type": "string", "nullable": True},
    "launched": integer(0), "running": integer(0),
    "launches": {"type": "array", "items": {"type": "object"}},
}, required=("job", "launches"))
FLEET_STOPPED = obj({"job": {"type": "string"}, "stopped": integer(0)})
SERIES = obj({
    "job": {"type": "string"}, "resolution": {"type": "string", "enum": ["s", "m"]},
    "interval_seconds": {"type": "number"}, "start": {"type": "number"}, "now": {"type": "number"},
    "first_activity": {"type": "number", "nullable": True},
    "done": {"type": "array", "items": integer(0)},
    "failed": {"type": "array", "items": integer(0), "description": "reported or expired attempts"},
}, required=("interval_seconds", "start", "done", "failed"))
TASK_DETAIL = obj({
    "job": {"type": "string"}, "id": integer(0),
    "state": {"type": "string", "enum": ["pending", "leased", "done", "dead"]},
    "payload": {}, "attempts": integer(0), "failed_attempts": integer(0),
    "lease": {"type": "object", "nullable": True}, "result": {"type": "object", "nullable": True},
    "dead": {"type": "object", "nullable": True},
    "history": {"type": "array", "items": obj({
        "attempt": integer(0), "worker": {"type": "string"}, "outcome": {"type": "string"},
        "error": {}, "at": {"type": "number"}})},
}, required=("id", "state"))
ALL_WORKERS = obj({"now": {"type": "number"}, "workers": {"type": "array", "items": obj({
    "worker": {"type": "string"}, "job": {"type": "string"}, "job_name": {"type": "string"},
    "job_state": {"type": "string"}, "done": integer(0), "failed": integer(0),
    "expired": integer(0), "leases": integer(0), "last_seen": {"type": "number"},
    "rate": {"type": "number"}, "silent_seconds": {"type": "number"},
    "stale": {"type": "boolean"}})}})
