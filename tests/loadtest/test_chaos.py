"""The nemesis harness, short: every fault once while a swarm works through a
job on the real `make run` stack; the checker must find nothing."""
import json
import subprocess
import sys

from loadtest import nemesis
from tests.loadtest.test_loadtest_smoke import ROOT


def test_every_fault_once_and_the_checker_finds_nothing(tmp_path):
    out = tmp_path / "report.json"
    # 20 pods x 10 tasks of 50 ms: at most ~400 tasks/s, so 8,000 tasks last
    # past the five faults (one every 2 s, Redis paused for 3 s).
    argv = [sys.executable, "-m", "loadtest.chaos", "--workdir", str(tmp_path / "stack"),
            "--instances", "2", "--pods", "20", "--tasks", "8000", "--batch", "10",
            "--work", "const:0.05", "--crash-rate", "0.02", "--lease-seconds", "5",
            "--interval", "2", "--count", str(len(nemesis.FAULTS)), "--pause-seconds", "3",
            "--timeout", "240", "--out", str(out)]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=360)
    report = json.loads(out.read_text())["chaos"]
    assert sorted(f["fault"] for f in report["faults"]) == sorted(
        ["kill-uwsgi-worker", "kill-instance", "kill-nginx-worker", "kill-redis", "pause-redis"]), \
        p.stderr[-2000:]
    assert report["state"] == "completed" and report["counts"]["done"] == 8000
    for check in ("lost", "doubled", "wrong_result", "two_leases", "after_ack", "bad_errors"):
        assert report[check] == 0, (check, report["samples"])
    assert report["pod_crashes"] > 0
    assert p.returncode == 0
