"""The MongoDB archive (docs/contract.md §6) against real Redis and nx-27017 (the
MongoDB stand-in, tests/support/mongo.py), through the Flask test client;
the drainer is driven by the tests (backend.drainer), so every step is
deterministic. tests/test_archive_stack.py runs the real background drainers."""
import json

import pymongo
import pytest

from tests.helpers import (complete, drain_round_now, expire_now, lease, make_job, ok_all,
                           results, status)
from tests.invariants import check_job


@pytest.fixture
def c(archive_app):
    return archive_app.test_client()


@pytest.fixture
def b(archive_app):
    return archive_app.extensions["jobmaster.backend"]


@pytest.fixture
def db(mongo_url):
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    yield client.get_default_database()
    client.close()


def run_job(c, total, batch=10, fn=lambda t: {"v": t["payload"]}, **settings):
    job = make_job(c, total, batch_size=batch, **settings)
    while True:
        answer = lease(c, "w1", job["id"])
        if answer["status"] != "ok":
            break
        complete(c, answer["lease"]["id"], ok_all(answer["tasks"], fn))
    return job["id"]


def outbox_len(b, job_id):
    return b.redis.xlen(b.keys.job_key(job_id, "outbox"))


def drain(b):
    """Run drain rounds until nothing is left to take."""
    for _ in range(100):
        if not drain_round_now(b):
            return
    raise AssertionError("the drainer never ran dry")


def test_results_leave_redis_once_archived_each_task_once(c, b, db):
    job_id = run_job(c, 45)
    st = status(c, job_id)
    assert st["state"] == "completed" and st["counts"]["done"] == 45
    assert st["archive"] == {"archived": 0, "backlog": 45} and st["archived"] is False
    assert not b.redis.exists(b.keys.job_key(job_id, "results"))
    # Before and after the drain: the same lines, in id order, each once.
    before = results(c, job_id)
    assert [r["id"] for r in before] == list(range(45))
    drain(b)
    assert outbox_len(b, job_id) == 0
    docs = list(db.results.find({"job": job_id}, {"_id": 0}).sort("task", 1))
    assert [d["task"] for d in docs] == list(range(45))
    assert docs[7] == {"job": job_id, "task": 7, "attempt": 1, "worker": "w1", "ok": True,
                       "result": {"v": 7}, "finished_at": docs[7]["finished_at"]}
    assert results(c, job_id) == before
    assert status(c, job_id)["archive"] == {"archived": 45, "backlog": 0}
    check_job(b.redis, b.keys, job_id)
    # A re-sent batch is a duplicate and changes nothing, in Redis or MongoDB.
    answer = make_job(c, 1)
    assert answer["archive"] == {"archived": 0, "backlog": 0}


def test_first_result_wins_and_a_duplicate_never_reaches_the_archive(c, b, db):
    job = make_job(c, 4, batch_size=4)
    answer = lease(c, "w1", job["id"])
    lid = answer["lease"]["id"]
    first = complete(c, lid, [{"id": 0, "ok": True, "result": "first"}])
    again = complete(c, lid, [{"id": 0, "ok": True, "result": "second"},
                              {"id": 1, "ok": True, "result": "one"}])
    assert (first["accepted"], again["accepted"], again["duplicates"]) == (1, 1, 1)
    drain(b)
    complete(c, lid, [{"id": 0, "ok": True, "result": "third"}])  # after archiving too
    drain(b)
    docs = {d["task"]: d["result"] for d in db.results.find({"job": job["id"]})}
    assert docs == {0: "first", 1: "one"}
    check_job(b.redis, b.keys, job["id"])


def test_a_late_result_names_the_worker_and_attempt_it_ran_as(c, b, db):
    """Issue 13 item 7: A leases, A's lease expires, B leases the same tasks,
    A reports late, then B: the stored results are A's, attempt 1."""
    job = make_job(c, 3, batch_size=3)
    a = lease(c, "alice", job["id"])
    expire_now(b.redis, b.keys, job["id"], a["lease"]["id"])
    bb = lease(c, "bob", job["id"])
    assert [t["attempt"] for t in bb["tasks"]] == [2, 2, 2]
    late = complete(c, a["lease"]["id"], ok_all(a["tasks"], lambda t: "from alice"))
    assert late["accepted"] == 3
    assert complete(c, bb["lease"]["id"], ok_all(bb["tasks"]))["duplicates"] == 3
    lines = results(c, job["id"])
    assert [(r["worker"], r["attempt"], r["result"]) for r in lines] == [("alice", 1, "from alice")] * 3
    drain(b)
    assert {(d["worker"], d["attempt"]) for d in db.results.find({"job": job["id"]})} == {("alice", 1)}
    # The expiry itself is an attempt of alice's.
    expired = list(db.attempts.find({"job": job["id"]}, {"_id": 0}).sort("task", 1))
    assert [(d["task"], d["attempt"], d["worker"], d["error"]) for d in expired] == [
        (t, 1, "alice", "lease expired") for t in range(3)]


def test_provenance_without_the_archive_too(client, rds):
    from app.store.keys import Keys

    job = make_job(client, 2, batch_size=2, max_attempts=5)
    a = lease(client, "alice", job["id"])
    expire_now(rds, Keys(), job["id"], a["lease"]["id"])
    bb = lease(client, "bob", job["id"])
    # A list lease this time: alice's second lease of task 1 after bob failed it.
    complete(client, bb["lease"]["id"], [{"id": 1, "ok": False, "error": "boom"}])
    a2 = lease(client, "alice", job["id"], max_tasks=1)
    assert a2["tasks"] == [{"id": 1, "attempt": 3, "payload": 1}]
    expire_now(rds, Keys(), job["id"], a2["lease"]["id"])
    carol = lease(client, "carol", job["id"], max_tasks=1)
    assert carol["tasks"][0]["attempt"] == 4
    assert complete(client, a2["lease"]["id"], ok_all(a2["tasks"]))["accepted"] == 1
    assert complete(client, a["lease"]["id"], ok_all(a["tasks"]))["accepted"] == 1  # task 0
    lines = {r["id"]: (r["worker"], r["attempt"]) for r in results(client, job["id"])}
    assert lines == {0: ("alice", 1), 1: ("alice", 3)}


def test_every_failed_attempt_is_kept_and_the_dead_view_shows_them(c, b, db):
    job = make_job(c, 2, batch_size=1, max_attempts=2)
    first = lease(c, "w1", job["id"])
    complete(c, first["lease"]["id"], [{"id": 0, "ok": False, "error": "boom 1"}])
    third = lease(c, "w3", job["id"], max_tasks=1)  # handed-back tasks first
    assert third["tasks"][0] == {"id": 0, "attempt": 2, "payload": 0}
    complete(c, third["lease"]["id"], [{"id": 0, "ok": False, "error": "boom 2"}])
    second = lease(c, "w2", job["id"], max_tasks=1)
    assert second["tasks"][0]["id"] == 1
    complete(c, second["lease"]["id"], ok_all(second["tasks"]))
    assert status(c, job["id"])["counts"]["dead"] == 1
    drain(b)
    r = c.get("/api/v1/jobs/%s/attempts" % job["id"])
    assert r.status_code == 200
    assert [(a["task"], a["attempt"], a["worker"], a["error"], a["dead"])
            for a in r.get_json()["attempts"]] == [(0, 1, "w1", "boom 1", False),
                                                   (0, 2, "w3", "boom 2", True)]
    dead = c.get("/api/v1/jobs/%s/dead" % job["id"]).get_json()
    assert dead["count"] == 1
    assert [(h["attempt"], h["worker"], h["error"]) for h in dead["dead"][0]["history"]] == [
        (1, "w1", "boom 1"), (2, "w3", "boom 2")]
    failed = c.get("/api/v1/jobs/%s/results?ok=false" % job["id"]).get_data(as_text=True)
    assert [json.loads(line) for line in failed.splitlines()] == [
        {"id": 0, "attempt": 2, "worker": "w3", "ok": False, "error": "boom 2",
         "finished_at": dead["dead"][0]["at"]}]
    assert db.attempts.count_documents({"job": job["id"]}) == 2


def test_delete_keeps_the_job_in_the_archive(c, b, db):
    job_id = run_job(c, 12, batch=5)
    r = c.delete("/api/v1/jobs/" + job_id)
    assert r.status_code == 200 and r.get_json()["archived"] is True
    assert not [k for k in b.redis.keys("*") if job_id in k]
    st = status(c, job_id)
    assert st["archived"] is True and st["state"] == "completed"
    assert st["counts"]["done"] == 12 and st["archive"] == {"archived": 12, "backlog": 0}
    assert [r["id"] for r in results(c, job_id)] == list(range(12))
    page = c.get("/api/v1/jobs/%s/results?after=4&limit=3" % job_id).get_data(as_text=True)
    assert [json.loads(line)["id"] for line in page.splitlines()] == [5, 6, 7]
    listed = c.get("/api/v1/jobs?archived=true").get_json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert c.get("/api/v1/jobs/%s/attempts" % job_id).get_json() == {"attempts": []}
    assert db.jobs.find_one({"_id": job_id})["archived"] is True


def test_a_drainers_late_job_document_does_not_unarchive_a_deleted_job(c, b, db):
    from app.domain.jobs import status as job_status

    job_id = run_job(c, 3, batch=3)
    # A drainer reads the finished job's status, then a DELETE archives the
    # job before the drainer's write lands.
    stale = job_status(b, job_id)
    assert c.delete("/api/v1/jobs/" + job_id).get_json()["archived"] is True
    b.archive.save_job(stale)
    assert db.jobs.find_one({"_id": job_id})["archived"] is True
    assert status(c, job_id)["archived"] is True
    # A job document of a job that stays (a DELETE that must try again) does replace it.
    b.archive.save_job(stale, unarchive=True)
    assert db.jobs.find_one({"_id": job_id})["archived"] is False


def test_retention_removes_redis_state_only_once_all_is_archived(redis_url, mongo_url):
    from app import create_app

    app = create_app({"REDIS_URL": redis_url, "MONGO_URL": mongo_url, "ARCHIVE_DRAINER": False,
                      "ARCHIVE_CLAIM_SECONDS": 0, "RETENTION_SECONDS": 0})
    c, b = app.test_client(), app.extensions["jobmaster.backend"]
    try:
        running = make_job(c, 5)["id"]
        done = run_job(c, 6, batch=6)
        # Its one batch is taken by a drainer that is killed before it
        # acknowledges: the job stays in Redis until the batch is taken over
        # (after ARCHIVE_CLAIM_SECONDS) and archived.
        b.run("archive_take", done, ["killed", 10, 0])
        b.drainer.claim_ms = 60000
        drain(b)
        assert status(c, done)["archived"] is False
        b.drainer.claim_ms = 0
        drain(b)
        assert status(c, done)["archived"] is True
        assert not b.redis.exists(b.keys.job_key(done, "meta"))
        assert sorted(d["task"] for d in b.archive.find("results", {"job": done})) == list(range(6))
        assert b.redis.zscore(b.keys.archiving, done) is None
        assert status(c, running).get("archived") is False  # running: kept
    finally:
        b.close()


def test_results_export_merges_archived_and_waiting_in_id_order(c, b, db):
    job = make_job(c, 30, batch_size=10)
    leases = [lease(c, "w1", job["id"]) for _ in range(3)]
    # Finish them out of order: 20..29 first, archive those, then 0..9, then 10..19.
    complete(c, leases[2]["lease"]["id"], ok_all(leases[2]["tasks"]))
    drain(b)
    complete(c, leases[0]["lease"]["id"], ok_all(leases[0]["tasks"]))
    assert [r["id"] for r in results(c, job["id"])] == list(range(10)) + list(range(20, 30))
    # An entry archived but not yet acknowledged is in both places: still once.
    from app.domain.archive import result_doc

    taken = b.run("archive_take", job["id"], ["slow", 10, 0])
    assert len(taken) == 5  # 'ok', state, finished_at, waiting and the one entry of 0..9
    fields = dict(zip(taken[4][1][::2], taken[4][1][1::2]))
    b.archive.insert("results", [result_doc(job["id"], x) for x in fields["r"].split("\n")])
    complete(c, leases[1]["lease"]["id"], ok_all(leases[1]["tasks"]))
    lines = results(c, job["id"])
    assert [r["id"] for r in lines] == list(range(30))
    page = c.get("/api/v1/jobs/%s/results?after=8&limit=4" % job["id"]).get_data(as_text=True)
    assert [json.loads(x)["id"] for x in page.splitlines()] == [9, 10, 11, 12]
    drain(b)
    assert results(c, job["id"]) == lines
    assert db.results.count_documents({"job": job["id"]}) == 30


def test_mongo_down_leasing_goes_on_nothing_is_dropped(c, b, mongo_server):
    job = make_job(c, 20, batch_size=5)
    answer = lease(c, "w1", job["id"])
    complete(c, answer["lease"]["id"], ok_all(answer["tasks"]))
    mongo_server.stop()
    try:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["checks"]["mongo"] == "unreachable"
        from app.domain.archive import ArchiveUnavailable

        with pytest.raises(ArchiveUnavailable):
            b.drainer.drain_round()
        for _ in range(3):
            answer = lease(c, "w1", job["id"])
            assert complete(c, answer["lease"]["id"], ok_all(answer["tasks"]))["accepted"] == 5
        assert status(c, job["id"])["state"] == "completed"
        assert status(c, job["id"])["archive"]["backlog"] == 20
        r = c.get("/api/v1/jobs/%s/results" % job["id"])
        assert r.status_code == 503 and r.get_json()["error"] == "unavailable"
        r = c.delete("/api/v1/jobs/" + job["id"])
        assert r.status_code == 503
        assert b.redis.exists(b.keys.job_key(job["id"], "meta"))
    finally:
        mongo_server.start()
    drain(b)
    assert status(c, job["id"])["archive"] == {"archived": 20, "backlog": 0}
    assert [r["id"] for r in results(c, job["id"])] == list(range(20))
    assert c.get("/readyz").get_json()["checks"]["mongo"] == "ok"


def test_metrics_show_the_backlog(c, b):
    job_id = run_job(c, 7)
    text = c.get("/metrics").get_data(as_text=True)
    assert 'jobmaster_job_archive_backlog{job="%s",name="job"} 7' % job_id in text
    assert "jobmaster_archive_backlog 7" in text.splitlines()
    drain(b)
    text = c.get("/metrics").get_data(as_text=True)
    assert 'jobmaster_job_archive_backlog{job="%s",name="job"} 0' % job_id in text


def test_results_without_archive_are_in_id_order_and_exact(client):
    job = make_job(client, 2500, batch_size=500)
    leases = []
    while True:
        answer = lease(client, "w", job["id"])
        if answer["status"] != "ok":
            break
        leases.append(answer)
    for answer in reversed(leases):
        complete(client, answer["lease"]["id"], ok_all(answer["tasks"]))
    lines = results(client, job["id"])
    assert [r["id"] for r in lines] == list(range(2500))
    # sent in pieces of many whole lines, not one write per line
    pieces = list(client.get("/api/v1/jobs/%s/results" % job["id"]).response)
    assert 1 < len(pieces) < 100
    assert all(p.endswith(b"\n") for p in pieces)
    assert sum(p.count(b"\n") for p in pieces) == 2500
    page = client.get("/api/v1/jobs/%s/results?after=998&limit=3" % job["id"]).get_data(as_text=True)
    assert [json.loads(x)["id"] for x in page.splitlines()] == [999, 1000, 1001]


@pytest.mark.parametrize("path, status_code, code", [
    ("/api/v1/jobs/%s/results?after=x", 400, "bad_request"),
    ("/api/v1/jobs/%s/results?limit=0", 400, "bad_request"),
    ("/api/v1/jobs/%s/results?ok=maybe", 400, "bad_request"),
    ("/api/v1/jobs/%s/attempts", 501, "not_configured"),
    ("/api/v1/jobs?archived=true", 501, "not_configured"),
    ("/api/v1/jobs/ffff/results", 404, "not_found"),
])
def test_bad_input_without_archive(client, path, status_code, code):
    job = make_job(client, 1)
    r = client.get(path % job["id"] if "%s" in path else path)
    assert r.status_code == status_code and r.get_json()["error"] == code


def test_unknown_job_is_404_with_the_archive(c):
    for path in ("/api/v1/jobs/abcd", "/api/v1/jobs/abcd/results", "/api/v1/jobs/abcd/attempts",
                 "/api/v1/jobs/abcd/dead"):
        r = c.get(path)
        assert r.status_code == 404 and r.get_json()["error"] == "not_found", path
