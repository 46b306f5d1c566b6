"""The peer measurement: N no-op tasks through Celery with a Redis broker.

Celery 5.7 (pinned in loadtest/requirements.txt), Redis broker on this
machine (the same redis-server as jobmaster in ``make bench``, another
database number), results ignored, Celery's defaults otherwise (prefork pool
with one process per core, early ack, prefetch multiplier 4).

Steps: publish N ``noop`` tasks to a fresh queue, start one worker, time how
long it takes to drain the queue (the list and kombu's ``unacked`` hash both
empty), stop the worker by its PID (and its process group, which it alone
is in). Bounded by ``--timeout``.

    python -m loadtest.peers.celery_noop --broker redis://127.0.0.1:6379/1 --tasks 20000

Prints a JSON summary: ``drain_tasks_per_s`` is the figure compared with
jobmaster's no-op tasks/s.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from celery import Celery

BROKER = os.environ.get("CELERY_NOOP_BROKER", "redis://127.0.0.1:6379/1")
QUEUE = os.environ.get("CELERY_NOOP_QUEUE", "jm-bench-noop")

app = Celery("celery_noop", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
)


@app.task(name="noop")
def noop(i):
    """Does nothing, like jobmaster's no-op load test tasks."""
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description="Celery no-op tasks/s with the Redis broker")
    p.add_argument("--broker", default=BROKER)
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    p.add_argument("--pool", default="prefork")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--out")
    args = p.parse_args(argv)

    import redis

    host = args.broker.split("//", 1)[1].split(":", 1)[0].split("/", 1)[0]
    if not (host == "localhost" or host.startswith("127.")):
        raise SystemExit("refusing a non-loopback broker")
    queue = "%s-%d" % (QUEUE, os.getpid())
    r = redis.Redis.from_url(args.broker)
    env = dict(os.environ, CELERY_NOOP_BROKER=args.broker, CELERY_NOOP_QUEUE=queue)
    app.conf.broker_url = args.broker
    app.conf.task_default_queue = queue

    # 1. publish
    t0 = time.monotonic()
    with app.producer_or_acquire() as producer:
        for i in range(args.tasks):
            noop.apply_async((i,), queue=queue, producer=producer)
    publish_s = time.monotonic() - t0
    queued = r.llen(queue)

    # 2. drain with one worker
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv_w = [sys.executable, "-m", "celery", "-A", "loadtest.peers.celery_noop", "worker",
              "-Q", queue, "-c", str(args.concurrency), "-P", args.pool, "-l", "WARNING",
              "--without-gossip", "--without-mingle", "--without-heartbeat", "-n",
              "noop-%d@localhost" % os.getpid()]
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "celery-noop-%d.log" % os.getpid()), "wb")
    t_start = time.monotonic()
    worker = subprocess.Popen(argv_w, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    first = None
    samples = []
    timed_out = False
    try:
        deadline = t_start + args.timeout
        while True:
            left = r.llen(queue) + r.hlen("unacked")
            now = time.monotonic()
            samples.append((round(now - t_start, 3), left))
            if first is None and left < queued:
                first = now
            if left == 0:
                end = now
                break
            if now > deadline or worker.poll() is not None:
                end = now
                timed_out = True
                break
            time.sleep(0.02)
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
        except ProcessLookupError:
            pass
        log.close()
        r.delete(queue)
    drain_s = end - (first or t_start)
    summary = {
        "peer": "celery", "celery": __import__("celery").__version__,
        "kombu": __import__("kombu").__version__, "broker": args.broker,
        "pool": args.pool, "concurrency": args.concurrency, "tasks": args.tasks,
        "queued": queued, "publish_s": round(publish_s, 3),
        "publish_per_s": round(args.tasks / publish_s, 1) if publish_s else None,
        "startup_s": round((first or end) - t_start, 3), "drain_s": round(drain_s, 3),
        "drain_tasks_per_s": round(args.tasks / drain_s, 1) if drain_s > 0 and not timed_out else None,
        "end_to_end_per_s": round(args.tasks / (publish_s + end - t_start), 1),
        "timed_out": timed_out,
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"summary": summary, "samples": samples}, fh)
    return 0 if not timed_out else 1


if __name__ == "__main__":
    sys.exit(main())
