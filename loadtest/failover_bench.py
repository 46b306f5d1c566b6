"""What a Redis Cluster failover costs a running job (issue 16, docs/scaling.md).

A local cluster (3 masters, a replica each, ``cluster-node-timeout`` 1 s),
a stack of 2 instances on it, one range job, a swarm of pods with a little
work per task. Run twice: once clean, once with the master that owns the
job's slot killed with SIGKILL when a quarter of the job is done. Reported
for each: the makespan, the failed answers by status (503: the slot had no
master for a moment), the tasks that ran twice (their results came back as
duplicates or from a lease that no longer held them: a lease's write lost
inside the replication lag, or a lease that expired while the slot was
away; the store keeps the first result), and for the fault: the time from the kill until the replica was
master, and until the job's counts moved again.

    python -m loadtest.failover_bench              # 40,000 tasks, 40 pods
    python -m loadtest.failover_bench --tasks 8000 --pods 20

Loopback only, every process stopped by PID, every wait bounded.
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from loadtest.common import Admin  # noqa: E402
from tests.support.procs import RedisCluster, wait_until  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402


def swarm_process(url, job, pods, work, timeout=150):
    """A swarm on an existing job, batch 10, as a process (its JSON summary on
    stdout); its own session, so a caller can kill it whole.
    (tests/stack/test_failover.py starts its swarms with this too.)"""
    import subprocess

    argv = [sys.executable, "-m", "loadtest.swarm", "--url", url, "--job", job,
            "--pods", str(pods), "--batch", "10", "--work", work, "--max-wait", "0.5",
            "--timeout", str(timeout), "--request-timeout", "20"]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def one_run(args, kill):
    import redis

    work = tempfile.mkdtemp(prefix="jm-failover-")
    cluster = RedisCluster(os.path.join(work, "cluster"), node_timeout_ms=1000)
    st, swarm = None, None
    out = {"kill": kill, "tasks": args.tasks, "pods": args.pods}
    try:
        st = start_stack(os.path.join(work, "stack"), instances=2, redis_url=cluster.url,
                         redis_mode="cluster")
        admin = Admin(st.url)
        job = admin.create_range_job("failover-bench", args.tasks, batch_size=10,
                                     lease_seconds=args.lease_seconds)["id"]

        def done():
            return admin._req("GET", "/api/v1/jobs/" + job)["counts"]["done"]

        t0 = time.monotonic()
        swarm = swarm_process(st.url, job, args.pods, args.work, args.timeout)
        if kill:
            rc = redis.RedisCluster.from_url(cluster.url, decode_responses=True)
            port = rc.get_node_from_key("jm:{%s}:meta" % job).port
            rc.close()
            victim = next(n for n in cluster.nodes if n.port == port)
            wait_until(lambda: done() >= args.tasks // 4 or swarm.poll() is not None,
                       timeout=args.timeout, what="a quarter of the job")
            at_kill = done()
            killed = time.monotonic()
            victim.stop(signal.SIGKILL)
            wait_until(lambda: list(cluster.roles().values()).count("master") == 3,
                       timeout=60, interval=0.05, what="the replica taking over")
            out["replica_master_after_s"] = round(time.monotonic() - killed, 2)

            def moved():
                try:
                    return done() > at_kill
                except Exception:  # the slot has no master yet: not moved
                    return False
            wait_until(moved, timeout=60, interval=0.05, what="the job moving again")
            out["job_moving_again_after_s"] = round(time.monotonic() - killed, 2)
        text, _err = swarm.communicate(timeout=args.timeout + 60)
        summary = json.loads(text[text.index("{"):])
        out.update({
            "wall_s": round(time.monotonic() - t0, 2),
            "makespan_s": summary.get("makespan_s"),
            "state": summary.get("job_state"),
            "lost": summary.get("lost"),
            "results_distinct": summary["results"]["distinct"],
            "results_lines": summary["results"]["lines"],
            "errors": summary.get("errors"),
            "transport_errors": summary.get("conn_errors"),
            # a result for a task already done (duplicate) or from a lease that
            # no longer held it (ignored): a task that ran twice
            "ran_twice": summary["complete"].get("duplicates", 0)
            + summary["complete"].get("ignored", 0),
            "complete_totals": summary["complete"],
            "invariant_ok": summary.get("invariant_ok"),
        })
    finally:
        if swarm is not None and swarm.poll() is None:
            os.killpg(swarm.pid, signal.SIGKILL)
        if st is not None:
            st.stop()
        cluster.stop()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=40000)
    p.add_argument("--pods", type=int, default=40)
    p.add_argument("--work", default="const:0.02", help="the swarm's --work (per task)")
    p.add_argument("--lease-seconds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=240.0)
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    runs = [one_run(args, False), one_run(args, True)]
    text = json.dumps({"runs": runs}, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0 if all(r.get("state") == "completed" and r.get("lost") == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
