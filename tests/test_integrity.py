"""Result integrity over HTTP: only a lease that really held a task may report
it, lease ids cannot be made up, heartbeats cannot pin tasks, and an
Idempotency-Key is scoped to the worker that sent it."""
import pytest

from app import create_app
from tests.helpers import ok_all
from tests.invariants import check_job

WORKER, ADMIN = "wrk-token", "adm-token"
W = {"Authorization": "Bearer " + WORKER}
A = {"Authorization": "Bearer " + ADMIN}


def _app(redis_url, **config):
    return create_app({"REDIS_URL": redis_url, "ADMIN_TOKENS": ADMIN, "WORKER_TOKENS": WORKER,
                       **config})


@pytest.fixture
def secured(redis_url):
    app = _app(redis_url)
    yield app
    app.extensions["jobmaster.backend"].close()


@pytest.fixture
def c(secured):
    return secured.test_client()


def _job(c, total=20, **settings):
    r = c.post("/api/v1/jobs", json={"name": "j", "tasks": {"range": [0, total]}, **settings},
               headers=A)
    assert r.status_code == 201
    return r.get_json()["id"]


def _lease(c, job, worker, headers=W, **body):
    r = c.post("/api/v1/lease", json={"worker": worker, "job": job, **body}, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _state(c, secured, job):
    b = secured.extensions["jobmaster.backend"]
    r = c.get("/api/v1/jobs/%s/results" % job, headers=A)
    return check_job(b.redis, b.keys, job), r.get_data(as_text=True)


def test_the_forged_lease_attack_records_nothing(c, secured):
    job = _job(c)
    real = _lease(c, job, "pod-A", max_tasks=10)
    before = _state(c, secured, job)
    forged = [{"id": t["id"], "ok": True, "result": "FORGED"} for t in real["tasks"]]
    for lid in ("%s.0000000000000000" % job, "%s.0000000000000000.0000000000000000" % job,
                real["lease"]["id"][:-1] + ("0" if real["lease"]["id"][-1] != "0" else "1")):
        r = c.post("/api/v1/leases/%s/complete" % lid, json={"worker": "pod-A", "results": forged},
                   headers=W)
        assert r.status_code == 404 and r.get_json()["error"] == "not_found"
        for action, body in (("heartbeat", {"lease_seconds": 604800}), ("release", None)):
            r = c.post("/api/v1/leases/%s/%s" % (lid, action), json=body, headers=W)
            assert r.status_code == 404
    assert _state(c, secured, job) == before
    # pod-A's own results are then accepted, not duplicates
    r = c.post("/api/v1/leases/%s/complete" % real["lease"]["id"],
               json={"results": ok_all(real["tasks"])}, headers=W)
    assert r.get_json()["accepted"] == 10 and r.get_json()["duplicates"] == 0


def test_a_real_lease_cannot_report_another_leases_tasks(c, secured):
    job = _job(c, lease_seconds=60)
    mine = _lease(c, job, "pod-B", max_tasks=5)
    theirs = _lease(c, job, "pod-A", max_tasks=5)
    forged = [{"id": t["id"], "ok": True, "result": "FORGED"} for t in theirs["tasks"]]
    before = _state(c, secured, job)
    r = c.post("/api/v1/leases/%s/complete" % mine["lease"]["id"],
               json={"worker": "pod-A", "results": forged}, headers=W)
    assert r.get_json()["ignored"] == 5 and r.get_json()["accepted"] == 0
    assert _state(c, secured, job) == before
    # Not after it expired either: it is remembered, with the tasks it held.
    b = secured.extensions["jobmaster.backend"]
    b.redis.zadd(b.keys.job_key(job, "deadlines"), {mine["lease"]["id"]: 0}, xx=True)
    r = c.post("/api/v1/leases/%s/complete" % mine["lease"]["id"],
               json={"results": forged + ok_all(mine["tasks"][:1])}, headers=W)
    assert r.get_json()["ignored"] == 5 and r.get_json()["accepted"] == 1  # its own, late
    results = c.get("/api/v1/jobs/%s/results" % job, headers=A).get_data(as_text=True)
    assert "FORGED" not in results and results.count("\n") == 1


def test_ids_signed_by_one_instance_verify_on_another(redis_url, secured):
    c1 = secured.test_client()
    other = _app(redis_url)
    try:
        c2 = other.test_client()
        job = _job(c1, total=4)
        got = _lease(c1, job, "w", max_tasks=4)
        r = c2.post("/api/v1/leases/%s/complete" % got["lease"]["id"],
                    json={"results": ok_all(got["tasks"])}, headers=W)
        assert r.status_code == 200 and r.get_json()["accepted"] == 4
    finally:
        other.extensions["jobmaster.backend"].close()
    # the shared secret was made once in Redis
    b = secured.extensions["jobmaster.backend"]
    assert len(b.redis.get(b.keys.secret)) == 64


def test_a_configured_secret_is_used_and_redis_holds_none(redis_url):
    apps = [_app(redis_url, LEASE_SECRET=s) for s in ("s3cret", "s3cret", "other")]
    try:
        c1, c2, c3 = (a.test_client() for a in apps)
        job = _job(c1, total=2)
        lid = _lease(c1, job, "w")["lease"]["id"]
        assert c2.post("/api/v1/leases/%s/heartbeat" % lid, headers=W).status_code == 200
        assert c3.post("/api/v1/leases/%s/heartbeat" % lid, headers=W).status_code == 404
        b = apps[0].extensions["jobmaster.backend"]
        assert b.redis.get(b.keys.secret) is None
    finally:
        for a in apps:
            a.extensions["jobmaster.backend"].close()


def test_a_lost_secret_is_put_back_by_the_processes_that_know_it(c, secured):
    """After Redis lost its data, ids already handed out keep verifying."""
    job = _job(c, total=4)
    lid = _lease(c, job, "w")["lease"]["id"]
    b = secured.extensions["jobmaster.backend"]
    old = b.redis.get(b.keys.secret)
    b.redis.delete(b.keys.secret)
    from app.domain import lease_ids

    lease_ids.signer(b).checked = 0  # its next use re-reads the secret
    assert c.post("/api/v1/leases/%s/heartbeat" % lid, headers=W).status_code == 200
    assert b.redis.get(b.keys.secret) == old


def test_an_idempotency_key_is_scoped_to_the_worker(c, secured):
    job = _job(c, batch_size=3)
    key = {"Idempotency-Key": "same-key", **W}
    a1 = _lease(c, job, "pod-A", headers=key)
    a2 = _lease(c, job, "pod-A", headers=key)  # pod-A's retry: the same lease
    b1 = _lease(c, job, "pod-B", headers=key)  # another worker: a lease of its own
    assert a1 == a2
    assert b1["lease"]["id"] != a1["lease"]["id"]
    assert not {t["id"] for t in a1["tasks"]} & {t["id"] for t in b1["tasks"]}
    # complete ... next: the next lease is scoped to the lease completed
    na = c.post("/api/v1/leases/%s/complete" % a1["lease"]["id"],
                json={"results": [], "next": {}}, headers=key).get_json()["next"]
    nb = c.post("/api/v1/leases/%s/complete" % b1["lease"]["id"],
                json={"results": [], "next": {}}, headers=key).get_json()["next"]
    assert na["lease"]["id"] != nb["lease"]["id"]
    again = c.post("/api/v1/leases/%s/complete" % a1["lease"]["id"],
                   json={"results": [], "next": {}}, headers=key).get_json()["next"]
    assert again == na
    counts = _state(c, secured, job)[0]
    assert counts["leased"] == 12  # 4 leases of 3, none made twice


def test_a_heartbeat_cannot_pin_tasks_beyond_the_jobs_lease(c):
    job = _job(c, lease_seconds=30)
    got = _lease(c, job, "w")
    lid = got["lease"]["id"]
    r = c.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 604800}, headers=W)
    assert r.status_code == 200 and r.get_json()["expires_at"] < got["lease"]["expires_at"] + 29
    r = c.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 604801}, headers=W)
    assert r.status_code == 400
