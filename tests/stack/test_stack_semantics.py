"""docs/contract.md §7 and §9 across four real instances (nginx → 4 uWSGI → Redis):
the background loop of every worker process may deliver a finish webhook or
run a schedule slot, and each happens exactly once."""
import hashlib
import hmac
import json

import pytest

from tests.support.procs import wait_until
from tests.support.receiver import Receiver
from tests.support.stack import start_stack

ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    st = start_stack(tmp_path_factory.mktemp("semantics"), instances=4,
                     env={"JOBMASTER_ADMIN_TOKENS": "adm", "JOBMASTER_WORKER_TOKENS": "wrk",
                          "JOBMASTER_BACKGROUND_SECONDS": "0.2"})
    yield st
    st.stop()


def call(st, method, path, body=None, token="adm"):
    r = st.request(method, path, body=body, headers={"Authorization": "Bearer " + token})
    return r.status, (r.json() if r.body else None)


def test_max_dead_5_fails_at_the_6th_and_notifies_once_signed(four):
    with Receiver() as rx:
        status, job = call(four, "POST", "/api/v1/jobs", {
            "name": "budget", "tasks": {"range": [0, 50]}, "batch_size": 1, "max_attempts": 1,
            "max_dead": 5, "webhook": {"url": rx.url, "secret": "shh"}})
        assert status == 201
        job_id = job["id"]
        for i in range(6):
            _, got = call(four, "POST", "/api/v1/lease", {"worker": "w%d" % i, "job": job_id},
                          token="wrk")
            assert got["status"] == "ok"
            call(four, "POST", "/api/v1/leases/%s/complete" % got["lease"]["id"],
                 {"results": [{"id": got["tasks"][0]["id"], "ok": False, "error": "e"}]},
                 token="wrk")
            _, doc = call(four, "GET", "/api/v1/jobs/" + job_id)
            assert doc["state"] == ("failed" if i == 5 else "running")
        wait_until(lambda: call(four, "GET", "/api/v1/jobs/" + job_id)[1]["webhook"]["state"]
                   == "delivered", timeout=30, what="the webhook delivered")
        doc = call(four, "GET", "/api/v1/jobs/" + job_id)[1]
        assert doc["outcome"] == "failed" and doc["webhook"]["attempts"] == 1
        assert len(rx.calls) == 1
        _, headers, body = rx.calls[0]
        expected = "sha256=" + hmac.new(b"shh", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Jobmaster-Signature"], expected)
        event = json.loads(body)
        assert event["event"] == "job.finished" and event["job"]["state"] == "failed"
        assert event["job"]["counts"]["dead"] == 6


def test_a_due_slot_makes_exactly_one_job_with_four_instances(four, redis_of):
    status, sched = call(four, "POST", "/api/v1/schedules", {
        "name": "weekly", "cron": "0 2 * * 1", "timezone": "Europe/Berlin",
        "job": {"name": "weekly sims", "tasks": {"range": [0, 100]}}})
    assert status == 201
    sid = sched["id"]
    # time passes: the slot is due, and every process of every instance sees it
    rds = redis_of(four.redis_url)
    rds.zadd("jm:schedules", {sid: 0})

    def moved_on():
        doc = call(four, "GET", "/api/v1/schedules/" + sid)[1]
        return doc if doc["last_job"] and doc["next_run"] > doc["last_run"] else None

    doc = wait_until(moved_on, timeout=30, what="the slot's job")
    made = [j for j in call(four, "GET", "/api/v1/jobs")[1]["jobs"] if j["schedule"] == sid]
    assert [j["id"] for j in made] == [doc["last_job"]]
    assert made[0]["name"] == "weekly sims" and made[0]["counts"]["total"] == 100
    assert rds.zscore("jm:schedules", sid) > 0  # the next slot, a week or less away


def test_a_scoped_token_is_refused_on_another_job_through_nginx(four):
    _, mine = call(four, "POST", "/api/v1/jobs", {"name": "mine", "tasks": {"range": [0, 4]}})
    _, other = call(four, "POST", "/api/v1/jobs", {"name": "other", "tasks": {"range": [0, 4]},
                                                   "priority": 9})
    status, tok = call(four, "POST", "/api/v1/jobs/%s/tokens" % mine["id"], {"ttl_seconds": 600})
    assert status == 201
    token = tok["token"]
    # the early lease (before Flask) and the view make the same decision: 403
    status, err = call(four, "POST", "/api/v1/lease", {"worker": "p", "job": other["id"]},
                       token=token)
    assert status == 403 and err["error"] == "forbidden"
    assert call(four, "GET", "/api/v1/jobs/" + other["id"])[1]["counts"]["leased"] == 0
    status, got = call(four, "POST", "/api/v1/lease", {"worker": "p"}, token=token)
    assert status == 200 and got["lease"]["job"] == mine["id"]
    _, theirs = call(four, "POST", "/api/v1/lease", {"worker": "q", "job": other["id"]},
                     token="wrk")
    status, _ = call(four, "POST", "/api/v1/leases/%s/release" % theirs["lease"]["id"],
                     token=token)
    assert status == 403
    assert call(four, "GET", "/api/v1/jobs/" + other["id"])[1]["counts"]["leased"] == 4
    assert call(four, "GET", "/api/v1/jobs", token=token)[0] == 403
