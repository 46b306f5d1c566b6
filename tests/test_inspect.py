"""The console's read views and single dead-task retry: one task in full,
workers across jobs, retrying one dead task."""
import json

from tests.helpers import complete, lease, make_job, ok_all, status


def _task(client, job, t, code=200):
    r = client.get("/api/v1/jobs/%s/tasks/%s" % (job, t))
    assert r.status_code == code, r.get_json()
    return r.get_json()


def test_a_task_through_its_life(client):
    job = make_job(client, batch_size=1, max_attempts=2,
                   tasks={"items": [{"m": "a"}, "b", 3]})["id"]
    t = _task(client, job, 0)
    assert t["state"] == "pending" and t["payload"] == {"m": "a"} and t["attempts"] == 0
    got = lease(client, "pod-1", job=job)
    t = _task(client, job, 0)
    assert t["state"] == "leased" and t["attempts"] == 1
    assert t["lease"]["worker"] == "pod-1" and t["lease"]["id"] == got["lease"]["id"]
    complete(client, got["lease"]["id"], [{"id": 0, "ok": False, "error": "first failure"}])
    t = _task(client, job, 0)
    assert t["state"] == "pending" and t["failed_attempts"] == 1 and t["lease"] is None
    got = lease(client, "pod-2", job=job)
    assert got["tasks"][0]["id"] == 0
    complete(client, got["lease"]["id"], ok_all(got["tasks"], lambda _: {"score": 9}))
    t = _task(client, job, 0)
    assert t["state"] == "done" and t["result"]["result"] == {"score": 9}
    assert t["history"] == [{"attempt": 2, "worker": "pod-2", "outcome": "ok",
                             "at": t["result"]["finished_at"]}]


def test_range_payloads_span_leases_and_bad_ids(client):
    job = make_job(client, tasks={"range": [100, 110]}, batch_size=5)["id"]
    lease(client, "pod-1", job=job)  # a span lease of 0..4
    t = _task(client, job, 3)
    assert t["payload"] == 103 and t["state"] == "leased" and t["lease"]["worker"] == "pod-1"
    assert _task(client, job, 7)["state"] == "pending"
    assert "no task" in _task(client, job, 10, 404)["message"]
    assert client.get("/api/v1/jobs/%s/tasks/-1" % job).status_code == 404
    assert client.get("/api/v1/jobs/%s/tasks/x" % job).status_code == 404
    assert client.get("/api/v1/jobs/nosuch/tasks/1").status_code == 404


def _kill(client, job, worker="w"):
    got = lease(client, worker, job=job)
    complete(client, got["lease"]["id"], [{"id": t["id"], "ok": False, "error": "boom %d\n%s" % (
        t["id"], "trace line " * 50)} for t in got["tasks"]])
    return got


def test_retry_one_dead_task_leaves_the_others_dead(client):
    job = make_job(client, total=3, batch_size=3, max_attempts=1)["id"]
    _kill(client, job)
    assert status(client, job)["state"] == "completed"
    dead = _task(client, job, 1)
    assert dead["state"] == "dead" and dead["dead"]["error"].startswith("boom 1\n")
    assert dead["history"][0]["outcome"] == "dead" and len(dead["history"][0]["error"]) > 500
    r = client.post("/api/v1/jobs/%s/dead/1/retry" % job)
    assert r.status_code == 200 and r.get_json() == {"retried": 1, "state": "running"}
    doc = status(client, job)
    assert doc["counts"]["dead"] == 2 and doc["counts"]["pending"] == 1
    again = client.post("/api/v1/jobs/%s/dead/1/retry" % job)
    assert again.status_code == 409 and "not dead" in again.get_json()["message"]
    assert status(client, job)["counts"] == doc["counts"]
    got = lease(client, job=job)
    assert [t["id"] for t in got["tasks"]] == [1] and got["tasks"][0]["attempt"] == 2
    client.post("/api/v1/jobs/%s/cancel" % job)
    assert client.post("/api/v1/jobs/%s/dead/0/retry" % job).status_code == 409


def test_workers_across_jobs_with_stale_ones(client, rds, app):
    keys = app.extensions["jobmaster.backend"].keys
    a = make_job(client, name="a", total=4, batch_size=2, lease_seconds=0.5)["id"]
    b = make_job(client, name="b", total=4, batch_size=2)["id"]
    got = lease(client, "pod-a", job=a)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    lease(client, "pod-b", job=b)
    # pod-a was last seen more than a's half-second lease ago: stale.
    doc = json.loads(rds.hget(keys.job_key(a, "workers"), "pod-a"))
    doc["s"] -= 5000
    rds.hset(keys.job_key(a, "workers"), "pod-a", json.dumps(doc))
    r = client.get("/api/v1/workers")
    assert r.status_code == 200
    rows = {(w["worker"], w["job"]): w for w in r.get_json()["workers"]}
    assert rows[("pod-a", a)]["done"] == 2 and rows[("pod-a", a)]["stale"] is True
    assert rows[("pod-a", a)]["job_name"] == "a"
    assert rows[("pod-b", b)]["leases"] == 1 and rows[("pod-b", b)]["stale"] is False
    assert client.get("/api/v1/workers?jobs=0").status_code == 400


def _fail_once(c, job, worker, error):
    got = lease(c, worker, job=job)
    complete(c, got["lease"]["id"], [{"id": t["id"], "ok": False, "error": error}
                                     for t in got["tasks"]])


def test_without_an_archive_the_inspector_says_earlier_attempts_are_not_kept(client):
    job = make_job(client, total=1, batch_size=1, max_attempts=3)["id"]
    _fail_once(client, job, "pod-a", "first")
    t = _task(client, job, 0)
    assert t["attempt_log"] == "none" and t["failed_attempts"] == 1 and t["history"] == []


def test_with_the_archive_the_inspector_lists_every_failed_attempt(archive_app):
    from tests.helpers import drain_round_now, expire_now

    c, b = archive_app.test_client(), archive_app.extensions["jobmaster.backend"]
    job = make_job(c, total=2, batch_size=1, max_attempts=4)["id"]
    _fail_once(c, job, "pod-a", "error A")
    got = lease(c, "pod-b", job=job)
    assert [t["id"] for t in got["tasks"]] == [0]
    expire_now(b.redis, b.keys, job, got["lease"]["id"])
    _fail_once(c, job, "pod-c", "error C")   # (reclaims pod-b's lease first)
    _fail_once(c, job, "pod-d", "error D")   # the fourth attempt: dead
    assert _task(c, job, 0)["attempt_log"] == "archive"  # nothing drained yet: no rows
    drain_round_now(b)
    t = _task(c, job, 0)
    assert t["state"] == "dead" and t["attempt_log"] == "archive"
    assert [(a["attempt"], a["worker"], a["outcome"], a["error"]) for a in t["history"]] == [
        (1, "pod-a", "failed", "error A"), (2, "pod-b", "expired", "lease expired"),
        (3, "pod-c", "failed", "error C"), (4, "pod-d", "dead", "error D")]
    # Another task's attempts are not this one's; its result, once archived,
    # comes from MongoDB.
    got = lease(c, "pod-e", job=job)
    complete(c, got["lease"]["id"], ok_all(got["tasks"], lambda _: {"score": 1}))
    t = _task(c, job, 1)   # (its result is in the outbox: not archived yet)
    assert t["state"] == "done" and t["result"] is None
    drain_round_now(b)
    assert not b.redis.hexists(b.keys.job_key(job, "results"), "1")
    t = _task(c, job, 1)
    assert t["state"] == "done" and t["result"]["result"] == {"score": 1}
    assert [(a["worker"], a["outcome"]) for a in t["history"]] == [("pod-e", "ok")]
    # Deleted, the job is answered from the archive alone (no payload is archived).
    before = _task(c, job, 0)
    assert c.delete("/api/v1/jobs/" + job).get_json()["archived"] is True
    t = _task(c, job, 0)
    assert t["archived"] is True and t["state"] == "dead" and t["payload"] is None
    assert t["history"] == before["history"] and t["dead"]["error"] == "error D"
    assert (t["attempts"], t["failed_attempts"]) == (4, 4)
    t = _task(c, job, 1)
    assert t["state"] == "done" and t["result"]["result"] == {"score": 1}
    assert "no task 2" in _task(c, job, 2, 404)["message"]
    assert _task(c, "0123456789abcdef", 0, 404)["message"] == "no such job: 0123456789abcdef"


def test_an_unreachable_archive_leaves_the_inspector_answering(archive_app, mongo_server):
    c, b = archive_app.test_client(), archive_app.extensions["jobmaster.backend"]
    job = make_job(c, total=1, batch_size=1, max_attempts=1)["id"]
    _fail_once(c, job, "pod-a", "gone for good")
    b.archive.url = "mongodb://127.0.0.1:1/x"   # nothing listens on port 1
    b.archive._client = None
    t = _task(c, job, 0)
    assert t["attempt_log"] == "unreachable" and t["dead"]["error"] == "gone for good"
    assert [a["outcome"] for a in t["history"]] == ["dead"]
