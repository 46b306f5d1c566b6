"""Per-job worker tokens (docs/contract.md §9): issued by an admin, stored
hashed, expiring, valid for one job only, dying with it."""
import hashlib

import pytest

from app import create_app
from tests.helpers import complete, lease, make_job, ok_all

ADMIN = {"Authorization": "Bearer adm"}
WORKER = {"Authorization": "Bearer wrk"}


@pytest.fixture
def app(redis_url):
    app = create_app({"REDIS_URL": redis_url, "INSTANCE": "test-1", "ADMIN_TOKENS": "adm",
                      "WORKER_TOKENS": "wrk"})
    yield app
    app.extensions["jobmaster.backend"].close()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def issue(client, job, **body):
    r = client.post("/api/v1/jobs/%s/tokens" % job, json=body, headers=ADMIN)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_issue_stores_only_the_hash_with_an_expiry(client, rds):
    job = make_job(client, headers=ADMIN)["id"]
    doc = issue(client, job, ttl_seconds=60)
    token = doc["token"]
    assert token.startswith("jmt.%s." % job) and doc["job"] == job
    sec = rds.time()[0]
    assert sec + 55 <= doc["expires_at"] <= sec + 61
    stored = rds.hgetall("jm:{%s}:tokens" % job)
    assert list(stored) == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in str(rds.hgetall("jm:{%s}:meta" % job))
    # default lifetime: a week
    assert issue(client, job)["expires_at"] >= sec + 7 * 86400 - 5


@pytest.mark.parametrize("body, status", [
    ({"ttl_seconds": 0}, 400), ({"ttl_seconds": -5}, 400), ({"ttl_seconds": "60"}, 400),
    ({"ttl_seconds": 10 ** 9}, 400), ({"ttl": 60}, 400)])
def test_bad_token_requests(client, body, status):
    job = make_job(client, headers=ADMIN)["id"]
    r = client.post("/api/v1/jobs/%s/tokens" % job, json=body, headers=ADMIN)
    assert r.status_code == status and "body.ttl" in r.get_json()["message"]


def test_only_an_admin_issues_and_only_for_a_job_that_exists(client):
    job = make_job(client, headers=ADMIN)["id"]
    assert client.post("/api/v1/jobs/%s/tokens" % job, json={}, headers=WORKER).status_code == 403
    assert client.post("/api/v1/jobs/%s/tokens" % job, json={}).status_code == 401
    assert client.post("/api/v1/jobs/%s/tokens" % ("0" * 16), json={},
                       headers=ADMIN).status_code == 404


def test_revoke_and_delete_end_the_tokens(client, rds):
    job = make_job(client, headers=ADMIN)["id"]
    issue(client, job)
    issue(client, job)
    r = client.delete("/api/v1/jobs/%s/tokens" % job, headers=ADMIN)
    assert r.status_code == 200 and r.get_json() == {"revoked": 2}
    issue(client, job)
    client.delete("/api/v1/jobs/" + job, headers=ADMIN)
    assert not rds.exists("jm:{%s}:tokens" % job)


# -- enforcement ------------------------------------------------------------

def two_jobs(client):
    mine = make_job(client, total=4, batch_size=2, headers=ADMIN)["id"]
    other = make_job(client, total=4, batch_size=2, priority=5, headers=ADMIN)["id"]
    return mine, other


def counts(client, job):
    return client.get("/api/v1/jobs/" + job, headers=ADMIN).get_json()["counts"]


def test_a_scoped_token_leases_only_from_its_job(client):
    mine, other = two_jobs(client)
    tok = bearer(issue(client, mine)["token"])
    got = lease(client, worker="pod", headers=tok)  # no job named: its own, not the busier one
    assert got["status"] == "ok" and got["lease"]["job"] == mine
    got = lease(client, worker="pod", job=mine, headers=tok)
    assert got["lease"]["job"] == mine
    before = counts(client, other)
    r = client.post("/api/v1/lease", json={"worker": "pod", "job": other}, headers=tok)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert counts(client, other) == before
    # its job's tasks all leased: wait (it never falls through to another job)
    assert lease(client, worker="pod", headers=tok)["status"] == "wait"


def test_a_scoped_token_reports_only_for_its_jobs_leases(client):
    mine, other = two_jobs(client)
    tok = bearer(issue(client, mine)["token"])
    theirs = lease(client, worker="w", job=other, headers=WORKER)
    lid = theirs["lease"]["id"]
    before = counts(client, other)
    for path, body in (("heartbeat", {}), ("release", None),
                       ("complete", {"results": ok_all(theirs["tasks"])})):
        r = client.post("/api/v1/leases/%s/%s" % (lid, path), json=body, headers=tok)
        assert r.status_code == 403, (path, r.get_json())
    assert counts(client, other) == before
    own = lease(client, worker="pod", job=mine, headers=tok)
    out = complete(client, own["lease"]["id"], ok_all(own["tasks"]), headers=tok)
    assert out["accepted"] == 2
    r = client.post("/api/v1/leases/%s/heartbeat" % own["lease"]["id"], headers=tok)
    assert r.status_code in (200, 409)  # its own lease: allowed (closed by now)


def test_a_scoped_token_is_no_admin(client):
    mine, _ = two_jobs(client)
    tok = bearer(issue(client, mine)["token"])
    assert client.get("/api/v1/jobs/" + mine, headers=tok).status_code == 403
    assert client.post("/api/v1/jobs/%s/tokens" % mine, json={}, headers=tok).status_code == 403


def test_expired_revoked_and_deleted_tokens_are_unknown(client, rds):
    mine, _ = two_jobs(client)
    token = issue(client, mine)["token"]
    rds.hset("jm:{%s}:tokens" % mine, hashlib.sha256(token.encode()).hexdigest(), 1)  # time passes
    r = client.post("/api/v1/lease", json={"worker": "pod"}, headers=bearer(token))
    assert r.status_code == 401 and not rds.hlen("jm:{%s}:tokens" % mine)  # dropped when met
    token = issue(client, mine)["token"]
    client.delete("/api/v1/jobs/%s/tokens" % mine, headers=ADMIN)
    assert client.post("/api/v1/lease", json={"worker": "pod"},
                       headers=bearer(token)).status_code == 401
    token = issue(client, mine)["token"]
    client.delete("/api/v1/jobs/" + mine, headers=ADMIN)
    assert client.post("/api/v1/lease", json={"worker": "pod"},
                       headers=bearer(token)).status_code == 401
    forged = "jmt.%s.%s" % (mine, "A" * 43)
    assert client.post("/api/v1/lease", json={"worker": "pod"},
                       headers=bearer(forged)).status_code == 401
