"""Small helpers for tests that talk to the API through Flask's test client."""
import json

from tests.support.procs import wait_until


def make_job(client, total=10, headers=None, **settings):
    body = {"name": settings.pop("name", "job"), "tasks": settings.pop("tasks", {"range": [0, total]})}
    body.update(settings)
    r = client.post("/api/v1/jobs", json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def lease(client, worker="w", job=None, max_tasks=None, headers=None):
    body = {"worker": worker}
    if job:
        body["job"] = job
    if max_tasks:
        body["max_tasks"] = max_tasks
    r = client.post("/api/v1/lease", json=body, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def complete(client, lease_id, results, headers=None, status=200, **extra):
    r = client.post("/api/v1/leases/%s/complete" % lease_id, json={"results": results, **extra},
                    headers=headers)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def ok_all(tasks, fn=lambda t: t["payload"]):
    return [{"id": t["id"], "ok": True, "result": fn(t)} for t in tasks]


def status(client, job_id):
    r = client.get("/api/v1/jobs/" + job_id)
    assert r.status_code == 200
    return r.get_json()


def results(client, job_id):
    r = client.get("/api/v1/jobs/%s/results" % job_id)
    assert r.status_code == 200
    assert r.mimetype == "application/x-ndjson"
    return [json.loads(line) for line in r.get_data(as_text=True).splitlines()]


def expire_now(rds, keys, job_id, lease_id):
    """Move a lease's deadline into the past (time passing, without a sleep)."""
    assert rds.zadd(keys.job_key(job_id, "deadlines"), {lease_id: 0}, xx=True, ch=True) == 1


def await_expiry(client, job_id, leased=0):
    """Wait until the job shows `leased` tasks (expiry judged by Redis TIME)."""
    return wait_until(lambda: status(client, job_id)["counts"]["leased"] == leased,
                      timeout=10, what="lease expiry")


def drain_round_now(backend):
    """One drain round with every job due now (the drainer itself looks at
    an idle job only every so often); returns the outbox entries archived."""
    key = backend.keys.archiving
    due = {job_id: 0 for job_id in backend.redis.zrange(key, 0, -1)}
    if due:
        backend.redis.zadd(key, due, xx=True)
    return backend.drainer.drain_round()
