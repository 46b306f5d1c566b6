"""Shared fixtures: one real redis-server per test session, flushed per test."""

import pytest

from tests.support.procs import start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    proc = start_redis(str(tmp_path_factory.mktemp("redis")))
    yield proc
    proc.stop()


@pytest.fixture
def redis_url(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


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
