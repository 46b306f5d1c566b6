"""The archive's figure (issue 13): one large range job whose results are
~100 bytes each, through the production stack (``python -m stack run``)
and a swarm of simulated pods, with the archive on and off.

For each run: the makespan, Redis's peak ``used_memory`` during the run
(sampled every 0.2 s; the goal with the archive: at most 64 MB and not
growing with the job's size), Redis memory once everything is archived, and
with the archive the time from "completed" to "fully archived" (backlog 0).
Correctness is checked too: every task done once in MongoDB (archive on) or
in the results hash (off), and no result left in Redis with the archive.

The archive here is nx-27017 (``JOBMASTER_MONGO=embedded``), a MongoDB
wire-protocol server on SQLite standing in for MongoDB, which cannot be
installed on this machine: it bounds the drain rate (about 10-15,000
inserts a second here), so "completed → fully archived" measures the
stand-in as much as jobmaster; a real MongoDB takes inserts far faster.

    python -m loadtest.archive_bench                  # 1,000,000 tasks, on and off
    python -m loadtest.archive_bench --quick          # 20,000 tasks: a smoke run
    python -m loadtest.archive_bench --archive on --tasks 200000 --out figure.json

Bounded in time (``--timeout`` per run) and loopback-only, as every load tool here.
"""
import argparse
import json
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from loadtest import swarm  # noqa: E402
from loadtest.stack import ProdStack  # noqa: E402
from stack.net import free_port, wait_until  # noqa: E402

MB = 1024 * 1024


class MemorySampler(threading.Thread):
    """Redis ``used_memory`` every ``every`` seconds until stopped, and
    (``outboxes``) the last time any job's outbox still held something."""

    def __init__(self, redis_url, every=0.2, outboxes=False):
        super().__init__(daemon=True)
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self.every = every
        self.peak = 0
        self.samples = []
        self.outboxes = outboxes
        self.backlog_seen_at = None  # wall clock, like the job's finished_at
        self.halt = threading.Event()

    def used(self):
        return int(self.redis.info("memory")["used_memory"])

    def run(self):
        t0 = time.monotonic()
        while not self.halt.is_set():
            try:
                used = self.used()
            except Exception:  # a sample missed is not a failed run
                used = None
            if used is not None:
                self.peak = max(self.peak, used)
                self.samples.append((round(time.monotonic() - t0, 2), used))
            if self.outboxes and self._backlog():
                self.backlog_seen_at = time.time()
            self.halt.wait(self.every)

    def _backlog(self):
        try:
            return sum(self.redis.xlen(k) for k in self.redis.scan_iter("jm:{*}:outbox"))
        except Exception:  # a sample missed is not a failed run
            return 0

    def stop(self):
        self.halt.set()
        self.join(5)


def one_run(args, archive):
    env = {"JOBMASTER_RATE_LIMIT": "0"}
    if archive:
        env.update({"JOBMASTER_MONGO": "embedded", "JOBMASTER_MONGO_PORT": str(free_port()),
                    "JOBMASTER_ARCHIVE_IDLE_SECONDS": "0.2"})
    workdir = os.path.join(ROOT, "var", "bench", "archive-%s" % ("on" if archive else "off"))
    out = {"archive": archive, "tasks": args.tasks, "pods": args.pods, "batch": args.batch,
           "result_bytes": args.result_bytes}
    with ProdStack(instances=args.instances, workdir=workdir, env=env) as st:
        sampler = MemorySampler(st.redis_url, outboxes=archive)
        out["redis_before_mb"] = round(sampler.used() / MB, 2)
        sampler.start()
        sw = swarm.build_parser().parse_args([
            "--url", st.url, "--pods", str(args.pods), "--tasks", str(args.tasks),
            "--batch", str(args.batch), "--result-bytes", str(args.result_bytes),
            "--timeout", str(args.timeout), "--no-verify", "--name", "archive-bench"])
        summary, _series = swarm.run_swarm(sw)
        job = summary["job"]
        admin = swarm.Admin(st.url, None, timeout=60)
        status = admin.wait_completed(job, timeout=60)
        out["makespan_s"] = summary.get("makespan_s")
        out["tasks_per_s"] = summary.get("tasks_per_s")
        out["state"] = status.get("state")
        out["counts"] = status.get("counts")
        if archive:
            def drained():
                doc = admin.status(job)
                return doc["archive"]["backlog"] == 0 and doc
            doc = wait_until(drained, args.timeout, 0.2, "the archive to catch up")
            # From the job's finished_at to the last sample that still saw a
            # backlog, plus one sampling interval (0 when it was drained
            # before the job completed; resolution: the 0.2 s of a sample).
            last = sampler.backlog_seen_at
            out["completed_to_archived_s"] = round(max(0.0, last + sampler.every - status[
                "finished_at"]), 2) if last else 0.0
            out["archived"] = doc["archive"]["archived"]
        sampler.stop()
        out["redis_peak_mb"] = round(sampler.peak / MB, 2)
        out["redis_after_mb"] = round(sampler.used() / MB, 2)
        out.update(_check(st, job, args.tasks, archive))
    return out


def _check(st, job, total, archive):
    """Every task once, where it should be; nothing left behind in Redis."""
    import redis

    r = redis.Redis.from_url(st.redis_url, decode_responses=True)
    in_hash = r.hlen("jm:{%s}:results" % job)
    outbox = r.xlen("jm:{%s}:outbox" % job) if archive else 0
    check = {"results_in_redis": in_hash, "outbox_left": outbox}
    if archive:
        import pymongo

        port = int(st.env["JOBMASTER_MONGO_PORT"])
        client = pymongo.MongoClient("mongodb://127.0.0.1:%d/jobmaster" % port,
                                     serverSelectionTimeoutMS=10000)
        results = client.get_default_database().results
        check["mongo_results"] = results.count_documents({"job": job})
        client.close()
        check["ok"] = check["mongo_results"] == total and in_hash == 0 and outbox == 0
    else:
        check["ok"] = in_hash == total
    return check


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run (20,000 tasks)")
    p.add_argument("--tasks", type=int, default=None, help="tasks of the job [1,000,000]")
    p.add_argument("--pods", type=int, default=None, help="simulated pods [200; quick 50]")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--result-bytes", type=int, default=100)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--archive", choices=["on", "off", "both"], default="both")
    p.add_argument("--timeout", type=float, default=None,
                   help="bound of each phase in seconds [900; quick 120]")
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    args.tasks = args.tasks or (20000 if args.quick else 1_000_000)
    args.pods = args.pods or (50 if args.quick else 200)
    args.timeout = args.timeout or (120.0 if args.quick else 900.0)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.archive]
    runs = [one_run(args, archive) for archive in modes]
    text = json.dumps({"runs": runs}, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0 if all(r.get("ok") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
