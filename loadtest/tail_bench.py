"""The tail of a job (issue 14's figure): makespan with ``fixed`` batching
and no speculation against ``guided`` + ``speculate``.

    python -m loadtest.tail_bench            # 100,000 tasks, 200 pods
    python -m loadtest.tail_bench --quick    # 10,000 tasks, 50 pods

Simulated pods are greenlets in this process that lease, "run" each task
by sleeping (``--task-ms``), and complete with ``next``, through the same
domain functions the HTTP views call (app.domain.leases) on a real Redis
started here (only the web layer is left out: this measures scheduling, not
HTTP). 2% of the pods are 10x slower; one pod takes a batch and hangs while
its lease is heartbeaten, as a stuck pod whose heartbeat thread still runs.

Reported per mode: the makespan (first lease to the job's completion); the
ideal makespan (all work spread evenly over the pods' capacity); the pace
(twice the time to half done: what the whole job takes at the rate it ran
at, with the simulator, the app and Redis sharing the machine's cores); the
tail (makespan - pace) in median batch times, and against the ideal. With
fixed batching and no speculation the hung pod's batch never comes back (its lease is kept
alive), so that run stops once everything else is done, and says so.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from app import create_app  # noqa: E402
from app.domain import jobs, leases  # noqa: E402
from tests.support.procs import start_redis  # noqa: E402


def run_mode(app, args, batching, speculate):
    backend = app.extensions["jobmaster.backend"]
    job = jobs.create(backend, {"name": "tail-%s" % batching, "tasks": {"range": [0, args.tasks]},
                                "batch_size": args.batch, "lease_seconds": args.lease_seconds,
                                "batching": batching, "speculate": speculate})["id"]
    task_s = args.task_ms / 1000.0
    slow = max(1, round(args.pods * args.slow_share))
    batch_times, stop = [], gevent.event.Event()

    def pod(i):
        name = "pod-%d" % i
        per_task = task_s * (args.slow_factor if i < slow else 1)
        hung = i == args.pods - 1
        answer = leases.lease(backend, name, 0, job)
        while not stop.is_set():
            if answer.status == "done":
                return
            if answer.status == "wait":
                gevent.sleep(min(answer.retry_after, args.wait_cap))
                answer = leases.lease(backend, name, 0, job)
                continue
            doc = json.loads(answer.text)
            lid, tasks = doc["lease"]["id"], doc["tasks"]
            if hung:  # holds its batch, heartbeating, until the run ends
                while not stop.wait(args.lease_seconds / 3.0):
                    leases.heartbeat(backend, lid)
                return
            started = time.monotonic()
            gevent.sleep(per_task * len(tasks))
            if i >= slow and not tasks[0].get("speculative"):
                batch_times.append(time.monotonic() - started)
            results = [{"id": t["id"], "ok": True, "result": t["payload"]} for t in tasks]
            _doc, answer = leases.complete(backend, lid, {"results": results, "next": {}}, name)
            if answer is None:
                answer = leases.lease(backend, name, 0, job)

    started = time.monotonic()
    pods = [gevent.spawn(pod, i) for i in range(args.pods)]
    finished, rest_done, half = None, None, None
    held = None
    while time.monotonic() - started < args.deadline:
        gevent.sleep(0.05)
        doc = jobs.status(backend, job)
        counts = doc["counts"]
        if half is None and counts["done"] >= args.tasks / 2:
            half = time.monotonic() - started
        if doc["state"] == "completed":
            finished = time.monotonic() - started
            break
        if held is None and counts["leased"] and counts["pending"] == 0:
            held = counts["leased"]
        if counts["done"] == counts["total"] - counts["leased"] and counts["pending"] == 0 \
                and rest_done is None and not speculate and counts["leased"] <= args.batch:
            rest_done = time.monotonic() - started
            if batching == "fixed":
                break  # only the hung pod's batch is left, and it never comes back
    stop.set()
    gevent.joinall(pods, timeout=args.lease_seconds)
    capacity = (args.pods - slow - 1) / task_s + slow / (task_s * args.slow_factor)
    ideal = args.tasks / capacity
    median_batch = statistics.median(batch_times) if batch_times else float("nan")
    # The pace the job actually ran at (twice the time to half done): the
    # pods, the app and Redis share this machine's cores, so the run is
    # slower than the pods' capacity alone would make it; the tail is what
    # the end adds beyond that pace.
    pace = 2 * half if half else None
    out = {"batching": batching, "speculate": speculate, "ideal_s": round(ideal, 2),
           "pace_s": round(pace, 2) if pace else None, "median_batch_s": round(median_batch, 3)}
    if finished is not None:
        out.update(makespan_s=round(finished, 2),
                   tail_batches_vs_ideal=round((finished - ideal) / median_batch, 1),
                   tail_batches=round((finished - pace) / median_batch, 1) if pace else None)
    else:
        out.update(makespan_s=None, unfinished_tasks=jobs.status(backend, job)["counts"]["leased"],
                   rest_done_s=round(rest_done, 2) if rest_done else None,
                   note="never completes: the heartbeating pod holds its batch (without the "
                        "heartbeat it would come back after a full lease, %gs)"
                        % args.lease_seconds)
    jobs.delete(backend, job)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10,000 tasks on 50 pods")
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--pods", type=int, default=200)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--task-ms", type=float, default=20.0)
    p.add_argument("--slow-share", type=float, default=0.02)
    p.add_argument("--slow-factor", type=float, default=10.0)
    p.add_argument("--lease-seconds", type=float, default=60.0)
    p.add_argument("--wait-cap", type=float, default=0.2,
                   help="longest sleep after a wait answer (the server's Retry-After is larger)")
    p.add_argument("--deadline", type=float, default=120.0)
    p.add_argument("--redis-url", help="an empty Redis to use (default: start one)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.pods, args.deadline = 10_000, 50, 60.0
    redis_proc = None
    if not args.redis_url:
        redis_proc = start_redis(tempfile.mkdtemp(prefix="tail-bench-"), appendonly=False)
        args.redis_url = redis_proc.url
    try:
        app = create_app({"REDIS_URL": args.redis_url, "INSTANCE": "tail-bench",
                          "KEY_PREFIX": "tailbench"})
        rows = [run_mode(app, args, "fixed", False), run_mode(app, args, "guided", True)]
    finally:
        if redis_proc is not None:
            redis_proc.stop()
    figures = {"tasks": args.tasks, "pods": args.pods, "batch_size": args.batch,
               "task_ms": args.task_ms, "slow_pods": max(1, round(args.pods * args.slow_share)),
               "slow_factor": args.slow_factor, "hung_pods": 1, "modes": rows}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(figures, fh, indent=1)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("%(tasks)d tasks, %(pods)d pods (%(slow_pods)d x%(slow_factor)g slower, 1 hung "
              "while heartbeating), batch %(batch_size)d, %(task_ms)g ms per task" % figures)
        for row in rows:
            print("  %-6s speculate=%-5s " % (row["batching"], row["speculate"]), end="")
            if row["makespan_s"] is not None:
                print("makespan %.2f s (pace %s s, ideal %.2f s): tail %s median batches (%.3f s)"
                      % (row["makespan_s"], row["pace_s"], row["ideal_s"], row["tail_batches"],
                         row["median_batch_s"]))
            else:
                print("no makespan: %d tasks never done; the rest done at %s s. %s"
                      % (row["unfinished_tasks"], row["rest_done_s"], row["note"]))
    return figures


if __name__ == "__main__":
    main()
