"""What a flood of ``GET /metrics`` costs a working swarm (issue 12).

On the production stack (:class:`loadtest.stack.ProdStack`, as ``make
bench`` starts it) with ``--jobs`` small range jobs kept (idle: pending,
never leased, as a week's finished and queued jobs sit in Redis and are
listed by every scrape), a swarm (``loadtest.swarm``) works through one
range job, alternately on its own ("clean") and while ``wrk -c50`` floods
``/metrics`` from one address, a fresh one each round ("flooded";
``loadtest/wrk/metrics.lua``). Each round runs both, in alternating order
(clean first in the first round), so a drift of this shared machine's speed
weighs on both sides alike. The figures are the medians over the rounds of
flooded ÷ clean: the swarm's tasks/s, and the stack's own CPU per task
(which a loaded machine does not blur).

Every run is bounded (the swarm by ``--swarm-timeout``; wrk by its ``-d``,
and it is stopped with SIGINT as soon as the swarm ends, which makes it
print its totals). Only loopback addresses are used.

    python -m loadtest.metrics_flood                  # 6+6 runs, ~5 minutes here
    python -m loadtest.metrics_flood --quick          # seconds, for a smoke test
    python -m loadtest.metrics_flood --url http://127.0.0.1:8080   # a running stack

Prints one JSON document (``--out`` also writes it); :func:`markdown` turns
it into the lines of a report.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script as well as with -m
    sys.path.insert(0, ROOT)

from loadtest.bench_wrk import parse_wrk  # noqa: E402
from loadtest.common import Admin, check_loopback_url, raise_nofile  # noqa: E402
from loadtest.cpu import cpu_delta, cpu_snapshot  # noqa: E402

PY = sys.executable
STACK_KINDS = ("uwsgi", "nginx", "redis")


def _log(msg):
    print("[flood %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def scrape(url, token=None, timeout=30):
    """One GET /metrics, uncompressed: (status, body bytes)."""
    req = urllib.request.Request(url + "/metrics", headers={"Accept-Encoding": "identity"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, len(r.read())
    except urllib.error.HTTPError as err:
        return err.code, len(err.read())


def keep_jobs(admin, n, tasks):
    """``n`` idle range jobs of ``tasks`` tasks each: every scrape lists them."""
    return [admin.create_range_job("flood-kept-%04d" % i, tasks, batch_size=tasks)["id"]
            for i in range(n)]


class Flood:
    """``wrk -c<conns>`` on /metrics from one client address (as one
    misconfigured scraper or one attacker), until :meth:`stop`."""

    def __init__(self, a, address):
        self.argv = ["wrk", "-t%d" % a.wrk_threads, "-c%d" % a.flood_conns,
                     "-d%ds" % int(a.swarm_timeout + 30), "--timeout", "10s", "--latency",
                     "-s", os.path.join("loadtest", "wrk", "metrics.lua")]
        if a.metrics_token:
            self.argv += ["-H", "Authorization: Bearer " + a.metrics_token]
        self.argv += [a.url, "--", address]
        self.proc = None

    def start(self):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        """SIGINT (wrk then prints its totals), bounded; the parsed totals."""
        seconds = time.monotonic() - self.t0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        res = parse_wrk(text)
        res["seconds"] = round(seconds, 2)
        m = re.search(r"requests in [\d.]+\w+, ([\d.]+)(\w+) read", text)
        if m:
            res["bytes_read"] = float(m.group(1)) * {"B": 1, "KB": 2 ** 10, "MB": 2 ** 20,
                                                     "GB": 2 ** 30}.get(m.group(2), 1)
        res["scrapes_per_s"] = round(res.get("requests", 0) / seconds, 1) if seconds else 0.0
        # (never the token, in a report)
        res["command"] = " ".join("Authorization: Bearer ***" if x.startswith("Authorization:")
                                  else x for x in self.argv)
        return res


def swarm_argv(a, out):
    return [PY, "-m", "loadtest.swarm", "swarm", "--url", a.url, "--pods", str(a.pods),
            "--tasks", str(a.tasks), "--batch", str(a.batch), "--work", "const:0",
            "--timeout", str(a.swarm_timeout), "--name", "flood-swarm", "--delete",
            "--max-wait", "0.5", "--out", out] + (["--token", a.token] if a.token else [])


def one_run(a, flood_from, root_pid):
    """One swarm, with a flood from address ``flood_from`` or (None) without:
    its figures, the flood's, the stack's CPU by kind and the machine's steal
    and load average."""
    flooded = flood_from is not None
    flood = Flood(a, flood_from) if flooded else None
    c0 = cpu_snapshot(root_pid)
    if flood:
        flood.start()
        time.sleep(a.warmup)  # the flood is under way before the first lease
    wrk = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "swarm.json")
            p = subprocess.run(swarm_argv(a, out), cwd=ROOT, capture_output=True, text=True,
                               timeout=a.swarm_timeout + 120)
            try:
                with open(out) as fh:
                    s = json.load(fh)["summary"]
            except (OSError, ValueError):
                raise SystemExit("the swarm wrote no summary (rc %d): %s"
                                 % (p.returncode, p.stderr[-2000:]))
    finally:  # the flood never outlives its run
        if flood:
            wrk = flood.stop()
    cpu = cpu_delta(c0, cpu_snapshot(root_pid))
    lat = s.get("latency_ms", {})
    run = {"flooded": flooded, "tasks_per_s": s.get("tasks_per_s") or 0.0,
           "makespan_s": s.get("makespan_s"), "ok": s.get("ok"), "lost": s.get("lost"),
           "errors": s.get("error_count"), "complete_p99_ms": lat.get("complete", {}).get("p99"),
           "lease_p99_ms": lat.get("lease", {}).get("p99"), "requests": s.get("requests"),
           "cpu_s": {k: cpu.get(k) for k in ("uwsgi", "nginx", "redis", "machine_busy")
                     if k in cpu},
           "steal_s": cpu.get("machine_steal"), "loadavg": loadavg()}
    # The server's own CPU per task (the neighbours' load and the flooder's
    # own CPU left out): the figure this shared machine cannot blur.
    stack_cpu = sum(cpu.get(k, 0.0) for k in STACK_KINDS)
    done = run["tasks_per_s"] * (run["makespan_s"] or 0)
    run["stack_cpu_ms_per_ktask"] = round(1e6 * stack_cpu / done, 1) if done else None
    if wrk is not None:
        run["flood"] = {k: wrk.get(k) for k in ("requests", "scrapes_per_s", "non2xx",
                                                 "socket_errors", "bytes_read", "seconds",
                                                 "latency_ms", "command")}
    _log("%s: %.0f tasks/s, makespan %.1f s, complete p99 %s ms%s; steal %.1f s, load %s"
         % ("flooded" if flooded else "clean  ", run["tasks_per_s"], run["makespan_s"] or 0,
            run["complete_p99_ms"], "" if not wrk else
            "; flood %d scrapes (%.0f/s, %d non-2xx)" % (wrk.get("requests", 0),
                                                       wrk["scrapes_per_s"], wrk["non2xx"]),
            run["steal_s"] or 0, run["loadavg"][0]))
    return run


def measure(a, root_pid=None):
    """The whole measurement (see the module's docstring) as one dict.
    ``root_pid``: the stack's process tree, for its CPU, when ``a.url`` is
    a stack started by the caller."""
    raise_nofile(65536)
    stack = None
    if a.url:
        check_loopback_url(a.url)
        stack_desc = "already running at %s" % a.url
    else:
        from loadtest.stack import ProdStack
        stack = ProdStack(instances=a.instances).up()
        a.url = stack.url
        stack_desc = "ProdStack (`python -m stack run`), %d instances, `%s`" % (
            a.instances, stack.describe())
    a.url = a.url.rstrip("/")
    admin = Admin(a.url, a.token, timeout=120)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "stack": stack_desc,
           "jobs_kept": a.jobs, "pods": a.pods, "tasks": a.tasks, "batch": a.batch,
           "flood_conns": a.flood_conns, "rounds": [], "loadavg_before": loadavg(),
           "cpus": os.cpu_count()}
    kept = []
    try:
        kept = keep_jobs(admin, a.jobs, a.job_tasks)
        res["metrics_status"], res["metrics_bytes"] = scrape(a.url, a.metrics_token)
        _log("%d jobs kept; /metrics answers %d with %d bytes" % (a.jobs, res["metrics_status"],
                                                               res["metrics_bytes"]))
        root = stack.proc.pid if stack else root_pid
        for i in range(a.rounds):
            order = (False, True) if i % 2 == 0 else (True, False)
            # each round's flood from an address of its own, in one /24 (the
            # same instance under ip_hash)
            runs = {("flooded" if f else "clean"): one_run(a, "127.250.0.%d" % (i + 1) if f else None,
                                                           root) for f in order}
            clean, flooded = runs["clean"]["tasks_per_s"], runs["flooded"]["tasks_per_s"]
            cc, fc = (runs[k]["stack_cpu_ms_per_ktask"] for k in ("clean", "flooded"))
            res["rounds"].append({"order": "clean first" if i % 2 == 0 else "flooded first",
                                  "clean": runs["clean"], "flooded": runs["flooded"],
                                  "ratio": round(flooded / clean, 3) if clean else 0.0,
                                  "cpu_ratio": round(fc / cc, 3) if cc and fc else None})
            _log("round %d: tasks/s ratio %.3f, stack CPU per task ratio %s"
                 % (i + 1, res["rounds"][-1]["ratio"], res["rounds"][-1]["cpu_ratio"]))
    finally:
        if stack:
            stack.down()
        else:
            for job in kept:
                admin.delete(job)
    rounds = res["rounds"]
    med = statistics.median
    ratios = [r["ratio"] for r in rounds]
    res.update({
        "ratio_median": med(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "cpu_ratio_median": med(r["cpu_ratio"] or 0 for r in rounds),
        "clean_tasks_per_s": med(r["clean"]["tasks_per_s"] for r in rounds),
        "flooded_tasks_per_s": med(r["flooded"]["tasks_per_s"] for r in rounds),
        "clean_complete_p99_ms": med(r["clean"]["complete_p99_ms"] or 0 for r in rounds),
        "flooded_complete_p99_ms": med(r["flooded"]["complete_p99_ms"] or 0 for r in rounds),
        "scrapes": sum(r["flooded"]["flood"].get("requests") or 0 for r in rounds),
        "scrapes_per_s": med(r["flooded"]["flood"]["scrapes_per_s"] for r in rounds),
        "scrapes_non2xx": sum(r["flooded"]["flood"].get("non2xx") or 0 for r in rounds),
        "all_ok": all(r[k]["ok"] for r in rounds for k in ("clean", "flooded")),
        "loadavg_after": loadavg(),
        "steal_s": round(sum((r[k]["steal_s"] or 0) for r in rounds for k in ("clean", "flooded")), 2),
    })
    # Within 10 %: in tasks/s, and in the stack's CPU per task, which is what
    # tasks/s follows on a machine of its own (see docs/RELIABILITY.md)
    res["holds"] = res["ratio_median"] >= 0.9 and 0 < res["cpu_ratio_median"] <= 1 / 0.9
    return res


def markdown(res):
    """The measurement as Markdown lines: one row per round, then the medians."""
    lines = ["| round | order | clean tasks/s | flooded tasks/s | flooded ÷ clean | complete p99 "
             "clean / flooded (ms) | stack CPU ms per 1000 tasks, clean / flooded | "
             "scrapes/s (non-2xx) | steal s | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(res["rounds"], 1):
        c, f = r["clean"], r["flooded"]
        lines.append("| %d | %s | %.0f | %.0f | %.3f | %s / %s | %s / %s | %.0f (%d) | %.1f | %.1f |" % (
            i, r["order"], c["tasks_per_s"], f["tasks_per_s"], r["ratio"], c["complete_p99_ms"],
            f["complete_p99_ms"], c["stack_cpu_ms_per_ktask"], f["stack_cpu_ms_per_ktask"],
            f["flood"]["scrapes_per_s"], f["flood"].get("non2xx") or 0,
            (c["steal_s"] or 0) + (f["steal_s"] or 0), max(c["loadavg"][0], f["loadavg"][0])))
    lines.append("")
    lines.append("Median flooded ÷ clean tasks/s: **%.3f** (spread %.3f–%.3f over %d rounds); "
                 "stack CPU per task, flooded ÷ clean: **%.3f** (target: ≥ 0.9 and ≤ 1.11: %s); "
                 "median tasks/s %.0f clean, %.0f flooded; complete p99 %.0f → %.0f ms; %d scrapes "
                 "(%d non-2xx) of a %d-byte /metrics with %d jobs kept; load average %s before, %s "
                 "after on %d CPUs; steal %.1f s in all."
                 % (res["ratio_median"], res["ratio_min"], res["ratio_max"], len(res["rounds"]),
                    res["cpu_ratio_median"], "holds" if res["holds"] else "MISSED",
                    res["clean_tasks_per_s"],
                    res["flooded_tasks_per_s"], res["clean_complete_p99_ms"],
                    res["flooded_complete_p99_ms"], res["scrapes"], res["scrapes_non2xx"],
                    res["metrics_bytes"], res["jobs_kept"], res["loadavg_before"][0],
                    res["loadavg_after"][0], res["cpus"], res["steal_s"]))
    return lines


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running stack (default: start the production stack)")
    p.add_argument("--token", default=os.environ.get("JOBMASTER_TOKEN"))
    p.add_argument("--metrics-token", default=os.environ.get("JOBMASTER_METRICS_TOKEN"),
                   help="sent by the flood (default: none, as an outsider would)")
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--jobs", type=int, default=500, help="idle jobs kept during the runs")
    p.add_argument("--job-tasks", type=int, default=10)
    p.add_argument("--pods", type=int, default=200)
    p.add_argument("--tasks", type=int, default=250000)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rounds", type=int, default=6, help="each round: one clean, one flooded run")
    p.add_argument("--flood-conns", type=int, default=50)
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of flood before the swarm")
    p.add_argument("--swarm-timeout", type=float, default=120.0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds, for a smoke test")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--markdown", action="store_true", help="print Markdown lines, not JSON")
    return p


def options(argv=None):
    """The parsed command line, ``--quick`` applied (also for ``make bench``)."""
    a = build_parser().parse_args(argv)
    if a.quick:
        a.jobs, a.pods, a.tasks, a.batch, a.rounds = 20, 10, 1000, 10, 1
        a.flood_conns, a.warmup, a.swarm_timeout = 10, 0.5, 60.0
    return a


def main(argv=None):
    a = options(argv)
    res = measure(a)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)
    print("\n".join(markdown(res)) if a.markdown else json.dumps(res, indent=1))
    return 0 if res["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
