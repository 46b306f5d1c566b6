"""The job routes of docs/contract.md §3 (lifecycle, items, listing) through
Flask's test client on real Redis; the lease protocol, bad input and
operations are in the test_api_*.py beside it."""
from tests.helpers import complete, lease, make_job, ok_all, results, status


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
