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


def _concurrently(c, n, body):
    """``n`` lease requests at once from threads (the pool fills up with
    connections); their status codes."""
    import threading

    codes = []

    def one(i):
        codes.append(c.post("/api/v1/lease", json=dict(body, worker="t%d" % i)).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return codes


def test_no_503_once_a_killed_redis_answers_again(tmp_path):
    """kill -9 and a restart on the same port leave every pooled connection
    broken; each is made again on first use, so no request fails once Redis
    is back (before: bursts of 503s from stale connections, and one failed
    combined lease call failed its whole group)."""
    data = str(tmp_path / "redis")
    redis_proc = start_redis(data)
    app = create_app({"REDIS_URL": redis_proc.url, "REDIS_POOL_SIZE": 16})
    c = app.test_client()
    try:
        job = make_job(c, total=100000, batch_size=1, lease_seconds=3600)["id"]
        assert set(_concurrently(c, 24, {"job": job})) == {200}
        # many idle connections in the app's pool, all about to break
        pool = app.extensions["jobmaster.backend"].redis.connection_pool
        held = [pool.get_connection() for _ in range(12)]
        for conn in held:
            pool.release(conn)

        redis_proc.stop(signal.SIGKILL)
        assert c.post("/api/v1/lease", json={"worker": "w", "job": job}).status_code == 503
        redis_proc = start_redis(data, port=redis_proc.port)

        for _round in range(3):
            codes = _concurrently(c, 24, {"job": job})
            assert codes == [200] * 24, codes
        assert c.get("/readyz").status_code == 200
        assert status(c, job)["counts"]["leased"] >= 24 * 3
    finally:
        app.extensions["jobmaster.backend"].close()
        redis_proc.stop()


def test_a_paused_redis_gives_503_with_retry_after_in_bounded_time(tmp_path):
    """SIGSTOP: Redis accepts connections and answers nothing. Requests get
    503 + Retry-After after REDIS_SOCKET_TIMEOUT, /readyz after
    REDIS_READY_TIMEOUT; after SIGCONT everything answers again."""
    import threading

    redis_proc = start_redis(str(tmp_path / "redis"))
    app = create_app({"REDIS_URL": redis_proc.url, "REDIS_SOCKET_TIMEOUT": 0.5,
                      "REDIS_READY_TIMEOUT": 0.3})
    c = app.test_client()
    try:
        job = make_job(c, total=1000, batch_size=1)["id"]
        held = lease(c, job=job)
        redis_proc.send_signal(signal.SIGSTOP)
        got = {}

        def ask():
            got["lease"] = c.post("/api/v1/lease", json={"worker": "w", "job": job})
            got["complete"] = c.post("/api/v1/leases/%s/complete" % held["lease"]["id"],
                                     json={"results": ok_all(held["tasks"])})
            got["status"] = c.get("/api/v1/jobs/" + job)
            got["readyz"] = c.get("/readyz")

        t = threading.Thread(target=ask)
        t.start()
        t.join(30)  # each answer is due within a second; 30 s means "it hung"
        assert not t.is_alive(), "a request to a paused Redis hung"
        for name, r in got.items():
            assert r.status_code == 503, (name, r.status_code)
            assert r.headers["Retry-After"]
            doc = r.get_json()
            assert doc["status" if name == "readyz" else "error"] == "unavailable", doc
    finally:
        redis_proc.send_signal(signal.SIGCONT)
    try:
        assert c.get("/readyz").status_code == 200
        # the complete may or may not have run before the pause hid its reply:
        # either way, a retry records each result once
        out = complete(c, held["lease"]["id"], ok_all(held["tasks"]))
        assert out["accepted"] + out["duplicates"] == 1
        assert lease(c, job=job)["status"] == "ok"
    finally:
        app.extensions["jobmaster.backend"].close()
        redis_proc.stop()


def test_a_reply_that_waited_for_a_busy_process_is_still_read(redis_url):
    """A read that timed out while its reply was already on the socket (a
    saturated gevent worker gets the CPU back after its timer fired: seen as
    spurious timeouts and re-run scripts in a 1,000-pod swarm, NOTES.md)
    reads the reply instead of failing; a socket with nothing to read still
    times out."""
    import select
    import socket

    import pytest
    from redis.exceptions import TimeoutError

    from app import config
    from app.store import connection
    from tests.support.procs import wait_until

    r = connection.client(config.load({"REDIS_URL": redis_url, "REDIS_SOCKET_TIMEOUT": 0.2}))
    pool = r.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("PING")
        wait_until(lambda: select.select([conn._sock], [], [], 0)[0], what="the reply")
        real = conn._parser.read_response
        fired = []

        def timer_first(*args, **kwargs):  # the timer won the race once
            if not fired:
                fired.append(1)
                raise socket.timeout("timed out")
            return real(*args, **kwargs)

        conn._parser.read_response = timer_first
        assert conn.read_response() in ("PONG", True) and fired
        assert conn.is_connected
        with pytest.raises(TimeoutError):  # nothing sent: nothing will come
            conn.read_response()
        assert not conn.is_connected
    finally:
        pool.release(conn)
        r.close()
