"""Figures for docs/scaling.md: what one Redis (or shard) carries, and how far
the whole stack is from it.

    python -m loadtest.cluster_bench --quick        # a small run, ~2 minutes
    python -m loadtest.cluster_bench --out FILE     # the full one

Three parts, each printed as JSON (``--only memory,limit,shards`` picks):

memory  Redis memory per job and per task in each state (a throwaway
        redis-server, ``INFO memory`` deltas): a fresh range job, tasks
        leased, tasks done with a small result, tasks handed back.
limit   The limit of this design with no web layer: ``--procs`` processes
        each run the lease and complete-with-next scripts in a loop through
        the app's own typed wrappers (redis-py with hiredis, batch
        ``--batch``) against the stack's Redis until ``--tasks`` ids are
        drained; then a swarm of ``--pods`` pods drains the same number
        through nginx and the instances. Prints both rates, the swarm ÷
        limit ratio and the machine CPU per task of each.
shards  1 vs 3 shards: ``--jobs`` concurrent jobs (one job lives in one
        slot, so only several jobs spread), one swarm per job, on a stack
        with one Redis and on one with a 3-master cluster; aggregate tasks/s
        and the Redis CPU each node used per task.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from loadtest.common import Admin  # noqa: E402
from loadtest.stack import ProdStack  # noqa: E402


def _backend(url, mode="single"):
    os.environ.setdefault("JOBMASTER_NO_GEVENT", "1")
    from app import config as C
    from app.store.backend import Backend

    return Backend(C.load({"REDIS_URL": url, "REDIS_MODE": mode, "INSTANCE": "cluster-bench"}))


def _redis_cpu(client):
    c = client.info("cpu")
    return c["used_cpu_sys"] + c["used_cpu_user"]


def _machine_busy():
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (sum(v) - v[3] - v[4] - (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")


# -- memory -----------------------------------------------------------------

def memory(args):
    from app.domain import jobs, leases
    from tests.support.procs import start_redis

    tmp = tempfile.mkdtemp(prefix="jm-mem-")
    proc = start_redis(tmp, appendonly=False)
    be = _backend(proc.url)
    r = be.redis
    used = lambda: r.info("memory")["used_memory"]  # noqa: E731
    n = args.memory_tasks
    try:
        spec = {"name": "mem", "tasks": {"range": [0, 10 ** 9]}, "batch_size": 100,
                "lease_seconds": 3600}
        job = jobs.create(be, spec)["id"]  # (the first also loads the scripts)
        base = used()
        for _ in range(100):
            jobs.create(be, spec)
        per_job = (used() - base) / 100
        m0 = used()
        held = []
        while len(held) * 100 < n:  # span leases: one record per 100 fresh tasks
            held.append(json.loads(leases.lease(be, "w", 100, job).text))
        per_leased_span = (used() - m0) / n
        m1 = used()
        for got in held:
            leases.complete(be, got["lease"]["id"], {"results": [
                {"id": t["id"], "ok": True, "result": t["payload"]} for t in got["tasks"]]})
        per_done = (used() - m1) / n + per_leased_span  # the lease's bytes are freed
        # handed back (failed once): a pending zset entry and a fails count
        m2 = used()
        fail = [json.loads(leases.lease(be, "w", 100, job).text) for _ in range(n // 100)]
        for got in fail:
            leases.complete(be, got["lease"]["id"], {"results": [
                {"id": t["id"], "ok": False, "error": "x"} for t in got["tasks"]]})
        per_pending = (used() - m2) / n
        # leased again from pending: ordinary leases with an owner field (and
        # a tries count) per task, instead of the pending entry
        m4 = used()
        for _ in range(n // 100):
            leases.lease(be, "w", 100, job)
        per_leased_owned = (used() - m4) / n + per_pending
        return {"tasks_per_state": n, "bytes_per_job": round(per_job),
                "bytes_per_fresh_task": 0,
                "bytes_per_leased_task_span": round(per_leased_span, 1),
                "bytes_per_leased_task_owned": round(per_leased_owned, 1),
                "bytes_per_done_task_small_result": round(per_done, 1),
                "bytes_per_handed_back_task": round(per_pending, 1)}
    finally:
        be.close()
        proc.stop()


# -- limit: the bare script loop vs the swarm ---------------------------------

def _drain(url, job, batch, deadline, out):
    """One process of the bare loop: lease, then complete-with-next, until done."""
    from app.domain.leases import new_lease_id

    be = _backend(url)
    ops, n, calls = be.ops, 0, 0
    got = ops.lease(job, [(new_lease_id(be, job), "bare", batch, 0)])[0]
    while got.status == "ok" and time.monotonic() < deadline:
        results = [(t, 1, "1") for t in got.ids]
        nxt = new_lease_id(be, job)
        done = ops.complete(job, got.lease_id, "bare", False, nxt, batch, results)
        n += done.accepted
        calls += 1
        got = done.next
    out.put((n, calls))
    be.close()


def bare_loop(url, tasks, procs, batch, timeout=300):
    admin_be = _backend(url)
    from app.domain import jobs

    job = jobs.create(admin_be, {"name": "bare-loop", "tasks": {"range": [0, tasks]},
                                 "batch_size": batch, "lease_seconds": 3600})["id"]
    out = multiprocessing.Queue()
    cpu0, busy0, t0 = _redis_cpu(admin_be.redis), _machine_busy(), time.monotonic()
    ps = [multiprocessing.Process(target=_drain, args=(url, job, batch, t0 + timeout, out))
          for _ in range(procs)]
    for p in ps:
        p.start()
    got = [out.get(timeout=timeout + 30) for _ in ps]
    for p in ps:
        p.join(30)
    seconds = time.monotonic() - t0
    done = sum(n for n, _c in got)
    redis_s = _redis_cpu(admin_be.redis) - cpu0
    busy = _machine_busy() - busy0
    jobs.delete(admin_be, job)
    admin_be.close()
    return {"tasks": done, "procs": procs, "batch": batch, "seconds": round(seconds, 2),
            "tasks_per_s": round(done / seconds), "redis_cpu_share": round(redis_s / seconds, 2),
            # what Redis would carry at 100 % of its core, at this CPU per task
            "redis_bound_tasks_per_s": round(done / redis_s) if redis_s else None,
            "redis_cpu_us_per_task": round(1e6 * redis_s / max(1, done), 2),
            "machine_cpu_us_per_task": round(1e6 * busy / max(1, done), 2)}


def swarm(url, tasks, pods, batch, timeout, job=None, name="cluster-bench"):
    argv = [sys.executable, "-m", "loadtest.swarm", "--url", url, "--pods", str(pods),
            "--batch", str(batch), "--timeout", str(timeout), "--name", name]
    argv += ["--job", job] if job else ["--tasks", str(tasks)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)


def _summary(proc, timeout):
    out, _err = proc.communicate(timeout=timeout)
    return json.loads(out[out.index("{"):])


def limit(args):
    with ProdStack(instances=args.instances,
                   workdir=os.path.join(ROOT, "var", "bench", "limit")) as st:
        bare = bare_loop(st.redis_url, args.tasks, args.procs, args.batch)
        busy0, t0 = _machine_busy(), time.monotonic()
        s = _summary(swarm(st.url, args.tasks, args.pods, args.batch, args.timeout),
                     args.timeout + 60)
        busy = _machine_busy() - busy0
        rate = s.get("tasks_per_s") or 0
        return {"bare": bare, "swarm": {"tasks": args.tasks, "pods": args.pods,
                                        "tasks_per_s": rate, "ok": s.get("ok"),
                                        "makespan_s": s.get("makespan_s"),
                                        "machine_cpu_us_per_task":
                                            round(1e6 * busy / max(1, args.tasks), 2),
                                        "wall_s": round(time.monotonic() - t0, 1)},
                "swarm_over_limit": round(rate / bare["tasks_per_s"], 3) if bare["tasks_per_s"]
                else None,
                "swarm_over_redis_bound": round(rate / bare["redis_bound_tasks_per_s"], 3)
                if bare["redis_bound_tasks_per_s"] else None}


# -- shards -------------------------------------------------------------------

def _nodes(st, mode):
    import redis

    if mode == "single":
        return [redis.Redis.from_url(st.redis_url)]
    rc = redis.RedisCluster.from_url(st.redis_url)
    return [rc.get_redis_connection(n) for n in rc.get_primaries()]


def shards_run(args, mode):
    env = {"JOBMASTER_REDIS_MODE": mode}
    with ProdStack(instances=args.instances, workdir=os.path.join(ROOT, "var", "bench", mode),
                   env=env) as st:
        admin = Admin(st.url)
        jobs = [admin.create_range_job("shard-%d" % i, args.shard_tasks, batch_size=args.batch,
                                       lease_seconds=300)["id"] for i in range(args.jobs)]
        nodes = _nodes(st, mode)
        cpu0 = [_redis_cpu(n) for n in nodes]
        t0 = time.monotonic()
        procs = [swarm(st.url, 0, args.shard_pods, args.batch, args.timeout, job=j) for j in jobs]
        sums = [_summary(p, args.timeout + 60) for p in procs]
        seconds = time.monotonic() - t0
        total = args.jobs * args.shard_tasks
        used = [round(_redis_cpu(n) - c, 2) for n, c in zip(nodes, cpu0)]
        return {"mode": mode, "shards": len(nodes), "jobs": args.jobs, "tasks": total,
                "pods": args.jobs * args.shard_pods, "seconds": round(seconds, 2),
                "tasks_per_s": round(total / seconds), "all_ok": all(s.get("lost") == 0
                                                                     for s in sums),
                "redis_cpu_s_per_node": used,
                "redis_cpu_us_per_task": round(1e6 * sum(used) / total, 2)}


def shards(args):
    return [shards_run(args, mode) for mode in ("single", "cluster")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--only", default="memory,limit,shards")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--jobs", type=int, default=6)
    p.add_argument("--shard-tasks", type=int, default=200_000)
    p.add_argument("--shard-pods", type=int, default=150)
    p.add_argument("--memory-tasks", type=int, default=100_000)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.pods, args.procs = 100_000, 200, 4
        args.jobs, args.shard_tasks, args.shard_pods = 3, 30_000, 60
        args.memory_tasks, args.timeout = 10_000, 120
    out = {}
    for part in args.only.split(","):
        out[part] = {"memory": memory, "limit": limit, "shards": shards}[part](args)
        print(json.dumps({part: out[part]}, indent=1), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
