"""Operations: request ids, OpenAPI, metrics, Redis outages, sweep, body
reading, the README's settings table."""
import json

from app import create_app
from tests.helpers import complete, expire_now, lease, make_job, ok_all
from tests.invariants import holders


def test_request_id_and_served_by(client):
    r = client.get("/healthz")
    assert r.headers["X-Served-By"] == "test-1" and len(r.headers["X-Request-ID"]) >= 16
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert r.headers["X-Request-ID"] != "bad id <script>"
    assert client.get("/nope").headers["X-Served-By"] == "test-1"


def test_openapi_describes_every_route(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    described = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, (path, method)
    lease_op = spec["paths"]["/api/v1/lease"]["post"]
    assert lease_op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["worker"]


def test_task_counts_written_in_bulk_are_all_in_the_next_scrape(redis_url):
    app = create_app({"REDIS_URL": redis_url, "METRICS_CACHE_SECONDS": 0})
    client = app.test_client()

    def leased():
        text = client.get("/metrics").get_data(as_text=True)
        line = [x for x in text.splitlines() if x.startswith('jobmaster_tasks_total{event="leased"}')]
        return float(line[0].split()[-1]) if line else 0.0

    job = make_job(client, total=20)["id"]
    before = leased()  # the scrape wrote everything counted so far
    for _ in range(3):  # within the second after it: counted, not yet written
        lease(client, job=job, max_tasks=2)
    assert leased() == before + 6
    app.extensions["jobmaster.backend"].close()


def test_metrics(client):
    job = make_job(client, name="m", total=5)["id"]
    got = lease(client, job=job, max_tasks=2)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'jobmaster_job_tasks{job="%s",name="m",state="done"} 2' % job in text
    assert 'jobmaster_job_tasks{job="%s",name="m",state="pending"} 3' % job in text
    assert "jobmaster_http_requests_total" in text


def test_redis_down_is_503_with_retry_after():
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_POOL_TIMEOUT": 0.5})
    c = app.test_client()
    r = c.post("/api/v1/lease", json={"worker": "w"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.get_json()["error"] == "unavailable"
    assert c.get("/readyz").status_code == 503
    assert c.get("/healthz").status_code == 200


def test_sweep_command_reclaims_while_nobody_calls(app, client, rds):
    job = make_job(client, total=3)["id"]
    lid = lease(client, job=job)["lease"]["id"]
    keys = app.extensions["jobmaster.backend"].keys
    expire_now(rds, keys, job, lid)
    assert len(holders(rds, keys, job)) == 3  # nobody reclaimed it yet
    out = app.test_cli_runner().invoke(args=["sweep"])
    assert out.exit_code == 0 and "swept 1 job(s)" in out.output
    assert holders(rds, keys, job) == {}
    assert rds.zcard(keys.job_key(job, "pending")) == 3


def test_early_error_after_reading_the_body_does_not_wait_for_more(app):
    """The body-draining before an error must stop at the body's end: a raw
    socket input (werkzeug's own server) would otherwise block for ever."""
    import http.client
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.request("POST", "/api/v1/lease", body=json.dumps({"worker": "w", "job": ""}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 404 and json.loads(r.read())["error"] == "not_found"
        conn.close()
    finally:
        server.shutdown()


def test_body_shorter_than_its_content_length_is_400_and_changes_nothing(app, rds):
    """A client that stops sending mid-body gets a JSON 400, and nothing is leased."""
    import socket
    import threading

    from werkzeug.serving import make_server

    from tests.support.stack import read_to_end

    job = make_job(app.test_client(), total=5)["id"]
    before = rds.dump(app.extensions["jobmaster.backend"].keys.job_key(job, "meta"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = json.dumps({"worker": "w", "job": job}).encode()
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
            s.sendall(b"POST /api/v1/lease HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (len(body) + 50) + body)
            s.shutdown(socket.SHUT_WR)  # the rest never comes
            answer = read_to_end(s)
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == b"400", head
        assert json.loads(payload)["message"] == "the request body ended early"
        assert rds.dump(app.extensions["jobmaster.backend"].keys.job_key(job, "meta")) == before
    finally:
        server.shutdown()


def test_readme_documents_every_setting_with_its_default():
    import os

    from app.config import SETTINGS

    with open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    for name, default, _parse, _why in SETTINGS:
        shown = "(empty)" if default == "" else "`%s`" % default
        assert "| `JOBMASTER_%s` | %s |" % (name, shown) in readme, name
