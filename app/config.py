"""Configuration: defaults, then ``JOBMASTER_*`` environment, then a test dict.

Every setting is listed once here with why it has its default. The README's
configuration table is written from this module.
"""
import os
import socket

from jobmaster import protocol

#: Each setting: (name, default, parser, why).
SETTINGS = [
    ("REDIS_URL", "redis://127.0.0.1:6379/0", str,
     "where all job, task and lease state lives (in cluster mode: any node of the cluster)"),
    ("REDIS_MODE", "single", str,
     "single (one Redis, or a primary with replicas behind one address) or cluster (a Redis "
     "Cluster: each job lives in one hash slot, so jobs spread over the shards)"),
    ("KEY_PREFIX", "jm", str,
     "first part of every Redis key; lets several deployments share a Redis"),
    ("REDIS_POOL_SIZE", 32, int,
     "connections per process; a request waits for a free one rather than failing. Redis "
     "runs one command at a time, so more only adds connects and queueing: 32 cost ~20% "
     "less app CPU per task than 256 in a 1,000-pod run"),
    ("REDIS_POOL_TIMEOUT", 30.0, float,
     "seconds a request waits for a pooled connection before answering 503 (a 2-core "
     "machine saturated by 500 pods needed more than 5)"),
    ("REDIS_SOCKET_TIMEOUT", 5.0, float,
     "seconds a Redis call waits for a reply before answering 503 (a paused or stalled "
     "Redis); a reply that arrived while the process was too busy to read it is still "
     "read, so a saturated worker does not time out (app/store/connection.py)"),
    ("REDIS_READY_TIMEOUT", 1.0, float,
     "seconds /readyz waits for Redis to answer a PING before answering 503"),
    ("ADMIN_TOKENS", "", str,
     "comma-separated bearer tokens that may do everything"),
    ("WORKER_TOKENS", "", str,
     "comma-separated bearer tokens that may only lease, heartbeat, complete and release"),
    ("LEASE_SECRET", "", str,
     "key that lease ids are signed with (keyed BLAKE2b), so no lease id can be made up; unset: "
     "a random one made once in Redis and shared by every instance (set it when Redis "
     "keeps no data across restarts)"),
    ("INSTANCE", "", str,
     "name sent back in X-Served-By; defaults to host:pid"),
    ("MAX_BODY_BYTES", 64 * 1024 * 1024, int,
     "largest request body; larger ones get 413 before they are read"),
    ("MAX_ITEMS", 1_000_000, int,
     "most items one request may create or append"),
    ("ITEMS_CHUNK", 10_000, int,
     "items per Redis call when a large create (over 1 MiB of body) is stored in chunks: "
     "one call with a million items held the whole encoded list and Redis's argument "
     "table at once (a 51 MB create took an instance from 81 to 546 MB)"),
    ("MAX_TOTAL", 1_000_000_000, int,
     "most tasks one job may hold (task ids must stay exact in Lua's doubles)"),
    ("MAX_BATCH", protocol.MAX_BATCH_SIZE, int,
     "most tasks one lease may hold"),
    ("MAX_LEASE_SECONDS", 7 * 24 * 3600, int,
     "longest lease a job may ask for, or a heartbeat may extend one to"),
    ("MAX_RESULTS_PER_CALL", 10000, int,
     "most results one complete call may report"),
    ("MAX_RESULT_BYTES", 1024 * 1024, int,
     "largest encoded result or error of one task"),
    ("WAIT_SECONDS", 2.0, float,
     "base Retry-After for a 'wait' answer; jitter of up to 50% is added"),
    ("STALE_SECONDS", 30.0, float,
     "a lease, or the next lease of a complete, is not made for a request that waited "
     "longer than this inside the stack (nginx's X-Request-Start): its client has likely "
     "timed out (the client library waits 60 s, and a Redis call may add up to 30 s "
     "after this check) and retried, so the lease would hold its tasks for nobody until "
     "it expires; such a lease gets 503, such a complete records its results without a "
     "next lease; 0 turns the check off"),
    ("RECLAIM_LIMIT", 200, int,
     "most expired leases one script call reclaims, so no call stalls Redis"),
    ("LEASE_COMBINE", 64, int,
     "most lease requests for one job a process sends to Redis as one script call "
     "(requests that arrive while the previous call is in flight wait for the next; "
     "1 turns combining off)"),
    ("LEASE_GATHER_MS", 2.0, float,
     "under gevent, how long at most a process lets the lease requests it is already "
     "reading reach a combined call before sending it (it sends as soon as it has "
     "nothing else to do); 0 sends at once"),
    ("MONGO_URL", "", str,
     "MongoDB URL of the durable archive (results, job history, attempts, files); the "
     "database is the URL's path, default jobmaster. Unset: no archive, results stay in Redis"),
    ("MONGO_TIMEOUT", 5.0, float,
     "seconds to find the MongoDB server (and to connect) before an archive call fails; "
     "leasing never waits for it"),
    ("RETENTION_SECONDS", 7 * 24 * 3600, int,
     "with the archive: how long after a job finished its Redis state is kept (it is "
     "removed only once all of it is archived; the archive still answers for it)"),
    ("ARCHIVE_BATCH", 50, int,
     "outbox entries a drainer takes per call (one entry holds the results of one "
     "complete call, up to MAX_BATCH of them)"),
    ("ARCHIVE_CLAIM_SECONDS", 15.0, float,
     "an outbox batch taken but not acknowledged for this long (its drainer died, or its "
     "MongoDB write failed) is taken over by another drainer"),
    ("ARCHIVE_IDLE_SECONDS", 1.0, float,
     "how often a drainer looks at a running job with nothing waiting (a finished job: ten "
     "times as seldom); a busy outbox is drained without pause"),
    ("ARCHIVE_DRAINER", True, lambda raw: raw.strip().lower() not in ("0", "false", "no", "off"),
     "run the outbox drainer in this process (every server process does by default: "
     "nothing depends on any one of them)"),
    ("INSPECT_ATTEMPTS", 100, int,
     "with the archive: most earlier attempts of one task the task inspector reads from "
     "MongoDB (the newest ones), so one query stays small whatever a task went through"),
    ("RESULT_HOOK", "", str,
     "package.module:function called in the draining process with lists of result "
     "documents (archived ones, or accepted ones without an archive), at least once; an "
     "exception retries the batch with backoff"),
    ("MAX_FILE_BYTES", 1024 ** 3, int,
     "largest file a job may store in the archive (413 before it is read)"),
    ("METRICS_TOKEN", "", str,
     "bearer token a Prometheus scraper sends to see every job's series with its id and "
     "name (an admin token does too); set, a scrape without a token gets only the totals; "
     "unset, it gets job ids but no names"),
    ("METRICS_CACHE_SECONDS", 2.0, float,
     "how long a process answers /metrics with the same text (reading the job figures runs "
     "a status script per job): a flood of scrapes costs one read per window"),
    ("WEBHOOK_URL", "", str,
     "finish webhook of every job that names none of its own (http or https); empty: none"),
    ("WEBHOOK_SECRET", "", str,
     "HMAC-SHA256 key signing the default webhook's events (X-Jobmaster-Signature)"),
    ("WEBHOOK_TIMEOUT", 10.0, float,
     "seconds a webhook receiver has to answer before the attempt counts as failed"),
    ("WEBHOOK_GIVE_UP_SECONDS", 86400, int,
     "how long after a job finished its webhook is still retried (exponential backoff, "
     "at most an hour apart); then the event is abandoned"),
    ("BACKGROUND_SECONDS", 1.0, float,
     "how often each worker process's background loop looks for due webhook "
     "deliveries and schedule slots (jittered)"),
    ("LAUNCHER", "", str,
     "how POST /jobs/<id>/fleet starts workers: local (processes on this host; `make run` "
     "sets it) or kubernetes (a Kubernetes Job); empty: launching answers 501"),
    ("FLEET_URL", "", str,
     "the master's URL as launched workers reach it; empty: the URL the launch request "
     "came in on (right for local workers behind this nginx)"),
    ("FLEET_MAX_WORKERS", 10000, int,
     "most workers one fleet launch may ask for"),
    ("FLEET_LOCAL_MAX_WORKERS", 64, int,
     "most local worker processes one launch may start (they share this host's CPUs)"),
    ("FLEET_LOCAL_DIR", "", str,
     "where local workers write their logs (<dir>/<job>/<worker>.log); empty: "
     "<tmp>/jobmaster-fleet"),
    ("WORKER_IMAGE", "", str,
     "container image of Kubernetes workers (has `jobmaster` and your program); a launch "
     "may name another"),
    ("K8S_NAMESPACE", "", str,
     "namespace of Kubernetes fleets; empty: the pod's own namespace in-cluster, else "
     "the kubeconfig context's, else default"),
    ("PROMETHEUS_MULTIPROC_DIR", "", str,
     "directory for prometheus_client multiprocess files (per-process counters)"),
]


def _defaults():
    return {name: default for name, default, _parse, _why in SETTINGS}


def load(test_config=None):
    """Return the configuration mapping for one application."""
    config = _defaults()
    for name, default, parse, _why in SETTINGS:
        raw = os.environ.get("JOBMASTER_" + name)
        if raw is not None and raw != "":
            config[name] = parse(raw)
    if test_config:
        config.update(test_config)
    if not config["INSTANCE"]:
        config["INSTANCE"] = "%s:%d" % (socket.gethostname(), os.getpid())
    return config


def split_tokens(raw):
    """Parse a comma-separated token list, dropping blanks."""
    return [t.strip() for t in (raw or "").split(",") if t.strip()]
