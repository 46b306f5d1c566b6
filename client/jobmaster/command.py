"""Run one external command per task (``jobmaster worker run -- CMD ARGS...``).

- ``{}`` in any argument is replaced by the payload: a string as is, a number
  or boolean as its JSON text, anything else (object, array, null) as its
  JSON text. With no ``{}`` anywhere, the payload's JSON text (plus a
  newline) is written to the command's standard input instead.
- The command runs in its own session (process group), so a Ctrl-C or
  SIGTERM meant for the worker does not hit it; the worker decides.
- Exit status 0: the task is ok, its result is the tail of standard output
  (a string, trailing newlines removed as ``$(...)`` does). Anything else:
  the task failed, its error is the exit status and the tail of standard
  error.
- A command running longer than the job's ``task_timeout`` (or the
  runner's own ``--timeout``, whichever is shorter) is killed with its
  process group and the task fails with ``"error": "timeout"``.
- Environment: ``JOBMASTER_JOB``, ``JOBMASTER_TASK_ID``,
  ``JOBMASTER_ATTEMPT``, ``JOBMASTER_LEASE`` and ``JOBMASTER_PARAMS_FILE``
  (a file holding the job's params as JSON); ``JOBMASTER_PARAMS`` holds the
  same JSON when it is under 32 KiB.
"""
import json
import os
import signal
import subprocess
import tempfile
import threading

#: Default bytes of stdout/stderr kept as result/error.
DEFAULT_TAIL = 64 * 1024
#: Params larger than this are passed only as a file, not in the environment.
PARAMS_ENV_LIMIT = 32 * 1024


class CommandFailed(Exception):
    """The command exited non-zero, was killed, or could not start."""


class CommandTimedOut(CommandFailed):
    """The command ran longer than its timeout (the job's ``task_timeout``
    or the runner's own) and was killed."""


class CommandAbandoned(Exception):
    """The command was killed because the worker is abandoning its tasks."""


class NoCommand(Exception):
    """The worker was given no command and the job has none either."""


def payload_text(payload):
    """The text that replaces ``{}``: strings as is, anything else as JSON."""
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def has_placeholder(argv):
    """True if any argument contains ``{}``."""
    return any("{}" in arg for arg in argv)


def read_tail(fh, limit):
    """The last ``limit`` bytes of an open binary file, decoded leniently."""
    fh.flush()
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", "replace")


class CommandRunner:
    """Runs the command template for tasks; one instance per concurrent slot.

    ``kill()`` (from another thread) terminates the running command's process
    group; the ``run`` in progress then raises :class:`CommandAbandoned`.
    """

    def __init__(self, argv, workdir, timeout=None, tail=DEFAULT_TAIL, slot=0):
        self.argv = list(argv)
        self.placeholder = has_placeholder(self.argv)
        self.workdir = workdir
        self.timeout = timeout
        self.tail = tail
        self.slot = slot
        self._proc = None
        self._killed = False
        self._lock = threading.Lock()
        self._params_text = None
        self._params_path = os.path.join(workdir, "params-%d.json" % slot)

    def __call__(self, task):
        """Run the command for ``task``; return the result or raise CommandFailed."""
        text = payload_text(task.payload)
        argv = [arg.replace("{}", text) for arg in self.argv]
        stdin_bytes = None
        if not self.placeholder:
            stdin_bytes = (json.dumps(task.payload, ensure_ascii=False) + "\n").encode()
        env = self._env(task)
        timeout = min((t for t in (self.timeout, getattr(task, "timeout", None)) if t),
                      default=None)
        with tempfile.TemporaryFile(dir=self.workdir) as out, \
                tempfile.TemporaryFile(dir=self.workdir) as err:
            try:
                with self._lock:
                    if self._killed:
                        raise CommandAbandoned()
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
                        stdout=out, stderr=err, env=env, start_new_session=True)
                    self._proc = proc
            except OSError as exc:
                raise CommandFailed("cannot run %s: %s" % (argv[0], exc.strerror or exc)) from None
            timed_out = False
            try:
                proc.communicate(stdin_bytes, timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                proc.wait()
            finally:
                with self._lock:
                    self._proc = None
            if self._killed:
                raise CommandAbandoned()
            if timed_out:
                raise CommandTimedOut("timed out after %gs; stderr: %s"
                                      % (timeout, read_tail(err, self.tail).strip()))
            if proc.returncode == 0:
                return read_tail(out, self.tail).rstrip("\r\n")
            how = ("killed by signal %d" % -proc.returncode if proc.returncode < 0
                   else "exit status %d" % proc.returncode)
            detail = read_tail(err, self.tail).rstrip()
            raise CommandFailed(how + (": " + detail if detail else ""))

    def kill(self):
        """Kill the running command (and its children); later runs refuse to start."""
        with self._lock:
            self._killed = True
            proc = self._proc
        if proc is not None:
            _kill_group(proc)

    def _env(self, task):
        env = dict(os.environ)
        env.pop("JOBMASTER_TOKEN", None)
        params_text = json.dumps(task.params, separators=(",", ":"), ensure_ascii=False)
        if params_text != self._params_text:
            tmp = self._params_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(params_text)
            os.replace(tmp, self._params_path)
            self._params_text = params_text
        env.update({
            "JOBMASTER_JOB": str(task.job),
            "JOBMASTER_TASK_ID": str(task.id),
            "JOBMASTER_ATTEMPT": str(task.attempt),
            "JOBMASTER_LEASE": str(task.batch.lease_id),
            "JOBMASTER_PARAMS_FILE": self._params_path,
        })
        if len(params_text) <= PARAMS_ENV_LIMIT:
            env["JOBMASTER_PARAMS"] = params_text
        else:
            env.pop("JOBMASTER_PARAMS", None)
        return env


def _kill_group(proc, grace=None):
    """SIGTERM the command's process group, SIGKILL it if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(grace if grace is not None else 3.0)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def process_alive(pid):
    """True while ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def job_argv(command):
    """A job's ``command`` (docs/contract.md §10) as an argv: a list as is; a string
    runs under ``sh -c``, where ``{}`` becomes ``"$1"`` and the payload is
    passed as that argument (never pasted into the shell's text)."""
    if isinstance(command, str):
        if "{}" in command:
            return ["sh", "-c", command.replace("{}", '"$1"'), "sh", "{}"]
        return ["sh", "-c", command]
    return [str(arg) for arg in command]


class JobCommandRunner:
    """For ``worker run`` given no command: runs the job's own ``command``,
    which comes with every lease; one :class:`CommandRunner` per distinct
    command (a worker serving any job may meet several)."""

    def __init__(self, workdir, timeout=None, tail=DEFAULT_TAIL, slot=0):
        self._args = (workdir, timeout, tail, slot)
        self._runners = {}
        self._lock = threading.Lock()
        self._killed = False

    def __call__(self, task):
        command = task.batch.command
        if not command:
            raise NoCommand("job %s has no command and this worker was given none "
                            "(give one after --, or --call)" % task.job)
        key = json.dumps(command)
        with self._lock:
            if self._killed:
                raise CommandAbandoned()
            runner = self._runners.get(key)
            if runner is None:
                runner = self._runners[key] = CommandRunner(job_argv(command), *self._args)
        return runner(task)

    def kill(self):
        with self._lock:
            self._killed = True
            runners = list(self._runners.values())
        for runner in runners:
            runner.kill()
