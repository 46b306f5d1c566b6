"""The CLI with the archive: `worker run --upload`, `job files`, `job results`
paging and failures, `job attempts` (a real uWSGI server, Redis, nx-27017)."""
import hashlib
import json
import os

import pytest

from tests.client.conftest import start_uwsgi
from tests.client.helpers import jm, start_worker
from tests.support.procs import wait_until


@pytest.fixture(scope="module")
def archive_server(redis_server, mongo_server, tmp_path_factory):
    url = "mongodb://127.0.0.1:%d/cli" % mongo_server.port
    yield from start_uwsgi(redis_server, tmp_path_factory.mktemp("uwsgi-archive"),
                           JOBMASTER_MONGO_URL=url, JOBMASTER_ARCHIVE_IDLE_SECONDS="0.1")


@pytest.fixture
def server(archive_server, redis_url):
    return archive_server


def test_worker_uploads_its_file_and_the_cli_reads_everything_back(server, tmp_path):
    job = jm(server, "job", "create", "cli-archive", "--range", "0", "30", "--batch-size", "7",
             "--max-attempts", "1")
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip()
    stats = tmp_path / "stats.json"
    stats.write_bytes(os.urandom(100_000))
    # Task 5 fails for good; the rest echo their payload.
    worker = start_worker(server, "--job", job_id, "--upload", str(stats), "--",
                          "sh", "-c", 'test "$0" != 5 && echo "$0"', "{}")
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 3, err  # 3: a task it ran died (and it still uploads)
    files = jm(server, "job", "files", job_id)
    assert files.returncode == 0, files.stderr
    [entry] = [json.loads(line) for line in files.stdout.splitlines()]
    assert entry["name"] == "stats.json" and entry["size"] == 100_000
    assert entry["sha256"] == hashlib.sha256(stats.read_bytes()).hexdigest()
    got = tmp_path / "got.json"
    down = jm(server, "job", "files", job_id, "stats.json", "-o", str(got))
    assert down.returncode == 0, down.stderr
    assert got.read_bytes() == stats.read_bytes()
    page = jm(server, "job", "results", job_id, "--after", "3", "--limit", "3")
    assert [json.loads(x)["id"] for x in page.stdout.splitlines()] == [4, 6, 7]
    every = jm(server, "job", "results", job_id)
    assert [json.loads(x)["id"] for x in every.stdout.splitlines()] == [t for t in range(30) if t != 5]
    failed = jm(server, "job", "results", job_id, "--failed")
    [dead] = [json.loads(x) for x in failed.stdout.splitlines()]
    assert dead["id"] == 5 and dead["ok"] is False
    # (the attempt reaches the archive through a background drainer)
    attempts = wait_until(lambda: jm(server, "job", "attempts", job_id).stdout.splitlines(),
                          timeout=30, what="the attempt archived")
    assert [json.loads(x)["task"] for x in attempts] == [5]
    missing = jm(server, "job", "files", job_id, "nope.txt", "-o", str(tmp_path / "n"))
    assert missing.returncode != 0 and "no file named" in missing.stderr
