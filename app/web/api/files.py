"""Job files (archive only): upload (worker or admin), list and download (admin)."""
from flask import Blueprint, Response, g, jsonify, request

from ...domain import files
from ..auth import ADMIN, WORKER, requires
from ..openapi import describe
from ...store.backend import backend, check_job_id

bp = Blueprint("files", __name__, url_prefix="/api/v1/jobs")

_ERRORS = (400, 401, 403, 404, 501)


@bp.put("/<job_id>/files/<name>")
@requires(WORKER)
@describe("Store a file of the job (raw body, streamed into GridFS; once per name)",
          body={"type": "string", "format": "binary"}, body_content="application/octet-stream",
          ok="FILE", status=201,
          errors=_ERRORS + (409, 413))
def upload(job_id, name):
    b = backend()
    check_job_id(job_id)
    # The body may be far larger than MAX_BODY_BYTES; it is read in chunks.
    request.max_content_length = b.config["MAX_FILE_BYTES"]
    who = request.headers.get("X-Worker-ID", "")[:200] or g.get("role") or "anonymous"
    doc = files.upload(b, job_id, name, request.content_length,
                       request.stream, who)
    return jsonify(doc), 201


@bp.get("/<job_id>/files")
@requires(ADMIN)
@describe("The job's files: name, size, sha256, uploaded_by, at", ok="FILE_LIST",
          errors=_ERRORS)
def list_files(job_id):
    return jsonify(files.list_files(backend(), check_job_id(job_id)))


@bp.get("/<job_id>/files/<name>")
@requires(ADMIN)
@describe("Download one of the job's files", content="application/octet-stream",
          ok={"type": "string", "format": "binary"}, errors=_ERRORS)
def download(job_id, name):
    doc, chunks = files.download(backend(), check_job_id(job_id), name)
    response = Response(chunks, mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(doc["size"])
    response.headers["X-Content-SHA256"] = doc["sha256"] or ""
    response.headers["Content-Disposition"] = 'attachment; filename="%s"' % name
    return response
