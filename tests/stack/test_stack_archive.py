"""The archive through the real stack: background drainers in every uWSGI
process, an instance killed with -9 (its drainer with it, wherever it was),
the archive server stopped for a while, a straggler whose late results
arrive after its lease expired. Afterwards MongoDB is read directly: every
done task once, with its first result and the worker that sent it, and
nothing left in Redis but what is not archived yet (nothing, at the end).
"""
import hashlib
import os
import threading

import pymongo
import pytest

from tests.stack.test_stack_faults import DEADLINE, Pace, Worker, _status
from tests.support.mongo import start_mongo
from tests.support.procs import wait_until
from tests.support.stack import start_stack


def _archive_errors(st):
    for line in st.get("/metrics").body.decode().splitlines():
        if line.startswith('jobmaster_archive_total{event="errors"}'):
            return float(line.split()[-1])
    return 0


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_archive_survives_a_killed_instance_an_outage_and_a_straggler(tmp_path, server, redis_of):
    mongo = start_mongo(tmp_path / "mongo")
    st = start_stack(tmp_path / "stack", instances=2, server=server, env={
        "JOBMASTER_MONGO_URL": mongo.url, "JOBMASTER_MONGO_TIMEOUT": "1",
        "JOBMASTER_ARCHIVE_CLAIM_SECONDS": "1", "JOBMASTER_ARCHIVE_IDLE_SECONDS": "0.2"})
    stop = threading.Event()
    workers = []
    try:
        total = 3000
        r = st.post("/api/v1/jobs", {"name": "archive", "tasks": {"range": [0, total]},
                                     "batch_size": 20, "lease_seconds": 2, "max_attempts": 20})
        assert r.status == 201, r
        job = r.json()["id"]
        straggler = st.post("/api/v1/lease", {"worker": "straggler", "job": job}).json()
        # The pace keeps the workers from running ahead of the steps below
        # (a fast run once finished the job before the archive went down):
        # the kill comes while they run, the outage while they are held.
        pace = Pace(total // 2)
        workers = [Worker(st, job, "w%d" % i, "127.0.%d.1" % (10 + i), stop, pace)
                   for i in range(6)]
        for w in workers:
            w.start()

        def done_at_least(n):
            assert any(w.is_alive() for w in workers), workers
            return _status(st, job)["counts"]["done"] >= n

        wait_until(lambda: workers[0].served_by, timeout=30, what="first answer")
        wait_until(lambda: done_at_least(total // 3), timeout=DEADLINE, what="a third done")
        st.instance(workers[0].served_by[0]).kill()
        wait_until(lambda: done_at_least(total // 2), timeout=DEADLINE, what="half done")
        mongo.stop()
        ready = st.get("/readyz")
        assert ready.status == 200 and ready.json()["checks"]["mongo"] == "unreachable"
        pace.raise_to(3 * total // 4)
        wait_until(lambda: done_at_least(3 * total // 4), timeout=DEADLINE,
                   what="three quarters done")
        # A second job done while the archive is down: its results must wait.
        small = st.post("/api/v1/jobs", {"name": "outage", "tasks": {"range": [0, 10]},
                                         "batch_size": 10}).json()["id"]
        got = st.post("/api/v1/lease", {"worker": "w-outage", "job": small}).json()
        assert st.post("/api/v1/leases/%s/complete" % got["lease"]["id"], {"results": [
            {"id": t["id"], "ok": True, "result": "o"} for t in got["tasks"]]}).status == 200
        # The outage lasts until a drainer has failed on it (and /metrics says so).
        wait_until(lambda: _archive_errors(st) > 0, timeout=DEADLINE, what="a failed drain")
        assert _status(st, small)["archive"]["backlog"] == 10
        # Long expired, the straggler reports (while the archive is down).
        late = st.post("/api/v1/leases/%s/complete" % straggler["lease"]["id"],
                       {"results": [{"id": t["id"], "ok": True, "result": "late"}
                                    for t in straggler["tasks"]]})
        assert late.status == 200, late
        now = _status(st, job)
        assert now["archive"]["backlog"] > 0, (now["counts"], now["archive"], workers)
        mongo.start()
        pace.raise_to(float("inf"))  # the rest of the job
        for w in workers:
            w.join(DEADLINE)
        assert not any(w.is_alive() for w in workers)
        assert _status(st, job)["state"] == "completed"
        wait_until(lambda: _status(st, job)["archive"] == {"archived": total, "backlog": 0},
                   timeout=DEADLINE, what="everything archived")
        wait_until(lambda: _status(st, small)["archive"] == {"archived": 10, "backlog": 0},
                   timeout=DEADLINE, what="the outage's job archived")

        client = pymongo.MongoClient(mongo.url, serverSelectionTimeoutMS=5000)
        docs = list(client.get_default_database().results.find({"job": job}, {"_id": 0}))
        client.close()
        assert sorted(d["task"] for d in docs) == list(range(total))  # each once
        names = {w.name for w in workers} | {"straggler"}
        assert {d["worker"] for d in docs} <= names
        mine = {t["id"] for t in straggler["tasks"]}
        for d in docs:
            if d["worker"] == "straggler":
                assert d["task"] in mine and d["attempt"] == 1 and d["result"] == "late"
            else:
                assert d["result"] == d["task"]
        assert sum(1 for d in docs if d["worker"] == "straggler") == late.json()["accepted"]
        # Nothing of it left in Redis, and the export agrees with MongoDB.
        rds = redis_of(st.redis_url)
        assert rds.xlen("jm:{%s}:outbox" % job) == 0
        assert not rds.exists("jm:{%s}:results" % job)
        body = st.get("/api/v1/jobs/%s/results" % job).body.decode().splitlines()
        assert len(body) == total
        # A file through nginx (more than MAX_BODY_BYTES would allow is not
        # needed to show the streaming path; a few MB cross several chunks).
        data = os.urandom(3 * 1024 * 1024 + 7)
        up = st.request("PUT", "/api/v1/jobs/%s/files/stats.bin" % job, body=data,
                        headers={"Content-Type": "application/octet-stream"})
        assert up.status == 201, up
        assert up.json()["sha256"] == hashlib.sha256(data).hexdigest()
        down = st.get("/api/v1/jobs/%s/files/stats.bin" % job)
        assert down.status == 200 and down.body == data
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        st.stop()
        mongo.stop()
