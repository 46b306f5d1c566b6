"""A job's throughput over time (``GET /jobs/<id>/series``) and the rate,
ETA and makespan every status document shows, both from the per-job series
that ``count_series`` (``app/store/lua/lib.lua``) keeps in Redis.

Rate while a job runs: tasks done in the 10-second buckets of about the last
minute, divided by the time those buckets cover (from the job's first
activity, if that is later), so a job that ran 2,000 tasks in two seconds
reads ~1,000/s, not 2,000/60. A finished job shows its average rate over
its active span (first activity to finish) and its makespan (created to
finished); neither decays afterwards.
"""
from jobmaster import protocol

from ..errors import BadRequest

#: The resolutions of lib.lua's SERIES (10 s and 5 min buckets).
RESOLUTIONS = ("s", "m")
FINISHED = protocol.JOB_FINAL_STATES


def figures(state, counts, created_at, finished_at, recent):
    """(rate, eta_seconds, makespan_seconds) from a status and a
    :class:`replies.SeriesRecent`."""
    if recent is None:
        return 0.0, None, None
    now, t0, done, since = recent.now_ms, recent.t0_ms, recent.done, recent.since_ms
    remaining = counts["pending"] + counts["leased"]
    if state in FINISHED and finished_at is not None:
        makespan = round(max(0.0, finished_at - created_at), 3)
        active = finished_at - t0 / 1000.0 if t0 >= 0 else 0
        rate = counts["done"] / active if active > 0 else 0.0
        return round(rate, 3), (0.0 if state == "completed" else None), makespan
    span = max(1.0, (now - since) / 1000.0)  # at least a second: no 1-ms spikes
    rate = done / span if t0 >= 0 else 0.0
    eta = round(remaining / rate, 1) if state == "running" and rate > 0 else None
    return round(rate, 3), eta, None


def document(backend, job_id, resolution=None):
    """GET /jobs/<id>/series: done and failed per bucket, oldest first."""
    if resolution is not None and resolution not in RESOLUTIONS:
        raise BadRequest("?resolution must be one of %s" % ", ".join(RESOLUTIONS))
    pts = backend.ops.series_points(job_id, resolution or "")
    return {"job": job_id, "resolution": pts.resolution, "interval_seconds": pts.width_ms / 1000.0,
            "start": pts.first * pts.width_ms / 1000.0, "now": pts.now_ms / 1000.0,
            "first_activity": pts.t0_ms / 1000.0 if pts.t0_ms >= 0 else None,
            "done": pts.done, "failed": pts.failed}
