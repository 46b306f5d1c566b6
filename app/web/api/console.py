"""Admin routes across jobs, for the operator's console."""
from flask import Blueprint, jsonify, request
from jobmaster import protocol

from ...domain import inspect
from ..auth import ADMIN, requires
from ...errors import BadRequest
from ..openapi import describe
from ...store.backend import backend

bp = Blueprint("console", __name__, url_prefix=protocol.API_PREFIX)


@bp.get("/workers")
@requires(ADMIN)
@describe("Every worker of the newest jobs, with its job; stale when silent past its lease",
          ok="ALL_WORKERS", errors=(400, 401, 403),
          query={"jobs": {"type": "integer", "minimum": 1, "maximum": 1000}})
def all_workers():
    raw = request.args.get("jobs", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest("?jobs must be an integer between 1 and 1000")
    return jsonify(inspect.all_workers(backend(), int(raw)))
