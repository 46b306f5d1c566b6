"""The finish webhook (docs/contract.md §7) in process: one deliverer round at a
time against a loopback receiver (real Redis)."""
import hashlib
import hmac
import json

import pytest
import requests

from app.domain import webhooks
from tests.helpers import complete, lease, make_job, ok_all, status
from tests.support.procs import wait_until
from tests.support.receiver import Receiver


@pytest.fixture
def backend(app):
    return app.extensions["jobmaster.backend"]


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def finish(client, job, fail=False):
    got = lease(client, job=job, max_tasks=1000)
    results = ([{"id": t["id"], "ok": False, "error": "x"} for t in got["tasks"]] if fail
               else ok_all(got["tasks"]))
    complete(client, got["lease"]["id"], results)
    lease(client, job=job)  # the "done" answer: the app sees the finish


def signature_ok(secret, headers, body):
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Jobmaster-Signature"], expected)


def test_one_signed_event_when_the_job_finishes(client, backend, session):
    with Receiver() as rx:
        job = make_job(client, total=3, webhook={"url": rx.url, "secret": "s3cret"})["id"]
        assert status(client, job)["webhook"] == {"state": "pending", "attempts": 0,
                                                  "last_error": None}
        assert webhooks.deliver_due(backend, session) == 0  # running: nothing to send
        finish(client, job)
        assert webhooks.deliver_due(backend, session) == 1
        assert webhooks.deliver_due(backend, session) == 0  # exactly one
        assert len(rx.calls) == 1
        path, headers, body = rx.calls[0]
        assert signature_ok("s3cret", headers, body)
        assert headers["X-Jobmaster-Event"] == job + ":1"
        event = json.loads(body)
        assert event["event"] == "job.finished" and event["job"]["id"] == job
        assert event["job"]["outcome"] == "success" and event["job"]["counts"]["done"] == 3
        doc = status(client, job)
        assert doc["webhook"] == {"state": "delivered", "attempts": 1, "last_error": None}
        assert doc["settings"]["webhook"] == {"url": rx.url}  # never the secret
        assert not backend.redis.zscore(backend.keys.webhooks, job)


def test_failing_receiver_is_retried_with_backoff(client, backend, session):
    with Receiver(statuses=[500, 503]) as rx:
        job = make_job(client, total=1, max_attempts=1, max_dead=0,
                       webhook={"url": rx.url, "secret": "k"})["id"]
        finish(client, job, fail=True)
        assert status(client, job)["state"] == "failed"
        assert webhooks.deliver_due(backend, session) == 1
        doc = status(client, job)
        assert doc["webhook"] == {"state": "failing", "attempts": 1, "last_error": "HTTP 500"}
        due = backend.redis.zscore(backend.keys.webhooks, job)
        sec, usec = backend.redis.time()
        now = sec * 1000 + usec // 1000
        assert now + 1000 <= due <= now + 2000  # 2^1 s, jittered down
        assert webhooks.deliver_due(backend, session) == 0  # not due yet
        backend.redis.zadd(backend.keys.webhooks, {job: 0})  # time passes
        webhooks.deliver_due(backend, session)
        assert status(client, job)["webhook"]["attempts"] == 2
        backend.redis.zadd(backend.keys.webhooks, {job: 0})
        webhooks.deliver_due(backend, session)
        assert status(client, job)["webhook"] == {"state": "delivered", "attempts": 3,
                                                  "last_error": None}
        assert len(rx.calls) == 3 and len({c[1]["X-Jobmaster-Event"] for c in rx.calls}) == 1
        assert json.loads(rx.calls[0][2])["job"]["outcome"] == "failed"


def test_an_unreachable_receiver_is_given_up_after_the_limit(client, backend, session, app):
    app.config["WEBHOOK_GIVE_UP_SECONDS"] = 0
    job = make_job(client, total=1, webhook={"url": "http://127.0.0.1:9/x", "secret": ""})["id"]
    finish(client, job)
    webhooks.deliver_due(backend, session)
    hook = status(client, job)["webhook"]
    assert hook["state"] == "abandoned" and hook["attempts"] == 1 and "127.0.0.1" in hook["last_error"]
    assert not backend.redis.zscore(backend.keys.webhooks, job)


def test_a_crashed_deliverers_event_is_delivered_by_another(client, backend, session):
    with Receiver() as rx:
        job = make_job(client, total=1, webhook={"url": rx.url, "secret": "k"})["id"]
        finish(client, job)
        # a deliverer took the lock and died before it could post
        lock = backend.keys.job_key(job, "whlock")
        backend.redis.set(lock, "crashed", px=300)
        assert webhooks.deliver_due(backend, session) == 0
        wait_until(lambda: webhooks.deliver_due(backend, session) == 1, timeout=10,
                   what="the lock to expire and the event to go")
        assert len(rx.calls) == 1


def test_default_webhook_and_a_revived_job_owes_a_new_event(client, backend, session, app):
    with Receiver() as rx:
        app.config.update(WEBHOOK_URL=rx.url, WEBHOOK_SECRET="default-key")
        job = make_job(client, total=1, max_attempts=1)["id"]
        finish(client, job, fail=True)
        webhooks.deliver_due(backend, session)
        assert signature_ok("default-key", rx.calls[0][1], rx.calls[0][2])
        assert json.loads(rx.calls[0][2])["job"]["outcome"] == "partial"
        # dead/retry: the job runs again, and its next finish is a new event
        client.post("/api/v1/jobs/%s/dead/retry" % job)
        assert status(client, job)["webhook"]["state"] == "pending"
        assert backend.redis.zscore(backend.keys.webhooks, job)  # watched again
        finish(client, job)
        webhooks.deliver_due(backend, session)
        assert [c[1]["X-Jobmaster-Event"] for c in rx.calls] == [job + ":1", job + ":2"]
        assert json.loads(rx.calls[1][2])["job"]["outcome"] == "success"


def test_jobs_without_a_webhook_have_no_delivery_state(client, backend):
    doc = make_job(client, total=1)
    assert "webhook" not in doc and doc["settings"]["webhook"] is None
    assert backend.redis.zcard(backend.keys.webhooks) == 0
