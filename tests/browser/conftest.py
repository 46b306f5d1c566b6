"""Browser tests: Playwright for Python driving Debian's ``chromium`` against
the real stack (nginx → uWSGI → Redis) on free loopback ports.

Playwright cannot download its own browser on these machines, so it launches
the system one (``make sysdeps`` installs it). Every test gets a fresh page
that records console messages and uncaught errors; at teardown the page is
screenshotted to ``var/screenshots/<test>.png`` (on every run, pass or fail)
and the test fails if the console showed an error.
"""
import os
import re
import shutil

import pytest

from tests.support.stack import start_stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCREENSHOTS = os.path.join(ROOT, "var", "screenshots")
CHROMIUM = os.environ.get("JOBMASTER_TEST_CHROMIUM") or shutil.which("chromium") \
    or "/usr/bin/chromium"
ADMIN_TOKEN = "browser-admin-token"
WORKER_TOKEN = "browser-worker-token"


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("no chromium at %s (run `make deps`)" % CHROMIUM)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """One stack per test module: two uWSGI instances behind nginx, admin and
    worker tokens, the local fleet launcher, short waits so job tails are quick."""
    st = start_stack(tmp_path_factory.mktemp("browser-stack"), instances=2, env={
        "JOBMASTER_ADMIN_TOKENS": ADMIN_TOKEN, "JOBMASTER_WORKER_TOKENS": WORKER_TOKEN,
        "JOBMASTER_LAUNCHER": "local", "JOBMASTER_WAIT_SECONDS": "0.3"})
    yield st
    st.stop()


class Console:
    """What the page said on its console, and what it threw."""

    def __init__(self):
        self.messages = []
        self.errors = []
        self.allowed = []

    def allow(self, pattern):
        """A test that provokes an error on purpose (a 400 from a bad form)
        names it; any other error still fails the test."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self):
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def on_message(self, msg):
        self.messages.append((msg.type, msg.text))
        if msg.type == "error":
            self.errors.append(msg.text)

    def on_page_error(self, err):
        self.errors.append("uncaught: %s" % err)


@pytest.fixture
def page(browser, web, request):
    """A logged-in page on the dashboard (the admin token is in the tab's
    session storage before the page's script runs)."""
    context = browser.new_context(base_url=web.url, accept_downloads=True,
                                  viewport={"width": 1400, "height": 1000})
    context.add_init_script("window.sessionStorage.setItem('jobmaster.adminToken', %r);"
                            % ADMIN_TOKEN)
    pg = context.new_page()
    pg.set_default_timeout(20000)
    console = Console()
    pg.on("console", console.on_message)
    pg.on("pageerror", console.on_page_error)
    pg.console = console
    yield pg
    os.makedirs(SCREENSHOTS, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        pg.screenshot(path=os.path.join(SCREENSHOTS, name + ".png"), full_page=True)
    finally:
        context.close()
    assert not console.unexpected(), "console errors: %r" % console.unexpected()


def admin(web, method, path, body=None):
    """An API call with the admin token; the decoded JSON (or the response)."""
    r = web.request(method, "/api/v1" + path, body,
                    headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    return r
