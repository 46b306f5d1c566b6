"""The finish webhook (DESIGN.md §7): one signed ``job.finished`` event per
finished job, delivered at least once by whichever instance gets to it."""


def watch(backend, job_id, due_ms=0):
    """Put a job with a webhook in the global index (looked at from ``due_ms``)."""
    backend.redis.zadd(backend.keys.webhooks, {job_id: due_ms})
