"""What the CLI says: `worker run`'s summary and exit status, the job's own
command, short retries for interactive commands, and where a token goes."""
import json
import re

from tests.client.conftest import WORKER_TOKEN
from tests.client.helpers import jm
from tests.support.procs import free_port

SUMMARY = re.compile(r"^jobmaster: worker (\S+): (\d+) ok, (\d+) failed \((\d+) dead\), "
                     r"(\d+) released, (\d+) leases$", re.M)


def _job(server, tasks, **settings):
    return server.client().create_job("r", **tasks, **settings)["id"]


def _summary(out):
    m = SUMMARY.search(out.stderr)
    assert m, out.stderr
    return tuple(int(g) for g in m.groups()[1:])


def test_a_worker_whose_tasks_died_says_so_and_exits_3(server):
    job = _job(server, {"range": (0, 4)}, batch_size=2, max_attempts=1)
    out = jm(server, "worker", "run", "--job", job, "--name", "w-dead", "--", "false",
             token=WORKER_TOKEN)
    assert out.returncode == 3, out.stderr
    assert _summary(out) == (0, 4, 4, 0, 2)
    assert "worker w-dead:" in out.stderr


def test_a_worker_runs_the_jobs_own_command_and_sums_up(server):
    job = _job(server, {"items": ["x", "y z"]}, command="printf '[%s]' {}")
    out = jm(server, "worker", "run", "--job", job, token=WORKER_TOKEN)
    assert out.returncode == 0, out.stderr
    ok, failed, dead, _released, leases = _summary(out)
    assert (ok, failed, dead) == (2, 0, 0) and leases >= 1
    lines = jm(server, "job", "results", job).stdout.splitlines()
    assert sorted(json.loads(line)["result"] for line in lines) == ["[x]", "[y z]"]


def test_a_job_without_command_stops_the_worker_and_loses_nothing(server):
    job = _job(server, {"range": (0, 3)}, max_attempts=1)
    out = jm(server, "worker", "run", "--job", job, token=WORKER_TOKEN)
    assert out.returncode == 1 and "has no command" in out.stderr, out.stderr
    doc = json.loads(jm(server, "job", "status", job, "--json").stdout)
    assert doc["counts"]["dead"] == 0 and doc["counts"]["leased"] == 0  # released, not failed


def test_interactive_commands_give_up_on_an_unreachable_master(server):
    # The default retry of a worker is minutes; a `job` command gives up in
    # seconds. A 30 s bound on the subprocess tells the two apart.
    dead_url = "http://127.0.0.1:%d" % free_port()
    out = jm(server, "--url", dead_url, "job", "list", timeout=30)
    assert out.returncode == 1 and "cannot reach" in out.stderr, out.stderr


def test_a_401_says_where_the_token_goes(server):
    out = jm(server, "job", "list", token="not-a-token")
    assert out.returncode == 1
    assert "--token" in out.stderr and "JOBMASTER_TOKEN" in out.stderr, out.stderr
    out = jm(server, "worker", "run", "--job", "x", "--", "true", token="not-a-token")
    assert "--token" in out.stderr and "401" in out.stderr, out.stderr
