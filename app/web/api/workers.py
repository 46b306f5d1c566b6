"""Worker routes: lease, heartbeat, complete, release."""
from flask import Blueprint, Response, jsonify, request

from .. import early_lease, schemas
from ...domain import leases
from ..auth import WORKER, requires
from ..openapi import describe
from ...store.backend import backend
from ..validation import json_body

bp = Blueprint("workers", __name__, url_prefix="/api/v1")


def _respond(text, answer=None):
    response = Response(text, mimetype="application/json")
    if answer is not None and answer.retry_after is not None:
        response.headers["Retry-After"] = leases.retry_after_header(answer)
    return response


@bp.post("/lease")
@requires(WORKER)
@describe("Lease a batch of tasks (ok), or learn to wait or that all is done",
          body=schemas.LEASE_REQUEST, ok=schemas.LEASE_ANSWER, tag="workers")
def lease():
    early = early_lease.take(request.environ)
    if early is not None:  # leased before Flask built this request
        answer = early.answer()
    else:
        job_id, worker, max_tasks, key = leases.lease_request(json_body(schemas.LEASE_REQUEST),
                                                              request.environ)
        answer = leases.lease(backend(), worker, max_tasks, job_id, key)
    return _respond(answer.text, answer)


@bp.post("/leases/<lease_id>/heartbeat")
@requires(WORKER)
@describe("Extend a lease (a body is optional)", body=schemas.HEARTBEAT_REQUEST,
          ok=schemas.HEARTBEAT_ANSWER, tag="workers", errors=(400, 401, 403, 404, 409),
          body_required=False)
def heartbeat(lease_id):
    body = json_body(schemas.HEARTBEAT_REQUEST, allow_empty=True)
    return jsonify(leases.heartbeat(backend(), lease_id, body.get("lease_seconds")))


@bp.post("/leases/<lease_id>/complete")
@requires(WORKER)
@describe("Report results (idempotent); optionally release the rest and lease the next batch",
          body=schemas.COMPLETE_REQUEST, ok=schemas.COMPLETE_ANSWER, tag="workers",
          errors=(400, 401, 403, 404, 413))
def complete(lease_id):
    body = json_body(schemas.COMPLETE_REQUEST)
    doc, answer = leases.complete(backend(), lease_id, body, body.get("worker", ""),
                                  leases.idempotency_key(request.environ))
    return _respond(leases.merge(doc, answer), answer)


@bp.post("/leases/<lease_id>/release")
@requires(WORKER)
@describe("Give every unfinished task of a lease back now", ok=schemas.RELEASE_ANSWER,
          tag="workers")
def release(lease_id):
    return jsonify(leases.release(backend(), lease_id))
