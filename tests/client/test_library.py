"""The client library's worker loop against the real server."""
import os
import subprocess
import sys
import threading

import pytest

from jobmaster import protocol
from jobmaster import Client, Worker
from jobmaster.command import payload_text
from tests.client.conftest import ROOT, WORKER_TOKEN
from tests.support.procs import wait_until


def _counts(server, job_id):
    with server.client() as admin:
        return admin.job(job_id)["counts"]


def test_client_imports_without_server_dependencies():
    code = ("import sys, jobmaster, jobmaster.cli, jobmaster.protocol; "
            "bad = [m for m in ('flask', 'gevent', 'redis', 'werkzeug') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_iterate_tasks_reporting_ok_and_fail(server):
    with server.client() as admin:
        job = admin.create_job("iter", items=[{"n": n} for n in range(12)], batch_size=5,
                               max_attempts=1, params={"k": 3})
    with Worker(server.client(WORKER_TOKEN), job=job["id"]) as worker:
        for task in worker:
            assert task.params == {"k": 3} and task.attempt == 1
            if task.payload["n"] % 3 == 0:
                task.fail("multiple of three")
            elif task.payload["n"] % 3 == 1:
                task.ok(task.payload["n"] * task.params["k"])
            # else: left unreported: counts as ok with result None
    assert worker.finished
    with server.client() as admin:
        results = {r["id"]: r for r in admin.results(job["id"])}
        dead = admin.dead(job["id"])["dead"]
    assert sorted(d["id"] for d in dead) == [0, 3, 6, 9]
    assert all(d["error"] == "multiple of three" for d in dead)
    assert {i: r["result"] for i, r in results.items()} == {
        i: (i * 3 if i % 3 == 1 else None) for i in range(12) if i % 3}


def test_batches_and_exceptions_in_run(server):
    with server.client() as admin:
        job = admin.create_job("batches", range=(10, 20), batch_size=4, max_attempts=1)
    seen = []
    with Worker(server.client(WORKER_TOKEN), job=job["id"]) as worker:
        for batch in worker.batches():
            seen.append(len(batch))
            for task in batch:
                batch.ok(task, -task.payload)
    assert sorted(seen) == [2, 4, 4]

    with server.client() as admin:
        job2 = admin.create_job("raises", range=(0, 4), max_attempts=1)

    def handler(task):
        if task.id == 2:
            raise ValueError("bad room %d" % task.payload)
        return "fine"

    Worker(server.client(WORKER_TOKEN), job=job2["id"]).run(handler)
    with server.client() as admin:
        dead = admin.dead(job2["id"])["dead"]
    assert len(dead) == 1 and dead[0]["error"].startswith("ValueError: bad room 2")


def test_heartbeat_keeps_a_long_task_alive(server):
    with server.client() as admin:
        job = admin.create_job("long", range=(0, 2), batch_size=1, lease_seconds=2)

    class Counting(Client):
        beats = 0

        def call(self, method, path, body=None, **kw):
            if path.endswith("/heartbeat"):
                Counting.beats += 1
            return super().call(method, path, body, **kw)

    def long_task(task):
        start = Counting.beats
        # Outlive the 2 s lease: wait for three heartbeats (one every ~0.7 s).
        wait_until(lambda: Counting.beats >= start + 3, timeout=30, what="heartbeats")
        return task.payload

    worker = Worker(Counting(server.url, WORKER_TOKEN, retry_seconds=10), job=job["id"])
    worker.run(long_task)
    assert worker.finished and worker.stats["duplicates"] == 0
    with server.client() as admin:
        results = admin.results(job["id"])
    assert sorted((r["id"], r["attempt"]) for r in results) == [(0, 1), (1, 1)]  # never re-leased


def test_stop_abandon_from_another_thread_releases_at_once(server):
    with server.client() as admin:
        job = admin.create_job("abandon", range=(0, 5), batch_size=5, lease_seconds=300)
    started, proceed = threading.Event(), threading.Event()

    def blocking(task):
        started.set()
        proceed.wait(30)
        return "late"

    worker = Worker(server.client(WORKER_TOKEN), job=job["id"])
    thread = threading.Thread(target=worker.run, args=(blocking,))
    thread.start()
    try:
        assert started.wait(30)
        assert _counts(server, job["id"])["leased"] == 5
        worker.stop(abandon=True)
        # stop() returned: the lease is back, while the task is still running.
        assert _counts(server, job["id"]) == {"total": 5, "pending": 5, "leased": 0,
                                              "done": 0, "dead": 0}
    finally:
        proceed.set()
        thread.join(30)
    assert not thread.is_alive()
    assert _counts(server, job["id"])["done"] == 0  # the late result was dropped


def test_stop_finish_reports_current_and_releases_rest(server):
    with server.client() as admin:
        job = admin.create_job("finish", range=(0, 6), batch_size=6, lease_seconds=300)
    with Worker(server.client(WORKER_TOKEN), job=job["id"]) as worker:
        for task in worker:
            worker.stop()
            task.ok("first")
    assert worker.stopped and not worker.finished
    assert _counts(server, job["id"]) == {"total": 6, "pending": 5, "leased": 0, "done": 1,
                                          "dead": 0}


def test_exception_out_of_the_loop_releases(server):
    with server.client() as admin:
        job = admin.create_job("crash", range=(0, 4), batch_size=4, lease_seconds=300)
    with pytest.raises(RuntimeError):
        with Worker(server.client(WORKER_TOKEN), job=job["id"]) as worker:
            for task in worker:
                if task.id == 1:
                    raise RuntimeError("crash")
    assert _counts(server, job["id"]) == {"total": 4, "pending": 3, "leased": 0, "done": 1,
                                          "dead": 0}


def test_example_simulation_worker(server):
    with server.client() as admin:
        job = admin.create_job("sims", range=(0, 20), batch_size=6,
                               params={"build": "b42", "rounds": 50})
    env = server.env(token=WORKER_TOKEN)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "simulate.py"),
                          "--job", job["id"]], env=env, capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    with server.client() as admin:
        results = admin.results(job["id"])
    assert sorted(r["result"]["room"] for r in results) == list(range(20))
    assert all(r["result"]["build"] == "b42" for r in results)


def test_payload_text():
    assert payload_text("a b") == "a b"
    assert payload_text(5) == "5" and payload_text(1.5) == "1.5"
    assert payload_text({"a": [1, None]}) == '{"a":[1,null]}'
    assert payload_text(None) == "null" and payload_text(True) == "true"
    assert protocol.job_path("a/b", "dead/retry") == "/api/v1/jobs/a%2Fb/dead/retry"
