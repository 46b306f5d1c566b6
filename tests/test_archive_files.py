"""Job files in GridFS and the result hook (docs/contract.md §6), against real Redis
and nx-27017 (the MongoDB stand-in)."""
import hashlib
import io
import os

import pytest

from tests.helpers import complete, lease, make_job, ok_all

from tests.support import hooks


@pytest.fixture
def c(archive_app):
    return archive_app.test_client()


def put(c, job_id, name, data, **headers):
    return c.put("/api/v1/jobs/%s/files/%s" % (job_id, name), data=data,
                 headers={"Content-Type": "application/octet-stream", **headers})


def test_a_file_round_trips_with_its_sha256(c, archive_app):
    job = make_job(c, 1)
    data = os.urandom(700 * 1024 + 13)  # several GridFS chunks
    r = put(c, job["id"], "stats-pod7.bin", data, **{"X-Worker-ID": "pod-7"})
    assert r.status_code == 201, r.get_json()
    want = {"name": "stats-pod7.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "uploaded_by": "pod-7"}
    assert {k: r.get_json()[k] for k in want} == want
    listed = c.get("/api/v1/jobs/%s/files" % job["id"]).get_json()["files"]
    assert [{k: f[k] for k in want} for f in listed] == [want]
    got = c.get("/api/v1/jobs/%s/files/stats-pod7.bin" % job["id"])
    assert got.status_code == 200 and got.data == data
    assert got.headers["X-Content-SHA256"] == want["sha256"]
    # A second upload of the name: 409, and the first file is untouched.
    again = put(c, job["id"], "stats-pod7.bin", b"other")
    assert again.status_code == 409 and again.get_json()["error"] == "conflict"
    assert c.get("/api/v1/jobs/%s/files/stats-pod7.bin" % job["id"]).data == data
    # Still there once the job has left Redis.
    assert c.delete("/api/v1/jobs/" + job["id"]).status_code == 200
    assert c.get("/api/v1/jobs/%s/files/stats-pod7.bin" % job["id"]).data == data


def test_bad_file_requests_change_nothing(redis_url, mongo_url):
    from app import create_app

    app = create_app({"REDIS_URL": redis_url, "MONGO_URL": mongo_url, "ARCHIVE_DRAINER": False,
                      "MAX_FILE_BYTES": 1000, "MONGO_TIMEOUT": 1.0})
    c = app.test_client()
    try:
        job = make_job(c, 1)
        too_big = put(c, job["id"], "big", b"x" * 1001)
        assert too_big.status_code == 413 and too_big.get_json()["error"] == "too_large"
        assert put(c, "abcdef", "a", b"x").status_code == 404
        assert put(c, job["id"], "../etc", b"x").status_code in (400, 404)
        assert put(c, job["id"], ".hidden", b"x").status_code == 400
        assert c.get("/api/v1/jobs/%s/files/none" % job["id"]).status_code == 404
        assert c.get("/api/v1/jobs/%s/files" % job["id"]).get_json() == {"files": []}
        # A chunked body over the limit is cut off while it is read.
        chunked = c.put("/api/v1/jobs/%s/files/big" % job["id"], headers={
            "Transfer-Encoding": "chunked"}, environ_overrides={
            "wsgi.input": io.BytesIO(b"y" * 1200), "wsgi.input_terminated": True})
        assert chunked.status_code == 413
        assert c.get("/api/v1/jobs/%s/files" % job["id"]).get_json() == {"files": []}
    finally:
        app.extensions["jobmaster.backend"].close()


def test_files_need_the_archive(client):
    job = make_job(client, 1)
    r = client.put("/api/v1/jobs/%s/files/a" % job["id"], data=b"x")
    assert r.status_code == 501 and r.get_json()["error"] == "not_configured"
    assert "JOBMASTER_MONGO_URL" in r.get_json()["message"]
    assert client.get("/api/v1/jobs/%s/files" % job["id"]).status_code == 501


def _hook_app(redis_url, mongo_url=""):
    from app import create_app

    return create_app({"REDIS_URL": redis_url, "MONGO_URL": mongo_url, "ARCHIVE_DRAINER": False,
                       "ARCHIVE_CLAIM_SECONDS": 0, "MONGO_TIMEOUT": 1.0,
                       "RESULT_HOOK": "tests.support.hooks:record"})


@pytest.mark.parametrize("with_archive", [True, False])
def test_the_result_hook_gets_every_result_at_least_once(redis_url, mongo_url, with_archive,
                                                         monkeypatch):
    import app.domain.drain as drain

    monkeypatch.setattr(drain.time, "sleep", lambda s: None)  # (its backoff, not a wait)
    hooks.CALLS.clear()
    hooks.FAILS[0] = drain.HOOK_TRIES + 1  # one batch fails for good, then is taken again
    app = _hook_app(redis_url, mongo_url if with_archive else "")
    c, b = app.test_client(), app.extensions["jobmaster.backend"]
    try:
        job = make_job(c, 6, batch_size=3)
        for _ in range(2):
            answer = lease(c, "w1", job["id"])
            complete(c, answer["lease"]["id"], ok_all(answer["tasks"]))
        with pytest.raises(drain.HookFailed):
            b.drainer.drain_round()
        b.redis.zadd(b.keys.archiving, {job["id"]: 0})
        assert b.drainer.drain_round() == 2
        tasks = sorted(d["task"] for batch in hooks.CALLS for d in batch)
        assert tasks == list(range(6))
        assert all(set(d) >= {"job", "task", "attempt", "worker", "ok", "result", "finished_at"}
                   and "_id" not in d for batch in hooks.CALLS for d in batch)
        if not with_archive:  # results stay in Redis as without a hook
            assert b.redis.hlen(b.keys.job_key(job["id"], "results")) == 6
        assert b.redis.xlen(b.keys.job_key(job["id"], "outbox")) == 0
        # Once more over the finished job: nothing new for the hook.
        b.redis.zadd(b.keys.archiving, {job["id"]: 0})
        assert b.drainer.drain_round() == 0
        assert len([d for batch in hooks.CALLS for d in batch]) == 6
    finally:
        b.close()


def test_a_job_token_uploads_only_its_jobs_files(c):
    mine, other = make_job(c, 1)["id"], make_job(c, 1)["id"]
    token = c.post("/api/v1/jobs/%s/tokens" % mine, json={}).get_json()["token"]
    auth = {"Authorization": "Bearer " + token}
    assert put(c, mine, "ok.bin", b"x", **auth).status_code == 201
    r = put(c, other, "no.bin", b"x", **auth)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert c.get("/api/v1/jobs/%s/files" % other).get_json()["files"] == []
