"""``python -m stack keep NAME -- ARGV...``: run one process of the stack and
start it again when it dies, as the systemd units' ``Restart=on-failure``
does on a server.

honcho (what `make run` runs) stops every process as soon as one exits, so a
``kill -9`` of redis-server used to take the whole stack down. Under this
keeper honcho sees a process that does not exit: a child killed by a signal
or exiting non-zero is started again after ``RESTART_SECONDS``; one that
exits 0 (a deliberate stop) ends the keeper, and honcho then stops the rest.
A child that keeps dying (``BURST`` starts within ``BURST_SECONDS``, as
systemd's StartLimitBurst) is given up on, so a broken config ends the run
with its error instead of looping forever.

SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGUSR1/2 are passed to the child (a
reload stays a reload); after SIGTERM, SIGINT or SIGQUIT the keeper waits for
the child and exits with it. If the keeper's parent (honcho) dies, it stops
the child and exits, so a ``kill -9`` of honcho leaves no orphan that a
keeper would bring back.
"""
import os
import signal
import subprocess
import sys
import time

RESTART_SECONDS = 1.0
BURST, BURST_SECONDS = 5, 30.0
_STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_PASS = _STOP + (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _say(name, text):
    print("keep[%s]: %s" % (name, text), file=sys.stderr, flush=True)


def _why(code):
    return "was killed by signal %d" % -code if code < 0 else "exited with status %d" % code


class Keeper:
    def __init__(self, name, argv, restart_seconds=RESTART_SECONDS):
        self.name, self.argv, self.restart_seconds = name, argv, restart_seconds
        self.child = None
        self.stopping = None
        self.parent = os.getppid()

    def _on_signal(self, sig, frame):
        if sig in _STOP:
            self.stopping = sig
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(sig)

    def _wait(self):
        """The child's exit code; stops it if our parent went away."""
        while True:
            try:
                return self.child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if os.getppid() != self.parent and self.stopping is None:
                    _say(self.name, "parent gone; stopping the child")
                    self._on_signal(signal.SIGTERM, None)

    def run(self):
        for sig in _PASS:
            signal.signal(sig, self._on_signal)
        starts = []
        while True:
            now = time.monotonic()
            starts = [t for t in starts if now - t < BURST_SECONDS] + [now]
            self.child = subprocess.Popen(self.argv)
            code = self._wait()
            if self.stopping is not None:  # it stopped because we passed a stop on
                return 0 if code in (0, -self.stopping) else (code if code > 0 else 1)
            if code == 0:
                return 0
            if len(starts) >= BURST:
                _say(self.name, "%s; %d starts in %ds, giving up"
                     % (_why(code), len(starts), BURST_SECONDS))
                return code if code > 0 else 1
            _say(self.name, "%s; starting it again in %.1fs"
                 % (_why(code), self.restart_seconds))
            deadline = time.monotonic() + self.restart_seconds
            while time.monotonic() < deadline and self.stopping is None:
                time.sleep(0.05)
            if self.stopping is not None:
                return 0


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -m stack keep NAME -- ARGV...")
    sys.exit(Keeper(argv[0], argv[2:]).run())
