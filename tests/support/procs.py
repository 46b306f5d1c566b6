"""Start real server processes on free loopback ports; stop them by PID.

Nothing here sleeps for a fixed time: every start waits for a condition
(a port answering, a file appearing) with a bounded deadline.
"""
import os
import shutil
import signal
import socket
import subprocess

from stack.net import free_cluster_ports, free_port, port_open, wait_until  # noqa: F401 (re-exported)


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


class RedisCluster:
    """A real local Redis Cluster (3 masters with a replica each, as
    ``stack/cluster.py`` makes for `make run`): one redis-server per node
    on free ports, data under ``workdir/<port>``, joined with ``redis-cli
    --cluster create``. ``url`` names the first node (the cluster client
    finds the rest); every node is stopped by PID."""

    def __init__(self, workdir, node_timeout_ms=1000):
        from stack import cluster as C

        self.C = C
        self.workdir = workdir
        self.nodes = []  # Process objects with .port
        self.node_timeout_ms = node_timeout_ms
        self.cli = which_or_fail("redis-cli")
        try:
            for port in free_cluster_ports(C.NODES):
                self.nodes.append(self._start_node(port))
            C.create(self.cli, self.ports)
        except BaseException:
            self.stop()
            raise
        self.port = self.nodes[0].port
        self.url = "redis://127.0.0.1:%d/0" % self.port

    @property
    def ports(self):
        return [n.port for n in self.nodes]

    def _start_node(self, port):
        d = os.path.join(self.workdir, str(port))
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "redis.conf")
        with open(conf, "w") as fh:
            fh.write(self.C.cluster_lines(d, self.node_timeout_ms))
        argv = [which_or_fail("redis-server"), conf, "--port", str(port), "--bind", "127.0.0.1",
                "--dir", d, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction", "--daemonize", "no"]
        proc = Process(argv, os.path.join(d, "redis.log"))
        proc.port = port
        wait_until(lambda: _redis_ping(port) or not proc.alive(), what="cluster node %d" % port)
        if not proc.alive():
            raise RuntimeError("redis-server exited:\n" + proc.log_tail())
        return proc

    def roles(self):
        """{port: 'master'|'slave'} of the nodes that answer."""
        return self.C.roles(self.cli, [n.port for n in self.nodes if n.alive()])

    def masters(self):
        return [n for n in self.nodes if self.roles().get(n.port) == "master"]

    def wait_healthy(self, timeout=60.0):
        live = [n.port for n in self.nodes if n.alive()]
        masters = self.C.MASTERS
        wait_until(lambda: self.C.healthy(self.cli, live, masters, replicas=0), timeout=timeout,
                   interval=0.1, what="a healthy cluster")

    def flush(self):
        for n in self.masters():
            self.C.cli(self.cli, n.port, "FLUSHALL")

    def stop(self):
        for n in self.nodes:
            n.send_signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()


def redis_client(url):
    """A plain redis-py client of the suite's kind (single or cluster), for
    tests that look at Redis beside the app."""
    import redis

    if suite_redis_mode() == "cluster":
        return redis.RedisCluster.from_url(url, decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


def servers():
    """The app servers the stack tests run: both on the single-Redis run,
    uWSGI only on the cluster run (the server does not depend on the Redis
    mode; CI time)."""
    return ["uwsgi"] if suite_redis_mode() == "cluster" else ["uwsgi", "gunicorn"]


def all_keys(client, pattern="*"):
    """KEYS on every primary of a cluster (a cluster client asks one node)."""
    if hasattr(client, "get_primaries"):
        return client.keys(pattern, target_nodes=client.PRIMARIES)
    return client.keys(pattern)


def suite_redis_mode():
    """``single`` or ``cluster``: what the suite runs against
    (JOBMASTER_TEST_REDIS; `make test` runs both)."""
    mode = os.environ.get("JOBMASTER_TEST_REDIS", "single")
    if mode not in ("single", "cluster"):
        raise RuntimeError("JOBMASTER_TEST_REDIS must be single or cluster, not %r" % mode)
    return mode
