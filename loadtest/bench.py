"""``make bench``: measure the five figures of issue 5 and write the report.

Brings up the stack (``loadtest.stack``: nginx → 4 uWSGI gevent → Redis) on
free loopback ports unless ``--url``/``--redis-url`` point at a running one,
then measures, in this order and in one run:

4. Redis memory of a pending 1,000,000-task range job (first, on a fresh Redis)
1. wrk: ``GET /healthz`` and ``POST /api/v1/lease`` alternately, same path
   (plus one run of the lease → complete loop, for information)
3. burst: 10,000 simultaneous lease requests from distinct source addresses
2. swarm: one 1,000,000-task range job, 1,000 pods, batch 100, no-op work
5. Celery 5.7 with the same Redis as broker: the same no-op tasks

8. the limit without the web layer (a bare Lua loop on the same Redis, just
   after the swarm: :mod:`loadtest.bench_wave2`)

then, each on its own Redis or stack once the main stack is down:

(with ``--before REF``) figures 1 and 2 again, this code against REF's, two
   stacks side by side in alternating rounds (:mod:`loadtest.ab`)
7. the tail of a job with stragglers (:mod:`loadtest.tail_bench`)
6. a 1,000,000-task job with the archive on and off (:mod:`loadtest.archive_bench`)

and, only when asked (``--only ...,flood``), last: swarm throughput with and
without a ``wrk`` flood on ``/metrics`` (:mod:`loadtest.metrics_flood`).

Writes ``var/bench/*.json`` (raw), ``docs/bench/*.png`` (plots) and
``docs/BENCHMARKS.md``; appends a line to ``docs/bench/history.jsonl`` so
before/after figures stay on record. Every step is bounded in time; every
process it starts is stopped by its PID.

    python -m loadtest.bench                 # the full run (a few minutes)
    python -m loadtest.bench --quick         # a small, fast sanity run
    python -m loadtest.bench --before c99a714   # and against the code before wave 2
"""
import argparse
import datetime
import json
import os
import sys
import time

from .benchenv import PLOTS, PY, ROOT, VAR, log, run
from .bench_wrk import figure_ratio
from .cpu import cpu_delta, cpu_snapshot
from . import bench_wave2
from .report import machine, plots, write_report

# ---------------------------------------------------------------- memory

def figure_memory(a, admin):
    import redis

    r = redis.Redis.from_url(a.redis_url)
    # warm up first: the first create loads the Lua scripts into Redis's
    # script cache, which is not the job's memory
    warm = admin.create_range_job("bench-memory-warmup", 10, batch_size=10)
    admin.status(warm["id"])
    admin.delete(warm["id"])
    time.sleep(0.2)
    before = r.info("memory")["used_memory"]
    job = admin.create_range_job("bench-memory", 1_000_000, batch_size=100)
    after = r.info("memory")["used_memory"]
    prefix = a.key_prefix
    keys = {}
    for k in r.scan_iter(match="%s:{%s}:*" % (prefix, job["id"]), count=1000):
        keys[k.decode()] = r.memory_usage(k, samples=0) or 0
    globals_ = {}
    for g in ("%s:jobs" % prefix, "%s:active" % prefix):
        if r.exists(g):
            globals_[g] = r.memory_usage(g, samples=0) or 0
    status = admin.status(job["id"])
    admin.delete(job["id"])
    r.close()
    key_bytes = sum(keys.values())
    return {"job": job["id"], "used_before": before, "used_after": after,
            "used_delta": after - before, "keys": keys, "key_bytes": key_bytes,
            "global_keys": globals_, "counts": status.get("counts"),
            "bytes": max(key_bytes, after - before)}


# ---------------------------------------------------------------- swarm, burst, celery

def swarm_cmd(a, out, quick):
    pods, tasks = (a.quick_pods, a.quick_tasks) if quick else (a.pods, a.tasks)
    return [PY, "-m", "loadtest.swarm", "swarm", "--url", a.url, "--pods", str(pods),
            "--tasks", str(tasks), "--batch", str(a.batch), "--work", "const:0",
            "--timeout", str(a.swarm_timeout), "--name", "bench-swarm", "--out", out] + (
        ["--token", a.token] if a.token else [])


def burst_cmd(a, out):
    return [PY, "-m", "loadtest.swarm", "burst", "--url", a.url, "--requests", str(a.burst),
            "--timeout", "120", "--request-timeout", "60", "--name", "bench-burst",
            "--delete", "--out", out] + (["--token", a.token] if a.token else [])


def celery_cmd(a, out):
    broker = a.redis_url.rsplit("/", 1)[0] + "/%d" % a.celery_db
    return [PY, "-m", "loadtest.peers.celery_noop", "--broker", broker, "--tasks",
            str(a.celery_tasks), "--timeout", "300", "--out", out]


def load_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description="measure the issue-5 figures and write docs/BENCHMARKS.md")
    p.add_argument("--url", help="a running stack (default: start one)")
    p.add_argument("--redis-url", help="its Redis (needed with --url)")
    p.add_argument("--token", default=os.environ.get("JOBMASTER_TOKEN"))
    p.add_argument("--key-prefix", default=os.environ.get("JOBMASTER_KEY_PREFIX", "jm"))
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--only", default="memory,ratio,burst,swarm,limit,celery,tail,archive",
                   help="figures to measure; add ,flood for /metrics under a flood")
    p.add_argument("--quick", action="store_true", help="small sizes, for a sanity check")
    p.add_argument("--wrk-seconds", type=int, default=2)
    p.add_argument("--wrk-rounds", type=int, default=15,
                   help="clean rounds wanted (up to twice as many are run)")
    p.add_argument("--wrk-conns", type=int, default=64)
    p.add_argument("--wrk-max-tasks", type=int, default=10)
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--swarm-timeout", type=float, default=180.0)
    p.add_argument("--burst", type=int, default=10000)
    p.add_argument("--celery-tasks", type=int, default=10000)
    p.add_argument("--celery-db", type=int, default=1)
    p.add_argument("--before", metavar="REF",
                   help="also A/B figures 1 and 2 against this git ref's code (loadtest.ab)")
    p.add_argument("--before-rounds", type=int, default=6)
    p.add_argument("--no-report", action="store_true", help="do not write docs/")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite docs/ from var/bench/results.json of the last run")
    a = p.parse_args(argv)
    a.quick_pods, a.quick_tasks = 50, 20000
    if a.report_only:
        with open(os.path.join(VAR, "results.json")) as fh:
            res = json.load(fh)
        a.quick = res.get("quick", False)
        res["plots"] = plots(res.get("swarm"), res.get("burst"), res.get("ratio"))
        write_report(res, a)
        return 0
    if a.quick:
        a.wrk_seconds, a.wrk_rounds, a.burst, a.celery_tasks = 2, 1, 500, 1000
    only = set(a.only.split(","))
    os.makedirs(VAR, exist_ok=True)

    sys.path.insert(0, ROOT)
    from loadtest.common import Admin, raise_nofile
    from loadtest.stack import ProdStack

    raise_nofile(65536)
    stack = None
    if not a.url:
        stack = ProdStack(instances=a.instances).up()
        a.url, a.redis_url = stack.url, stack.redis_url
        stack_desc = ("the production stack as `make run` starts it (`python -m stack run`: configs "
                      "rendered from conf/, nginx ip_hash → %d uWSGI gevent instances over UNIX "
                      "sockets → Redis with AOF), on free ports, with `%s`"
                      % (a.instances, stack.describe()))
        log("stack up: %s (redis %s), pids %s" % (a.url, a.redis_url, stack.pids()))
    else:
        if not a.redis_url:
            raise SystemExit("--url needs --redis-url")
        stack_desc = "already running at %s (Redis %s)" % (a.url, a.redis_url)
    res = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
           "machine": machine(), "stack": stack_desc, "commands": {}, "quick": a.quick}
    admin = Admin(a.url, a.token, timeout=300)
    try:
        if "memory" in only:
            log("figure 4: memory")
            res["memory"] = figure_memory(a, admin)
            log("memory: %s" % {k: v for k, v in res["memory"].items() if k != "keys"})
        if "ratio" in only:
            log("figure 1: wrk healthz vs lease")
            res["ratio"] = figure_ratio(a, admin)
            log("ratio %.3f" % res["ratio"]["ratio"])
        if "burst" in only:
            log("figure 3: burst")
            out = os.path.join(VAR, "burst.json")
            cmd = burst_cmd(a, out)
            res["commands"]["burst"] = cmd
            run(cmd, timeout=300)
            res["burst"] = load_json(out)
            if res["burst"]:
                log("burst: %s" % res["burst"]["summary"]["answers"])
        if "swarm" in only:
            log("figure 2: swarm")
            out = os.path.join(VAR, "swarm.json")
            cmd = swarm_cmd(a, out, a.quick)
            res["commands"]["swarm"] = cmd
            root = stack.proc.pid if stack and getattr(stack, "proc", None) else (
                os.getpid() if stack else None)
            c0 = cpu_snapshot(root)
            run(cmd, timeout=a.swarm_timeout + 240)
            res["swarm_cpu"] = cpu_delta(c0, cpu_snapshot(root))
            log("swarm CPU seconds: %s" % res["swarm_cpu"])
            res["swarm"] = load_json(out)
            if res["swarm"]:
                s = res["swarm"]["summary"]
                log("swarm: makespan %.1f s, %s tasks/s, ok=%s" % (s["makespan_s"], s.get("tasks_per_s"), s.get("ok")))
        if "limit" in only:
            log("figure 8: the bare Lua loop on the same Redis")
            bench_wave2.measure_limit(a, res)
        if "celery" in only:
            log("figure 5: celery")
            out = os.path.join(VAR, "celery.json")
            cmd = celery_cmd(a, out)
            res["commands"]["celery"] = cmd
            run(cmd, timeout=400)
            res["celery"] = load_json(out)
            if res["celery"]:
                log("celery: %s tasks/s" % res["celery"]["summary"].get("drain_tasks_per_s"))
        if "flood" in only:
            # Optional and last: it keeps 500 jobs while it runs (deleted after).
            log("optional: /metrics under a flood")
            from loadtest import metrics_flood
            res["flood"] = metrics_flood.measure(metrics_flood.options(
                ["--url", a.url] + (["--quick"] if a.quick else []) +
                (["--token", a.token] if a.token else [])),
                root_pid=stack.proc.pid if stack else None)
            log("flood: flooded ÷ clean tasks/s %.3f" % res["flood"]["ratio_median"])
    finally:
        if stack:
            stack.down()
            log("stack stopped")
    if a.before:
        log("before and after: this code against %s" % a.before)
        bench_wave2.measure_before(a, res)
    if "tail" in only:
        log("figure 7: the tail of a job")
        bench_wave2.measure_tail(a, res)
    if "archive" in only:
        log("figure 6: the archive on and off")
        bench_wave2.measure_archive(a, res)
    # keep the command lines readable in the report
    for k, cmd in res["commands"].items():
        res["commands"][k] = [os.path.relpath(x, ROOT) if isinstance(x, str) and x.startswith(ROOT + os.sep)
                              else x for x in cmd]
    with open(os.path.join(VAR, "results.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    if a.no_report:
        return 0
    res["plots"] = plots(res.get("swarm"), res.get("burst"), res.get("ratio"))
    rows = write_report(res, a)
    hist = {"date": res["date"], "quick": a.quick,
            "figures": {name.split(" ")[0]: measured for name, _t, measured, _ok in rows},
            "holds": {name.split(" ")[0]: ok for name, _t, _m, ok in rows}}
    with open(os.path.join(PLOTS, "history.jsonl"), "a") as fh:
        fh.write(json.dumps(hist) + "\n")
    rows = write_report(res, a)  # again, with this run in the history table
    for name, target, measured, ok in rows:
        log("%-4s %-8s %s  [%s]" % (name.split(" ")[0], "HOLDS" if ok else "MISSED", measured, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
