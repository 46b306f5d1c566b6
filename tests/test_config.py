"""Every setting in app/config.py does what it says: each test changes one
and sees its effect. A setting without a test here fails the last test."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import redis

from app import create_app
from app.config import SETTINGS
from tests.helpers import expire_now, lease, make_job
from tests.support.procs import all_keys, suite_redis_mode

TESTED = set()


def effect_of(*names):
    TESTED.update(names)
    return lambda fn: fn


@pytest.fixture
def make_app(redis_url):
    made = []

    def make(**config):
        app = create_app({"REDIS_URL": redis_url, **config})
        made.append(app)
        return app, app.test_client()

    yield make
    for app in made:
        app.extensions["jobmaster.backend"].close()


@effect_of("REDIS_URL")
def test_redis_url_is_where_state_lives(make_app, redis_url, redis_of):
    app, c = make_app()
    job = make_job(c)["id"]
    assert redis_of(redis_url).exists("jm:{%s}:meta" % job)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _app, nowhere = make_app(REDIS_URL="redis://127.0.0.1:%d/0" % port)
    assert nowhere.get("/readyz").status_code == 503


@effect_of("KEY_PREFIX")
def test_key_prefix_starts_every_key(make_app, redis_url, redis_of):
    _app, c = make_app(KEY_PREFIX="other")
    job = make_job(c)["id"]
    lease(c, job=job)
    keys = all_keys(redis_of(redis_url))
    assert keys and all(k.startswith("other:") for k in keys)


@effect_of("REDIS_POOL_SIZE", "REDIS_POOL_TIMEOUT")
def test_a_request_waits_for_a_pooled_connection_then_answers_503(make_app):
    app, c = make_app(REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.2)
    rds = app.extensions["jobmaster.backend"].redis
    if suite_redis_mode() == "cluster":  # a pool per node: hold the one connection of each
        assert c.get("/api/v1/jobs").status_code == 200  # (the client learns the nodes)
        pools = [n.redis_connection.connection_pool for n in rds.get_primaries()]
    else:
        pools = [rds.connection_pool]
    held = [pool.get_connection() for pool in pools]
    try:
        r = c.get("/api/v1/jobs")
        assert r.status_code == 503 and r.headers["Retry-After"]
    finally:
        for pool, conn in zip(pools, held):
            pool.release(conn)
    assert c.get("/api/v1/jobs").status_code == 200


@effect_of("REDIS_SOCKET_TIMEOUT")
def test_a_redis_that_never_answers_gives_503_not_a_hang(make_app):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does) and never answers
    try:
        _app, c = make_app(REDIS_URL="redis://127.0.0.1:%d/0" % silent.getsockname()[1],
                           REDIS_SOCKET_TIMEOUT=0.2)
        r = c.get("/api/v1/jobs")
        assert r.status_code == 503 and r.get_json()["error"] == "unavailable"
    finally:
        silent.close()


@effect_of("REDIS_READY_TIMEOUT")
def test_readyz_waits_only_its_own_timeout_for_redis(redis_url):
    # A Redis that never answers, calls that would wait 60 s for it, and a
    # readiness probe that must not: it answers 503 within its 0.2 s (the
    # subprocess's 20-s bound fails the test if it waited the 60).
    code = ("import socket\n"
            "from app import create_app\n"
            "silent = socket.socket(); silent.bind(('127.0.0.1', 0)); silent.listen(16)\n"
            "url = 'redis://127.0.0.1:%d/0' % silent.getsockname()[1]\n"
            "c = create_app({'REDIS_URL': url, 'REDIS_SOCKET_TIMEOUT': 60,\n"
            "                'REDIS_READY_TIMEOUT': 0.2}).test_client()\n"
            "print(c.get('/readyz').status_code)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=20)
    assert out.stdout.split() == ["503"]


@effect_of("REDIS_MODE")
def test_redis_mode_picks_the_client(make_app):
    if suite_redis_mode() == "single":
        _app, single = make_app(REDIS_MODE="single")
        assert single.get("/readyz").status_code == 200
        # The test Redis is no cluster node: the cluster client finds no
        # cluster. The app still starts (the cluster may come later) and is
        # not ready.
        _app, cluster = make_app(REDIS_MODE="cluster")
        r = cluster.get("/readyz")
        assert r.status_code == 503 and r.get_json()["checks"]["redis"] != "ok"
        assert cluster.get("/api/v1/jobs").status_code == 503
    else:
        app, cluster = make_app(REDIS_MODE="cluster")
        assert cluster.get("/readyz").status_code == 200
        # jobs land on every shard, and each is served by its own node
        ids = [make_job(cluster, total=2)["id"] for _ in range(12)]
        rc = app.extensions["jobmaster.backend"].redis
        nodes = {rc.get_node_from_key("jm:{%s}:meta" % job).name for job in ids}
        assert len(nodes) > 1
        assert [lease(cluster, job=job)["status"] for job in ids] == ["ok"] * 12
    with pytest.raises(ValueError):
        make_app(REDIS_MODE="sharded")


@effect_of("ADMIN_TOKENS", "WORKER_TOKENS")
def test_tokens_grant_their_roles(make_app):
    _app, c = make_app(ADMIN_TOKENS="a1, a2", WORKER_TOKENS="w1")
    assert c.get("/api/v1/jobs").status_code == 401
    assert c.get("/api/v1/jobs", headers={"Authorization": "Bearer a2"}).status_code == 200
    assert c.get("/api/v1/jobs", headers={"Authorization": "Bearer w1"}).status_code == 403
    r = c.post("/api/v1/lease", json={"worker": "w"}, headers={"Authorization": "Bearer w1"})
    assert r.status_code == 200


@effect_of("INSTANCE")
def test_instance_names_the_server(make_app):
    _app, c = make_app(INSTANCE="blue-7")
    assert c.get("/healthz").headers["X-Served-By"] == "blue-7"


@effect_of("MAX_BODY_BYTES")
def test_max_body_bytes(make_app):
    _app, c = make_app(MAX_BODY_BYTES=500)
    r = c.post("/api/v1/jobs", json={"name": "x" * 600, "tasks": {"range": [0, 1]}})
    assert r.status_code == 413


@effect_of("MAX_ITEMS")
def test_max_items(make_app):
    _app, c = make_app(MAX_ITEMS=3)
    r = c.post("/api/v1/jobs", json={"name": "j", "tasks": {"items": [1, 2, 3, 4]}})
    assert r.status_code == 413
    job = make_job(c, tasks={"items": []}, sealed=False)["id"]
    assert c.post("/api/v1/jobs/%s/tasks" % job, json=[1, 2, 3, 4]).status_code == 413
    assert c.post("/api/v1/jobs/%s/tasks" % job, json=[1, 2, 3]).status_code == 200


@effect_of("MAX_TOTAL")
def test_max_total(make_app):
    _app, c = make_app(MAX_TOTAL=100)
    assert c.post("/api/v1/jobs", json={"name": "j", "tasks": {"range": [0, 101]}}).status_code == 400
    make_job(c, total=100)


@effect_of("MAX_BATCH")
def test_max_batch_limits_and_is_published(make_app):
    app, c = make_app(MAX_BATCH=5)
    assert c.post("/api/v1/jobs", json={"name": "j", "tasks": {"range": [0, 9]},
                                        "batch_size": 6}).status_code == 400
    job = make_job(c, total=9)["id"]
    assert c.post("/api/v1/lease", json={"worker": "w", "job": job, "max_tasks": 6}).status_code == 400
    assert len(lease(c, job=job, max_tasks=5)["tasks"]) == 5
    doc = c.get("/api/v1/openapi.json").get_json()
    body = doc["paths"]["/api/v1/lease"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["max_tasks"]["maximum"] == 5


@effect_of("MAX_LEASE_SECONDS")
def test_max_lease_seconds(make_app):
    _app, c = make_app(MAX_LEASE_SECONDS=60)
    assert c.post("/api/v1/jobs", json={"name": "j", "tasks": {"range": [0, 1]},
                                        "lease_seconds": 61}).status_code == 400
    job = make_job(c, total=1, lease_seconds=60)["id"]
    lid = lease(c, job=job)["lease"]["id"]
    r = c.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 61})
    assert r.status_code == 400


@effect_of("MAX_RESULTS_PER_CALL")
def test_max_results_per_call(make_app):
    _app, c = make_app(MAX_RESULTS_PER_CALL=2)
    job = make_job(c, total=3)["id"]
    got = lease(c, job=job, max_tasks=3)
    results = [{"id": t["id"], "ok": True} for t in got["tasks"]]
    r = c.post("/api/v1/leases/%s/complete" % got["lease"]["id"], json={"results": results})
    assert r.status_code == 413
    assert c.get("/api/v1/jobs/" + job).get_json()["counts"]["done"] == 0


@effect_of("MAX_RESULT_BYTES")
def test_max_result_bytes(make_app):
    _app, c = make_app(MAX_RESULT_BYTES=50)
    job = make_job(c, total=1)["id"]
    got = lease(c, job=job)
    r = c.post("/api/v1/leases/%s/complete" % got["lease"]["id"],
               json={"results": [{"id": 0, "ok": True, "result": "x" * 60}]})
    assert r.status_code == 413


@effect_of("WAIT_SECONDS")
def test_wait_seconds_sets_retry_after(make_app):
    _app, c = make_app(WAIT_SECONDS=7.0)
    job = make_job(c, total=1)["id"]
    lease(c, job=job)
    got = lease(c, job=job)
    assert got["status"] == "wait" and 7.0 <= got["retry_after"] <= 10.5


@effect_of("RECLAIM_LIMIT")
def test_reclaim_limit_bounds_one_call(make_app):
    app, c = make_app(RECLAIM_LIMIT=1)
    backend = app.extensions["jobmaster.backend"]
    job = make_job(c, total=3, batch_size=1)["id"]
    lids = [lease(c, worker="w%d" % i, job=job)["lease"]["id"] for i in range(3)]
    for lid in lids:
        expire_now(backend.redis, backend.keys, job, lid)
    counts = [c.get("/api/v1/jobs/" + job).get_json()["counts"]["leased"] for _ in range(3)]
    assert counts == [2, 1, 0]  # one expired lease reclaimed per call


@effect_of("LEASE_COMBINE")
def test_lease_combine_one_makes_a_call_per_request(make_app):
    app, c = make_app(LEASE_COMBINE=1)
    backend = app.extensions["jobmaster.backend"]
    job = make_job(c, total=40)["id"]
    threads = [threading.Thread(target=lease, args=(app.test_client(),), kwargs={"job": job})
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend._leases.calls == 8


@effect_of("LEASE_GATHER_MS")
def test_lease_gather_only_under_gevent_and_when_asked(make_app):
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "from app import create_app\n"
            "for ms in (0, 3):\n"
            "    b = create_app({'REDIS_URL': %r, 'LEASE_GATHER_MS': ms}).extensions['jobmaster.backend']\n"
            "    print(ms, b._leases._gather is not None)\n")
    out = subprocess.run([sys.executable, "-c", code % "redis://127.0.0.1:1/0"], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    assert out[:2] == ["0 False", "3 True"]


@effect_of("PROMETHEUS_MULTIPROC_DIR")
def test_multiprocess_metrics_are_written_to_the_directory(redis_url, tmp_path):
    code = ("from app import create_app\n"
            "c = create_app({'REDIS_URL': %r, 'PROMETHEUS_MULTIPROC_DIR': %r}).test_client()\n"
            "c.get('/healthz')\n" % (redis_url, str(tmp_path)))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    assert any(name.endswith(".db") for name in os.listdir(tmp_path))


def _fleet_app(make_app, **config):
    app, c = make_app(**config)
    job = c.post("/api/v1/jobs", json={"name": "f", "tasks": {"range": [0, 3]},
                                       "command": ["true"]}).get_json()["id"]
    return app, c, job


@effect_of("LAUNCHER")
def test_launcher_decides_whether_and_how_a_fleet_starts(make_app):
    _app, c, job = _fleet_app(make_app)
    r = c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 1})
    assert r.status_code == 501
    _app, c, job = _fleet_app(make_app, LAUNCHER="kubernetes")
    r = c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 1, "dry_run": True})
    assert r.get_json()["launcher"] == "kubernetes"  # a dry run of the configured one


@effect_of("FLEET_URL")
def test_fleet_url_is_what_launched_workers_are_given(make_app):
    _app, c, job = _fleet_app(make_app, LAUNCHER="local", FLEET_URL="http://10.1.2.3:8080/")
    r = c.get("/api/v1/jobs/%s/fleet?dry_run=1&workers=1" % job)
    (proc,) = r.get_json()["manifest"]["processes"]
    assert proc["argv"][proc["argv"].index("--url") + 1] == "http://10.1.2.3:8080"
    _app, c, job = _fleet_app(make_app, LAUNCHER="local")  # default: the request's own URL
    (proc,) = c.get("/api/v1/jobs/%s/fleet?dry_run=1&workers=1" % job).get_json()["manifest"]["processes"]
    assert proc["argv"][proc["argv"].index("--url") + 1] == "http://localhost"


@effect_of("FLEET_MAX_WORKERS")
def test_fleet_max_workers_bounds_a_launch(make_app):
    _app, c, job = _fleet_app(make_app, FLEET_MAX_WORKERS=5)
    r = c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 6, "dry_run": True})
    assert r.status_code == 400 and "body.workers" in r.get_json()["message"]
    assert c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 5, "dry_run": True}).status_code == 200


@effect_of("FLEET_LOCAL_MAX_WORKERS", "FLEET_LOCAL_DIR")
def test_local_fleet_bound_and_log_directory(make_app, tmp_path):
    from jobmaster.command import process_alive
    from tests.support.procs import wait_until

    _app, c, job = _fleet_app(make_app, LAUNCHER="local", FLEET_LOCAL_MAX_WORKERS=1,
                              FLEET_LOCAL_DIR=str(tmp_path), FLEET_URL="http://127.0.0.1:1")
    r = c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 2})
    assert r.status_code == 400 and "at most 1" in r.get_json()["message"]
    r = c.post("/api/v1/jobs/%s/fleet" % job, json={"workers": 1})
    assert r.status_code == 202, r.get_json()
    (launch,) = c.get("/api/v1/jobs/%s/fleet" % job).get_json()["launches"]
    (proc,) = launch["processes"]
    try:
        assert proc["log"] == str(tmp_path / job / (proc["name"] + ".log"))
        assert os.path.exists(proc["log"])
    finally:
        assert c.delete("/api/v1/jobs/%s/fleet" % job).get_json()["stopped"] == 1
        wait_until(lambda: not process_alive(proc["pid"]), timeout=30, what="the worker exiting")


@effect_of("WORKER_IMAGE", "K8S_NAMESPACE")
def test_worker_image_and_namespace_of_kubernetes_fleets(make_app):
    _app, c, job = _fleet_app(make_app, WORKER_IMAGE="reg/w:7", K8S_NAMESPACE="sims")
    doc = c.get("/api/v1/jobs/%s/fleet?dry_run=1&workers=2&launcher=kubernetes" % job).get_json()
    assert doc["manifest"]["namespace"] == "sims"
    assert doc["manifest"]["objects"][1]["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/w:7"


@effect_of("ITEMS_CHUNK")
def test_items_chunk_is_how_many_items_a_large_create_stores_per_call(make_app, redis_url, redis_of):
    # a bad item at 150 stops the create: what was stored before it, whole
    # chunks, stays behind (expiring); a chunk size of 7 stored 147, of 100 stored 100
    import json
    items = [{"i": i, "pad": "x" * 6000} for i in range(200)]
    raw = json.dumps({"name": "big", "tasks": {"items": items}}).replace('{"i": 150,', '{"i": NaN,')
    rds = redis_of(redis_url)
    for chunk, stored in ((7, 147), (100, 100)):
        rds.flushdb()
        _app, c = make_app(ITEMS_CHUNK=chunk)
        assert c.post("/api/v1/jobs", data=raw, content_type="application/json").status_code == 400
        assert [rds.hlen(k) for k in all_keys(rds, "*:items")] == [stored]


@effect_of("STALE_SECONDS")
def test_no_lease_is_made_for_a_request_that_waited_too_long(make_app):
    import time
    old = {"X-Request-Start": "t=%.3f" % (time.time() - 10)}
    _app, c = make_app(STALE_SECONDS=5)
    job = make_job(c, total=20, batch_size=5)["id"]
    r = c.post("/api/v1/lease", json={"worker": "w", "job": job}, headers=old)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert c.get("/api/v1/jobs/" + job).get_json()["counts"]["leased"] == 0
    got = lease(c, job=job, headers={"X-Request-Start": "t=%.3f" % time.time()})
    results = [{"id": t["id"], "ok": True, "result": 1} for t in got["tasks"]]
    # a stale complete records its results but makes no next lease
    r = c.post("/api/v1/leases/%s/complete" % got["lease"]["id"],
               json={"results": results, "next": {}}, headers=old)
    assert r.status_code == 200 and r.get_json()["accepted"] == 5 and "next" not in r.get_json()
    assert c.get("/api/v1/jobs/" + job).get_json()["counts"]["leased"] == 0
    _app, off = make_app(STALE_SECONDS=0)
    assert lease(off, job=job, headers=old)["status"] == "ok"


@effect_of("LEASE_SECRET")
def test_lease_secret_signs_lease_ids(make_app, redis_url, redis_of):
    _a, one = make_app(LEASE_SECRET="k1")
    _b, same = make_app(LEASE_SECRET="k1")
    _c, other = make_app(LEASE_SECRET="k2")
    lid = lease(one, job=make_job(one, total=2)["id"])["lease"]["id"]
    assert same.post("/api/v1/leases/%s/heartbeat" % lid).status_code == 200
    assert other.post("/api/v1/leases/%s/heartbeat" % lid).status_code == 404
    assert not redis_of(redis_url).exists("jm:secret")  # none made in Redis


@effect_of("METRICS_TOKEN")
def test_metrics_token_shows_the_jobs_series(make_app):
    _app, c = make_app(ADMIN_TOKENS="a", METRICS_TOKEN="m")
    job = make_job(c, name="hidden", headers={"Authorization": "Bearer a"})["id"]
    assert job not in c.get("/metrics").get_data(as_text=True)
    text = c.get("/metrics", headers={"Authorization": "Bearer m"}).get_data(as_text=True)
    assert 'job="%s",name="hidden"' % job in text


@effect_of("METRICS_CACHE_SECONDS")
def test_metrics_cache_seconds_is_the_window_of_one_text(make_app):
    _app, cached = make_app(METRICS_CACHE_SECONDS=60)
    _app, fresh = make_app(METRICS_CACHE_SECONDS=0)
    assert len({cached.get("/metrics").get_data() for _ in range(3)}) == 1
    assert len({fresh.get("/metrics").get_data() for _ in range(3)}) == 3  # each counts the last
def _finished_job_with_webhook(c, **webhook):
    job = make_job(c, total=1, **({"webhook": webhook} if webhook else {}))["id"]
    got = lease(c, job=job)
    c.post("/api/v1/leases/%s/complete" % got["lease"]["id"],
           json={"results": [{"id": 0, "ok": True, "result": 1}], "next": {}})
    return job  # the "done" answer in next: the app saw the job finish


@effect_of("WEBHOOK_URL", "WEBHOOK_SECRET")
def test_default_webhook_receives_jobs_without_their_own(make_app):
    import hashlib
    import hmac

    import requests

    from app.domain import webhooks
    from tests.support.receiver import Receiver

    with Receiver() as rx:
        app, c = make_app(WEBHOOK_URL=rx.url, WEBHOOK_SECRET="k1")
        job = _finished_job_with_webhook(c)
        webhooks.deliver_due(app.extensions["jobmaster.backend"], requests.Session())
        _, headers, body = rx.calls[0]
        assert json.loads(body)["job"]["id"] == job
        assert headers["X-Jobmaster-Signature"] == \
            "sha256=" + hmac.new(b"k1", body, hashlib.sha256).hexdigest()
    app, c = make_app()  # no default: a job without a webhook has none
    assert "webhook" not in c.get("/api/v1/jobs/" + make_job(c)["id"]).get_json()


@effect_of("WEBHOOK_TIMEOUT")
def test_a_slow_receiver_times_out(make_app):
    import requests

    from app.domain import webhooks
    from tests.support.receiver import Receiver

    with Receiver(delay=30) as rx:
        app, c = make_app(WEBHOOK_TIMEOUT=0.2)
        job = _finished_job_with_webhook(c, url=rx.url)
        webhooks.deliver_due(app.extensions["jobmaster.backend"], requests.Session())
        hook = c.get("/api/v1/jobs/" + job).get_json()["webhook"]
        assert hook["state"] == "failing" and "Timeout" in hook["last_error"]


@effect_of("WEBHOOK_GIVE_UP_SECONDS")
def test_a_webhook_is_abandoned_after_the_give_up_time(make_app):
    import requests

    from app.domain import webhooks

    for give_up, state in ((0, "abandoned"), (86400, "failing")):
        app, c = make_app(WEBHOOK_GIVE_UP_SECONDS=give_up)
        job = _finished_job_with_webhook(c, url="http://127.0.0.1:9/nobody")
        webhooks.deliver_due(app.extensions["jobmaster.backend"], requests.Session())
        assert c.get("/api/v1/jobs/" + job).get_json()["webhook"]["state"] == state


@effect_of("BACKGROUND_SECONDS")
def test_the_background_loop_runs_every_so_often_under_gevent(redis_url):
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import gevent, json\n"
            "from app import background, create_app\n"
            "app = create_app({'REDIS_URL': %r, 'BACKGROUND_SECONDS': 0.05})\n"
            "c = app.test_client()\n"
            "background.start(app)\n"
            "gevent.sleep(0.2)  # the loop has been round a few times\n"
            "s = c.post('/api/v1/schedules', json={'name': 's', 'cron': '0 2 * * 1',\n"
            "           'job': {'name': 'j', 'tasks': {'range': [0, 1]}}}).get_json()\n"
            "app.extensions['jobmaster.backend'].redis.zadd('jm:schedules', {s['id']: 0})\n"
            "for _ in range(200):  # at most 20 s\n"
            "    gevent.sleep(0.1)\n"
            "    if c.get('/api/v1/schedules/' + s['id']).get_json()['last_job']: break\n"
            "print(json.dumps(c.get('/api/v1/schedules/' + s['id']).get_json()))\n")
    out = subprocess.run([sys.executable, "-c", code % redis_url], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["last_job"]


# -- the archive (its behaviour in depth: tests/test_archive*.py) ---------


def _archive(make_app, mongo_url, **config):
    config = {"MONGO_URL": mongo_url, "ARCHIVE_DRAINER": False, "MONGO_TIMEOUT": 1.0, **config}
    app, c = make_app(**config)
    return app.extensions["jobmaster.backend"], c


def _finish(c, job_id):
    from tests.helpers import complete, ok_all

    while True:
        answer = lease(c, job=job_id)
        if answer["status"] != "ok":
            return
        complete(c, answer["lease"]["id"], ok_all(answer["tasks"]))


@effect_of("MONGO_URL")
def test_mongo_url_turns_the_archive_on(make_app, mongo_url, redis_url):
    b, c = _archive(make_app, mongo_url)
    job = make_job(c, 3)["id"]
    _finish(c, job)
    assert c.get("/api/v1/jobs/" + job).get_json()["archive"]["backlog"] == 3
    assert not b.redis.exists(b.keys.job_key(job, "results"))
    _app, plain = make_app()
    other = make_job(plain, 3)["id"]
    _finish(plain, other)
    assert "archive" not in plain.get("/api/v1/jobs/" + other).get_json()
    assert b.redis.hlen(b.keys.job_key(other, "results")) == 3


@effect_of("MONGO_TIMEOUT")
def test_mongo_timeout_bounds_each_archive_call(make_app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b, c = _archive(make_app, "mongodb://127.0.0.1:%d/x" % port, MONGO_TIMEOUT=0.2)
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["mongo"] == "unreachable"
    assert b.archive._client.options.server_selection_timeout == 0.2


@effect_of("RETENTION_SECONDS")
def test_retention_moves_finished_jobs_out_of_redis(make_app, mongo_url):
    for seconds, kept in ((3600, True), (0, False)):
        b, c = _archive(make_app, mongo_url, RETENTION_SECONDS=seconds)
        job = make_job(c, 2)["id"]
        _finish(c, job)
        for _ in range(3):
            b.redis.zadd(b.keys.archiving, {job: 0}, xx=True)
            b.drainer.drain_round()
        assert bool(b.redis.exists(b.keys.job_key(job, "meta"))) is kept
        assert c.get("/api/v1/jobs/" + job).get_json()["counts"]["done"] == 2


@effect_of("ARCHIVE_BATCH")
def test_archive_batch_is_the_entries_one_call_takes(make_app, mongo_url):
    b, c = _archive(make_app, mongo_url, ARCHIVE_BATCH=1)
    job = make_job(c, 4, batch_size=1)["id"]
    _finish(c, job)  # four complete calls: four outbox entries
    assert b.drainer.drain_job(job)[:2] == (1, 3)


@effect_of("ARCHIVE_CLAIM_SECONDS")
def test_an_unacknowledged_batch_is_taken_over_after_the_claim_time(make_app, mongo_url):
    b, c = _archive(make_app, mongo_url, ARCHIVE_CLAIM_SECONDS=3600)
    job = make_job(c, 2, batch_size=2)["id"]
    _finish(c, job)
    b.run("archive_take", job, ["a-dead-drainer", 10, 0])
    assert b.drainer.drain_job(job)[:2] == (0, 1)  # still its: not taken over
    b.drainer.claim_ms = 0
    assert b.drainer.drain_job(job)[:2] == (1, 0)


@effect_of("ARCHIVE_IDLE_SECONDS")
def test_an_idle_running_job_is_looked_at_every_idle_seconds(make_app, mongo_url):
    b, c = _archive(make_app, mongo_url, ARCHIVE_IDLE_SECONDS=50)
    job = make_job(c, 2)["id"]
    b.drainer.drain_round()
    sec, usec = b.redis.time()
    due = b.redis.zscore(b.keys.archiving, job) - (sec * 1000 + usec // 1000)
    assert 40000 < due <= 50000


@effect_of("ARCHIVE_DRAINER")
def test_the_drainer_runs_in_the_background_unless_told_not_to(make_app, mongo_url):
    from tests.support.procs import wait_until

    b, c = _archive(make_app, mongo_url, ARCHIVE_DRAINER=True, ARCHIVE_IDLE_SECONDS=0.05)
    job = make_job(c, 3)["id"]
    _finish(c, job)
    wait_until(lambda: c.get("/api/v1/jobs/" + job).get_json()["archive"]["backlog"] == 0,
               timeout=20, what="the background drainer")
    quiet, _c = _archive(make_app, mongo_url)
    assert quiet.drainer._pid is None  # never started


@effect_of("RESULT_HOOK")
def test_the_result_hook_is_called_with_result_documents(make_app):
    from tests.support import hooks

    hooks.CALLS.clear()
    hooks.FAILS[0] = 0
    _app, c = make_app(RESULT_HOOK="tests.support.hooks:record", ARCHIVE_DRAINER=False)
    b = _app.extensions["jobmaster.backend"]
    job = make_job(c, 2, batch_size=2)["id"]
    _finish(c, job)
    b.drainer.drain_round()
    assert sorted(d["task"] for batch in hooks.CALLS for d in batch) == [0, 1]
    with pytest.raises(ValueError):
        make_app(RESULT_HOOK="no-colon-here")


@effect_of("MAX_FILE_BYTES")
def test_max_file_bytes_bounds_an_upload(make_app, mongo_url):
    b, c = _archive(make_app, mongo_url, MAX_FILE_BYTES=10)
    job = make_job(c, 1)["id"]
    path = "/api/v1/jobs/%s/files/" % job
    assert c.put(path + "small", data=b"0123456789").status_code == 201
    assert c.put(path + "big", data=b"0123456789a").status_code == 413


@effect_of("INSPECT_ATTEMPTS")
def test_inspect_attempts_bounds_the_attempts_the_inspector_reads(make_app, mongo_url):
    from tests.helpers import complete, drain_round_now

    b, c = _archive(make_app, mongo_url, INSPECT_ATTEMPTS=2)
    job = make_job(c, 1, batch_size=1, max_attempts=5)["id"]
    for n in range(4):
        got = lease(c, "pod-%d" % n, job=job)
        complete(c, got["lease"]["id"], [{"id": 0, "ok": False, "error": "e%d" % n}])
    drain_round_now(b)
    t = c.get("/api/v1/jobs/%s/tasks/0" % job).get_json()
    assert [(a["attempt"], a["worker"]) for a in t["history"]] == [(3, "pod-2"), (4, "pod-3")]
    assert t["failed_attempts"] == 4


def test_every_setting_has_a_test_of_its_effect():
    assert {name for name, *_ in SETTINGS} - TESTED == set()
