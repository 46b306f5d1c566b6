"""Start real server processes on free loopback ports; stop them by PID.

Nothing here sleeps for a fixed time: every start waits for a condition
(a port answering, a file appearing) with a bounded deadline.
"""
import os
import shutil
import signal
import socket
import subprocess

from stack.net import free_port, port_open, wait_until  # noqa: F401 (re-exported)


def which_or_fail(name, *extra_dirs):
    for d in extra_dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not path:
        raise RuntimeError("%s is not installed (run `make deps`)" % name)
    return path


class Process:
    """A started server process, stopped by PID."""

    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal the process and wait; kill its whole group if it lingers."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        self._log.close()


def start_redis(workdir, port=None, appendonly=True):
    """A real redis-server on 127.0.0.1 with AOF, data under ``workdir``."""
    port = port or free_port()
    os.makedirs(workdir, exist_ok=True)
    argv = [which_or_fail("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", workdir, "--save", "", "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
            "--daemonize", "no", "--protected-mode", "yes"]
    proc = Process(argv, os.path.join(workdir, "redis.log"))
    proc.port = port
    proc.url = "redis://127.0.0.1:%d/0" % port
    try:
        wait_until(lambda: _redis_ping(port) or not proc.alive(), what="redis on %d" % port)
    except TimeoutError:
        proc.stop()
        raise
    if not proc.alive():
        raise RuntimeError("redis-server exited:\n" + proc.log_tail())
    return proc


def _redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
