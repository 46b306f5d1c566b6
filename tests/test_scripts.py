"""Each Lua operation, called directly on a real Redis (no HTTP)."""
import json

import pytest

from tests.invariants import check_job, holders

LIMIT = 100
MAX_MS = 7 * 24 * 3600 * 1000


@pytest.fixture
def b(app):
    backend = app.extensions["jobmaster.backend"]
    yield backend


def create(b, job="aa", kind="range", total=5, sealed=1, batch=2, lease_ms=60000, attempts=2,
           items=()):
    reply = b.run("create", job, ["n", kind, 100, total, sealed, batch, lease_ms, attempts, 0,
                                  '{"p":1}', 0, '', *items])
    return reply


def lease(b, lid, job="aa", worker="w", n=0):
    reply = b.run("lease", job, [LIMIT, lid, worker, n, 0])
    return reply if reply[0] == "missing" else reply[0]


def tasks_of(reply):
    """The tasks of a lease reply {'ok', lid, expires, lease_ms, n, ids, attempts, [payloads]}
    or {'span', lid, expires, lease_ms, n, first}."""
    n = reply[4]
    if reply[0] == "span":
        assert len(reply) == 6
        return [{"id": t, "attempt": 1, "payload": 100 + t} for t in range(reply[5], reply[5] + n)]
    assert len(reply) in (5 + 2 * n, 5 + 3 * n)
    payloads = reply[5 + 2 * n:] or [None] * n
    return [{"id": t, "attempt": a, "payload": json.loads(p) if p else 100 + t}
            for t, a, p in zip(reply[5:5 + n], reply[5 + n:5 + 2 * n], payloads)]


def ids_of(reply):
    return [t["id"] for t in tasks_of(reply)]


def complete(b, lid, results, job="aa", worker="w", release=0, next_id="", next_n=0):
    args = [lid, worker, release, LIMIT, next_id, next_n, len(results)]
    for t, ok, body in results:
        args += [t, 1 if ok else 0, body]
    return b.run("complete", job, args)


def test_create_is_idempotent_and_empty_sealed_job_completes(b):
    assert create(b) == ["ok", "running"]
    assert create(b) == ["exists"]
    assert create(b, job="bb", total=0) == ["ok", "completed"]
    assert create(b, job="cc", kind="items", items=['{"a":1}', "2"]) == ["ok", "running"]
    assert b.redis.hget(b.keys.job_key("cc", "meta"), "total") == "2"


def test_lease_hands_out_ranges_then_waits_then_done(b):
    create(b, total=3)
    first = lease(b, "aa.1")
    assert first[:2] == ["span", "aa.1"] and ids_of(first) == [0, 1]
    assert tasks_of(first) == [{"id": 0, "attempt": 1, "payload": 100},
                               {"id": 1, "attempt": 1, "payload": 101}]
    again = lease(b, "aa.1")  # a re-run of the same script call
    assert again == first
    second = lease(b, "aa.2", n=5)
    assert ids_of(second) == [2]
    wait = lease(b, "aa.3")
    assert wait[0] == "wait" and wait[1] == "leased" and wait[2] > 0
    complete(b, "aa.1", [(0, True, "1"), (1, True, "2")])
    complete(b, "aa.2", [(2, True, "3")])
    assert lease(b, "aa.4") == ["done"]
    assert check_job(b.redis, b.keys, "aa")["done"] == 3


def leases_at_once(b, requests, job="aa"):
    """One lease script call for several requests: (lid, n) each."""
    args = [LIMIT]
    for lid, n in requests:
        args += [lid, "w-" + lid, n, 0]
    return b.run("lease", job, args)


def test_one_call_leases_for_many_requests_in_order(b):
    create(b, total=9, batch=2)
    first = lease(b, "aa.0", n=1)
    complete(b, "aa.0", [])  # nothing reported; still leased
    b.run("release", "aa", ["aa.0"])  # task 0 is handed back
    replies = leases_at_once(b, [("aa.1", 0), ("aa.2", 3), ("aa.1", 0), ("aa.3", 5), ("aa.4", 0)])
    assert ids_of(first) == [0]
    # handed-back tasks go first, then fresh ones, request by request
    assert [r[1] for r in replies[:4]] == ["aa.1", "aa.2", "aa.1", "aa.3"]
    assert ids_of(replies[0]) == [0, 1] and tasks_of(replies[0])[0]["attempt"] == 2
    assert ids_of(replies[1]) == [2, 3, 4]
    assert replies[2] == replies[0]  # a retry that arrived with its original
    assert ids_of(replies[3]) == [5, 6, 7, 8]
    assert replies[4][:2] == ["wait", "leased"]
    # a re-run of the whole call (lost answer) changes nothing and answers the same
    again = leases_at_once(b, [("aa.1", 0), ("aa.2", 3), ("aa.1", 0), ("aa.3", 5)])
    assert again == replies[:4]
    assert b.redis.hget(b.keys.job_key("aa", "meta"), "cursor") == "9"
    counts = check_job(b.redis, b.keys, "aa")
    assert counts["leased"] == 9 and counts["pending"] == 0


def test_one_call_leases_answer_done_or_paused_for_all(b):
    create(b, total=2)
    b.run("set_state", "aa", ["pause"])
    assert leases_at_once(b, [("aa.1", 0), ("aa.2", 0)]) == [["wait", "paused", 0]] * 2
    b.run("set_state", "aa", ["cancel"])
    assert leases_at_once(b, [("aa.1", 0), ("aa.2", 0)]) == [["done"]] * 2
    assert leases_at_once(b, [("zz.1", 0)], job="zz") == ["missing"]


def test_items_payloads_are_returned_raw(b):
    create(b, kind="items", items=['{"x":[1,2]}', '"s"'])
    reply = lease(b, "aa.1")
    assert [t["payload"] for t in tasks_of(reply)] == [{"x": [1, 2]}, "s"]


def test_complete_first_result_wins_and_counts(b):
    create(b, total=4, batch=4)
    lease(b, "aa.1")
    out = complete(b, "aa.1", [(0, True, '"a"'), (0, True, '"b"'), (1, False, "boom")])
    assert out[:7] == ["ok", 1, 1, 1, 0, 0, 0]
    line = json.loads(b.redis.hget(b.keys.job_key("aa", "results"), "0"))
    assert line["result"] == "a" and line["attempt"] == 1 and line["worker"] == "w"
    # a late failure for a task this lease no longer holds changes nothing
    out = complete(b, "aa.1", [(1, False, "again")])
    assert out[5] == 1
    check_job(b.redis, b.keys, "aa")


def test_complete_refuses_non_ids_and_ignores_ids_outside_the_job(b):
    create(b, total=2)
    lease(b, "aa.1")
    before = holders(b.redis, b.keys, "aa")
    assert complete(b, "aa.1", [(0, True, "1"), (-1, True, "1")]) == ["bad", "-1"]
    assert holders(b.redis, b.keys, "aa") == before
    assert b.redis.hlen(b.keys.job_key("aa", "results")) == 0
    # an id past the job's end was never handed out: ignored, like any task
    # the lease did not hold (the schema cannot know a job's total)
    assert complete(b, "aa.1", [(2, True, "1"), (2 ** 53, True, "1")])[1:7] == [0, 0, 0, 0, 2, 0]
    assert holders(b.redis, b.keys, "aa") == before


def test_failures_use_up_attempts_then_dead_then_retry(b):
    create(b, total=1, attempts=2)
    lease(b, "aa.1")
    assert complete(b, "aa.1", [(0, False, "e1")])[3] == 1  # retried
    lease(b, "aa.2")
    assert complete(b, "aa.2", [(0, False, "e2")])[4] == 1  # dead
    dead = json.loads(b.redis.hget(b.keys.job_key("aa", "dead"), "0"))
    assert dead == {"id": 0, "attempts": 2, "error": "e2", "worker": "w", "at": dead["at"]}
    assert b.run("status", "aa", [LIMIT])[1:6][1:] == [0, 0, 0, 1]
    assert b.redis.hget(b.keys.job_key("aa", "meta"), "state") == "completed"
    assert b.run("retry_dead", "aa") == ["ok", 1, "running"]
    reply = lease(b, "aa.3")
    assert tasks_of(reply) == [{"id": 0, "attempt": 3, "payload": 100}]
    check_job(b.redis, b.keys, "aa")


def test_expiry_returns_tasks_and_counts_as_failure(b):
    create(b, total=2, attempts=1)
    lease(b, "aa.1")
    b.redis.zadd(b.keys.job_key("aa", "deadlines"), {"aa.1": 0})
    assert b.run("heartbeat", "aa", ["aa.1", 0, LIMIT, MAX_MS]) == ["lost"]
    counts = check_job(b.redis, b.keys, "aa")
    assert counts["dead"] == 2  # max_attempts 1: the expiry used it up
    w = json.loads(b.redis.hget(b.keys.job_key("aa", "workers"), "w"))
    assert w["x"] == 2 and not b.redis.hlen(b.keys.job_key("aa", "leases"))


def test_lease_reclaims_expired_leases_of_others(b):
    create(b, total=2, batch=2)
    lease(b, "aa.1", worker="slow")
    b.redis.zadd(b.keys.job_key("aa", "deadlines"), {"aa.1": 0})
    reply = lease(b, "aa.2", worker="fast")
    assert [(t["id"], t["attempt"]) for t in tasks_of(reply)] == [(0, 2), (1, 2)]
    # the slow worker's late success is still accepted, and taken from "fast"
    out = complete(b, "aa.1", [(0, True, '"late"')], worker="slow")
    assert out[1] == 1
    assert 0 not in holders(b.redis, b.keys, "aa")
    assert complete(b, "aa.2", [(0, True, '"x"')], worker="fast")[2] == 1  # duplicate
    check_job(b.redis, b.keys, "aa")


def test_heartbeat_extends_by_redis_time_within_the_jobs_lease_length(b):
    create(b, total=1, lease_ms=60000)
    first = lease(b, "aa.1")  # expires at first[2], 60 s after it was made
    beat = lambda ms, cap=MAX_MS: b.run("heartbeat", "aa", ["aa.1", ms, LIMIT, cap])  # noqa: E731
    out = beat(1000)  # shorter than the job's: as asked
    assert out[0] == "ok" and first[2] - 60000 + 1000 <= out[1] < first[2] and out[2] == "running"
    # longer than the job's lease_seconds (a week): only the job's 60 s
    assert first[2] <= beat(7 * 24 * 3600 * 1000)[1] < first[2] + 59000
    assert beat(0)[1] >= first[2]  # 0: the job's own length
    assert beat(0, cap=5000)[1] < first[2] - 50000  # never past the server's longest lease
    assert tasks_of(first)[0]["id"] == 0
    assert b.run("heartbeat", "aa", ["aa.nope", 0, LIMIT, MAX_MS]) == ["lost"]
    assert b.run("heartbeat", "zz", ["zz.1", 0, LIMIT, MAX_MS]) == ["missing"]


def test_release_is_not_a_failure(b):
    create(b, total=3, batch=3, attempts=1)
    lease(b, "aa.1")
    complete(b, "aa.1", [(0, True, "1")])
    assert b.run("release", "aa", ["aa.1"]) == ["ok", 2]
    assert b.run("release", "aa", ["aa.1"]) == ["ok", 0]
    counts = check_job(b.redis, b.keys, "aa")
    assert counts["pending"] == 2 and counts["dead"] == 0


def test_complete_with_release_and_next(b):
    create(b, total=5, batch=2)
    lease(b, "aa.1")
    out = complete(b, "aa.1", [(0, True, "1")], release=1, next_id="aa.2", next_n=3)
    assert out[1] == 1 and out[6] == 1
    assert out[8] == "w"
    nxt = out[9:]
    assert nxt[0] in ("ok", "span") and nxt[1] == "aa.2" and ids_of(nxt) == [1, 2, 3]


def test_append_seal_and_unsealed_wait(b):
    create(b, kind="items", sealed=0)
    assert lease(b, "aa.1")[:2] == ["wait", "unsealed"]
    assert b.run("append", "aa", ["t1", '"a"', '"b"']) == ["ok", 0, 2]
    assert b.run("append", "aa", ["t1", '"a"', '"b"']) == ["ok", 0, 2]  # retried: no double
    assert b.run("append", "aa", ["t2", '"c"']) == ["ok", 2, 3]
    reply = lease(b, "aa.2", n=10)
    complete(b, "aa.2", [(t, True, "0") for t in ids_of(reply)])
    assert b.run("status", "aa", [LIMIT])[0] == "ok"
    assert b.redis.hget(b.keys.job_key("aa", "meta"), "state") == "running"
    assert b.run("seal", "aa") == ["ok", "completed"]
    assert b.run("append", "aa", ["t3", '"d"']) == ["sealed"]


def test_set_state_transitions(b):
    create(b, total=1)
    assert b.run("set_state", "aa", ["pause"]) == ["ok", "paused"]
    assert lease(b, "aa.1")[:2] == ["wait", "paused"]
    assert b.run("set_state", "aa", ["resume"]) == ["ok", "running"]
    assert b.run("set_state", "aa", ["cancel"]) == ["ok", "cancelled"]
    assert b.run("set_state", "aa", ["resume"]) == ["conflict", "cancelled"]
    assert lease(b, "aa.2") == ["done"]
    assert b.run("retry_dead", "aa") == ["conflict", "cancelled"]


def test_status_counts_and_delete(b):
    create(b, total=1000000, batch=100)
    lease(b, "aa.1")
    reply = b.run("status", "aa", [LIMIT])
    assert reply[2:6] == [999900, 100, 0, 0]
    assert b.run("delete", "aa") == ["ok"]
    assert b.run("delete", "aa") == ["missing"]
    assert not b.redis.keys("*{aa}*")


def test_pending_million_task_range_job_is_small(b):
    """A pending 1,000,000-task range job costs almost nothing in Redis."""
    create(b, total=1000000)
    used = sum(b.redis.memory_usage(k) or 0 for k in b.redis.keys("*{aa}*"))
    assert used < 2 * 1024 * 1024


def spans(b, job="aa"):
    return b.redis.zrange(b.keys.job_key(job, "spans"), 0, -1, withscores=True)


def test_fresh_tasks_make_a_span_lease_without_owner_fields(b):
    create(b, total=30, batch=10)
    assert ids_of(lease(b, "aa.1")) == list(range(10))
    assert ids_of(lease(b, "aa.2")) == list(range(10, 20))
    assert b.redis.hlen(b.keys.job_key("aa", "owner")) == 0
    assert spans(b) == [("aa.1", 0.0), ("aa.2", 10.0)]
    assert b.run("status", "aa", [LIMIT])[2:4] == [10, 20]  # pending, leased
    out = complete(b, "aa.2", [(t, True, str(t)) for t in reversed(range(10, 20))])
    assert out[1:3] == [10, 0]
    assert spans(b) == [("aa.1", 0.0)] and not b.redis.hexists(b.keys.job_key("aa", "leases"), "aa.2")
    assert json.loads(b.redis.hget(b.keys.job_key("aa", "results"), "15"))["attempt"] == 1
    check_job(b.redis, b.keys, "aa")


def test_a_partial_or_failed_report_turns_a_span_lease_into_an_ordinary_one(b):
    create(b, total=8, batch=4)
    lease(b, "aa.1")
    lease(b, "aa.2")
    assert complete(b, "aa.1", [(0, True, "1"), (1, True, "1")])[1] == 2
    assert holders(b.redis, b.keys, "aa") == {2: "aa.1", 3: "aa.1", 4: "aa.2", 5: "aa.2",
                                              6: "aa.2", 7: "aa.2"}
    assert spans(b) == [("aa.2", 4.0)] and b.redis.hlen(b.keys.job_key("aa", "owner")) == 2
    check_job(b.redis, b.keys, "aa")
    # A whole report with one failure: not the span fast path either.
    out = complete(b, "aa.2", [(4, True, "1"), (5, False, "e"), (6, True, "1"), (7, True, "1")])
    assert out[1:4] == [3, 0, 1]
    assert spans(b) == [] and b.redis.zscore(b.keys.job_key("aa", "pending"), "5") == 5
    check_job(b.redis, b.keys, "aa")
    # A report naming a task twice, or one outside the span, is weighed per task.
    assert complete(b, "aa.1", [(2, True, "1"), (2, True, "1"), (3, True, "1")])[1:3] == [2, 1]
    check_job(b.redis, b.keys, "aa")


def test_a_result_from_a_lease_that_never_held_the_task_is_ignored(b):
    create(b, total=4, batch=2)
    lease(b, "aa.1")
    assert complete(b, "aa.1", [(0, True, "1"), (1, True, "1")])[1] == 2  # aa.1 is gone
    lease(b, "aa.2")  # span 2-3
    # Neither aa.1 (it held 0 and 1) nor a lease that never existed may report
    # task 2: ignored, and the span lease that holds it keeps it untouched.
    for lid in ("aa.1", "aa.9"):
        out = complete(b, lid, [(2, True, '"forged"'), (3, False, "forged")], worker="w2")
        assert out[1:7] == [0, 0, 0, 0, 2, 0]
    assert spans(b) == [("aa.2", 2.0)] and b.redis.hlen(b.keys.job_key("aa", "owner")) == 0
    assert b.redis.hlen(b.keys.job_key("aa", "results")) == 2
    assert complete(b, "aa.2", [(2, True, "1"), (3, True, "1")])[1:3] == [2, 0]
    assert b.redis.hget(b.keys.job_key("aa", "results"), "2").find("forged") == -1
    assert b.redis.hget(b.keys.job_key("aa", "meta"), "state") == "completed"
    check_job(b.redis, b.keys, "aa")


def test_an_expired_lease_may_report_late_only_the_tasks_it_held(b):
    create(b, total=6, batch=2)
    lease(b, "aa.1")  # span 0-1
    lease(b, "aa.2")  # span 2-3
    b.redis.zadd(b.keys.job_key("aa", "deadlines"), {"aa.1": 0, "aa.2": 0}, xx=True)
    lease(b, "aa.3", n=3)  # reclaims both: 0, 1, 2 (attempt 2) to aa.3; 3 pending
    assert holders(b.redis, b.keys, "aa") == {0: "aa.3", 1: "aa.3", 2: "aa.3"}
    # aa.1 held 0 and 1: its late success for 1 is accepted (taken from aa.3);
    # for 2 (aa.2's) and 4 (never handed out) it is ignored.
    out = complete(b, "aa.1", [(1, True, '"late"'), (2, True, '"x"'), (4, True, '"x"')])
    assert out[1:7] == [1, 0, 0, 0, 2, 0] and out[8] == "w"  # recorded under aa.1's worker
    assert holders(b.redis, b.keys, "aa") == {0: "aa.3", 2: "aa.3"}
    # aa.2 held 3, which is pending now: its late success takes it from pending
    assert complete(b, "aa.2", [(3, True, '"late"')])[1] == 1
    assert b.redis.zcard(b.keys.job_key("aa", "pending")) == 0
    check_job(b.redis, b.keys, "aa")


def test_remembered_leases_are_bounded(b):
    create(b, total=10, batch=1)
    gone = b.keys.job_key("aa", "gone")
    for i in range(3):
        lease(b, "aa.%d" % i)
        assert b.run("release", "aa", ["aa.%d" % i]) == ["ok", 1]
    assert b.redis.hlen(gone) == 3
    # a remembered lease older than a day is forgotten by the next one remembered
    b.redis.zadd(b.keys.job_key("aa", "gone_at"), {"aa.0": 0, "aa.1": 0}, xx=True)
    lease(b, "aa.3")
    b.run("release", "aa", ["aa.3"])
    assert sorted(b.redis.hkeys(gone)) == ["aa.2", "aa.3"]
    assert sorted(b.redis.zrange(b.keys.job_key("aa", "gone_at"), 0, -1)) == ["aa.2", "aa.3"]
    # forgotten: its late result is ignored (the safe side)
    assert complete(b, "aa.0", [(0, True, "1")])[1:7:4] == [0, 1]
    # a lease that reported everything itself is not remembered
    reply = lease(b, "aa.4")
    complete(b, "aa.4", [(ids_of(reply)[0], True, "1")])
    assert b.redis.hlen(gone) == 2


def test_a_lease_with_handed_back_tasks_has_owner_fields(b):
    create(b, total=6, batch=2)
    lease(b, "aa.1")
    complete(b, "aa.1", [(0, False, "e")])  # 0 back to pending, 1 still held
    reply = lease(b, "aa.2", n=3)
    assert ids_of(reply) == [0, 2, 3] and [t["attempt"] for t in tasks_of(reply)] == [2, 1, 1]
    assert holders(b.redis, b.keys, "aa") == {0: "aa.2", 1: "aa.1", 2: "aa.2", 3: "aa.2"}
    assert spans(b) == [] and b.redis.hlen(b.keys.job_key("aa", "owner")) == 4
    # the same request again answers the same lease
    assert tasks_of(lease(b, "aa.2", n=3)) == tasks_of(reply)
    check_job(b.redis, b.keys, "aa")


def test_released_or_expired_span_leases_give_every_task_back(b):
    create(b, total=6, batch=3, attempts=3)
    lease(b, "aa.1")
    lease(b, "aa.2")
    assert b.run("release", "aa", ["aa.1"]) == ["ok", 3]
    b.redis.zadd(b.keys.job_key("aa", "deadlines"), {"aa.2": 0})
    assert b.run("heartbeat", "aa", ["aa.2", 0, LIMIT, MAX_MS]) == ["lost"]
    assert spans(b) == [] and holders(b.redis, b.keys, "aa") == {}
    assert b.redis.hgetall(b.keys.job_key("aa", "fails")) == {"3": "1", "4": "1", "5": "1"}
    assert b.run("status", "aa", [LIMIT])[2:4] == [6, 0]
    check_job(b.redis, b.keys, "aa")
