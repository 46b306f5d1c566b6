"""The durable archive in MongoDB (docs/contract.md §6), through pymongo.

Collections (names fixed by the contract):

- ``results``  one document per done task ``{job, task, attempt, worker, ok,
  result, finished_at}``, unique on ``(job, task)``;
- ``attempts`` one per failed or expired attempt ``{job, task, attempt,
  worker, error, at, dead}``, unique on ``(job, task, attempt)``;
- ``jobs``     one per job, ``_id`` = job id: its status document, written
  when the job finishes and when its Redis state goes (``archived: true``);
- GridFS bucket ``files`` (app/domain/files.py).

Writes are plain inserts under the unique indexes, ``ordered=False``: a
document that is already there (an outbox entry taken over from a drainer
that died after writing it) fails with a duplicate-key error, which means
"already archived" and is not an error. No upserts on the hot path: the
stand-in server used in tests and `make run` (nx-27017) handles inserts an
order of magnitude faster than bulk upserts.

The client is made on first use in the process that uses it (uWSGI and
gunicorn load the app after fork, and a MongoClient must never cross a
fork), and again if the process id changed.
"""
import json
import logging
import os
import threading

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
INSERT_CHUNK = 5000  # (nx-27017 inserts 5,000 at a time ~1.5x faster than 1,000)


class ArchiveUnavailable(Exception):
    """MongoDB cannot be reached or refused a write."""


class Archive:
    """The MongoDB side of one application (None when not configured)."""

    def __init__(self, config):
        self.url = config["MONGO_URL"]
        self.timeout_ms = int(config["MONGO_TIMEOUT"] * 1000)
        self._client = None
        self._pid = None
        self._lock = threading.Lock()
        self._indexed = False
        self._closed = False

    # -- connection ----------------------------------------------------

    @property
    def db(self):
        if self._closed:
            raise ArchiveUnavailable("the archive client is closed")
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._closed:
                    raise ArchiveUnavailable("the archive client is closed")
                if self._client is None or self._pid != os.getpid():
                    import pymongo

                    self._client = pymongo.MongoClient(
                        self.url, serverSelectionTimeoutMS=self.timeout_ms,
                        connectTimeoutMS=self.timeout_ms, socketTimeoutMS=60000,
                        appname="jobmaster")
                    self._pid = os.getpid()
                    self._indexed = False
        db = self._client.get_default_database("jobmaster")
        if not self._indexed:
            from pymongo.errors import PyMongoError

            try:
                self._ensure_indexes(db)
            except PyMongoError as err:
                raise ArchiveUnavailable("archive unreachable: %s" % type(err).__name__) from err
        return db

    def _ensure_indexes(self, db):
        import pymongo

        db.results.create_index([("job", pymongo.ASCENDING), ("task", pymongo.ASCENDING)],
                                unique=True)
        db.attempts.create_index([("job", pymongo.ASCENDING), ("task", pymongo.ASCENDING),
                                  ("attempt", pymongo.ASCENDING)], unique=True)
        db.jobs.create_index([("archived", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)])
        self._indexed = True

    #: /readyz's bound: readiness probes give up after a second or so, and an
    #: unreachable archive must not make the instance look unready.
    PING_SECONDS = 1.0

    def ping(self):
        """True when MongoDB answers within PING_SECONDS (or MONGO_TIMEOUT
        if shorter)."""
        import pymongo

        try:
            with pymongo.timeout(min(self.PING_SECONDS, self.timeout_ms / 1000.0)):
                self.db.client.admin.command("ping")
            return True
        except Exception:  # any failure means unreachable for /readyz
            return False

    def close(self):
        self._closed = True
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None

    # -- writes --------------------------------------------------------

    def insert(self, collection, docs):
        """Insert ``docs``; ones already there are skipped. Returns how many
        were new. Raises ArchiveUnavailable on any other failure."""
        from bson.errors import InvalidDocument
        from pymongo.errors import BulkWriteError, PyMongoError

        new = 0
        coll = self.db[collection]
        for i in range(0, len(docs), INSERT_CHUNK):
            chunk = docs[i:i + INSERT_CHUNK]
            try:
                new += len(coll.insert_many(chunk, ordered=False).inserted_ids)
            except BulkWriteError as err:
                details = err.details
                other = [e for e in details.get("writeErrors", ()) if e.get("code") != DUPLICATE_KEY]
                if other or details.get("writeConcernErrors"):
                    raise ArchiveUnavailable("archive write failed: %s" % (other[:1] or details)) from err
                new += details.get("nInserted", 0)
            except (TypeError, ValueError, OverflowError, InvalidDocument) as err:
                # A result BSON cannot hold (an integer beyond 64 bits, nesting
                # deeper than MongoDB allows) is kept as its JSON text instead.
                fixed = [_storable(d) for d in chunk]
                if all(a is b for a, b in zip(fixed, chunk)):
                    raise ArchiveUnavailable("archive write failed: %s" % err) from err
                new += self.insert(collection, fixed)
            except PyMongoError as err:
                raise ArchiveUnavailable("archive unreachable: %s" % type(err).__name__) from err
        return new

    def save_job(self, doc, archived=False, unarchive=False):
        """Write a job's status document (``_id`` = its id). A document not
        ``archived`` never replaces an archived one unless ``unarchive``: a
        drainer that read a finished job's status just before a DELETE
        archived it would otherwise write over it, and the job, gone from
        Redis, would no longer be found."""
        from pymongo.errors import DuplicateKeyError, PyMongoError

        stored = dict(doc, _id=doc["id"], archived=archived)
        where = {"_id": doc["id"]}
        if not (archived or unarchive):
            where["archived"] = {"$ne": True}
        try:
            self.db.jobs.replace_one(where, stored, upsert=True)
        except DuplicateKeyError:
            pass  # (the upsert met the archived document: it stays)
        except PyMongoError as err:
            raise ArchiveUnavailable("archive unreachable: %s" % type(err).__name__) from err

    # -- reads ---------------------------------------------------------

    def find(self, collection, query, sort=None, limit=0, projection=None):
        from pymongo.errors import PyMongoError

        try:
            cursor = self.db[collection].find(query, projection or {"_id": 0})
            if sort:
                cursor = cursor.sort(sort)
            if limit:
                cursor = cursor.limit(limit)
            return list(cursor)
        except PyMongoError as err:
            raise ArchiveUnavailable("archive unreachable: %s" % type(err).__name__) from err

    def job(self, job_id):
        """The archived status document of a job, or None."""
        docs = self.find("jobs", {"_id": job_id}, limit=1)
        return docs[0] if docs else None


def _storable(doc):
    """``doc`` with a result BSON cannot encode replaced by its JSON text."""
    import bson

    try:
        bson.encode(doc)
        return doc
    except Exception:
        out = dict(doc)
        out["result_json"] = json.dumps(out.pop("result", None))
        return out


def result_doc(job_id, line):
    """The archive document of one NDJSON result line (lib.lua result_line)."""
    raw = json.loads(line)
    doc = {"job": job_id, "task": raw["id"], "attempt": raw["attempt"], "worker": raw["worker"],
           "ok": raw["ok"]}
    if "result" in raw:
        doc["result"] = raw["result"]
    if "error" in raw:
        doc["error"] = raw["error"]
    doc["finished_at"] = raw["finished_at"]
    return doc


def attempt_doc(job_id, text):
    raw = json.loads(text)
    return {"job": job_id, "task": raw["task"], "attempt": raw["attempt"],
            "worker": raw.get("worker"), "error": raw.get("error"), "at": raw["at"],
            "dead": bool(raw.get("dead"))}


def result_line(doc):
    """The NDJSON line (docs/contract.md §3) of an archived result document."""
    out = {"id": doc["task"], "attempt": doc["attempt"], "worker": doc["worker"], "ok": doc["ok"]}
    if "result_json" in doc:
        out["result"] = json.loads(doc["result_json"])
    elif "result" in doc:
        out["result"] = doc["result"]
    if "error" in doc:
        out["error"] = doc["error"]
    out["finished_at"] = doc["finished_at"]
    return json.dumps(out, separators=(",", ":"))


def init_app(app, backend):
    """The archive and the outbox drainer, when configured; the drainer
    starts in this process (the app is loaded after fork) and, should the
    process fork again, in the child on its first request."""
    from .drain import Drainer, load_hook

    config = app.config
    hook = load_hook(config["RESULT_HOOK"])
    backend.archive = Archive(config) if config["MONGO_URL"] else None
    if backend.archive is None and hook is None:
        return
    backend.drainer = Drainer(backend, backend.archive, hook, config)
    if config["ARCHIVE_DRAINER"]:
        backend.drainer.ensure_started()
        app.before_request(backend.drainer.ensure_started)
