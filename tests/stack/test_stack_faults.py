"""Faults through the real stack: an instance killed with -9 mid-run loses
no task; a graceful reload drops no in-flight request.

Each test starts its own small stack (it breaks instances on purpose) and
runs worker threads that speak the HTTP API directly, each bound to its own
loopback address so nginx's ip_hash spreads them over the instances.
"""
import http.client
import json
import threading
import time

import pytest

from tests.support.procs import servers, wait_until
from tests.support.stack import start_stack

DEADLINE = 90.0  # seconds; a bound for loops, not a performance claim


class Pace:
    """Holds workers back once the tasks they got accepted reach a ceiling,
    which a test raises step by step: the job then cannot finish before the
    test's next step, however fast this machine runs the workers."""

    def __init__(self, ceiling):
        self.ceiling = ceiling
        self.accepted = 0
        self._cond = threading.Condition()

    def raise_to(self, ceiling):
        with self._cond:
            self.ceiling = ceiling
            self._cond.notify_all()

    def admit(self, stop, deadline):
        with self._cond:
            while self.accepted >= self.ceiling and not stop.is_set() \
                    and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def count(self, n):
        with self._cond:
            self.accepted += n


class Worker(threading.Thread):
    """Lease → complete until the job is done; retry on 502s and resets,
    as a real pod does (complete is idempotent)."""

    def __init__(self, stack, job, name, source, stop, pace=None):
        super().__init__(daemon=True)
        self.stack, self.job, self.name, self.source, self.stop = stack, job, name, source, stop
        self.pace = pace or Pace(float("inf"))  # unpaced: never held
        self.completed = 0
        self.errors = []          # (status or exception, path) of failed attempts
        self.served_by = []
        self.finished = False
        self.failure = None       # what ended the thread early, if anything

    def __repr__(self):
        return "<%s alive=%s finished=%s completed=%d failure=%r errors=%r>" % (
            self.name, self.is_alive(), self.finished, self.completed, self.failure,
            self.errors[-3:])

    def call(self, path, body):
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                r = self.stack.post(path, body, source=self.source, timeout=20)
            except (OSError, http.client.HTTPException) as err:
                # reset, refused, or an answer cut short by the kill
                self.errors.append((repr(err), path))
                continue
            self.served_by.append(r.headers.get("X-Served-By"))
            if r.status == 200:
                return r.json()
            self.errors.append((r.status, path))
            if r.status < 500:
                raise AssertionError("%s answered %d: %r" % (path, r.status, r))
        return None

    def run(self):
        try:
            self._run()
        except BaseException as err:
            self.failure = repr(err)
            raise

    def _run(self):
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not self.stop.is_set():
            self.pace.admit(self.stop, deadline)
            answer = self.call("/api/v1/lease", {"worker": self.name, "job": self.job})
            if answer is None:
                return
            if answer["status"] == "done":
                self.finished = True
                return
            if answer["status"] == "wait":
                # Leases of a killed instance's clients expire in seconds.
                self.stop.wait(min(float(answer["retry_after"]), 0.25))
                continue
            results = [{"id": t["id"], "ok": True, "result": t["payload"]}
                       for t in answer["tasks"]]
            done = self.call("/api/v1/leases/%s/complete" % answer["lease"]["id"],
                             {"results": results})
            if done is None:
                return
            self.completed += done["accepted"]
            self.pace.count(done["accepted"])


def _job(stack, total, batch):
    r = stack.post("/api/v1/jobs", {"name": "stack-faults", "tasks": {"range": [0, total]},
                                    "batch_size": batch, "lease_seconds": 3,
                                    "max_attempts": 20})
    assert r.status == 201, r
    return r.json()["id"]


def _status(stack, job):
    r = stack.get("/api/v1/jobs/%s" % job)
    assert r.status == 200, r
    return r.json()


@pytest.mark.parametrize("server", servers())
def test_kill_9_of_an_instance_loses_no_task(tmp_path, server):
    st = start_stack(tmp_path, instances=3, server=server)
    stop = threading.Event()
    workers = []
    try:
        total = 3000
        job = _job(st, total, batch=20)
        # Held at half the job until the kill, which then surely comes mid-job.
        pace = Pace(total // 2)
        workers = [Worker(st, job, "w%d" % i, "127.0.%d.1" % (10 + i), stop, pace)
                   for i in range(8)]
        for w in workers:
            w.start()
        # Kill the instance that serves the first worker, a third of the way in.
        wait_until(lambda: workers[0].served_by, timeout=30, what="first answer")
        victim = st.instance(workers[0].served_by[0])
        wait_until(lambda: _status(st, job)["counts"]["done"] >= total // 3 or
                   not any(w.is_alive() for w in workers), timeout=DEADLINE, what="a third done")
        victim.kill()
        pace.raise_to(float("inf"))
        killed_at = {w.name: len(w.served_by) for w in workers}
        for w in workers:
            w.join(DEADLINE)
        assert not any(w.is_alive() for w in workers)

        status = _status(st, job)
        counts = status["counts"]
        assert counts == {"total": total, "pending": 0, "leased": 0,
                          "done": total, "dead": 0}, counts
        assert status["state"] == "completed"
        assert all(w.finished for w in workers), [(w.name, w.errors[-3:]) for w in workers]
        # Every task's first accepted result is on record exactly once.
        lines = st.get("/api/v1/jobs/%s/results" % job).body.splitlines()
        assert sorted({json.loads(x)["id"] for x in lines}) == list(range(total))
        # After the kill, nobody was served by the dead instance; more than
        # one instance served before it.
        assert len({s for w in workers for s in w.served_by}) > 1
        for w in workers:
            assert victim.name not in w.served_by[killed_at[w.name] + 1:]
        # Only gateway errors (requests in flight on the dead instance), never 4xx.
        assert all(e[0] == 502 or isinstance(e[0], str) for w in workers for e in w.errors)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        st.stop()


@pytest.mark.parametrize("server", servers())
def test_graceful_reload_drops_no_request(tmp_path, server):
    st = start_stack(tmp_path, instances=2, server=server)
    stop = threading.Event()
    workers = []
    try:
        job = _job(st, 1_000_000, batch=5)
        # One /24: every worker is served by the same instance, the one reloaded.
        workers = [Worker(st, job, "r%d" % i, "127.0.50.%d" % (i + 1), stop) for i in range(6)]
        for w in workers:
            w.start()
        wait_until(lambda: all(w.served_by for w in workers), timeout=30, what="first answers")
        node = st.instance(workers[0].served_by[0])
        before = node.worker_pids()
        node.reload()

        def reloaded():
            try:
                pids = node.worker_pids()
            except OSError:  # the stats socket is briefly gone while uWSGI re-execs
                return False
            return pids and not set(pids) & set(before) and node.probe() == 200

        wait_until(reloaded, timeout=60, interval=0.05, what="new workers of %s" % node.name)
        # Keep going until every worker has been served by the new workers.
        marks = [len(w.served_by) for w in workers]
        wait_until(lambda: all(len(w.served_by) > m + 3 for w, m in zip(workers, marks)),
                   timeout=30, what="requests after the reload")
        stop.set()
        for w in workers:
            w.join(30)
        # Whether a request was answered *while* the workers were replaced
        # depends on how quick the reload was (a timing, not asserted; it
        # failed once in CI with none). What matters: every request sent
        # across it was answered, by the new workers after it.
        errors = [e for w in workers for e in w.errors]
        assert errors == []
        assert {s for w in workers for s in w.served_by} == {node.name}
        assert node.alive()
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        st.stop()
