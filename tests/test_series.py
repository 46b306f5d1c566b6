"""The per-job throughput series, and the rate, ETA and makespan read from it."""
import pytest

from tests.helpers import complete, expire_now, lease, make_job, ok_all, status


def _series(client, job_id, **query):
    r = client.get("/api/v1/jobs/%s/series" % job_id, query_string=query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_a_short_job_reads_its_real_rate_and_a_finished_one_its_average(client):
    job = make_job(client, total=300, batch_size=100)["id"]
    for _ in range(2):
        got = lease(client, job=job)
        complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    running = status(client, job)
    # 200 tasks within about a second: the rate is per the time they took,
    # at least a second; a one-minute average would say 200 / 60 = 3.3.
    assert running["rate"] >= 100, running
    assert running["eta_seconds"] is not None and running["eta_seconds"] <= 1.0
    assert running["makespan_seconds"] is None
    got = lease(client, job=job)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    done = status(client, job)
    assert done["state"] == "completed" and done["eta_seconds"] == 0.0
    assert done["makespan_seconds"] == pytest.approx(done["finished_at"] - done["created_at"],
                                                     abs=0.002)
    assert done["rate"] > 0
    series = _series(client, job)
    first = series["first_activity"]
    assert done["created_at"] <= first <= done["finished_at"]
    if done["finished_at"] > first:  # average over the active span, and it does not decay
        assert done["rate"] == pytest.approx(300 / (done["finished_at"] - first), rel=0.01)
    assert status(client, job)["rate"] == done["rate"]


def test_series_counts_done_and_failed_attempts_per_bucket(client, rds, app):
    keys = app.extensions["jobmaster.backend"].keys
    job = make_job(client, total=10, batch_size=5, max_attempts=5)["id"]
    a = lease(client, job=job)
    complete(client, a["lease"]["id"], [{"id": t["id"], "ok": False, "error": "boom"}
                                        for t in a["tasks"][:2]] + ok_all(a["tasks"][2:]))
    b = lease(client, job=job)
    expire_now(rds, keys, job, b["lease"]["id"])
    status(client, job)  # reclaims the expired lease: 5 failed attempts
    s = _series(client, job)
    assert s["resolution"] == "s" and s["interval_seconds"] == 10
    assert sum(s["done"]) == 3 and sum(s["failed"]) == 2 + len(b["tasks"])
    assert len(s["done"]) == len(s["failed"]) >= 1
    coarse = _series(client, job, resolution="m")
    assert coarse["interval_seconds"] == 300 and sum(coarse["done"]) == 3
    r = client.get("/api/v1/jobs/%s/series?resolution=h" % job)
    assert r.status_code == 400
    assert client.get("/api/v1/jobs/nosuch/series").status_code == 404


def test_a_job_with_no_activity_has_an_empty_series_and_no_rate(client):
    job = make_job(client, total=10)["id"]
    s = _series(client, job)
    assert s["first_activity"] is None and sum(s["done"]) == 0
    doc = status(client, job)
    assert doc["rate"] == 0 and doc["eta_seconds"] is None


def test_buckets_that_fell_out_of_the_window_are_deleted(client, rds, app):
    keys = app.extensions["jobmaster.backend"].keys
    job = make_job(client, total=4, batch_size=2)["id"]
    got = lease(client, job=job)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    key = keys.job_key(job, "series")
    newest = int(rds.hget(key, "s"))
    # Pretend the newest bucket is 400 buckets old (the window keeps 360).
    old = newest - 400
    fields = rds.hgetall(key)
    rds.delete(key)
    rds.hset(key, mapping={"t0": fields["t0"], "s": old, "s%dd" % old: 7, "s%dd" % (old - 1): 1,
                           "m": fields["m"], **{f: v for f, v in fields.items() if f.startswith("m")}})
    got = lease(client, job=job)
    complete(client, got["lease"]["id"], ok_all(got["tasks"]))
    after = rds.hgetall(key)
    assert "s%dd" % old not in after and "s%dd" % (old - 1) not in after
    assert int(after["s"]) == newest or int(after["s"]) == newest + 1
    assert sum(int(v) for f, v in after.items() if f.startswith("s") and f.endswith("d")) == 2
