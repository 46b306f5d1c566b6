"""A task's time limit (the job's ``task_timeout``): SIGALRM in the main
thread, a given-up thread elsewhere."""
import logging
import signal
import threading

from . import protocol

log = logging.getLogger("jobmaster.worker")


class TaskTimeout(Exception):
    """A task ran past its job's ``task_timeout``; it is reported failed
    with ``"error": "timeout"``."""


class _NoDeadline:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_DEADLINE = _NoDeadline()


def _alarm_usable():
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class _Alarm:
    """SIGALRM after ``seconds``: TaskTimeout inside the running code. With
    ``task`` (the ``for`` form), the task is marked failed first."""

    def __init__(self, seconds, task=None):
        self.seconds, self.task = seconds, task
        self.saved = None

    def _fire(self, signum, frame):
        if self.task is not None and self.task._outcome is None:
            self.task.fail(protocol.ERROR_TIMEOUT)
        raise TaskTimeout("task ran longer than its task_timeout of %gs" % self.seconds)

    def __enter__(self):
        self.saved = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.saved)
        return False


def _call_in_thread(handler, task, timeout):
    """``handler(task)`` in a daemon thread, given up (TaskTimeout) after
    ``timeout``; Python cannot stop a thread, so it runs on unobserved."""
    box = {}

    def target():
        try:
            box["result"] = handler(task)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="jobmaster-task-%s" % task.id)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("%r ran past its task_timeout (%gs); reported as timed out", task, timeout)
        raise TaskTimeout("task ran longer than its task_timeout of %gs" % timeout)
    if "error" in box:
        raise box["error"]
    return box.get("result")
