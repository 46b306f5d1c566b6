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
