"""A/B two checkouts of the server through the real stack, alternating closely.

Each side is a checkout (a directory holding the repo at some commit) or a
git ref of this repo, which is unpacked (``git archive``) under
``var/bench/ab/`` first. Each gets its own production stack (``python -m stack run``:
nginx, N uWSGI instances, its own Redis) on free ports; both stay up and
only one is loaded at a time, so the machine's drift (other users of the
cores) hits both sides alike. Per round, in alternating order: wrk
``/healthz`` and wrk lease on A, the same on B (``--wrk-seconds`` each), and
optionally one swarm per side, made by this checkout's ``loadtest.swarm``
for both (the tool is not what is compared). Reports per-round figures,
medians and spread (min–max) of lease/healthz, machine CPU µs per lease,
swarm makespan and tasks/s. ``make bench BENCH_ARGS="--before REF"`` runs it
against REF's code and puts the result in docs/BENCHMARKS.md.

    python -m loadtest.ab --a c99a714 --b . --rounds 6 --swarm-pods 1000 --swarm-tasks 1000000
    python -m loadtest.ab --a /tmp/ab-old --b /tmp/ab-new --rounds 8 --calls 2000
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from loadtest.bench_wrk import wrk_timed
from loadtest.common import Admin
from loadtest.cpu import cpu_delta, cpu_snapshot
from loadtest.stack import ProdStack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(checkout, instances, workdir):
    """A production stack running ``checkout``'s code."""
    return ProdStack(instances=instances, workdir=workdir, root=checkout).up()


def checkout_of(side):
    """A directory holding ``side``'s code: ``side`` itself, or the git ref
    ``side`` of this repo unpacked under var/bench/ab/ (with this venv)."""
    if os.path.isdir(side):
        return os.path.abspath(side)
    sha = subprocess.run(["git", "rev-parse", "--short", side + "^{commit}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = os.path.join(ROOT, "var", "bench", "ab", sha)
    if not os.path.isdir(path):
        shutil.rmtree(path + ".tmp", ignore_errors=True)  # (an interrupted unpack)
        os.makedirs(path + ".tmp")
        archive = subprocess.Popen(["git", "archive", sha], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", path + ".tmp"], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit("git archive %s failed" % sha)
        os.symlink(os.path.join(ROOT, ".venv"), os.path.join(path + ".tmp", ".venv"))
        os.rename(path + ".tmp", path)
    return path


def swarm(url, pods, tasks):
    """Makespan and tasks/s of one swarm (0, 0 unless it ended well)."""
    out = subprocess.run([sys.executable, "-m", "loadtest.swarm", "--url", url, "--pods", str(pods),
                          "--tasks", str(tasks), "--batch", "100", "--delete", "--timeout", "180"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    doc = json.loads(out.stdout[out.stdout.index("{"):])
    if not doc.get("ok"):
        return 0.0, 0.0
    return doc.get("makespan_s", 0.0), doc.get("tasks_per_s", 0.0)


# Client CPU per script call, without the web layer: run inside each
# checkout (its own app code) under gevent, as a uWSGI worker runs it.
CALLS = """
from gevent import monkey; monkey.patch_all()
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from app import config as C
from app.domain import jobs, leases
from app.store.backend import Backend
be = Backend(C.load({"REDIS_URL": sys.argv[1], "REDIS_MODE": "single", "INSTANCE": "ab"}))
job = jobs.create(be, {"name": "ab", "tasks": {"range": [0, 10**9]}, "batch_size": 10,
                       "lease_seconds": 3600})["id"]
n = int(sys.argv[2])
t0 = time.process_time()
for i in range(n):
    leases.lease(be, "w", 10, job)
t1 = time.process_time()
for i in range(n):
    jobs.status(be, job)
t2 = time.process_time()
jobs.delete(be, job)
print(json.dumps({"lease_us": 1e6 * (t1 - t0) / n, "status_us": 1e6 * (t2 - t1) / n}))
"""


def calls(a, b, rounds, n):
    """Alternating runs of CALLS in each checkout against one redis-server."""
    import tempfile

    sys.path.insert(0, ROOT)
    from tests.support.procs import start_redis

    proc = start_redis(tempfile.mkdtemp(prefix="jm-ab-"))
    rows = {"A": [], "B": []}
    try:
        for i in range(rounds):
            for side in (("A", "B") if i % 2 == 0 else ("B", "A")):
                out = subprocess.run([sys.executable, "-c", CALLS, proc.url, str(n)],
                                     cwd=a if side == "A" else b, capture_output=True, text=True,
                                     timeout=300, check=True)
                rows[side].append(json.loads(out.stdout))
    finally:
        proc.stop()
    return {side: {k: spread([r[k] for r in rs]) for k in rs[0]} for side, rs in rows.items()}


def spread(xs):
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="a checkout, or a git ref of this repo")
    p.add_argument("--b", required=True, help="a checkout, or a git ref of this repo")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--wrk-seconds", type=int, default=2)
    p.add_argument("--wrk-conns", type=int, default=64)
    p.add_argument("--max-tasks", type=int, default=10)
    p.add_argument("--swarm-pods", type=int, default=0, help="0: no swarm")
    p.add_argument("--swarm-tasks", type=int, default=100000)
    p.add_argument("--out", help="also write the rounds and the summary here (JSON)")
    p.add_argument("--calls", type=int, default=0,
                   help="instead: client CPU per lease and status call, this many calls per run")
    args = p.parse_args(argv)
    args.a, args.b = checkout_of(args.a), checkout_of(args.b)
    if args.calls:
        print(json.dumps(calls(args.a, args.b, args.rounds, args.calls), indent=1))
        return 0
    summary = measure(args)
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 0


def measure(args):
    """Both stacks up, ``args.rounds`` alternating rounds; the summary."""
    sides = {}
    try:
        for side, checkout in (("A", args.a), ("B", args.b)):
            st = start(checkout, args.instances, os.path.join(checkout, "var", "ab"))
            job = Admin(st.url).create_range_job("ab-lease", 100_000_000, batch_size=args.max_tasks,
                                                 lease_seconds=3600)
            sides[side] = {"stack": st, "checkout": checkout, "job": job["id"], "rounds": []}
        for i in range(args.rounds):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            for side in order:
                s = sides[side]
                a = argparse.Namespace(url=s["stack"].url, wrk_seconds=args.wrk_seconds,
                                       wrk_conns=args.wrk_conns)
                h = wrk_timed(a, "healthz.lua")
                c0 = cpu_snapshot(s["stack"].proc.pid)
                l = wrk_timed(a, "lease.lua", (s["job"], args.max_tasks))
                used = cpu_delta(c0, cpu_snapshot(s["stack"].proc.pid))
                row = {"healthz_rps": h["rps"], "lease_rps": l["rps"],
                       "ratio": l["rps"] / h["rps"] if h["rps"] else 0.0,
                       "lease_cpu_us": l["cpu_us"], "healthz_cpu_us": h["cpu_us"],
                       # where a lease's CPU goes, by process kind
                       **{"%s_us" % k: 1e6 * used.get(k, 0.0) / l["requests"]
                          for k in ("uwsgi", "redis", "nginx") if l.get("requests")},
                       "errors": h["non2xx"] + l["non2xx"] + h["socket_errors"] + l["socket_errors"]}
                if args.swarm_pods:
                    row["swarm_makespan_s"], row["swarm_tasks_per_s"] = swarm(
                        s["stack"].url, args.swarm_pods, args.swarm_tasks)
                s["rounds"].append(row)
                print("round %d %s: %s" % (i + 1, side, json.dumps({k: round(v, 3) for k, v in row.items()})),
                      flush=True)
        summary = {}
        for side, s in sides.items():
            summary[side] = {"checkout": s["checkout"], "rounds": s["rounds"]}
            for k in s["rounds"][0]:
                summary[side][k] = spread([r[k] for r in s["rounds"]])
        return summary
    finally:
        for s in sides.values():
            s["stack"].down()


if __name__ == "__main__":
    sys.exit(main())
