"""Closing an app closes every connection it made to Redis, in either mode.

redis-py's close() leaves connected a pool the client was handed, and the
app hands its clients their pools (a cluster client: one per node); what is
left open lingers until the garbage collector finds it.
"""
from app import create_app
from tests.helpers import complete, lease, make_job, ok_all, status
from tests.support.procs import wait_until


def _client_ids(rds):
    """The connections Redis has open (on every node of a cluster)."""
    if hasattr(rds, "get_nodes"):
        per_node = rds.client_list(target_nodes=rds.ALL_NODES)
        return {(node, c["id"]) for node, clients in per_node.items() for c in clients}
    return {c["id"] for c in rds.client_list()}


def test_closing_an_app_closes_its_connections_on_every_node(redis_url, redis_of):
    rds = redis_of(redis_url)
    before = _client_ids(rds)
    app = create_app({"REDIS_URL": redis_url, "INSTANCE": "test-1"})
    c = app.test_client()
    job = make_job(c, total=30)["id"]
    for _ in range(3):
        got = lease(c, job=job, max_tasks=10)
        complete(c, got["lease"]["id"], ok_all(got["tasks"]))
    assert status(c, job)["state"] == "completed"
    assert c.get("/readyz").status_code == 200
    opened = _client_ids(rds) - before
    assert opened  # (the app's own)
    app.extensions["jobmaster.backend"].close()
    wait_until(lambda: not (_client_ids(rds) & opened), what="the app's connections closed")
