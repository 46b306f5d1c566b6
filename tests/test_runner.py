"""The script runner (app/store/runner.py) when the pool is full."""
import threading

import pytest

from app import create_app
from app.domain import jobs
from tests.helpers import make_job
from tests.support.procs import suite_redis_mode


@pytest.mark.skipif(suite_redis_mode() == "cluster",
                    reason="the runner serves a single Redis; a cluster's calls go through "
                           "redis-py's cluster client")
def test_callers_holding_every_connection_reload_a_flushed_script(redis_url):
    # A Redis that lost its scripts (a restart) meets as many concurrent calls
    # as the pool has connections: each must reload the script on the
    # connection it holds, not wait for a second one (a deadlock until the
    # pool timeout, seen with 200 greenlets and a pool of 32).
    app = create_app({"REDIS_URL": redis_url, "REDIS_POOL_SIZE": 4, "REDIS_POOL_TIMEOUT": 2.0})
    backend = app.extensions["jobmaster.backend"]
    job = make_job(app.test_client(), total=10)["id"]
    backend.redis.script_flush()
    start, errors, done = threading.Barrier(12), [], []

    def call():
        start.wait()
        try:
            done.append(jobs.status(backend, job)["counts"]["total"])
        except Exception as err:  # noqa: BLE001 - the assertion names it
            errors.append("%r %s" % (err, err))

    threads = [threading.Thread(target=call) for _ in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        backend.close()
    assert errors == [] and done == [10] * 12


@pytest.mark.skipif(suite_redis_mode() == "cluster",
                    reason="the runner serves a single Redis")
def test_calls_queued_for_a_silent_redis_are_refused_not_served_one_by_one(tmp_path):
    # A paused Redis (SIGSTOP) answers nothing. Only the calls already holding
    # a connection of the runner's share wait for it (one socket timeout);
    # those queued behind them are refused once the first read timed out,
    # instead of each taking its turn to wait a timeout of its own (250
    # greenlets per process over 24 connections would wait a minute).
    import signal

    from tests.support.procs import start_redis

    redis_proc = start_redis(str(tmp_path / "redis"))
    app = create_app({"REDIS_URL": redis_proc.url, "REDIS_MODE": "single", "REDIS_POOL_SIZE": 4,
                      "REDIS_SOCKET_TIMEOUT": 0.5, "REDIS_POOL_TIMEOUT": 60.0})
    backend = app.extensions["jobmaster.backend"]
    share = backend.scripts.runner.share
    job = make_job(app.test_client(), total=10)["id"]
    outcomes = []

    def calls(n):
        start = threading.Barrier(n)

        def call():
            start.wait()
            try:
                jobs.status(backend, job)
                outcomes.append("ok")
            except Exception as err:  # noqa: BLE001 - the assertion names it
                outcomes.append("%s: %s" % (type(err).__name__, err))

        threads = [threading.Thread(target=call) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)  # far below the pool timeout: a call still alive waited for its turn
        return [t for t in threads if t.is_alive()]

    try:
        assert calls(share * 4) == [] and outcomes == ["ok"] * share * 4  # every slot has its connection
        assert len(backend.scripts.runner.idle) == share
        outcomes.clear()
        redis_proc.send_signal(signal.SIGSTOP)
        try:
            assert calls(share * 10) == []
        finally:
            redis_proc.send_signal(signal.SIGCONT)
        timeouts = [o for o in outcomes if o.startswith("TimeoutError")]
        refused = [o for o in outcomes if o == "ConnectionError: Redis did not answer just now"]
        assert len(timeouts) == share and len(refused) == share * 9, outcomes
        assert jobs.status(backend, job)["counts"]["total"] == 10  # and back once Redis is
    finally:
        backend.close()
        redis_proc.stop()
