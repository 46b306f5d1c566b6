"""What the Lua scripts cost inside Redis, without HTTP, Flask or gevent.

Drives the app's own ``Backend`` (app/store.py) and ``leases`` functions
directly: creates a range job, then loops lease → complete(+next) for
``--leases`` batches of ``--batch`` tasks, and reports per call

- the wall time seen by the client (one connection, no concurrency),
- Redis's own CPU time per script call (``INFO commandstats`` usec deltas),
- Redis's total CPU (``INFO cpu``) and the AOF bytes written.

Redis is the one part of the stack that cannot be spread over cores, so
its µs per complete is the ceiling on tasks/s: 1e6 / usec_per_complete ×
batch. Run it against a throwaway Redis (``--redis-url``), or let it start
one (with AOF on like production, or ``--no-aof``).

    python -m loadtest.lua_cost --batch 100 --leases 300
    python -m loadtest.lua_cost --groups 1,2,4,8,16 --batch 10 --leases 4000

``--groups``: Redis CPU per lease when a process combines that many lease
requests into one script call (``app/combine.py``), leases only.
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commandstats(r):
    out = {}
    for k, v in r.info("commandstats").items():
        out[k] = (v["calls"], v["usec"])
    return out


def redis_cpu(r):
    c = r.info("cpu")
    return c["used_cpu_sys"] + c["used_cpu_user"]


def lease_groups(be, jobs, leases, args):
    """Redis CPU per lease of ``--batch`` tasks, ``k`` requests per script call."""
    job = jobs.create(be, {"name": "lua-cost-groups", "tasks": {"range": [0, 10 ** 9]},
                           "batch_size": args.batch, "lease_seconds": 3600})
    job_id = job["id"] if isinstance(job, dict) else job
    out = {"batch": args.batch, "leases_per_row": args.leases, "aof": not args.no_aof, "rows": []}
    for k in [int(x) for x in args.groups.split(",")]:
        calls = max(1, args.leases // k)
        c0 = redis_cpu(be.redis)
        for i in range(calls):
            be._run_leases(job_id, [(leases.new_lease_id(be, job_id), "w%d" % i, args.batch, 0)
                                    for _ in range(k)])
        used = redis_cpu(be.redis) - c0
        out["rows"].append({"per_call": k, "redis_usec_per_lease": round(1e6 * used / (calls * k), 1),
                            "redis_usec_per_call": round(1e6 * used / calls, 1)})
    jobs.delete(be, job_id)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Redis-side cost of the lease/complete scripts")
    p.add_argument("--redis-url")
    p.add_argument("--no-aof", action="store_true")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--leases", type=int, default=300)
    p.add_argument("--lua-dir", help="measure the scripts in this directory instead of app/store/lua")
    p.add_argument("--groups", help="comma-separated group sizes: lease-only, combined calls")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    os.environ.setdefault("JOBMASTER_NO_GEVENT", "1")
    from tests.support.procs import start_redis

    proc = None
    url = args.redis_url
    tmp = None
    if not url:
        tmp = tempfile.mkdtemp(prefix="jm-luacost-")
        proc = start_redis(tmp, appendonly=not args.no_aof)
        url = proc.url
    try:
        from app import config as C
        from app.store import scripts as S
        if args.lua_dir:
            S.LUA_DIR = os.path.abspath(args.lua_dir)
        from app.domain import jobs, leases
        from app.store.backend import Backend

        cfg = C.load({"REDIS_URL": url, "INSTANCE": "lua-cost"})
        be = Backend(cfg)
        r = be.redis
        if args.groups:
            print(json.dumps(lease_groups(be, jobs, leases, args), indent=1))
            be.close()
            return 0
        total = args.batch * args.leases
        job = jobs.create(be, {"name": "lua-cost", "tasks": {"range": [0, total]},
                               "batch_size": args.batch}) if hasattr(jobs, "create") else None
        job_id = job["id"] if isinstance(job, dict) else job
        cs0, cpu0 = commandstats(r), r.info("cpu")
        aof0 = r.info("persistence").get("aof_current_size", 0)
        t_lease = t_complete = 0.0
        t = time.perf_counter()
        ans = leases.lease(be, "w1", args.batch, job_id)
        t_lease += time.perf_counter() - t
        n_complete = 0
        while ans.status == "ok":
            body = json.loads(ans.text)
            results = [{"id": x["id"], "ok": True, "result": x["payload"]} for x in body["tasks"]]
            t = time.perf_counter()
            doc, ans = leases.complete(be, body["lease"]["id"],
                                       {"results": results, "next": {"max_tasks": args.batch}})
            t_complete += time.perf_counter() - t
            n_complete += 1
        cs1, cpu1 = commandstats(r), r.info("cpu")
        aof1 = r.info("persistence").get("aof_current_size", 0)
        ev = [k for k in cs1 if k.startswith("cmdstat_evalsha")]
        calls = sum(cs1[k][0] - cs0.get(k, (0, 0))[0] for k in ev)
        usec = sum(cs1[k][1] - cs0.get(k, (0, 0))[1] for k in ev)
        redis_cpu = (cpu1["used_cpu_sys"] + cpu1["used_cpu_user"]
                     - cpu0["used_cpu_sys"] - cpu0["used_cpu_user"])
        out = {"lua_dir": args.lua_dir or "app/store/lua", "batch": args.batch, "completes": n_complete, "tasks": total, "aof": not args.no_aof,
               "client_ms_per_complete": round(1000 * t_complete / max(1, n_complete), 3),
               "evalsha_calls": calls,
               "redis_usec_per_script_call": round(usec / max(1, calls), 1),
               "redis_cpu_s_total": round(redis_cpu, 3),
               "redis_cpu_usec_per_complete": round(1e6 * redis_cpu / max(1, n_complete), 1),
               "aof_bytes_per_complete": round((aof1 - aof0) / max(1, n_complete)),
               "ceiling_tasks_per_s": round(1e6 / max(1.0, 1e6 * redis_cpu / max(1, n_complete))
                                            * args.batch)}
        be.redis.delete(*be.keys.job(job_id))
        be.close()
        print(json.dumps(out, indent=1))
    finally:
        if proc:
            proc.stop()
        if tmp:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
