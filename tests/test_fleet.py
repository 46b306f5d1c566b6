"""Fleet launch (docs/contract.md §10): the job's ``command``, the local launcher's
real processes on the real stack, and the Kubernetes manifest of a dry run."""
import json
import os
import signal
import sys

import pytest
from jobmaster.command import process_alive

from tests.support.procs import wait_until
from tests.support.stack import start_stack

ADMIN, WORKER = "fleet-admin", "fleet-worker"
AUTH = {"Authorization": "Bearer " + ADMIN}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOUBLE = [sys.executable, "-c", "import sys; print(int(sys.argv[1]) * 2)", "{}"]


@pytest.fixture
def tokens_app(redis_url):
    from app import create_app

    app = create_app({"REDIS_URL": redis_url, "INSTANCE": "t", "ADMIN_TOKENS": ADMIN,
                      "WORKER_TOKENS": WORKER})
    yield app
    app.extensions["jobmaster.backend"].close()


@pytest.fixture
def api(tokens_app):
    c = tokens_app.test_client()

    def call(method, path, body=None):
        return c.open("/api/v1" + path, method=method, json=body, headers=AUTH)
    return call


def _job(api, **extra):
    r = api("POST", "/jobs", {"name": "f", "tasks": {"range": [0, 10]}, **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_command_is_a_job_setting_returned_with_every_lease(api):
    job = _job(api, command=["sim", "--room", "{}"])
    assert api("GET", "/jobs/" + job).get_json()["settings"]["command"] == ["sim", "--room", "{}"]
    lease = api("POST", "/lease", {"worker": "w", "job": job}).get_json()
    assert lease["command"] == ["sim", "--room", "{}"] and len(lease["tasks"]) == 10
    plain = _job(api)
    assert "command" not in api("POST", "/lease", {"worker": "w", "job": plain}).get_json()
    assert "command" not in api("GET", "/jobs/" + plain).get_json()["settings"]


@pytest.mark.parametrize("bad", [[], [""], [1, 2], "", {"argv": ["x"]}, 5, None])
def test_a_bad_command_is_400_and_creates_nothing(api, bad):
    r = api("POST", "/jobs", {"name": "f", "tasks": {"range": [0, 1]}, "command": bad})
    assert r.status_code == 400 and "body.command" in r.get_json()["message"], r.get_json()
    assert api("GET", "/jobs").get_json()["jobs"] == []


def test_launch_without_a_launcher_is_501_and_finished_job_409(api, tokens_app):
    job = _job(api)
    r = api("POST", "/jobs/%s/fleet" % job, {"workers": 2})
    assert r.status_code == 501 and "JOBMASTER_LAUNCHER" in r.get_json()["message"]
    tokens_app.config["LAUNCHER"] = "local"
    api("POST", "/jobs/%s/cancel" % job)
    r = api("POST", "/jobs/%s/fleet" % job, {"workers": 2})
    assert r.status_code == 409 and "cancelled" in r.get_json()["message"]
    assert api("GET", "/jobs/%s/fleet" % job).get_json()["launches"] == []
    assert api("POST", "/jobs/nosuch/fleet", {"workers": 1}).status_code == 404
    assert api("POST", "/jobs/%s/fleet" % job, {"workers": 0}).status_code == 400


def test_kubernetes_dry_run_shows_the_manifest_and_never_the_token(api):
    job = _job(api, command="./simulate --room {}")
    r = api("GET", "/jobs/%s/fleet?dry_run=1&workers=7&launcher=kubernetes&image=reg/sim:1" % job)
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    assert doc["dry_run"] is True and doc["launched"] == 0 and doc["launcher"] == "kubernetes"
    assert WORKER not in json.dumps(doc) and ADMIN not in json.dumps(doc)
    secret, kjob = doc["manifest"]["objects"]
    assert secret["kind"] == "Secret" and "token" in secret["stringData"]
    assert kjob["kind"] == "Job" and kjob["spec"]["parallelism"] == 7
    assert "completions" not in kjob["spec"]
    pod = kjob["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "reg/sim:1"
    assert c["command"][:5] == ["jobmaster", "worker", "run", "--job", job]
    assert "--" not in c["command"]  # no command of its own: the job's runs
    env = {e["name"]: e for e in c["env"]}
    assert env["JOBMASTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"], "key": "token"}
    assert c["lifecycle"]["preStop"]["exec"]["command"][:3] == ["jobmaster", "worker", "stop"]
    # The POST form answers the same manifest and starts nothing either.
    posted = api("POST", "/jobs/%s/fleet" % job, {"workers": 7, "dry_run": True,
                                                 "launcher": "kubernetes", "image": "reg/sim:1"})
    assert posted.status_code == 200
    assert posted.get_json()["manifest"]["objects"][1]["spec"] == kjob["spec"] | {
        "template": posted.get_json()["manifest"]["objects"][1]["spec"]["template"]}
    assert api("GET", "/jobs/%s/fleet" % job).get_json()["launches"] == []
    one = api("GET", "/jobs/%s/fleet?dry_run=1&launcher=kubernetes" % job).get_json()
    assert one["manifest"]["objects"][1]["spec"]["parallelism"] == 1  # workers: 1 by default
    for bad in ("dry_run=yes", "workers=0", "workers=x", "launcher=nomad", "image="):
        assert api("GET", "/jobs/%s/fleet?%s" % (job, bad)).status_code == 400, bad


def test_examples_k8s_fleet_yaml_is_the_launchers_manifest():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "app.domain.fleet_k8s"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    with open(os.path.join(ROOT, "examples", "k8s", "fleet.yaml"), encoding="utf-8") as fh:
        assert fh.read() == out, "regenerate: python -m app.domain.fleet_k8s > examples/k8s/fleet.yaml"


# -- the local launcher on the real stack ---------------------------------

@pytest.fixture(scope="module")
def st(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("fleet"), instances=2, env={
        "JOBMASTER_ADMIN_TOKENS": ADMIN, "JOBMASTER_WORKER_TOKENS": WORKER,
        "JOBMASTER_LAUNCHER": "local", "JOBMASTER_WAIT_SECONDS": "0.3",
        "JOBMASTER_FLEET_LOCAL_DIR": str(tmp_path_factory.mktemp("fleet-logs"))})
    yield s
    s.stop()


def _call(st, method, path, body=None):
    return st.request(method, "/api/v1" + path, body, headers=AUTH)


def _kill_leftovers(st, job):
    """Whatever a failed test left running goes, by the PIDs the fleet recorded."""
    for launch in _call(st, "GET", "/jobs/%s/fleet" % job).json().get("launches", []):
        for p in launch.get("processes", []):
            if p["state"] == "running":
                os.kill(p["pid"], signal.SIGKILL)


def test_a_local_fleet_runs_the_jobs_command_to_the_end(st):
    job = _call(st, "POST", "/jobs", {"name": "double", "tasks": {"range": [0, 40]},
                                      "batch_size": 3, "command": DOUBLE}).json()["id"]
    try:
        r = _call(st, "POST", "/jobs/%s/fleet" % job, {"workers": 3})
        assert r.status == 202, r
        assert r.json()["launched"] == 3 and len(r.json()["workers"]) == 3
        wait_until(lambda: _call(st, "GET", "/jobs/" + job).json()["state"] == "completed",
                   timeout=60, interval=0.2, what="the fleet finishing the job")
        results = [json.loads(line) for line in
                   _call(st, "GET", "/jobs/%s/results" % job).body.splitlines()]
        assert sorted((line["id"], line["result"]) for line in results) == [(i, str(2 * i)) for i in range(40)]
        assert {line["worker"] for line in results} <= set(r.json()["workers"])
        # Every worker saw "done" and exited by itself; any instance shows that.
        def all_exited():
            doc = _call(st, "GET", "/jobs/%s/fleet" % job).json()
            return doc["launched"] == 3 and doc["running"] == 0 and all(
                p["state"] == "exited" for launch in doc["launches"] for p in launch["processes"])
        wait_until(all_exited, timeout=30, interval=0.2, what="the workers exiting")
        assert _call(st, "POST", "/jobs/%s/fleet" % job, {"workers": 1}).status == 409
    finally:
        _kill_leftovers(st, job)


def test_a_string_command_runs_under_sh_with_the_payload_as_an_argument(st):
    job = _call(st, "POST", "/jobs", {"name": "sh", "tasks": {"items": ["a b", "$(id)", "c;d"]},
                                      "command": "printf '<%s>' {}"}).json()["id"]
    try:
        assert _call(st, "POST", "/jobs/%s/fleet" % job, {"workers": 1}).status == 202
        wait_until(lambda: _call(st, "GET", "/jobs/" + job).json()["state"] == "completed",
                   timeout=60, interval=0.2, what="the job")
        results = sorted(json.loads(l)["result"] for l in
                         _call(st, "GET", "/jobs/%s/results" % job).body.splitlines())
        assert results == ["<$(id)>", "<a b>", "<c;d>"]  # never re-parsed by the shell
    finally:
        _kill_leftovers(st, job)


def test_delete_stops_a_waiting_fleet_and_the_token_is_never_on_a_command_line(st):
    job = _call(st, "POST", "/jobs", {"name": "idle", "tasks": {"range": [0, 5]},
                                      "command": ["true"]}).json()["id"]
    _call(st, "POST", "/jobs/%s/pause" % job)  # the workers wait, polling
    try:
        assert _call(st, "POST", "/jobs/%s/fleet" % job, {"workers": 2}).status == 202
        doc = _call(st, "GET", "/jobs/%s/fleet" % job).json()
        procs = doc["launches"][0]["processes"]
        assert doc["running"] == 2 and [p["state"] for p in procs] == ["running", "running"]
        for p in procs:
            with open("/proc/%d/cmdline" % p["pid"], "rb") as fh:
                cmdline = fh.read()
            assert WORKER.encode() not in cmdline and ADMIN.encode() not in cmdline
            with open("/proc/%d/environ" % p["pid"], "rb") as fh:
                environ = fh.read().split(b"\0")
            assert b"JOBMASTER_TOKEN=" + WORKER.encode() in environ
            assert not any(e.startswith(b"JOBMASTER_ADMIN_TOKENS") for e in environ)
        r = _call(st, "DELETE", "/jobs/%s/fleet" % job)
        assert r.status == 200 and r.json()["stopped"] == 2
        wait_until(lambda: not any(process_alive(p["pid"]) for p in procs), timeout=30,
                   what="the workers exiting")
        assert _call(st, "GET", "/jobs/%s/fleet" % job).json()["launches"] == []
        assert _call(st, "DELETE", "/jobs/%s/fleet" % job).status == 409  # nothing left to stop
        assert _call(st, "GET", "/jobs/" + job).json()["counts"]["leased"] == 0
    finally:
        _kill_leftovers(st, job)


# -- the kubernetes launcher against a stand-in API server on loopback ------

class _KubeAPI:
    """Just enough of the Kubernetes API for the launcher: it records every
    request, and answers like the API server (201 with the object, status)."""

    def __init__(self):
        import http.server
        import threading

        self.calls = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code, doc):
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size)) if size else None
                api.calls.append((self.command, self.path, body))
                return body

            def do_POST(self):
                body = self._record()
                body.setdefault("metadata", {})["uid"] = "uid-1"
                self._answer(201, body)

            def do_GET(self):
                self._record()
                self._answer(200, {"apiVersion": "batch/v1", "kind": "Job",
                                   "metadata": {"name": self.path.split("/")[-2]},
                                   "status": {"active": 3, "succeeded": 1}})

            def do_DELETE(self):
                self._record()
                self._answer(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kube(tmp_path, monkeypatch):
    api = _KubeAPI()
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": api.url}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "sims"}}],
        "users": [{"name": "t", "user": {"token": "kube-token"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield api
    api.close()


def test_the_kubernetes_launcher_creates_reads_and_deletes_through_the_client(api, tokens_app,
                                                                               kube):
    tokens_app.config.update(LAUNCHER="kubernetes", WORKER_IMAGE="reg/sim:2")
    job = _job(api, command=["./sim", "{}"])
    r = api("POST", "/jobs/%s/fleet" % job, {"workers": 12})
    assert r.status_code == 202, r.get_json()
    (m1, p1, secret), (m2, p2, kjob) = kube.calls
    assert (m1, p1) == ("POST", "/api/v1/namespaces/sims/secrets")
    assert secret["stringData"] == {"token": WORKER}  # the real token, only to the cluster
    assert (m2, p2) == ("POST", "/apis/batch/v1/namespaces/sims/jobs")
    assert kjob["spec"]["parallelism"] == 12
    assert kjob["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/sim:2"
    shown = api("GET", "/jobs/%s/fleet" % job).get_json()
    (launch,) = shown["launches"]
    assert launch["running"] == 3 and launch["succeeded"] == 1 and launch["namespace"] == "sims"
    assert WORKER not in json.dumps(shown)
    assert api("DELETE", "/jobs/%s/fleet" % job).get_json()["stopped"] == 12
    deletes = [(m, p) for m, p, _ in kube.calls if m == "DELETE"]
    assert deletes == [("DELETE", "/apis/batch/v1/namespaces/sims/jobs/" + kjob["metadata"]["name"]),
                       ("DELETE", "/api/v1/namespaces/sims/secrets/" + secret["metadata"]["name"])]
    assert api("GET", "/jobs/%s/fleet" % job).get_json()["launches"] == []
    tokens_app.config["WORKER_IMAGE"] = ""
    r = api("POST", "/jobs/%s/fleet" % job, {"workers": 1})
    assert r.status_code == 400 and "image" in r.get_json()["message"]
