"""``python -m stack run|stop|render|announce|keep`` (what `make run`/`make stop` call).

run      render configs into var/, write a Procfile, exec honcho on it
         (foreground; Ctrl-C makes honcho stop every process); each process
         runs under ``keep``, which starts it again when it dies
stop     stop a stack left behind, by the PID files under var/
render   write configs only (``--system --out DIR`` for a systemd server)
announce (a Procfile entry) wait until nginx answers /readyz, print the URL
         and the auth mode, then idle until honcho stops it
cluster  (a Procfile entry, JOBMASTER_REDIS_MODE=cluster) join the stack's
         Redis nodes into a cluster, then idle
keep     NAME -- ARGV: run ARGV, start it again when it dies (stack/keep.py)
"""
import argparse
import glob
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

from . import cluster as C
from . import render as R
from .net import free_cluster_ports, free_port, port_open, process_alive


def _settings(environ=None):
    return R.Settings.from_env(environ)


def _archive_url(settings):
    if settings.mongo == "embedded":
        return "mongodb://127.0.0.1:%d/jobmaster (embedded nx-27017, data in var/mongo)" % (
            settings.mongo_port)
    url = os.environ.get("JOBMASTER_MONGO_URL", "")
    return url.split("@")[-1] if url else ""  # (never print credentials)


def _own_port(env, field, default, overrides, what):
    """The port of a server the stack starts itself: its variable's, or the
    default, or (the default being taken) a free one."""
    name = "JOBMASTER_" + field.upper()
    port = int(env.get(name) or default)
    if port_open(port):
        if env.get(name):
            sys.exit("port %d (%s) is taken; pick another" % (port, name))
        overrides[field] = free_port()
        print("note: port %d is taken (%s); the stack uses port %d"
              % (port, what, overrides[field]), flush=True)


def cmd_run(args):
    env = os.environ
    # `make run` launches fleets as local processes unless told otherwise
    # (docs/contract.md §10); the instances inherit this environment.
    env.setdefault("JOBMASTER_LAUNCHER", "local")
    stop_leftovers(_settings())
    overrides = {}
    if not env.get("JOBMASTER_REDIS_URL"):
        port = int(env.get("JOBMASTER_REDIS_PORT") or 6379)
        if env.get("JOBMASTER_REDIS_MODE") == "cluster":  # six nodes from that port
            if free_cluster_ports(C.NODES, first=port)[0] != port:
                if env.get("JOBMASTER_REDIS_PORT"):
                    sys.exit("ports %d-%d (JOBMASTER_REDIS_PORT, a cluster of %d) or their bus "
                             "ports (+10000) are taken; pick another"
                             % (port, port + C.NODES - 1, C.NODES))
                overrides["redis_port"] = free_cluster_ports(C.NODES)[0]
                print("note: ports %d-%d are taken; the stack's Redis Cluster uses %d-%d"
                      % (port, port + C.NODES - 1, overrides["redis_port"],
                         overrides["redis_port"] + C.NODES - 1), flush=True)
        else:
            # Debian's redis-server service usually holds 6379; the stack
            # keeps its own Redis (data under var/) on another port.
            _own_port(env, "redis_port", 6379, overrides, "a system Redis?")
    if env.get("JOBMASTER_MONGO") == "embedded":
        _own_port(env, "mongo_port", 27017, overrides, "the embedded archive, nx-27017")
    settings = R.Settings.from_env(env, **overrides)
    if port_open(settings.port, settings.host if settings.host != "0.0.0.0" else "127.0.0.1"):
        sys.exit("%s:%d is taken; stop whatever listens there or set JOBMASTER_PORT"
                 % (settings.host, settings.port))
    plan = R.render(settings)
    procfile = os.path.join(plan.layout.conf, "Procfile")
    # Each process runs under a keeper that starts it again when it dies
    # (kill -9, a crash), as systemd's Restart=on-failure does on a server.
    lines = ["%s: %s" % (p.name, p.shell(keep=True)) for p in plan.processes]
    announce = R.ProcSpec("announce", [sys.executable, "-m", "stack", "announce",
                                       "--url", plan.url, "--redis", plan.redis_url,
                                       "--sockets", ",".join(i.socket for i in plan.instances),
                                       "--logs", plan.layout.log,
                                       "--archive", _archive_url(settings)], "")
    lines.append("announce: " + announce.shell())
    with open(procfile, "w") as fh:
        fh.write("# Rendered by `python -m stack run`; one line per process.\n")
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(plan.layout.run, "honcho.pid"), "w") as fh:
        fh.write("%d\n" % os.getpid())
    print("starting %d %s instance(s), nginx on %s (configs in %s)"
          % (settings.instances, settings.server, plan.url, plan.layout.conf), flush=True)
    honcho = R.venv_bin("honcho")
    # exec: honcho takes this PID (written above), and Ctrl-C goes to it.
    os.chdir(R.ROOT)
    os.execv(honcho, [honcho, "-f", procfile, "-d", R.ROOT, "start"])


def cmd_cluster(args):
    """(a Procfile entry) join the stack's Redis nodes into one cluster, or
    find it made by an earlier run, then idle until honcho stops it."""
    ports = [int(p) for p in args.ports.split(",")]
    try:
        C.create(R.binary("redis-cli", "/usr/bin"), ports)
    except RuntimeError as err:
        print(err, flush=True)
        sys.exit(1)
    print("redis cluster: %d nodes on ports %d-%d, healthy" % (len(ports), ports[0], ports[-1]),
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def cmd_announce(args):
    deadline = time.monotonic() + args.timeout
    body = None
    while time.monotonic() < deadline:
        if all(os.path.exists(s) for s in args.sockets.split(",")):
            try:
                with urllib.request.urlopen(args.url + "/readyz", timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
        time.sleep(0.2)
    if body is None:
        print("jobmaster did not become ready within %ds; see the output above and %s"
              % (args.timeout, args.logs), flush=True)
        sys.exit(1)
    admin = len([t for t in os.environ.get("JOBMASTER_ADMIN_TOKENS", "").split(",") if t.strip()])
    worker = len([t for t in os.environ.get("JOBMASTER_WORKER_TOKENS", "").split(",") if t.strip()])
    if admin or worker:
        auth = "on (%d admin token(s), %d worker token(s))" % (admin, worker)
    else:
        auth = ("OFF: no JOBMASTER_ADMIN_TOKENS / JOBMASTER_WORKER_TOKENS set, "
                "anyone who can reach the port may use the API")
    if args.archive:
        archive = "%s (%s)" % (args.archive, body.get("checks", {}).get("mongo", "?"))
    else:
        archive = "off: results stay in Redis (set JOBMASTER_MONGO_URL, or JOBMASTER_MONGO=embedded)"
    print("\n  jobmaster is up: %s\n  auth: %s\n  redis: %s\n  archive: %s\n  logs: %s\n"
          "  Ctrl-C stops everything.\n" % (args.url, auth, args.redis, archive, args.logs),
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


# What each PID file's process is called, so a recycled PID is never signalled.
_NAMES = {"honcho": ("honcho",), "nginx": ("nginx",), "redis": ("redis",),
          "mongo": ("nx-27017", "nx_27017")}


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def stop_leftovers(settings, timeout=15.0, quiet=False):
    """Stop whatever a previous run left, by its PID files; True if any."""
    layout = R.Layout.dev(settings.var or os.path.join(R.ROOT, "var"))
    pidfiles = sorted(glob.glob(os.path.join(layout.run, "*.pid")),
                      key=lambda p: os.path.basename(p) != "honcho.pid")  # honcho first
    stopped = False
    for path in pidfiles:
        kind = os.path.basename(path)[:-4]
        try:
            with open(path) as fh:
                pid = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        words = _NAMES.get(kind.split("-", 1)[0] if kind.startswith("redis-") else kind,
                           ("uwsgi", "gunicorn", "jobmaster"))
        if pid <= 1 or not process_alive(pid) or not any(w in _cmdline(pid) for w in words):
            _unlink(path)
            continue
        if not quiet:
            print("stopping %s (pid %d)" % (kind, pid), flush=True)
        stopped = True
        # honcho: SIGTERM stops its children. uWSGI has die-on-term; nginx,
        # Redis and gunicorn stop on SIGTERM.
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            _signal(-pid, signal.SIGKILL)
            _signal(pid, signal.SIGKILL)
        _unlink(path)
    # honcho's helper processes (one per Procfile line) outlive a honcho
    # that was killed with -9; they are known by this stack's Procfile path.
    procfile = os.path.join(layout.conf, "Procfile")
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            cmd = _cmdline(int(entry))
            if "honcho" in cmd and " %s " % procfile in " %s " % cmd:
                # They ignore SIGTERM by design (they only relay output).
                _signal(int(entry), signal.SIGKILL)
                stopped = True
    return stopped


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def cmd_stop(args):
    if not stop_leftovers(_settings()):
        print("no jobmaster stack is running from this directory")


def cmd_render(args):
    settings = R.Settings.from_env(system=args.system)
    plan = R.render(settings, out=args.out)
    for path in plan.files:
        print(path)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keep"]:  # its argv is a command line of its own
        from . import keep
        return keep.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").set_defaults(func=cmd_run)
    sub.add_parser("stop").set_defaults(func=cmd_stop)
    p = sub.add_parser("render")
    p.add_argument("--system", action="store_true",
                   help="paths for a systemd server (/etc/jobmaster, /run/jobmaster, ...)")
    p.add_argument("--out", help="write the files here (default: their final place)")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("cluster")
    p.add_argument("--ports", required=True)
    p.set_defaults(func=cmd_cluster)
    p = sub.add_parser("announce")
    p.add_argument("--url", required=True)
    p.add_argument("--redis", default="")
    p.add_argument("--sockets", default="")
    p.add_argument("--logs", default="")
    p.add_argument("--archive", default="")
    p.add_argument("--timeout", type=float, default=90)
    p.set_defaults(func=cmd_announce)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
