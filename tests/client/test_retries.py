"""Retries: a dropped connection during complete, 503/429 with Retry-After."""
import json
import urllib.parse

import pytest

from jobmaster import Client, Worker, errors
from jobmaster.retry import Backoff, idle_delay, parse_retry_after
from tests.client.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.client.helpers import DropProxy, StubServer


def test_dropped_complete_is_retried_without_double_counting(server):
    with server.client() as admin:
        # A short lease: the `next` batch the lost answer carried comes back soon.
        job = admin.create_job("drop", range=(0, 30), batch_size=10, lease_seconds=1)
    port = urllib.parse.urlsplit(server.url).port
    proxy = DropProxy(port)
    try:
        with Client(proxy.url, WORKER_TOKEN, retry_seconds=20) as client:
            worker = Worker(client, job=job["id"]).run(lambda task: task.payload * 2)
    finally:
        proxy.close()
    assert proxy.dropped == 1  # the server acted on a complete whose answer was lost
    assert worker.finished
    assert worker.stats["duplicates"] >= 1  # the retry was counted as a repeat, not again
    with server.client() as admin:
        doc = admin.job(job["id"])
        results = admin.results(job["id"])
    assert doc["state"] == "completed"
    assert doc["counts"]["done"] == 30 and doc["counts"]["dead"] == 0
    assert sorted(r["id"] for r in results) == list(range(30))
    assert all(r["result"] == 2 * r["id"] for r in results)


def test_create_job_is_not_repeated_after_a_dropped_answer(server):
    port = urllib.parse.urlsplit(server.url).port
    proxy = DropProxy(port, marker=b"POST /api/v1/jobs ")
    try:
        with Client(proxy.url, ADMIN_TOKEN, retry_seconds=20) as client:
            with pytest.raises(errors.TransportError, match="not retried"):
                client.create_job("once", range=(0, 5))
    finally:
        proxy.close()
    with server.client() as admin:
        assert [j["name"] for j in admin.jobs()] == ["once"]


def test_503_and_429_are_retried_honouring_retry_after():
    stub = StubServer([
        (503, {"Retry-After": "3"}, {"error": "unavailable", "message": "redis down"}),
        (429, {"Retry-After": "1"}, {"error": "rate_limited", "message": "slow down"}),
        (200, {}, {"status": "done"}),
    ])
    slept = []
    try:
        with Client(stub.url, "t", sleep=slept.append, retry_seconds=60) as client:
            assert client.lease("w1") == {"status": "done"}
    finally:
        stub.close()
    assert len(stub.requests) == 3
    assert 3 <= slept[0] <= 3.6 and 1 <= slept[1] <= 1.2  # never sooner than asked
    keys = {req[2].get("Idempotency-Key") for req in stub.requests}
    assert len(keys) == 1 and None not in keys  # one call, one key, across retries
    assert all(json.loads(req[3]) == {"worker": "w1"} for req in stub.requests)


def test_retry_budget_is_honoured():
    stub = StubServer([(503, {"Retry-After": "30"},
                        {"error": "unavailable", "message": "redis down"})])
    slept = []
    try:
        with Client(stub.url, "t", sleep=slept.append, retry_seconds=5) as client:
            with pytest.raises(errors.Unavailable) as info:
                client.job("j")
    finally:
        stub.close()
    assert slept == []  # waiting 30 s would overrun a 5 s budget: give up at once
    assert info.value.status == 503 and info.value.retry_after == 30
    assert info.value.message == "redis down"


@pytest.mark.parametrize("status,body,cls", [
    (409, {"error": "lease_lost", "message": "gone"}, errors.LeaseLost),
    (409, {"error": "conflict", "message": "paused"}, errors.Conflict),
    (404, {"error": "not_found", "message": "no job"}, errors.NotFound),
    (401, {"error": "unauthorized", "message": "who?"}, errors.Unauthorized),
    (403, {"error": "forbidden", "message": "admin only"}, errors.Forbidden),
    (400, {"error": "bad_request", "message": "no"}, errors.BadRequest),
    (413, {"error": "too_large", "message": "big"}, errors.TooLarge),
    (500, {"error": "internal", "message": "bug"}, errors.ServerError),
])
def test_error_bodies_map_to_typed_exceptions(status, body, cls):
    stub = StubServer([(status, {"X-Request-ID": "rid-1"}, body)])
    try:
        with Client(stub.url, "t", sleep=lambda s: None) as client:
            with pytest.raises(cls) as info:
                client.heartbeat("lease-1")
    finally:
        stub.close()
    assert info.value.code == body["error"] and info.value.message == body["message"]
    assert info.value.request_id == "rid-1"
    if status in (401, 403):
        assert isinstance(info.value, errors.AuthError)


def test_retry_arithmetic():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-1") is None and parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=40.0) == 0.0
    backoff = Backoff(base=0.25, cap=4.0)
    for failures in range(1, 20):
        assert 0.05 <= backoff.compute(failures) <= 4.0
        assert 7.0 <= backoff.compute(failures, retry_after=7.0) <= 8.4
    for _ in range(100):
        assert 1.6 <= idle_delay(2.0) <= 2.6
        assert idle_delay(1000, cap=30) == 30
        assert 0.05 <= idle_delay(None, default=1.0) <= 1.3
