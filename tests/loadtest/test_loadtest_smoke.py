"""Seconds-long smoke runs of the load-test tools, so they cannot rot.

A real stack (Redis, two uWSGI gevent instances, nginx with ip_hash) is
started on free loopback ports by ``loadtest.stack``. No timing is asserted:
only that nothing is lost and no request fails.
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from loadtest.common import check_loopback_url, percentiles, pod_address
from loadtest.metrics_flood import markdown
from tests.support.stack import start_stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # 127.0.0.1 is trusted as a gateway: the wrk scripts spread their
    # requests with X-Forwarded-For, as bench does.
    st = start_stack(tmp_path_factory.mktemp("stack"), instances=2,
                     trusted_proxies="127.0.0.1/32")
    yield st
    st.stop()


def run_tool(argv, timeout=90):
    p = subprocess.run([sys.executable, "-m"] + argv, cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert p.stdout.strip(), p.stderr[-3000:]
    start = p.stdout.index("{")
    return p.returncode, json.loads(p.stdout[start:]), p.stderr


def test_pod_addresses_spread_over_many_slash24s():
    addrs = [pod_address(i) for i in range(1000)]
    assert len(set(addrs)) == 1000
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addrs)
    assert len({a.rsplit(".", 1)[0] for a in addrs[:250]}) == 250  # ip_hash sees 250 networks


def test_tools_refuse_non_loopback_targets():
    check_loopback_url("http://127.0.0.1:8080")
    check_loopback_url("http://localhost:8080")
    for url in ("http://10.0.0.1:8080", "http://192.168.1.1", "http://example.com"):
        with pytest.raises(SystemExit):
            check_loopback_url(url)


def test_percentiles_nearest_rank():
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert p["p50"] == 50.0 and p["p99"] == 99.0 and p["p100"] == 100.0


def test_swarm_loses_nothing(stack):
    rc, s, err = run_tool(["loadtest.swarm", "swarm", "--url", stack.url, "--pods", "20",
                           "--tasks", "2000", "--batch", "25", "--work", "uniform:0:0.002",
                           "--timeout", "60", "--max-wait", "0.5"])
    assert s["error_count"] == 0, s["errors"]
    assert s["lost"] == 0 and s["results"]["distinct"] == 2000, s
    assert s["counts"]["done"] == 2000 and s["job_state"] == "completed"
    assert s["complete"]["accepted"] == 2000 and s["complete"].get("duplicates", 0) == 0
    assert rc == 0 and s["ok"], err[-2000:]


def test_swarm_with_crashing_pods_and_failures_loses_nothing(stack):
    rc, s, err = run_tool(["loadtest.swarm", "swarm", "--url", stack.url, "--pods", "10",
                           "--tasks", "500", "--batch", "10", "--crash-rate", "0.1",
                           "--fail-rate", "0.02", "--lease-seconds", "1", "--restart-delay", "0.1",
                           "--max-wait", "0.5", "--timeout", "60", "--seed", "3"])
    assert s["crashes"] > 0
    assert s["error_count"] == 0, s["errors"]
    counts = s["counts"]
    assert counts["done"] + counts["dead"] == 500 and s["lost"] == 0, s
    assert s["results"]["distinct"] == counts["done"] and s["results"]["bad"] == 0
    assert rc == 0 and s["ok"], err[-2000:]


def test_burst_of_200_simultaneous_leases(stack):
    rc, s, err = run_tool(["loadtest.swarm", "burst", "--url", stack.url, "--requests", "200",
                           "--timeout", "60", "--request-timeout", "30"])
    assert s["error_count"] == 0, s["answers"]
    assert s["answers"] == {"answer:ok": 200}
    assert s["leased_matches"], s["counts"]
    assert rc == 0


def test_burst_warm_mode(stack):
    rc, s, err = run_tool(["loadtest.swarm", "burst", "--url", stack.url, "--requests", "50",
                           "--warm", "--timeout", "60", "--delete"])
    assert s["error_count"] == 0 and rc == 0, s["answers"]


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (make sysdeps installs it)")
@pytest.mark.parametrize("script,named", [("healthz.lua", True), ("lease.lua", True),
                                          ("lease.lua", False), ("lease_complete.lua", True)])
def test_wrk_scripts_run(stack, script, named):
    from loadtest.bench_wrk import parse_wrk
    from loadtest.common import Admin

    admin = Admin(stack.url)
    job = admin.create_range_job("wrk-smoke", 1_000_000, batch_size=10, lease_seconds=600)
    argv = ["wrk", "-t1", "-c4", "-d1s", "--latency", "-s",
            os.path.join(ROOT, "loadtest", "wrk", script), stack.url, "--",
            job["id"] if named else "-", "10"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    res = parse_wrk(p.stdout)
    assert res["requests"] > 0 and res["non2xx"] == 0, p.stdout
    c = res["counters"]
    assert c["non200"] == 0, p.stdout
    if script == "lease.lua":
        assert c["ok"] > 0
    if script == "lease_complete.lua":
        assert c["completes"] > 0 and c["tasks_done"] > 0, p.stdout
        st = admin.status(job["id"])
        assert st["counts"]["done"] == c["tasks_done"] or st["counts"]["done"] >= c["tasks_done"] - 40
    admin.delete(job["id"])


def test_lua_cost_measures_combined_lease_groups(redis_url):
    import redis

    rc, out, err = run_tool(["loadtest.lua_cost", "--redis-url", redis_url, "--groups", "1,4",
                             "--batch", "2", "--leases", "8"])
    assert rc == 0, err[-2000:]
    assert [row["per_call"] for row in out["rows"]] == [1, 4]
    for row in out["rows"]:
        assert row["redis_usec_per_call"] == pytest.approx(row["redis_usec_per_lease"] * row["per_call"],
                                                           rel=0.01, abs=0.2)
    # its job is deleted again (the lease-signing secret stays: app/domain/lease_ids.py)
    assert redis.Redis.from_url(redis_url).keys("*") in ([], [b"jm:secret"])


def test_metrics_flood_quick_floods_and_reports(stack):
    rc, res, err = run_tool(["loadtest.metrics_flood", "--quick", "--url", stack.url])
    assert len(res["rounds"]) == 1, err[-2000:]
    r = res["rounds"][0]
    for kind in ("clean", "flooded"):
        assert r[kind]["ok"] and r[kind]["lost"] == 0 and r[kind]["tasks_per_s"] > 0, r[kind]
    assert "flood" not in r["clean"]
    flood = r["flooded"]["flood"]
    assert flood["requests"] > 0 and res["scrapes"] == flood["requests"], flood
    assert res["metrics_status"] == 200 and res["metrics_bytes"] > 0
    assert res["ratio_median"] == r["ratio"] > 0
    lines = markdown(res)
    assert lines[0].startswith("| round |") and lines[2].startswith("| 1 | clean first |")
    assert "Median flooded ÷ clean" in lines[-1]
    assert rc == 0, err[-2000:]
    # the jobs it kept for the measurement are gone again from a stack it did not start
    with urllib.request.urlopen(stack.url + "/api/v1/jobs?limit=1000", timeout=30) as resp:
        names = [j["name"] for j in json.load(resp)["jobs"]]
    assert not [n for n in names if n.startswith("flood-kept-")]
