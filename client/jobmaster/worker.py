"""The worker loop: lease, run, report, lease again, until the master says done.

The natural way to take part in a job::

    from jobmaster import Worker

    with Worker(job=job_id, handle_signals=True) as worker:
        for task in worker:                 # batches are fetched behind the scenes
            task.ok(simulate(task.payload, **task.params))

or, with a function that returns the result (an exception marks the task
failed with its message)::

    Worker(job=job_id, handle_signals=True).run(lambda task: simulate(task.payload))

Behind the scenes:

- Each batch is reported with one ``complete`` call that also asks for the
  next batch (``"next"``), so a busy worker makes one round trip per batch.
- A background thread heartbeats the current lease every third of its
  ``lease_seconds``, so tasks longer than the lease are not taken away.
- A task the loop body neither ``ok()``-ed nor ``fail()``-ed when it asks for
  the next one counts as done, with result ``None``. A task whose body raised
  out of the loop is not reported; when the loop ends (the ``with`` block or
  :meth:`Worker.close`), finished tasks are reported and the rest of the
  batch is released at once, so other workers can take it immediately.
- ``wait`` answers are slept off with jitter; ``done`` ends the loop.
- A job's ``task_timeout`` (returned with every lease, ``task.timeout``):
  :meth:`Worker.run` stops a handler that runs longer and reports the task
  failed with ``"error": "timeout"``. In the main thread the handler is
  interrupted by :class:`TaskTimeout` raised inside it (SIGALRM, so Python
  code, not a C call that never returns to the interpreter); elsewhere the
  handler runs in a thread of its own that is given up at the deadline. In
  the ``for task in worker`` form the same TaskTimeout is raised inside the
  loop body (main thread) after the task is marked failed: catch it to go on.

Stopping (:meth:`Worker.stop`, or SIGTERM/SIGINT with ``handle_signals``):

- ``on_term="finish"`` (default): the current task runs to its end and is
  reported; the unstarted rest of the batch is released; the loop ends.
  A second signal switches to abandon.
- ``on_term="abandon"``: the current task is interrupted by raising
  :class:`WorkerStopped` inside it (if it is Python code running in the main
  thread), it is released with the rest, and the loop ends. ``with Worker``
  swallows that ``WorkerStopped``; :meth:`Worker.run` returns normally.
"""
import logging
import os
import signal
import socket
import threading
import time
import traceback

from . import protocol
from . import errors
from .retry import idle_delay
from .batch import Batch, Task  # noqa: F401 (part of this module's API)
from .deadlines import _NO_DEADLINE, TaskTimeout, _Alarm, _alarm_usable, _call_in_thread  # noqa: F401
from .session import Client

log = logging.getLogger("jobmaster.worker")

#: Seconds the final report-and-release may spend retrying on shutdown.
SHUTDOWN_RETRY_SECONDS = 20.0



class WorkerStopped(BaseException):
    """Raised inside an abandoned task to interrupt it (not an ``Exception``,
    so a task's own ``except Exception`` does not swallow it)."""


def default_worker_name():
    """``<hostname>:<pid>``: the pod name under Kubernetes."""
    return "%s:%d" % (socket.gethostname(), os.getpid())


class Worker:
    """Lease tasks from the master and report them; see the module docstring.

    :param client: the master's base URL (a string), or a
        :class:`~jobmaster.session.Client` (default: from the environment,
        ``$JOBMASTER_URL`` / ``$JOBMASTER_TOKEN``).
    :param job: only this job's tasks (default: any running job, highest
        priority first).
    :param name: the worker name the master records (default ``host:pid``).
    :param max_tasks: tasks per lease (default: the job's ``batch_size``).
    :param heartbeat: keep leases alive from a background thread.
    :param handle_signals: install SIGTERM/SIGINT handlers while the loop
        runs (main thread only).
    :param on_term: ``"finish"`` or ``"abandon"`` the current task on a signal.
    :param max_idle: longest sleep after a ``wait`` answer, in seconds.
    :param task_timeouts: enforce the job's ``task_timeout`` (False for a
        handler that enforces it itself, as the CLI's command runner does).

    After the loop, ``finished`` is True if the master said there is nothing
    left, ``stopped`` if :meth:`stop` (or a signal) ended it, and ``stats``
    counts what was reported.
    """

    def __init__(self, client=None, job=None, name=None, max_tasks=None, heartbeat=True,
                 handle_signals=False, on_term="finish", max_idle=30.0, task_timeouts=True):
        if on_term not in ("finish", "abandon"):
            raise ValueError("on_term must be 'finish' or 'abandon'")
        self.client = Client(client) if client is None or isinstance(client, str) else client
        self.job = job
        self.name = name or default_worker_name()
        self.max_tasks = max_tasks
        self.heartbeat = heartbeat
        self.handle_signals = handle_signals
        self.on_term = on_term
        self.max_idle = max_idle
        self.task_timeouts = task_timeouts
        self.finished = False
        self.stopped = False
        self.abandoned = False
        self.signalled = None
        self.stats = {"batches": 0, "ok": 0, "failed": 0, "released": 0, "duplicates": 0,
                      "dead": 0}
        self.jobs_seen = set()  # ids of the jobs it leased from (for `--upload`)
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._batch = None
        self._in_user_code = False
        self._hb_thread = None
        self._saved_handlers = {}
        self._closed = False

    # -------------------------------------------------------------- public

    def __iter__(self):
        return self.tasks()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return exc_type is not None and issubclass(exc_type, WorkerStopped)

    def tasks(self):
        """Iterate over tasks, one at a time, until the master says done or we stop."""
        batches = self.batches()
        try:
            for batch in batches:
                for task in batch.tasks:
                    if self._stop_event.is_set():
                        break
                    self._in_user_code = True
                    try:
                        with self._deadline(task, in_loop=True):
                            yield task
                    finally:
                        self._in_user_code = False
                    if task._outcome is None:
                        task.ok(None)
        finally:
            batches.close()

    def batches(self):
        """Iterate over batches (one per lease) until the master says done or we stop.

        Tasks of a batch left unreported when the next batch is asked for
        count as done with result ``None``.
        """
        self._start()
        try:
            answer, from_next = None, False
            while not self._stop_event.is_set():
                if answer is None:
                    answer, from_next = self.client.lease(self.name, self.max_tasks, self.job), False
                if not isinstance(answer, dict):
                    raise errors.ClientError("unexpected lease answer: %r" % (answer,))
                status = answer.get("status")
                if status == protocol.LEASE_OK:
                    batch = self._open(answer)
                    if self._stop_event.is_set():
                        break  # close() releases it at once
                    self._in_user_code = True
                    try:
                        yield batch
                    finally:
                        self._in_user_code = False
                    for task in batch.unreported:
                        if not self._stop_event.is_set():
                            task.ok(None)
                    answer, from_next = self._finish(batch)
                elif status == protocol.LEASE_WAIT:
                    self._idle(answer)
                    answer = None
                elif status == protocol.LEASE_DONE:
                    if from_next and self.job is None:
                        answer = None  # that job is done; ask for any other
                        continue
                    self.finished = True
                    break
                else:
                    raise errors.ClientError("unexpected lease answer: %r" % (answer,))
        finally:
            self.close()

    def run(self, handler):
        """Call ``handler(task)`` for every task; its return value is the result.

        An ``Exception`` from the handler fails the task with
        ``"<Type>: <message>"`` (and the traceback's last lines). Returns
        ``self`` so ``Worker(...).run(f).finished`` reads naturally.
        """
        try:
            for task in self.tasks():
                try:
                    result = self._call(handler, task)
                except TaskTimeout:
                    task.fail(protocol.ERROR_TIMEOUT)
                except Exception as err:  # the task failed, the worker goes on
                    task.fail(format_exception(err))
                else:
                    task.ok(result)
        except WorkerStopped:
            pass
        finally:
            self.close()
        return self

    def stop(self, abandon=False):
        """Ask the loop to end; thread-safe.

        Without ``abandon`` the current task finishes and is reported, the
        rest of the batch is released. With ``abandon`` the current batch is
        released right now (from the calling thread): the running task's
        result, when it comes, is dropped.
        """
        self.stopped = True
        self._stop_event.set()
        if abandon:
            self.abandoned = True
            self._release_current()

    def close(self):
        """Report what is done, release the rest of the current lease, stop heartbeats.

        Safe to call twice and from another thread.
        """
        self._release_current()
        self._restore_signals()
        self._closed = True
        self._stop_heartbeat()

    # ------------------------------------------------------------ timeouts

    def _call(self, handler, task):
        """``handler(task)`` within the task's timeout (see the module docstring)."""
        timeout = task.timeout if self.task_timeouts else None
        if not timeout or _alarm_usable():
            with self._deadline(task):
                return handler(task)
        return _call_in_thread(handler, task, timeout)

    def _deadline(self, task, in_loop=False):
        """Raise TaskTimeout in this (main) thread when ``task`` runs too long."""
        timeout = task.timeout if self.task_timeouts else None
        if not timeout or not _alarm_usable():
            return _NO_DEADLINE
        return _Alarm(timeout, task if in_loop else None)

    # ------------------------------------------------------------ internals

    def _start(self):
        self._closed = False
        if self.handle_signals:
            self._install_signals()
        if self.heartbeat and self._hb_thread is None:
            self._hb_stop = threading.Event()
            self._hb_thread = threading.Thread(target=self._heartbeat_loop, daemon=True,
                                               name="jobmaster-heartbeat")
            self._hb_thread.start()

    def _idle(self, answer):
        delay = idle_delay(answer.get("retry_after"), cap=self.max_idle)
        log.debug("nothing to do now; sleeping %.2fs", delay)
        self._stop_event.wait(delay)

    def _open(self, answer):
        batch = Batch(self, answer)
        with self._lock:
            self._batch = batch
        self.stats["batches"] += 1
        self.jobs_seen.add(batch.job)
        return batch

    def _finish(self, batch):
        """Complete ``batch``; return (next lease answer or None, from_next)."""
        with self._lock:
            if batch.closed:
                return None, False
            batch.closed = True
            if self._batch is batch:
                self._batch = None
            results = batch.results
            stopping = self._stop_event.is_set()
            release = stopping or len(results) < len(batch.tasks)
            next_tasks = None if release else (self.max_tasks or 0)
            try:
                answer = self.client.complete(batch.lease_id, results, release=release,
                                              next_max_tasks=next_tasks)
            except (errors.LeaseLost, errors.NotFound, errors.Conflict) as err:
                log.warning("completing lease %s: %s", batch.lease_id, err)
                return None, False
            self._count(answer, results)
            nxt = answer.get("next") if isinstance(answer, dict) else None
            if nxt is None:
                return None, False
            if self._stop_event.is_set() and nxt.get("status") == protocol.LEASE_OK:
                # A stop arrived while the call was in flight: give it straight back.
                self._open(nxt)
                self._release_current()
                return None, False
            return nxt, True

    def _release_current(self):
        """Report the current batch's finished tasks and release the rest, now."""
        with self._lock:
            batch, self._batch = self._batch, None
            if batch is None or batch.closed:
                return
            batch.closed = True
            results = batch.results
            try:
                answer = self.client.complete(batch.lease_id, results, release=True,
                                              retry_seconds=SHUTDOWN_RETRY_SECONDS)
            except errors.ClientError as err:
                log.warning("could not report/release lease %s (its tasks come back "
                            "when it expires): %s", batch.lease_id, err)
                return
            self._count(answer, results)

    def _count(self, answer, results):
        if not isinstance(answer, dict):
            return
        for entry in results:
            self.stats["ok" if entry.get("ok") else "failed"] += 1
        self.stats["released"] += int(answer.get("released") or 0)
        self.stats["duplicates"] += int(answer.get("duplicates") or 0)
        self.stats["dead"] += int(answer.get("dead") or 0)  # failures that used up the task

    # ------------------------------------------------------------ heartbeat

    def _heartbeat_loop(self):
        while not self._hb_stop.is_set():
            with self._lock:
                batch = self._batch
            if batch is None or batch.closed or batch.lost:
                self._hb_stop.wait(0.5)
                continue
            interval = max(0.2, batch.lease_seconds / 3.0)
            due = batch.extended_at + interval - time.monotonic()
            if due > 0:
                self._hb_stop.wait(min(due, 1.0))
                continue
            try:
                self.client.call("POST", protocol.lease_action_path(batch.lease_id, "heartbeat"),
                                 {}, retry_seconds=interval)
                batch.extended_at = time.monotonic()
            except (errors.LeaseLost, errors.NotFound) as err:
                if not batch.closed:
                    log.warning("lease %s lost: %s", batch.lease_id, err)
                batch.lost = True
            except errors.ClientError as err:
                log.warning("heartbeat of lease %s failed: %s", batch.lease_id, err)
                batch.extended_at = time.monotonic() - interval / 2.0

    def _stop_heartbeat(self):
        thread, self._hb_thread = self._hb_thread, None
        if thread is not None:
            self._hb_stop.set()
            if thread is not threading.current_thread():
                thread.join(5.0)

    # -------------------------------------------------------------- signals

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._saved_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self):
        saved, self._saved_handlers = self._saved_handlers, {}
        for sig, handler in saved.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass

    def _on_signal(self, signum, frame):
        abandon = self.on_term == "abandon" or self.signalled is not None
        self.signalled = signum
        self.stopped = True
        self._stop_event.set()
        log.warning("signal %d: %s", signum,
                    "abandoning the current task" if abandon else
                    "finishing the current task, then releasing the rest")
        if abandon:
            self.abandoned = True
            if self._in_user_code:
                raise WorkerStopped("stopped by signal %d" % signum)


def format_exception(err, limit=5):
    """``"<Type>: <message>"`` plus the last frames of the traceback, for an error report."""
    head = "%s: %s" % (type(err).__name__, err)
    frames = traceback.format_tb(err.__traceback__)[-limit:]
    return head + ("\n" + "".join(frames) if frames else "")
