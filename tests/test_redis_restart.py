"""Invariant 4: restarting Redis (AOF on) loses no task, and the app rides
through the outage with 503s, never a 500."""
import signal

from app import create_app
from tests.helpers import complete, lease, make_job, ok_all, results, status
from tests.invariants import check_job
from tests.support.procs import start_redis


def test_job_survives_a_redis_restart(tmp_path):
    data = str(tmp_path / "redis")
    redis_proc = start_redis(data)
    app = create_app({"REDIS_URL": redis_proc.url, "REDIS_POOL_TIMEOUT": 1.0})
    c = app.test_client()
    try:
        job = make_job(c, total=200, batch_size=10)["id"]
        held = [lease(c, worker="w%d" % i) for i in range(5)]
        complete(c, held[0]["lease"]["id"], ok_all(held[0]["tasks"]))
        before = status(c, job)["counts"]

        redis_proc.stop(signal.SIGTERM)  # a clean shutdown flushes the AOF
        r = c.post("/api/v1/lease", json={"worker": "w9"})
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert c.get("/readyz").status_code == 503

        redis_proc = start_redis(data, port=redis_proc.port)
        assert status(c, job)["counts"] == before
        # leases made before the restart are still valid and still fenced
        for got in held[1:]:
            out = complete(c, got["lease"]["id"], ok_all(got["tasks"]))
            assert out["accepted"] == 10
        got = lease(c, worker="w1")
        while got["status"] == "ok":
            got = complete(c, got["lease"]["id"], ok_all(got["tasks"]), next={})["next"]
        assert got == {"status": "done"}
        doc = status(c, job)
        assert doc["state"] == "completed" and doc["counts"]["done"] == 200
        assert sorted(line["id"] for line in results(c, job)) == list(range(200))
        check_job(app.extensions["jobmaster.backend"].redis, app.extensions["jobmaster.backend"].keys, job)
    finally:
        app.extensions["jobmaster.backend"].close()
        redis_proc.stop()


def test_redis_over_a_unix_socket(tmp_path):
    """Scripts use the pool's connection class, so a unix:// URL works too."""
    import subprocess

    from tests.support.procs import Process, wait_until, which_or_fail

    sock = str(tmp_path / "redis.sock")
    proc = Process([which_or_fail("redis-server"), "--port", "0", "--unixsocket", sock,
                    "--save", "", "--dir", str(tmp_path)], str(tmp_path / "redis.log"))
    try:
        wait_until(lambda: subprocess.run(["redis-cli", "-s", sock, "ping"], capture_output=True)
                   .stdout.strip() == b"PONG", what="redis on a unix socket")
        app = create_app({"REDIS_URL": "unix://" + sock})
        c = app.test_client()
        job = make_job(c, total=2)["id"]
        got = lease(c, job=job)
        assert complete(c, got["lease"]["id"], ok_all(got["tasks"]))["accepted"] == 2
        assert status(c, job)["state"] == "completed"
        app.extensions["jobmaster.backend"].close()
    finally:
        proc.stop()
