"""`flask --app wsgi sweep`: reclaim expired leases while nobody calls in.

Expired leases already come back inside every lease, complete, heartbeat and
status call, so nothing depends on this command; it only keeps counts and
metrics fresh during idle times (run it from a timer or cron if you like).
"""
import time

import click
from flask import current_app
from flask.cli import with_appcontext


def sweep_once(backend):
    """Run the reclaiming status script on every active job; return how many."""
    ids = backend.redis.zrange(backend.keys.active, 0, -1)
    with backend.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            backend.ops.status(job_id, client=pipe)
        backend.scripts.execute(pipe)
    return len(ids)


@click.command("sweep")
@click.option("--every", type=float, default=0.0, help="Repeat every N seconds (0: once).")
@click.option("--times", type=int, default=0, help="Stop after N sweeps (0: forever with --every).")
@with_appcontext
def sweep_command(every, times):
    """Reclaim expired leases of every active job."""
    backend = current_app.extensions["jobmaster.backend"]
    done = 0
    while True:
        n = sweep_once(backend)
        done += 1
        click.echo("swept %d job(s)" % n)
        if every <= 0 or (times and done >= times):
            return
        time.sleep(every)
