"""Faults beyond one Redis and one host (docs/contract.md §11, docs/scaling.md):

- a Redis Cluster master killed with -9 in the middle of a swarm: its
  replica takes over and the job completes with nothing lost and no result
  recorded twice (tasks may run twice: acknowledged writes inside the
  replication lag can be lost, see docs/RELIABILITY.md);
- two complete stacks (nginx + instances) on two loopback addresses sharing
  one Redis, pods spread over both, one whole stack killed mid-job: the
  other finishes it, nothing lost.
"""
import json
import os
import signal

import pytest

from loadtest.common import Admin
from loadtest.failover_bench import swarm_process
from tests.invariants import check_job
from tests.support.procs import RedisCluster, suite_redis_mode, wait_until
from tests.support.stack import start_stack


def _summary(proc, timeout=200):
    out, err = proc.communicate(timeout=timeout)
    assert out.strip(), err[-3000:]
    return json.loads(out[out.index("{"):])


def _reap(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def _done(admin, job):
    return admin._req("GET", "/api/v1/jobs/" + job)["counts"]["done"]


def _only_unavailable(summary):
    """Every failed answer the pods saw was a 503 (Redis away for a moment)."""
    return all(key.endswith(":503") for key in summary["errors"])


@pytest.mark.skipif(suite_redis_mode() != "cluster",
                    reason="runs once, with the cluster suite (it starts a cluster of its own)")
def test_a_killed_master_fails_over_mid_swarm_and_nothing_is_lost(tmp_path):
    import redis

    cluster = RedisCluster(str(tmp_path / "cluster"), node_timeout_ms=1000)
    st, swarms = None, []
    try:
        st = start_stack(tmp_path / "stack", instances=2, redis_url=cluster.url,
                         redis_mode="cluster")
        admin = Admin(st.url)
        total = 24000
        job = admin.create_range_job("failover", total, batch_size=10, lease_seconds=3)["id"]
        rc = redis.RedisCluster.from_url(cluster.url, decode_responses=True)
        port = rc.get_node_from_key("jm:{%s}:meta" % job).port
        victim = next(n for n in cluster.nodes if n.port == port)
        assert cluster.roles()[port] == "master"

        swarm = swarm_process(st.url, job, pods=40, work="const:0.02")
        swarms.append(swarm)
        wait_until(lambda: _done(admin, job) >= total // 4 or swarm.poll() is not None,
                   timeout=60, what="a quarter of the job")
        assert swarm.poll() is None, "the swarm ended before the fault"
        victim.stop(signal.SIGKILL)
        # its replica is elected (cluster-node-timeout 1 s) and takes the slots
        wait_until(lambda: list(cluster.roles().values()).count("master") == 3, timeout=60,
                   what="the replica taking over")
        assert swarm.poll() is None, "the swarm ended before the failover"
        summary = _summary(swarm)

        assert summary["job_state"] == "completed", summary
        assert summary["lost"] == 0 and summary["invariant_ok"] and summary["results_ok"]
        assert summary["results"]["distinct"] == summary["results"]["lines"] == total
        assert _only_unavailable(summary), summary["errors"]
        roles = cluster.roles()
        assert port not in roles and list(roles.values()).count("master") == 3
        check_job(rc, _keys(), job)
        rc.close()
    finally:
        _reap(swarms)
        if st is not None:
            st.stop()
        cluster.stop()


def test_two_app_hosts_share_one_redis_and_one_dies_mid_job(tmp_path, redis_url):
    """Pods spread over two hosts (each its own nginx and instances, on
    127.0.0.2 and 127.0.0.3); host A is killed whole, and its pods with it.
    Host B's pods finish the job: A's leases expire and come back."""
    hosts, swarms = [], []
    try:
        for name, address in (("a", "127.0.0.2"), ("b", "127.0.0.3")):
            hosts.append(start_stack(tmp_path / name, instances=2, redis_url=redis_url,
                                     host=address))
        a, b = hosts
        admin = Admin(b.url)
        total = 8000
        job = admin.create_range_job("two-hosts", total, batch_size=10, lease_seconds=3)["id"]
        swarms += [swarm_process(a.url, job, pods=20, work="const:0.02"),
                   swarm_process(b.url, job, pods=20, work="const:0.02")]
        wait_until(lambda: _done(admin, job) >= total // 4, timeout=60, what="a quarter of the job")
        # host A goes: its nginx and instances, and the pods talking to it
        for proc in [swarms[0], a.nginx] + [n.process for n in a.instances]:
            os.killpg(proc.pid, signal.SIGKILL)  # with its workers
        for proc in [a.nginx] + [n.process for n in a.instances]:
            proc.stop()
        swarms[0].communicate(timeout=10)
        with pytest.raises(OSError):
            a.get("/healthz", timeout=2)
        summary = _summary(swarms[1])

        assert summary["job_state"] == "completed", summary
        assert summary["lost"] == 0 and summary["invariant_ok"] and summary["results_ok"]
        assert summary["results"]["distinct"] == total
        assert summary["error_count"] == 0, summary["errors"]
        doc = admin._req("GET", "/api/v1/jobs/" + job)
        assert doc["counts"]["done"] == total and doc["counts"]["leased"] == 0
    finally:
        _reap(swarms)
        for st in hosts:
            st.stop()


def _keys():
    from app.store.keys import Keys

    return Keys("jm")
