"""Admin routes: per-job worker tokens (docs/contract.md §9)."""
from flask import Blueprint, jsonify
from jobmaster import protocol

from ...domain import tokens
from ...store.backend import backend, check_job_id
from ..auth import ADMIN, requires
from ..openapi import describe
from ..schemas import current as schemas
from ..validation import json_body

bp = Blueprint("tokens", __name__, url_prefix=protocol.jobs_path())


@bp.post("/<job_id>/tokens")
@requires(ADMIN)
@describe("Issue a worker token valid for this job only (stored hashed; expires)",
          body="TOKEN_REQUEST", ok="TOKEN", status=201, errors=(400, 401, 403, 404),
          body_required=False)
def issue(job_id):
    body = json_body(schemas().TOKEN_REQUEST, allow_empty=True)
    return jsonify(tokens.issue(backend(), check_job_id(job_id), body.get("ttl_seconds"))), 201


@bp.delete("/<job_id>/tokens")
@requires(ADMIN)
@describe("Revoke every token of this job", ok="REVOKED")
def revoke(job_id):
    return jsonify(tokens.revoke_all(backend(), check_job_id(job_id)))
