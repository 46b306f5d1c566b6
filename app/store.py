"""The Redis connection of one application, created per process.

The pool is a ``BlockingConnectionPool``: under a burst, greenlets wait for a
free connection (up to REDIS_POOL_TIMEOUT) instead of failing, and the total
stays bounded under Redis ``maxclients``. redis-py resets pools after fork,
so creating it in the factory is safe with uWSGI's pre-fork model; every
state-changing script is written to be re-run safely, because redis-py
retries commands on connection errors and timeouts.
"""
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .keys import Keys
from .scripts import Scripts


def init_app(app):
    cfg = app.config
    pool = redis.BlockingConnectionPool.from_url(
        cfg["REDIS_URL"],
        max_connections=cfg["REDIS_POOL_SIZE"],
        timeout=cfg["REDIS_POOL_TIMEOUT"],
        socket_timeout=cfg["REDIS_SOCKET_TIMEOUT"],
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    )
    client = redis.Redis(connection_pool=pool)
    app.extensions["jobmaster.redis"] = client
    app.extensions["jobmaster.keys"] = Keys(cfg["KEY_PREFIX"])
    app.extensions["jobmaster.scripts"] = Scripts(client)
