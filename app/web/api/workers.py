"""Worker routes: lease, heartbeat, complete, release."""
from flask import Blueprint, Response, current_app, jsonify, request
from jobmaster import protocol

from ...domain import leases
from ...store.backend import backend
from .. import early_lease
from ..auth import WORKER, requires
from ..openapi import describe
from ..schemas import current as schemas
from ..validation import json_body, read_body

API = protocol.API_PREFIX
bp = Blueprint("workers", __name__)


def _respond(text, answer=None):
    response = Response(text, mimetype="application/json")
    if answer is not None and answer.retry_after is not None:
        response.headers["Retry-After"] = leases.retry_after_header(answer)
    return response


@bp.post(protocol.lease_path())
@describe("Lease a batch of tasks (ok), or learn to wait or that all is done",
          body="LEASE_REQUEST", ok="LEASE_ANSWER", tag="workers")
def lease():
    # Decided by app/web/early_lease.py before Flask built this request; only
    # a body it could not read up front is decided here, the same way.
    outcome = early_lease.take(request.environ)
    if outcome is None:
        outcome = early_lease.decide(early_lease.state(current_app), request.environ, read_body,
                                     schemas().LEASE_REQUEST)
    answer = outcome.answer()
    return _respond(answer.text, answer)


lease.required_role = WORKER  # checked inside the decision (published in OpenAPI)


@bp.post(API + "/leases/<lease_id>/heartbeat")
@requires(WORKER)
@describe("Extend a lease (a body is optional)", body="HEARTBEAT_REQUEST", ok="HEARTBEAT_ANSWER",
          tag="workers", errors=(400, 401, 403, 404, 409), body_required=False)
def heartbeat(lease_id):
    body = json_body(schemas().HEARTBEAT_REQUEST, allow_empty=True)
    return jsonify(leases.heartbeat(backend(), lease_id, body.get("lease_seconds")))


@bp.post(API + "/leases/<lease_id>/complete")
@requires(WORKER)
@describe("Report results (idempotent); optionally release the rest and lease the next batch",
          body="COMPLETE_REQUEST", ok="COMPLETE_ANSWER", tag="workers",
          errors=(400, 401, 403, 404, 413))
def complete(lease_id):
    body = json_body(schemas().COMPLETE_REQUEST)
    environ = request.environ
    doc, answer = leases.complete(backend(), lease_id, body, body.get("worker", ""),
                                  leases.idempotency_key(environ),
                                  leases.stale(environ, backend().config["STALE_SECONDS"]))
    return _respond(leases.merge(doc, answer), answer)


@bp.post(API + "/leases/<lease_id>/release")
@requires(WORKER)
@describe("Give every unfinished task of a lease back now", ok="RELEASE_ANSWER",
          tag="workers")
def release(lease_id):
    return jsonify(leases.release(backend(), lease_id))
