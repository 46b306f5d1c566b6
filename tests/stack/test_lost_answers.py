"""A lost answer costs no lease (issue 12, item 2).

The server acts on a lease or a complete-with-next, and its answer never
reaches the worker (a proxy on loopback drops it after reading it whole).
The client library retries with the same Idempotency-Key and gets the very
lease the lost answer carried: no batch waits for its lease to expire, no
task is handed out twice.
"""
import contextlib

import pytest

from app.store.keys import Keys
from jobmaster import Client, Worker
from jobmaster.retry import Backoff
from tests.invariants import check_job, holders
from tests.support.lossy import LossyProxy, every_nth


def _job(stack, total, batch=10):
    # A week-long lease: any stranded batch would keep the job from finishing.
    r = stack.post("/api/v1/jobs", {"name": "lost-answers", "tasks": {"range": [0, total]},
                                    "batch_size": batch, "lease_seconds": 3600})
    assert r.status == 201, r
    return r.json()["id"]


def _state(stack, redis_of):
    return redis_of(stack.redis_url), Keys()


@contextlib.contextmanager
def _through(stack, drop):
    """A client library Client behind a LossyProxy with the rule ``drop``."""
    with LossyProxy(stack.host, stack.port, drop) as proxy, \
            Client(proxy.url, retry_seconds=20, backoff=Backoff(base=0.01, cap=0.05)) as client:
        yield proxy, client


def _is_lease(seen):
    return seen.path == "/api/v1/lease"


def _is_next(seen):
    return seen.path.endswith("/complete") and '"next"' in seen.body.decode()


@pytest.mark.parametrize("loss", [True, 502, 504], ids=["reset", "502", "504"])
def test_a_lost_lease_answer_is_fetched_again(stack, loss, redis_of):
    job = _job(stack, 30)
    rds, keys = _state(stack, redis_of)
    with _through(stack, every_nth(1, _is_lease, loss)) as (proxy, client):
        answer = client.lease("w1", 10, job)
        assert answer["status"] == "ok" and len(answer["tasks"]) == 10
        tries = [s for s in proxy.requests if _is_lease(s)]
        assert [s.dropped for s in tries] == [True, False]
        assert tries[0].headers["Idempotency-Key"] == tries[1].headers["Idempotency-Key"]
        # the server holds exactly one lease: the one the worker now has
        lid = answer["lease"]["id"]
        assert set(holders(rds, keys, job).values()) == {lid}
        assert sorted(holders(rds, keys, job)) == sorted(t["id"] for t in answer["tasks"])
        assert check_job(rds, keys, job)["leased"] == 10


@pytest.mark.parametrize("loss", [True, 502], ids=["reset", "502"])
def test_a_lost_complete_with_next_answer_is_fetched_again(stack, loss, redis_of):
    job = _job(stack, 30)
    rds, keys = _state(stack, redis_of)
    with _through(stack, every_nth(1, _is_next, loss)) as (proxy, client):
        first = client.lease("w1", 10, job)
        results = [{"id": t["id"], "ok": True, "result": t["payload"]} for t in first["tasks"]]
        out = client.complete(first["lease"]["id"], results, next_max_tasks=10)
        tries = [s for s in proxy.requests if _is_next(s)]
        assert [s.dropped for s in tries] == [True, False]
        # the first try recorded the results; the retry finds them done
        assert out["accepted"] == 0 and out["duplicates"] == 10
        nxt = out["next"]
        assert nxt["status"] == "ok" and len(nxt["tasks"]) == 10
        assert set(holders(rds, keys, job).values()) == {nxt["lease"]["id"]}
        counts = check_job(rds, keys, job)
        assert counts["leased"] == 10 and counts["done"] == 10


def test_a_worker_losing_every_third_answer_runs_each_task_once(stack, redis_of):
    job = _job(stack, 200)
    rds, keys = _state(stack, redis_of)
    lossy = every_nth(3, lambda s: _is_lease(s) or _is_next(s))
    with _through(stack, lossy) as (proxy, client):
        seen = []

        def handle(task):
            seen.append((task.id, task.attempt))
            return task.payload

        worker = Worker(client, job=job, name="lossy", max_tasks=10, heartbeat=False)
        assert worker.run(handle).finished
        assert sum(s.dropped for s in proxy.requests) >= 5
    # every task handed out once, in its first attempt, and done
    assert sorted(seen) == [(t, 1) for t in range(200)]
    counts = check_job(rds, keys, job)
    assert counts["done"] == 200
    assert rds.hlen(keys.job_key(job, "tries")) == 0


def test_nginx_stamps_every_request_with_its_own_start(stack):
    """X-Request-Start comes from nginx (STALE_SECONDS): a client's own, from
    1970, is replaced, so the lease is made."""
    job = _job(stack, 5)
    r = stack.post("/api/v1/lease", {"worker": "w", "job": job}, headers={"X-Request-Start": "t=1"})
    assert r.status == 200 and r.json()["status"] == "ok"
