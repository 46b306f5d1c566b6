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
