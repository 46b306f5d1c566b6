"""The `jobmaster` CLI end to end, run as subprocesses against a real server."""
import json
import re
import signal

from tests.client.conftest import WORKER_TOKEN
from tests.client.helpers import jm, job_doc, start_worker, stop_all
from tests.support.procs import free_port, wait_until


def _create(server, *args, input=None):
    out = jm(server, "job", "create", *args, input=input)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"\S+", lines[0]), out.stdout  # the id alone
    return lines[0]


def _results(server, job_id, tmp_path):
    path = tmp_path / ("%s.ndjson" % job_id)
    out = jm(server, "job", "results", job_id, "-o", str(path))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_create_run_status_results(server, tmp_path):
    job_id = _create(server, "echo", "--range", "5", "205", "--batch-size", "7")
    workers = [start_worker(server, "--job", job_id, "--", "sh", "-c", "echo {}")
               for _ in range(2)]
    workers.append(start_worker(server, "--job", job_id, "--concurrency", "3",
                                "--", "sh", "-c", "echo {}"))
    try:
        for w in workers:
            w.wait(60)
            assert w.returncode == 0, w.stderr.read()
    finally:
        stop_all(workers)

    status = jm(server, "job", "status", job_id, "--json")
    doc = json.loads(status.stdout)
    assert doc["state"] == "completed"
    assert doc["counts"]["done"] == 200 and doc["counts"]["dead"] == 0

    watch = jm(server, "job", "status", job_id, "--watch", "--interval", "0.2")
    assert watch.returncode == 0
    assert "200/200 done" in watch.stdout and "completed" in watch.stdout

    listing = jm(server, "job", "list")
    assert job_id in listing.stdout and "completed" in listing.stdout

    results = _results(server, job_id, tmp_path)
    assert sorted(r["id"] for r in results) == list(range(200))
    assert all(r["ok"] and r["result"] == str(r["id"] + 5) for r in results)

    streamed = jm(server, "job", "results", job_id)
    assert len(streamed.stdout.splitlines()) == 200


def test_items_stdin_placeholder_and_params(server, tmp_path):
    items = [{"n": 1, "s": "é"}, "plain text", 3, [1, 2], None]
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"build": 42}))
    # No {}: the item's JSON arrives on stdin; `cat` echoes it back.
    stdin_job = _create(server, "stdin", "--items", "-", "--params", str(params),
                        input=json.dumps(items))
    # {}: strings as is, anything else as JSON text, via "$1" (no shell injection).
    arg_job = _create(server, "args", "--items", "-",
                      input="\n".join(json.dumps(i) for i in items) + "\n")
    env_job = _create(server, "env", "--range", "0", "2", "--params", str(params))

    runs = [start_worker(server, "--job", stdin_job, "--", "cat"),
            start_worker(server, "--job", arg_job, "--", "sh", "-c", 'printf %s "$1"', "sh", "{}"),
            start_worker(server, "--job", env_job, "--", "sh", "-c",
                         'echo "$JOBMASTER_TASK_ID $JOBMASTER_ATTEMPT $JOBMASTER_PARAMS"')]
    try:
        for w in runs:
            assert w.wait(60) == 0, w.stderr.read()
    finally:
        stop_all(runs)

    by_id = {r["id"]: r for r in _results(server, stdin_job, tmp_path)}
    assert [json.loads(by_id[i]["result"]) for i in range(len(items))] == items

    by_id = {r["id"]: r["result"] for r in _results(server, arg_job, tmp_path)}
    assert by_id == {0: '{"n":1,"s":"é"}', 1: "plain text", 2: "3", 3: "[1,2]", 4: "null"}

    by_id = {r["id"]: r["result"] for r in _results(server, env_job, tmp_path)}
    assert by_id == {0: '0 1 {"build":42}', 1: '1 1 {"build":42}'}


def test_failures_go_dead_and_retry(server, tmp_path):
    job_id = _create(server, "odd-fails", "--range", "0", "6", "--max-attempts", "2")
    script = 'if [ $(($1 % 2)) -eq 1 ]; then echo "boom-$1" >&2; exit 3; fi; echo "$1"'
    w = start_worker(server, "--job", job_id, "--", "sh", "-c", script, "sh", "{}")
    try:
        assert w.wait(60) == 3, w.stderr.read()  # 3: tasks it ran died
    finally:
        stop_all([w])
    doc = job_doc(server, job_id)
    assert doc["state"] == "completed"
    assert doc["counts"]["done"] == 3 and doc["counts"]["dead"] == 3

    dead = jm(server, "job", "dead", job_id)
    entries = [json.loads(line) for line in dead.stdout.splitlines()]
    assert sorted(e["id"] for e in entries) == [1, 3, 5]
    assert all("exit status 3" in e["error"] and "boom-%d" % e["id"] in e["error"]
               for e in entries)

    retried = jm(server, "job", "dead", job_id, "--retry")
    assert retried.returncode == 0 and json.loads(retried.stdout)["retried"] == 3
    w = start_worker(server, "--job", job_id, "--", "true")
    try:
        assert w.wait(60) == 0, w.stderr.read()
    finally:
        stop_all([w])
    assert job_doc(server, job_id)["counts"]["done"] == 6


def test_pause_resume_cancel_delete(server):
    job_id = _create(server, "ctl", "--range", "0", "10")
    assert jm(server, "job", "pause", job_id).returncode == 0
    assert job_doc(server, job_id)["state"] == "paused"
    assert jm(server, "job", "resume", job_id).returncode == 0
    assert job_doc(server, job_id)["state"] == "running"
    assert jm(server, "job", "cancel", job_id).returncode == 0
    assert job_doc(server, job_id)["state"] == "cancelled"
    # A worker on a cancelled job is told "done" and exits 0.
    w = start_worker(server, "--job", job_id, "--", "true")
    try:
        assert w.wait(30) == 0
    finally:
        stop_all([w])
    assert jm(server, "job", "delete", job_id).returncode == 0
    gone = jm(server, "job", "status", job_id)
    assert gone.returncode == 1 and "404" in gone.stderr


def _one_line_error(out, *needles):
    assert out.returncode != 0
    # `worker run` also says what it did on exit, on a line of its own.
    lines = [line for line in out.stderr.strip().splitlines()
             if not line.startswith("jobmaster: worker ")]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_errors_are_one_line(server):
    _one_line_error(jm(server, "job", "create", "x", "--range", "0", "1", token=WORKER_TOKEN),
                    "403")
    _one_line_error(jm(server, "job", "list", token="wrong"), "401")
    _one_line_error(jm(server, "job", "status", "nosuchjob"), "404")
    _one_line_error(jm(server, "--url", "http://127.0.0.1:%d" % free_port(),
                       "--retry-seconds", "0", "job", "list"), "cannot reach")
    _one_line_error(jm(server, "job", "create", "x"), "--range")
    _one_line_error(jm(server, "job", "create", "x", "--items", "-", input="{not json"),
                    "not JSON")
    # No command of its own: the worker runs the job's (docs/contract.md §10); there is no job x.
    _one_line_error(jm(server, "worker", "run", "--job", "x"), "404")
    _one_line_error(jm(server, "worker", "run", "--", "no-such-command-jm"), "not found")
    _one_line_error(jm(server, "worker", "run", "--job", "nosuchjob", "--", "true",
                       token=WORKER_TOKEN), "404")


def test_help_everywhere():
    from click.testing import CliRunner

    from jobmaster.cli import cli

    runner = CliRunner()
    for args in ([], ["job"], ["job", "create"], ["job", "list"], ["job", "status"],
                 ["job", "pause"], ["job", "results"], ["job", "dead"], ["job", "workers"],
                 ["worker"], ["worker", "run"], ["worker", "release"], ["worker", "stop"]):
        out = runner.invoke(cli, [*args, "--help"], prog_name="jobmaster")
        assert out.exit_code == 0 and "Usage: jobmaster" in out.output, args


def test_sigterm_one_of_four_workers_loses_nothing(server, tmp_path):
    """The acceptance scenario: 2,000 tasks, four workers, SIGTERM one mid-run."""
    job_id = _create(server, "acceptance", "--range", "0", "2000")
    workers = [start_worker(server, "--job", job_id, "--", "sh", "-c", "echo {}")
               for _ in range(4)]
    try:
        wait_until(lambda: job_doc(server, job_id)["counts"]["done"] >= 200, timeout=60,
                   interval=0.05, what="200 tasks done")
        workers[0].send_signal(signal.SIGTERM)
        assert workers[0].wait(30) == 128 + signal.SIGTERM
        for w in workers[1:]:
            assert w.wait(90) == 0, w.stderr.read()
    finally:
        stop_all(workers)
    doc = job_doc(server, job_id)
    assert doc["state"] == "completed"
    assert doc["counts"] == {"total": 2000, "pending": 0, "leased": 0, "done": 2000, "dead": 0}
    results = _results(server, job_id, tmp_path)
    assert len(results) == 2000
    assert sorted(r["id"] for r in results) == list(range(2000))
    assert all(r["ok"] and r["result"] == str(r["id"]) for r in results)
