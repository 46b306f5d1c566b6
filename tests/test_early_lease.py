"""app/early_lease.py: a lease's Redis call made before Flask handles the request.

The call must happen only for requests the view would accept, exactly once,
and its outcome (a lease, or an error) must be the answer the client gets.
"""
import pytest
import redis

from app import create_app
from app.web import early_lease
from jobmaster import protocol
from tests.helpers import lease, make_job

WORKER_TOKEN, ADMIN_TOKEN = "wrk-1", "adm-1"


@pytest.fixture
def secured(redis_url):
    # (METRICS_CACHE_SECONDS 0: each scrape reads the counters afresh)
    app = create_app({"REDIS_URL": redis_url, "ADMIN_TOKENS": ADMIN_TOKEN,
                      "WORKER_TOKENS": WORKER_TOKEN, "MAX_BODY_BYTES": 4096,
                      "METRICS_CACHE_SECONDS": 0})
    app.seen, app.calls = _watch(app)
    yield app
    app.extensions["jobmaster.backend"].close()


def _bearer(token):
    return {"Authorization": "Bearer " + token}


def _counts(client, job_id):
    r = client.get("/api/v1/jobs/" + job_id, headers=_bearer(ADMIN_TOKEN))
    assert r.status_code == 200
    return r.get_json()["counts"]


def _watch(app):
    """Record, for each lease request, whether its reply was already made
    when Flask started handling it, and count the backend's lease calls."""
    seen, calls = [], []
    backend = app.extensions["jobmaster.backend"]
    real = backend.lease

    @app.before_request
    def _look():
        from flask import request
        if request.path == protocol.lease_path():
            seen.append(early_lease.KEY in request.environ)

    def counting(*args):
        calls.append(args)
        return real(*args)

    backend.lease = counting
    return seen, calls


def test_a_lease_naming_a_job_is_made_before_flask_and_once(secured):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    seen, calls = secured.seen, secured.calls
    got = lease(c, job=job, max_tasks=3, headers=_bearer(WORKER_TOKEN))
    assert got["status"] == "ok" and [t["id"] for t in got["tasks"]] == [0, 1, 2]
    assert seen == [True] and len(calls) == 1
    assert _counts(c, job)["leased"] == 3


def test_a_lease_naming_no_job_is_made_before_flask_too(secured):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    seen, calls = secured.seen, secured.calls
    got = lease(c, max_tasks=2, headers=_bearer(WORKER_TOKEN))
    assert got["status"] == "ok" and got["lease"]["job"] == job
    assert seen == [True] and len(calls) == 1


def test_the_idempotency_key_reaches_the_early_call(secured):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    headers = dict(_bearer(WORKER_TOKEN), **{"Idempotency-Key": "k-1"})
    first = lease(c, job=job, max_tasks=2, headers=headers)
    again = lease(c, job=job, max_tasks=2, headers=headers)
    assert again == first and _counts(c, job)["leased"] == 2


@pytest.mark.parametrize("case, headers, body, code", [
    ("no token", {}, {"worker": "w"}, 401),
    ("unknown token", _bearer("nope"), {"worker": "w"}, 401),
    ("no worker", _bearer(WORKER_TOKEN), {"max_tasks": 1}, 400),
    ("max_tasks 0", _bearer(WORKER_TOKEN), {"worker": "w", "max_tasks": 0}, 400),
    ("bad job id", _bearer(WORKER_TOKEN), {"worker": "w", "job": "../x"}, 404),
    ("unknown job", _bearer(WORKER_TOKEN), {"worker": "w", "job": "0123456789abcdef"}, 404),
    ("too large", _bearer(WORKER_TOKEN), {"worker": "w" * 5000}, 413),
])
def test_a_request_the_view_refuses_leases_nothing(secured, case, headers, body, code):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    if "job" not in body and code != 413:
        body = dict(body, job=job)
    seen, calls = secured.seen, secured.calls
    r = c.post("/api/v1/lease", json=body, headers=headers)
    assert r.status_code == code, (case, r.get_json())
    assert r.get_json()["error"]
    assert _counts(c, job)["leased"] == 0 and _counts(c, job)["pending"] == 10
    # Every refusal is decided before Flask, once, except a body over the
    # limit (not read up front: werkzeug refuses it). The unknown job alone
    # passes every check: its lease finds no job, and that is the answer.
    assert len(calls) == (1 if case == "unknown job" else 0)
    assert seen == [code != 413]


def test_bodies_that_are_not_json_lease_nothing(secured):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    seen, calls = secured.seen, secured.calls
    for raw in (b"", b"{", b'{"worker": NaN}', b"\xff\xfe"):
        r = c.post("/api/v1/lease", data=raw, headers=dict(_bearer(WORKER_TOKEN),
                                                            **{"Content-Type": "application/json"}))
        assert r.status_code == 400 and r.get_json()["error"] == "bad_request", raw
    # refused once, before Flask; the empty body came without a Content-Length,
    # so the view read it (werkzeug's reader) and made the same decision
    assert calls == [] and seen == [False, True, True, True]
    assert _counts(c, job)["leased"] == 0


def test_an_error_of_the_early_call_is_the_answer_and_is_not_retried(secured):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    backend = secured.extensions["jobmaster.backend"]
    calls = []

    def failing(*args):
        calls.append(args)
        raise redis.exceptions.ConnectionError("Redis went away")

    backend.lease = failing
    r = c.post("/api/v1/lease", json={"worker": "w", "job": job}, headers=_bearer(WORKER_TOKEN))
    assert r.status_code == 503 and r.get_json()["error"] == "unavailable"
    assert len(calls) == 1


def test_a_leases_latency_metric_counts_its_early_call(secured, monkeypatch):
    import time

    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]

    def seconds_so_far():
        text = c.get("/metrics", headers=_bearer(ADMIN_TOKEN)).get_data(as_text=True)
        line = [x for x in text.splitlines()
                if x.startswith('jobmaster_http_request_seconds_sum{endpoint="workers.lease"}')]
        return float(line[0].split()[-1]) if line else 0.0

    before = seconds_so_far()
    clock = [1000.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    backend = secured.extensions["jobmaster.backend"]
    real = backend.lease

    def slow(*args):  # the Redis call takes 7 s on this clock
        clock[0] += 7.0
        return real(*args)

    backend.lease = slow
    lease(c, job=job, headers=_bearer(WORKER_TOKEN))
    assert seconds_so_far() - before == 7.0


@pytest.mark.parametrize("token, code", [(WORKER_TOKEN, 200), ("forged", 401), (ADMIN_TOKEN, 200)])
def test_a_lease_request_is_authenticated_once(secured, token, code):
    c = secured.test_client()
    job = make_job(c, total=10, headers=_bearer(ADMIN_TOKEN))["id"]
    tokens = secured.extensions["jobmaster.tokens"]
    asked = []
    real = tokens.role_of

    def counting(presented):
        asked.append(presented)
        return real(presented)

    tokens.role_of = counting
    r = c.post("/api/v1/lease", json={"worker": "w", "job": job}, headers=_bearer(token))
    assert r.status_code == code
    assert asked == [token]  # the early decision's, never again in the view
