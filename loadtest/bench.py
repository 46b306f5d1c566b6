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

Writes ``var/bench/*.json`` (raw), ``docs/bench/*.png`` (plots) and
``docs/BENCHMARKS.md``; appends a line to ``docs/bench/history.jsonl`` so
before/after figures stay on record. Every step is bounded in time; every
process it starts is stopped by its PID.

    python -m loadtest.bench                 # the full run (a few minutes)
    python -m loadtest.bench --quick         # a small, fast sanity run
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
VAR = os.path.join(ROOT, "var", "bench")
DOCS = os.path.join(ROOT, "docs")
PLOTS = os.path.join(DOCS, "bench")

TARGETS = {
    "ratio": 0.8,            # lease req/s ÷ healthz req/s
    "makespan_s": 30.0,      # 1M tasks, 1000 pods, batch 100
    "burst_errors": 0,
    "memory_bytes": 2 * 1024 * 1024,
    "celery_factor": 50.0,
}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def run(argv, timeout, env=None):
    """Run a command, bounded in time; return (rc, stdout)."""
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    try:
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return 124, (err.stdout or "") if isinstance(err.stdout, str) else ""
    if p.returncode not in (0, 1):
        sys.stderr.write(p.stderr[-3000:])
    return p.returncode, p.stdout


# ---------------------------------------------------------------- wrk

def parse_wrk(out):
    res = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    lat = {}
    for p, v, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat["p%s" % p] = float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    res["latency_ms"] = lat
    m = re.search(r"^jobmaster: (.*)$", out, re.M)
    if m:
        res["counters"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
    return res


def wrk(url, script, seconds, conns, threads=1, args=()):
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
            "--timeout", "10s", "-s", os.path.join("loadtest", "wrk", script), url]
    if args:
        argv += ["--"] + [str(a) for a in args]
    rc, out = run(argv, timeout=seconds + 30)
    res = parse_wrk(out)
    res["command"] = " ".join(argv)
    return res


# A wrk run is "stolen" when the hypervisor took more than this share of the
# machine's cores during it: its req/s then measures the neighbours.
STEAL_LIMIT = 0.05


def wrk_timed(a, script, args=()):
    """One wrk run with the steal time (hypervisor) during it, and the
    machine's busy CPU per request (every process, wrk included; stolen
    time left out)."""
    before = cpu_snapshot(None)
    res = wrk(a.url, script, a.wrk_seconds, a.wrk_conns, args=args)
    used = cpu_delta(before, cpu_snapshot(None))
    res["steal_s"] = used["machine_steal"]
    # (busy time in /proc/stat includes the stolen time: leave it out)
    busy = used["machine_busy"] - used["machine_steal"]
    res["cpu_us"] = busy / res["requests"] * 1e6 if res.get("requests") else 0.0
    res["stolen"] = res["steal_s"] > STEAL_LIMIT * a.wrk_seconds * (os.cpu_count() or 1)
    return res


def figure_ratio(a, admin):
    """Alternating healthz and lease runs; the figure is the median of the
    rounds' lease÷healthz ratios, over the rounds neither of whose runs was
    stolen (more rounds are run, up to twice as many, to get at least
    `wrk_rounds` clean ones; if there are still fewer, over all rounds).

    Runs are short and many, and the order within a round alternates: this
    machine's speed drifts by 2x within a minute without any steal showing
    (seen in the 21:03 run), and a short pair sees less of that drift."""
    job = admin.create_range_job("bench-wrk-lease", 100_000_000, batch_size=a.wrk_max_tasks,
                                 lease_seconds=3600)
    rounds = []
    while len(rounds) < 2 * a.wrk_rounds:
        clean = [x for x in rounds if x["clean"]]
        if len(rounds) >= a.wrk_rounds and len(clean) >= a.wrk_rounds:
            break
        if len(rounds) % 2:
            l = wrk_timed(a, "lease.lua", (job["id"], a.wrk_max_tasks))
            h = wrk_timed(a, "healthz.lua")
        else:
            h = wrk_timed(a, "healthz.lua")
            l = wrk_timed(a, "lease.lua", (job["id"], a.wrk_max_tasks))
        # For information: a lease that names no job (the server picks the
        # best running one, which costs a read of the active index first).
        n = wrk_timed(a, "lease.lua", ("-", a.wrk_max_tasks))
        x = {"healthz": h, "lease": l, "lease_any": n, "clean": not (h["stolen"] or l["stolen"]),
             "steal_s": round(h["steal_s"] + l["steal_s"] + n["steal_s"], 2)}
        x["ratio"] = l["rps"] / h["rps"] if h["rps"] else 0.0
        # The same comparison from the other side: CPU per request (it does
        # not depend on how much CPU the machine had to give).
        x["cpu_ratio"] = h["cpu_us"] / l["cpu_us"] if l["cpu_us"] else 0.0
        rounds.append(x)
        log("round %d: healthz %.0f req/s, lease %.0f req/s (%.2f), lease naming no job %.0f "
            "req/s; steal %.1f / %.1f s%s" % (len(rounds), h["rps"], l["rps"], x["ratio"],
                                              n["rps"], h["steal_s"], l["steal_s"],
                                              "" if x["clean"] else " (stolen)"))
    admin.delete(job["id"])
    loop_job = admin.create_range_job("bench-wrk-loop", 100_000_000, batch_size=a.wrk_max_tasks,
                                      lease_seconds=3600)
    loop = wrk(a.url, "lease_complete.lua", a.wrk_seconds, a.wrk_conns,
               args=(loop_job["id"], 100))
    admin.delete(loop_job["id"])
    used = [x for x in rounds if x["clean"]]
    if len(used) < a.wrk_rounds:
        used = rounds
    med = statistics.median
    errors = sum(x[k]["non2xx"] + x[k]["socket_errors"] for x in rounds
                 for k in ("healthz", "lease", "lease_any"))
    hs = med(x["healthz"]["rps"] for x in used)
    return {"rounds": rounds, "used": len(used), "all_used": used is rounds,
            "healthz_rps": hs, "lease_rps": med(x["lease"]["rps"] for x in used),
            "ratio": med(x["ratio"] for x in used),
            "lease_any_rps": med(x["lease_any"]["rps"] for x in used),
            "lease_any_ratio": med(x["lease_any"]["rps"] / x["healthz"]["rps"] for x in used
                                   if x["healthz"]["rps"]),
            "pair_ratios": [x["ratio"] for x in rounds], "errors": errors, "loop": loop,
            "healthz_cpu_us": med(x["healthz"]["cpu_us"] for x in used),
            "lease_cpu_us": med(x["lease"]["cpu_us"] for x in used),
            "cpu_ratio": med(x["cpu_ratio"] for x in used),
            "max_tasks": a.wrk_max_tasks, "conns": a.wrk_conns, "seconds": a.wrk_seconds,
            "steal_limit": STEAL_LIMIT, "wanted": a.wrk_rounds}


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


# ---------------------------------------------------------------- CPU accounting

def _descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def steal_seconds():
    """CPU time the hypervisor has given this machine's cores to other guests."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(root_pid):
    """CPU seconds used so far by the stack's processes, by kind, and by the
    whole machine (busy time over all cores)."""
    tick = os.sysconf("SC_CLK_TCK")
    kinds = {}
    for pid in _descendants(root_pid) if root_pid else []:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        secs = (int(f[11]) + int(f[12])) / tick
        kind = ("uwsgi" if "uwsgi" in cmd or "jobmaster-web" in cmd else "gunicorn" if "gunicorn" in cmd
                else "nginx" if "nginx" in cmd else "redis" if "redis-server" in cmd else "other")
        kinds[kind] = kinds.get(kind, 0.0) + secs
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    kinds["machine_busy"] = (sum(v) - v[3] - v[4]) / tick
    kinds["machine_total"] = sum(v) / tick
    # Time the hypervisor gave our cores to someone else: the machine is
    # shared, and this is how much slower it was during a figure.
    kinds["machine_steal"] = steal_seconds()
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    kinds["load_generator"] = ru.ru_utime + ru.ru_stime
    return kinds


def cpu_delta(before, after):
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}


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
    L.append("## How to run")
    L.append("")
    L.append("- `make bench`: everything above (installs `loadtest/requirements.txt`, brings up "
             "its own stack on free loopback ports, stops it at the end).")
    L.append("- `make bench BENCH_ARGS='--url http://127.0.0.1:8080 --redis-url redis://127.0.0.1:6379/0'`: "
             "against a stack that is already up (`make run`).")
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
        L.append("| date | 1. ratio | 2. swarm | 3. burst | 4. memory | 5. vs Celery |")
        L.append("|---|---|---|---|---|---|")
        for h in hist:
            f = h.get("figures", {})
            L.append("| %s | %s |" % (h.get("date"), " | ".join(
                (f.get(k, "—").split(";")[0]) for k in ("1.", "2.", "3.", "4.", "5."))))
    L.append("")
    with open(os.path.join(DOCS, "BENCHMARKS.md"), "w") as fh:
        fh.write("\n".join(L))
    return rows


# ---------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description="measure the issue-5 figures and write docs/BENCHMARKS.md")
    p.add_argument("--url", help="a running stack (default: start one)")
    p.add_argument("--redis-url", help="its Redis (needed with --url)")
    p.add_argument("--token", default=os.environ.get("JOBMASTER_TOKEN"))
    p.add_argument("--key-prefix", default=os.environ.get("JOBMASTER_KEY_PREFIX", "jm"))
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--only", default="memory,ratio,burst,swarm,celery")
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
        if "celery" in only:
            log("figure 5: celery")
            out = os.path.join(VAR, "celery.json")
            cmd = celery_cmd(a, out)
            res["commands"]["celery"] = cmd
            run(cmd, timeout=400)
            res["celery"] = load_json(out)
            if res["celery"]:
                log("celery: %s tasks/s" % res["celery"]["summary"].get("drain_tasks_per_s"))
    finally:
        if stack:
            stack.down()
            log("stack stopped")
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
