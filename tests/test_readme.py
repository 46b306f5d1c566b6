"""The README's quick start and library snippet run as written, against the
real stack (nginx → uWSGI → Redis) on a free port.

Only the address changes (the README says http://127.0.0.1:8080) and the
line that starts the stack (`make run &`: the fixture has done that)."""
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.support.mongo import start_mongo
from tests.support.stack import start_stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_URL = "http://127.0.0.1:8080"


def _blocks(section, lang):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    start = text.index("## " + section)
    end = text.find("\n## ", start + 1)
    return re.findall(r"```%s\n(.*?)```" % lang, text[start:end], re.S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # What `JOBMASTER_MONGO=embedded make run` adds: nx-27017 and the archive on.
    mongo = start_mongo(tmp_path_factory.mktemp("readme-mongo"))
    st = start_stack(tmp_path_factory.mktemp("readme"), instances=2,
                     env={"JOBMASTER_MONGO_URL": mongo.url})
    yield st
    st.stop()
    mongo.stop()


def _api(stack, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(stack.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _env(stack):
    venv_bin = os.path.dirname(sys.executable)
    return dict(os.environ, JOBMASTER_URL=stack.url, PATH=venv_bin + os.pathsep + os.environ["PATH"])


def test_the_quick_start_runs_as_written(stack):
    (block,) = _blocks("A job in one minute", "sh")
    lines = [ln for ln in block.splitlines() if "make run" not in ln]
    # `wait`: the four workers exit by themselves once the master says done
    script = "set -eo pipefail\n" + "\n".join(lines).replace(README_URL, stack.url) + "\nwait\n"
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=_env(stack), capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    results = [r for r in lines if "ok" in r]
    assert [r["id"] for r in results] == [0, 1, 2, 1997, 1998, 1999]
    assert all(r["ok"] for r in results)
    (job,) = [j for j in _api(stack, "GET", "/api/v1/jobs?archived=true")["jobs"]
              if j["name"] == "sims"]
    assert job["state"] == "completed" and job["counts"]["done"] == 2000 and job["archived"]


def test_the_library_snippet_runs_as_written(stack):
    (block,) = _blocks("A job in one minute", "python")
    job = _api(stack, "POST", "/api/v1/jobs", {"name": "lib", "tasks": {"range": [0, 30]}})
    code = block.replace(README_URL, stack.url)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(stack),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    status = _api(stack, "GET", "/api/v1/jobs/" + job["id"])
    assert status["state"] == "completed" and status["counts"]["done"] == 30
