"""Admin routes: jobs and their tasks, results, dead tasks and workers."""
import secrets

from flask import Blueprint, Response, jsonify, request, stream_with_context
from jobmaster import protocol

from ...domain import history, inspect, jobs, results as results_export, series
from ...domain.codec import MAX_SAFE, loads
from ...errors import BadRequest, NotFound, TooLarge
from ...store.backend import backend, check_job_id
from .. import items_body
from ..auth import ADMIN, requires
from ..openapi import describe
from ..schemas import current as schemas
from ..validation import parse_body, validate

bp = Blueprint("jobs", __name__, url_prefix=protocol.jobs_path())

_CONFLICT = (400, 401, 403, 404, 409)


def _int_arg(name, default, low, high):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("?%s must be an integer" % name) from None
    if not low <= value <= high:
        raise BadRequest("?%s must be between %d and %d" % (name, low, high))
    return value


@bp.post("")
@requires(ADMIN)
@describe("Create a job", body="JOB_CREATE", ok="JOB_STATUS", status=201,
          errors=(400, 401, 403, 413))
def create():
    raw = request.get_data(cache=True)
    if len(raw) <= items_body.STREAM_BYTES:
        doc = jobs.create(backend(), parse_body(raw, schemas().JOB_CREATE))
        return jsonify(doc), 201
    # A large body: its items are decoded and stored a chunk at a time.
    body, items = items_body.split(raw)
    validate(body, schemas().JOB_CREATE)
    if items is not None and len(items) > backend().config["MAX_ITEMS"]:
        # what the schema's maxItems says of a small body
        raise BadRequest("body.tasks.items: at most %d items" % backend().config["MAX_ITEMS"])
    return jsonify(jobs.create(backend(), body, items)), 201


@bp.get("")
@requires(ADMIN)
@describe("List jobs, newest first (?archived=true: the jobs gone from Redis, from the archive)",
          ok="JOB_LIST",
          query={"state": {"type": "string", "enum": list(jobs.STATES)},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                 "archived": {"type": "boolean"}}, errors=(400, 401, 403, 501))
def list_jobs():
    if _bool_arg("archived"):
        return jsonify(jobs=history.list_archived(backend(), _int_arg("limit", 100, 1, 1000)))
    state = request.args.get("state")
    if state is not None and state not in jobs.STATES:
        raise BadRequest("?state must be one of %s" % ", ".join(jobs.STATES))
    return jsonify(jobs=jobs.list_jobs(backend(), state, _int_arg("limit", 100, 1, 1000)))


def _bool_arg(name):
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest("?%s must be true or false" % name)
    return raw in ("true", "1")


@bp.get("/<job_id>")
@requires(ADMIN)
@describe("A job's status (from the archive, with archived: true, once gone from Redis)",
          ok="JOB_STATUS")
def status(job_id):
    b = backend()
    try:
        return jsonify(jobs.status(b, check_job_id(job_id)))
    except NotFound:
        return jsonify(history.archived_status(b, job_id))


def _state_route(action, summary):
    @requires(ADMIN)
    @describe(summary, ok="JOB_STATUS", errors=_CONFLICT)
    def view(job_id):
        return jsonify(jobs.set_state(backend(), check_job_id(job_id), action))

    view.__name__ = action
    bp.add_url_rule("/<job_id>/" + action, action, view, methods=["POST"])


_state_route("pause", "Pause a job: leases answer wait")
_state_route("resume", "Resume a paused job")
_state_route("cancel", "Cancel a job: leases answer done")


@bp.delete("/<job_id>")
@requires(ADMIN)
@describe("Delete a job and everything it holds", ok="DELETED")
def delete(job_id):
    return jsonify(jobs.delete(backend(), check_job_id(job_id)))


def _ndjson(raw):
    return [loads(line) for line in raw.splitlines() if line.strip()]


def _items_from_body(limit):
    """A JSON array, or NDJSON (one item per line).

    As ``application/json`` the body is one JSON array; a scalar or an
    object there is a 400, not one item (several lines that are not one
    JSON document are still read as NDJSON). Any other type is NDJSON,
    unless it starts with ``[``.
    """
    raw = request.get_data(cache=True)
    text = raw.strip()
    if not text:
        raise BadRequest("a JSON array or NDJSON body is required")
    try:
        if request.mimetype == "application/json":
            try:
                items = loads(raw)
            except ValueError:
                items = _ndjson(raw)
                if len(items) < 2:
                    raise
            else:
                if not isinstance(items, list):
                    raise BadRequest("body: must be an array of items (or NDJSON sent as "
                                     "application/x-ndjson)")
        elif text[:1] == b"[":
            items = loads(raw)
        else:
            items = _ndjson(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is neither a JSON array nor NDJSON") from None
    if len(items) > limit:
        raise TooLarge("at most %d items per request" % limit)
    return items


@bp.post("/<job_id>/tasks")
@requires(ADMIN)
@describe("Add items to an unsealed items job (JSON array or NDJSON)",
          body={"type": "array", "items": {}}, ok="APPEND_ANSWER",
          errors=(400, 401, 403, 404, 409, 413))
def append(job_id):
    check_job_id(job_id)
    items = _items_from_body(backend().config["MAX_ITEMS"])
    # An Idempotency-Key makes a retried upload add its items only once.
    token = request.headers.get("Idempotency-Key", "")[:128] or secrets.token_hex(8)
    return jsonify(jobs.append(backend(), job_id, items, token))


@bp.post("/<job_id>/seal")
@requires(ADMIN)
@describe("Seal a job: no more items; it completes when all are done", ok="JOB_STATUS")
def seal(job_id):
    return jsonify(jobs.seal(backend(), check_job_id(job_id)))


@bp.get("/<job_id>/results")
@requires(ADMIN)
@describe("Results of done tasks in task-id order, one JSON object per line (each done task "
          "once, archived or not); ?ok=false: the tasks that failed for good",
          content="application/x-ndjson", ok={"type": "string"},
          query={"after": {"type": "integer", "minimum": -1, "maximum": MAX_SAFE},
                 "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SAFE},
                 "ok": {"type": "boolean"}})
def results(job_id):
    b = backend()
    check_job_id(job_id)
    lines = results_export.export(b, job_id, after=_int_arg("after", -1, -1, MAX_SAFE),
                                  limit=_int_arg("limit", 0, 1, MAX_SAFE), ok=_bool_arg("ok"))

    return Response(stream_with_context(_chunks(lines)), mimetype="application/x-ndjson")


#: Bytes of NDJSON per piece of a streamed answer. uWSGI and gunicorn write
#: each piece the app yields with its own syscall and nginx reads each: one
#: piece per line cost 100,000 writes for 100,000 results (strace of a
#: swarm's download); pieces of 64 KiB, about 700 lines each.
CHUNK_BYTES = 64 * 1024


def _chunks(lines):
    """The lines, newline-terminated, joined into pieces of ~CHUNK_BYTES."""
    piece, size = [], 0
    for line in lines:
        piece.append(line)
        size += len(line) + 1
        if size >= CHUNK_BYTES:
            yield "\n".join(piece) + "\n"
            piece, size = [], 0
    if piece:
        yield "\n".join(piece) + "\n"


@bp.get("/<job_id>/attempts")
@requires(ADMIN)
@describe("Failed and expired attempts (archive only), by task and attempt",
          ok="ATTEMPT_LIST", errors=(400, 401, 403, 404, 501),
          query={"task": {"type": "integer", "minimum": 0, "maximum": MAX_SAFE},
                 "limit": {"type": "integer", "minimum": 1, "maximum": 100000}})
def attempts(job_id):
    task = _int_arg("task", None, 0, MAX_SAFE)
    return jsonify(history.attempts(backend(), check_job_id(job_id), task,
                                    _int_arg("limit", 1000, 1, 100000)))


@bp.get("/<job_id>/dead")
@requires(ADMIN)
@describe("Dead tasks (attempts used up)", ok="DEAD_LIST",
          query={"limit": {"type": "integer", "minimum": 1, "maximum": 100000}})
def dead(job_id):
    b = backend()
    check_job_id(job_id)
    limit = _int_arg("limit", 1000, 1, 100000)
    if history.job_exists(b, job_id) == "archive":
        out = [loads(line) for line in results_export.export(b, job_id, limit=limit, ok=False)]
        out = [{"id": d["id"], "attempts": d["attempt"], "error": d["error"], "worker": d["worker"],
                "at": d["finished_at"]} for d in out]
        count = len(out)
    else:
        out = []
        for text in jobs.iter_hash(b, job_id, "dead"):
            out.append(loads(text))
            if len(out) >= limit:
                break
        out.sort(key=lambda d: d["id"])
        count = b.redis.hlen(b.keys.job_key(job_id, "dead"))
    # With the archive, every failed or expired attempt of each, not just the last.
    histories = history.histories(b, job_id, [d["id"] for d in out])
    if b.archive is not None:
        for d in out:
            d["history"] = histories.get(d["id"], [])
    return jsonify(count=count, dead=out)


@bp.post("/<job_id>/dead/retry")
@requires(ADMIN)
@describe("Give every dead task a fresh set of attempts", ok="RETRIED", errors=_CONFLICT)
def retry_dead(job_id):
    return jsonify(jobs.retry_dead(backend(), check_job_id(job_id)))


_TASK_PATH = {"task": {"type": "integer", "minimum": 0}}


def _task_id(raw):
    """A task id from the path: a decimal integer, or no such task."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise NotFound("no such task: %s" % raw[:40])
    return int(raw)


@bp.post("/<job_id>/dead/<task>/retry")
@requires(ADMIN)
@describe("Give one dead task a fresh set of attempts (409 if it is not dead)", ok="RETRIED",
          errors=_CONFLICT, path=_TASK_PATH)
def retry_one_dead(job_id, task):
    return jsonify(jobs.retry_dead(backend(), check_job_id(job_id), _task_id(task)))


@bp.get("/<job_id>/workers")
@requires(ADMIN)
@describe("Per-worker figures of a job", ok="WORKER_LIST")
def workers(job_id):
    return jsonify(jobs.workers(backend(), check_job_id(job_id)))



@bp.get("/<job_id>/series")
@requires(ADMIN)
@describe("Throughput over time: tasks done and attempts failed per interval, oldest first",
          ok="SERIES", query={"resolution": {"type": "string", "enum": ["s", "m"]}})
def series_(job_id):
    return jsonify(series.document(backend(), check_job_id(job_id),
                                   request.args.get("resolution")))


@bp.get("/<job_id>/tasks/<task>")
@requires(ADMIN)
@describe("One task: payload, state, attempts, the lease holding it, result or dead record",
          ok="TASK_DETAIL", path=_TASK_PATH)
def task(job_id, task):
    return jsonify(inspect.task(backend(), check_job_id(job_id), _task_id(task)))
