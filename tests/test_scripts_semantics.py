"""The scheduling settings of docs/contract.md §7–§8 at the Lua level: failure
budget, retry backoff, the failed task's worker skip, guided batching and
straggler copies (no HTTP; real Redis)."""
import pytest

from tests.invariants import check_job, holders
from tests.test_scripts import LIMIT, MAX_MS, complete, create, ids_of, lease, leases_at_once, tasks_of


@pytest.fixture
def b(app):
    return app.extensions["jobmaster.backend"]


def meta(b, field, job="aa"):
    return b.redis.hget(b.keys.job_key(job, "meta"), field)


def key(b, name, job="aa"):
    return b.keys.job_key(job, name)


# -- failure budget ---------------------------------------------------------

def test_job_fails_when_dead_tasks_exceed_max_dead(b):
    create(b, total=6, batch=6, attempts=1, max_dead=1)
    lease(b, "aa.1")
    out = complete(b, "aa.1", [(0, False, "e"), (1, True, "1")])
    assert out[4] == 1 and meta(b, "state") == "running"  # one dead: within budget
    out = complete(b, "aa.1", [(2, False, "e")])
    assert out[4] == 1 and meta(b, "state") == "failed" and meta(b, "finished_at")
    # a failed job hands out nothing, but still takes results of its leases
    assert lease(b, "aa.2") == ["done"]
    assert complete(b, "aa.1", [(3, True, "1")])[1] == 1
    assert check_job(b.redis, b.keys, "aa") == {"total": 6, "pending": 0, "leased": 2, "done": 2,
                                                 "dead": 2, "backoff": 0}
    # dead/retry revives it
    assert b.run("retry_dead", "aa") == ["ok", 2, "running"]
    assert sorted(ids_of(lease(b, "aa.3", n=5))) == [0, 2]


def test_expiry_can_spend_the_budget(b):
    create(b, total=2, batch=2, attempts=1, max_dead=0)
    lease(b, "aa.1")
    b.redis.zadd(key(b, "deadlines"), {"aa.1": 0})
    assert lease(b, "aa.2") == ["done"]  # the reclaim inside the lease killed both
    assert meta(b, "state") == "failed"
    check_job(b.redis, b.keys, "aa")


def test_no_budget_means_completed_with_dead(b):
    create(b, total=1, attempts=1)
    lease(b, "aa.1")
    complete(b, "aa.1", [(0, False, "e")])
    assert meta(b, "state") == "completed"


# -- retry backoff ----------------------------------------------------------

def backoff_scores(b):
    return dict(b.redis.zrange(key(b, "backoff"), 0, -1, withscores=True))


def test_failed_task_waits_out_its_backoff_then_comes_back(b):
    create(b, total=1, attempts=5, backoff_ms=60000)
    first = lease(b, "aa.1")
    complete(b, "aa.1", [(0, False, "e")])
    due = backoff_scores(b)["0"]
    assert 60000 * 0.8 - 10 <= due - first[2] + 60000 <= 60000 + 10  # about now + 60 s, jittered down
    wait = lease(b, "aa.2")
    assert wait[:2] == ["wait", "leased"] and 0 < wait[2] <= 60000  # hint: when it is due
    assert check_job(b.redis, b.keys, "aa")["backoff"] == 1
    reply = b.run("status", "aa", [LIMIT])
    assert reply[2] == 1 and reply[-2:] == ["#backoff", 1]  # part of pending
    b.redis.zadd(key(b, "backoff"), {"0": 0})  # time passes
    assert tasks_of(lease(b, "aa.3")) == [{"id": 0, "attempt": 2, "payload": 100}]
    complete(b, "aa.3", [(0, False, "e")])
    # the second failure waits twice as long (jitter takes at most a fifth)
    assert backoff_scores(b)["0"] - first[2] >= 2 * 60000 * 0.8 - 60000 - 100


def test_backoff_is_capped_at_an_hour(b):
    create(b, total=1, attempts=30, backoff_ms=3000000)
    for i in range(3):
        lease(b, "aa.%d" % i)
        complete(b, "aa.%d" % i, [(0, False, "e")])
        now = b.redis.time()[0] * 1000
        assert backoff_scores(b)["0"] - now <= 3600000 + 1000
        b.redis.zadd(key(b, "backoff"), {"0": 0})


def test_release_does_not_back_off_and_late_success_leaves_backoff(b):
    create(b, total=2, batch=2, attempts=3, backoff_ms=60000)
    lease(b, "aa.1")
    complete(b, "aa.1", [(0, False, "e")], release=1)
    assert set(backoff_scores(b)) == {"0"}
    assert b.redis.zrange(key(b, "pending"), 0, -1) == ["1"]  # released: at once
    # a late success (the lease is gone) takes it out of backoff
    assert complete(b, "aa.1", [(0, True, "1")])[1] == 1
    assert not backoff_scores(b)
    check_job(b.redis, b.keys, "aa")


def test_expired_late_success_takes_a_task_out_of_backoff(b):
    create(b, total=1, attempts=3, backoff_ms=60000)
    lease(b, "aa.1")
    b.redis.zadd(key(b, "deadlines"), {"aa.1": 0})
    assert b.run("heartbeat", "aa", ["aa.1", 0, LIMIT, MAX_MS]) == ["lost"]
    assert set(backoff_scores(b)) == {"0"}
    assert complete(b, "aa.1", [(0, True, '"late"')])[1] == 1
    assert not backoff_scores(b) and meta(b, "state") == "completed"
    check_job(b.redis, b.keys, "aa")


# -- the failing worker is skipped once --------------------------------------

def test_failed_task_prefers_another_worker(b):
    create(b, total=4, batch=1, attempts=3)
    lease(b, "aa.0", worker="other")  # another worker is asking this job
    lease(b, "aa.1", worker="sick")
    complete(b, "aa.1", [(1, False, "e")], worker="sick")
    # sick asks again: it gets fresh work, not its failure back
    assert ids_of(lease(b, "aa.2", worker="sick")) == [2]
    assert ids_of(lease(b, "aa.3", worker="other")) == [1]
    check_job(b.redis, b.keys, "aa")


def test_the_skip_is_bounded_and_in_one_call_the_other_takes_it(b):
    create(b, total=2, batch=1, attempts=3)
    lease(b, "aa.0", worker="other")
    lease(b, "aa.1", worker="sick")
    complete(b, "aa.1", [(1, False, "e")], worker="sick")
    complete(b, "aa.0", [(0, True, "1")])
    # one call, sick first: the failed task goes to the other request
    replies = b.run("lease", "aa", [LIMIT, "aa.2", "sick", 1, 0, "aa.3", "other", 1, 0])
    assert replies[0][0] == "wait" and ids_of(replies[1]) == [1]
    complete(b, "aa.3", [(1, False, "e")], worker="other")
    # alone with it, a worker gets its own failure back (skip only while others ask)
    b.redis.delete(key(b, "askers"))
    assert ids_of(lease(b, "aa.4", worker="other")) == [1]


def test_skipped_task_goes_to_the_failer_next_round(b):
    create(b, total=1, batch=1, attempts=3)
    lease(b, "aa.0", worker="other")
    complete(b, "aa.0", [], release=1)
    lease(b, "aa.1", worker="sick")
    complete(b, "aa.1", [(0, False, "e")], worker="sick")
    assert lease(b, "aa.2", worker="sick")[0] == "wait"  # skipped once: "other" asked lately
    assert ids_of(lease(b, "aa.3", worker="sick")) == [0]  # never starved
    check_job(b.redis, b.keys, "aa")


# -- guided batching ---------------------------------------------------------

def test_guided_batches_shrink_with_what_is_left(b):
    create(b, total=100, batch=50, batching="guided")
    sizes = []
    for i in range(40):
        reply = lease(b, "aa.%d" % i, worker="w%d" % (i % 2))
        if reply[0] not in ("span", "ok"):
            break
        sizes.append(len(ids_of(reply)))
    # one worker first: ceil(100/2) = 50; then two: ceil(50/4) = 13, ceil(37/4) = 10, ...
    assert sizes[:3] == [50, 13, 10]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1 and sum(sizes) == 100
    check_job(b.redis, b.keys, "aa")


def test_guided_never_exceeds_the_ask(b):
    create(b, total=1000, batch=10, batching="guided")
    assert len(ids_of(lease(b, "aa.1", n=7))) == 7
    assert len(ids_of(lease(b, "aa.2"))) == 10


def test_guided_in_one_call(b):
    create(b, total=8, batch=8, batching="guided")
    replies = leases_at_once(b, [("aa.1", 0), ("aa.2", 0), ("aa.3", 0), ("aa.4", 0)])
    # four active workers: ceil(8/8) = 1 each
    assert [len(ids_of(r)) for r in replies] == [1, 1, 1, 1]


# -- straggler copies --------------------------------------------------------

def straggle(b, median_ms=0):
    """The job's last leases lived median_ms: every older lease is a straggler."""
    b.redis.delete(key(b, "durations"))
    b.redis.lpush(key(b, "durations"), *[median_ms] * 3)


def test_copies_of_a_straggler_and_first_result_wins(b):
    create(b, total=4, batch=2, speculate=1)
    slow = lease(b, "aa.1", worker="slow")
    fast = lease(b, "aa.2", worker="fast")
    complete(b, "aa.2", [(2, True, "1"), (3, True, "1")], worker="fast")
    assert b.redis.llen(key(b, "durations")) == 1  # its lifetime was noted
    straggle(b)
    copy = lease(b, "aa.3", worker="fast")
    assert copy[0] == "spec" and ids_of(copy) == ids_of(slow) == [0, 1]
    assert ids_of(fast) == [2, 3]
    # a second idle worker gets no second copy of the same tasks
    assert lease(b, "aa.4", worker="idle")[0] == "wait"
    counts = check_job(b.redis, b.keys, "aa")
    assert counts["leased"] == 2 and holders(b.redis, b.keys, "aa") == {0: "aa.1", 1: "aa.1"}
    # the copy reports first: accepted, the straggler loses the tasks
    assert complete(b, "aa.3", [(0, True, '"copy"'), (1, False, "e")], worker="fast")[1:6] == [
        1, 0, 0, 0, 1]  # its failure is ignored: the original still holds task 1
    assert b.redis.hexists(key(b, "leases"), "aa.3") == 1  # task 1 still undone
    out = complete(b, "aa.1", [(0, True, '"slow"'), (1, True, '"slow"')], worker="slow")
    assert out[1:3] == [1, 1]  # task 0: a duplicate
    assert meta(b, "state") == "completed"
    assert '"copy"' in b.redis.hget(key(b, "results"), "0")
    check_job(b.redis, b.keys, "aa")


def test_no_copies_without_speculate_or_before_the_median_is_known(b):
    create(b, total=2, batch=2)
    lease(b, "aa.1")
    straggle(b)
    assert lease(b, "aa.2")[0] == "wait"
    create(b, job="bb", total=2, batch=2, speculate=1)
    lease(b, "bb.1", job="bb")
    assert lease(b, "bb.2", job="bb")[0] == "wait"  # no lease closed yet: no median


def test_a_young_lease_is_no_straggler(b):
    create(b, total=2, batch=2, speculate=1)
    lease(b, "aa.1")
    straggle(b, median_ms=3600000)
    assert lease(b, "aa.2")[0] == "wait"


def test_copy_closes_the_straggler_and_its_heartbeat_is_lost(b):
    create(b, total=2, batch=2, speculate=1)
    lease(b, "aa.1", worker="hung")
    straggle(b)
    copy = lease(b, "aa.2", worker="fast")
    assert lease(b, "aa.2", worker="fast") == copy  # a re-run answers the same copy
    assert b.run("heartbeat", "aa", ["aa.2", 0, LIMIT, MAX_MS])[0] == "ok"  # copies may heartbeat
    complete(b, "aa.2", [(0, True, "1"), (1, True, "1")], worker="fast")
    assert meta(b, "state") == "completed"
    assert not b.redis.hlen(key(b, "leases"))  # the straggler's lease closed with its last task
    assert b.run("heartbeat", "aa", ["aa.1", 0, LIMIT, MAX_MS]) == ["lost"]
    check_job(b.redis, b.keys, "aa")


def one_hung_task_and_its_copy(b):
    """Task 0 leased by "hung" (aa.1), its copy by "fast" (aa.2)."""
    create(b, total=1, batch=1, speculate=1, attempts=3)
    lease(b, "aa.1", worker="hung")
    straggle(b)
    assert lease(b, "aa.2", worker="fast")[0] == "spec"


def test_expired_copy_and_expired_original(b):
    one_hung_task_and_its_copy(b)
    b.redis.zadd(key(b, "deadlines"), {"aa.1": 0, "aa.2": 0})
    reply = lease(b, "aa.3", worker="third")  # reclaims both; the task comes back once
    assert tasks_of(reply) == [{"id": 0, "attempt": 2, "payload": 100}]
    assert set(b.redis.hkeys(key(b, "leases"))) == {"aa.3"}
    check_job(b.redis, b.keys, "aa")


def test_many_handed_back_tasks_with_a_shunned_one_in_one_call(b):
    # more handed-back tasks than one unpack() takes: the worker lookup is sliced
    create(b, total=5000, batch=1000, attempts=3)
    lease(b, "aa.0", worker="other")
    for i in range(1, 5):
        lease(b, "aa.%d" % i, worker="sick")
    for i in range(1, 5):
        b.run("release", "aa", ["aa.%d" % i])
    assert b.redis.zcard(key(b, "pending")) == 4000
    b.redis.hset(key(b, "shun"), "1500", "sick")
    replies = leases_at_once(b, [("aa.5", 1000), ("aa.6", 1000), ("aa.7", 1000), ("aa.8", 1000)])
    assert sum(len(ids_of(r)) for r in replies) == 4000
    check_job(b.redis, b.keys, "aa")


def test_an_expired_copys_late_success_still_wins(b):
    one_hung_task_and_its_copy(b)
    b.redis.zadd(key(b, "deadlines"), {"aa.2": 0})  # the copy's lease expires
    b.run("heartbeat", "aa", ["aa.1", 0, LIMIT, MAX_MS])  # (reclaims it)
    assert not b.redis.hexists(key(b, "leases"), "aa.2")
    assert complete(b, "aa.2", [(0, True, '"late copy"')], worker="fast")[1] == 1
    assert meta(b, "state") == "completed"
    check_job(b.redis, b.keys, "aa")


# -- per-job tokens ------------------------------------------------------------

def test_token_issue_and_check_judge_by_redis_time_and_die_with_the_job(b):
    assert b.run("token_issue", "aa", ["d1", 60000]) == ["missing"]  # no job: nothing stored
    assert not b.redis.exists(key(b, "tokens"))
    create(b)
    reply = b.run("token_issue", "aa", ["d1", 60000])
    now = b.redis.time()[0] * 1000
    assert reply[0] == "ok" and now + 58000 <= reply[1] <= now + 61000
    assert b.run("token_check", "aa", ["d1"]) == ["ok"]
    assert b.run("token_check", "aa", ["d2"]) == ["unknown"]
    b.redis.hset(key(b, "tokens"), "d1", 1)  # time passes
    assert b.run("token_check", "aa", ["d1"]) == ["unknown"]
    assert not b.redis.hexists(key(b, "tokens"), "d1")  # dropped when met
    b.run("token_issue", "aa", ["d3", 60000])
    b.run("delete", "aa")
    assert b.run("token_check", "aa", ["d3"]) == ["unknown"] and not b.redis.exists(key(b, "tokens"))
