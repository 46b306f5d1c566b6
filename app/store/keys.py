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
                    max_attempts, priority, params (raw JSON);
                    optional settings: max_dead, backoff_ms, batching,
                    speculate (1), task_timeout (s), schedule (its id),
                    command (raw JSON argv list or string; absent: none),
                    webhook (JSON {url, secret}; '' = the default), and the
                    finish webhook's delivery: wh_state, wh_attempts,
                    wh_error, wh_seq (finishes so far, for the event id)
pending     zset    ids handed back (failed, expired, released, retried),
                    score = id; together with [cursor, total) they are the
                    pending tasks, so a fresh range job stores no task at all
owner       hash    id -> lease id, for every task held by an ordinary lease
                    (a span lease's tasks have none; see app/store/lua/lib.lua)
tries       hash    id -> times handed out, for tasks handed out more than
                    once (absent: once); dropped when the task is done
fails       hash    id -> failed or expired attempts (dropped when done)
leases      hash    lease id -> "<flags>|<created ms>|<tasks>|<worker>", flags
                    1 = any-job, +2 = a speculative copy (holds no task);
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
backoff     zset    id -> when (ms) a failed task may be leased again
                    (retry_backoff); these count as pending
shun        hash    id -> the worker whose attempt last failed (skips it once)
askers      zset    worker -> last lease request (ms); the job's active
                    workers are those of the last lease length
born        zset    lease id -> created (ms), speculate jobs only (finds
                    stragglers; entries of closed leases dropped when read)
copies      hash    id -> its speculative copy's lease id
durations   list    lifetimes (ms) of the last 101 leases closed by a
                    complete, speculate jobs only (their median)
tokens      hash    sha256 of a per-job worker token -> its expiry (ms);
                    token_issue.lua, token_check.lua (dies with the job)
fleet       hash    launch ref -> JSON record of one fleet launch (launcher,
                    workers, host, pids or Kubernetes names, launched_at);
                    written by fleet.lua, read by any instance (docs/contract.md §10)
series      hash    throughput over time: '<p><bucket>d' / '<p><bucket>f' -> tasks
                    done / attempts failed in that bucket (p 's': 10 s buckets,
                    last 360; 'm': 5 min, last 2016), '<p>' -> newest bucket,
                    't0' -> first activity ms (lib.lua count_series)
==========  ======  ==========================================================

Per job, outside JOB_KEYS (no script touches it):

- ``<prefix>:{<job>}:whlock`` string, the token of whoever is delivering the
  job's webhook now: a redis-py Lock (``SET NX PX``, released by its owner
  only; app/domain/webhooks.py), expires by itself

Per schedule (``<prefix>:sched:{<schedule>}``, its own hash tag):

- ``<prefix>:sched:{<id>}`` hash, name, cron, timezone, job (the job body,
  JSON), created_at, next_run, last_job, last_slot (ms)
- ``<prefix>:sched:{<id>}:slot:<ms>`` string, the job id of that slot: the
  guard one process takes (``SET NX``) to make the slot's job

Global:

- ``<prefix>:jobs``   zset, job id -> creation time in µs (listing, newest first)
- ``<prefix>:active`` zset, job id -> priority, for jobs that are running or
  paused (lease without a job looks here)
- ``<prefix>:webhooks`` zset, job id -> when (ms) its finish webhook is next
  looked at, for every job that has one and has not had it delivered; a
  deliverer claims a due job with its ``whlock`` (a lease-like lock: a
  crashed deliverer's job comes due again), see app/domain/webhooks.py.
  Touched alone (one key per command or script), never with a job's keys.
- ``<prefix>:schedules`` zset, schedule id -> its next slot (ms): the due
  schedules are one ZRANGEBYSCORE away (app/domain/schedules.py)
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

Under Redis Cluster (``REDIS_MODE=cluster``) each job's keys live in the one
slot of its tag, so jobs spread over the shards while every per-job script
and MULTI stays on one node. A global key is one key in one slot of its own:
a command names one global key, or one job's keys, never both and never two
globals (redis-py's cluster pipeline sends each command to its node, so a
pipeline may mix them; a script or MULTI may not). A new global index
(schedules, tokens, an archive backlog) follows the same rule: a hint beside
the per-job truth, written by its own command after or before the job's
script, repaired by whoever finds it stale. An index that must grow past
one node's memory or CPU is split into N keys by a hash of the member
(``<prefix>:active:{<n>}``), which none needs today: ``jobs`` holds one
member per job.
"""

#: Order of the per-job keys as every Lua script receives them in KEYS.
JOB_KEYS = (
    "meta", "pending", "owner", "tries", "fails", "leases", "left",
    "deadlines", "items", "results", "dead", "workers", "appends", "spans",
    "gone", "gone_at", "done", "outbox", "gone_tries",
    "backoff", "shun", "askers", "born", "copies", "durations", "tokens", "fleet", "series",
)


class Keys:
    """Builds key names under one prefix."""

    #: Jobs whose key lists are kept ready (every script call names 14 keys).
    CACHE = 4096

    def __init__(self, prefix="jm"):
        self.prefix = prefix
        self.jobs = "%s:jobs" % prefix
        self.active = "%s:active" % prefix
        self.webhooks = "%s:webhooks" % prefix
        self.schedules = "%s:schedules" % prefix
        self.archiving = "%s:archiving" % prefix
        self.secret = "%s:secret" % prefix
        self._jobs = {}

    def schedule(self, schedule_id):
        """A schedule's hash."""
        return "%s:sched:{%s}" % (self.prefix, schedule_id)

    def schedule_slot(self, schedule_id, slot_ms):
        """The guard of one slot of a schedule (same hash tag as the schedule)."""
        return "%s:sched:{%s}:slot:%d" % (self.prefix, schedule_id, slot_ms)

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
