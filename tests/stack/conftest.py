"""Fixtures over the real stack: nginx → uWSGI (or gunicorn) → Redis.

``stack`` is shared by the whole session and runs once per server, so every
test that takes it runs against uWSGI and against gunicorn. Tests that kill
or reload instances start their own stack with ``start_stack``.
"""
import pytest

from tests.support.procs import servers
from tests.support.stack import start_stack

# The test clients from 127.0.0.1 act as a gateway: realip believes their
# X-Forwarded-For. Clients bound to other 127.x.y.z addresses are "pods".
GATEWAY = "127.0.0.1/32"


@pytest.fixture(scope="session", params=servers())
def stack(request, tmp_path_factory):
    st = start_stack(tmp_path_factory.mktemp("stack-" + request.param), instances=3,
                     server=request.param, trusted_proxies=GATEWAY,
                     max_body_bytes=1024 * 1024)
    yield st
    st.stop()
