"""The nemesis harness: a swarm works through a job while a nemesis breaks
the stack, and a checker reads the whole history (in the manner of Jepsen).

    python -m loadtest.chaos --seconds 120            # every fault, in turn
    python -m loadtest.chaos --faults uwsgi-worker --count 3 --interval 3 \\
        --pods 100 --tasks 10000 --batch 10 --compare # the 3-kill scenario

It starts the production stack exactly as `make run` does (``python -m stack
run`` on free loopback ports, files under ``var/chaos``; every process under
stack/keep.py, which starts a killed one again), creates a range job, and runs
the pod swarm of :mod:`loadtest.swarm` with its history recorded (every
request and answer; pods die mid-lease with ``--crash-rate``). Meanwhile
:mod:`loadtest.nemesis` injects ``--faults`` in turn every ``--interval``
seconds: ``kill -9`` of a uWSGI worker, of a whole instance, of an nginx
worker, of redis-server (AOF, appendfsync everysec), and a SIGSTOP of Redis
for ``--pause-seconds``. When the job is done (or ``--timeout``), the
checker (:mod:`loadtest.checker`) reports lost tasks, doubled or wrong
results, tasks in two valid leases at once, hand-outs after an acknowledged
completion and every error that is not a retryable one. With ``--compare``
a clean round runs first on the same stack and both makespans are printed.

Prints one JSON report; exit status 0 iff the checker found nothing. Every
loop is bounded: the swarm by ``--timeout``, the nemesis by ``--seconds``
and ``--count``, each recovery wait by 60 s.
"""
import argparse
import asyncio
import json
import os
import sys
import threading
import time

from loadtest import checker, nemesis, swarm
from loadtest.common import Admin, pod_address, raise_nofile
from loadtest.stack import ROOT, ProdStack


def results_of(admin, job_id):
    raw = admin._req("GET", "/api/v1/jobs/%s/results" % job_id, raw=True)
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def swarm_args(a):
    argv = ["--url", a.url, "--pods", str(a.pods), "--tasks", str(a.tasks),
            "--batch", str(a.batch), "--work", a.work, "--crash-rate", str(a.crash_rate),
            "--lease-seconds", str(a.lease_seconds), "--max-attempts", "1000",
            "--timeout", str(a.timeout), "--request-timeout", "30", "--seed", str(a.seed)]
    args = swarm.build_parser().parse_args(argv)
    args.addresses = [pod_address(i) for i in range(args.pods)]
    return args


def one_round(a, stack, faults, label):
    """Run one job under ``faults`` (empty: a clean round); its report."""
    admin = Admin(a.url, timeout=60)
    job = admin.create_range_job("chaos-" + label, a.tasks, batch_size=a.batch,
                                 lease_seconds=a.lease_seconds, max_attempts=1000)["id"]
    history = []
    sw = swarm.Swarm(swarm_args(a), job, history)
    nem = nemesis.Nemesis(os.path.join(stack.dir, "run"), a.url, seed=a.seed,
                          pause_seconds=a.pause_seconds)
    stop = threading.Event()
    thread = None
    if faults:
        thread = threading.Thread(target=nem.run, args=(faults, a.interval, stop, a.count),
                                  daemon=True)
        thread.start()
    t0 = time.time()
    info = asyncio.run(sw.run())
    stop.set()
    if thread:
        thread.join(timeout=a.pause_seconds + 90)
    status = admin.wait_completed(job, timeout=30)
    results = results_of(admin, job)
    report = checker.check(history, results, a.tasks, nem.log)
    report.update({
        "label": label, "job": job, "state": status.get("state"), "counts": status.get("counts"),
        "makespan_s": info["makespan_s"], "timed_out": info["timed_out"],
        "pod_crashes": sw.stats.crashes, "faults": [dict(f, at=round(f["at"] - t0, 2),
                                                         until=round(f["until"] - t0, 2))
                                                    for f in nem.log],
    })
    report["ok"] = (report["ok"] and report["state"] == "completed" and not info["timed_out"])
    if a.history:
        with open(a.history % label if "%s" in a.history else a.history, "w") as fh:
            json.dump({"history": history, "faults": nem.log}, fh)
    return report


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faults", default=",".join(nemesis.FAULTS),
                   help="comma-separated, injected in turn: %s" % ", ".join(nemesis.FAULTS))
    p.add_argument("--interval", type=float, default=8.0, help="seconds between faults")
    p.add_argument("--seconds", type=float, default=120.0, help="how long the nemesis runs")
    p.add_argument("--count", type=int, default=None, help="stop after this many faults")
    p.add_argument("--pause-seconds", type=float, default=nemesis.PAUSE_SECONDS)
    p.add_argument("--compare", action="store_true", help="a clean round first, on the same stack")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--pods", type=int, default=50)
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--work", default="uniform:0.01:0.05", help="seconds per task (loadtest.swarm)")
    p.add_argument("--crash-rate", type=float, default=0.01, help="pods killed mid-lease")
    p.add_argument("--lease-seconds", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=600.0, help="bound of each swarm round")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default=os.path.join(ROOT, "var", "chaos"),
                   help="the stack's files (wiped first)")
    p.add_argument("--history", help="write each round's history here (%%s: the round's label)")
    p.add_argument("--out", help="write the report here too")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    faults = [f for f in a.faults.split(",") if f]
    for f in faults:
        if f not in nemesis.FAULTS:
            raise SystemExit("unknown fault %r (one of %s)" % (f, ", ".join(nemesis.FAULTS)))
    if a.count is None:
        a.count = max(1, int(a.seconds // a.interval))
    raise_nofile(a.pods * 2 + 1024)
    stack = ProdStack(instances=a.instances, workdir=a.workdir,
                      env={"JOBMASTER_WAIT_SECONDS": "0.5"})
    out = {"command": "python -m loadtest.chaos " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])}
    with stack:
        a.url = stack.url
        if a.compare:
            out["clean"] = one_round(a, stack, [], "clean")
        out["chaos"] = one_round(a, stack, faults, "chaos")
    if a.compare:
        out["makespan_ratio"] = round(out["chaos"]["makespan_s"] / out["clean"]["makespan_s"], 2)
    out["ok"] = all(r["ok"] for k, r in out.items() if k in ("clean", "chaos"))
    text = json.dumps(out, indent=1, sort_keys=True)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
