"""Pod-swarm simulator and burst generator for jobmaster (asyncio + aiohttp).

Two modes, both bounded in time and count, both loopback-only:

``swarm`` (default)
    W simulated pods work through one range job. Pod ``i`` is bound to its
    own loopback source address (see :func:`loadtest.common.pod_address`), so
    nginx's ``ip_hash`` spreads the pods over the app instances as it spreads
    real pods. Each pod leases a batch, "works" (sleeps for a time drawn from
    ``--work``), reports with ``complete`` and asks for the next batch in the
    same call (``next``), until the master answers ``done``. With
    ``--crash-rate`` a pod may die mid-lease without reporting anything (like
    ``kill -9``); a replacement pod with a new name starts after
    ``--restart-delay``. At the end the job status and the results endpoint
    are checked: ``done + dead == total`` and exactly ``done`` distinct ids in
    the results (``total`` when nothing died).

``burst``
    C lease requests, each from its own connection and source address, all
    released at the same instant (:mod:`loadtest.burst`).

Examples::

    python -m loadtest.swarm --url http://127.0.0.1:8080 --pods 1000 \\
        --tasks 1000000 --batch 100 --work const:0 --timeout 120
    python -m loadtest.swarm --url http://127.0.0.1:8080 --pods 50 --tasks 5000 \\
        --batch 10 --work uniform:0.01:0.05 --crash-rate 0.05 --lease-seconds 3
    python -m loadtest.swarm burst --url http://127.0.0.1:8080 --requests 10000

Prints one JSON summary on stdout (``--out FILE`` also writes it, with the
time series used by the plots). Exit status 0 only if nothing was lost and
no request failed.
"""
import argparse
import asyncio
import collections
import json
import os
import random
import sys
import time

try:  # run as ``python -m loadtest.swarm`` or as a script
    from loadtest.common import (Admin, check_loopback_url, percentiles,
                                 pod_address, raise_nofile)
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from loadtest.common import (Admin, check_loopback_url, percentiles,
                                 pod_address, raise_nofile)


# --------------------------------------------------------------------------
# work-time distributions

def parse_work(spec):
    """``const:S``, ``uniform:A:B``, ``exp:MEAN``, ``lognormal:MEDIAN:SIGMA``
    (seconds per task) -> a function returning one draw."""
    kind, _, rest = spec.partition(":")
    args = [float(x) for x in rest.split(":") if x != ""]
    if kind == "const":
        s = args[0] if args else 0.0
        return lambda rng: s
    if kind == "uniform":
        a, b = args
        return lambda rng: rng.uniform(a, b)
    if kind == "exp":
        mean = args[0]
        return lambda rng: rng.expovariate(1.0 / mean) if mean > 0 else 0.0
    if kind == "lognormal":
        import math
        median, sigma = args
        mu = math.log(median)
        return lambda rng: rng.lognormvariate(mu, sigma)
    raise argparse.ArgumentTypeError("bad --work %r" % spec)


# --------------------------------------------------------------------------
# swarm

class Stats:
    def __init__(self):
        self.t0 = time.monotonic()
        self.lat = collections.defaultdict(list)        # kind -> [seconds]
        self.lat_t = collections.defaultdict(list)      # kind -> [t since start]
        self.done_t = []                                # (t, accepted) per complete
        self.errors = collections.Counter()             # "kind:code" -> n
        self.conn_errors = collections.Counter()        # retried transport errors
        self.answers = collections.Counter()            # lease answers: ok/wait/done
        self.complete = collections.Counter()           # accepted, duplicates, ...
        self.crashes = 0
        self.abandoned_tasks = 0
        self.failed_reported = 0
        self.requests = 0

    def now(self):
        return time.monotonic() - self.t0


#: Answers after which the swarm repeats a call (with the same key).
RETRY_STATUSES = (429, 502, 503, 504)


def backoff(attempt):
    """Seconds before retry ``attempt`` (1..6) of a call that got no answer."""
    return min(2.0, 0.05 * 2 ** attempt)


class Swarm:
    def __init__(self, args, job_id, history=None):
        """``history``: a list to append every request's record to (see
        :meth:`_record`), for loadtest.checker; None records nothing."""
        self.a = args
        self.history = history
        self.job = job_id
        self.stats = Stats()
        self.work = parse_work(args.work)
        self.rng = random.Random(args.seed)
        self.headers = {"Content-Type": "application/json"}
        if args.token:
            self.headers["Authorization"] = "Bearer " + args.token
        self.base = args.url.rstrip("/")
        self.stop = False
        self.seq = 0
        self.run_id = random.randrange(1 << 30)
        self.first_done_at = None
        self.last_accept_at = None
        self.pad = "x" * max(0, getattr(args, "result_bytes", 0) - 10)

    async def _post(self, session, kind, path, body, key=None):
        """POST with retries on transport errors, 429, 503 and 502/504.

        Every call the swarm makes is safe to repeat: complete and heartbeat
        are idempotent, and lease or complete-with-next carry an
        Idempotency-Key, so a retry whose first answer was lost (a 502 from a
        killed worker, a reset) gets the lease that answer carried instead
        of stranding it until it expires. Returns the decoded 200 answer, or
        None after a non-retryable error (counted in ``errors``).
        """
        import aiohttp

        st = self.stats
        data = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        headers = self.headers
        if key:
            # the same key on every retry of this call: a retried lease (or
            # complete with next) gets the lease the first try made, instead
            # of leaving that one orphaned until it expires
            headers = dict(headers, **{"Idempotency-Key": key})
        attempt = 0
        while True:
            # retried for as long as the run lasts (a pod would), each counted
            attempt = min(attempt + 1, 6)
            if self.stop:
                return None
            t = time.monotonic()
            try:
                async with session.post(self.base + path, data=data, headers=headers) as r:
                    payload = await r.read()
                    status = r.status
                    retry_after = r.headers.get("Retry-After")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                if self.history is not None:
                    self._record(kind, path, key, data, t, "exc:" + type(err).__name__)
                st.requests += 1
                st.conn_errors["%s:%s" % (kind, type(err).__name__)] += 1
                await asyncio.sleep(backoff(attempt) * (0.5 + self.rng.random()))
                continue
            if self.history is not None:
                self._record(kind, path, key, data, t, status, retry_after, payload)
            st.requests += 1
            dt = time.monotonic() - t
            st.lat[kind].append(dt)
            st.lat_t[kind].append(t - st.t0)
            if status == 200:
                try:
                    return json.loads(payload)
                except ValueError:
                    st.errors["%s:badjson" % kind] += 1
                    return None
            st.errors["%s:%d" % (kind, status)] += 1
            if status in RETRY_STATUSES:
                try:
                    wait = float(retry_after) if retry_after else backoff(attempt)
                except ValueError:
                    wait = 1.0
                await asyncio.sleep(min(wait, 5.0) * (0.5 + self.rng.random()))
                continue
            return None

    def _record(self, kind, path, key, data, t, status, retry_after=None, payload=None):
        """One request of the history: what was sent, when (wall clock, the
        clock Redis's TIME and so expires_at use) and what came back."""
        sent = time.time() - (time.monotonic() - t)
        self.history.append({"kind": kind, "path": path, "key": key, "body": data,
                             "sent": sent, "got": time.time(), "status": status,
                             "retry_after": retry_after,
                             "answer": payload.decode("utf-8", "replace")
                             if status == 200 and payload else None})

    def new_key(self, worker):
        self.seq += 1
        return "%s-%d-%d" % (worker, self.run_id, self.seq)

    async def lease(self, session, worker):
        body = {"worker": worker, "max_tasks": self.a.batch, "job": self.job}
        return await self._post(session, "lease", "/api/v1/lease", body, self.new_key(worker))

    async def pod_life(self, i, generation):
        """One pod's life; True if it crashed (and should be replaced)."""
        import aiohttp

        st = self.stats
        rng = random.Random((self.a.seed or 0) * 1000003 + i * 7919 + generation)
        worker = "pod-%05d" % i if generation == 0 else "pod-%05d-r%d" % (i, generation)
        connector = aiohttp.TCPConnector(local_addr=(self.a.addresses[i], 0), limit=2, ssl=False,
                                         force_close=False, enable_cleanup_closed=False)
        timeout = aiohttp.ClientTimeout(total=self.a.request_timeout)
        crashed = False
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            ans = await self.lease(session, worker)
            while not self.stop:
                if ans is None:  # an error answer: back off and ask again
                    await asyncio.sleep(0.2 + rng.random() * 0.3)
                    ans = await self.lease(session, worker)
                    continue
                status = ans.get("status")
                st.answers[status] += 1
                if status == "done":
                    if self.first_done_at is None:
                        self.first_done_at = st.now()
                    return False
                if status == "wait":
                    try:
                        ra = float(ans.get("retry_after", 1.0))
                    except (TypeError, ValueError):
                        ra = 1.0
                    await asyncio.sleep(min(ra, self.a.max_wait) * (0.5 + rng.random()))
                    ans = await self.lease(session, worker)
                    continue
                lease = ans["lease"]
                tasks = ans.get("tasks") or []
                work = sum(self.work(rng) for _ in tasks)
                if self.a.crash_rate and rng.random() < self.a.crash_rate:
                    # die part-way through, report nothing, drop the connection
                    await self._work(session, lease, work * rng.random())
                    st.crashes += 1
                    st.abandoned_tasks += len(tasks)
                    crashed = True
                    break
                await self._work(session, lease, work)
                # the body is built as text: the simulator shares the CPU with
                # the server, so it should spend as little of it as it can
                results = []
                for t in tasks:
                    if self.a.fail_rate and rng.random() < self.a.fail_rate:
                        results.append('{"id":%d,"ok":false,"error":"simulated failure"}' % t["id"])
                        st.failed_reported += 1
                    else:
                        p = t.get("payload")
                        if self.pad:  # a result of about --result-bytes bytes
                            value = '"%d%s"' % (t["id"], self.pad)
                        else:
                            value = p if type(p) is int else json.dumps(p)
                        results.append('{"id":%d,"ok":true,"result":%s}' % (t["id"], value))
                body = '{"results":[%s]%s}' % (",".join(results), "" if self.a.no_next else
                                               ',"next":{"max_tasks":%d}' % self.a.batch)
                ans2 = await self._post(session, "complete",
                                        "/api/v1/leases/%s/complete" % lease["id"], body,
                                        self.new_key(worker))
                if ans2 is None:
                    ans = None
                    continue
                for k in ("accepted", "duplicates", "retried", "dead", "ignored", "released"):
                    v = ans2.get(k)
                    if isinstance(v, int):
                        st.complete[k] += v
                acc = ans2.get("accepted") or 0
                now = st.now()
                st.done_t.append((now, acc))
                if acc or ans2.get("dead"):
                    self.last_accept_at = now
                nxt = ans2.get("next")
                ans = nxt if isinstance(nxt, dict) else await self.lease(session, worker)
        # leaving the session closes the connection: a crashed pod's lease is
        # simply abandoned; its replacement (a new name) starts a bit later
        return crashed

    async def pod(self, i):
        generation = 0
        while await self.pod_life(i, generation) and not self.stop:
            await asyncio.sleep(self.a.restart_delay)
            generation += 1

    async def _work(self, session, lease, seconds):
        """Sleep ``seconds``, heartbeating if the lease would expire meanwhile."""
        if seconds <= 0:
            return
        ls = float(lease.get("lease_seconds") or self.a.lease_seconds)
        step = max(0.5, ls / 3.0)
        while seconds > 0 and not self.stop:
            chunk = min(seconds, step)
            await asyncio.sleep(chunk)
            seconds -= chunk
            if seconds > 0:
                await self._post(session, "heartbeat", "/api/v1/leases/%s/heartbeat" % lease["id"], {})

    async def run(self):
        pods = [asyncio.ensure_future(self.pod(i)) for i in range(self.a.pods)]
        t0 = self.stats.now()
        done, pending = await asyncio.wait(pods, timeout=self.a.timeout)
        timed_out = bool(pending)
        self.stop = True
        for p in pending:
            p.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
        crashed_tasks = [p for p in done if not p.cancelled() and p.exception()]
        # makespan: until the last task was recorded done (or dead), i.e. the
        # job completed; pods_exit_s adds the tail of pods polling until "done"
        end = self.last_accept_at if self.last_accept_at is not None else self.stats.now()
        return {"makespan_s": round(end - t0, 3), "pods_exit_s": round(self.stats.now() - t0, 3),
                "timed_out": timed_out,
                "pod_exceptions": [repr(p.exception()) for p in crashed_tasks[:5]],
                "pod_exception_count": len(crashed_tasks)}


def throughput_series(done_t, bucket=0.5):
    """[(t, tasks/s)] from per-complete (t, accepted) pairs."""
    if not done_t:
        return []
    n = int(max(t for t, _ in done_t) / bucket) + 1
    acc = [0] * n
    for t, a in done_t:
        acc[int(t / bucket)] += a
    return [(round((k + 1) * bucket, 3), a / bucket) for k, a in enumerate(acc)]


def run_swarm(args):
    check_loopback_url(args.url)
    raise_nofile(args.pods * 2 + 1024)
    args.addresses = [pod_address(i) for i in range(args.pods)]
    admin = Admin(args.url, args.token, timeout=args.request_timeout * 4)
    created = False
    if args.job:
        job_id = args.job
        total = admin.status(job_id)["counts"]["total"]
    else:
        job = admin.create_range_job(args.name, args.tasks, batch_size=args.batch,
                                     lease_seconds=args.lease_seconds,
                                     max_attempts=args.max_attempts)
        job_id, total, created = job["id"], args.tasks, True
    swarm = Swarm(args, job_id)
    t_start = time.time()
    info = asyncio.run(swarm.run())
    st = swarm.stats
    summary = {
        "mode": "swarm", "url": args.url, "job": job_id, "pods": args.pods, "total": total,
        "batch": args.batch, "work": args.work, "crash_rate": args.crash_rate,
        "fail_rate": args.fail_rate, "started_at": t_start,
        "requests": st.requests, "errors": dict(st.errors), "error_count": sum(st.errors.values()),
        "conn_errors": dict(st.conn_errors), "conn_error_count": sum(st.conn_errors.values()),
        "answers": dict(st.answers), "complete": dict(st.complete),
        "crashes": st.crashes, "abandoned_tasks": st.abandoned_tasks,
        "failed_reported": st.failed_reported,
        "last_accept_s": swarm.last_accept_at, "first_done_s": swarm.first_done_at,
        "latency_ms": {k: percentiles(v) for k, v in st.lat.items()},
        "requests_by_kind": {k: len(v) for k, v in st.lat.items()},
    }
    summary.update(info)
    if summary["makespan_s"]:
        # tasks recorded per second; replaced below by done+dead from the job
        # itself (a result the server recorded on a re-run counts as a
        # "duplicate" in the answer, but it is done all the same)
        summary["tasks_per_s"] = round(st.complete["accepted"] / summary["makespan_s"], 1)
    if not args.no_verify:
        status = admin.wait_completed(job_id, timeout=30 if not info["timed_out"] else 2)
        counts = status.get("counts", {})
        summary["job_state"] = status.get("state")
        summary["counts"] = counts
        summary["invariant_ok"] = (counts.get("pending", 0) + counts.get("leased", 0) +
                                   counts.get("done", 0) + counts.get("dead", 0)) == total
        summary["lost"] = total - (counts.get("done", 0) + counts.get("dead", 0))
        if summary["makespan_s"] and not info["timed_out"]:
            summary["tasks_per_s"] = round((counts.get("done", 0) + counts.get("dead", 0))
                                           / summary["makespan_s"], 1)
        res = admin.results_check(job_id, total)
        summary["results"] = res
        summary["results_ok"] = (res["distinct"] == counts.get("done") == res["lines"]
                                 and res["bad"] == 0
                                 and (counts.get("dead", 0) > 0 or res["distinct"] == total))
        summary["ok"] = (summary["lost"] == 0 and summary["results_ok"] and summary["invariant_ok"]
                         and summary["job_state"] == "completed"
                         and summary["error_count"] == 0 and not info["timed_out"]
                         and summary["pod_exception_count"] == 0)
    else:
        summary["ok"] = summary["error_count"] == 0 and not info["timed_out"]
    if created and args.delete:
        admin.delete(job_id)
    series = {"throughput": throughput_series(st.done_t),
              "latency_samples": {k: list(zip(st.lat_t[k], v))[:: max(1, len(v) // 5000)]
                                  for k, v in st.lat.items()}}
    return summary, series


# --------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="swarm", choices=["swarm", "burst"])
    p.add_argument("--url", default=os.environ.get("JOBMASTER_URL", "http://127.0.0.1:8080"))
    p.add_argument("--token", default=os.environ.get("JOBMASTER_TOKEN"),
                   help="bearer token (admin, since the tool creates the job)")
    p.add_argument("--job", help="use this existing job instead of creating one")
    p.add_argument("--name", default="loadtest")
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--work", default="const:0",
                   help="seconds per task: const:S | uniform:A:B | exp:MEAN | lognormal:MEDIAN:SIGMA")
    p.add_argument("--crash-rate", type=float, default=0.0,
                   help="probability that a pod dies (kill -9) during a lease")
    p.add_argument("--fail-rate", type=float, default=0.0,
                   help="probability that a task is reported ok=false")
    p.add_argument("--restart-delay", type=float, default=0.5)
    p.add_argument("--lease-seconds", type=float, default=300)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--max-wait", type=float, default=2.0, help="cap on a 'wait' sleep")
    p.add_argument("--no-next", action="store_true", help="lease separately after each complete")
    p.add_argument("--result-bytes", type=int, default=0,
                   help="each result a JSON string of about this many bytes (0: the payload)")
    p.add_argument("--timeout", type=float, default=120.0, help="hard bound of the whole run (s)")
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--delete", action="store_true", help="delete the job afterwards")
    # burst
    p.add_argument("--requests", type=int, default=1000, help="burst: simultaneous requests")
    p.add_argument("--max-tasks", type=int, default=1, help="burst: max_tasks per lease")
    p.add_argument("--warm", action="store_true",
                   help="burst: connect everything first, then send all requests at once")
    p.add_argument("--out", help="write the summary and time series as JSON here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.mode == "burst":
        from loadtest.burst import run_burst

        summary, series = run_burst(args)
    else:
        summary, series = run_swarm(args)
    print(json.dumps(summary, indent=1, sort_keys=True))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"summary": summary, "series": series}, fh)
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
