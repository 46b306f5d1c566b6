"""What every part of ``make bench`` shares: where things go, the targets,
and how a bounded command is run and logged."""
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
VAR = os.path.join(ROOT, "var", "bench")
DOCS = os.path.join(ROOT, "docs")
PLOTS = os.path.join(DOCS, "bench")

TARGETS = {
    "ratio": 0.8,            # lease req/s ÷ healthz req/s
    "makespan_s": 30.0,      # 1M tasks, 1000 pods, batch 100
    "burst_errors": 0,
    "memory_bytes": 2 * 1024 * 1024,
    "celery_factor": 50.0,
}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def run(argv, timeout, env=None):
    """Run a command, bounded in time; return (rc, stdout)."""
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    try:
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return 124, (err.stdout or "") if isinstance(err.stdout, str) else ""
    if p.returncode not in (0, 1):
        sys.stderr.write(p.stderr[-3000:])
    return p.returncode, p.stdout
