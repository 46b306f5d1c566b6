"""The nemesis of loadtest.chaos: faults injected into a stack that
``python -m stack run`` started (every process under stack/keep.py, which
starts a killed one again).

Processes are found by the PID files under the stack's ``run/`` directory
(redis.pid, web-N.pid for each instance's uWSGI master, nginx.pid) and their
children in /proc; only those are ever signalled. Every fault is logged as
``{"fault", "target", "pid", "at", "until"}`` (wall clock) for the checker.
"""
import glob
import os
import random
import signal
import time
import urllib.request

#: Every fault, by the name the command line uses.
FAULTS = ("uwsgi-worker", "instance", "nginx-worker", "redis", "pause-redis")
PAUSE_SECONDS = 10.0


def _read_pid(path):
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def children(pid):
    """PIDs whose parent is ``pid`` (from /proc/*/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command may hold spaces and parentheses: the ppid follows the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Nemesis:
    def __init__(self, run_dir, url, seed=0, pause_seconds=PAUSE_SECONDS):
        self.run_dir, self.url = run_dir, url
        self.rng = random.Random(seed)
        self.pause_seconds = pause_seconds
        self.log = []

    def _pid(self, name):
        pid = _read_pid(os.path.join(self.run_dir, name + ".pid"))
        return pid if pid and _alive(pid) else None

    def _instances(self):
        names = sorted(os.path.basename(p)[:-4]
                       for p in glob.glob(os.path.join(self.run_dir, "web-*.pid")))
        return [(n, p) for n, p in ((n, self._pid(n)) for n in names) if p]

    def _kill(self, fault, target, pid, sig=signal.SIGKILL):
        at = time.time()
        os.kill(pid, sig)
        event = {"fault": fault, "target": target, "pid": pid, "at": at, "until": at}
        self.log.append(event)
        return event

    def inject(self, fault):
        """Inject one fault; the event, or None when there was no target."""
        if fault == "uwsgi-worker":
            pool = [(n, c) for n, p in self._instances() for c in children(p)]
            if pool:
                name, pid = self.rng.choice(pool)
                return self._kill("kill-uwsgi-worker", name, pid)
        elif fault == "instance":
            pool = self._instances()
            if pool:
                name, pid = self.rng.choice(pool)
                return self._kill("kill-instance", name, pid)
        elif fault == "nginx-worker":
            master = self._pid("nginx")
            pool = children(master) if master else []
            if pool:
                return self._kill("kill-nginx-worker", "nginx", self.rng.choice(pool))
        elif fault == "redis":
            pid = self._pid("redis")
            if pid:
                return self._kill("kill-redis", "redis", pid)
        elif fault == "pause-redis":
            pid = self._pid("redis")
            if pid:
                event = self._kill("pause-redis", "redis", pid, signal.SIGSTOP)
                try:
                    time.sleep(self.pause_seconds)
                finally:
                    os.kill(pid, signal.SIGCONT)
                event["until"] = time.time()
                return event
        else:
            raise ValueError("unknown fault %r (one of %s)" % (fault, ", ".join(FAULTS)))
        return None

    def ready(self, timeout=60.0):
        """Wait until the stack answers /readyz again; seconds it took, or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return round(time.monotonic() - t0, 3)
            except OSError:
                pass
            time.sleep(0.1)
        return None

    def run(self, faults, interval, stop, count=None):
        """Inject ``faults`` in turn every ``interval`` seconds until ``stop``
        (a threading.Event) is set or ``count`` faults were injected; after each,
        wait for the stack to be ready again (its recovery time is logged)."""
        n = 0
        while not stop.wait(interval) and (count is None or n < count):
            event = self.inject(faults[n % len(faults)])
            n += 1
            if event is not None:
                event["ready_after_s"] = self.ready()
