"""The redis-py client of one process, single Redis or Cluster, and how its
connections behave when Redis restarts, pauses or is slow.

- **Restarts.** Every command retries on a *fresh* connection after a
  connection error (redis-py's ``Retry``: the failed connection is
  disconnected and made again), so the idle connections a restart left
  broken cost one reconnect each, never an error; Redis loading its AOF
  (``BusyLoadingError``) and Redis down get 503 after the retries. Every
  script is safe to re-run, so re-sending after a lost reply is harmless.
- **A paused Redis** (SIGSTOP, a stalled host) accepts connections and
  answers nothing. A read gives up after ``REDIS_SOCKET_TIMEOUT`` and is not
  retried (a retry would only double the wait): the request gets 503 +
  Retry-After. For a second after such a timeout, a request that would
  have to wait for a connection (all held by calls to the silent Redis) is
  refused at once, and so is one that was waiting when it happened, so no
  request waits much longer than one timeout. A free connection is always
  used, so the first request after Redis is back goes through.
- **A busy process** is not a silent Redis. Under gevent a greenlet can
  wait seconds for the CPU after its reply has arrived, and then its timer
  fires first. So a timed-out read first looks at the socket: if the reply
  (or part of it) is there, it goes on reading. Only a socket with nothing
  to read after the whole timeout counts as Redis not answering, which is
  what lets the timeout be short.
"""
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from redis.retry import Retry

#: How long after a read timed out the pool refuses to queue requests.
STALL_SECONDS = 1.0


class _Stalls:
    """When a read to each node last timed out (a cluster's pools share one
    of these; each node is judged on its own reads)."""

    def __init__(self):
        self.at = {}

    def mark(self, node):
        self.at[node] = time.monotonic()

    def since(self, node):
        return self.at.get(node, -STALL_SECONDS)

    def active(self, node):
        return time.monotonic() - self.since(node) < STALL_SECONDS


def _node(get):
    """A node's name, from a connection's attributes or its pool's arguments."""
    return get("path", None) or (get("host", None), get("port", None))


def _patient(base, stall):
    """``base`` (TCP, TLS or UNIX connection class, as the URL says) whose
    reads tell a silent Redis from a reply this process was slow to read."""

    class PatientConnection(base):
        # the reply parser is hiredis, which keeps what it has read across a
        # timed-out call, so reading on after a timeout loses nothing
        MAX_RESUMES = 1000

        def read_response(self, *args, disconnect_on_error=True, **kwargs):
            for _ in range(self.MAX_RESUMES):
                try:
                    return super().read_response(*args, disconnect_on_error=False, **kwargs)
                except TimeoutError:
                    if self._sock is not None and self.can_read(timeout=0):
                        continue  # the reply is here: this process was busy, not Redis
                    stall.mark(_node(lambda name, default: getattr(self, name, default)))
                    if disconnect_on_error:
                        self.disconnect()
                    raise
                except ResponseError:
                    raise  # an error reply: the connection is fine
                except BaseException:
                    if disconnect_on_error:
                        self.disconnect()
                    raise
            self.disconnect()
            raise TimeoutError("Redis is sending its reply too slowly")

    PatientConnection.__name__ = "Patient" + base.__name__
    return PatientConnection


class StallAwarePool(redis.BlockingConnectionPool):
    """Waits for a free connection (bounded), except while its Redis is silent."""

    stall = _Stalls()  # replaced per client (see _pool_class)

    def get_connection(self, *args, **kwargs):
        # A free connection is always taken (the call is also the probe that
        # finds Redis back); only waiting for one is refused while Redis is
        # silent.
        return self.queued(lambda: super(StallAwarePool, self).get_connection(*args, **kwargs),
                           self.release, must_wait=self.pool.empty())

    def queued(self, acquire, release, must_wait=True):
        """``acquire()`` (which may wait for a connection, or for the script
        runner's share of them), refused at once when it ``must_wait`` while
        this pool's Redis is silent; what was got while Redis went silent is
        ``release``d and refused too, so no request waits much longer than one
        timeout."""
        node = _node(self.connection_kwargs.get)
        if must_wait and self.stall.active(node):
            raise ConnectionError("Redis did not answer just now; not queueing for it")
        since = time.monotonic()
        got = acquire()
        if self.stall.since(node) > since:
            release(got)
            raise ConnectionError("Redis did not answer just now")
        return got


class _Deferred:
    """A cluster client made on first use, and again until that works.

    redis-py's cluster client reads the cluster's layout when it is made, so
    made at start-up it would keep an app from starting while the cluster is
    down; this way the app starts and answers 503 until the cluster answers.
    """

    def __init__(self, make):
        self._make = make
        self._client = None

    def _get(self):
        if self._client is None:
            try:
                self._client = self._make()
            except RedisClusterException as err:  # no node reachable
                raise ConnectionError(str(err)) from err
        return self._client

    def __getattr__(self, name):
        return getattr(self._get(), name)

    def close(self):
        if self._client is not None:
            close(self._client)


def close(client):
    """Close ``client`` and every socket its pools hold. redis-py's close()
    disconnects only a pool the client made itself, and ours are handed in
    (a cluster's too: from_url gives each node one), so without the second
    step their idle sockets stay open until the garbage collector finds them."""
    client.close()  # (a _Deferred closes what it made, through this function)
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()
    elif isinstance(client, redis.Redis):
        client.connection_pool.disconnect()


def _pool_class(stall):
    return type("StallAwarePool", (StallAwarePool,), {"stall": stall})


def _retry():
    # Connection errors only (a fresh connection each time); BusyLoadingError
    # is one. A timeout is not retried: Redis did not answer, and a second
    # wait would only make the 503 later.
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(ConnectionError,))


def client(config, socket_timeout=None, pool_size=None):
    """A redis-py client for ``config`` (``REDIS_MODE`` single or cluster);
    in a cluster, one such pool per node."""
    timeout = config["REDIS_SOCKET_TIMEOUT"] if socket_timeout is None else socket_timeout
    stall = _Stalls()
    kwargs = dict(socket_timeout=timeout, socket_connect_timeout=min(2.0, timeout),
                  decode_responses=True, health_check_interval=30,
                  max_connections=pool_size or config["REDIS_POOL_SIZE"],
                  timeout=config["REDIS_POOL_TIMEOUT"], retry=_retry())
    if config["REDIS_MODE"] == "cluster":
        from redis.connection import Connection

        return _Deferred(lambda: RedisCluster.from_url(
            config["REDIS_URL"], connection_pool_class=_pool_class(stall),
            connection_class=_patient(Connection, stall), **kwargs))
    pool = _pool_class(stall).from_url(config["REDIS_URL"], **kwargs)
    # The URL chose the class (TCP, TLS, UNIX socket); its reads are made patient.
    pool.connection_class = _patient(pool.connection_class, stall)
    return redis.Redis(connection_pool=pool)
