"""Checks of docs/contract.md §4 read straight from Redis, shared by the tests."""


def holders(rds, keys, job_id):
    """{task id: lease id} for every leased task: owner fields, and the spans
    of span leases (app/store/lua/lib.lua), which hold their tasks without them."""
    k = lambda name: keys.job_key(job_id, name)  # noqa: E731
    held = {int(t): lid for t, lid in rds.hgetall(k("owner")).items()}
    for lid, record in rds.hgetall(k("leases")).items():
        tasks = record.split("|", 3)[2]
        if "-" in tasks:
            first, last = (int(x) for x in tasks.split("-"))
            for t in range(first, last + 1):
                assert t not in held, "task %d has an owner field and a span" % t
                held[t] = lid
    return held


def done_tasks(rds, keys, job_id, meta):
    """The done task ids: the results hash, or for an archive job (its results
    leave Redis) the `done` bitmap, whose count must match meta ndone."""
    k = lambda name: keys.job_key(job_id, name)  # noqa: E731
    if meta.get("outbox") != "1":
        return set(int(x) for x in rds.hkeys(k("results")))
    assert not rds.exists(k("results")), "an archive job keeps results in its hash"
    raw = rds.connection_pool.get_encoder().encode("")  # (the client may decode replies)
    raw = rds.execute_command("GETRANGE", k("done"), 0, -1, NEVER_DECODE=True) or raw
    done = {i * 8 + b for i, byte in enumerate(raw) for b in range(8) if byte & (0x80 >> b)}
    assert len(done) == int(meta.get("ndone") or 0), "ndone and the done bitmap disagree"
    return done


def check_job(rds, keys, job_id):
    """Assert that every task of the job is in exactly one state.

    Returns the counts by state. Reads the structures themselves, not the
    status document, so it also catches counts that add up by accident.
    """
    k = lambda name: keys.job_key(job_id, name)  # noqa: E731
    meta = rds.hgetall(k("meta"))
    total, cursor = int(meta["total"]), int(meta["cursor"])
    held = holders(rds, keys, job_id)
    pending = set(int(x) for x in rds.zrange(k("pending"), 0, -1))
    done = done_tasks(rds, keys, job_id, meta)
    dead = set(int(x) for x in rds.hkeys(k("dead")))
    leased = set(held)
    fresh = set(range(cursor, total))
    parts = [fresh, pending, leased, done, dead]
    assert sum(len(p) for p in parts) == total, "a task is in two states or none"
    assert set().union(*parts) == set(range(total)), "a task is lost or unknown"
    assert not (pending & set(range(cursor, total))), "handed-back id above the cursor"
    # Every held task belongs to a live lease record whose count matches.
    lefts = rds.hgetall(k("left"))
    deadlines = rds.zrange(k("deadlines"), 0, -1)
    records = rds.hgetall(k("leases"))
    per_lease = {}
    for lid in held.values():
        per_lease[lid] = per_lease.get(lid, 0) + 1
    for lid, n in per_lease.items():
        assert int(lefts[lid]) == n, "lease %s count drifted" % lid
        assert lid in deadlines and lid in records
    assert set(records) == set(per_lease), "a lease record outlived its tasks"
    # The span index names exactly the span leases, by their first task.
    spans = {lid: int(first) for lid, first in rds.zrange(k("spans"), 0, -1, withscores=True)}
    span_records = {lid: int(r.split("|", 3)[2].split("-")[0])
                    for lid, r in records.items() if "-" in r.split("|", 3)[2]}
    assert spans == span_records, "the span index and the span leases disagree"
    if meta["sealed"] == "1" and len(done) + len(dead) == total:
        assert meta["state"] in ("completed", "cancelled"), "a finished job did not complete"
    return {"pending": len(fresh) + len(pending), "leased": len(leased), "done": len(done),
            "dead": len(dead), "total": total}
