"""The second wave's figures in ``make bench``, and their rows in the report.

limit    (issue 16) the limit of this design with no web layer: the bare
         lease/complete-with-next script loop of :mod:`loadtest.cluster_bench`
         (8 processes, batch 100, the app's own typed wrappers) driven to
         saturation against the *same* Redis as figure 2's swarm, right after
         it; the swarm ÷ limit ratio, and where the swarm's CPU went per task.
tail     (issue 14) :mod:`loadtest.tail_bench`: 100,000 tasks on 200 pods,
         2 % 10x slower, one hung while heartbeating: ``fixed`` without
         speculation against ``guided`` + ``speculate``.
archive  (issue 13) :mod:`loadtest.archive_bench`: a 1,000,000-task job with
         ~100-byte results through its own stack, archive on and off: makespan,
         Redis peak, completed → fully archived. MongoDB is nx-27017 here.
before   (issue 11, only with ``--before REF``) :mod:`loadtest.ab`: this code
         against REF's, two stacks up side by side, alternating rounds of
         figure 1's wrk pair and figure 2's swarm (the same swarm tool for both).

Each is a subprocess with its own time bound; its JSON lands in var/bench.
"""
import json
import os

from .benchenv import PY, ROOT, VAR, log, run

TARGETS = {"limit_ratio": 0.35, "tail_batches": 2.0, "archive_peak_mb": 64.0}


def _load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def limit_cmd(a, out):
    tasks = a.quick_tasks if a.quick else a.tasks
    code = ("import json, sys; from loadtest.cluster_bench import bare_loop; "
            "json.dump(bare_loop(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
            "int(sys.argv[4])), open(sys.argv[5], 'w'))")
    return [PY, "-c", code, a.redis_url, str(tasks), "8", str(a.batch), out]


def _measure(res, name, cmd, out, timeout):
    if os.path.exists(out):
        os.unlink(out)  # (a figure from an earlier run must not pass for this one's)
    res["commands"][name] = cmd
    rc, _stdout = run(cmd, timeout=timeout)
    res[name] = _load(out)
    if res[name] is None:
        log("%s: no figure (exit status %s)" % (name, rc))


def measure_limit(a, res):
    out = os.path.join(VAR, "limit.json")
    _measure(res, "limit", limit_cmd(a, out), out, 600)
    if res["limit"]:
        log("bare Lua loop: %s tasks/s" % res["limit"]["tasks_per_s"])


def tail_cmd(a, out):
    return [PY, "-m", "loadtest.tail_bench", "--json", "--out", out] + (
        ["--quick"] if a.quick else [])


def measure_tail(a, res):
    out = os.path.join(VAR, "tail.json")
    _measure(res, "tail", tail_cmd(a, out), out, 900)


def archive_cmd(a, out):
    return [PY, "-m", "loadtest.archive_bench", "--out", out] + (["--quick"] if a.quick else [])


def measure_archive(a, res):
    out = os.path.join(VAR, "archive.json")
    # (exit status 1 when a check failed: the JSON says which)
    _measure(res, "archive", archive_cmd(a, out), out, 2400)


def before_cmd(a, out):
    pods, tasks = (a.quick_pods, a.quick_tasks) if a.quick else (a.pods, a.tasks)
    return [PY, "-m", "loadtest.ab", "--a", a.before, "--b", ROOT, "--rounds", str(a.before_rounds),
            "--wrk-seconds", str(a.wrk_seconds), "--wrk-conns", str(a.wrk_conns),
            "--max-tasks", str(a.wrk_max_tasks), "--swarm-pods", str(pods),
            "--swarm-tasks", str(tasks), "--out", out]


def measure_before(a, res):
    out = os.path.join(VAR, "before.json")
    _measure(res, "before", before_cmd(a, out), out, 600 + 300 * a.before_rounds)
    if res["before"]:
        res["before"]["ref"] = a.before


def _per_task_us(cpu, tasks):
    """Swarm CPU per task by process kind (µs)."""
    kinds = ("uwsgi", "redis", "nginx", "load_generator")
    return {k: round(1e6 * cpu.get(k, 0.0) / tasks, 1) for k in kinds if tasks}


def rows(res):
    """(figure, target, measured, holds) rows for the report's table."""
    out = []
    lim, s = res.get("limit"), res.get("swarm")
    if lim and s:
        rate = s["summary"].get("tasks_per_s") or 0
        ratio = rate / lim["tasks_per_s"] if lim.get("tasks_per_s") else 0.0
        res["limit_ratio"] = ratio
        out.append(("8. swarm tasks/s ÷ the bare Lua loop's (same Redis, same run; issue 16)",
                    "≥ %.2f" % TARGETS["limit_ratio"],
                    "%.2f (%s ÷ %s tasks/s)" % (ratio, "{:,}".format(round(rate)),
                                               "{:,}".format(lim["tasks_per_s"])),
                    ratio >= TARGETS["limit_ratio"]))
    t = res.get("tail")
    if t:
        modes = {m["batching"] + ("+speculate" if m["speculate"] else ""): m for m in t["modes"]}
        g, f = modes.get("guided+speculate"), modes.get("fixed")
        if g:
            fixed = ("%.1f s" % f["makespan_s"] if f and f.get("makespan_s") is not None
                     else "never completes (%s tasks held by the hung pod)"
                     % (f or {}).get("unfinished_tasks", "?"))
            out.append(("7. tail: %s tasks, %s pods, %d%% 10x slower, 1 hung (issue 14)"
                        % ("{:,}".format(t["tasks"]), t["pods"], round(100 * t["slow_pods"] / t["pods"])),
                        "guided + speculate: tail < %g median batch times" % TARGETS["tail_batches"],
                        "guided + speculate %.2f s (at the pace it ran: %s s; the pods' "
                        "capacity alone: %.2f s): tail %s median batches; fixed, no "
                        "speculation: %s" % (g["makespan_s"], g.get("pace_s"), g["ideal_s"],
                                             g["tail_batches"], fixed),
                        g.get("makespan_s") is not None and g.get("tail_batches") is not None
                        and g["tail_batches"] < TARGETS["tail_batches"]))
    ar = res.get("archive")
    if ar:
        on = next((r for r in ar["runs"] if r["archive"]), None)
        off = next((r for r in ar["runs"] if not r["archive"]), None)
        if on:
            text = ("on: makespan %s s, Redis peak %s MB, after %s MB, completed → archived %s s"
                    % (on.get("makespan_s"), on.get("redis_peak_mb"), on.get("redis_after_mb"),
                       on.get("completed_to_archived_s")))
            if off:
                text += "; off: makespan %s s, peak %s MB, after %s MB" % (
                    off.get("makespan_s"), off.get("redis_peak_mb"), off.get("redis_after_mb"))
            out.append(("6. %s-task job, %d-B results, archive (MongoDB stand-in nx-27017; issue 13)"
                        % ("{:,}".format(on["tasks"]), on["result_bytes"]),
                        "Redis peak ≤ %g MB with the archive, every task once" % TARGETS["archive_peak_mb"],
                        text, bool(on.get("ok")) and on.get("redis_peak_mb", 1e9)
                        <= TARGETS["archive_peak_mb"]))
    return sorted(out)


def details(res, fmt_command):
    """The report's detail sections for these figures (markdown lines), 6 to 8."""
    return (_archive(res, fmt_command) + _tail(res, fmt_command) + _limit(res, fmt_command)
            + _before(res, fmt_command))


def _before(res, fmt_command):
    ab = res.get("before")
    if not ab:
        return []

    def cell(side, key, nd):
        v = ab[side].get(key)
        if not v:
            return "—"
        return "%s (%s–%s)" % tuple(("{:,.%df}" % nd).format(v[k]) for k in ("median", "min", "max"))

    L = ["### Before and after: this code against %s" % ab["ref"], "",
         "`python -m loadtest.ab`: a production stack of each (4 instances, its own Redis), both "
         "up, only one loaded at a time; %d rounds, the order alternating. Each round and side: "
         "figure 1's wrk pair (`/healthz`, then the lease), then figure 2's swarm made by this "
         "checkout's `loadtest.swarm` for both. Medians (min–max) over the rounds:"
         % len(ab["A"]["rounds"]), "",
         "| code | lease ÷ healthz | lease req/s | uWSGI µs per lease | swarm makespan s | swarm tasks/s |",
         "|---|---|---|---|---|---|"]
    for side, name in (("A", ab["ref"]), ("B", "this checkout")):
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            name, cell(side, "ratio", 2), cell(side, "lease_rps", 0), cell(side, "uwsgi_us", 0),
            cell(side, "swarm_makespan_s", 1), cell(side, "swarm_tasks_per_s", 0)))
    L += ["", "Command: `%s`" % fmt_command(res["commands"]["before"]), ""]
    return L


def _limit(res, fmt_command):
    L = []
    lim, s = res.get("limit"), res.get("swarm")
    if lim:
        L += ["### 8. The limit without the web layer", "",
              "%d processes run the lease and complete-with-next scripts in a loop through the "
              "app's typed wrappers (redis-py + hiredis, batch %d) against the stack's Redis, right "
              "after figure 2's swarm, until %s ids are drained: %s tasks/s in %s s; Redis was "
              "busy %d %% of that time (%s µs of Redis CPU per task, so Redis alone would carry "
              "~%s tasks/s); the machine spent %s µs of CPU per task."
              % (lim["procs"], lim["batch"], "{:,}".format(lim["tasks"]),
                 "{:,}".format(lim["tasks_per_s"]), lim["seconds"],
                 round(100 * lim["redis_cpu_share"]), lim["redis_cpu_us_per_task"],
                 "{:,}".format(lim["redis_bound_tasks_per_s"] or 0),
                 lim["machine_cpu_us_per_task"]), ""]
        cpu = res.get("swarm_cpu")
        if s and cpu:
            total = s["summary"]["total"]
            per = _per_task_us(cpu, total)
            L += ["Where the swarm's CPU went, per task (µs, over the whole swarm command, "
                  "so including its final check, which reads every result back as NDJSON: "
                  "`uwsgi` = the app's JSON, validation, Flask and redis-py; `redis` = the Lua "
                  "scripts; `nginx`; `load_generator` = the simulated pods' own share of the "
                  "same two cores): %s; the bare loop: %s µs of machine CPU per task. The "
                  "difference is the price of HTTP and JSON per batch, paid on the same cores "
                  "as the simulator." % (", ".join("%s %s" % kv for kv in per.items()),
                                         lim["machine_cpu_us_per_task"]), ""]
        L += ["Command: `%s`" % fmt_command(res["commands"]["limit"]), ""]
    return L


def _tail(res, fmt_command):
    L = []
    t = res.get("tail")
    if t:
        L += ["### 7. The tail of a job", "",
              "Simulated pods (greenlets calling the lease functions the views call, on a Redis "
              "of their own: scheduling, not HTTP): %s tasks, %d pods, %d of them %gx slower, one "
              "that takes a batch and hangs while its heartbeats go on; batch %d, %g ms per task."
              % ("{:,}".format(t["tasks"]), t["pods"], t["slow_pods"], t["slow_factor"],
                 t["batch_size"], t["task_ms"]), "",
              "| batching | speculate | makespan s | pace s | ideal s | tail (median batches) | vs ideal | note |",
              "|---|---|---|---|---|---|---|---|"]
        for m in t["modes"]:
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                m["batching"], m["speculate"], m.get("makespan_s"), m.get("pace_s"), m["ideal_s"],
                m.get("tail_batches", "—"), m.get("tail_batches_vs_ideal", "—"), m.get("note", "")))
        L += ["", "*pace*: twice the time to half done, what the whole job takes at the rate it "
              "ran at (the simulated pods, the app and Redis share the machine's cores, so it is "
              "slower than *ideal*, the pods' capacity alone); the tail is makespan − pace, in "
              "median batch times."]
        L += ["", "Command: `%s`" % fmt_command(res["commands"]["tail"]), ""]
    return L


def _archive(res, fmt_command):
    L = []
    ar = res.get("archive")
    if ar:
        L += ["### 6. The archive", "",
              "Each run is its own production stack (`python -m stack run`, 4 instances) and a "
              "swarm of %d pods reporting ~%d-byte results; Redis `used_memory` sampled every "
              "0.2 s. MongoDB is **nx-27017** (a MongoDB wire-protocol server on SQLite), the "
              "only one that can be installed here: it takes ~10,000 inserts a second, slower "
              "than the swarm completes tasks, so with the archive on the outbox grows while "
              "the job runs and Redis's peak measures the stand-in's drain rate as much as "
              "jobmaster (leasing never waits for MongoDB, by design); a real MongoDB drains "
              "faster and the peak falls with it. \"completed → archived\" is likewise the "
              "stand-in's." % (ar["runs"][0]["pods"], ar["runs"][0]["result_bytes"]), "",
              "| archive | makespan s | tasks/s | Redis before / peak / after MB | completed → archived s | checks |",
              "|---|---|---|---|---|---|"]
        for r in ar["runs"]:
            L.append("| %s | %s | %s | %s / %s / %s | %s | %s |" % (
                "on" if r["archive"] else "off", r.get("makespan_s"),
                "{:,}".format(round(r.get("tasks_per_s") or 0)), r.get("redis_before_mb"),
                r.get("redis_peak_mb"), r.get("redis_after_mb"),
                r.get("completed_to_archived_s", "—"),
                {k: r.get(k) for k in ("ok", "results_in_redis", "outbox_left", "mongo_results")
                 if k in r}))
        L += ["", "Command: `%s`" % fmt_command(res["commands"]["archive"]), ""]
    return L
