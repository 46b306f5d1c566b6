"""Operations endpoints: health, readiness, metrics, OpenAPI, dashboard."""
from flask import Blueprint, current_app, jsonify

from ..auth import auth_mode
from ..openapi import describe

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@describe("The process is up", ok={"type": "object"}, tag="operations", errors=())
def healthz():
    """The process is up (touches nothing else)."""
    return jsonify(status="ok")


@bp.get("/readyz")
@describe("Redis reachable; the auth mode (503 when not ready)", ok={"type": "object"},
          tag="operations", errors=())
def readyz():
    """Redis (and MongoDB, if configured) reachable; the auth mode."""
    checks = {}
    ok = True
    try:
        current_app.extensions["jobmaster.backend"].ping()
        checks["redis"] = "ok"
    except Exception as err:  # any failure means "not ready", never a 500
        checks["redis"] = "error: %s" % type(err).__name__
        ok = False
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "auth": auth_mode(),
            "instance": current_app.config["INSTANCE"]}
    if body["auth"] == "open":
        body["warning"] = "no tokens configured: the API is open to anyone who can reach it"
    response = jsonify(body)
    if not ok:
        response.status_code = 503
        response.headers["Retry-After"] = "1"
    return response


@bp.get("/api/v1/openapi.json")
@describe("This document", ok={"type": "object"}, tag="operations", errors=())
def openapi_json():
    """The OpenAPI 3 document of every route."""
    from ..openapi import document

    return jsonify(document(current_app))


@bp.get("/metrics")
@describe("Prometheus metrics", ok={"type": "string"}, content="text/plain", tag="operations",
          errors=())
def metrics():
    """Prometheus text: job figures from Redis plus the per-process counters."""
    from ...domain import jobs
    from ...metrics import exposition
    from ...store.backend import backend

    return exposition(jobs.list_jobs(backend(), limit=1000))
