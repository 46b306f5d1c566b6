"""The ``local`` fleet launcher: ``jobmaster worker run`` processes on this host.

Each worker is started through ``sh``, which puts it in the background and
exits at once: the worker is then the child of init (which reaps it), not of
the app server process that took the request, and it lives in its own
session, so reloading or stopping the app server does not stop the fleet
(DELETE does, or the job ending). The worker gets the token in its
environment (never on its command line, which ``ps`` shows) and none of the
server's own ``JOBMASTER_*`` settings (they hold the admin tokens).

PIDs are only meaningful on the host that started them: the record names
that host, and only an instance on it may signal them.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import shutil

from ..errors import BadRequest, NotConfigured

#: sh puts "$@" in the background, says its PID and exits.
_SPAWN = '"$@" </dev/null >>"$JOBMASTER_FLEET_LOG" 2>&1 & echo $!'


def _jobmaster():
    """The ``jobmaster`` command installed beside this server (its venv first)."""
    found = shutil.which("jobmaster", path=os.path.join(sys.prefix, "bin")) \
        or shutil.which("jobmaster")
    if not found:
        raise NotConfigured("the jobmaster command (jobmaster-client) is not installed on "
                            "this host: the local launcher cannot start workers")
    return found


def _names(ref, n):
    return ["fleet-%s-%d" % (ref, i) for i in range(1, n + 1)]


def _argv(binary, opts, job_id, name):
    return [binary, "--url", opts["url"], "worker", "run", "--job", job_id, "--name", name,
            "--concurrency", str(opts["concurrency"])]


def plan(job_id, ref, opts, token_placeholder, _job):
    """What a launch would start (a dry run)."""
    binary = shutil.which("jobmaster", path=os.path.join(sys.prefix, "bin")) or "jobmaster"
    return {"host": socket.gethostname(),
            "env": {"JOBMASTER_TOKEN": token_placeholder},
            "processes": [{"name": name, "argv": _argv(binary, opts, job_id, name)}
                          for name in _names(ref, opts["workers"])]}


def _log_dir(config, job_id):
    base = config["FLEET_LOCAL_DIR"] or os.path.join(tempfile.gettempdir(), "jobmaster-fleet")
    path = os.path.join(base, job_id)
    os.makedirs(path, exist_ok=True)
    return path


def _env(token, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    env.update(PYTHONUNBUFFERED="1", JOBMASTER_FLEET_LOG=log)
    if token:
        env["JOBMASTER_TOKEN"] = token
    return env


def launch(config, job_id, ref, opts, token, _job):
    n = opts["workers"]
    if n > config["FLEET_LOCAL_MAX_WORKERS"]:
        raise BadRequest("body.workers: the local launcher starts at most %d workers "
                         "(JOBMASTER_FLEET_LOCAL_MAX_WORKERS)" % config["FLEET_LOCAL_MAX_WORKERS"])
    binary = _jobmaster()
    logs = _log_dir(config, job_id)
    started = []
    try:
        for name in _names(ref, n):
            log = os.path.join(logs, name + ".log")
            out = subprocess.run(["sh", "-c", _SPAWN, "sh", *_argv(binary, opts, job_id, name)],
                                 env=_env(token, log), stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True, timeout=10,
                                 check=True)
            started.append({"name": name, "pid": int(out.stdout.split()[-1]), "log": log})
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as err:
        stop({"host": socket.gethostname(), "procs": started})
        raise NotConfigured("the local launcher could not start a worker: %s" % err) from None
    return {"host": socket.gethostname(), "procs": started, "names": [p["name"] for p in started]}


def reachable(record):
    return record.get("host") == socket.gethostname()


def _ours(pid, name):
    """True while ``pid`` is alive and still the worker we started (PIDs are
    reused: never signal a process whose command line does not name it)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            args = fh.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return b"worker" in args and name.encode() in args


def describe(record):
    """The record as GET shows it: each process running or exited."""
    here = reachable(record)
    procs = []
    for p in record["procs"]:
        state = ("running" if _ours(p["pid"], p["name"]) else "exited") if here else "unknown"
        procs.append({"name": p["name"], "pid": p["pid"], "state": state, "log": p["log"]})
    running = sum(p["state"] == "running" for p in procs) if here else None
    return {"launcher": "local", "ref": record["ref"], "host": record["host"],
            "workers": record["workers"], "launched_at": record["launched_at"],
            "running": running, "processes": procs}


def stop(record):
    """SIGTERM each worker still running: it finishes its running tasks,
    reports them, releases the rest of its leases and exits."""
    stopped = 0
    for p in record["procs"]:
        if _ours(p["pid"], p["name"]):
            try:
                os.kill(p["pid"], signal.SIGTERM)
                stopped += 1
            except ProcessLookupError:
                pass
    return stopped
