"""A real jobmaster server for the client tests: one uWSGI process (gevent)
on a free loopback port, over the session's real Redis, with an admin and a
worker token. Each test gets a flushed Redis (the ``redis_url`` fixture)."""
import os
import sys

import pytest

from tests.support.procs import Process, free_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
ADMIN_TOKEN = "test-admin-token"
WORKER_TOKEN = "test-worker-token"


class Server:
    """What a test needs to talk to the running server."""

    def __init__(self, url, proc):
        self.url = url
        self.proc = proc

    def env(self, token=ADMIN_TOKEN, **extra):
        """Environment for a `jobmaster` subprocess talking to this server."""
        env = dict(os.environ)
        env.update({"JOBMASTER_URL": self.url, "JOBMASTER_TOKEN": token,
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    def client(self, token=ADMIN_TOKEN, **kwargs):
        from jobmaster import Client

        kwargs.setdefault("retry_seconds", 10)
        return Client(self.url, token, **kwargs)


def _ready(url):
    import requests

    try:
        return requests.get(url + "/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start_uwsgi(redis_server, workdir, **extra_env):
    """One uWSGI process (gevent) on a free port; yields a :class:`Server`."""
    port = free_port()
    env = dict(os.environ)
    env.update({"JOBMASTER_REDIS_URL": redis_server.url, "JOBMASTER_INSTANCE": "client-tests",
                # Short "wait" answers keep the tail of each job quick.
                "JOBMASTER_WAIT_SECONDS": "0.5",
                "JOBMASTER_ADMIN_TOKENS": ADMIN_TOKEN, "JOBMASTER_WORKER_TOKENS": WORKER_TOKEN,
                **extra_env})
    argv = [os.path.join(BIN, "uwsgi"), "--master", "--http-socket", "127.0.0.1:%d" % port,
            "--module", "wsgi:application", "--gevent", "100", "--need-app",
            "--die-on-term", "--lazy-apps", "--disable-logging"]
    proc = Process(argv, str(workdir / "uwsgi.log"), env=env, cwd=ROOT)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_until(lambda: not proc.alive() or _ready(url), timeout=30, what="uWSGI ready")
        if not proc.alive():
            raise RuntimeError("uWSGI exited:\n" + proc.log_tail())
        yield Server(url, proc)
    finally:
        proc.stop()


@pytest.fixture(scope="package")
def uwsgi_server(redis_server, tmp_path_factory):
    # Package scope, not session: the server's background loop delivers due
    # webhooks and runs due schedules on the session's Redis, so left running
    # it would take work from the in-process tests that come later and drive
    # those rounds themselves (it once delivered test_webhooks' event first).
    yield from start_uwsgi(redis_server, tmp_path_factory.mktemp("uwsgi"))


@pytest.fixture
def server(uwsgi_server, redis_url):
    """The running server, with Redis flushed for this test."""
    return uwsgi_server
