"""Shared helpers of the load-test tools: loopback addresses, limits, admin calls.

Every tool here only ever talks to loopback addresses (127.0.0.0/8): the
target URL is checked by :func:`check_loopback_url`, and source addresses
come from :func:`pod_address`.
"""
import ipaddress
import json
import math
import resource
import time
import urllib.parse
import urllib.request


def check_loopback_url(url):
    """Refuse any target that is not on 127.0.0.0/8 (or localhost)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise SystemExit("refusing non-loopback target %r: load tests only run against 127.0.0.0/8" % url)


def host_port(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port or 80


def pod_address(i):
    """The loopback source address of pod ``i``.

    The third octet varies fastest, because nginx's ``ip_hash`` hashes only the
    first three octets: pods 0..249 already cover 250 different /24 networks.
    Yields 127.a.b.c with a in 1..126, b in 0..249, c in 1..250 (127.0.0.1,
    the address of everything else, is never used).
    """
    b = i % 250
    c = 1 + (i // 250) % 250
    a = 1 + i // 62500
    if a > 126:
        raise ValueError("too many pod addresses")
    return "127.%d.%d.%d" % (a, b, c)


def raise_nofile(want):
    """Raise this process's open-file limit towards ``want`` (soft up to hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentiles(values, ps=(50, 90, 99, 99.9, 100)):
    """Nearest-rank percentiles of ``values`` (seconds), as a dict of ms."""
    if not values:
        return {}
    s = sorted(values)
    out = {}
    for p in ps:
        k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
        out["p%s" % p] = round(s[k] * 1000.0, 3)
    return out


class Admin:
    """Small blocking admin client (stdlib only), for setup and verification."""

    def __init__(self, url, token=None, timeout=120.0):
        self.url = check_loopback_url(url.rstrip("/"))
        self.token = token
        self.timeout = timeout

    def _req(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            payload = resp.read()
        return payload if raw else json.loads(payload or b"null")

    def create_range_job(self, name, total, batch_size=100, lease_seconds=300, max_attempts=3,
                         priority=0, params=None):
        body = {"name": name, "tasks": {"range": [0, total]}, "batch_size": batch_size,
                "lease_seconds": lease_seconds, "max_attempts": max_attempts,
                "priority": priority}
        if params is not None:
            body["params"] = params
        return self._req("POST", "/api/v1/jobs", body)

    def status(self, job_id):
        return self._req("GET", "/api/v1/jobs/%s" % job_id)

    def delete(self, job_id):
        try:
            return self._req("DELETE", "/api/v1/jobs/%s" % job_id)
        except Exception:  # cleanup is best effort
            return None

    def cancel(self, job_id):
        try:
            return self._req("POST", "/api/v1/jobs/%s/cancel" % job_id, {})
        except Exception:
            return None

    def results_check(self, job_id, total):
        """Stream the NDJSON results; count lines, distinct ids, bad ids."""
        req = urllib.request.Request(self.url + "/api/v1/jobs/%s/results" % job_id)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        seen = set()
        lines = bad = 0
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            for line in resp:
                line = line.strip()
                if not line:
                    continue
                lines += 1
                try:
                    tid = json.loads(line)["id"]
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                if not isinstance(tid, int) or not 0 <= tid < total:
                    bad += 1
                    continue
                seen.add(tid)
        return {"lines": lines, "distinct": len(seen), "bad": bad}

    def wait_completed(self, job_id, timeout=30.0):
        """Poll the status until the job is completed (or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if st.get("state") in ("completed", "cancelled") or time.monotonic() > deadline:
                return st
            time.sleep(0.2)
