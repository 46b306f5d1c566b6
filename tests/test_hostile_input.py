"""No input answers 500: out-of-range numbers and lone surrogates are 400s
that name the place, and a refused request changes nothing.

``1e400`` reads as infinity in Python's json and ``"\\ud800"`` as a string
no UTF-8 reader accepts; both used to reach the encoder or Redis's client and
answer 500. A hypothesis test then sends random JSON and random bytes to
every route of the app's URL map.
"""
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import make_job

INF, SURROGATE = "1e400", '"\\ud800"'


def snapshot(rds):
    """Every key's type and contents: what a refused request must not change."""
    out = {}
    for key in rds.scan_iter(count=1000):
        kind = rds.type(key)
        if kind == "hash":
            out[key] = rds.hgetall(key)
        elif kind == "zset":
            out[key] = rds.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            out[key] = rds.get(key)
        else:
            out[key] = kind
    return out


def make_world(client):
    """A range job with a live lease, an unsealed items job, and their ids."""
    job = make_job(client, total=10, batch_size=2, lease_seconds=600)["id"]
    r = client.post("/api/v1/jobs", json={"name": "more", "sealed": False})
    assert r.status_code == 201
    got = client.post("/api/v1/lease", json={"worker": "w", "job": job}).get_json()
    return {"job": job, "items": r.get_json()["id"], "lease": got["lease"]["id"]}


@pytest.fixture
def world(client):
    return make_world(client)


def _places(w):
    """(method, path, raw body, the place the error must name)."""
    job, lease, items = w["job"], w["lease"], w["items"]
    complete = "/api/v1/leases/%s/complete" % lease
    out = []
    for bad in (INF, "-" + INF, SURROGATE):
        out += [
            ("POST", "/api/v1/jobs", '{"name": "n", "tasks": {"range": [0, 2]}, "params": {"a": [%s]}}'
             % bad, "body.params.a[0]"),
            ("POST", "/api/v1/jobs", '{"name": "n", "tasks": {"items": [1, {"x": %s}]}}' % bad,
             "body.tasks.items[1].x"),
            ("POST", complete, '{"results": [{"id": 0, "ok": true, "result": %s}]}' % bad,
             "result of task 0"),
            ("POST", complete, '{"results": [{"id": 1, "ok": false, "error": {"e": %s}}]}' % bad,
             "error of task 1.e"),
            ("POST", "/api/v1/jobs/%s/tasks" % items, "[1, %s]" % bad, "item 1"),
            ("POST", "/api/v1/jobs/%s/tasks" % items, '1\n{"a": %s}\n' % bad, "item 1.a"),
        ]
    out += [
        ("POST", complete, '{"results": [{"id": 0, "ok": false, "error": "x\\udfff"}]}',
         "error of task 0"),
        ("POST", complete, '{"results": [{"id": 0, "ok": true, "result": {"\\ud800": 1}}]}',
         "result of task 0"),
        ("POST", "/api/v1/jobs", '{"name": "\\ud800", "tasks": {"range": [0, 2]}}', "body.name"),
        ("POST", "/api/v1/lease", '{"worker": "\\udc00x"}', "body.worker"),
        ("POST", "/api/v1/leases/%s/heartbeat" % lease, '{"lease_seconds": 1e400}',
         "body.lease_seconds"),
        ("POST", "/api/v1/jobs", '{"name": "n", "tasks": {"range": [0, 1e400]}}',
         "body.tasks.range[1]"),
        ("POST", "/api/v1/jobs", '{"name": "n", "tasks": {"range": [0, 2]}, "lease_seconds": -1e400}',
         "body.lease_seconds"),
    ]
    return out


def test_out_of_range_numbers_and_lone_surrogates_are_400s_naming_the_place(client, rds, world):
    for method, path, raw, place in _places(world):
        before = snapshot(rds)
        r = client.open(path, method=method, data=raw, content_type="application/json")
        assert r.status_code == 400, (path, raw, r.get_json())
        assert r.get_json()["message"].startswith(place), (raw, r.get_json())
        assert snapshot(rds) == before, raw


def test_a_valid_surrogate_pair_and_a_backslash_u_are_fine(client, world):
    raw = '{"results": [{"id": 0, "ok": true, "result": ["\\ud83d\\ude00", "C:\\\\udir"]}]}'
    r = client.post("/api/v1/leases/%s/complete" % world["lease"], data=raw,
                    content_type="application/json")
    assert r.status_code == 200 and r.get_json()["accepted"] == 1
    line = client.get("/api/v1/jobs/%s/results" % world["job"]).get_data(as_text=True)
    assert json.loads(line)["result"] == ["\U0001f600", "C:\\udir"]


# --- every route, random input ---------------------------------------------

FIELDS = ["name", "tasks", "range", "items", "results", "id", "ok", "result", "error",
          "worker", "max_tasks", "job", "lease_seconds", "params", "sealed", "next", "release",
          "batch_size", "priority", "max_attempts", "x"]
LEAVES = st.one_of(
    st.sampled_from(["null", "true", "false", "0", "-1", "1.5", INF, "-" + INF, SURROGATE,
                     '"\\udc00"', "9007199254740993", "1e308", '""', "[]", "{}"]),
    st.integers(-2 ** 64, 2 ** 64).map(str),
    st.text(max_size=12).map(json.dumps),
)
JSON_TEXT = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(FIELDS), inner), max_size=5).map(
            lambda kvs: "{" + ",".join("%s:%s" % (json.dumps(k), v) for k, v in kvs) + "}"),
    ),
    max_leaves=12,
)
BODIES = st.one_of(JSON_TEXT.map(str.encode), st.binary(max_size=64),
                   st.lists(JSON_TEXT, min_size=1, max_size=3).map(lambda ls: "\n".join(ls).encode()))


class Raw(str):
    """JSON text taken as it is (a leaf Python's json would not write)."""


def render(value):
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join("%s:%s" % (json.dumps(k), render(v)) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


def templates(world, endpoint):
    """Valid bodies for a route (or for any), so that mutations of them get
    past the first checks."""
    valid = [
        {"name": "n", "tasks": {"range": [0, 3]}, "params": {"p": [1, "x"]}, "batch_size": 2,
         "lease_seconds": 60, "max_attempts": 2, "priority": 1, "sealed": True},
        {"name": "n", "tasks": {"items": [{"a": 1}, "b"]}},
        {"name": "n", "sealed": False},
        {"worker": "w", "job": world["job"], "max_tasks": 2},
        {"results": [{"id": 0, "ok": True, "result": {"s": 1}},
                     {"id": 1, "ok": False, "error": "e"}], "release": False, "next": {"max_tasks": 1}},
        {"lease_seconds": 30},
        [{"a": 1}, 2, "three"],
        {},
    ]
    mine = {"jobs.create": valid[0:3], "workers.lease": valid[3:4], "workers.complete": valid[4:5],
            "workers.heartbeat": valid[5:6], "jobs.append": valid[6:7]}
    return mine.get(endpoint, valid)


def mutate(data, value, depth=0):
    """``value`` with some of its parts replaced by random JSON text, or a field added."""
    roll = data.draw(st.integers(0, 4))
    if roll == 0 or depth > 6:
        return Raw(data.draw(JSON_TEXT)) if roll == 0 else value
    if isinstance(value, dict):
        out = {k: mutate(data, v, depth + 1) for k, v in value.items()}
        if roll == 1:
            out[data.draw(st.sampled_from(FIELDS))] = Raw(data.draw(JSON_TEXT))
        return out
    if isinstance(value, list):
        return [mutate(data, v, depth + 1) for v in value]
    return value


BODY_ROUTES = ("jobs.create", "workers.lease", "workers.complete", "workers.heartbeat",
               "jobs.append")


def _routes(app):
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule))
    return out


def _fill(rule, world, pick):
    path = rule.rule
    for arg in rule.arguments:
        choices = {"job_id": [world["job"], world["items"], "ab" * 8, "zz"],
                   "lease_id": [world["lease"], world["lease"][:-1] + "0", world["job"] + ".x"],
                   }.get(arg, ["x", "index.html"])
        path = re.sub(r"<(?:[^:<>]+:)?%s>" % arg, pick(choices), path)
    return path


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_route_answers_5xx_and_a_refusal_changes_nothing(app, data):
    from app.domain.lease_ids import signer

    client = app.test_client()
    b = app.extensions["jobmaster.backend"]
    b.redis.flushall()
    signer(b).checked = 0  # the flushed lease secret is put back at its next use
    rds = b.redis
    world = make_world(client)
    routes = _routes(app)
    with_body = [(m, rule) for m, rule in routes if rule.endpoint in BODY_ROUTES]
    method, rule = data.draw(st.sampled_from(with_body) if data.draw(st.booleans())
                             else st.sampled_from(routes), label="route")
    path = _fill(rule, world, lambda xs: data.draw(st.sampled_from(xs)))
    if rule.methods & {"GET"}:
        path += data.draw(st.sampled_from(["", "?limit=2", "?after=1&limit=0", "?state=running",
                                           "?limit=-1", "?after=x", "?limit=99999999999999999999"]))
    if data.draw(st.integers(0, 3)):
        body = render(mutate(data, data.draw(st.sampled_from(templates(world, rule.endpoint)))))
        body = body.encode()
    else:
        body = data.draw(BODIES, label="body")
    before = snapshot(rds)
    r = client.open(path, method=method, data=body, content_type="application/json")
    # (501 is the contract's answer to a feature that needs the archive
    # where none is configured: files, attempts, ?archived)
    assert r.status_code < 500 or (r.status_code == 501 and r.get_json()["error"] ==
                                   "not_configured"), (method, path, body,
                                                       r.get_data(as_text=True)[:300])
    if r.status_code >= 400:
        err = r.get_json()
        assert set(err) == {"error", "message"}, err
        assert snapshot(rds) == before, (method, path, body, err)
