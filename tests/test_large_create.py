"""A large items create is read and stored a chunk at a time (issue 12,
item 6): app/web/items_body.py walks the body, stage.lua stores the items,
create.lua makes the job over them. Same answers as a small create."""
import json

import pytest

from app import create_app
from app.web import items_body
from app.errors import BadRequest
from tests.helpers import lease


@pytest.fixture
def big_client(redis_url):
    # 7 items per Redis call, so even a test-sized body takes several chunks
    app = create_app({"REDIS_URL": redis_url, "ITEMS_CHUNK": 7})
    yield app.test_client()
    app.extensions["jobmaster.backend"].close()


def _body(items, **extra):
    body = {"name": "big", "batch_size": 5, "tasks": {"items": items}}
    body.update(extra)
    return body


def _padded(n, pad):
    """n items whose JSON is over STREAM_BYTES in all."""
    return [{"i": i, "pad": "x" * pad} for i in range(n)]


@pytest.mark.parametrize("text", [
    '{"name":"a","tasks":{"items":[1, {"a":[2, {"b": null}]} ,"x\\u00e9", [], {}]},"params":{"p":1.5}}',
    ' {"tasks" : { "items" : [ ] } , "name" : "b" } ',
    '{"tasks":{"range":[0,5]},"name":"c"}',
    '{"tasks":{"items":[1]},"tasks":{"range":[0,1]}}',  # the last key wins, as in json.loads
    '{"tasks":{"range":[0,1],"items":[7,8]}}',
    '{}',
])
def test_split_agrees_with_json_loads(text):
    body, items = items_body.split(text.encode())
    whole = json.loads(text)
    if items is not None:
        body["tasks"]["items"] = list(items)
        assert len(items) == len(whole["tasks"]["items"])
    assert body == whole


@pytest.mark.parametrize("text", ['{', '{"a":1}x', '[1]', '{"tasks":{"items":[1,]}}',
                                  '{"a":NaN}', '{"a" 1}', '', '{"tasks":{"items":[1 2]}}'])
def test_split_refuses_what_is_not_json(text):
    with pytest.raises(BadRequest):
        items_body.split(text.encode())


def test_a_large_create_leases_its_items_in_order(big_client):
    items = _padded(200, 6000)  # ~1.2 MB
    raw = json.dumps(_body(items))
    assert len(raw) > items_body.STREAM_BYTES
    r = big_client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    assert doc["kind"] == "items" and doc["counts"]["total"] == 200
    seen = []
    while True:
        got = lease(big_client, job=doc["id"], max_tasks=50)
        if got["status"] != "ok":
            break
        seen += [(t["id"], t["payload"]) for t in got["tasks"]]
    assert seen == list(enumerate(items))


def test_staged_items_stop_expiring_once_the_job_exists(big_client, rds):
    r = big_client.post("/api/v1/jobs", data=json.dumps(_body(_padded(200, 6000))),
                        content_type="application/json")
    keys = big_client.application.extensions["jobmaster.backend"].keys
    assert rds.ttl(keys.job_key(r.get_json()["id"], "items")) == -1  # no expiry


def test_a_bad_item_in_a_large_create_is_a_400_and_makes_no_job(big_client, rds):
    raw = json.dumps(_body(_padded(200, 6000))).replace('{"i": 150,', '{"i": NaN,')
    r = big_client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert r.status_code == 400 and "items[150]" in r.get_json()["message"]
    assert big_client.get("/api/v1/jobs").get_json()["jobs"] == []
    # the chunks stored before the bad item expire on their own
    staged = [k for k in rds.keys("*:items")]
    assert staged and all(0 < rds.ttl(k) <= 3600 for k in staged)


def test_a_large_create_is_validated_like_a_small_one(big_client):
    for body in (_body(_padded(200, 6000), batch_size=0), _body(_padded(200, 6000), name=""),
                 {"name": "x", "tasks": {"range": [0, 1], "items": _padded(200, 6000)}}):
        r = big_client.post("/api/v1/jobs", data=json.dumps(body), content_type="application/json")
        assert r.status_code == 400, body.keys()
    assert big_client.get("/api/v1/jobs").get_json()["jobs"] == []
