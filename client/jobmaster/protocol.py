"""The wire contract of the jobmaster HTTP API (docs/contract.md §3), without I/O.

Paths, state words, answer words and defaults shared by the server and the
worker-side client. Like Flask's ``sansio`` package, this module does no I/O
and imports nothing outside the standard library, so both sides (and a pod
that installs only the client) can import it.
"""

#: Prefix of every versioned API path.
API_PREFIX = "/api/v1"

#: Default base URL of the master (nginx in front of the uWSGI instances).
DEFAULT_URL = "http://127.0.0.1:8080"

#: Environment variables the client and CLI read.
ENV_URL = "JOBMASTER_URL"
ENV_TOKEN = "JOBMASTER_TOKEN"

# Job states.
JOB_RUNNING = "running"
JOB_PAUSED = "paused"
JOB_CANCELLED = "cancelled"
JOB_COMPLETED = "completed"
JOB_STATES = (JOB_RUNNING, JOB_PAUSED, JOB_CANCELLED, JOB_COMPLETED)
#: States after which nothing will ever be handed out again.
JOB_FINAL_STATES = (JOB_CANCELLED, JOB_COMPLETED)

# Task states (the keys of a status document's ``counts``, besides "total").
TASK_PENDING = "pending"
TASK_LEASED = "leased"
TASK_DONE = "done"
TASK_DEAD = "dead"
TASK_STATES = (TASK_PENDING, TASK_LEASED, TASK_DONE, TASK_DEAD)

# The ``status`` word of a lease answer.
LEASE_OK = "ok"
LEASE_WAIT = "wait"
LEASE_DONE = "done"

# Error codes of ``{"error": code, "message": ...}`` bodies.
ERR_BAD_REQUEST = "bad_request"
ERR_UNAUTHORIZED = "unauthorized"
ERR_FORBIDDEN = "forbidden"
ERR_NOT_FOUND = "not_found"
ERR_CONFLICT = "conflict"
ERR_LEASE_LOST = "lease_lost"
ERR_TOO_LARGE = "too_large"
ERR_RATE_LIMITED = "rate_limited"
ERR_UNAVAILABLE = "unavailable"
ERR_METHOD_NOT_ALLOWED = "method_not_allowed"
ERR_UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

# Job settings and their defaults (what the server uses when a field is absent).
DEFAULT_BATCH_SIZE = 10
#: The server's default MAX_BATCH (a deployment may set another).
MAX_BATCH_SIZE = 1000
DEFAULT_LEASE_SECONDS = 300
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_PRIORITY = 0
MAX_NAME_LENGTH = 200
MAX_ATTEMPTS_LIMIT = 1000
MAX_PRIORITY = 1_000_000


def jobs_path():
    """``/api/v1/jobs``: create (POST) and list (GET) jobs."""
    return API_PREFIX + "/jobs"


def job_path(job_id, action=None):
    """``/api/v1/jobs/<id>[/<action>]``, e.g. ``job_path(j, "pause")``.

    ``action`` may contain slashes (``"dead/retry"``). The job id is
    percent-encoded so an opaque id can never escape its path segment.
    """
    path = "%s/jobs/%s" % (API_PREFIX, quote_segment(job_id))
    return path + "/" + action if action else path


def lease_path():
    """``/api/v1/lease``: ask for a batch of tasks."""
    return API_PREFIX + "/lease"


def lease_action_path(lease_id, action):
    """``/api/v1/leases/<lease>/<action>`` (heartbeat, complete, release)."""
    return "%s/leases/%s/%s" % (API_PREFIX, quote_segment(lease_id), action)


def quote_segment(value):
    """Percent-encode one path segment (no ``/`` survives)."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def ok_result(task_id, result=None):
    """One successful entry of a complete body's ``results``."""
    return {"id": task_id, "ok": True, "result": result}


def error_result(task_id, error):
    """One failed entry of a complete body's ``results``."""
    return {"id": task_id, "ok": False, "error": str(error)}
