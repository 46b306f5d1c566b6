"""Shared fixtures: one real Redis per test session, flushed per test.

``JOBMASTER_TEST_REDIS=cluster`` runs the suite on a real local Redis
Cluster (3 masters, a replica each) instead of a single redis-server: the
session then sets ``JOBMASTER_REDIS_MODE=cluster``, so every app the tests
make, in-process or as a server, uses the cluster client. Cross-slot
commands fail there, which is how the suite checks that none is sent.
"""
import os

import pytest

from tests.support.procs import RedisCluster, redis_client, start_redis, suite_redis_mode


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if suite_redis_mode() == "cluster":
        proc = RedisCluster(str(tmp_path_factory.mktemp("redis-cluster")))
        os.environ["JOBMASTER_REDIS_MODE"] = "cluster"
        try:
            yield proc
        finally:
            os.environ.pop("JOBMASTER_REDIS_MODE", None)
            proc.stop()
        return
    proc = start_redis(str(tmp_path_factory.mktemp("redis")))
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_server):
    if isinstance(redis_server, RedisCluster):
        redis_server.flush()
    else:
        import redis

        client = redis.Redis.from_url(redis_server.url)
        client.flushall()
        client.close()
    return redis_server.url


@pytest.fixture
def redis_of():
    """``redis_of(url)``: a plain redis-py client of the suite's kind (single
    or cluster) for looking at Redis beside the app, closed after the test
    with every socket of its pools (a socket left to the garbage collector
    is a ResourceWarning, which this suite treats as an error)."""
    from app.store.connection import close

    made = []

    def make(url):
        made.append(redis_client(url))
        return made[-1]

    yield make
    for client in made:
        close(client)


@pytest.fixture
def app(redis_url):
    from app import create_app

    app = create_app({"REDIS_URL": redis_url, "INSTANCE": "test-1"})
    app.config["TESTING"] = True
    yield app
    app.extensions["jobmaster.backend"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def rds(app):
    return app.extensions["jobmaster.backend"].redis


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """nx-27017, the archive's MongoDB stand-in (tests/support/mongo.py)."""
    from tests.support.mongo import start_mongo

    server = start_mongo(tmp_path_factory.mktemp("mongo"))
    yield server
    server.stop()


@pytest.fixture
def mongo_url(mongo_server):
    """A fresh database on the session's server for each test."""
    import secrets

    return "mongodb://127.0.0.1:%d/t%s" % (mongo_server.port, secrets.token_hex(6))


@pytest.fixture
def archive_app(redis_url, mongo_url):
    """An app with the archive on; its drainer does not run by itself (tests
    drain when they choose, through backend.drainer)."""
    from app import create_app

    app = create_app({"REDIS_URL": redis_url, "INSTANCE": "test-1", "MONGO_URL": mongo_url,
                      "ARCHIVE_DRAINER": False, "ARCHIVE_CLAIM_SECONDS": 0,
                      "MONGO_TIMEOUT": 1.0, "METRICS_CACHE_SECONDS": 0})
    app.config["TESTING"] = True
    yield app
    app.extensions["jobmaster.backend"].close()
