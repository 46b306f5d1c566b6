"""`make stop` runs `python3 -m stack stop` with the system's Python, outside
the venv: the launcher must need nothing but the standard library (it once
imported the client distribution, and `make stop` failed where only the
venv had it)."""
import os
import subprocess

import pytest

from tests.support.stack import ROOT


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system Python")
def test_stack_stop_runs_on_the_system_python(tmp_path):
    system = "/usr/bin/python3"
    env = {"PATH": "/usr/bin:/bin", "JOBMASTER_VAR": str(tmp_path / "var")}
    # -E -s: no PYTHONPATH, no user site: only what this Python has, and the repo
    out = subprocess.run([system, "-E", "-s", "-m", "stack", "stop"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
