"""SIGTERM to `jobmaster worker run`: leases come back at once, not at expiry.

Every job here has a 300 s lease, so a task that is pending again right after
the worker exits was released, not reclaimed.
"""
import json
import signal

from tests.client.helpers import jm, job_doc, start_worker, stop_all
from tests.support.procs import wait_until


def _create(server, *args):
    out = jm(server, "job", "create", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_sigterm_kill_releases_running_task_at_once(server, tmp_path):
    job_id = _create(server, "kill", "--range", "0", "3", "--batch-size", "3",
                     "--lease-seconds", "300")
    started = tmp_path / "started-0"
    w = start_worker(server, "--job", job_id, "--on-term", "kill", "--",
                     "sh", "-c", 'touch "%s/started-$1"; exec sleep 120' % tmp_path, "sh", "{}")
    try:
        wait_until(started.exists, timeout=30, what="task 0 started")
        assert job_doc(server, job_id)["counts"]["leased"] == 3
        w.send_signal(signal.SIGTERM)
        assert w.wait(30) == 128 + signal.SIGTERM
    finally:
        stop_all([w])
    counts = job_doc(server, job_id)["counts"]
    assert counts == {"total": 3, "pending": 3, "leased": 0, "done": 0, "dead": 0}
    # The killed run was not reported as a failure: the next worker's attempt is clean.
    w = start_worker(server, "--job", job_id, "--", "sh", "-c", "echo {}")
    try:
        assert w.wait(30) == 0
    finally:
        stop_all([w])
    assert job_doc(server, job_id)["counts"]["done"] == 3


def test_sigterm_finish_reports_running_task_and_releases_rest(server, tmp_path):
    job_id = _create(server, "finish", "--range", "0", "3", "--batch-size", "3",
                     "--lease-seconds", "300")
    started, go = tmp_path / "started-0", tmp_path / "go"
    log = tmp_path / "worker.log"
    script = ('touch "%s/started-$1"; while [ ! -e "%s" ]; do sleep 0.02; done; echo "$1"'
              % (tmp_path, go))
    w = start_worker(server, "--job", job_id, "--", "sh", "-c", script, "sh", "{}",
                     stderr_path=str(log))
    try:
        wait_until(started.exists, timeout=30, what="task 0 started")
        w.send_signal(signal.SIGTERM)
        wait_until(lambda: "signal 15" in log.read_text(), timeout=30,
                   what="the worker noticed SIGTERM")
        go.touch()  # let the running task finish
        assert w.wait(30) == 128 + signal.SIGTERM
    finally:
        stop_all([w])
    counts = job_doc(server, job_id)["counts"]
    assert counts == {"total": 3, "pending": 2, "leased": 0, "done": 1, "dead": 0}
    results = [json.loads(line) for line in jm(server, "job", "results", job_id).stdout.split()]
    assert [(r["id"], r["ok"], r["result"]) for r in results] == [(0, True, "0")]


def test_worker_stop_for_prestop(server, tmp_path):
    """`jobmaster worker stop --pid-file` (a preStop hook) waits until leases are released."""
    job_id = _create(server, "prestop", "--range", "0", "4", "--batch-size", "4",
                     "--lease-seconds", "300")
    pid_file, started = tmp_path / "worker.pid", tmp_path / "started-0"
    w = start_worker(server, "--job", job_id, "--on-term", "kill", "--pid-file", str(pid_file),
                     "--", "sh", "-c", 'touch "%s/started-$1"; exec sleep 120' % tmp_path,
                     "sh", "{}")
    try:
        wait_until(started.exists, timeout=30, what="task 0 started")
        out = jm(server, "worker", "stop", "--pid-file", str(pid_file), "--timeout", "30")
        assert out.returncode == 0, out.stderr
        # stop returned: the worker has exited and its lease is back.
        assert w.poll() == 128 + signal.SIGTERM
        assert job_doc(server, job_id)["counts"]["pending"] == 4
        assert not pid_file.exists()
    finally:
        stop_all([w])
