"""The HTTP API of docs/contract.md §3 through Flask's test client on real Redis."""
import json

import pytest

from app import create_app
from tests.helpers import (complete, expire_now, lease, make_job, ok_all, results, status)
from tests.invariants import holders


def test_create_range_job_status_document(client):
    doc = make_job(client, name="sims", tasks={"range": [1000, 1010]}, params={"build": "b1"},
                   batch_size=3, lease_seconds=30, max_attempts=5, priority=2)
    assert doc["name"] == "sims" and doc["state"] == "running" and doc["sealed"] is True
    assert doc["settings"] == {"batch_size": 3, "lease_seconds": 30, "max_attempts": 5, "priority": 2}
    assert doc["params"] == {"build": "b1"}
    assert doc["counts"] == {"total": 10, "pending": 10, "leased": 0, "done": 0, "dead": 0}
    assert doc["finished_at"] is None and doc["created_at"] > 0
    assert doc["eta_seconds"] is None and doc["rate"] == 0
    got = lease(client, job=doc["id"])
    assert [t["payload"] for t in got["tasks"]] == [1000, 1001, 1002]
    assert got["params"] == {"build": "b1"}
    assert got["lease"]["lease_seconds"] == 30 and got["lease"]["job"] == doc["id"]


def test_defaults(client):
    doc = make_job(client, total=3)
    assert doc["settings"] == {"batch_size": 10, "lease_seconds": 300, "max_attempts": 3, "priority": 0}
    assert doc["params"] == {}


def test_a_whole_job_to_completion_with_results(client):
    job = make_job(client, total=25, batch_size=10)["id"]
    got = lease(client, worker="pod-1")
    seen = []
    while got["status"] == "ok":
        seen += [t["id"] for t in got["tasks"]]
        out = complete(client, got["lease"]["id"], ok_all(got["tasks"], lambda t: {"sq": t["payload"] ** 2}),
                       next={"max_tasks": 7})
        assert out["accepted"] == len(got["tasks"])
        got = out["next"]
    assert got == {"status": "done"}
    assert sorted(seen) == list(range(25))
    doc = status(client, job)
    assert doc["state"] == "completed" and doc["finished_at"] >= doc["created_at"]
    assert doc["counts"]["done"] == 25 and doc["eta_seconds"] == 0
    lines = results(client, job)
    assert sorted(line["id"] for line in lines) == list(range(25))
    assert all(line["result"] == {"sq": line["id"] ** 2} and line["ok"] is True
               and line["worker"] == "pod-1" and line["attempt"] == 1 and line["finished_at"] > 0
               for line in lines)
    workers = client.get("/api/v1/jobs/%s/workers" % job).get_json()["workers"]
    assert workers[0]["worker"] == "pod-1" and workers[0]["done"] == 25 and workers[0]["leases"] == 0
    assert workers[0]["rate"] > 0


def test_items_job_unsealed_append_ndjson_then_seal(client):
    doc = make_job(client, tasks={"items": [{"level": 1}]}, sealed=False)
    job = doc["id"]
    assert doc["sealed"] is False
    r = client.post("/api/v1/jobs/%s/tasks" % job, data='{"level": 2}\n{"level": 3}\n',
                    content_type="application/x-ndjson")
    assert r.status_code == 200 and r.get_json() == {"added": 2, "first_id": 1, "total": 3}
    r = client.post("/api/v1/jobs/%s/tasks" % job, json=[{"level": 4}])
    assert r.get_json()["total"] == 4
    got = lease(client, job=job, max_tasks=10)
    assert [t["payload"] for t in got["tasks"]] == [{"level": i} for i in (1, 2, 3, 4)]
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    assert lease(client, job=job)["status"] == "wait"  # not sealed: more may come
    assert status(client, job)["state"] == "running"
    r = client.post("/api/v1/jobs/%s/seal" % job)
    assert r.status_code == 200 and r.get_json()["state"] == "completed"
    r = client.post("/api/v1/jobs/%s/tasks" % job, json=[1])
    assert r.status_code == 409 and r.get_json()["error"] == "conflict"


def test_append_with_idempotency_key_adds_once(client):
    job = make_job(client, tasks={"items": []}, sealed=False)["id"]
    for _ in range(2):
        r = client.post("/api/v1/jobs/%s/tasks" % job, json=[1, 2], headers={"Idempotency-Key": "k1"})
        assert r.status_code == 200
    assert status(client, job)["counts"]["total"] == 2


def test_wait_has_retry_after_and_done_when_finished(client):
    job = make_job(client, total=2, batch_size=2)["id"]
    got = lease(client, job=job)
    r = client.post("/api/v1/lease", json={"worker": "other", "job": job})
    body = r.get_json()
    assert body["status"] == "wait" and body["retry_after"] > 0
    assert int(r.headers["Retry-After"]) >= 1
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    assert lease(client, job=job) == {"status": "done"}


def test_pause_resume_cancel_delete(client):
    job = make_job(client, total=5)["id"]
    r = client.post("/api/v1/jobs/%s/pause" % job)
    assert r.status_code == 200 and r.get_json()["state"] == "paused"
    assert lease(client, job=job)["status"] == "wait"
    assert lease(client)["status"] == "wait"  # any job: a paused one is unfinished
    assert client.post("/api/v1/jobs/%s/resume" % job).get_json()["state"] == "running"
    assert lease(client, job=job)["status"] == "ok"
    assert client.post("/api/v1/jobs/%s/cancel" % job).get_json()["state"] == "cancelled"
    assert lease(client, job=job)["status"] == "done"
    r = client.post("/api/v1/jobs/%s/resume" % job)
    assert r.status_code == 409 and r.get_json()["error"] == "conflict"
    r = client.delete("/api/v1/jobs/" + job)
    assert r.status_code == 200 and r.get_json() == {"id": job, "deleted": True}
    assert client.get("/api/v1/jobs/" + job).status_code == 404
    assert client.delete("/api/v1/jobs/" + job).status_code == 404
    assert client.post("/api/v1/lease", json={"worker": "w", "job": job}).status_code == 404


def test_list_newest_first_and_filter(client):
    a = make_job(client, name="a")["id"]
    b = make_job(client, name="b")["id"]
    client.post("/api/v1/jobs/%s/cancel" % a)
    jobs = client.get("/api/v1/jobs").get_json()["jobs"]
    assert [j["id"] for j in jobs] == [b, a]
    assert [j["id"] for j in client.get("/api/v1/jobs?state=cancelled").get_json()["jobs"]] == [a]
    assert len(client.get("/api/v1/jobs?limit=1").get_json()["jobs"]) == 1
    assert client.get("/api/v1/jobs?limit=zero").status_code == 400
    assert client.get("/api/v1/jobs?state=nope").status_code == 400


def test_lease_without_job_takes_highest_priority_then_fair(client):
    low = make_job(client, name="low", total=4, priority=0)["id"]
    high = make_job(client, name="high", total=2, priority=5, batch_size=2)["id"]
    first = lease(client)
    assert first["lease"]["job"] == high
    # high is fully leased now; lower priority comes next
    assert lease(client)["lease"]["job"] == low
    a = make_job(client, name="eq-a", total=100, priority=9, batch_size=1)["id"]
    b = make_job(client, name="eq-b", total=100, priority=9, batch_size=1)["id"]
    picked = {lease(client)["lease"]["job"] for _ in range(40)}
    assert picked == {a, b}


def test_lease_without_job_done_when_nothing_unfinished(client):
    assert lease(client) == {"status": "done"}
    job = make_job(client, total=1)["id"]
    got = lease(client)
    out = complete(client, got["lease"]["id"], ok_all(got["tasks"]), next={})
    assert out["next"] == {"status": "done"}
    assert status(client, job)["state"] == "completed"


def test_complete_next_moves_to_another_job_when_unpinned(client):
    one = make_job(client, name="one", total=1, priority=1)["id"]
    two = make_job(client, name="two", total=1)["id"]
    got = lease(client)
    assert got["lease"]["job"] == one
    out = complete(client, got["lease"]["id"], ok_all(got["tasks"]), next={})
    assert out["next"]["status"] == "ok" and out["next"]["lease"]["job"] == two
    pinned = make_job(client, name="pinned", total=1)["id"]
    other = make_job(client, name="other", total=1)["id"]
    got = lease(client, job=pinned)
    out = complete(client, got["lease"]["id"], ok_all(got["tasks"]), next={})
    assert out["next"] == {"status": "done"}
    assert status(client, other)["counts"]["leased"] == 0


def test_heartbeat_and_lost_lease(client, rds, app):
    job = make_job(client, total=2, lease_seconds=60)["id"]
    got = lease(client, job=job)
    lid = got["lease"]["id"]
    r = client.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 10})
    assert r.status_code == 200 and r.get_json()["expires_at"] < got["lease"]["expires_at"]
    # A week asked for: the job's 60 s given (no pinning its tasks for a week).
    r = client.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 604800})
    assert got["lease"]["expires_at"] <= r.get_json()["expires_at"] < got["lease"]["expires_at"] + 59
    expire_now(rds, app.extensions["jobmaster.backend"].keys, job, lid)
    r = client.post("/api/v1/leases/%s/heartbeat" % lid)
    assert r.status_code == 409 and r.get_json()["error"] == "lease_lost"
    assert status(client, job)["counts"]["pending"] == 2
    # a late result from the expired lease is still accepted
    out = complete(client, lid, ok_all(got["tasks"]))
    assert out["accepted"] == 2
    assert status(client, job)["state"] == "completed"


def test_real_expiry_by_redis_time(client):
    from tests.helpers import await_expiry

    job = make_job(client, total=3, lease_seconds=0.05, max_attempts=2)["id"]
    got = lease(client, job=job)
    assert got["lease"]["lease_seconds"] == 0.05
    await_expiry(client, job)
    assert status(client, job)["counts"]["pending"] == 3
    again = lease(client, job=job)
    assert {t["attempt"] for t in again["tasks"]} == {2}


def test_duplicates_and_retries_counted(client):
    job = make_job(client, total=3, batch_size=3, max_attempts=1)["id"]
    got = lease(client, job=job)
    lid = got["lease"]["id"]
    out = complete(client, lid, [{"id": 0, "ok": True, "result": "a"},
                                 {"id": 1, "ok": False, "error": "bad seed"}])
    assert out == {"accepted": 1, "duplicates": 0, "retried": 0, "dead": 1, "ignored": 0, "released": 0}
    out = complete(client, lid, [{"id": 0, "ok": True, "result": "b"}, {"id": 2, "ok": True}],
                   release=True)
    assert out["duplicates"] == 1 and out["accepted"] == 1
    assert [r["result"] for r in results(client, job) if r["id"] == 0] == ["a"]
    dead = client.get("/api/v1/jobs/%s/dead" % job).get_json()
    assert dead["count"] == 1 and dead["dead"][0]["id"] == 1 and dead["dead"][0]["error"] == "bad seed"
    assert status(client, job)["state"] == "completed"
    r = client.post("/api/v1/jobs/%s/dead/retry" % job)
    assert r.get_json() == {"retried": 1, "state": "running"}
    got = lease(client, job=job)
    assert [t["id"] for t in got["tasks"]] == [1]


def test_release(client):
    job = make_job(client, total=4, batch_size=4)["id"]
    lid = lease(client, job=job)["lease"]["id"]
    r = client.post("/api/v1/leases/%s/release" % lid)
    assert r.status_code == 200 and r.get_json() == {"released": 4}
    assert status(client, job)["counts"]["pending"] == 4
    assert client.post("/api/v1/leases/%s/release" % lid).get_json() == {"released": 0}


def test_idempotency_key_returns_the_same_lease(client):
    job = make_job(client, total=10, batch_size=2)["id"]
    h = {"Idempotency-Key": "req-1"}
    a = client.post("/api/v1/lease", json={"worker": "w", "job": job}, headers=h).get_json()
    b = client.post("/api/v1/lease", json={"worker": "w", "job": job}, headers=h).get_json()
    assert a == b
    assert status(client, job)["counts"]["leased"] == 2


# --- bad input: a clear JSON error, the right status, nothing changed ---

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


# --- operations ---

def test_request_id_and_served_by(client):
    r = client.get("/healthz")
    assert r.headers["X-Served-By"] == "test-1" and len(r.headers["X-Request-ID"]) >= 16
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert r.headers["X-Request-ID"] != "bad id <script>"
    assert client.get("/nope").headers["X-Served-By"] == "test-1"


def test_openapi_describes_every_route(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    described = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, (path, method)
    lease_op = spec["paths"]["/api/v1/lease"]["post"]
    assert lease_op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["worker"]


def test_task_counts_written_in_bulk_are_all_in_the_next_scrape(redis_url):
    app = create_app({"REDIS_URL": redis_url, "METRICS_CACHE_SECONDS": 0})
    client = app.test_client()

    def leased():
        text = client.get("/metrics").get_data(as_text=True)
        line = [x for x in text.splitlines() if x.startswith('jobmaster_tasks_total{event="leased"}')]
        return float(line[0].split()[-1]) if line else 0.0

    job = make_job(client, total=20)["id"]
    before = leased()  # the scrape wrote everything counted so far
    for _ in range(3):  # within the second after it: counted, not yet written
        lease(client, job=job, max_tasks=2)
    assert leased() == before + 6
    app.extensions["jobmaster.backend"].close()


def test_metrics(client):
    job = make_job(client, name="m", total=5)["id"]
    got = lease(client, job=job, max_tasks=2)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'jobmaster_job_tasks{job="%s",name="m",state="done"} 2' % job in text
    assert 'jobmaster_job_tasks{job="%s",name="m",state="pending"} 3' % job in text
    assert "jobmaster_http_requests_total" in text


def test_redis_down_is_503_with_retry_after():
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_POOL_TIMEOUT": 0.5})
    c = app.test_client()
    r = c.post("/api/v1/lease", json={"worker": "w"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.get_json()["error"] == "unavailable"
    assert c.get("/readyz").status_code == 503
    assert c.get("/healthz").status_code == 200


def test_sweep_command_reclaims_while_nobody_calls(app, client, rds):
    job = make_job(client, total=3)["id"]
    lid = lease(client, job=job)["lease"]["id"]
    keys = app.extensions["jobmaster.backend"].keys
    expire_now(rds, keys, job, lid)
    assert len(holders(rds, keys, job)) == 3  # nobody reclaimed it yet
    out = app.test_cli_runner().invoke(args=["sweep"])
    assert out.exit_code == 0 and "swept 1 job(s)" in out.output
    assert holders(rds, keys, job) == {}
    assert rds.zcard(keys.job_key(job, "pending")) == 3


def test_early_error_after_reading_the_body_does_not_wait_for_more(app):
    """The body-draining before an error must stop at the body's end: a raw
    socket input (werkzeug's own server) would otherwise block for ever."""
    import http.client
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.request("POST", "/api/v1/lease", body=json.dumps({"worker": "w", "job": ""}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 404 and json.loads(r.read())["error"] == "not_found"
        conn.close()
    finally:
        server.shutdown()


def test_body_shorter_than_its_content_length_is_400_and_changes_nothing(app, rds):
    """A client that stops sending mid-body gets a JSON 400, and nothing is leased."""
    import socket
    import threading

    from werkzeug.serving import make_server

    from tests.support.stack import read_to_end

    job = make_job(app.test_client(), total=5)["id"]
    before = rds.dump(app.extensions["jobmaster.backend"].keys.job_key(job, "meta"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = json.dumps({"worker": "w", "job": job}).encode()
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
            s.sendall(b"POST /api/v1/lease HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (len(body) + 50) + body)
            s.shutdown(socket.SHUT_WR)  # the rest never comes
            answer = read_to_end(s)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == b"400", head
        assert json.loads(payload)["message"] == "the request body ended early"
        assert rds.dump(app.extensions["jobmaster.backend"].keys.job_key(job, "meta")) == before
    finally:
        server.shutdown()


def test_readme_documents_every_setting_with_its_default():
    import os

    from app.config import SETTINGS

    with open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    for name, default, _parse, _why in SETTINGS:
        shown = "(empty)" if default == "" else "`%s`" % default
        assert "| `JOBMASTER_%s` | %s |" % (name, shown) in readme, name


def test_lease_ids_are_random_and_never_shared_with_a_forked_child(app):
    import os

    from app.domain import leases

    b = app.extensions["jobmaster.backend"]
    leases.new_lease_id(b, "ab")  # nonces are drawn in batches: the rest are buffered now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id must not be one the parent holds
        os.write(w, leases.new_lease_id(b, "ab").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 100).decode()
    os.close(r)
    os.close(w)
    mine = leases.new_lease_id(b, "ab")
    assert child.startswith("ab.") and len(child) == 36 and child != mine
    assert len({leases.new_lease_id(b, "ab") for _ in range(600)}) == 600
