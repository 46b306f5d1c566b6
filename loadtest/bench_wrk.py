"""Figure 1: wrk runs of ``/healthz`` and the lease, alternating, with the
steal time and the machine's CPU per request of each run."""
import os
import re
import statistics

from .benchenv import log, run
from .cpu import cpu_delta, cpu_snapshot

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
