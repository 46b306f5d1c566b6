"""The bench report: plots, the machine's description, docs/BENCHMARKS.md."""
import json
import os
import platform
import subprocess

from . import bench_wave2
from .benchenv import DOCS, PLOTS, ROOT, TARGETS
from .bench_wrk import STEAL_LIMIT

# ---------------------------------------------------------------- plots

def plots(swarm, burst, ratio):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(PLOTS, exist_ok=True)
    files = []
    if swarm and swarm["series"]["throughput"]:
        t, v = zip(*swarm["series"]["throughput"])
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(t, v, lw=1.5)
        ax.set_xlabel("seconds since the swarm started")
        ax.set_ylabel("tasks completed / s (0.5 s buckets)")
        s = swarm["summary"]
        ax.set_title("swarm: %d tasks, %d pods, batch %d, no-op — makespan %.1f s"
                     % (s["total"], s["pods"], s["batch"], s["makespan_s"]))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(PLOTS, "throughput.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    series = []
    if swarm:
        for k, v in swarm["summary"]["latency_ms"].items():
            series.append(("swarm %s" % k, v))
    if burst:
        series.append(("burst %d" % burst["summary"]["requests"], burst["summary"]["latency_ms"]))
    if ratio:
        r0 = ratio["rounds"][len(ratio["rounds"]) // 2]
        series.append(("wrk healthz", r0["healthz"]["latency_ms"]))
        series.append(("wrk lease", r0["lease"]["latency_ms"]))
        series.append(("wrk lease→complete", ratio["loop"]["latency_ms"]))
    if series:
        order = ["p50", "p75", "p90", "p99", "p99.9", "p100"]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, lat in series:
            keys = [k for k in order if k in lat]
            if keys:
                ax.plot([order.index(k) for k in keys], [max(lat[k], 0.01) for k in keys],
                        marker="o", label=name)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([k if k != "p100" else "max" for k in order])
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title("latency percentiles")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(PLOTS, "latency.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


# ---------------------------------------------------------------- report

def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = "%.0f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass

    def ver(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": ver(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
            "python": platform.python_version(),
            "nginx": ver(["sh", "-c", "nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1"]),
            "redis": ver(["redis-server", "--version"]),
            "uwsgi": ver([os.path.join(ROOT, ".venv", "bin", "uwsgi"), "--version"]),
            "wrk": ver(["sh", "-c", "wrk -v 2>&1 | head -1"])}


def fmt(x, nd=1):
    return "—" if x is None else ("{:,.%df}" % nd).format(x)


def write_report(res, a):
    m = res["machine"]
    rows = []
    r = res.get("ratio")
    if r:
        rows.append(("1. lease req/s ÷ healthz req/s (wrk, same nginx→uWSGI path)",
                     "≥ 0.8", "%.2f (%s ÷ %s req/s)" % (r["ratio"], fmt(r["lease_rps"], 0),
                                                       fmt(r["healthz_rps"], 0)),
                     r["ratio"] >= TARGETS["ratio"] and r["errors"] == 0))
    s = res.get("swarm")
    if s:
        ss = s["summary"]
        ok = (ss["makespan_s"] <= TARGETS["makespan_s"] and ss.get("ok")
              and ss["total"] == 1_000_000 and ss["pods"] >= 1000)
        rows.append(("2. %s-task range job, %s pods, batch %d, no-op: makespan"
                     % (fmt(ss["total"], 0), fmt(ss["pods"], 0), ss["batch"]),
                     "≤ 30 s, 0 errors, 0 lost",
                     "%.1f s (%s tasks/s), %d errors, %d retried transport errors, %s lost; "
                     "%s results reported twice (server-side script re-runs)"
                     % (ss["makespan_s"], fmt(ss.get("tasks_per_s"), 0), ss["error_count"],
                        ss["conn_error_count"], ss.get("lost", "?"),
                        fmt(ss["complete"].get("duplicates", 0), 0)), bool(ok)))
    b = res.get("burst")
    if b:
        bs = b["summary"]
        rows.append(("3. %s simultaneous lease requests, distinct addresses" % fmt(bs["requests"], 0),
                     "0 errors", "%d errors (%s); p50 %s ms, p99 %s ms, all answered in %.1f s"
                     % (bs["error_count"], ", ".join("%s=%d" % kv for kv in sorted(bs["answers"].items())),
                        fmt(bs["latency_ms"].get("p50"), 0), fmt(bs["latency_ms"].get("p99"), 0),
                        bs["wall_s"]),
                     bs["error_count"] == 0 and bs["requests"] >= 10000))
    mm = res.get("memory")
    if mm:
        rows.append(("4. Redis memory of a pending 1,000,000-task range job", "≤ 2 MB",
                     "%s bytes in the job's keys; used_memory +%s bytes"
                     % (fmt(mm["key_bytes"], 0), fmt(mm["used_delta"], 0)),
                     mm["bytes"] <= TARGETS["memory_bytes"]))
    c = res.get("celery")
    if c and s:
        cs = c["summary"]
        factor = (s["summary"].get("tasks_per_s") or 0) / cs["drain_tasks_per_s"] if cs.get("drain_tasks_per_s") else None
        res["celery_factor"] = factor
        rows.append(("5. jobmaster no-op tasks/s ÷ Celery 5.7 (Redis broker) no-op tasks/s", "≥ 50×",
                     "%s× (%s ÷ %s tasks/s)" % (fmt(factor, 1), fmt(s["summary"].get("tasks_per_s"), 0),
                                               fmt(cs.get("drain_tasks_per_s"), 0)),
                     factor is not None and factor >= TARGETS["celery_factor"]))
    rows += bench_wave2.rows(res)

    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Written by `make bench` (`python -m loadtest.bench`) on %s. Raw numbers: "
             "`var/bench/*.json` of that run; every run also appends to `docs/bench/history.jsonl`."
             % res["date"])
    if a.quick:
        L.append("")
        L.append("**This was a `--quick` run: small sizes, not the targets' sizes.**")
    L.append("")
    L.append("## Figures vs targets")
    L.append("")
    L.append("| figure | target | measured | holds |")
    L.append("|---|---|---|---|")
    for name, target, measured, ok in rows:
        L.append("| %s | %s | %s | %s |" % (name, target, measured, "yes" if ok else "**no**"))
    L.append("")
    if os.path.exists(os.path.join(PLOTS, "NOTES.md")):
        L.append("Why the missed targets are missed, what costs (profiles), and the proposed "
                 "server changes with their measured effect: [bench/NOTES.md](bench/NOTES.md).")
        L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- %s, %s cores (shared with other work), %s RAM, kernel %s, %s"
             % (m["cpu"], m["cores"], m["memory"], m["kernel"], m["os"]))
    L.append("- Python %s; %s; %s; uWSGI %s; %s" % (m["python"], m["nginx"], m["redis"], m["uwsgi"], m["wrk"]))
    L.append("- Stack: %s" % res["stack"])
    L.append("- Load generators run on the same 2 cores as the stack, so every figure is a lower bound.")
    L.append("")
    L.append("## Plots")
    L.append("")
    for f in res.get("plots", []):
        L.append("![%s](bench/%s)" % (os.path.basename(f), os.path.basename(f)))
        L.append("")
    L.append("## Details")
    L.append("")
    if r:
        L.append("### 1. wrk, alternating runs")
        L.append("")
        L.append("%d rounds of %d s per run, %d connections, 1 wrk thread; each round runs "
                 "`/healthz` and the lease (in turns, one first, then the other), then the lease "
                 "naming no job. The lease job is a "
                 "100,000,000-task range job with `batch_size` %d and `max_tasks` %d (leases are "
                 "never completed). Ratio = median of the rounds' lease÷healthz ratios over the "
                 "%s (per-round ratios: %s). Errors (non-2xx + socket errors): %d."
                 % (len(r["rounds"]), r["seconds"], r["conns"], r["max_tasks"], r["max_tasks"],
                    "%d rounds" % r["used"] if r.get("all_used", True) else
                    "%d clean rounds" % r["used"],
                    ", ".join("%.2f" % x for x in r["pair_ratios"]), r["errors"]))
        L.append("")
        L.append("| round | healthz req/s | healthz p50 / p99 ms | lease req/s | lease p50 / p99 ms "
                 "| ratio | steal s (healthz / lease) |")
        L.append("|---|---|---|---|---|---|---|")
        for i, x in enumerate(r["rounds"]):
            h, l = x["healthz"], x["lease"]
            hl, ll = h["latency_ms"], l["latency_ms"]
            L.append("| %d | %s | %s / %s | %s | %s / %s | %s | %s / %s%s |" % (
                i + 1, fmt(h["rps"], 0), fmt(hl.get("p50"), 2), fmt(hl.get("p99"), 2),
                fmt(l["rps"], 0), fmt(ll.get("p50"), 2), fmt(ll.get("p99"), 2),
                fmt(x.get("ratio"), 2), fmt(h.get("steal_s"), 1), fmt(l.get("steal_s"), 1),
                "" if x.get("clean", True) else " **stolen**"))
        L.append("")
        L.append("`steal s`: CPU time the hypervisor gave this machine's cores to other guests "
                 "during the run; it makes a run slower, not the code. A round is *stolen* when "
                 "either run lost more than %d %% of the machine's core-seconds that way; the "
                 "figure uses the other rounds when there are at least %d of them (more rounds "
                 "are run, up to twice as many, to get them). Every round is listed."
                 % (round(r.get("steal_limit", STEAL_LIMIT) * 100), r.get("wanted", a.wrk_rounds)))
        lp = r["loop"]
        if "cpu_ratio" in r:
            L.append("")
            L.append("Cross-check from CPU instead of req/s, over the same rounds: the machine's "
                     "busy CPU per request (all processes, wrk included) was %s µs for "
                     "`/healthz` and %s µs for the lease (medians), and the median of the "
                     "rounds' healthz÷lease CPU ratios is %.2f (rounds: %s)."
                     % (fmt(r["healthz_cpu_us"], 0), fmt(r["lease_cpu_us"], 0), r["cpu_ratio"],
                        ", ".join("%.2f" % x["cpu_ratio"] for x in r["rounds"])))
        if "lease_any_rps" in r:
            L.append("")
            L.append("For information, the same lease naming no job (the server reads the "
                     "active-job index first), run third in each round: %s req/s (rounds: %s), "
                     "%.2f of healthz." % (fmt(r["lease_any_rps"], 0), ", ".join(
                         fmt(x["lease_any"]["rps"], 0) for x in r["rounds"]), r["lease_any_ratio"]))
        L.append("")
        L.append("Lease → complete(`next`) loop, `max_tasks` 100, for information: %s req/s, "
                 "counters %s." % (fmt(lp["rps"], 0), lp.get("counters")))
        L.append("")
        L.append("Commands: `%s`, `%s`, `%s`." % (r["rounds"][0]["healthz"]["command"],
                                               r["rounds"][0]["lease"]["command"], lp["command"]))
        L.append("")
    if s:
        ss = s["summary"]
        L.append("### 2. Swarm")
        L.append("")
        L.append("Each pod has its own source address 127.a.b.c (third octet varying fastest, "
                 "so `ip_hash` spreads them), leases `batch` tasks, reports with `complete` + "
                 "`next`, stops on `done`. Makespan = from the pods' start to the last "
                 "result accepted (the job complete); all pods had exited (polling until `done`) "
                 "after %.1f s. The job is then checked through its status and its results."
                 % ss.get("pods_exit_s", 0))
        L.append("")
        L.append("- requests: %s; by kind: %s" % (fmt(ss["requests"], 0), ss["requests_by_kind"]))
        L.append("- lease answers: %s; complete totals: %s" % (ss["answers"], ss["complete"]))
        L.append("- HTTP errors: %s; retried transport errors: %s" % (ss["errors"] or 0, ss["conn_errors"] or 0))
        L.append("- final counts: %s, state `%s`; results: %s" % (ss.get("counts"), ss.get("job_state"),
                                                            ss.get("results")))
        L.append("- latency (ms): %s" % ss["latency_ms"])
        cpu = res.get("swarm_cpu")
        if cpu:
            wall = cpu.get("machine_total", 0) / (m["cores"] or 1)
            L.append("- CPU seconds while the swarm ran (the whole command, %.0f s wall, so %.0f "
                     "core-seconds on %s cores): %s. `machine_busy` is every process on the "
                     "machine, other users included; `machine_steal` (part of it) is time the "
                     "hypervisor gave these cores to other guests; `load_generator` is the "
                     "simulator itself."
                     % (wall, cpu.get("machine_total", 0), m["cores"],
                        {k: v for k, v in cpu.items() if k != "machine_total"}))
        L.append("")
        L.append("Command: `%s`" % " ".join(res["commands"]["swarm"]))
        L.append("")
    if b:
        bs = b["summary"]
        L.append("### 3. Burst")
        L.append("")
        L.append("%s coroutines, each with its own connection from its own source address "
                 "(127.a.b.c), wait on one barrier, then connect and send `POST /api/v1/lease` "
                 "(`max_tasks` 1) at once; %s. Answers: %s. Latency (ms): %s. The job's leased "
                 "count matches the ok answers: %s."
                 % (fmt(bs["requests"], 0), "pre-connected" if bs["warm"] else "cold connections",
                    bs["answers"], bs["latency_ms"], bs.get("leased_matches")))
        L.append("")
        L.append("Command: `%s`" % " ".join(res["commands"]["burst"]))
        L.append("")
    if mm:
        L.append("### 4. Memory")
        L.append("")
        L.append("A fresh 1,000,000-task range job, nothing leased yet. `MEMORY USAGE` per key "
                 "(bytes): %s; global index keys: %s. `INFO memory` used_memory %s → %s."
                 % (mm["keys"], mm["global_keys"], fmt(mm["used_before"], 0), fmt(mm["used_after"], 0)))
        L.append("")
    if c:
        cs = c["summary"]
        L.append("### 5. Celery peer")
        L.append("")
        L.append("Celery %s / kombu %s, Redis broker (`%s`, the same redis-server), `%s` pool "
                 "with %d processes, results ignored, defaults otherwise. %s tasks published in "
                 "%.1f s, then one worker drained them in %.1f s after a %.1f s start-up: %s tasks/s "
                 "(end to end including publishing: %s tasks/s). jobmaster's figure is the swarm's "
                 "tasks/s from figure 2 in the same run."
                 % (cs["celery"], cs["kombu"], cs["broker"], cs["pool"], cs["concurrency"],
                    fmt(cs["tasks"], 0), cs["publish_s"], cs["drain_s"], cs["startup_s"],
                    fmt(cs.get("drain_tasks_per_s"), 0), fmt(cs.get("end_to_end_per_s"), 0)))
        L.append("")
        L.append("Command: `%s`" % " ".join(res["commands"]["celery"]))
        L.append("")
    L.extend(bench_wave2.details(res, " ".join))
    fl = res.get("flood")
    if fl:
        from .metrics_flood import markdown as flood_markdown
        L.append("### /metrics under a flood (optional, `--only ...,flood`)")
        L.append("")
        L.append("`python -m loadtest.metrics_flood` on this stack: a swarm of %d pods (%s tasks, "
                 "batch %d) with %d idle jobs kept, alone and under `wrk -c%d` on `/metrics`, "
                 "alternating." % (fl["pods"], fmt(fl["tasks"], 0), fl["batch"], fl["jobs_kept"],
                                   fl["flood_conns"]))
        L.append("")
        L.extend(flood_markdown(fl))
        L.append("")
    L.append("## How to run")
    L.append("")
    L.append("- `make bench`: everything above (installs `loadtest/requirements.txt`, brings up "
             "its own stack on free loopback ports, stops it at the end).")
    L.append("- `make bench BENCH_ARGS='--url http://127.0.0.1:8080 --redis-url redis://127.0.0.1:6379/0'`: "
             "against a stack that is already up (`make run`).")
    L.append("- `make bench BENCH_ARGS='--before REF'`: also figures 1 and 2 against REF's code, "
             "side by side (`loadtest/ab.py`).")
    L.append("- `make bench BENCH_ARGS='--only memory,ratio,burst,swarm,limit,celery,tail,archive,flood'`: also swarm "
             "throughput under a `/metrics` flood (`loadtest/metrics_flood.py`, docs/RELIABILITY.md).")
    L.append("- The tools alone: `python -m loadtest.swarm --help`, `wrk ... -s loadtest/wrk/*.lua`, "
             "`python -m loadtest.peers.celery_noop --help`; the smoke tests: `pytest tests/loadtest`.")
    hist = []
    try:
        with open(os.path.join(PLOTS, "history.jsonl")) as fh:
            hist = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        pass
    hist = [h for h in hist if not h.get("quick")][-8:]
    if hist:
        L.append("")
        L.append("## Earlier runs (before/after)")
        L.append("")
        L.append("Full runs recorded in `docs/bench/history.jsonl` (newest last):")
        L.append("")
        L.append("| date | 1. ratio | 2. swarm | 3. burst | 4. memory | 5. vs Celery | 6. archive | 7. tail | 8. ÷ limit |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for h in hist:
            f = h.get("figures", {})
            L.append("| %s | %s |" % (h.get("date"), " | ".join(
                (f.get(k, "—").split(";")[0]) for k in ("1.", "2.", "3.", "4.", "5.", "6.", "7.", "8."))))
    L.append("")
    with open(os.path.join(DOCS, "BENCHMARKS.md"), "w") as fh:
        fh.write("\n".join(L))
    return rows
