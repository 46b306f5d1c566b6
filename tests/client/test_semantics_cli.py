"""The client side of docs/contract.md §7-§9 against the real server: a
job's task_timeout enforced by the worker library and the CLI's command
runner (the task fails with "error": "timeout", the worker goes on),
`jobmaster job token`, and `jobmaster job create`'s new settings."""
import json
import threading
import time

from jobmaster import TaskTimeout, Worker
from tests.client.conftest import WORKER_TOKEN
from tests.client.helpers import jm, start_worker, stop_all


def _dead(server, job_id):
    with server.client() as admin:
        return {d["id"]: d for d in admin.dead(job_id)["dead"]}


def _hang_on_one(task):
    if task.payload == 1:
        time.sleep(30)  # interrupted by the timeout
    return task.payload


def test_run_stops_a_task_past_its_timeout_in_the_main_thread(server):
    with server.client() as admin:
        job = admin.create_job("timeouts", range=(0, 3), batch_size=3, max_attempts=1,
                               task_timeout=0.5)
    started = time.monotonic()
    worker = Worker(server.client(WORKER_TOKEN), job=job["id"]).run(_hang_on_one)
    assert worker.finished and time.monotonic() - started < 25
    dead = _dead(server, job["id"])
    assert list(dead) == [1] and dead[1]["error"] == "timeout"
    with server.client() as admin:
        assert admin.job(job["id"])["counts"]["done"] == 2


def test_run_in_another_thread_gives_the_task_up(server):
    with server.client() as admin:
        job = admin.create_job("timeouts-thread", range=(0, 3), batch_size=3, max_attempts=1,
                               task_timeout=0.5)
    box = {}
    thread = threading.Thread(target=lambda: box.update(
        w=Worker(server.client(WORKER_TOKEN), job=job["id"]).run(_hang_on_one)))
    thread.start()
    thread.join(25)
    assert not thread.is_alive() and box["w"].finished
    assert _dead(server, job["id"])[1]["error"] == "timeout"


def test_the_for_form_raises_inside_the_body_after_failing_the_task(server):
    with server.client() as admin:
        job = admin.create_job("timeouts-for", range=(0, 3), batch_size=3, max_attempts=1,
                               task_timeout=0.5)
    timed_out = []
    with Worker(server.client(WORKER_TOKEN), job=job["id"]) as worker:
        for task in worker:
            assert task.timeout == 0.5
            try:
                _hang_on_one(task)
            except TaskTimeout:
                timed_out.append(task.id)
    assert timed_out == [1] and worker.finished
    assert _dead(server, job["id"])[1]["error"] == "timeout"


def test_cli_kills_a_command_past_the_jobs_timeout(server, tmp_path):
    out = jm(server, "job", "create", "cmd-timeouts", "--range", "0", "3", "--batch-size", "3",
             "--max-attempts", "1", "--task-timeout", "0.5")
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    worker = start_worker(server, "--job", job_id, "--", "sh", "-c",
                          'if [ {} = 1 ]; then sleep 30; fi; echo {}')
    try:
        worker.wait(25)
        # exit 3: a task it ran died (timed out with no attempt left)
        assert worker.returncode == 3, worker.stderr.read()
    finally:
        stop_all([worker])
    dead = _dead(server, job_id)
    assert list(dead) == [1] and dead[1]["error"] == "timeout"
    status = json.loads(jm(server, "job", "status", job_id, "--json").stdout)
    assert status["settings"]["task_timeout"] == 0.5 and status["outcome"] == "partial"
    text = jm(server, "job", "status", job_id).stdout
    assert "completed (partial)" in text and "task_timeout 0.5" in text


def test_cli_job_token_runs_a_worker_on_its_job_only(server):
    mine = jm(server, "job", "create", "tok-mine", "--range", "0", "6").stdout.strip()
    other = jm(server, "job", "create", "tok-other", "--range", "0", "6",
               "--priority", "5").stdout.strip()
    out = jm(server, "job", "token", mine, "--ttl", "600")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("jmt.%s." % mine) and len(out.stdout.splitlines()) == 1
    # no --job: the token's job, not the busier other one
    worker = start_worker(server, "--", "sh", "-c", "echo {}", token=token)
    try:
        worker.wait(30)
        assert worker.returncode == 0, worker.stderr.read()
    finally:
        stop_all([worker])
    with server.client() as admin:
        assert admin.job(mine)["counts"]["done"] == 6
        assert admin.job(other)["counts"]["done"] == 0
    denied = jm(server, "job", "status", mine, token=token)
    assert denied.returncode == 1 and "403" in denied.stderr
    revoked = jm(server, "job", "token", mine, "--revoke")
    assert json.loads(revoked.stdout) == {"revoked": 1}


def test_cli_job_create_takes_every_new_setting(server):
    out = jm(server, "job", "create", "flags", "--range", "0", "3", "--max-dead", "2",
             "--retry-backoff", "1.5", "--task-timeout", "30", "--batching", "guided",
             "--speculate", "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-secret", "s")
    assert out.returncode == 0, out.stderr
    settings = json.loads(jm(server, "job", "status", out.stdout.strip(), "--json").stdout)["settings"]
    assert {k: settings[k] for k in ("max_dead", "retry_backoff", "task_timeout", "batching",
                                     "speculate", "webhook")} == {
        "max_dead": 2, "retry_backoff": 1.5, "task_timeout": 30, "batching": "guided",
        "speculate": True, "webhook": {"url": "http://127.0.0.1:9/hook"}}
    bad = jm(server, "job", "create", "bad", "--range", "0", "3", "--webhook-url", "ftp://x")
    assert bad.returncode == 1 and "body.webhook.url" in bad.stderr and "400" in bad.stderr
