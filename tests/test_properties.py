"""Random sequences of lease, complete (ok/fail/duplicate/late), heartbeat,
release, expiry, pause/resume and cancel, with docs/contract.md §4 (the invariants)
checked against Redis after every step; jobs may have a failure budget,
retry backoff, guided batching and straggler copies (§7-§8), the last being
the one allowed exception to invariant 3."""
import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.helpers import drain_round_now
from tests.invariants import check_job

WORKERS = ["w0", "w1", "w2"]


class LeaseMachine(RuleBasedStateMachine):
    """Model: which tasks each lease should hold, and each task's first result.

    Leases are drawn in the order they were made (never sorted: their ids are
    random, and hypothesis needs the same choices to replay a failure).
    """

    def __init__(self):
        super().__init__()
        self.c = self.app.test_client()
        self.backend = self.app.extensions["jobmaster.backend"]
        self.rds = self.backend.redis
        self.rds.flushdb()
        self.held = {}       # lease id -> task ids it holds (per the model)
        self.copies = {}     # speculative lease id -> task ids it has copies of
        self.expired = {}    # lease id -> tasks it held when forced to expire
        self.first = {}      # task id -> first accepted result
        self.state = "running"

    app = None  # set by the test below

    @initialize(total=st.integers(0, 25), kind=st.sampled_from(["range", "items"]),
                max_attempts=st.integers(1, 3), max_dead=st.sampled_from([None, 0, 2]),
                backoff=st.sampled_from([0, 100]), batching=st.sampled_from(["fixed", "guided"]),
                speculate=st.booleans())
    def create(self, total, kind, max_attempts, max_dead, backoff, batching, speculate):
        tasks = {"range": [7, 7 + total]} if kind == "range" else {"items": [{"n": i} for i in range(total)]}
        r = self.c.post("/api/v1/jobs", json={"name": "prop", "tasks": tasks, "batch_size": 4,
                                              "max_attempts": max_attempts, "lease_seconds": 60,
                                              "max_dead": max_dead, "retry_backoff": backoff,
                                              "batching": batching, "speculate": speculate})
        assert r.status_code == 201, r.json
        self.job = r.json["id"]
        self.total = total
        self.max_attempts = max_attempts
        self.speculate = speculate
        self.state = r.json["state"]

    def live_tasks(self):
        return {t for ts in self.held.values() for t in ts}

    def copied(self):
        return {t for ts in self.copies.values() for t in ts}

    def backing_off(self):
        return self.rds.zcard(self.backend.keys.job_key(self.job, "backoff"))

    def lose(self, t):
        """Task t is done by someone else: whoever holds it now loses it."""
        for holder in list(self.held):
            self.held[holder].discard(t)
            if not self.held[holder]:
                del self.held[holder]  # its last task gone, the lease closed
    @rule(worker=st.sampled_from(WORKERS), n=st.integers(1, 6))
    def lease(self, worker, n):
        # a task this worker failed last skips it once while others ask
        # (docs/contract.md §8): then a wait is right though the task is pending
        shunned = worker in self.rds.hvals(self.backend.keys.job_key(self.job, "shun"))
        r = self.c.post("/api/v1/lease", json={"worker": worker, "max_tasks": n, "job": self.job})
        assert r.status_code == 200
        body = r.json
        if body["status"] == "ok" and body["tasks"][0].get("speculative"):
            ids = {t["id"] for t in body["tasks"]}
            assert all(t.get("speculative") for t in body["tasks"])
            assert self.speculate and len(ids) <= n
            assert ids <= self.live_tasks(), "a copy of a task nobody holds"
            assert not (ids & self.copied()), "two live copies of one task"
            self.copies[body["lease"]["id"]] = ids
        elif body["status"] == "ok":
            ids = [t["id"] for t in body["tasks"]]
            assert len(ids) <= n and len(set(ids)) == len(ids)
            assert not (set(ids) & self.live_tasks()), "a task is in two live leases"
            assert not (set(ids) & set(self.first)), "a done task was handed out again"
            self.held[body["lease"]["id"]] = set(ids)
        elif body["status"] == "wait":
            assert r.headers["Retry-After"].isdigit()
            assert (self.state == "paused" or self.live_tasks() or self.expired
                    or self.backing_off() or shunned)
        else:
            assert self.state in ("cancelled", "completed") or len(self.first) <= self.total

    def _report(self, lid, results, **extra):
        r = self.c.post("/api/v1/leases/%s/complete" % lid, json={"results": results, **extra})
        assert r.status_code == 200, r.json
        return r.json

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), ok=st.booleans(), release=st.booleans())
    def complete(self, data, ok, release):
        lid = data.draw(st.sampled_from([lid for lid, ts in self.held.items() if ts]))
        ids = sorted(self.held[lid])
        chosen = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        value = data.draw(st.integers(0, 1000))
        results = [{"id": t, "ok": ok, "result": value} if ok else {"id": t, "ok": False, "error": "x"}
                   for t in chosen]
        out = self._report(lid, results, release=release)
        if ok:
            assert out["accepted"] == len(chosen) and out["duplicates"] == 0
            for t in chosen:
                self.first[t] = value
        else:
            assert out["retried"] + out["dead"] == len(chosen)
        rest = self.held.pop(lid) - set(chosen)
        if release:
            assert out["released"] == len(rest)
        elif rest:
            self.held[lid] = rest

    @precondition(lambda self: self.first)
    @rule(data=st.data())
    def duplicate(self, data):
        """Report a done task again, from a fresh lease or a stale one."""
        t = data.draw(st.sampled_from(sorted(self.first)))
        leases = list(self.held) + [lid for lid in self.expired if lid not in self.held]
        if not leases:
            return
        lid = data.draw(st.sampled_from(leases))
        out = self._report(lid, [{"id": t, "ok": True, "result": -1}])
        assert out["duplicates"] == 1 and out["accepted"] == 0

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data())
    def expire(self, data):
        """Time passes for one lease: its deadline is moved into the past."""
        lid = data.draw(st.sampled_from([lid for lid, ts in self.held.items() if ts]))
        key = self.backend.keys.job_key(self.job, "deadlines")
        self.rds.zadd(key, {lid: 0}, xx=True)
        self.expired[lid] = self.held.pop(lid)
        r = self.c.post("/api/v1/leases/%s/heartbeat" % lid)
        assert r.status_code == 409 and r.json["error"] == "lease_lost"

    @precondition(lambda self: self.expired)
    @rule(data=st.data(), ok=st.booleans())
    def late(self, data, ok):
        """A result from an expired lease: accepted only if ok and not done."""
        lid = data.draw(st.sampled_from([lid for lid, ts in self.expired.items() if ts]))
        t = data.draw(st.sampled_from(sorted(self.expired[lid])))
        out = self._report(lid, [{"id": t, "ok": ok, "result": 5000} if ok else {"id": t, "ok": False}])
        if t in self.first:
            assert out["duplicates"] == 1
        elif ok:
            assert out["accepted"] == 1
            self.first[t] = 5000
            self.lose(t)
        else:
            assert out["ignored"] == 1

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def heartbeat(self, data):
        lid = data.draw(st.sampled_from(list(self.held)))
        r = self.c.post("/api/v1/leases/%s/heartbeat" % lid, json={"lease_seconds": 120})
        if self.held[lid]:
            assert r.status_code == 200 and r.json["expires_at"] > 0
        else:
            assert r.status_code in (200, 409)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data):
        lid = data.draw(st.sampled_from(list(self.held)))
        r = self.c.post("/api/v1/leases/%s/release" % lid)
        assert r.status_code == 200 and r.json["released"] == len(self.held.pop(lid))

    @precondition(lambda self: self.copies)
    @rule(data=st.data(), ok=st.booleans())
    def complete_copy(self, data, ok):
        """A copy reports: a success wins unless the task is done; a failure is ignored."""
        lid = data.draw(st.sampled_from(list(self.copies)))
        t = data.draw(st.sampled_from(sorted(self.copies[lid])))
        out = self._report(lid, [{"id": t, "ok": ok, "result": 7000} if ok else {"id": t, "ok": False}])
        if t in self.first:
            assert out["duplicates"] == 1
        elif ok:
            assert out["accepted"] == 1
            self.first[t] = 7000
            self.lose(t)
        else:
            assert out["ignored"] == 1
        self.copies[lid].discard(t)
        if not self.copies[lid] or not ok:
            del self.copies[lid]  # the worker is done with its copy
            self.c.post("/api/v1/leases/%s/release" % lid)

    @precondition(lambda self: self.speculate and self.held)
    @rule()
    def straggle(self):
        """Time passes: every live lease is far older than the job's median lease."""
        key = self.backend.keys.job_key(self.job, "durations")
        self.rds.delete(key)
        self.rds.lpush(key, 0, 0, 0)

    @rule()
    def backoff_due(self):
        """Time passes: every backed-off task is due."""
        key = self.backend.keys.job_key(self.job, "backoff")
        for t in self.rds.zrange(key, 0, -1):
            self.rds.zadd(key, {t: 0})

    @rule(action=st.sampled_from(["pause", "resume", "cancel"]))
    def set_state(self, action):
        r = self.c.post("/api/v1/jobs/%s/%s" % (self.job, action))
        assert r.status_code in (200, 409)
        if r.status_code == 200:
            self.state = r.json["state"]
        else:
            assert self.state in ("completed", "cancelled", "failed")

    @invariant()
    def nothing_lost(self):
        if not hasattr(self, "job"):
            return
        r = self.c.get("/api/v1/jobs/" + self.job)
        doc = r.json
        counts = doc["counts"]
        assert counts["pending"] + counts["leased"] + counts["done"] + counts["dead"] == counts["total"]
        expected = check_job(self.rds, self.backend.keys, self.job)
        if "backoff" not in counts:  # shown only for jobs with retry_backoff
            assert expected.pop("backoff") == 0
        assert counts == expected
        assert counts["done"] == len(self.first)
        self.state = doc["state"]
        if doc["state"] == "completed":
            assert counts["done"] + counts["dead"] == counts["total"]
        if doc["state"] in ("running", "paused") and counts["done"] + counts["dead"] == counts["total"]:
            raise AssertionError("a finished job did not complete")

    def teardown(self):
        if not hasattr(self, "job"):
            return
        lines = self.c.get("/api/v1/jobs/%s/results" % self.job).data.decode().splitlines()
        stored = {d["id"]: d["result"] for d in map(json.loads, lines)}
        assert stored == self.first, "a stored result is not the first one accepted"


def _run(machine, app, examples):
    machine.app = app
    run = machine.TestCase
    run.settings = settings(max_examples=examples, stateful_step_count=30, deadline=None,
                            suppress_health_check=list(HealthCheck))
    run().runTest()


def test_lease_state_machine(app):
    _run(LeaseMachine, app, 60)


class ArchiveLeaseMachine(LeaseMachine):
    """The same, for a job whose results go to the archive, with the drainer
    (tests/test_archive.py) running at random moments: the invariants hold
    from the done bitmap and counters, the export gives each first result
    once whether it is archived or not, and MongoDB ends with exactly them."""

    @rule()
    def drain(self):
        drain_round_now(self.backend)

    def teardown(self):
        super().teardown()
        if not hasattr(self, "job"):
            return
        assert self.backend.drainer.drain_all(self.job) == 0
        docs = self.backend.archive.find("results", {"job": self.job})
        assert {d["task"]: d["result"] for d in docs} == self.first
        assert len(docs) == len(self.first)  # each once


def test_lease_state_machine_with_the_archive(archive_app):
    _run(ArchiveLeaseMachine, archive_app, 25)
