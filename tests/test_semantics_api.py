"""docs/contract.md §7–§8 over HTTP (Flask's test client, real Redis): failure
budget and outcome, retry backoff, guided batching, straggler copies,
task_timeout, and the validation of every new setting."""
import pytest

from tests.helpers import complete, lease, make_job, ok_all, status
from tests.support.procs import wait_until


def fail_all(tasks):
    return [{"id": t["id"], "ok": False, "error": "boom"} for t in tasks]


def test_max_dead_5_fails_at_the_6th_dead_task(client):
    job = make_job(client, total=20, batch_size=1, max_attempts=1, max_dead=5)["id"]
    for i in range(6):
        got = lease(client, job=job)
        assert got["status"] == "ok"
        out = complete(client, got["lease"]["id"], fail_all(got["tasks"]))
        assert out["dead"] == 1
        doc = status(client, job)
        assert doc["state"] == ("failed" if i == 5 else "running")
    assert doc["outcome"] == "failed" and doc["finished_at"] is not None
    assert doc["counts"] == {"total": 20, "pending": 14, "leased": 0, "done": 0, "dead": 6}
    assert doc["settings"]["max_dead"] == 5
    assert lease(client, job=job)["status"] == "done"
    assert lease(client)["status"] == "done"  # nor for a lease naming no job
    r = client.post("/api/v1/jobs/%s/pause" % job)
    assert r.status_code == 409
    r = client.post("/api/v1/jobs/%s/dead/retry" % job)
    assert r.status_code == 200 and r.get_json() == {"retried": 6, "state": "running"}
    doc = status(client, job)
    assert doc["state"] == "running" and doc["outcome"] is None
    assert lease(client)["status"] == "ok"  # back in the any-job index


def test_outcomes(client):
    ok = make_job(client, total=2, batch_size=2)["id"]
    got = lease(client, job=ok)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    assert status(client, ok)["outcome"] == "success"
    partial = make_job(client, total=2, batch_size=2, max_attempts=1)["id"]
    got = lease(client, job=partial)
    complete(client, got["lease"]["id"], ok_all(got["tasks"][:1]) + fail_all(got["tasks"][1:]))
    doc = status(client, partial)
    assert doc["state"] == "completed" and doc["outcome"] == "partial"
    cancelled = make_job(client, total=2)["id"]
    client.post("/api/v1/jobs/%s/cancel" % cancelled)
    assert status(client, cancelled)["outcome"] == "cancelled"
    r = client.get("/api/v1/jobs?state=failed")
    assert r.status_code == 200 and r.get_json()["jobs"] == []


def test_retry_backoff_delays_redelivery(client, rds, app):
    job = make_job(client, total=1, retry_backoff=30)["id"]
    got = lease(client, job=job)
    out = complete(client, got["lease"]["id"], fail_all(got["tasks"]))
    assert out["retried"] == 1
    doc = status(client, job)
    assert doc["counts"]["pending"] == 1 and doc["counts"]["backoff"] == 1
    assert doc["settings"]["retry_backoff"] == 30
    wait = lease(client, job=job)
    assert wait["status"] == "wait"
    keys = app.extensions["jobmaster.backend"].keys
    rds.zadd(keys.job_key(job, "backoff"), {"0": 0})  # time passes
    again = lease(client, job=job)
    assert again["status"] == "ok" and again["tasks"][0]["attempt"] == 2
    assert status(client, job)["counts"]["backoff"] == 0


def test_guided_batches_shrink(client):
    job = make_job(client, total=200, batch_size=100, batching="guided")["id"]
    sizes = []
    for i in range(400):
        got = lease(client, worker="w%d" % (i % 4), job=job)
        if got["status"] != "ok":
            break
        sizes.append(len(got["tasks"]))
        complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    assert sum(sizes) == 200 and sizes[-1] == 1
    # active workers grow 1, 2, 3, 4: ceil(200/2), ceil(100/4), ceil(75/6), ceil(62/8)
    assert sizes[:4] == [100, 25, 13, 8]
    assert status(client, job)["settings"]["batching"] == "guided"


def test_heartbeating_straggler_is_finished_by_others(client, rds, app):
    job = make_job(client, total=40, batch_size=4, speculate=True, lease_seconds=60)["id"]
    hung = lease(client, worker="hung", job=job)
    hung_ids = {t["id"] for t in hung["tasks"]}
    durations_key = app.extensions["jobmaster.backend"].keys.job_key(job, "durations")
    copies = 0
    for i in range(100):
        r = client.post("/api/v1/leases/%s/heartbeat" % hung["lease"]["id"])
        if r.status_code != 200:
            assert r.status_code == 409  # its tasks were all done by others
            break
        got = lease(client, worker="fast%d" % (i % 3), job=job)
        if got["status"] == "wait":
            # the leases of the fast workers live a few ms; the hung one's lease
            # is older than 3 medians once a moment has passed
            assert rds.llen(durations_key) >= 1
            continue
        if got["status"] == "done":
            break
        spec = [t for t in got["tasks"] if t.get("speculative")]
        if spec:
            copies += 1
            assert {t["id"] for t in spec} <= hung_ids and len(spec) == len(got["tasks"])
        complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    doc = status(client, job)
    assert copies >= 1 and doc["state"] == "completed" and doc["counts"]["done"] == 40
    out = complete(client, hung["lease"]["id"], ok_all(hung["tasks"]))
    assert out["duplicates"] == len(hung_ids) and out["accepted"] == 0


def test_the_smallest_straggler_case(client):
    """Two tasks: one worker hangs on one, another finishes the other and then
    gets a copy of the hung one (one closed lease is enough for a median)."""
    job = make_job(client, total=2, batch_size=1, speculate=True)["id"]
    hung = lease(client, worker="hung", job=job)
    got = lease(client, worker="fast", job=job)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))

    def copy():
        answer = lease(client, worker="fast", job=job)
        return answer if answer["status"] == "ok" else None

    got = wait_until(copy, timeout=10, interval=0.01, what="a copy of the hung task")
    assert got["tasks"] == [dict(hung["tasks"][0], speculative=True)]
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    assert status(client, job)["state"] == "completed"
    assert client.post("/api/v1/leases/%s/heartbeat" % hung["lease"]["id"]).status_code == 409


def test_task_timeout_is_returned_with_every_lease(client):
    job = make_job(client, total=3, batch_size=1, task_timeout=2.5)["id"]
    got = lease(client, job=job)
    assert got["task_timeout"] == 2.5
    nxt = complete(client, got["lease"]["id"], ok_all(got["tasks"]), next={})["next"]
    assert nxt["task_timeout"] == 2.5
    assert status(client, job)["settings"]["task_timeout"] == 2.5
    plain = make_job(client, total=1)["id"]
    assert "task_timeout" not in lease(client, job=plain)


@pytest.mark.parametrize("extra, field", [
    ({"retry_backoff": -1}, "body.retry_backoff"),
    ({"retry_backoff": "5"}, "body.retry_backoff"),
    ({"max_dead": 1.5}, "body.max_dead"),
    ({"max_dead": "3"}, "body.max_dead"),
    ({"max_dead": -1}, "body.max_dead"),
    ({"batching": "dynamic"}, "body.batching"),
    ({"speculate": "yes"}, "body.speculate"),
    ({"task_timeout": 0}, "body.task_timeout"),
    ({"webhook": {"url": "ftp://127.0.0.1/x"}}, "body.webhook.url"),
    ({"webhook": {"url": "file:///etc/passwd"}}, "body.webhook.url"),
    ({"webhook": {"url": "http://"}}, "body.webhook.url"),
    ({"webhook": {"secret": "s"}}, "body.webhook.url"),
    ({"webhook": {"url": "http://127.0.0.1/", "sekret": "s"}}, "body.webhook.sekret"),
    ({"batchsize": 5}, "body.batchsize"),
    ({"tasks": {"range": [0, 1], "item": []}}, "body.tasks.item"),
])
def test_bad_settings_are_400_naming_the_field_and_change_nothing(client, extra, field):
    body = {"name": "x", "tasks": {"range": [0, 3]}, **extra}
    r = client.post("/api/v1/jobs", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"] == "bad_request" and field in r.get_json()["message"]
    assert client.get("/api/v1/jobs").get_json()["jobs"] == []
