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
