"""The API's request and response schemas (JSON Schema, OpenAPI 3.0 dialect).

Request schemas are enforced by :func:`app.web.validation.validate`; all of them
are published by :mod:`app.web.openapi`. Limits come from the defaults in
:mod:`app.config` (a deployment that raises them still validates in code).
"""
from jobmaster import protocol

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
    }, description="exactly one of range or items", additionalProperties=False),
    "params": {"type": "object", "description": "returned with every lease"},
    "batch_size": integer(1, MAX_BATCH, description="tasks per lease when the worker does not say"),
    "lease_seconds": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 7 * 24 * 3600},
    "max_attempts": integer(1, 1000),
    "priority": integer(-1_000_000, 1_000_000, description="higher first"),
    "sealed": {"type": "boolean", "description": "false: add items later, then seal"},
    "max_dead": integer(0, 1_000_000_000, nullable=True,
                        description="failure budget: the job fails when more tasks than this "
                                    "are dead (default null: no limit)"),
    "retry_backoff": {"type": "number", "minimum": 0, "maximum": 3600,
                      "description": "seconds: a failed task is leasable again after "
                                     "retry_backoff * 2^(attempt-1) (at most an hour, jittered)"},
    "task_timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                     "maximum": 7 * 24 * 3600, "nullable": True,
                     "description": "seconds one task may run; returned with every lease, "
                                    "enforced by the worker library and CLI"},
    "batching": {"type": "string", "enum": list(protocol.BATCHINGS),
                 "description": "fixed: the ask or batch_size; guided: "
                                "min(ask, ceil(pending / (2 * active workers))), at least 1"},
    "speculate": {"type": "boolean",
                  "description": "backup copies of straggling tasks for workers that would wait"},
    "webhook": obj({"url": string(1, 2000, description="http(s) URL; POSTed job.finished"),
                    "secret": string(0, 1000, description="HMAC-SHA256 key of the signature")},
                   required=("url",), additionalProperties=False, nullable=True),
}, required=("name",), additionalProperties=False)

SCHEDULE_CREATE = obj({
    "name": string(1, 200),
    "cron": string(1, 200, description='5-field cron expression, e.g. "0 2 * * 1" '
                                       "(Mondays at 02:00)"),
    "timezone": string(1, 64, description="IANA time zone the cron is read in (default UTC)"),
    "job": JOB_CREATE,
}, required=("name", "cron", "job"), additionalProperties=False)

SCHEDULE = obj({
    "id": {"type": "string"}, "name": {"type": "string"}, "cron": {"type": "string"},
    "timezone": {"type": "string"}, "job": {"type": "object"},
    "created_at": {"type": "number"},
    "next_run": {"type": "number", "description": "the next slot (epoch seconds)"},
    "last_job": {"type": "string", "nullable": True,
                 "description": "the job its latest slot (or run) made"},
    "last_run": {"type": "number", "nullable": True, "description": "its latest slot"},
}, required=("id", "name", "cron", "timezone", "next_run"))
SCHEDULE_LIST = obj({"schedules": {"type": "array", "items": SCHEDULE}}, required=("schedules",))

COUNTS = obj({k: integer(0) for k in ("total", "pending", "leased", "done", "dead", "backoff")},
             description="pending + leased + done + dead == total; backoff is part of pending")

JOB_STATUS = obj({
    "id": {"type": "string"}, "name": {"type": "string"},
    "state": {"type": "string", "enum": list(protocol.JOB_STATES)},
    "outcome": {"type": "string", "enum": list(protocol.OUTCOMES), "nullable": True,
                "description": "set once the job finished"},
    "schedule": {"type": "string", "nullable": True, "description": "the schedule that made it"},
    "webhook": obj({"state": {"type": "string", "enum": list(protocol.WEBHOOK_STATES)},
                    "attempts": integer(0), "last_error": {"type": "string", "nullable": True}},
                   description="delivery of the finish webhook (jobs that have one)"),
    "kind": {"type": "string", "enum": ["range", "items"]},
    "created_at": {"type": "number"}, "finished_at": {"type": "number", "nullable": True},
    "sealed": {"type": "boolean"},
    "settings": obj({"batch_size": integer(1), "lease_seconds": {"type": "number"},
                     "max_attempts": integer(1), "priority": integer(),
                     "max_dead": integer(0, nullable=True), "retry_backoff": {"type": "number"},
                     "task_timeout": {"type": "number", "nullable": True},
                     "batching": {"type": "string"}, "speculate": {"type": "boolean"},
                     "webhook": obj({"url": {"type": "string"}}, nullable=True)}),
    "params": {"type": "object"}, "counts": COUNTS, "rate": {"type": "number"},
    "eta_seconds": {"type": "number", "nullable": True},
}, required=("id", "name", "state", "counts"))

JOB_LIST = obj({"jobs": {"type": "array", "items": JOB_STATUS}}, required=("jobs",))

LEASE_REQUEST = obj({
    "worker": string(1, 200, description="a name for this worker (pod)"),
    "max_tasks": integer(1, MAX_BATCH, nullable=True),
    "job": {"type": "string", "maxLength": 64, "nullable": True,
            "description": "lease from this job only; absent: any running job"},
}, required=("worker",))

TASK = obj({"id": integer(0), "attempt": integer(1), "payload": {},
            "speculative": {"type": "boolean",
                            "description": "a backup copy of a straggler's task (speculate)"}})

LEASE_ANSWER = obj({
    "status": {"type": "string", "enum": ["ok", "wait", "done"]},
    "lease": obj({"id": {"type": "string"}, "job": {"type": "string"},
                  "expires_at": {"type": "number"}, "lease_seconds": {"type": "number"}}),
    "params": {"type": "object"},
    "task_timeout": {"type": "number",
                     "description": "seconds a task may run (jobs that set it)"},
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
