"""Settings → rendered configs + the list of processes that make the stack.

Everything the stack needs is decided here once, for ``make run``, for the
integration tests and (with ``system=True``) for a systemd server, so the
three can never drift apart. Templates live in ``conf/`` and use ``{{name}}``
placeholders (nginx itself owns ``$name``); an unknown placeholder is an
error, never an empty string.
"""
import hashlib
import os
import re
import resource
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, fields, replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "conf")

# The app refuses bodies above this too (app/config.py MAX_BODY_BYTES); nginx
# must agree or it would 413 what the app accepts (or read what it rejects).
DEFAULT_MAX_BODY = 64 * 1024 * 1024
DEFAULT_MAX_FILE = 1024 ** 3  # the app's MAX_FILE_BYTES


def somaxconn():
    """The kernel's cap on listen backlogs; uWSGI exits if asked for more."""
    try:
        with open("/proc/sys/net/core/somaxconn") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 4096


@dataclass
class Settings:
    """Every knob of the stack, each with its ``JOBMASTER_*`` variable."""

    host: str = "127.0.0.1"          # JOBMASTER_HOST: where nginx listens
    port: int = 8080                 # JOBMASTER_PORT
    instances: int = 4               # JOBMASTER_INSTANCES: app server instances
    server: str = "uwsgi"            # JOBMASTER_SERVER: uwsgi | gunicorn
    workers: int = 1                 # JOBMASTER_WORKERS: processes per instance
    gevent_cores: int = 2000         # JOBMASTER_GEVENT_CORES: greenlets per process
    redis_port: int = 6379           # JOBMASTER_REDIS_PORT: the stack's own Redis
    redis_url: str = ""              # JOBMASTER_REDIS_URL: use this Redis, start none
    # The archive: JOBMASTER_MONGO_URL (the app's setting) points at a MongoDB;
    # JOBMASTER_MONGO=embedded starts nx-27017, a MongoDB wire-protocol server
    # on SQLite (the stand-in the tests use), with its data under var/mongo.
    mongo: str = ""                  # JOBMASTER_MONGO: "" (none, or JOBMASTER_MONGO_URL's) | embedded
    mongo_port: int = 27017          # JOBMASTER_MONGO_PORT: the embedded server's port
    # The apps reach the stack's own Redis over a UNIX socket: a loopback TCP
    # round trip runs the whole TCP stack twice per script call on both sides
    # (measured: ~10-15 % of a lease's CPU). 0 = over TCP, like remote Redis.
    redis_socket: bool = True        # JOBMASTER_REDIS_SOCKET
    max_body_bytes: int = DEFAULT_MAX_BODY  # JOBMASTER_MAX_BODY_BYTES (shared with the app)
    max_file_bytes: int = DEFAULT_MAX_FILE  # JOBMASTER_MAX_FILE_BYTES (shared with the app)
    rate_limit: int = 2000           # JOBMASTER_RATE_LIMIT: requests/s per client address, 0 = off
    rate_burst: int = 20000          # JOBMASTER_RATE_BURST: requests above the rate let through at once
    # A scraper needs one /metrics every few seconds (the text is rebuilt at
    # most every JOBMASTER_METRICS_CACHE_SECONDS anyway); unpaced, `wrk -c50`
    # on it made every task of a swarm cost 36% more CPU (docs/RELIABILITY.md).
    metrics_rate: int = 5            # JOBMASTER_METRICS_RATE: /metrics requests/s per client address, 0 = off
    # Connections (requests in progress) per client address, after realip;
    # 0 = off. A pod holds one or two; behind an untrusted gateway every pod
    # shares the gateway's address, so raise it or list the gateway below.
    conn_limit: int = 1024           # JOBMASTER_CONN_LIMIT
    # Seconds nginx waits for the next piece of a request's headers / body
    # (nginx has no whole-body deadline: a slow client is cut off when it
    # stalls this long, and holds at most conn_limit connections meanwhile).
    header_timeout: int = 10         # JOBMASTER_HEADER_TIMEOUT
    body_timeout: int = 10           # JOBMASTER_BODY_TIMEOUT
    trusted_proxies: str = ""        # JOBMASTER_TRUSTED_PROXIES: gateway CIDRs for realip, comma-separated
    balance: str = "ip_hash"         # JOBMASTER_BALANCE: ip_hash | worker_id | least_conn
    nginx_connections: int = 16384   # JOBMASTER_NGINX_CONNECTIONS: per nginx worker
    nginx_workers: str = "auto"      # JOBMASTER_NGINX_WORKERS
    backlog: int = 4096              # JOBMASTER_BACKLOG: listen queues, capped at somaxconn
    # Per app process. Under CPU saturation a greenlet holding a pooled
    # connection waits for its turn on the CPU, so 64 connections and 5 s
    # (the app's defaults) answered 503s to a 500-pod swarm on 2 cores;
    # waiting longer is better than an error (nginx waits 120 s).
    redis_pool_size: int = 32        # JOBMASTER_REDIS_POOL_SIZE
    redis_pool_timeout: float = 30.0  # JOBMASTER_REDIS_POOL_TIMEOUT: seconds
    max_fails: int = 0               # JOBMASTER_MAX_FAILS: nginx marks an instance down after this many
    harakiri: int = 120              # JOBMASTER_HARAKIRI: seconds an event loop may stall
    var: str = ""                    # JOBMASTER_VAR: runtime dir (default <repo>/var)
    system: bool = False             # render for /etc, /run, /var/lib (systemd) instead of var/

    @classmethod
    def from_env(cls, environ=None, **overrides):
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get("JOBMASTER_" + f.name.upper())
            if raw is None or raw == "" or f.name == "system":
                continue
            values[f.name] = _parse(f, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self):
        if self.server not in ("uwsgi", "gunicorn"):
            raise ValueError("JOBMASTER_SERVER must be uwsgi or gunicorn, not %r" % self.server)
        if self.balance not in BALANCE:
            raise ValueError("JOBMASTER_BALANCE must be one of %s" % ", ".join(BALANCE))
        if self.mongo not in ("", "embedded"):
            raise ValueError("JOBMASTER_MONGO must be empty or embedded, not %r" % self.mongo)
        if self.instances < 1 or self.workers < 1:
            raise ValueError("JOBMASTER_INSTANCES and JOBMASTER_WORKERS must be >= 1")
        for cidr in self.proxies():
            if not re.match(r"^[0-9a-fA-F.:]+(/\d{1,3})?$", cidr) and cidr != "unix:":
                raise ValueError("not an address or CIDR in JOBMASTER_TRUSTED_PROXIES: %r" % cidr)

    def proxies(self):
        return [c.strip() for c in self.trusted_proxies.split(",") if c.strip()]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)


def _parse(f, raw):
    if f.type in (int, "int"):
        return int(raw)
    if f.type in (float, "float"):
        return float(raw)
    if f.type in (bool, "bool"):
        return raw.lower() in ("1", "true", "yes", "on")
    return raw


# How nginx picks an instance. ip_hash is the contract's default (affinity by
# client address, realip-aware); worker_id is for fleets inside one /24 (see
# docs/deploy.md); least_conn when affinity is not wanted (state is in Redis).
BALANCE = {
    "ip_hash": "ip_hash;",
    "worker_id": "hash $jm_affinity_key consistent;",
    "least_conn": "least_conn;",
}


@dataclass
class Layout:
    """Where a stack keeps its files."""

    conf: str
    run: str
    log: str
    data: str
    nginx: str
    metrics: str

    @classmethod
    def dev(cls, var):
        var = os.path.abspath(var)
        run = os.path.join(var, "run")
        # A UNIX socket path must fit in sun_path (108 bytes); a deep checkout
        # would not, so its sockets go to a short per-checkout dir in /tmp.
        if len(os.path.join(run, "web-999.stats")) > 100:
            run = os.path.join(tempfile.gettempdir(),
                               "jobmaster-" + hashlib.sha1(var.encode()).hexdigest()[:10])
        return cls(conf=os.path.join(var, "conf"), run=run, log=os.path.join(var, "log"),
                   data=os.path.join(var, "redis"), nginx=os.path.join(var, "nginx"),
                   metrics=os.path.join(var, "metrics"))

    @classmethod
    def systemd(cls):
        return cls(conf="/etc/jobmaster", run="/run/jobmaster", log="/var/log/jobmaster",
                   data="/var/lib/jobmaster/redis", nginx="/var/lib/jobmaster/nginx",
                   metrics="/run/jobmaster/metrics")


@dataclass
class Instance:
    """One app server instance (a uWSGI or gunicorn master and its workers)."""

    name: str
    socket: str
    pidfile: str
    fifo: str = ""       # uWSGI master FIFO: 'r' graceful reload, 'q' graceful stop
    stats: str = ""      # uWSGI stats socket (JSON)


@dataclass
class ProcSpec:
    """A long-running process of the stack, as honcho or a test starts it."""

    name: str
    argv: list
    pidfile: str
    env: dict = field(default_factory=dict)

    def command(self):
        """argv with the process's environment in front (through env(1))."""
        assigns = ["%s=%s" % (k, v) for k, v in sorted(self.env.items())]
        return (["env"] + assigns if assigns else []) + list(self.argv)

    def shell(self, keep=False):
        """The Procfile command: exec, so honcho's pid is the server's pid,
        or (``keep``) the pid of the keeper that restarts it (stack/keep.py)."""
        argv = self.command()
        if keep:
            argv = [sys.executable, "-m", "stack", "keep", self.name, "--"] + argv
        return "exec " + " ".join(shlex.quote(a) for a in argv)


@dataclass
class Plan:
    settings: Settings
    layout: Layout
    url: str
    redis_url: str
    instances: list
    processes: list      # redis (if ours), the instances, nginx: start in this order
    files: list


def binary(name, *extra):
    for path in (shutil.which(name), *("%s/%s" % (d, name) for d in extra)):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("%s is not installed (run `make deps`)" % name)


def venv_bin(name):
    """A console script of the venv this Python runs in (or the repo's .venv)."""
    for d in (os.path.dirname(sys.executable), os.path.join(ROOT, ".venv", "bin")):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError("%s is not in the venv (run `make venv`)" % name)


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def fill(template, values):
    def sub(m):
        if m.group(1) not in values:
            raise KeyError("template placeholder {{%s}} has no value" % m.group(1))
        return str(values[m.group(1)])
    return _PLACEHOLDER.sub(sub, template)


def _template(*parts):
    with open(os.path.join(CONF, *parts)) as fh:
        return fh.read()


def _write(path, text, files):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    files.append(path)


def nofile_limits(connections, system):
    """(worker_connections, worker_rlimit_nofile) this process can have.

    Every connection, client or upstream, holds one descriptor and counts
    against worker_connections: 10,000 pollers are 20,000 connections,
    spread over the workers. The rest (logs, temp files) fits in 1024 more.
    Outside systemd (whose unit sets LimitNOFILE) the hard limit caps it:
    raising it needs CAP_SYS_RESOURCE, which root in a container lacks, and
    nginx would only log an alert and run with the old limit.
    """
    want = connections + 1024
    if not system:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < want:
            want = hard
            connections = max(1024, hard - 1024)
    return connections, want


def render(settings, out=None, upstream=None):
    """Write every config for ``settings`` and return the :class:`Plan`.

    ``out`` is where files are written (default: the layout's conf dir);
    the paths inside them always refer to the layout. With ``upstream`` (a
    list of :class:`Instance`), only an nginx in front of those instances
    is rendered: a second nginx with other settings over a running stack.
    """
    s = settings
    var = s.var or os.path.join(ROOT, "var")
    layout = Layout.systemd() if s.system else Layout.dev(var)
    out = out or layout.conf
    as_root = s.system or os.geteuid() == 0
    backlog = min(s.backlog, somaxconn())
    files = []
    if not s.system:
        for d in (layout.conf, layout.run, layout.log, layout.data, layout.nginx):
            os.makedirs(d, exist_ok=True)
        # Metrics files of processes from an earlier run would be summed in.
        shutil.rmtree(layout.metrics, ignore_errors=True)
        os.makedirs(layout.metrics)

    own_redis = not s.redis_url and upstream is None
    # redis_url: for tools and tests (TCP); app_redis_url: what the apps use.
    redis_url = app_redis_url = s.redis_url or "redis://127.0.0.1:%d/0" % s.redis_port
    processes = []
    if own_redis:
        redis_conf = os.path.join(out, "redis.conf")
        redis_sock = os.path.join(layout.run, "redis.sock")
        if s.redis_socket:
            app_redis_url = "unix://%s?db=0" % redis_sock
        _write(redis_conf, fill(_template("redis", "redis.conf.tmpl"), {
            "port": s.redis_port, "dir": layout.data, "backlog": backlog,
            "unixsocket": ("unixsocket %s\nunixsocketperm 770" % redis_sock if s.redis_socket
                           else "# no UNIX socket (JOBMASTER_REDIS_SOCKET=0)"),
            "pidfile": os.path.join(layout.run, "redis.pid"),
            "logfile": "" if not s.system else os.path.join(layout.log, "redis.log"),
        }), files)
        processes.append(ProcSpec("redis", [binary("redis-server", "/usr/bin", "/usr/sbin"),
                                            os.path.join(layout.conf, "redis.conf")],
                                  os.path.join(layout.run, "redis.pid")))

    if s.mongo == "embedded" and upstream is None:
        mongo_dir = os.path.join(var, "mongo")
        os.makedirs(mongo_dir, exist_ok=True)
        processes.append(ProcSpec("mongo", [
            venv_bin("nx-27017"), "--host", "127.0.0.1", "-p", str(s.mongo_port),
            "--data-dir", mongo_dir, "--log-file", os.path.join(layout.log, "mongo.log"),
            "--pid-file", os.path.join(layout.run, "mongo.pid")],
            os.path.join(layout.run, "mongo.pid")))

    app_env = {"JOBMASTER_REDIS_URL": app_redis_url,
               "JOBMASTER_PROMETHEUS_MULTIPROC_DIR": layout.metrics,
               "JOBMASTER_MAX_BODY_BYTES": str(s.max_body_bytes),
               "JOBMASTER_MAX_FILE_BYTES": str(s.max_file_bytes),
               "JOBMASTER_REDIS_POOL_SIZE": str(s.redis_pool_size),
               "JOBMASTER_REDIS_POOL_TIMEOUT": str(s.redis_pool_timeout)}
    if s.mongo == "embedded":
        app_env["JOBMASTER_MONGO_URL"] = "mongodb://127.0.0.1:%d/jobmaster" % s.mongo_port
    instances = list(upstream or [])
    for i in range(1, 0 if upstream is not None else s.instances + 1):
        name = "web-%d" % i
        inst = Instance(name=name, socket=os.path.join(layout.run, name + ".sock"),
                        pidfile=os.path.join(layout.run, name + ".pid"))
        env = dict(app_env, JOBMASTER_INSTANCE=name)
        if s.server == "uwsgi":
            inst.fifo = os.path.join(layout.run, name + ".fifo")
            inst.stats = os.path.join(layout.run, name + ".stats")
            ini = os.path.join(out, "uwsgi", name + ".ini")
            _write(ini, fill(_template("uwsgi", "jobmaster.ini.tmpl"), {
                "name": name, "root": ROOT, "venv": os.path.dirname(os.path.dirname(venv_bin("uwsgi"))), "socket": inst.socket, "fifo": inst.fifo,
                "stats": inst.stats, "pidfile": inst.pidfile, "listen": backlog,
                "workers": s.workers, "cores": s.gevent_cores, "harakiri": s.harakiri,
                "env": "\n".join("env = %s=%s" % kv for kv in sorted(env.items())),
            }), files)
            argv = [venv_bin("uwsgi"), "--ini", os.path.join(layout.conf, "uwsgi", name + ".ini")]
            processes.append(ProcSpec(name, argv, inst.pidfile))
        else:
            env.update(JOBMASTER_BIND="unix:" + inst.socket, JOBMASTER_PIDFILE=inst.pidfile,
                       JOBMASTER_WORKERS=str(s.workers), JOBMASTER_BACKLOG=str(backlog),
                       JOBMASTER_GEVENT_CORES=str(s.gevent_cores))
            argv = [venv_bin("gunicorn"), "--chdir", ROOT, "-c",
                    os.path.join(CONF, "gunicorn", "gunicorn.conf.py"), "wsgi:application"]
            processes.append(ProcSpec(name, argv, inst.pidfile, env))
        instances.append(inst)

    connections, nofile = nofile_limits(s.nginx_connections, s.system)
    # max_fails=0: a refused connect to a local socket costs microseconds
    # and is retried on the next instance anyway. Counting failures would,
    # under a burst that fills one backlog, mark that instance down and pile
    # its clients onto the next until every instance is "down" and nginx
    # answers 502 (no live upstreams). JOBMASTER_MAX_FAILS for remote hosts.
    servers = "\n".join("    server unix:%s max_fails=%d fail_timeout=5s;"
                        % (inst.socket, s.max_fails) for inst in instances)
    if s.server == "gunicorn":
        # HTTP to gunicorn can reuse connections (uwsgi protocol cannot).
        servers += "\n    keepalive 64;\n    keepalive_timeout 60s;\n    keepalive_requests 10000;"
    realip = "\n".join("set_real_ip_from %s;" % c for c in s.proxies()) or \
        "# no trusted gateways: set JOBMASTER_TRUSTED_PROXIES to enable realip"
    if s.rate_limit > 0:
        # nodelay: a burst within the allowance is served at once, not paced.
        limit = ("limit_req zone=jm_per_client burst=%d nodelay;" % s.rate_burst
                 if s.rate_burst > 0 else "limit_req zone=jm_per_client;")
    else:
        limit = "# rate limiting off (JOBMASTER_RATE_LIMIT=0)"
    # Paced, not refused: 2 s worth of early requests pass at once, up to
    # 20 s worth wait their turn, and only beyond that comes the JSON 429 of
    # errors.conf. A flood on fewer connections than that (wrk -c50 at the
    # default 5/s) is then paced to the rate; on more, or with a 10 s burst
    # (tried), its extra connections spin on 429s, which nginx answers by the
    # ten thousand a second and which cost the workers far more CPU
    # (docs/RELIABILITY.md).
    metrics_limit = ("limit_req zone=jm_metrics burst=%d delay=%d;"
                     % (20 * s.metrics_rate, 2 * s.metrics_rate) if s.metrics_rate > 0
                     else "# /metrics not paced (JOBMASTER_METRICS_RATE=0)")
    values = {
        "user": "user root;" if (as_root and not s.system) else
                ("user www-data;" if s.system else "# not root: workers run as this user"),
        "worker_processes": s.nginx_workers, "worker_connections": connections,
        "worker_rlimit_nofile": nofile, "pidfile": os.path.join(layout.run, "nginx.pid"),
        "error_log": os.path.join(layout.log, "nginx-error.log"),
        "access_log": os.path.join(layout.log, "nginx-access.log"),
        "tmp": layout.nginx, "conf": layout.conf, "host": s.host, "port": s.port,
        "backlog": backlog, "max_body": s.max_body_bytes, "servers": servers,
        "max_file": s.max_file_bytes,
        "no_request_buffering": "%s_request_buffering off;" % (
            "uwsgi" if s.server == "uwsgi" else "proxy"),
        "balance": BALANCE[s.balance], "realip": realip,
        "rate": max(s.rate_limit, 1), "limit_req": limit,
        "metrics_rate": max(s.metrics_rate, 1), "metrics_limit_req": metrics_limit,
        "limit_conn": ("limit_conn jm_conn_per_client %d;" % s.conn_limit if s.conn_limit > 0
                       else "# connection limit off (JOBMASTER_CONN_LIMIT=0)"),
        "header_timeout": s.header_timeout, "body_timeout": s.body_timeout,
        "pass": "pass-%s.conf" % s.server,
        "upstream_tries": len(instances),
    }
    _write(os.path.join(out, "nginx.conf"), fill(_template("nginx", "nginx.conf.tmpl"), values), files)
    _write(os.path.join(out, "jobmaster.conf"),
           fill(_template("nginx", "jobmaster.conf.tmpl"), values), files)
    for static in ("pass-uwsgi.conf", "pass-gunicorn.conf", "errors.conf"):
        _write(os.path.join(out, static), fill(_template("nginx", static), values), files)
    nginx_argv = [binary("nginx", "/usr/sbin"), "-p", layout.nginx,
                  "-c", os.path.join(layout.conf, "nginx.conf"),
                  "-e", values["error_log"], "-g", "daemon off;"]
    processes.append(ProcSpec("nginx", nginx_argv, values["pidfile"]))

    return Plan(settings=s, layout=layout, url=s.url, redis_url=redis_url,
                instances=instances, processes=processes, files=files)


def with_overrides(settings, **changes):
    new = replace(settings, **changes)
    new.check()
    return new
