"""Bad input and auth: a clear JSON error, the right status, nothing changed."""
import json

import pytest

from app import create_app
from tests.helpers import complete, lease, make_job, ok_all, status


BAD_JOBS = [
    ({}, 400), ({"name": ""}, 400), ({"name": "x" * 201}, 400), ({"name": 5}, 400),
    ({"name": "n", "tasks": {}}, 400), ({"name": "n", "tasks": {"range": [5, 1]}}, 400),
    ({"name": "n", "tasks": {"range": [0]}}, 400), ({"name": "n", "tasks": {"range": [0, "9"]}}, 400),
    ({"name": "n", "tasks": {"range": [0, 1], "items": []}}, 400),
    ({"name": "n", "tasks": {"items": {}}}, 400), ({"name": "n", "batch_size": 0}, 400),
    ({"name": "n", "batch_size": 1001}, 400), ({"name": "n", "batch_size": True}, 400),
    ({"name": "n", "lease_seconds": 0}, 400), ({"name": "n", "max_attempts": 0}, 400),
    ({"name": "n", "priority": 1.5}, 400), ({"name": "n", "params": [1]}, 400),
    ({"name": "n", "sealed": "no"}, 400),
    ({"name": "n", "tasks": {"range": [0, 10 ** 10]}}, 400),
    ({"name": "n", "tasks": {"range": [0, 5]}, "sealed": False}, 400),
    ([1, 2], 400), ("text", 400),
]


@pytest.mark.parametrize("body,code", BAD_JOBS)
def test_bad_job_bodies_change_nothing(client, rds, body, code):
    r = client.post("/api/v1/jobs", data=json.dumps(body), content_type="application/json")
    assert r.status_code == code
    err = r.get_json()
    assert set(err) == {"error", "message"} and err["message"]
    assert rds.dbsize() == 0


@pytest.mark.parametrize("raw", [b"", b"{", b"nul", b'{"name": NaN}', b"[" * 100000, b"\xff\xfe"])
def test_unparseable_bodies(client, rds, raw):
    r = client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"
    assert rds.dbsize() == 0


BAD_LEASES = [{}, {"worker": ""}, {"worker": 1}, {"worker": "w", "max_tasks": 0},
              {"worker": "w", "max_tasks": 1001}, {"worker": "w", "max_tasks": "5"},
              {"worker": "w", "job": 7}, {"worker": "\ud800"}]


@pytest.mark.parametrize("body", BAD_LEASES)
def test_bad_lease_bodies(client, body):
    make_job(client, total=3)
    before = client.get("/api/v1/jobs").get_json()["jobs"][0]["counts"]
    r = client.post("/api/v1/lease", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400, r.get_json()
    assert client.get("/api/v1/jobs").get_json()["jobs"][0]["counts"] == before


BAD_RESULTS = [{"results": "x"}, {"results": [{"id": 0}]}, {"results": [{"ok": True}]},
               {"results": [{"id": -1, "ok": True}]}, {"results": [{"id": "0", "ok": True}]},
               {"results": [{"id": 0, "ok": "yes"}]}, {"results": [{"id": 2 ** 53 + 1, "ok": True}]},
               {"results": [{"id": 0, "ok": True, "attempt": 1}]},
               {"results": [{"id": 0, "ok": True}], "batchsize": 3},
               {"results": [], "next": {"max_tasks": 0}}, {"results": [], "release": 1}]


@pytest.mark.parametrize("body", BAD_RESULTS)
def test_bad_complete_bodies_change_nothing(client, rds, body):
    job = make_job(client, total=3, batch_size=3)["id"]
    lid = lease(client, job=job)["lease"]["id"]
    snapshot = {k: rds.dump(k) for k in rds.keys("*")}
    r = client.post("/api/v1/leases/%s/complete" % lid, data=json.dumps(body),
                    content_type="application/json")
    assert r.status_code == 400, r.get_json()
    assert {k: rds.dump(k) for k in rds.keys("*")} == snapshot


def test_unknown_things_are_404_json(client):
    for method, path in [("get", "/api/v1/jobs/abc123"), ("get", "/api/v1/jobs/../../x"),
                         ("post", "/api/v1/leases/nonsense/heartbeat"),
                         ("post", "/api/v1/leases/abc.0123456789abcdef/release"),
                         ("get", "/api/v1/nope"), ("get", "/api/v1/jobs/ABC/results")]:
        r = getattr(client, method)(path)
        assert r.status_code == 404 and r.get_json()["error"] == "not_found", path


def test_wrong_method_is_405_json(client):
    r = client.put("/api/v1/lease", json={})
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"


def test_too_large_is_413_json(redis_url):
    app = create_app({"REDIS_URL": redis_url, "MAX_BODY_BYTES": 1000})
    c = app.test_client()
    r = c.post("/api/v1/jobs", json={"name": "n", "tasks": {"items": ["x" * 2000]}})
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    app.extensions["jobmaster.backend"].close()


def test_oversized_result_is_413_and_changes_nothing(redis_url):
    app = create_app({"REDIS_URL": redis_url, "MAX_RESULT_BYTES": 100})
    c = app.test_client()
    job = make_job(c, total=1)["id"]
    lid = lease(c, job=job)["lease"]["id"]
    r = c.post("/api/v1/leases/%s/complete" % lid, json={"results": [{"id": 0, "ok": True, "result": "x" * 200}]})
    assert r.status_code == 413
    assert status(c, job)["counts"]["leased"] == 1
    app.extensions["jobmaster.backend"].close()


# --- auth ---

@pytest.fixture
def secured(redis_url):
    app = create_app({"REDIS_URL": redis_url, "ADMIN_TOKENS": "adm-1,adm-2", "WORKER_TOKENS": "wrk-1"})
    yield app.test_client()
    app.extensions["jobmaster.backend"].close()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def test_auth_roles(secured):
    c = secured
    assert c.get("/api/v1/jobs").status_code == 401
    r = c.get("/api/v1/jobs", headers=bearer("wrong"))
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    assert c.get("/api/v1/jobs", headers={"Authorization": "Basic adm-1"}).status_code == 401
    assert c.get("/api/v1/jobs", headers=bearer("wrk-1")).status_code == 403
    assert c.get("/api/v1/jobs", headers=bearer("adm-2")).status_code == 200
    job = make_job(c, total=2, headers=bearer("adm-1"))["id"]
    got = lease(c, job=job, headers=bearer("wrk-1"))
    assert got["status"] == "ok"
    assert c.post("/api/v1/lease", json={"worker": "w"}).status_code == 401
    lid = got["lease"]["id"]
    assert c.post("/api/v1/leases/%s/heartbeat" % lid, headers=bearer("wrk-1")).status_code == 200
    complete(c, lid, ok_all(got["tasks"]), headers=bearer("adm-1"))
    assert c.post("/api/v1/jobs/%s/pause" % job, headers=bearer("wrk-1")).status_code == 403
    ready = c.get("/readyz").get_json()
    assert ready["auth"] == "tokens" and "warning" not in ready


def test_open_mode_says_so(client):
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ok" and ready["auth"] == "open" and "warning" in ready
    assert ready["checks"]["redis"] == "ok"
