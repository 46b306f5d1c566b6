"""`make run`'s launcher (``python -m stack run``: honcho, each process under
stack/keep.py) rides out a ``kill -9`` of redis-server or of an instance:
the process is started again, the stack stays up, the job completes."""
import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from jobmaster import Client, Worker
from jobmaster.retry import Backoff
from loadtest.stack import ProdStack
from tests.support.procs import wait_until

TOTAL = 3000


def _pid(stack, name):
    try:
        with open(os.path.join(stack.dir, "run", name + ".pid")) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ready(url):
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def prod(tmp_path):
    st = ProdStack(instances=2, workdir=str(tmp_path / "prod"),
                   env={"JOBMASTER_WAIT_SECONDS": "0.5"}).up()
    yield st
    st.down()


@pytest.mark.parametrize("victim", ["redis", "web-1"])
def test_a_killed_process_is_started_again_and_the_job_completes(prod, victim):
    client = Client(prod.url, retry_seconds=60, backoff=Backoff(base=0.05, cap=0.5))
    job = client.create_job("make-run-kill", range=(0, TOTAL), batch_size=10,
                            lease_seconds=5, max_attempts=50)["id"]
    seen = []

    def handle(task):
        seen.append(task.id)
        time.sleep(0.002)
        return task.payload

    workers = [Worker(Client(prod.url, retry_seconds=60, backoff=Backoff(base=0.05, cap=0.5)),
                      job=job, name="w%d" % i, max_tasks=10, max_idle=60) for i in range(4)]
    threads = [threading.Thread(target=w.run, args=(handle,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    wait_until(lambda: len(seen) >= TOTAL // 5, timeout=60, what="a fifth of the job done")
    before = _pid(prod, victim)
    assert before and _alive(before)
    os.kill(before, signal.SIGKILL)
    # started again under a new pid, and the stack answers again
    wait_until(lambda: _pid(prod, victim) not in (None, before) and _alive(_pid(prod, victim)),
               timeout=30, what="%s started again" % victim)
    wait_until(lambda: _ready(prod.url), timeout=30, what="/readyz after the restart")
    for t in threads:
        t.join(timeout=120)
    assert prod.proc.poll() is None, "the launcher exited"
    assert all(w.finished for w in workers)
    doc = client.job(job)
    assert doc["state"] == "completed" and doc["counts"]["done"] == TOTAL
    ids = [json.loads(line)["id"] for line in client.iter_results(job)]
    assert sorted(ids) == list(range(TOTAL))  # none lost, none stored twice
    with open(os.path.join(prod.dir, "stack.log"), errors="replace") as fh:
        assert "keep[%s]: was killed by signal 9" % victim in fh.read()
