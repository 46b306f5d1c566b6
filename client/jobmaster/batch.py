"""One lease as the worker sees it: its tasks (:class:`Task`) and the batch
that collects their outcomes for one complete call (:class:`Batch`)."""
import logging
import time

from . import protocol


log = logging.getLogger("jobmaster.worker")


class Task:
    """One task of a batch: ``id``, ``attempt``, ``payload``, plus the job's ``params``."""

    __slots__ = ("id", "attempt", "payload", "batch", "speculative", "_outcome")

    def __init__(self, batch, raw):
        self.batch = batch
        self.id = raw["id"]
        self.attempt = raw.get("attempt", 1)
        self.payload = raw.get("payload")
        # a backup copy of a straggler's task (the job speculates): whichever
        # result reaches the master first wins
        self.speculative = bool(raw.get("speculative"))
        self._outcome = None

    @property
    def timeout(self):
        """Seconds this task may run (the job's ``task_timeout``), or None."""
        return self.batch.task_timeout

    @property
    def params(self):
        """The job's ``params`` (the same object for every task of the batch)."""
        return self.batch.params

    @property
    def job(self):
        """The id of the job this task belongs to."""
        return self.batch.job

    @property
    def reported(self):
        """True once ``ok()`` or ``fail()`` was called."""
        return self._outcome is not None

    def ok(self, result=None):
        """Mark the task done with a JSON-serialisable ``result``."""
        self.batch._report(self, protocol.ok_result(self.id, result))

    def fail(self, error):
        """Mark this attempt failed; ``error`` (text) is kept if the task dies."""
        self.batch._report(self, protocol.error_result(self.id, error))

    def __repr__(self):
        return "<Task %s#%s attempt %s>" % (self.job, self.id, self.attempt)


class Batch:
    """The tasks of one lease: ``lease_id``, ``job``, ``params``, ``tasks``.

    Report each task with ``task.ok(result)`` / ``task.fail(error)`` (or
    ``batch.ok(task, result)``); reports stay local until the batch is
    completed in one call.
    """

    def __init__(self, worker, answer):
        lease = answer["lease"]
        self.worker = worker
        self.lease_id = lease["id"]
        self.job = lease.get("job")
        self.lease_seconds = float(lease.get("lease_seconds") or protocol.DEFAULT_LEASE_SECONDS)
        self.expires_at = lease.get("expires_at")
        self.params = answer.get("params") or {}
        self.task_timeout = answer.get("task_timeout")
        self.command = answer.get("command")  # the job's own (docs/contract.md §10), or None
        self.tasks = [Task(self, raw) for raw in answer.get("tasks", [])]
        self.closed = False
        self.lost = False
        self.extended_at = time.monotonic()

    def ok(self, task, result=None):
        """Mark ``task`` done with ``result``."""
        task.ok(result)

    def fail(self, task, error):
        """Mark ``task``'s attempt failed with ``error``."""
        task.fail(error)

    @property
    def results(self):
        """The result entries reported so far, in task order."""
        return [t._outcome for t in self.tasks if t._outcome is not None]

    @property
    def unreported(self):
        """Tasks not reported yet."""
        return [t for t in self.tasks if t._outcome is None]

    def _report(self, task, entry):
        with self.worker._lock:
            if self.closed:
                log.log(logging.DEBUG if self.worker.abandoned else logging.WARNING,
                        "%r reported after its batch was closed; dropped", task)
                return
            if task._outcome is None:
                task._outcome = entry

    def __iter__(self):
        return iter(self.tasks)

    def __len__(self):
        return len(self.tasks)

    def __repr__(self):
        return "<Batch lease=%s job=%s tasks=%d>" % (self.lease_id, self.job, len(self.tasks))
