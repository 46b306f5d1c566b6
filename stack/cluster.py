"""A local Redis Cluster for ``JOBMASTER_REDIS_MODE=cluster make run`` and the tests.

Three masters with one replica each: six ``redis-server --cluster-enabled
yes`` processes on consecutive ports from ``JOBMASTER_REDIS_PORT`` (each
also uses its port + 10000 for the cluster bus), data and ``nodes.conf``
under ``var/redis/<port>/``. ``create`` joins them with ``redis-cli
--cluster create`` the first time; later runs find the cluster in
``nodes.conf`` and only wait until it is healthy again.
"""
import os
import subprocess
import time

MASTERS = 3
REPLICAS = 1
NODES = MASTERS * (1 + REPLICAS)

# A replica takes over a master that has been unreachable this long; short
# so that a failover costs seconds, long enough not to fire on a busy machine.
NODE_TIMEOUT_MS = 2000

CLUSTER_CONF = """
# Cluster node (stack/cluster.py): one of %(nodes)d, 3 masters with a replica each.
cluster-enabled yes
cluster-config-file %(nodes_conf)s
cluster-node-timeout %(timeout)d
# A replica promoted while its master is away must serve at once.
cluster-replica-validity-factor 0
"""


def cluster_lines(node_dir, timeout_ms=NODE_TIMEOUT_MS):
    """What a node's redis.conf adds to the single Redis's."""
    return CLUSTER_CONF % {"nodes": NODES, "nodes_conf": os.path.join(node_dir, "nodes.conf"),
                           "timeout": timeout_ms}


def cli(redis_cli, port, *args, timeout=10):
    try:
        return subprocess.run([redis_cli, "-p", str(port), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return ""


def roles(redis_cli, ports):
    """{port: 'master' | 'slave'} for the nodes that answer."""
    out = {}
    for port in ports:
        first = cli(redis_cli, port, "ROLE", timeout=3).split("\n", 1)[0].strip()
        if first:
            out[port] = first
    return out


def healthy(redis_cli, ports, masters=MASTERS, replicas=REPLICAS):
    """Every answering node says cluster_state:ok, ``masters`` masters
    answer and each has its replicas attached and in sync."""
    found = roles(redis_cli, ports)
    if not found or any("cluster_state:ok" not in cli(redis_cli, p, "CLUSTER", "INFO", timeout=3)
                        for p in found):
        return False
    heads = [p for p, r in found.items() if r == "master"]
    if len(heads) != masters:
        return False
    online = sum(cli(redis_cli, p, "INFO", "replication", timeout=3).count("state=online")
                 for p in heads)
    return online >= masters * replicas


def create(redis_cli, ports, timeout=90.0, replicas=REPLICAS):
    """Join ``ports`` into one cluster (unless they already are one) and
    wait until it is healthy; raise RuntimeError if it does not get there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
            "PONG" not in cli(redis_cli, p, "PING", timeout=2) for p in ports):
        time.sleep(0.1)
    known = cli(redis_cli, ports[0], "CLUSTER", "INFO")
    if "cluster_known_nodes:%d" % len(ports) not in known:
        out = subprocess.run([redis_cli, "--cluster", "create",
                              *["127.0.0.1:%d" % p for p in ports],
                              "--cluster-replicas", str(replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=max(10, deadline - time.monotonic()))
        if out.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed:\n%s%s"
                               % (out.stdout[-3000:], out.stderr[-2000:]))
    masters = len(ports) // (1 + replicas)
    while not healthy(redis_cli, ports, masters, replicas):
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis Cluster on ports %s did not become healthy" % ports)
        time.sleep(0.2)
