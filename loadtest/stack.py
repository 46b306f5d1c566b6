"""The benchmark's stack: the production one, exactly as ``make run`` starts it.

Used by ``make bench`` (through :mod:`loadtest.bench`) when it is not
pointed at a running stack: ``python -m stack run`` (configs rendered from
conf/, honcho) on free loopback ports, its files under ``var/bench/prod``,
stopped with ``python -m stack stop`` and, failing that, by its process group.

    python -m loadtest.stack            # up until Ctrl-C (or --seconds)
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from stack.net import free_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

    def __init__(self, instances=4, port=None, redis_port=None, workdir=None, env=None, root=None):
        self.root = root or ROOT  # another checkout's code (loadtest/ab.py)
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
        self.proc = subprocess.Popen([sys.executable, "-m", "stack", "run"], cwd=self.root, env=self.env,
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
        wait_until(ready, timeout, 0.05, "the stack at %s" % self.url)
        if self.proc.poll() is not None:
            raise SystemExit("`python -m stack run` exited; see %s/stack.log" % self.dir)
        return self

    def pids(self):
        return {"honcho": self.proc.pid if self.proc else None}

    def down(self):
        if not self.proc:
            return
        try:
            subprocess.run([sys.executable, "-m", "stack", "stop"], cwd=self.root, env=self.env,
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
    args = p.parse_args(argv)
    with ProdStack(args.instances, args.port) as st:
        print("up: %s  redis: %s  pids: %s" % (st.url, st.redis_url, st.pids()), flush=True)
        try:
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
