"""The lease protocol of docs/contract.md §3 (lease, heartbeat, complete,
release, idempotency) through Flask's test client on real Redis."""
from tests.helpers import complete, expire_now, lease, make_job, ok_all, results, status


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
