"""Prometheus metrics.

Two sources, so that every instance answers /metrics with the same figures:

- job figures (tasks by state, rate) are read from Redis, so they are the
  same whichever instance is asked (give or take the cache window below);
- per-process counters (HTTP requests, tasks leased and reported) use
  prometheus_client's multiprocess mode when JOBMASTER_PROMETHEUS_MULTIPROC_DIR
  is set: every process writes its own file there and a scrape sums them all.

A process makes the whole text at most once per JOBMASTER_METRICS_CACHE_SECONDS
(:class:`Scrapes`).
"""
import os
import time

from flask import Response, g, request
from jobmaster import protocol

_metrics = {}


def init_app(app):
    directory = app.config["PROMETHEUS_MULTIPROC_DIR"]
    if directory:
        # prometheus_client picks its storage from this variable when it is
        # first imported, so it is set before that import.
        os.makedirs(directory, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    import prometheus_client as prom

    if not _metrics:
        _metrics["requests"] = prom.Counter(
            "jobmaster_http_requests_total", "HTTP requests answered", ["endpoint", "status"])
        _metrics["latency"] = prom.Histogram(
            "jobmaster_http_request_seconds", "Time to answer a request", ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        _metrics["tasks"] = prom.Counter(
            "jobmaster_tasks_total", "Tasks leased and results reported", ["event"])
        _metrics["archive"] = prom.Counter(
            "jobmaster_archive_total", "Outbox drainer events: results archived, failed drain "
            "rounds (errors), failed result hook calls (hook_errors)", ["event"])

    @app.before_request
    def _start():
        g.started = request.environ.get(STARTED) or time.perf_counter()

    @app.after_request
    def _count(response):
        if _pending and time.monotonic() >= _next_flush[0]:
            flush_tasks()
        endpoint = request.endpoint or "unknown"
        _child("requests", endpoint, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            _child("latency", endpoint).observe(time.perf_counter() - started)
        return response


# environ key: when a request began, for a request that did work before Flask
# saw it (app/early_lease.py); its latency counts from there.
STARTED = "jobmaster.started"


def mark_start(environ):
    environ[STARTED] = time.perf_counter()


# Labelled children by (metric, labels...): prometheus_client's labels()
# validates and locks on every call, which showed in the lease profile.
_children = {}


def _child(name, *labels):
    key = (name,) + labels
    child = _children.get(key)
    if child is None:
        child = _children[key] = _metrics[name].labels(*labels)
    return child


# Task counts are added up here and written to prometheus_client at most
# once a second (and before a scrape answered by this process): under gevent
# in multiprocess mode one inc() costs ~7 µs (a lock and an mmap write), and
# a complete makes up to four of them. A count reaches the files within a
# second while the process serves requests.
TASK_FLUSH_SECONDS = 1.0
_pending = {}
_next_flush = [0.0]


def count_tasks(event, n):
    """Add ``n`` to the per-process task counter for ``event``."""
    if n and _metrics:
        _pending[event] = _pending.get(event, 0) + n
        if time.monotonic() >= _next_flush[0]:
            flush_tasks()


def count_archive(event, n):
    """Add ``n`` to the archive counter for ``event`` (archived, errors, hook_errors)."""
    if n and _metrics:
        _child("archive", event).inc(n)


def flush_tasks():
    _next_flush[0] = time.monotonic() + TASK_FLUSH_SECONDS
    while _pending:
        event, n = _pending.popitem()
        _child("tasks", event).inc(n)


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _job_lines(docs, show):
    """The job figures as Prometheus text lines. ``show``: ``"names"`` (job
    ids and names), ``"ids"`` (ids only) or ``"none"`` (no series per job)."""
    yield "# HELP jobmaster_tasks Tasks of every job together, by state."
    yield "# TYPE jobmaster_tasks gauge"
    for state in ("total",) + protocol.TASK_STATES:
        yield 'jobmaster_tasks{state="%s"} %d' % (state, sum(d["counts"][state] for d in docs))
    yield "# HELP jobmaster_archive_backlog Results accepted but not archived yet, every job together."
    yield "# TYPE jobmaster_archive_backlog gauge"
    yield "jobmaster_archive_backlog %d" % sum(d["archive"]["backlog"] for d in docs if "archive" in d)
    yield "# HELP jobmaster_jobs Jobs by state."
    yield "# TYPE jobmaster_jobs gauge"
    for state in protocol.JOB_STATES:
        yield 'jobmaster_jobs{state="%s"} %d' % (state, sum(1 for d in docs if d["state"] == state))
    if show == "none":
        return
    labels = {}
    for doc in docs:
        labels[doc["id"]] = ('job="%s",name="%s"' % (doc["id"], _escape(doc["name"]))
                             if show == "names" else 'job="%s"' % doc["id"])
    yield "# HELP jobmaster_job_tasks Tasks of a job by state."
    yield "# TYPE jobmaster_job_tasks gauge"
    for doc in docs:
        for state in ("total",) + protocol.TASK_STATES:
            yield "jobmaster_job_tasks{%s,state=\"%s\"} %d" % (labels[doc["id"]], state,
                                                                doc["counts"][state])
    yield "# HELP jobmaster_job_rate Tasks done per second over about the last minute."
    yield "# TYPE jobmaster_job_rate gauge"
    for doc in docs:
        yield "jobmaster_job_rate{%s} %s" % (labels[doc["id"]], doc["rate"])
    yield "# HELP jobmaster_job_archive_backlog Results of a job accepted but not archived yet."
    yield "# TYPE jobmaster_job_archive_backlog gauge"
    for doc in docs:
        if "archive" in doc:
            yield "jobmaster_job_archive_backlog{%s} %d" % (labels[doc["id"]],
                                                            doc["archive"]["backlog"])


class Scrapes:
    """The /metrics text, made at most once per ``seconds`` per process.

    Reading the job figures runs one status script per job (up to 1,000),
    and the process counters are read from every process's file: a flood of
    scrapes must not turn into a flood of either. Within the window every
    scrape is answered with the same text, and while it is being made the
    other scrapes wait for it instead of making their own (measured: a
    50-connection wrk flood on 500 jobs took Redis from 42% of a core to 1%).
    """

    def __init__(self, read, seconds):
        self.read, self.seconds = read, seconds
        self.at, self.texts, self.lock = None, {}, None

    def text(self, show):
        if not self._fresh():
            if self.lock is None:
                from .store.concurrency import semaphore

                self.lock = semaphore(1)
            with self.lock:
                if not self._fresh():
                    docs, counters = self.read(), _counters()
                    self.texts = {level: "\n".join(_job_lines(docs, level)) + "\n" + counters
                                  for level in ("names", "ids", "none")}
                    self.at = time.monotonic()
        return self.texts[show]

    def _fresh(self):
        return self.at is not None and time.monotonic() - self.at < self.seconds


def _counters():
    """The process counters' text (every process's, in multiprocess mode)."""
    import prometheus_client as prom

    flush_tasks()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prom.REGISTRY
    return prom.generate_latest(registry).decode()


def exposition(text):
    return Response(text, mimetype="text/plain; version=0.0.4")
