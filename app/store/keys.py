"""Every Redis key jobmaster uses, built only here.

All keys of one job share the hash tag ``{<job>}`` so that, under Redis
Cluster, every per-job script touches a single slot. The two global keys are
indexes (hints): the per-job ``meta`` hash is the truth, and code that finds
an index entry without a job cleans it up.

Per job (``<prefix>:{<job>}:<name>``):

==========  ======  ==========================================================
name        type    holds
==========  ======  ==========================================================
meta        hash    name, state, created_at, finished_at (ms), sealed, kind
                    (range|items), start, total, cursor (ids below it were
                    handed out at least once), batch_size, lease_ms,
                    max_attempts, priority, params (raw JSON), command (raw JSON
                    argv list or string; absent: none), rate, rate_t
pending     zset    ids handed back (failed, expired, released, retried),
                    score = id; together with [cursor, total) they are the
                    pending tasks, so a fresh range job stores no task at all
owner       hash    id -> lease id, for every task held by an ordinary lease
                    (a span lease's tasks have none; see app/store/lua/lib.lua)
tries       hash    id -> times handed out, for tasks handed out more than
                    once (absent: once); dropped when the task is done
fails       hash    id -> failed or expired attempts (dropped when done)
leases      hash    lease id -> "<any 0|1>|<created ms>|<tasks>|<worker>",
                    <tasks> "a-b" (span lease of fresh ids a..b) or "id,id,..."
left        hash    lease id -> how many of its tasks it still owns
deadlines   zset    lease id -> expiry in ms of Redis TIME
items       hash    id -> raw JSON item (items jobs only); a large create
                    stores it in chunks before meta exists, under an expiry
                    that the create removes (stage.lua)
results     hash    id -> the task's NDJSON result line (done tasks)
dead        hash    id -> JSON {id, attempts, error, worker, at}
workers     hash    worker name -> JSON {d, f, x, s, r, rt} (done, failed,
                    expired, last seen, rate); leases held are counted
                    from the lease records
appends     hash    append token -> first id it added (makes appends retry-safe)
spans       zset    span lease id -> its first task id (finds the lease holding
                    a fresh task; spans never overlap)
gone        hash    lease id -> its last record (as in ``leases``), for leases
                    that expired or were released with tasks: a late result
                    is accepted only for the tasks its lease really held.
                    Bounded: a day, at most 100,000 per job (lib.lua)
gone_at     zset    lease id -> when it was remembered (ms), to prune ``gone``
done        string  bitmap, bit id set once task id is done (archive jobs only:
                    their results leave Redis, so "is it done?" and the done
                    count (meta ``ndone``) cannot come from ``results``)
outbox      stream  what waits for the archive / result hook (jobs made while
                    one was configured; meta ``outbox`` 1 archive, 2 hook):
                    entries ``r`` (NDJSON result lines of one complete call,
                    ``n`` of them) or ``a`` (one failed or expired attempt,
                    JSON); consumer group ``archive``; an entry is XACKed and
                    XDELed once archived, so it leaves Redis then (meta
                    ``archived`` counts the results archived)
gone_tries  hash    lease id -> "id:attempt,..." beside ``gone``: which attempt
                    each of its handed-back tasks ran as (absent: 1), so a
                    late result keeps its own attempt (pruned with ``gone``)
fleet       hash    launch ref -> JSON record of one fleet launch (launcher,
                    workers, host, pids or Kubernetes names, launched_at);
                    written by fleet.lua, read by any instance (DESIGN §10)
series      hash    throughput over time: '<p><bucket>d' / '<p><bucket>f' -> tasks
                    done / attempts failed in that bucket (p 's': 10 s buckets,
                    last 360; 'm': 5 min, last 2016), '<p>' -> newest bucket,
                    't0' -> first activity ms (lib.lua count_series)
==========  ======  ==========================================================

Global:

- ``<prefix>:jobs``   zset, job id -> creation time in µs (listing, newest first)
- ``<prefix>:active`` zset, job id -> priority, for jobs that are running or
  paused (lease without a job looks here)
- ``<prefix>:archiving`` zset, job id -> when a drainer should next look at
  its outbox (ms). Every job made with an outbox is added at creation (from
  Python, beside ``jobs``: a per-job script never touches a global key, so
  under Redis Cluster no script crosses slots) and stays until its Redis
  state is gone; drainers take the due ones, so a completing job needs no
  write to a global key. A busy outbox is due again at once, an idle running
  job after ARCHIVE_IDLE_SECONDS, a finished one after ten times that (a
  late result still reaches the archive).
- ``<prefix>:secret`` string, the key lease ids are signed with when
  ``JOBMASTER_LEASE_SECRET`` is not set: made once (SET NX) by the first
  process that needs it, so every instance shares it (app/domain/lease_ids.py)
"""

#: Order of the per-job keys as every Lua script receives them in KEYS.
JOB_KEYS = (
    "meta", "pending", "owner", "tries", "fails", "leases", "left",
    "deadlines", "items", "results", "dead", "workers", "appends", "spans",
    "gone", "gone_at", "done", "outbox", "gone_tries", "fleet", "series",
)


class Keys:
    """Builds key names under one prefix."""

    #: Jobs whose key lists are kept ready (every script call names 14 keys).
    CACHE = 4096

    def __init__(self, prefix="jm"):
        self.prefix = prefix
        self.jobs = "%s:jobs" % prefix
        self.active = "%s:active" % prefix
        self.archiving = "%s:archiving" % prefix
        self.secret = "%s:secret" % prefix
        self._jobs = {}

    def job(self, job_id):
        """All keys of one job, in :data:`JOB_KEYS` order (do not modify)."""
        keys = self._jobs.get(job_id)
        if keys is None:
            if len(self._jobs) >= self.CACHE:
                self._jobs.clear()
            base = "%s:{%s}:" % (self.prefix, job_id)
            keys = self._jobs[job_id] = tuple(base + name for name in JOB_KEYS)
        return keys

    def job_key(self, job_id, name):
        """One named key of a job (for reads outside scripts)."""
        return "%s:{%s}:%s" % (self.prefix, job_id, name)
