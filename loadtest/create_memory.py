"""How much memory one large items create costs an app instance.

    python -m loadtest.create_memory [--items 1000000] [--mb 51]

Starts the `make run` stack with one instance of one worker (files under
var/create-memory), reads the worker's resident memory (VmRSS) and its peak
(VmHWM, reset first through /proc/PID/clear_refs) from /proc, posts one
items job of ``--items`` items of about ``--mb`` MB of JSON in all, and
prints the figures as JSON. Bounded: one request, 300 s at most.
"""
import argparse
import json
import os
import sys
import time
import urllib.request

from loadtest.nemesis import children
from loadtest.stack import ROOT, ProdStack


def _status_kb(pid, field):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def body(items, mb):
    """A create body of ``items`` items, padded to about ``mb`` MB."""
    pad = max(0, int(mb * 1e6 / items) - len('{"seed":1000000,"pad":""},'))
    filler = "x" * pad
    parts = ['{"seed":%d,"pad":"%s"}' % (i, filler) for i in range(items)]
    return ('{"name":"create-memory","batch_size":100,"tasks":{"items":[%s]}}'
            % ",".join(parts)).encode()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--mb", type=float, default=51.0)
    a = p.parse_args(argv)
    data = body(a.items, a.mb)
    stack = ProdStack(instances=1, workdir=os.path.join(ROOT, "var", "create-memory"))
    with stack:
        master = int(open(os.path.join(stack.dir, "run", "web-1.pid")).read())
        worker = children(master)[0]
        for _ in range(3):  # warm: the first requests import and allocate
            urllib.request.urlopen(stack.url + "/readyz", timeout=10).read()
        before = _status_kb(worker, "VmRSS")
        peak_reset = _reset_peak(worker)
        req = urllib.request.Request(stack.url + "/api/v1/jobs", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=300) as r:
            answer = json.loads(r.read())
        seconds = time.monotonic() - t0
        out = {"body_mb": round(len(data) / 1e6, 1), "items": a.items,
               "answer_total": answer["counts"]["total"], "seconds": round(seconds, 2),
               "rss_before_mb": round(before / 1024, 1),
               "rss_after_mb": round(_status_kb(worker, "VmRSS") / 1024, 1),
               "peak_mb": round(_status_kb(worker, "VmHWM") / 1024, 1) if peak_reset else None,
               "worker_pid": worker, "same_worker": worker in children(master)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
