"""Admin routes: launch, show and stop a job's worker fleet (docs/contract.md §10)."""
from flask import Blueprint, jsonify, request
from jobmaster import protocol

from ...domain import fleet
from ..auth import ADMIN, requires
from ...errors import BadRequest
from ..openapi import describe
from ...store.backend import backend, check_job_id
from ..schemas import current as schemas
from ..validation import json_body, validate

bp = Blueprint("fleet", __name__, url_prefix=protocol.jobs_path())


@bp.post("/<job_id>/fleet")
@requires(ADMIN)
@describe("Launch workers for a job (or, dry run, show what would be launched)",
          body="FLEET_REQUEST", ok="FLEET_ANSWER", status=202, also=(200,),
          errors=(400, 401, 403, 404, 409, 501))
def launch(job_id):
    body = json_body(schemas().FLEET_REQUEST)
    doc = fleet.launch(backend(), check_job_id(job_id), body, request.host_url)
    return jsonify(doc), 200 if body.get("dry_run") else 202


def _query():
    """The query as a FLEET_REQUEST body: ?dry_run=1[&workers=n (1)&launcher=...
    &image=...&concurrency=...]. Checked whenever given, dry run or not."""
    dry = request.args.get("dry_run")
    if dry is not None and dry not in ("0", "1"):
        raise BadRequest("?dry_run must be 0 or 1")
    body = {}
    for name in ("workers", "concurrency"):
        raw = request.args.get(name)
        if raw is not None:
            try:
                body[name] = int(raw)
            except ValueError:
                raise BadRequest("?%s must be an integer" % name) from None
    for name in ("launcher", "image"):
        if name in request.args:
            body[name] = request.args[name]
    if dry == "1":
        body.setdefault("workers", 1)  # the manifest's shape for one worker
        body["dry_run"] = True
    validate(dict(body, workers=body.get("workers", 1)), schemas().FLEET_REQUEST, path="query")
    return body


@bp.get("/<job_id>/fleet")
@requires(ADMIN)
@describe("What was launched for a job and what of it runs; ?dry_run=1&workers=n"
          "[&launcher=kubernetes]: the manifest a launch would send",
          ok="FLEET_VIEW", errors=(400, 401, 403, 404, 501),
          query={"dry_run": {"type": "integer", "enum": [0, 1]},
                 "workers": {"type": "integer", "minimum": 1,
                             "maximum": fleet.DEFAULT_MAX_WORKERS},
                 "concurrency": {"type": "integer", "minimum": 1, "maximum": 1024},
                 "launcher": {"type": "string", "enum": list(fleet.LAUNCHERS)},
                 "image": {"type": "string", "minLength": 1, "maxLength": 500}})
def show(job_id):
    job_id = check_job_id(job_id)
    query = _query()
    if query.get("dry_run"):
        return jsonify(fleet.launch(backend(), job_id, query, request.host_url))
    return jsonify(fleet.show(backend(), job_id))


@bp.delete("/<job_id>/fleet")
@requires(ADMIN)
@describe("Stop a job's fleet: workers finish running tasks and release the rest",
          ok="FLEET_STOPPED", errors=(400, 401, 403, 404, 409, 501))
def stop(job_id):
    return jsonify(fleet.stop(backend(), check_job_id(job_id)))
