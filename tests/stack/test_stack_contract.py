"""The published contract against the real stack: nginx's own 405s, and
schemathesis (every check, stateful too) against the OpenAPI document."""
import os
import re
import subprocess
import sys

import pytest

from tests.support.stack import ROOT, start_stack

ADMIN = "contract-admin"


def _sample(rule):
    """A concrete path of a route ("abc" for each parameter)."""
    return re.sub(r"<(?:[^:<>]+:)?[a-z_]+>", "abc", rule.rule)


def test_nginx_answers_trace_and_connect_as_json_with_the_routes_allow(stack):
    from app import create_app

    app = create_app({"REDIS_URL": stack.redis_url})
    methods = {}  # path -> every method its rules answer
    try:
        for rule in app.url_map.iter_rules():
            if rule.endpoint != "static":
                methods.setdefault(_sample(rule), set()).update(rule.methods)
    finally:
        app.extensions["jobmaster.backend"].close()
    for path, allowed in methods.items():
        for method in ("TRACE", "CONNECT"):
            r = stack.request(method, path + "?x=1")
            assert r.status == 405, (method, path, r)
            assert r.headers["Content-Type"] == "application/json"
            assert r.json()["error"] == "method_not_allowed"
            allow = {m.strip() for m in r.headers["Allow"].split(",")}
            assert allow == allowed, (path, allow)


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory):
    st = start_stack(tmp_path_factory.mktemp("contract"), instances=2, server="uwsgi",
                     env={"JOBMASTER_ADMIN_TOKENS": ADMIN, "JOBMASTER_WORKER_TOKENS": "w"})
    yield st
    st.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(contract_stack, tmp_path):
    """Every check schemathesis has, its coverage, fuzzing and stateful
    phases (links inferred from the document), bounded to ~100 cases per
    operation. Any failure is printed with schemathesis's reproduction."""
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.support.schemathesis_hooks",
               PYTHONPATH=ROOT)
    argv = [os.path.join(os.path.dirname(sys.executable), "st"),
            "--config-file", os.path.join(ROOT, "tests", "support", "schemathesis.toml"), "run",
            contract_stack.url + "/api/v1/openapi.json", "--checks", "all",
            "--header", "Authorization: Bearer " + ADMIN,
            "--phases", "coverage,fuzzing,stateful", "--max-examples", "100",
            "--workers", "2", "--request-timeout", "30", "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path)]
    # (cwd: schemathesis keeps a cache of its own in .schemathesis/ there)
    done = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=420)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-3000:]
