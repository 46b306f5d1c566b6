"""The whole production stack (Redis → uWSGI or gunicorn instances → nginx)
on free loopback ports, for integration, client and load tests.

    from tests.support.stack import start_stack

    st = start_stack(tmp_path, instances=2, server="uwsgi",
                     env={"JOBMASTER_ADMIN_TOKENS": "secret"})
    try:
        r = st.request("GET", "/readyz", source="127.0.3.7")
        assert r.status == 200 and r.headers["X-Served-By"].startswith("web-")
    finally:
        st.stop()

Configs are rendered by ``stack.render`` (what `make run` uses) into the
given directory; every process is started with ``tests.support.procs``
and stopped by PID (its process group, so no worker outlives its master).
Nothing sleeps for a fixed time: starting waits until every instance
answers /healthz on its own socket and nginx answers /healthz.
"""
import http.client
import json
import os
import signal
import socket
import struct
import sys

from tests.support.procs import (Process, free_cluster_ports, free_port, port_open,
                                   suite_redis_mode, wait_until)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from stack import cluster as C  # noqa: E402
from stack import render as R  # noqa: E402


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.headers.get("X-Served-By"),
                                        self.body[:200])


def read_to_end(sock):
    """Everything ``sock`` sends until it closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def http_request(host, port, method, path, body=None, headers=None, source=None,
                 timeout=30.0):
    """One HTTP request on a fresh connection, optionally from a chosen
    local address (any 127.x.y.z works on Linux loopback)."""
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


class Node:
    """One app server instance: a uWSGI (or gunicorn) master and its workers."""

    def __init__(self, spec, proc, server):
        self.spec = spec
        self.name = spec.name
        self.socket = spec.socket
        self.fifo = spec.fifo
        self.stats_socket = spec.stats
        self.process = proc
        self.server = server

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.alive()

    def kill(self):
        """kill -9 the master and all its workers at once (a crash)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.popen.wait(10)

    def reload(self):
        """Graceful reload: running requests finish, new ones queue meanwhile."""
        if self.server == "uwsgi":
            with open(self.fifo, "w") as fh:
                fh.write("r")
        else:
            os.kill(self.pid, signal.SIGHUP)

    def worker_pids(self):
        if self.server == "uwsgi":
            return sorted(w["pid"] for w in self.stats()["workers"] if w["pid"])
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as fh:
                return sorted(int(p) for p in fh.read().split())
        except OSError:
            return []

    def stats(self):
        """uWSGI's stats server document (workers, listen_queue, ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            return json.loads(read_to_end(s))

    def probe(self, path="/healthz"):
        """GET ``path`` on this instance's own socket, bypassing nginx;
        the HTTP status, or None if it does not answer."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.socket)
                if self.server == "uwsgi":
                    s.sendall(_uwsgi_packet(path))
                else:
                    s.sendall(b"GET %s HTTP/1.0\r\nHost: probe\r\n\r\n" % path.encode())
                head = s.recv(64)
        except OSError:
            return None
        parts = head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _uwsgi_packet(path):
    """A bodiless GET in the uwsgi protocol (what nginx's uwsgi_pass sends)."""
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path,
           "QUERY_STRING": "", "SERVER_NAME": "probe", "SERVER_PORT": "80",
           "SERVER_PROTOCOL": "HTTP/1.0", "REMOTE_ADDR": "127.0.0.1",
           "CONTENT_LENGTH": "0", "HTTP_HOST": "probe"}
    data = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                    for k, v in env.items())
    return struct.pack("<BHB", 0, len(data), 0) + data


class Stack:
    """A running stack. ``url``, ``host``/``port``, ``redis_url``,
    ``instances`` (list of :class:`Node`), ``nginx``, ``plan``."""

    def __init__(self, plan, env, redis, log_dir):
        self.plan = plan
        self.settings = plan.settings
        self.url = plan.url
        self.host = plan.settings.host
        self.port = plan.settings.port
        self.redis_url = plan.redis_url
        self.redis = redis
        self.env = env
        self.log_dir = log_dir
        self.instances = []
        self.nginx = None
        self.redis_nodes = []  # the nodes of its own Redis Cluster, if it has one
        self._extra = []

    # -- requests ---------------------------------------------------------

    def request(self, method, path, body=None, headers=None, source=None, timeout=30.0):
        return http_request(self.host, self.port, method, path, body, headers, source, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    # -- processes --------------------------------------------------------

    def instance(self, name):
        return next(n for n in self.instances if n.name == name)

    def start_nginx(self, **overrides):
        """A second nginx over the same instances with other settings (e.g.
        ``rate_limit=1``, ``balance="worker_id"``); stopped by ``stop()``.
        Returns a dict with ``host``, ``port``, ``process``, ``request``."""
        name = "nginx-%d" % (len(self._extra) + 1)
        upstream = overrides.pop("upstream", None) or [n.spec for n in self.instances]
        settings = R.with_overrides(self.settings, port=free_port(),
                                    var=os.path.join(self.settings.var, name), **overrides)
        plan = R.render(settings, upstream=upstream)
        proc = _start(plan.processes[-1], self.env, self.log_dir, name)
        self._extra.append(proc)
        _wait_port(settings.port, proc)
        host, port = settings.host, settings.port
        return {"host": host, "port": port, "process": proc, "plan": plan,
                "request": lambda *a, **kw: http_request(host, port, *a, **kw)}

    def nginx_log(self):
        """The JSON access log lines written so far (nginx flushes them each
        second, or call after ``stop()``)."""
        path = os.path.join(self.plan.layout.log, "nginx-access.log")
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def stop(self):
        """Stop everything by PID: nginx first, then the instances, then Redis."""
        for group in (self._extra + ([self.nginx] if self.nginx else []),
                      # uWSGI: die-on-term; gunicorn: SIGTERM is its graceful stop.
                      [n.process for n in self.instances],
                      ([self.redis] if self.redis is not None else []) + self.redis_nodes):
            for proc in group:  # signal all, then wait: they stop in parallel
                proc.send_signal(signal.SIGTERM)
            for proc in group:
                _stop(proc, signal.SIGTERM)


def _stop(proc, sig):
    proc.stop(sig, timeout=20)
    # Whatever is left in its process group (orphaned workers) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    env.update(extra)
    return env


def _start(spec, env, log_dir, name=None):
    return Process(spec.argv, os.path.join(log_dir, (name or spec.name) + ".log"),
                   env=_child_env({**env, **spec.env}), cwd=R.ROOT)


class PortTaken(RuntimeError):
    """A server could not bind the free port it was given: something else took
    it in between (an outgoing connection's ephemeral port can be any)."""


def _wait_port(port, proc, timeout=30, host="127.0.0.1"):
    def up():
        if not proc.alive():
            log = proc.log_tail()
            kind = PortTaken if "Address already in use" in log else RuntimeError
            raise kind("%s exited:\n%s" % (proc.argv[0], log))
        return port_open(port, host=host, timeout=0.5)
    wait_until(up, timeout=timeout, what="port %d" % port)


def _start_redis_nodes(plan, cfg, specs, env, log_dir):
    """The plan's own Redis (or cluster nodes), started and answering."""
    redis, nodes = None, []
    try:
        if "redis" in specs:
            redis = _start(specs["redis"], env, log_dir)
            redis.url = plan.redis_url
            _wait_port(cfg.redis_port, redis)
        for port in plan.cluster_ports:
            nodes.append(_start(specs["redis-%d" % port], env, log_dir))
            _wait_port(port, nodes[-1])
    except BaseException:
        for proc in nodes + ([redis] if redis else []):
            proc.stop(signal.SIGKILL)
        raise
    return redis, nodes


def start_stack(tmpdir, instances=2, server="uwsgi", env=None, redis_url=None,
                timeout=60.0, **settings):
    """Start Redis (unless ``redis_url``), ``instances`` app servers and nginx.

    ``env``: extra environment for the app (tokens, JOBMASTER_KEY_PREFIX...).
    ``settings``: any :class:`stack.render.Settings` field (rate_limit,
    trusted_proxies, balance, workers, max_body_bytes, ...).
    """
    tmpdir = str(tmpdir)
    log_dir = os.path.join(tmpdir, "proclogs")
    os.makedirs(log_dir, exist_ok=True)
    env = dict(env or {})
    redis = None
    nodes = []
    st = None
    try:
        # Without redis_url the plan has its own Redis, as `make run` does
        # (the apps then reach it over its UNIX socket).
        # On a cluster suite run (JOBMASTER_TEST_REDIS=cluster) that Redis is
        # a Redis Cluster of its own, as `JOBMASTER_REDIS_MODE=cluster make run`
        # starts it.
        mode = settings.pop("redis_mode", suite_redis_mode())
        for attempt in range(3):  # fresh ports when one was taken before it was bound
            redis_port = free_cluster_ports(C.NODES)[0] if mode == "cluster" else free_port()
            cfg = R.Settings(port=free_port(), instances=instances, server=server,
                             redis_url=redis_url or "", redis_port=redis_port, redis_mode=mode,
                             var=os.path.join(tmpdir, "var"), **settings)
            cfg.check()
            plan = R.render(cfg)
            specs = {p.name: p for p in plan.processes}
            try:
                redis, nodes = _start_redis_nodes(plan, cfg, specs, env, log_dir)
                break
            except PortTaken:
                if attempt == 2:
                    raise
        if nodes:
            C.create(R.binary("redis-cli", "/usr/bin"), plan.cluster_ports)
        st = Stack(plan, env, redis, log_dir)
        st.redis_nodes = nodes
        for inst in plan.instances:
            st.instances.append(Node(inst, _start(specs[inst.name], env, log_dir), server))
        st.nginx = _start(specs["nginx"], env, log_dir)

        def all_up():
            for node in st.instances:
                if not node.alive():
                    raise RuntimeError("%s exited:\n%s" % (node.name, node.process.log_tail()))
            return all(node.probe() == 200 for node in st.instances)

        wait_until(all_up, timeout=timeout, interval=0.05, what="every instance's /healthz")
        _wait_port(cfg.port, st.nginx, host=cfg.host)
        return st
    except BaseException:
        if st is not None:
            st.stop()
        else:
            for proc in [redis] + nodes if redis is not None else nodes:
                _stop(proc, signal.SIGTERM)
        raise
