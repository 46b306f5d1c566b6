"""Schedules (docs/contract.md §9) in process: routes, validation, and one round
of the background loop at a time (real Redis)."""
import datetime
from zoneinfo import ZoneInfo

import pytest

from app.domain import schedules

JOB = {"name": "weekly", "tasks": {"range": [0, 10]}, "batch_size": 5, "max_dead": 3}


@pytest.fixture
def backend(app):
    return app.extensions["jobmaster.backend"]


def make(client, **extra):
    body = {"name": "weekly sims", "cron": "0 2 * * 1", "job": JOB, **extra}
    r = client.post("/api/v1/schedules", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def make_due(backend, sid, ms=0):
    """Time passes: the schedule's next slot is now (or was long ago)."""
    backend.redis.zadd(backend.keys.schedules, {sid: ms})


def jobs_of(client, sid):
    return [j for j in client.get("/api/v1/jobs").get_json()["jobs"] if j["schedule"] == sid]


def test_create_list_get_delete(client):
    doc = make(client, timezone="Europe/Berlin")
    nxt = datetime.datetime.fromtimestamp(doc["next_run"], ZoneInfo("Europe/Berlin"))
    assert nxt.weekday() == 0 and (nxt.hour, nxt.minute) == (2, 0)
    assert doc["next_run"] > doc["created_at"] and doc["last_job"] is None
    assert doc["job"] == JOB and doc["cron"] == "0 2 * * 1"
    listed = client.get("/api/v1/schedules").get_json()["schedules"]
    assert [s["id"] for s in listed] == [doc["id"]]
    assert client.get("/api/v1/schedules/" + doc["id"]).get_json() == doc
    assert client.delete("/api/v1/schedules/" + doc["id"]).get_json() == {"id": doc["id"],
                                                                          "deleted": True}
    assert client.get("/api/v1/schedules/" + doc["id"]).status_code == 404
    assert client.delete("/api/v1/schedules/" + doc["id"]).status_code == 404
    assert client.get("/api/v1/schedules/../x").status_code == 404


def test_a_due_slot_makes_exactly_one_job_naming_its_schedule(client, backend):
    sid = make(client)["id"]
    assert schedules.run_due(backend) == 0  # not due
    make_due(backend, sid)
    assert schedules.run_due(backend) == 1
    assert schedules.run_due(backend) == 0
    made = jobs_of(client, sid)
    assert len(made) == 1 and made[0]["name"] == "weekly" and made[0]["settings"]["max_dead"] == 3
    doc = client.get("/api/v1/schedules/" + sid).get_json()
    assert doc["last_job"] == made[0]["id"] and doc["last_run"] is not None
    assert doc["next_run"] > doc["last_run"]
    # the same slot again (another process that read the index late): nothing new
    make_due(backend, sid)
    assert schedules.run_due(backend) == 0 and len(jobs_of(client, sid)) == 1


def test_missed_slots_run_once(client, backend):
    sid = make(client, cron="* * * * *")["id"]
    make_due(backend, sid, 1)  # due since 1970: thousands of missed slots
    assert schedules.run_due(backend) == 1
    assert len(jobs_of(client, sid)) == 1


def test_a_dead_guard_holder_does_not_cost_the_slot(client, backend):
    sid = make(client, cron="* * * * *")["id"]
    make_due(backend, sid)
    now = backend.redis.time()[0] * 1000
    slot = schedules.last_slot("* * * * *", "UTC", now)
    guard = backend.keys.schedule_slot(sid, slot)
    backend.redis.set(guard, "x", px=60000)  # a process took it and died
    assert schedules.run_due(backend) == 0 and not jobs_of(client, sid)
    backend.redis.delete(guard)  # its guard expired
    assert schedules.run_due(backend) == 1 and len(jobs_of(client, sid)) == 1


def test_the_slot_job_is_made_once_even_if_made_twice(client, backend):
    sid = make(client)["id"]
    record = backend.redis.hgetall(backend.keys.schedule(sid))
    job_id = schedules.slot_job_id(sid, 123)
    first = schedules._make_job(backend, sid, record, job_id)
    again = schedules._make_job(backend, sid, record, job_id)
    assert first["id"] == again["id"] == job_id and len(jobs_of(client, sid)) == 1


def test_run_now(client):
    sid = make(client)["id"]
    r = client.post("/api/v1/schedules/%s/run" % sid)
    assert r.status_code == 201 and r.get_json()["schedule"] == sid
    assert client.get("/api/v1/schedules/" + sid).get_json()["last_job"] == r.get_json()["id"]
    assert client.post("/api/v1/schedules/%s/run" % ("0" * 16)).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"cron": "not a cron"}, "body.cron"),
    ({"cron": "61 * * * *"}, "body.cron"),
    ({"cron": "* * * *"}, "body.cron"),
    ({"cron": 5}, "body.cron"),
    ({"timezone": "Mars/Olympus"}, "body.timezone"),
    ({"job": {"name": "x", "tasks": {"range": [0, 1]}, "batchsize": 2}}, "body.job.batchsize"),
    ({"job": {"name": "x", "tasks": {"range": [5, 1]}}}, "body.job.tasks.range"),
    ({"job": {"name": "x", "tasks": {"range": [0, 1]},
              "webhook": {"url": "gopher://127.0.0.1"}}}, "body.job.webhook.url"),
    ({"job": None}, "body.job"),
    ({"every": "week"}, "body.every"),
])
def test_bad_schedules_are_400_naming_the_field(client, body, field):
    full = {"name": "s", "cron": "0 2 * * 1", "job": JOB, **body}
    r = client.post("/api/v1/schedules", json=full)
    assert r.status_code == 400, r.get_json()
    assert field in r.get_json()["message"], r.get_json()
    assert client.get("/api/v1/schedules").get_json()["schedules"] == []
