"""Plumbing through real nginx: ids, instance names, balancing, realip,
nginx's own JSON errors."""
import http.client
import json
import socket

import pytest
import redis

from tests.support.procs import free_port, suite_redis_mode, wait_until
from stack import render as R


def test_every_answer_names_instance_and_request(stack):
    r = stack.get("/readyz")
    assert r.status == 200, r
    assert r.json()["checks"]["redis"] == "ok"
    assert r.headers["X-Served-By"] in {n.name for n in stack.instances}
    rid = r.headers["X-Request-ID"]
    # nginx's $request_id: 32 hex digits, fresh per request, and the app
    # answers with the one nginx passed (a client's own is replaced).
    assert len(rid) == 32 and int(rid, 16) >= 0
    r2 = stack.get("/healthz", headers={"X-Request-ID": "client-chosen"})
    assert r2.headers["X-Request-ID"] not in (rid, "client-chosen")


@pytest.mark.skipif(suite_redis_mode() == "cluster",
                    reason="a cluster's nodes are reached over TCP, at the addresses they announce")
def test_apps_reach_the_stacks_own_redis_over_its_unix_socket(stack):
    for x in range(1, 25):  # reach every instance (the ip_hash buckets vary)
        assert stack.get("/readyz", source="127.0.%d.3" % x).status == 200
    sock = stack.plan.layout.run + "/redis.sock"
    clients = redis.Redis.from_url(stack.redis_url).client_list()
    others = [c for c in clients if c["cmd"] != "client|list"]
    assert others and all(c["laddr"].startswith(sock) for c in others), others


def test_redis_socket_off_renders_tcp_for_the_apps(tmp_path):
    plan = R.render(R.Settings(port=free_port(), redis_port=free_port(), var=str(tmp_path),
                               redis_socket=False))
    with open(plan.layout.conf + "/redis.conf") as fh:
        assert "\nunixsocket " not in fh.read()
    with open(plan.layout.conf + "/uwsgi/web-1.ini") as fh:
        ini = fh.read()
    assert "JOBMASTER_REDIS_URL=%s" % plan.redis_url in ini


def test_request_id_is_in_the_json_access_log(stack):
    r = stack.get("/healthz")
    rid = r.headers["X-Request-ID"]

    def logged():
        return [e for e in stack.nginx_log() if e["request_id"] == rid]

    entry = wait_until(logged, timeout=10, what="access log line")[0]
    assert entry["status"] == 200
    assert entry["served_by"] == r.headers["X-Served-By"]
    assert entry["uri"] == "/healthz"


def test_clients_in_different_24s_reach_several_instances(stack):
    # ip_hash keys on the first three octets: vary the third one.
    served = {stack.get("/healthz", source="127.0.%d.9" % x).headers["X-Served-By"]
              for x in range(1, 25)}
    assert len(served) > 1, served


def test_one_24_sticks_to_one_instance(stack):
    # The ip_hash trap (docs/deploy.md): a whole /24 is one bucket.
    served = {stack.get("/healthz", source="127.0.77.%d" % y).headers["X-Served-By"]
              for y in range(1, 13)}
    assert len(served) == 1, served


def test_realip_hashes_the_client_behind_a_trusted_gateway(stack):
    # From the trusted gateway (127.0.0.1), X-Forwarded-For is the client.
    served = {stack.get("/healthz", headers={"X-Forwarded-For": "10.1.%d.5" % x})
              .headers["X-Served-By"] for x in range(1, 25)}
    assert len(served) > 1, served
    # From anyone else it is ignored: no spoofing into another bucket.
    served = {stack.get("/healthz", source="127.0.88.1",
                        headers={"X-Forwarded-For": "10.1.%d.5" % x})
              .headers["X-Served-By"] for x in range(1, 13)}
    assert len(served) == 1, served


def _raw(host, port, data):
    """Send raw bytes, read one response (without waiting for nginx's
    lingering close, which would wait for a body that never comes)."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        resp = http.client.HTTPResponse(s)
        resp.begin()
        body = resp.read()
    head = "HTTP/1.1 %d\r\n%s" % (resp.status, resp.msg)
    return head, body


def test_oversized_body_gets_json_413_from_nginx(stack):
    limit = stack.settings.max_body_bytes
    # Only the headers: nginx judges Content-Length before reading a byte.
    head, body = _raw(stack.host, stack.port,
                      b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (limit + 1))
    assert head.startswith("HTTP/1.1 413"), head
    assert "X-Served-By: nginx" in head
    assert "Content-Type: application/json" in head
    assert json.loads(body)["error"] == "too_large"


def test_rate_limit_answers_json_429(stack):
    aux = stack.start_nginx(rate_limit=1, rate_burst=0)
    answers = []
    for _ in range(20):  # bounded: the 2nd request within a second is over
        r = aux["request"]("GET", "/readyz")
        answers.append(r)
        if r.status == 429:
            break
    r = answers[-1]
    assert r.status == 429, answers
    assert r.json()["error"] == "rate_limited"
    assert r.headers["X-Served-By"] == "nginx"
    assert r.headers["Retry-After"] == "1"
    # Health checks are never limited.
    assert aux["request"]("GET", "/healthz").status == 200


def test_no_instance_gives_json_502(stack, tmp_path):
    gone = R.Instance(name="gone", socket=str(tmp_path / "gone.sock"), pidfile="")
    aux = stack.start_nginx(upstream=[gone])
    r = aux["request"]("GET", "/readyz")
    assert r.status == 502
    assert r.json()["error"] == "bad_gateway"
    assert r.headers["X-Served-By"] == "nginx"
    assert len(r.headers["X-Request-ID"]) == 32


def test_worker_id_hash_spreads_one_24(stack):
    aux = stack.start_nginx(balance="worker_id")
    served = {aux["request"]("GET", "/healthz", source="127.0.99.1",
                             headers={"X-Worker-ID": "pod-%d" % i}).headers["X-Served-By"]
              for i in range(24)}
    assert len(served) > 1, served
    # ...and one worker id always lands on the same instance.
    again = {aux["request"]("GET", "/healthz", source="127.0.99.%d" % i,
                            headers={"X-Worker-ID": "pod-7"}).headers["X-Served-By"]
             for i in range(1, 8)}
    assert len(again) == 1, again


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_early_error_with_unread_body_reaches_the_client(tmp_path, server):
    # The app refuses before reading the body (no such job / wrong route);
    # the client must still get the app's JSON answer, not nginx's 502 (a
    # body larger than the socket buffers shows it).
    from tests.support.stack import start_stack

    st = start_stack(tmp_path, instances=1, server=server, max_body_bytes=16 * 1024 * 1024)
    try:
        body = b"x" * (12 * 1024 * 1024)
        for path in ("/api/v1/jobs/abc/pause", "/api/v1/nope"):
            r = st.post(path, body=body, headers={"Content-Type": "application/json"})
            assert r.status == 404, r
            assert r.json()["error"] == "not_found"
            assert r.headers["X-Served-By"] != "nginx"
    finally:
        st.stop()
