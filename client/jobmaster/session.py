"""The HTTP session: one method per API call, with timeouts and retries.

Retry rules (see :mod:`jobmaster.retry` for the arithmetic):

- **503 and 429** are retried for every request: the server promises a
  rejected request changed nothing. ``Retry-After`` is honoured.
- **Connection errors** before the request left (refused, connect timeout)
  are retried for every request.
- **Connection errors after the request may have arrived** (reset, read
  timeout, 502/504 from nginx) are retried only for calls that are safe to
  repeat: reads, lease, heartbeat, complete (the server keeps the first
  result of a task and counts a repeat as a duplicate), release, pause,
  resume, cancel. Creating a job is not repeated then, since that could
  create it twice; the error is raised instead.

Retries stop after ``retry_seconds`` (per call) and the last error is
raised as a :class:`~jobmaster.errors.TransportError` or
:class:`~jobmaster.errors.APIError`.
"""
import json
import logging
import os
import secrets
import time

import requests

from . import protocol
from . import errors
from .retry import Backoff, parse_retry_after

log = logging.getLogger("jobmaster.client")

#: (connect, read) timeouts in seconds for one HTTP request.
DEFAULT_TIMEOUT = (5.0, 60.0)
#: How long, in total, one call keeps retrying before it gives up.
DEFAULT_RETRY_SECONDS = 120.0
#: Statuses after which the request may be repeated if it is idempotent.
_MAYBE_SENT_STATUSES = (502, 504)
#: Statuses the server answers without changing anything.
_ALWAYS_RETRY_STATUSES = (429, 503)

USER_AGENT = "jobmaster-client/1"


class Client:
    """A connection to one jobmaster master.

    ``url`` and ``token`` default to ``$JOBMASTER_URL`` (else
    ``http://127.0.0.1:8080``) and ``$JOBMASTER_TOKEN``. The client is safe
    to share between threads (requests' connection pool is), and may be used
    as a context manager to close its connections.

    >>> client = Client("http://master:8080", token="s3cret")
    >>> job = client.create_job("sims", range=(0, 1000), params={"build": 42})
    >>> client.job(job["id"])["counts"]
    """

    def __init__(self, url=None, token=None, timeout=DEFAULT_TIMEOUT,
                 retry_seconds=DEFAULT_RETRY_SECONDS, backoff=None, sleep=None,
                 session=None):
        self.url = (url or os.environ.get(protocol.ENV_URL) or protocol.DEFAULT_URL).rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.token = token if token is not None else os.environ.get(protocol.ENV_TOKEN) or None
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.backoff = backoff or Backoff()
        self._sleep = sleep or time.sleep
        self.http = session or requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        self.http.headers["Accept"] = "application/json"
        if self.token:
            self.http.headers["Authorization"] = "Bearer " + self.token

    # ------------------------------------------------------------------ core

    def close(self):
        """Close pooled connections."""
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, body=None, params=None, idempotent=True,
                retry_seconds=None, stream=False, data=None, headers=None):
        """Send one API request with retries; return the ``requests.Response``.

        ``body`` is sent as JSON. A 2xx answer is returned as is; an error
        answer raises the matching :class:`~jobmaster.errors.APIError`.
        """
        budget = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = time.monotonic() + budget
        url = self.url + path
        kwargs = {"params": params, "timeout": self.timeout, "stream": stream,
                  "headers": headers}
        if body is not None:
            kwargs["data"] = json.dumps(body, separators=(",", ":"))
            kwargs["headers"] = dict(headers or {}, **{"Content-Type": "application/json"})
        elif data is not None:
            kwargs["data"] = data
        failures = 0
        while True:
            retry_after = None
            try:
                response = self.http.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as err:
                sent = not _surely_unsent(err)
                if sent and not idempotent:
                    raise errors.TransportError(
                        "%s %s: %s (not retried: the server may have acted on it)"
                        % (method, path, _describe(err))) from None
                failure = errors.TransportError("cannot reach %s: %s" % (self.url, _describe(err)))
            else:
                if response.status_code < 400:
                    return response
                failure = _api_error(response)
                retryable = response.status_code in _ALWAYS_RETRY_STATUSES or (
                    idempotent and response.status_code in _MAYBE_SENT_STATUSES)
                response.close()
                if not retryable:
                    raise failure
                retry_after = failure.retry_after
            failures += 1
            delay = self.backoff.compute(failures, retry_after)
            if time.monotonic() + delay > deadline:
                raise failure
            log.info("%s %s failed (%s); retry %d in %.2fs", method, path, failure,
                        failures, delay)
            self._sleep(delay)

    def call(self, method, path, body=None, **kwargs):
        """Like :meth:`request` but return the decoded JSON body (or None)."""
        response = self.request(method, path, body=body, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise errors.ServerError(response.status_code, "bad_json",
                                     "the server sent a body that is not JSON: %r"
                                     % response.text[:200],
                                     request_id=response.headers.get("X-Request-ID")) from None

    # ------------------------------------------------------------- admin API

    def create_job(self, name, range=None, items=None, params=None, batch_size=None,
                   lease_seconds=None, max_attempts=None, priority=None, sealed=None,
                   **settings):
        """Create a job; return its status document (``["id"]`` is the job id).

        Give exactly one of ``range=(start, stop)`` (payloads start..stop-1)
        or ``items=[...]`` (one task per JSON item). Further job settings
        go by name (``max_dead``, ``retry_backoff``, ``task_timeout``,
        ``batching``, ``speculate``, ``webhook={"url", "secret"}``, and
        ``command``: an argv list, or a string for ``sh -c``, ``{}`` the
        payload, what launched workers run per task); None leaves one at
        the server's default. This call is not retried once the request may
        have reached the server.
        """
        if (range is None) == (items is None):
            raise ValueError("give exactly one of range=(start, stop) or items=[...]")
        body = {"name": name,
                "tasks": {"range": [int(range[0]), int(range[1])]} if range is not None
                else {"items": list(items)}}
        for key, value in (("params", params), ("batch_size", batch_size),
                           ("lease_seconds", lease_seconds), ("max_attempts", max_attempts),
                           ("priority", priority), ("sealed", sealed), *settings.items()):
            if value is not None:
                body[key] = value
        return self.call("POST", protocol.jobs_path(), body, idempotent=False)

    def job_token(self, job_id, ttl_seconds=None):
        """A worker token valid for this job only: ``{"token", "job", "expires_at"}``."""
        body = {} if ttl_seconds is None else {"ttl_seconds": ttl_seconds}
        return self.call("POST", protocol.job_path(job_id, "tokens"), body, idempotent=False)

    def revoke_tokens(self, job_id):
        """Revoke every per-job token of a job: ``{"revoked": n}``."""
        return self.call("DELETE", protocol.job_path(job_id, "tokens"))

    def add_tasks(self, job_id, items):
        """Append items to an unsealed job; return ``{"added", "first_id", "total"}``.

        An ``Idempotency-Key`` makes a retried upload add its items once.
        """
        return self.call("POST", protocol.job_path(job_id, "tasks"), list(items),
                         headers={"Idempotency-Key": _new_key()})

    def seal(self, job_id):
        """Seal a job: no more items; it can now complete."""
        return self.call("POST", protocol.job_path(job_id, "seal"))

    def jobs(self):
        """All jobs' status documents, newest first."""
        return self.call("GET", protocol.jobs_path())["jobs"]

    def job(self, job_id):
        """One job's status document (raises NotFound)."""
        return self.call("GET", protocol.job_path(job_id))

    def pause(self, job_id):
        """Stop handing out the job's tasks (leases already out continue)."""
        return self.call("POST", protocol.job_path(job_id, "pause"))

    def resume(self, job_id):
        """Hand out a paused job's tasks again."""
        return self.call("POST", protocol.job_path(job_id, "resume"))

    def cancel(self, job_id):
        """Cancel a job for good: nothing more is handed out."""
        return self.call("POST", protocol.job_path(job_id, "cancel"))

    def delete(self, job_id):
        """Delete a job and all its state."""
        return self.call("DELETE", protocol.job_path(job_id))

    def iter_results(self, job_id, chunk_size=65536):
        """Yield the job's results as raw NDJSON lines (bytes, no newline), streamed."""
        response = self.request("GET", protocol.job_path(job_id, "results"), stream=True)
        with response:
            for line in response.iter_lines(chunk_size=chunk_size):
                if line:
                    yield line

    def iter_results_page(self, job_id, after=None, limit=None, ok=None, chunk_size=65536):
        """Like :meth:`iter_results`, from after task id ``after``, at most
        ``limit`` lines, only successes (``ok=True``) or failures (``False``)."""
        params = {}
        if after is not None:
            params["after"] = int(after)
        if limit is not None:
            params["limit"] = int(limit)
        if ok is not None:
            params["ok"] = "true" if ok else "false"
        response = self.request("GET", protocol.job_path(job_id, "results"), stream=True,
                                params=params)
        with response:
            for line in response.iter_lines(chunk_size=chunk_size):
                if line:
                    yield line

    def attempts(self, job_id, task=None):
        """Failed and expired attempts of a job (needs the server's archive)."""
        params = {} if task is None else {"task": int(task)}
        return self.call("GET", protocol.job_path(job_id, "attempts"), params=params)["attempts"]

    def files(self, job_id):
        """The job's files: [{name, size, sha256, uploaded_by, at}]."""
        return self.call("GET", protocol.job_path(job_id, "files"))["files"]

    def upload_file(self, job_id, path, name=None):
        """Store the file at ``path`` with the job (as ``name``, default its
        base name); returns its description. Not retried once sent (a second
        upload of a name is a conflict). A connection that breaks is retried
        from the start of the file, a few times; a conflict after such a
        retry is success when the stored file has this file's sha256 (the
        broken attempt had stored it)."""
        name = name or os.path.basename(path)
        url = self.url + protocol.job_path(job_id, "files/" + protocol.quote_segment(name))
        for attempt in range(UPLOAD_TRIES):
            with open(path, "rb") as fh:
                try:
                    response = self.http.put(url, data=fh, timeout=self.timeout,
                                             headers={"Content-Type": "application/octet-stream"})
                except (requests.ConnectionError, requests.Timeout) as err:
                    if attempt + 1 == UPLOAD_TRIES:
                        raise errors.TransportError("uploading %s: %s" % (name, _describe(err))) \
                            from None
                    self._sleep(self.backoff.compute(attempt + 1, None))
                    continue
            if response.status_code == 409 and attempt > 0:
                mine = _sha256_of(path)
                for entry in self.files(job_id):
                    if entry["name"] == name and entry["sha256"] == mine:
                        return entry
            if response.status_code >= 400:
                raise _api_error(response)
            return response.json()

    def download_file(self, job_id, name, out):
        """Write one of the job's files to the binary file object ``out``;
        returns the sha256 the server holds for it."""
        response = self.request("GET", protocol.job_path(
            job_id, "files/" + protocol.quote_segment(name)), stream=True)
        with response:
            for chunk in response.iter_content(1024 * 1024):
                out.write(chunk)
            return response.headers.get("X-Content-SHA256")

    def results(self, job_id):
        """The job's results, decoded (one dict per done task)."""
        return [json.loads(line) for line in self.iter_results(job_id)]

    def dead(self, job_id):
        """The job's dead-letter list (decoded JSON as the server sends it)."""
        return self.call("GET", protocol.job_path(job_id, "dead"))

    def retry_dead(self, job_id):
        """Put the job's dead tasks back to pending."""
        return self.call("POST", protocol.job_path(job_id, "dead/retry"))

    def workers(self, job_id):
        """Per-worker statistics of a job."""
        return self.call("GET", protocol.job_path(job_id, "workers"))

    # ------------------------------------------------------------ worker API

    def lease(self, worker, max_tasks=None, job=None):
        """Ask for tasks; return the lease answer (``status`` ok, wait or done)."""
        body = {"worker": worker}
        if max_tasks is not None:
            body["max_tasks"] = int(max_tasks)
        if job is not None:
            body["job"] = job
        if worker.isascii() and worker.isprintable():
            # Lets nginx's `hash $http_x_worker_id` balancing (fleets inside
            # one /24) keep this worker on one instance for all its calls.
            self.http.headers["X-Worker-ID"] = worker
        return self.call("POST", protocol.lease_path(), body,
                         headers={"Idempotency-Key": _new_key()})

    def heartbeat(self, lease_id):
        """Extend a lease; return ``{"expires_at"}``; raise LeaseLost if it is gone."""
        return self.call("POST", protocol.lease_action_path(lease_id, "heartbeat"), {})

    def complete(self, lease_id, results, release=False, next_max_tasks=None,
                 retry_seconds=None):
        """Report results (see :func:`jobmaster.protocol.ok_result`); maybe release and lease next.

        ``next_max_tasks``: also lease the next batch in the same round trip
        (0 or None: do not). The answer's ``"next"`` then holds a lease answer.
        """
        body = {"results": list(results)}
        if release:
            body["release"] = True
        if next_max_tasks is not None:
            body["next"] = {"max_tasks": int(next_max_tasks)} if next_max_tasks else {}
        return self.call("POST", protocol.lease_action_path(lease_id, "complete"), body,
                         retry_seconds=retry_seconds, headers={"Idempotency-Key": _new_key()})

    def release(self, lease_id, retry_seconds=None):
        """Give all unfinished tasks of a lease back now; return ``{"released": n}``."""
        return self.call("POST", protocol.lease_action_path(lease_id, "release"), {},
                         retry_seconds=retry_seconds)

    # ------------------------------------------------------------ operations

    def ready(self):
        """The ``/readyz`` document (raises Unavailable when not ready)."""
        return self.call("GET", "/readyz", retry_seconds=0)


def _new_key():
    """A fresh ``Idempotency-Key``: the same for every retry of one call.

    On appends it makes a retried upload add its items once. On ``lease``
    and ``complete ... next`` the server derives the lease id from it, so a
    retry after a lost answer (a reset, a 502 or 504) gets the very lease
    that answer carried instead of a second one, and no batch waits for its
    lease to expire (tests/stack/test_lost_answers.py, docs/RELIABILITY.md).
    """
    return secrets.token_hex(12)


def _api_error(response):
    """Turn an error response into an APIError, whatever its body."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    code, message = "http_%d" % response.status_code, response.reason or ""
    try:
        body = response.json()
    except ValueError:
        body = None
        text = (response.text or "").strip()
        if text:
            message = text.splitlines()[0][:200]
    if isinstance(body, dict):
        code = str(body.get("error") or code)
        message = str(body.get("message") or message)
        if retry_after is None and "retry_after" in body:
            retry_after = parse_retry_after(body.get("retry_after"))
    return errors.error_for(response.status_code, code, message,
                            request_id=response.headers.get("X-Request-ID"),
                            retry_after=retry_after)


UPLOAD_TRIES = 4


def _sha256_of(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _surely_unsent(err):
    """True when the request cannot have reached the server."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    text = repr(err)
    return any(mark in text for mark in ("NewConnectionError", "Connection refused",
                                         "Name or service not known", "NameResolutionError"))


def _describe(err):
    """A one-line reason for a connection error."""
    text = str(err.args[0] if err.args else err)
    for mark in ("Connection refused", "Read timed out", "timed out", "Connection reset",
                 "RemoteDisconnected", "Connection aborted", "Name or service not known"):
        if mark in text:
            return mark.lower() if mark != "RemoteDisconnected" else "connection closed"
    return text[:200]
