"""Job files in the archive's GridFS bucket ``files`` (docs/contract.md §6): the
seed's pods uploaded their stats files when they finished.

A file is stored as ``<job>/<name>`` with metadata ``{job, name, sha256,
uploaded_by, at}``; the body is streamed into GridFS in chunks while its
SHA-256 is computed, so a 1 GiB file never sits in memory. A name is
written once: a second upload is a 409 (checked before reading, and again
after writing, since two uploads may race: the earlier file stays).
"""
import hashlib
import logging
import re
import time

from ..errors import BadRequest, Conflict, NotFound, TooLarge, Unavailable
from .archive import ArchiveUnavailable
from .history import job_exists, require_archive

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
BUCKET = "files"
READ_CHUNK = 256 * 1024


def check_name(name):
    if not NAME.match(name or ""):
        raise BadRequest("a file name is 1-200 characters of letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return name


def _bucket(archive):
    import gridfs

    return gridfs.GridFSBucket(archive.db, bucket_name=BUCKET)


def _mongo(fn):
    from pymongo.errors import PyMongoError

    try:
        return fn()
    except (PyMongoError, ArchiveUnavailable) as err:
        raise Unavailable("the archive is unreachable (%s)" % type(err).__name__,
                          retry_after=5) from None


def _discard(fn):
    """Remove a partial or losing upload, best effort: the answer is the
    error that made us discard it (nx-27017, the test stand-in, cannot
    delete GridFS chunks; a real MongoDB can)."""
    try:
        fn()
    except Exception as err:  # any failure: the chunks stay behind, the file is not listed
        log.warning("could not discard a partial upload: %r", err)


def _find(archive, job_id, name=None):
    query = {"metadata.job": job_id}
    if name is not None:
        query["filename"] = "%s/%s" % (job_id, name)
    return list(archive.db[BUCKET + ".files"].find(query).sort("_id", 1))


def describe(doc):
    meta = doc.get("metadata") or {}
    return {"name": meta.get("name"), "size": doc.get("length"), "sha256": meta.get("sha256"),
            "uploaded_by": meta.get("uploaded_by"), "at": meta.get("at")}


def upload(backend, job_id, name, length, stream, uploaded_by):
    """Store a file; returns its description. ``length`` is the declared
    Content-Length (None when chunked); ``stream`` has ``read(n)``."""
    archive = require_archive(backend)
    limit = backend.config["MAX_FILE_BYTES"]
    check_name(name)
    job_exists(backend, job_id)
    if length is not None and length > limit:
        raise TooLarge("a file may hold at most %d bytes (JOBMASTER_MAX_FILE_BYTES)" % limit)
    if _mongo(lambda: _find(archive, job_id, name)):
        raise Conflict("job %s already has a file named %s" % (job_id, name))
    meta = {"job": job_id, "name": name, "uploaded_by": uploaded_by}
    sink = _mongo(lambda: _bucket(archive).open_upload_stream("%s/%s" % (job_id, name),
                                                               metadata=meta))
    digest, size = hashlib.sha256(), 0
    try:
        while True:
            chunk = stream.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise TooLarge("a file may hold at most %d bytes (JOBMASTER_MAX_FILE_BYTES)" % limit)
            digest.update(chunk)
            _mongo(lambda: sink.write(chunk))
        if length is not None and size != length:
            raise BadRequest("the body ended after %d of %d bytes" % (size, length))
        # (the metadata dict is the stream's own: it is written with the file)
        meta["sha256"] = digest.hexdigest()
        meta["at"] = round(time.time(), 3)
        _mongo(sink.close)
    except BaseException:
        _discard(sink.abort)
        raise
    stored = _mongo(lambda: _find(archive, job_id, name))
    if stored and stored[0]["_id"] != sink._id:  # another upload of the name won the race
        _discard(lambda: _bucket(archive).delete(sink._id))
        raise Conflict("job %s already has a file named %s" % (job_id, name))
    return describe({"length": size, "metadata": meta})


def list_files(backend, job_id):
    archive = require_archive(backend)
    job_exists(backend, job_id)
    return {"files": [describe(d) for d in _mongo(lambda: _find(archive, job_id))]}


def download(backend, job_id, name):
    """(description, iterator of byte chunks) of a stored file."""
    archive = require_archive(backend)
    check_name(name)
    job_exists(backend, job_id)
    docs = _mongo(lambda: _find(archive, job_id, name))
    if not docs:
        raise NotFound("job %s has no file named %s" % (job_id, name))
    source = _mongo(lambda: _bucket(archive).open_download_stream(docs[0]["_id"]))

    def chunks():
        with source:
            while True:
                chunk = source.readchunk()
                if not chunk:
                    return
                yield chunk
    return describe(docs[0]), chunks()
