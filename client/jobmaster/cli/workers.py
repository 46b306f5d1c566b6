"""`jobmaster worker ...`: run tasks, release leases, stop a worker."""
import importlib
import inspect
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import click

from .. import errors
from ..command import (DEFAULT_TAIL, CommandAbandoned, CommandFailed, CommandRunner,
                      CommandTimedOut, JobCommandRunner, NoCommand, process_alive)
from ..worker import TaskTimeout, Worker, WorkerStopped, default_worker_name, format_exception

from . import CONTEXT, EXIT_DEAD, _Group, api_message, cli, log, pass_settings


@cli.group(cls=_Group, context_settings=CONTEXT)
def worker():
    """Run tasks (worker token)."""


def _load_callable(spec):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.UsageError("--call wants package.module:function, got %r" % spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise click.UsageError("--call: cannot import %s: %s: %s"
                               % (module_name, type(err).__name__, err))
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise click.UsageError("--call: %s has no attribute %r" % (module_name, attr))
    if not callable(fn):
        raise click.UsageError("--call: %s is not callable" % spec)
    return fn


def _call_handler(fn):
    """Adapt ``fn(payload[, params=...][, task=...])`` to a Worker handler."""
    try:
        sig = inspect.signature(fn)
        names = set(sig.parameters)
        var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    except (TypeError, ValueError):
        names, var_kw = set(), False

    def handler(task):
        kwargs = {}
        if var_kw or "params" in names:
            kwargs["params"] = task.params
        if var_kw or "task" in names:
            kwargs["task"] = task
        result = fn(task.payload, **kwargs)
        try:
            json.dumps(result)
        except (TypeError, ValueError) as err:
            raise TypeError("the result is not JSON-serialisable: %s" % err) from None
        return result

    return handler


class _Slot(threading.Thread):
    """One concurrent worker loop (its own leases) inside `worker run`."""

    def __init__(self, index, worker, handler, runner, wake):
        super().__init__(name="slot-%d" % index, daemon=True)
        self.worker = worker
        self.handler = handler
        self.runner = runner
        self.wake = wake
        self.error = None

    def run(self):
        try:
            self.worker.run(self._handle)
        except errors.ClientError as err:
            self.error = err
        except Exception as err:  # noqa: BLE001 - reported by the main thread
            self.error = err
        finally:
            self.wake.set()

    def _handle(self, task):
        try:
            return self.handler(task)
        except CommandAbandoned:
            raise WorkerStopped()
        except CommandTimedOut:
            raise TaskTimeout() from None  # reported as "error": "timeout"
        except NoCommand as err:  # the worker cannot run this job: stop, release
            self.error = err
            raise WorkerStopped()
        except CommandFailed as err:
            if self.worker.abandoned:
                raise WorkerStopped()
            raise RuntimeError(str(err)) from None


@worker.command("run", context_settings=dict(CONTEXT, ignore_unknown_options=True))
@click.option("--job", "job_id", metavar="ID", help="Only this job (default: any running job).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Tasks run at the same time (each slot holds its own lease).")
@click.option("--name", default=None, help="Worker name shown by the master [default: host:pid].")
@click.option("--max-tasks", type=click.IntRange(1),
              help="Tasks per lease [default: the job's batch size].")
@click.option("--call", "call_spec", metavar="MODULE:FUNCTION",
              help="Call a Python function per task instead of a command.")
@click.option("--timeout", type=click.FloatRange(min=0.001),
              help="Kill a command running longer than this many seconds (the task fails with "
                   "error \"timeout\"); the job's task_timeout applies too, the shorter wins.")
@click.option("--tail", type=click.IntRange(min=1), default=DEFAULT_TAIL, show_default=True,
              help="Bytes of stdout (result) and stderr (error) kept per task.")
@click.option("--on-term", type=click.Choice(["finish", "kill"]), default="finish",
              show_default=True,
              help="On SIGTERM/SIGINT: let running tasks finish and report them, or kill them. "
                   "A second signal always kills.")
@click.option("--pid-file", type=click.Path(dir_okay=False), help="Write our PID here.")
@click.option("--upload", "uploads", multiple=True, type=click.Path(dir_okay=False),
              metavar="PATH", help="When done, store this file with the job (--job, or each "
              "job it ran tasks of) under its base name; repeatable. Needs the archive.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_settings
def worker_run(settings, job_id, concurrency, name, max_tasks, call_spec, timeout, tail,
               on_term, pid_file, uploads, command):
    """Run tasks until the job (or, without --job, every job) is done.

    \b
    With a command, once per task:
      jobmaster worker run --job ID -- ./simulate --room {}
    `{}` in any argument becomes the payload (a string as is, anything else as
    JSON); with no `{}`, the payload's JSON goes to the command's stdin.
    Exit status 0: the task is ok, the tail of stdout (trailing newlines
    removed) is its result. Otherwise the task failed with the tail of stderr.
    The command gets JOBMASTER_JOB, JOBMASTER_TASK_ID, JOBMASTER_ATTEMPT,
    JOBMASTER_LEASE, JOBMASTER_PARAMS(_FILE) in its environment.

    \b
    With neither a command nor --call, the job's own `command` setting (sent
    with every lease: an argv list, or a string run by sh -c) runs per task,
    as a launched fleet does (POST /jobs/ID/fleet).

    \b
    With --call package.module:function, per task:
      function(payload)                      its return value is the result,
      function(payload, params=..., task=...) if it declares those names;
    an exception fails the task with its message.

    \b
    SIGTERM or SIGINT: take no new task; running tasks finish and are reported
    (--on-term finish) or are killed and released (--on-term kill, or a second
    signal); every unfinished task is released at once for other workers.
    On exit it says on stderr what it did (ok, failed, dead, released, leases).
    Exit status: 0 when the master said done, 3 when tasks it ran died (used
    up their attempts), 128+signal after a signal, 1 on an error.
    """
    # Signals first: a SIGTERM from now on is a request to drain, never a crash.
    signals = []
    wake = threading.Event()

    def on_signal(signum, frame):
        signals.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    command = list(command)
    if command and command[0] == "--":
        command = command[1:]
    if command and call_spec:
        raise click.UsageError("give a command after -- or --call MODULE:FUNCTION (not both)")
    if command and shutil.which(command[0]) is None:
        raise click.UsageError("command not found: %s" % command[0])
    fn = _load_callable(call_spec) if call_spec else None

    name = name or default_worker_name()
    workdir = tempfile.mkdtemp(prefix="jobmaster-worker-")
    if pid_file:
        with open(pid_file, "w") as fh:
            fh.write("%d\n" % os.getpid())
    slots = []
    try:
        for index in range(concurrency):
            if command:
                runner = CommandRunner(command, workdir, timeout=timeout, tail=tail, slot=index)
            elif fn is None:  # neither: the job's own command, from its leases
                runner = JobCommandRunner(workdir, timeout=timeout, tail=tail, slot=index)
            else:
                runner = None
            handler = runner if runner is not None else _call_handler(fn)
            # a command's runner enforces the job's task_timeout itself (it
            # kills the process group); a --call function is left to Worker
            w = Worker(settings.client, job=job_id, name=name, max_tasks=max_tasks,
                       heartbeat=True, handle_signals=False, task_timeouts=runner is None)
            slots.append(_Slot(index, w, handler, runner, wake))
        for slot in slots:
            slot.start()
        status = _supervise(slots, signals, wake, on_term, name)
        if uploads and status in (0, EXIT_DEAD):  # the work is over, dead tasks or not
            targets = {job_id} if job_id else set().union(*(s.worker.jobs_seen for s in slots))
            status = _upload(settings.client, sorted(targets), uploads) or status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(workdir, ignore_errors=True)
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
    sys.exit(status)


def _upload(client, job_ids, paths):
    """Store each file with each job (the seed's pods uploaded their stats
    files when they finished). Returns the exit status."""
    status = 0
    for job_id in job_ids:
        for path in paths:
            try:
                doc = client.upload_file(job_id, path)
            except (OSError, errors.ClientError) as err:
                click.echo("Error: uploading %s to job %s: %s" % (path, job_id, err), err=True)
                status = 1
                continue
            log.info("uploaded %s to job %s (%d bytes, sha256 %s)", doc["name"], job_id,
                     doc["size"], doc["sha256"])
    return status


def _supervise(slots, signals, wake, on_term, name):
    """Wait for the slots; act on signals; return the exit status.

    The signal handler only appends to ``signals`` (nothing that takes a lock
    is safe in a handler), so this loop polls it every 0.2 s.
    """
    acted = 0  # signals handled so far
    killing = False
    while any(slot.is_alive() for slot in slots):
        wake.wait(0.2)
        wake.clear()
        if len(signals) > acted:
            acted = len(signals)
            if acted == 1 and on_term == "finish":
                log.warning("signal %d: finishing running tasks, releasing the rest",
                            signals[-1])
                for slot in slots:
                    slot.worker.stop()
            elif not killing:
                killing = True
                log.warning("signal %d: killing running tasks and releasing them", signals[-1])
                for slot in slots:
                    slot.worker.stop(abandon=True)  # release first, then kill
                for slot in slots:
                    if slot.runner is not None:
                        slot.runner.kill()
                if any(slot.runner is None for slot in slots):
                    break  # Python calls cannot be killed; their leases are released
        if any(slot.error is not None for slot in slots):
            for slot in slots:
                slot.worker.stop()
    for slot in slots:
        if not (killing and slot.runner is None):
            slot.join(30.0)
    errors_seen = [slot.error for slot in slots if slot.error is not None]
    stats = {}
    for slot in slots:
        for key, value in slot.worker.stats.items():
            stats[key] = stats.get(key, 0) + value
    # Always said, on stderr: what this worker did, whatever ended it.
    click.echo("jobmaster: worker %s: %d ok, %d failed (%d dead), %d released, %d leases"
               % (name, stats.get("ok", 0), stats.get("failed", 0), stats.get("dead", 0),
                  stats.get("released", 0), stats.get("batches", 0)), err=True)
    if errors_seen:
        err = errors_seen[0]
        if isinstance(err, errors.APIError):
            message = api_message(err)
        elif isinstance(err, errors.ClientError):
            message = str(err)
        else:
            message = format_exception(err).splitlines()[0]
        click.echo("Error: %s" % message, err=True)
        return 1
    if signals:
        return 128 + signals[0]
    if stats.get("dead"):
        return EXIT_DEAD
    return 0 if all(slot.worker.finished for slot in slots) else 1


@worker.command("release", context_settings=CONTEXT)
@click.argument("lease_ids", nargs=-1, required=True, metavar="LEASE...")
@pass_settings
def worker_release(settings, lease_ids):
    """Give every unfinished task of each LEASE back to pending now."""
    for lease_id in lease_ids:
        answer = settings.client.release(lease_id)
        click.echo("%s released %s" % (lease_id, (answer or {}).get("released", 0)))


@worker.command("stop", context_settings=CONTEXT)
@click.option("--pid", type=int, help="PID of the `worker run` process (1 in a container).")
@click.option("--pid-file", type=click.Path(exists=True, dir_okay=False),
              help="Read the PID from the file `worker run --pid-file` wrote.")
@click.option("--timeout", type=click.FloatRange(min=0), default=25.0, show_default=True,
              help="Seconds to wait for it to report, release and exit.")
def worker_stop(pid, pid_file, timeout):
    """SIGTERM a running `worker run` and wait until it has released its leases and exited.

    Meant for a Kubernetes preStop hook: `jobmaster worker stop --pid 1`.
    """
    if (pid is None) == (pid_file is None):
        raise click.UsageError("give --pid or --pid-file")
    if pid_file:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.1)
    raise click.ClickException("process %d still running after %gs" % (pid, timeout))
