"""stack/keep.py, the restart-on-failure keeper of `make run`'s processes."""
import os
import signal
import subprocess
import sys

from stack.keep import BURST, Keeper
from tests.support.procs import wait_until


def test_a_crashing_child_is_given_up_after_a_burst_of_starts(tmp_path):
    marks = tmp_path / "starts"
    code = Keeper("crash", ["sh", "-c", "echo x >> %s; exit 3" % marks], restart_seconds=0).run()
    assert code == 3
    assert marks.read_text().count("x") == BURST


def test_a_child_that_exits_cleanly_is_not_started_again(tmp_path):
    marks = tmp_path / "starts"
    assert Keeper("clean", ["sh", "-c", "echo x >> %s" % marks], restart_seconds=0).run() == 0
    assert marks.read_text().count("x") == 1


def test_a_killed_child_comes_back_and_sigterm_stops_both(tmp_path):
    pids = tmp_path / "pids"
    child = "echo $$ >> %s; exec sleep 60" % pids
    keeper = subprocess.Popen([sys.executable, "-m", "stack", "keep", "k", "--", "sh", "-c", child],
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 1, what="first start")
        first = int(pids.read_text().split()[0])
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: len(pids.read_text().split()) == 2, what="second start")
        second = int(pids.read_text().split()[1])
        keeper.send_signal(signal.SIGTERM)
        assert keeper.wait(timeout=15) == 0
        wait_until(lambda: not os.path.exists("/proc/%d" % second)
                   or "zombie" in open("/proc/%d/status" % second).read().lower(),
                   what="the child stopped")
    finally:
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait()
