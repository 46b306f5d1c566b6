"""The burst mode of ``python -m loadtest.swarm``: C lease requests, each from
its own connection and loopback source address, all released at the same
instant (an asyncio barrier; ``--warm`` connects first and releases only the
request bytes). Counts every answer that is not a 200 with a valid lease
answer, every connection error and timeout. Bounded by ``--timeout`` and
``--request-timeout``; loopback only.
"""
import asyncio
import collections
import json
import time

from loadtest.common import (Admin, check_loopback_url, host_port, percentiles, pod_address,
                             raise_nofile)


async def _burst(args, host, port, body_for):
    """Fire ``args.requests`` lease requests at the same instant."""
    n = args.requests
    go = asyncio.Event()
    ready = [0]
    all_ready = asyncio.Event()
    results = [None] * n
    lat = [None] * n
    auth = ("Authorization: Bearer %s\r\n" % args.token) if args.token else ""

    def request_bytes(i):
        body = body_for(i)
        return ("POST /api/v1/lease HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                "%sContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (host, port, auth, len(body), body)).encode()

    async def one(i):
        addr = pod_address(i)
        data = request_bytes(i)
        writer = None
        try:
            if args.warm:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(addr, 0)), args.request_timeout)
                ready[0] += 1
                if ready[0] == n:
                    all_ready.set()
                await go.wait()
                t = time.monotonic()
            else:
                ready[0] += 1
                if ready[0] == n:
                    all_ready.set()
                await go.wait()
                t = time.monotonic()
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(addr, 0)), args.request_timeout)
            writer.write(data)
            raw = await asyncio.wait_for(reader.read(-1), args.request_timeout)
            lat[i] = time.monotonic() - t
            head, _, body = raw.partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0].split()
            code = int(status_line[1]) if len(status_line) > 1 else 0
            if code != 200:
                results[i] = "http:%d" % code
                return
            if b"chunked" in head.lower():
                results[i] = "ok-chunked"
                return
            ans = json.loads(body)
            results[i] = "answer:%s" % ans.get("status")
        except asyncio.TimeoutError:
            results[i] = "timeout"
            ready_fix(i)
        except (OSError, ValueError, IndexError) as err:
            results[i] = "error:%s" % type(err).__name__
            ready_fix(i)
        finally:
            if writer is not None:
                writer.close()

    def ready_fix(i):
        if not all_ready.is_set() and not go.is_set():
            ready[0] += 1
            if ready[0] >= n:
                all_ready.set()

    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    try:
        await asyncio.wait_for(all_ready.wait(), args.timeout)
    except asyncio.TimeoutError:
        pass
    t0 = time.monotonic()
    go.set()
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    wall = time.monotonic() - t0
    for i, r in enumerate(results):
        if r is None:
            results[i] = "unfinished"
    return results, [x for x in lat if x is not None], wall


def run_burst(args):
    check_loopback_url(args.url)
    raise_nofile(args.requests + 1024)
    host, port = host_port(args.url)
    admin = Admin(args.url, args.token)
    created = False
    if args.job:
        job_id = args.job
    else:
        job = admin.create_range_job(args.name, args.requests * args.max_tasks,
                                     batch_size=args.max_tasks, lease_seconds=args.lease_seconds)
        job_id, created = job["id"], True
    body_for = lambda i: json.dumps({"worker": "burst-%05d" % i, "max_tasks": args.max_tasks,
                                     "job": job_id}, separators=(",", ":"))
    t_start = time.time()
    results, lat, wall = asyncio.run(_burst(args, host, port, body_for))
    c = collections.Counter(results)
    errors = {k: v for k, v in c.items() if not k.startswith("answer:")}
    summary = {"mode": "burst", "url": args.url, "job": job_id, "requests": args.requests,
               "warm": args.warm, "started_at": t_start, "answers": dict(c),
               "errors": errors, "error_count": sum(errors.values()),
               "wall_s": round(wall, 3), "latency_ms": percentiles(lat)}
    if created:
        st = admin.status(job_id)
        counts = st.get("counts", {})
        summary["counts"] = counts
        summary["leased_matches"] = counts.get("leased") == c.get("answer:ok", 0) * args.max_tasks
        if args.delete:
            admin.delete(job_id)
    summary["ok"] = summary["error_count"] == 0
    return summary, {"latency": sorted(lat)}
