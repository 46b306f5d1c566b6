"""The API's request and response schemas (JSON Schema, OpenAPI 3.0 dialect).

Request schemas are enforced by :func:`app.web.validation.validate`; all of
them are published by :mod:`app.web.openapi`. They are built per
application from its configuration (:class:`Schemas`), so a limit such as
MAX_BATCH is enforced and published as the deployment set it. Views and
``@describe`` name a schema by its attribute (``"JOB_CREATE"``).
"""
from flask import current_app
from jobmaster import protocol

from ..domain.codec import MAX_SAFE
from .validation import integer, obj, string

CLOSED = {"additionalProperties": False}  # request objects: an unknown field is a 400
# An http(s) URL with a host (name or IPv4) and a port in range: what
# app/domain/settings.py check_url accepts, said in the document too.
HTTP_URL = (r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
            r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
            r"([/?#][!-~]*)?$")


class Schemas:
    """Every schema of one application, its limits taken from ``config``."""

    def __init__(self, config):
        c = config
        lease_seconds = {"type": "number", "minimum": 0.001, "maximum": c["MAX_LEASE_SECONDS"]}
        self.ERROR = obj({"error": {"type": "string"}, "message": {"type": "string"}},
                         required=("error", "message"))

        self.JOB_CREATE = obj({
            "name": string(1, protocol.MAX_NAME_LENGTH),
            "tasks": obj({
                "range": {"type": "array", "items": integer(-MAX_SAFE, MAX_SAFE), "minItems": 2,
                          "maxItems": 2,
                          "description": "[start, stop): ids 0..stop-start-1, payload start+id; "
                                         "stop >= start, at most MAX_TOTAL tasks"},
                "items": {"type": "array", "items": {}, "maxItems": c["MAX_ITEMS"],
                          "description": "one task per item; the item is its payload"},
            }, minProperties=1, maxProperties=1, description="exactly one of range or items",
                **CLOSED),
            "params": {"type": "object", "description": "returned with every lease"},
            "batch_size": integer(1, c["MAX_BATCH"], description="tasks per lease when the worker does not say"),
            "lease_seconds": lease_seconds,
            "max_attempts": integer(1, protocol.MAX_ATTEMPTS_LIMIT),
            "priority": integer(-protocol.MAX_PRIORITY, protocol.MAX_PRIORITY, description="higher first"),
            "sealed": {"type": "boolean", "description": "false: add items later, then seal"},
            "max_dead": integer(0, c["MAX_TOTAL"], nullable=True,
                                description="failure budget: the job fails when more tasks than "
                                            "this are dead (default null: no limit)"),
            "retry_backoff": {"type": "number", "minimum": 0,
                              "maximum": protocol.MAX_RETRY_BACKOFF_DELAY,
                              "description": "seconds: a failed task is leasable again after "
                                             "retry_backoff * 2^(attempt-1) (at most an hour, "
                                             "up to a fifth less: jitter)"},
            "task_timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                             "maximum": c["MAX_LEASE_SECONDS"], "nullable": True,
                             "description": "seconds one task may run; returned with every lease, "
                                            "enforced by the worker library and CLI"},
            "batching": {"type": "string", "enum": list(protocol.BATCHINGS),
                         "description": "fixed: the ask or batch_size; guided: min(ask, "
                                        "ceil(pending / (2 * active workers))), at least 1"},
            "speculate": {"type": "boolean", "description": "backup copies of straggling tasks "
                                                            "for workers that would wait"},
            "webhook": obj({"url": string(1, 2000, pattern=HTTP_URL,
                                          description="http(s) URL with a host name or IPv4 "
                                                      "address; POSTed job.finished",
                                          **{"x-message": "must be an http:// or https:// URL "
                                                          "with a host"}),
                            "secret": string(0, 1000, description="HMAC-SHA256 key of the "
                                                                  "X-Jobmaster-Signature")},
                           required=("url",), nullable=True, **CLOSED),
            "command": {"anyOf": [string(1, 100000), {"type": "array", "minItems": 1,
                                                      "maxItems": 10000,
                                                      "items": string(1, 100000)}],
                        "description": "what a launched worker runs per task: an argv list of "
                                       "strings, or a string run by sh -c; {} stands for the "
                                       "task's payload",
                        "x-message": "a non-empty list of strings (argv), or a string (run by "
                                     "sh -c)"},
        }, required=("name",), **CLOSED, anyOf=[
            # an items job, sealed or not
            obj({"tasks": obj({}, required=("items",))}, required=("tasks",)),
            # a range job, always sealed
            obj({"tasks": obj({}, required=("range",)),
                 "sealed": {"type": "boolean", "enum": [True]}}, required=("tasks",)),
            # no tasks yet: an items job that says it is not sealed
            obj({"sealed": {"type": "boolean", "enum": [False]},
                 "tasks": obj({}, required=("items",))}, required=("sealed",)),
        ], **{"x-message": 'needs tasks (range or items), or "sealed": false to add items '
                           "later; a range job is always sealed"})

        self.SCHEDULE_CREATE = obj({
            "name": string(1, protocol.MAX_NAME_LENGTH),
            "cron": string(1, 200, description='5-field cron expression, e.g. "0 2 * * 1" '
                                               "(Mondays at 02:00)"),
            "timezone": string(1, 64, description="IANA time zone the cron is read in "
                                                  "(default UTC)"),
            "job": self.JOB_CREATE,
        }, required=("name", "cron", "job"), **CLOSED)

        self.SCHEDULE = obj({
            "id": {"type": "string"}, "name": {"type": "string"}, "cron": {"type": "string"},
            "timezone": {"type": "string"}, "job": {"type": "object"},
            "created_at": {"type": "number"},
            "next_run": {"type": "number", "description": "the next slot (epoch seconds)"},
            "last_job": {"type": "string", "nullable": True,
                         "description": "the job its latest slot (or run) made"},
            "last_run": {"type": "number", "nullable": True, "description": "its latest slot"},
        }, required=("id", "name", "cron", "timezone", "next_run"))
        self.SCHEDULE_LIST = obj({"schedules": {"type": "array", "items": self.SCHEDULE}},
                                 required=("schedules",))

        self.TOKEN_REQUEST = obj({
            "ttl_seconds": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                            "maximum": protocol.MAX_TOKEN_TTL_SECONDS, "nullable": True,
                            "description": "lifetime (default 7 days)"},
        }, **CLOSED)
        self.TOKEN = obj({"token": {"type": "string", "description": "shown once: only its "
                                                                    "SHA-256 is kept"},
                          "job": {"type": "string"}, "expires_at": {"type": "number"}},
                         required=("token", "expires_at"))
        self.REVOKED = obj({"revoked": integer(0)}, required=("revoked",))

        self.COUNTS = obj({k: integer(0) for k in ("total",) + protocol.TASK_STATES + ("backoff",)},
                          description="pending + leased + done + dead == total; backoff (jobs "
                                      "with retry_backoff) is the part of pending backing off")

        self.JOB_STATUS = obj({
            "id": {"type": "string"}, "name": {"type": "string"},
            "state": {"type": "string", "enum": list(protocol.JOB_STATES)},
            "outcome": {"type": "string", "enum": list(protocol.OUTCOMES), "nullable": True,
                        "description": "set once the job finished"},
            "schedule": {"type": "string", "nullable": True,
                         "description": "the schedule that made it"},
            "webhook": obj({"state": {"type": "string", "enum": list(protocol.WEBHOOK_STATES)},
                            "attempts": integer(0),
                            "last_error": {"type": "string", "nullable": True}},
                           description="delivery of the finish webhook (jobs that have one)"),
            "kind": {"type": "string", "enum": ["range", "items"]},
            "created_at": {"type": "number"}, "finished_at": {"type": "number", "nullable": True},
            "sealed": {"type": "boolean"},
            "settings": obj({"batch_size": integer(1), "lease_seconds": {"type": "number"},
                             "max_attempts": integer(1), "priority": integer(),
                             "max_dead": integer(0, nullable=True),
                             "retry_backoff": {"type": "number"},
                             "task_timeout": {"type": "number", "nullable": True},
                             "batching": {"type": "string", "enum": list(protocol.BATCHINGS)},
                             "speculate": {"type": "boolean"},
                             "webhook": obj({"url": {"type": "string"}}, nullable=True),
                             "command": {"description": "argv list or sh -c string; only "
                                                        "jobs that have one"}}),
            "params": {"type": "object"}, "counts": self.COUNTS, "rate": {"type": "number"},
            "eta_seconds": {"type": "number", "nullable": True},
            "makespan_seconds": {"type": "number", "nullable": True,
                                 "description": "finished jobs: created to finished"},
            "archived": {"type": "boolean", "description": "with the archive: true when the "
                         "job's Redis state is gone and this document comes from MongoDB"},
            "archive": obj({"archived": integer(0), "backlog": integer(0)},
                           description="with the archive: results in MongoDB, and still "
                           "waiting in Redis"),
        }, required=("id", "name", "state", "counts"))

        self.JOB_LIST = obj({"jobs": {"type": "array", "items": self.JOB_STATUS}}, required=("jobs",))

        self.LEASE_REQUEST = obj({
            "worker": string(1, protocol.MAX_NAME_LENGTH, description="a name for this worker (pod)"),
            "max_tasks": integer(1, c["MAX_BATCH"], nullable=True),
            "job": {"type": "string", "maxLength": 64, "nullable": True,
                    "description": "lease from this job only; absent: any running job"},
        }, required=("worker",), **CLOSED)

        self.TASK = obj({"id": integer(0), "attempt": integer(1), "payload": {},
                         "speculative": {"type": "boolean", "description": "a backup copy of a "
                                                                           "straggler's task"}})

        self.LEASE_ANSWER = obj({
            "status": {"type": "string", "enum": [protocol.LEASE_OK, protocol.LEASE_WAIT, protocol.LEASE_DONE]},
            "lease": obj({"id": {"type": "string"}, "job": {"type": "string"},
                          "expires_at": {"type": "number"}, "lease_seconds": {"type": "number"}}),
            "params": {"type": "object"},
            "task_timeout": {"type": "number",
                             "description": "seconds a task may run (jobs that set it)"},
            "command": {"description": "the job's command, when it has one (docs/contract.md §10)"},
            "tasks": {"type": "array", "items": self.TASK},
            "retry_after": {"type": "number"},
        }, required=("status",))

        self.RESULT = obj({
            "id": integer(0, MAX_SAFE),
            "ok": {"type": "boolean"},
            "result": {"description": "any JSON value (ok results)"},
            "error": {"description": "what went wrong (failed results)"},
        }, required=("id", "ok"), **CLOSED)

        self.COMPLETE_REQUEST = obj({
            "worker": string(1, protocol.MAX_NAME_LENGTH, description="defaults to the lease's worker"),
            "results": {"type": "array", "items": self.RESULT, "maxItems": c["MAX_RESULTS_PER_CALL"]},
            "release": {"type": "boolean", "description": "give back the unreported rest now"},
            "next": obj({"max_tasks": integer(1, c["MAX_BATCH"], nullable=True)}, nullable=True,
                        description="also lease the next batch in this call", **CLOSED),
        }, **CLOSED)

        self.COMPLETE_ANSWER = obj({
            **{k: integer(0) for k in ("accepted", "duplicates", "retried", "dead", "ignored", "released")},
            "next": self.LEASE_ANSWER,
        }, required=("accepted", "duplicates", "retried", "dead"))

        self.HEARTBEAT_REQUEST = obj({
            "lease_seconds": {**lease_seconds, "nullable": True,
                              "description": "new length; default (and at most) the job's lease_seconds"},
        }, **CLOSED)
        self.HEARTBEAT_ANSWER = obj({"id": {"type": "string"}, "expires_at": {"type": "number"},
                                "job_state": {"type": "string"}}, required=("expires_at",))
        self.RELEASE_ANSWER = obj({"released": integer(0)}, required=("released",))
        self.APPEND_ANSWER = obj({"added": integer(0), "first_id": integer(0), "total": integer(0)})
        self.DELETED = obj({"id": {"type": "string"}, "deleted": {"type": "boolean"}})
        self.RETRIED = obj({"retried": integer(0), "state": {"type": "string"}})
        self.ATTEMPT = obj({"task": integer(0), "attempt": integer(1), "worker": {"type": "string"},
                            "error": {}, "at": {"type": "number"}, "dead": {"type": "boolean"}})
        self.ATTEMPT_LIST = obj({"attempts": {"type": "array", "items": self.ATTEMPT}})
        self.DEAD_LIST = obj({"count": integer(0), "dead": {"type": "array", "items": obj({
            "id": integer(0), "attempts": integer(0), "error": {}, "worker": {"type": "string"},
            "at": {"type": "number"},
            "history": {"type": "array", "items": self.ATTEMPT,
                        "description": "with the archive: every failed or expired attempt"}})}})
        self.FILE = obj({"name": {"type": "string"}, "size": integer(0), "sha256": {"type": "string"},
                         "uploaded_by": {"type": "string"}, "at": {"type": "number"}})
        self.FILE_LIST = obj({"files": {"type": "array", "items": self.FILE}})
        self.WORKER_LIST = obj({"workers": {"type": "array", "items": obj({
            "worker": {"type": "string"}, "done": integer(0), "failed": integer(0),
            "expired": integer(0), "leases": integer(0), "last_seen": {"type": "number"},
            "rate": {"type": "number"}})}})
        self._console(c)

    def _console(self, c):
        """The fleet and console routes' schemas (docs/contract.md §10)."""
        self.FLEET_REQUEST = obj({
            "workers": integer(1, c["FLEET_MAX_WORKERS"],
                               description="how many workers (pods or processes)"),
            "dry_run": {"type": "boolean", "description": "answer what would be started; start nothing"},
            "launcher": {"type": "string", "enum": ["local", "kubernetes"],
                         "description": "the launcher of a dry run (a launch uses the configured one)"},
            "image": string(1, 500, description="worker image (kubernetes); default JOBMASTER_WORKER_IMAGE"),
            "concurrency": integer(1, 1024, description="tasks each worker runs at once"),
        }, required=("workers",), **CLOSED)
        self.FLEET_ANSWER = obj({
            "launcher": {"type": "string"}, "launched": integer(0),
            "ref": {"type": "string", "nullable": True}, "dry_run": {"type": "boolean"},
            "workers": {"type": "array", "items": {"type": "string"}},
            "manifest": {"type": "object", "description": "dry run: what would be started"},
        }, required=("launcher", "launched", "ref"))
        self.FLEET_STATUS = obj({
            "job": {"type": "string"}, "launcher": {"type": "string", "nullable": True},
            "launched": integer(0), "running": integer(0),
            "launches": {"type": "array", "items": {"type": "object"}},
        }, required=("job", "launches"))
        self.FLEET_STOPPED = obj({"job": {"type": "string"}, "stopped": integer(0)})
        # GET .../fleet: what runs, or with ?dry_run=1 what a launch would start.
        self.FLEET_VIEW = {"anyOf": [self.FLEET_STATUS, self.FLEET_ANSWER]}
        self.SERIES = obj({
            "job": {"type": "string"}, "resolution": {"type": "string", "enum": ["s", "m"]},
            "interval_seconds": {"type": "number"}, "start": {"type": "number"},
            "now": {"type": "number"}, "first_activity": {"type": "number", "nullable": True},
            "done": {"type": "array", "items": integer(0)},
            "failed": {"type": "array", "items": integer(0),
                       "description": "reported or expired attempts"},
        }, required=("interval_seconds", "start", "done", "failed"))
        self.TASK_DETAIL = obj({
            "job": {"type": "string"}, "id": integer(0),
            "state": {"type": "string", "enum": ["pending", "leased", "done", "dead"]},
            "payload": {}, "attempts": integer(0), "failed_attempts": integer(0),
            "lease": {"type": "object", "nullable": True},
            "result": {"type": "object", "nullable": True},
            "dead": {"type": "object", "nullable": True},
            "history": {"type": "array", "items": obj({
                "attempt": integer(0), "worker": {"type": "string"},
                "outcome": {"type": "string",
                            "enum": ["running", "ok", "failed", "expired", "dead"]},
                "error": {}, "at": {"type": "number"}}),
                "description": "by attempt; with the archive, every failed or expired one "
                               "too (the newest INSPECT_ATTEMPTS)"},
            "archived": {"type": "boolean", "description": "a task of a job gone from Redis, "
                                                           "from the archive (no payload)"},
            "attempt_log": {"type": "string", "enum": ["archive", "unreachable", "none"],
                            "description": "where the earlier attempts come from: the "
                                           "archive, or none (only the archive keeps them)"},
        }, required=("id", "state"))
        self.ALL_WORKERS = obj({"now": {"type": "number"}, "workers": {"type": "array", "items": obj({
            "worker": {"type": "string"}, "job": {"type": "string"}, "job_name": {"type": "string"},
            "job_state": {"type": "string"}, "done": integer(0), "failed": integer(0),
            "expired": integer(0), "leases": integer(0), "last_seen": {"type": "number"},
            "rate": {"type": "number"}, "silent_seconds": {"type": "number"},
            "stale": {"type": "boolean"}})}})


def current():
    """The schemas of the application handling this request."""
    return current_app.extensions["jobmaster.schemas"]


def init_app(app):
    app.extensions["jobmaster.schemas"] = Schemas(app.config)
