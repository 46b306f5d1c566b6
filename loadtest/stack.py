"""Bring up a benchmark stack: Redis, N uWSGI gevent instances, nginx.

Used by ``make bench`` (through :mod:`loadtest.bench`) when it is not
pointed at a running stack. The shape is the production one (DESIGN.md §1):
nginx (``ip_hash``, realip trusting 127.0.0.1's ``X-Forwarded-For``) →
``uwsgi_pass`` → N uWSGI instances (1 master + 1 worker, gevent) → one
Redis with AOF on. Configs and logs go to ``var/bench/stack/``. Every port
is a free loopback port unless given. Every process is stopped by its PID.

    python -m loadtest.stack            # up until Ctrl-C (or --seconds)
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.05)


def which(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not path:
        raise SystemExit("%s is not installed (run `make deps`)" % name)
    return path


NGINX_CONF = """\
# Rendered by loadtest/stack.py for the benchmark; mirrors the production shape.
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
{user}
events {{
    worker_connections 32768;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 64m;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    upstream jobmaster {{
        ip_hash;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            include {uwsgi_params};
            uwsgi_param HTTP_X_REQUEST_ID $request_id;
            uwsgi_pass jobmaster;
            uwsgi_read_timeout 120s;
        }}
    }}
}}
"""


class Stack:
    def __init__(self, instances=4, port=None, redis_port=None, workdir=None, aof=True,
                 gevent=1000, listen=4096):
        self.instances = instances
        self.port = port or free_port()
        self.redis_port = redis_port or free_port()
        self.dir = os.path.abspath(workdir or os.path.join(ROOT, "var", "bench", "stack"))
        self.aof = aof
        self.gevent = gevent
        with open("/proc/sys/net/core/somaxconn") as fh:
            self.listen = min(listen, int(fh.read()))
        self.procs = []   # (name, Popen)
        self.uwsgi_ports = []

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def redis_url(self):
        return "redis://127.0.0.1:%d/0" % self.redis_port

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                             start_new_session=True)
        log.close()
        self.procs.append((name, p))
        return p

    def up(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        # a fresh Redis every time: AOF left by an earlier run would be loaded
        shutil.rmtree(os.path.join(self.dir, "redis"), ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "redis"), exist_ok=True)
        self._spawn("redis", [which("redis-server"), "--port", str(self.redis_port),
                              "--bind", "127.0.0.1", "--dir", os.path.join(self.dir, "redis"),
                              "--save", "", "--appendonly", "yes" if self.aof else "no",
                              "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                              "--protected-mode", "yes", "--daemonize", "no"])
        wait_until(lambda: port_open(self.redis_port), 20, "redis")
        uwsgi = os.path.join(ROOT, ".venv", "bin", "uwsgi")
        for i in range(self.instances):
            port = free_port()
            self.uwsgi_ports.append(port)
            env = dict(os.environ, JOBMASTER_REDIS_URL=self.redis_url,
                       JOBMASTER_INSTANCE="bench-%d" % (i + 1))
            env.pop("JOBMASTER_NO_GEVENT", None)
            self._spawn("uwsgi-%d" % (i + 1), [
                uwsgi, "--master", "--socket", "127.0.0.1:%d" % port, "--module", "wsgi:application",
                "--gevent", str(self.gevent), "--listen", str(self.listen), "--need-app",
                "--die-on-term", "--disable-logging", "--processes", "1", "--buffer-size", "32768",
                "--post-buffering", "65536", "--chdir", ROOT], env=env)
        for port in self.uwsgi_ports:
            wait_until(lambda: port_open(port) or self._dead(), 60, "uwsgi on %d" % port)
            if self._dead():
                self.down()
                raise SystemExit("a stack process died; see %s" % self.dir)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(
                workers=2, d=self.dir, port=self.port,
                user="user root;" if os.geteuid() == 0 else "",
                servers="\n".join("        server 127.0.0.1:%d;" % p for p in self.uwsgi_ports),
                uwsgi_params=self._uwsgi_params()))
        self._spawn("nginx", [which("nginx"), "-c", conf, "-p", self.dir, "-g", "daemon off;"])
        wait_until(lambda: port_open(self.port) or self._dead(), 20, "nginx")
        if self._dead():
            self.down()
            raise SystemExit("a stack process died; see %s" % self.dir)
        return self

    def _uwsgi_params(self):
        for path in ("/etc/nginx/uwsgi_params",):
            if os.path.exists(path):
                return path
        path = os.path.join(self.dir, "uwsgi_params")
        with open(path, "w") as fh:
            for k, v in [("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"),
                         ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
                         ("REQUEST_URI", "$request_uri"), ("PATH_INFO", "$document_uri"),
                         ("DOCUMENT_ROOT", "$document_root"), ("SERVER_PROTOCOL", "$server_protocol"),
                         ("REQUEST_SCHEME", "$scheme"), ("REMOTE_ADDR", "$remote_addr"),
                         ("REMOTE_PORT", "$remote_port"), ("SERVER_PORT", "$server_port"),
                         ("SERVER_NAME", "$server_name")]:
                fh.write("uwsgi_param %s %s;\n" % (k, v))
        return path

    def _dead(self):
        return any(p.poll() is not None for _, p in self.procs)

    def pids(self):
        return {name: p.pid for name, p in self.procs}

    def down(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                sig = signal.SIGQUIT if name == "nginx" else signal.SIGTERM
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass
        for name, p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        self.procs = []

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


class ProdStack:
    """The production stack, exactly as ``make run`` starts it (``python -m
    stack run``: rendered configs from conf/, honcho), on free loopback
    ports with its files under ``var/bench/prod`` (wiped first).

    ``JOBMASTER_TRUSTED_PROXIES=127.0.0.1``: wrk can only connect from
    127.0.0.1, so it plays a gateway and spreads its requests with
    X-Forwarded-For; the simulated pods connect from their own 127.a.b.c
    addresses, which are not trusted, so nginx sees their real address.
    Any other ``JOBMASTER_*`` setting can be passed in ``env``.
    """

    def __init__(self, instances=4, port=None, redis_port=None, workdir=None, env=None):
        self.instances = instances
        self.port = port or free_port()
        self.redis_port = redis_port or free_port()
        self.dir = os.path.abspath(workdir or os.path.join(ROOT, "var", "bench", "prod"))
        self.env = dict(os.environ)
        self.env.update({"JOBMASTER_PORT": str(self.port), "JOBMASTER_REDIS_PORT": str(self.redis_port),
                         "JOBMASTER_INSTANCES": str(instances), "JOBMASTER_VAR": self.dir,
                         "JOBMASTER_TRUSTED_PROXIES": "127.0.0.1"})
        self.env.pop("JOBMASTER_REDIS_URL", None)
        self.env.update(env or {})
        self.proc = None
        self.procs = []

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def redis_url(self):
        return "redis://127.0.0.1:%d/0" % self.redis_port

    def describe(self):
        keys = sorted(k for k in self.env if k.startswith("JOBMASTER_") and "TOKEN" not in k)
        return " ".join("%s=%s" % (k, self.env[k]) for k in keys if k != "JOBMASTER_VAR")

    def up(self, timeout=120):
        import urllib.request

        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        log = open(os.path.join(self.dir, "stack.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stack", "run"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs = [("stack", self.proc)]

        def ready():
            if self.proc.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(ready, timeout, "the stack at %s" % self.url)
        if self.proc.poll() is not None:
            raise SystemExit("`python -m stack run` exited; see %s/stack.log" % self.dir)
        return self

    def pids(self):
        return {"honcho": self.proc.pid if self.proc else None}

    def down(self):
        if not self.proc:
            return
        try:
            subprocess.run([sys.executable, "-m", "stack", "stop"], cwd=ROOT, env=self.env,
                           capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


def main(argv=None):
    p = argparse.ArgumentParser(description="benchmark stack: nginx -> uWSGI x N -> Redis")
    p.add_argument("--instances", type=int, default=int(os.environ.get("JOBMASTER_INSTANCES", 4)))
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--seconds", type=float, default=3600.0, help="stop by itself after this long")
    p.add_argument("--own", action="store_true",
                   help="the small self-contained stack instead of `python -m stack run`")
    args = p.parse_args(argv)
    cls = Stack if args.own else ProdStack
    with cls(args.instances, args.port) as st:
        print("up: %s  redis: %s  pids: %s" % (st.url, st.redis_url, st.pids()), flush=True)
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
