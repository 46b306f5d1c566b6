"""The combiner: callers that arrive while a call is in flight share the next.

Real threads stand in for greenlets here; one test runs it under gevent
(monkey-patched, as in the servers) in a fresh interpreter. The first call
is held inside ``run`` until the others have queued, so what gets combined
is decided by the test, not by timing.
"""
import json
import subprocess
import sys
import textwrap
import threading

import pytest

from app.store.combine import Combiner
from app.errors import Unavailable
from tests.support.procs import wait_until

ROOT = __file__.rsplit("/tests/", 1)[0]


class Gate:
    """A run function whose first call per key blocks until opened; records groups."""

    def __init__(self, fail_on=None):
        self.groups = []
        self.held = set()
        self.open = threading.Event()
        self.fail_on = fail_on

    def __call__(self, key, group):
        self.groups.append((key, list(group)))
        if key not in self.held:
            self.held.add(key)
            assert self.open.wait(20)
        if self.fail_on is not None and self.fail_on in group:
            raise ValueError("boom for %s" % self.fail_on)
        return ["%s:%s" % (key, args) for args in group]


class Killed(BaseException):
    """A greenlet being killed (GreenletExit, a Timeout), as seen by the combiner."""


def start(combiner, key, args, out):
    def target():
        try:
            out[args] = combiner(key, args)
        except Exception as err:  # recorded for the assertions
            out[args] = err

    t = threading.Thread(target=target)
    t.start()
    return t


def queued(combiner, key, n):
    return lambda: len(combiner._queues.get(key) or ()) == n


def run_scenario(combiner, gate, key_of, names):
    """Hold each key's first caller in run(), queue the rest, then let go."""
    out, threads, leaders = {}, [], {}
    for name in names:
        leaders.setdefault(key_of(name), name)
    for name in leaders.values():
        threads.append(start(combiner, key_of(name), name, out))
    wait_until(lambda: len(gate.held) == len(leaders), what="first callers in run()")
    rest = [n for n in names if n not in leaders.values()]
    for name in rest:
        threads.append(start(combiner, key_of(name), name, out))
    for key in {key_of(n) for n in rest}:
        wait_until(queued(combiner, key, sum(1 for n in rest if key_of(n) == key)),
                   what="callers queued for %s" % key)
    gate.open.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    return out


def test_callers_queued_behind_a_call_share_the_next_one():
    gate = Gate()
    combiner = Combiner(gate, limit=64)
    out = run_scenario(combiner, gate, lambda n: "job", ["a", "b", "c", "d"])
    assert gate.groups == [("job", ["a"]), ("job", ["b", "c", "d"])]
    assert out == {n: "job:" + n for n in "abcd"}  # each gets its own answer
    assert combiner.calls == 2 and combiner._queues == {}


def test_groups_are_capped_and_the_rest_run_next():
    gate = Gate()
    combiner = Combiner(gate, limit=2)
    out = run_scenario(combiner, gate, lambda n: "job", ["a", "b", "c", "d", "e"])
    assert [g for _, g in gate.groups] == [["a"], ["b", "c"], ["d", "e"]]
    assert out == {n: "job:" + n for n in "abcde"}


def test_different_keys_never_share_a_call():
    gate = Gate()
    combiner = Combiner(gate, limit=64)
    out = run_scenario(combiner, gate, lambda n: n[0], ["x1", "x2", "y1", "x3", "y2"])
    assert sorted((k, g) for k, g in gate.groups) == [
        ("x", ["x1"]), ("x", ["x2", "x3"]), ("y", ["y1"]), ("y", ["y2"])]
    assert out == {n: "%s:%s" % (n[0], n) for n in ["x1", "x2", "y1", "x3", "y2"]}


def test_an_error_reaches_every_caller_of_that_call_only():
    gate = Gate(fail_on="c")
    combiner = Combiner(gate, limit=64)
    out = run_scenario(combiner, gate, lambda n: "job", ["a", "b", "c"])
    assert out["a"] == "job:a"
    assert isinstance(out["b"], ValueError) and isinstance(out["c"], ValueError)
    assert combiner._queues == {}
    assert combiner("job", "d") == "job:d"  # still usable


def test_a_killed_leader_releases_its_group_with_503():
    def run(key, group):
        if group == ["b", "c"]:
            raise Killed()
        return list(group)

    gate = Gate()
    combiner = Combiner(lambda key, group: gate(key, group) and run(key, group), limit=64)
    out = {}
    first = start(combiner, "job", "a", out)
    wait_until(lambda: gate.held, what="a in run()")
    caught = []

    def leader_to_be():
        try:
            combiner("job", "b")
        except Killed:
            caught.append("b")

    threads = [threading.Thread(target=leader_to_be)]
    threads[0].start()
    wait_until(queued(combiner, "job", 1), what="b queued")
    threads.append(start(combiner, "job", "c", out))
    wait_until(queued(combiner, "job", 2), what="c queued")
    gate.open.set()
    for t in [first] + threads:
        t.join(20)
    assert out["a"] == "a" and caught == ["b"]
    assert isinstance(out["c"], Unavailable) and out["c"].status == 503
    assert combiner._queues == {}


def killable(monkeypatch, victim, when):
    """Make caller ``victim``'s wait end in Killed: at once ("queued"), or
    just after it was handed a group to run ("promoted")."""
    from app.store import combine

    class Lock:
        def __init__(self):
            self.lock, self.calls = threading.Lock(), 0

        def acquire(self, *args):
            self.calls += 1
            if self.calls == 2 and when == "queued":
                raise Killed()
            got = self.lock.acquire(*args)
            if self.calls == 2 and when == "promoted":
                raise Killed()
            return got

        def release(self):
            self.lock.release()

    real = combine._Call.queue_behind

    def queue_behind(call, queue):
        real(call, queue)
        if call.args == victim:
            lock = Lock()
            lock.acquire()
            call.done = lock

    monkeypatch.setattr(combine._Call, "queue_behind", queue_behind)


def start_killable(combiner, key, args, out):
    def target():
        try:
            out[args] = combiner(key, args)
        except Killed:
            out[args] = "killed"
        except Exception as err:
            out[args] = err

    t = threading.Thread(target=target)
    t.start()
    return t


@pytest.mark.parametrize("when", ["queued", "promoted"])
def test_a_caller_killed_while_waiting_leaves_nobody_stuck(monkeypatch, when):
    killable(monkeypatch, "b", when)
    gate = Gate()
    combiner = Combiner(gate, limit=64)
    out = {}
    threads = [start_killable(combiner, "job", "a", out)]
    wait_until(lambda: gate.held, what="a in run()")
    threads.append(start_killable(combiner, "job", "b", out))
    if when == "queued":  # b is gone before a's call ends
        threads[-1].join(20)
        assert out["b"] == "killed" and combiner._queues["job"] == []
    else:
        wait_until(queued(combiner, "job", 1), what="b queued")
    threads.append(start_killable(combiner, "job", "c", out))
    wait_until(queued(combiner, "job", 1 if when == "queued" else 2), what="c queued")
    gate.open.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert out["a"] == "job:a" and out["b"] == "killed"
    if when == "queued":  # c ran on its own, b in no call
        assert out["c"] == "job:c" and [g for _, g in gate.groups] == [["a"], ["c"]]
    else:  # b was handed [b, c] and died: c is told to retry, never left waiting
        assert isinstance(out["c"], Unavailable)
    assert combiner._queues == {}
    assert combiner("job", "d") == "job:d"


def test_a_leader_that_gathers_takes_in_the_callers_that_arrive_meanwhile():
    gate = Gate()
    gate.held.add("job")  # run() does not block: the gather does
    arrived = threading.Event()
    combiner = Combiner(gate, limit=3, gather=lambda: arrived.wait(20))
    out = {}
    threads = [start(combiner, "job", "a", out)]
    wait_until(lambda: "job" in combiner._queues, what="a gathering")
    threads += [start(combiner, "job", name, out) for name in "bcde"]
    wait_until(queued(combiner, "job", 4), what="b..e queued")
    arrived.set()
    for t in threads:
        t.join(20)
    assert out == {n: "job:%s" % n for n in "abcde"}
    # a took b and c in (the limit is 3); d led the rest, after its own gather
    assert gate.groups == [("job", ["a", "b", "c"]), ("job", ["d", "e"])]
    assert combiner._queues == {}


def test_a_leader_killed_while_gathering_leaves_nobody_stuck():
    gate = Gate()
    gate.held.add("job")
    gathering = threading.Event()
    go = threading.Event()
    kills = []

    def gather():
        if not kills:  # the first leader is killed in its gather
            kills.append(1)
            gathering.set()
            assert go.wait(20)
            raise Killed()

    combiner = Combiner(gate, limit=64, gather=gather)
    out = {}
    threads = [start_killable(combiner, "job", "a", out)]
    assert gathering.wait(20)
    threads += [start(combiner, "job", name, out) for name in "bc"]
    wait_until(queued(combiner, "job", 2), what="b, c queued")
    go.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert out == {"a": "killed", "b": "job:b", "c": "job:c"}
    assert gate.groups == [("job", ["b", "c"])] and combiner._queues == {}


def test_limit_one_runs_every_call_alone():
    groups = []
    combiner = Combiner(lambda key, group: groups.append(group) or group, limit=1)
    assert [combiner("k", i) for i in range(3)] == [0, 1, 2]
    assert groups == [[0], [1], [2]]


@pytest.mark.parametrize("combine", [1, 64])
def test_concurrent_api_leases_get_disjoint_tasks(app, combine):
    """Many threads leasing through the Backend: every task exactly once."""
    from app.domain import jobs, leases
    from app.store.backend import Backend

    backend = Backend(dict(app.config, LEASE_COMBINE=combine))
    try:
        job = jobs.create(backend, {"name": "c", "tasks": {"range": [0, 600]}, "batch_size": 3})
        job_id = job["id"] if isinstance(job, dict) else job
        got, lock = [], threading.Lock()

        def worker(i):
            while True:
                answer = leases.lease(backend, "w%d" % i, 0, job_id)
                if answer.status != "ok":
                    return
                ids = [t["id"] for t in json.loads(answer.text)["tasks"]]
                with lock:
                    got.extend(ids)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(got) == list(range(600))
    finally:
        backend.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_lease_without_a_job_reads_the_active_index_in_either_protocol(app, protocol):
    """The active index reads the same in RESP2 and RESP3 (redis-py 8
    negotiates RESP3 unless the URL says otherwise)."""
    from app.domain import jobs, leases
    from app.store.backend import Backend

    backend = Backend(dict(app.config, REDIS_URL=app.config["REDIS_URL"] + "?protocol=%d" % protocol))
    try:
        low = jobs.create(backend, {"name": "low", "tasks": {"range": [0, 3]}, "priority": 1})["id"]
        high = jobs.create(backend, {"name": "high", "tasks": {"range": [0, 3]}, "priority": 5})["id"]
        assert sorted(backend.active_jobs()) == sorted([(low, 1.0), (high, 5.0)])
        answer = json.loads(leases.lease(backend, "w").text)
        assert answer["lease"]["job"] == high  # the higher priority first
        assert backend.redis.zscore(backend.keys.active, high) == 5.0
    finally:
        backend.close()


def test_greenlets_under_gevent_share_calls_and_all_get_their_answer():
    script = textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import gevent, gevent.event, json
        from app.store.combine import Combiner
        opened, groups = gevent.event.Event(), []
        def run(key, group):
            groups.append(list(group))
            if len(groups) == 1:
                opened.wait(20)  # the others queue meanwhile
            return [args * 2 for args in group]
        combiner = Combiner(run, limit=8)
        jobs = [gevent.spawn(combiner, "job", i) for i in range(20)]
        gevent.sleep(0)  # every greenlet reaches the combiner: 1 runs, 19 queue
        opened.set()
        gevent.joinall(jobs, timeout=20)
        # The app's gather: the first caller waits until the others have
        # arrived, so its call takes them in at once.
        import app.store.backend
        gathering = Combiner(lambda key, group: [a * 3 for a in group], limit=8,
                             gather=lambda: app.store.backend.Backend._gather(
                                 type("B", (), {"_gather_s": 5.0})()))
        more = [gevent.spawn(gathering, "job", i) for i in range(20)]
        gevent.joinall(more, timeout=20)
        print(json.dumps({"answers": [j.value for j in jobs], "groups": groups,
                          "left": len(combiner._queues), "calls": gathering.calls,
                          "more": [j.value for j in more]}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["answers"] == [i * 2 for i in range(20)]
    assert got["groups"] == [[0], list(range(1, 9)), list(range(9, 17)), [17, 18, 19]]
    assert got["left"] == 0
    assert got["more"] == [i * 3 for i in range(20)] and got["calls"] == 3  # 8 + 8 + 4
