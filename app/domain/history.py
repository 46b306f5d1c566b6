"""Job history: jobs answered from the archive once their Redis state is gone
(DELETE, or RETENTION_SECONDS after they finished), their attempts, and
the dead-letter view's history.

A job leaves Redis only once every result it holds is in MongoDB: its
outbox is drained first, and the delete script refuses while anything is
left in it (a late result can arrive meanwhile).
"""
import time

from ..errors import NotConfigured, NotFound, Unavailable
from .archive import ArchiveUnavailable

NO_ARCHIVE = ("this needs the archive: set JOBMASTER_MONGO_URL "
              "(without it results stay in Redis and nothing else is kept)")


def require_archive(backend):
    if backend.archive is None:
        raise NotConfigured(NO_ARCHIVE)
    return backend.archive


def outbox_of(backend, job_id):
    """The job's outbox mode (scripts.OUTBOX_*)."""
    raw = backend.redis.hget(backend.keys.job_key(job_id, "meta"), "outbox")
    return int(raw or 0)


def save(backend, job_id, archived=False, unarchive=False, **extra):
    """Write the job's status document (and ``extra`` fields) to the
    archive's ``jobs``; ``archived``: its Redis state is about to go;
    ``unarchive``: it stays after all (over an archived document)."""
    from .jobs import status

    backend.archive.save_job(dict(status(backend, job_id), **extra), archived=archived,
                             unarchive=unarchive)


def retire(backend, job_id, **extra):
    """Move a job out of Redis into the archive. True when it is gone from
    Redis; False when results are still waiting (try again later).
    Raises ArchiveUnavailable when MongoDB cannot take them."""
    left = backend.drainer.drain_all(job_id)
    if left:
        return False
    try:
        save(backend, job_id, archived=True, **extra)
    except NotFound:
        return True
    if backend.ops.delete(job_id, only_if_archived=True) == "backlog":
        # a late result came in meanwhile: not yet
        save(backend, job_id, unarchive=True)
        return False
    keys = backend.keys
    with backend.redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.jobs, job_id)
        pipe.zrem(keys.active, job_id)
        pipe.zrem(keys.archiving, job_id)
        pipe.execute()
    return True


def delete(backend, job_id, tries=5):
    """DELETE of an archive job: archive everything, then remove it."""
    try:
        for attempt in range(tries):
            if retire(backend, job_id, deleted=True):
                return {"id": job_id, "deleted": True, "archived": True}
            time.sleep(0.05 * (attempt + 1))  # results still arriving (a running job)
    except ArchiveUnavailable as err:
        raise Unavailable("the archive is unreachable (%s); nothing was deleted, as its "
                          "results are not all archived yet" % err, retry_after=5) from None
    raise Unavailable("results are still arriving; nothing was deleted (pause or cancel "
                      "the job first)", retry_after=1)


def archived_status(backend, job_id):
    """The archived status document of a job gone from Redis, or NotFound."""
    if backend.archive is None:
        raise NotFound("no such job: %s" % job_id)
    doc = archive_read(lambda: backend.archive.job(job_id))
    if not doc or not doc.get("archived"):
        raise NotFound("no such job: %s" % job_id)
    doc.pop("_id", None)
    return doc


def list_archived(backend, limit):
    archive = require_archive(backend)
    return archive_read(lambda: archive.find("jobs", {"archived": True},
                                             sort=[("created_at", -1)], limit=limit))


def job_exists(backend, job_id):
    """'redis', 'archive', or NotFound."""
    if backend.redis.exists(backend.keys.job_key(job_id, "meta")):
        return "redis"
    archived_status(backend, job_id)
    return "archive"


def attempts(backend, job_id, task=None, limit=1000):
    """Failed and expired attempts of a job (of one task), by task and attempt."""
    archive = require_archive(backend)
    job_exists(backend, job_id)
    query = {"job": job_id}
    if task is not None:
        query["task"] = task
    docs = archive_read(lambda: archive.find("attempts", query,
                                             sort=[("task", 1), ("attempt", 1)], limit=limit,
                                             projection={"_id": 0, "job": 0}))
    return {"attempts": docs}


def histories(backend, job_id, tasks):
    """{task id: [attempt, ...]} for the dead-letter view; {} without an
    archive, or while it cannot be reached (the view still answers)."""
    if backend.archive is None or not tasks:
        return {}
    try:
        docs = backend.archive.find("attempts", {"job": job_id, "task": {"$in": list(tasks)}},
                                    sort=[("task", 1), ("attempt", 1)],
                                    projection={"_id": 0, "job": 0, "dead": 0})
    except ArchiveUnavailable:
        return {}
    out = {}
    for doc in docs:
        out.setdefault(doc.pop("task"), []).append(doc)
    return out


def archive_read(fn):
    """``fn()``, an unreachable archive becoming a 503."""
    try:
        return fn()
    except ArchiveUnavailable as err:
        raise Unavailable("the archive is unreachable (%s)" % err, retry_after=5) from None
