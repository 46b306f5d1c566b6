"""Operations endpoints: health, readiness, metrics, OpenAPI, dashboard."""
import hmac

from flask import Blueprint, current_app, jsonify, request

from ...errors import Unauthorized
from ..auth import ADMIN, auth_mode
from ..openapi import describe

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@describe("The process is up", ok={"type": "object"}, tag="operations", errors=())
def healthz():
    """The process is up (touches nothing else)."""
    return jsonify(status="ok")


@bp.get("/readyz")
@describe("Redis reachable (503 when not), MongoDB reachable if configured; the auth mode",
          ok={"type": "object"},
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
    archive = current_app.extensions["jobmaster.backend"].archive
    if archive is not None:
        # Leasing and completing never wait for MongoDB, so an unreachable
        # archive is reported but the instance stays ready.
        checks["mongo"] = "ok" if archive.ping() else "unreachable"
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
@describe("Prometheus metrics (per-job series: see the README)", ok={"type": "string"},
          content="text/plain", tag="operations", errors=())
def metrics():
    """Prometheus text: job figures from Redis plus the per-process counters,
    made at most once per JOBMASTER_METRICS_CACHE_SECONDS."""
    from ...domain import jobs
    from ...metrics import Scrapes, exposition
    from ...store.backend import backend

    scrapes = current_app.extensions.get("jobmaster.scrapes")
    if scrapes is None:
        store = backend()
        scrapes = current_app.extensions["jobmaster.scrapes"] = Scrapes(
            lambda: jobs.list_jobs(store, limit=1000), current_app.config["METRICS_CACHE_SECONDS"])
    return exposition(scrapes.text(_metrics_detail()))


def _metrics_detail():
    """How much of the jobs a scrape may see: ``"names"`` (ids and names: an
    admin or the metrics token, or a server running open), ``"ids"`` (no
    token, none configured for metrics) or ``"none"`` (no token while
    JOBMASTER_METRICS_TOKEN is set: only the totals). A token that is
    neither is a 401."""
    tokens = current_app.extensions["jobmaster.tokens"]
    if tokens.open:
        return "names"
    wanted = current_app.config["METRICS_TOKEN"]
    header = request.headers.get("Authorization", "")
    if not header:
        return "none" if wanted else "ids"
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if wanted and hmac.compare_digest(token.encode(), wanted.encode()):
            return "names"
        role = tokens.role_of(token)
        if role == ADMIN:
            return "names"
        if role is not None:
            return "none" if wanted else "ids"
    raise Unauthorized("unknown token")
