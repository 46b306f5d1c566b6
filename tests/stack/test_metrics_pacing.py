"""nginx paces /metrics per client address (JOBMASTER_METRICS_RATE): a
flood from one address waits its turn or gets the JSON 429, and leaves the
API and every other address alone."""
from concurrent.futures import ThreadPoolExecutor

FLOOD = 30  # > 1 + 20 × rate queued: some must be refused at rate 1


def _flood(aux, source, timeout, n=FLOOD):
    """``n`` simultaneous GET /metrics from one address; those not answered
    within ``timeout`` (still queued) count as None."""
    def one(_):
        try:
            return aux["request"]("GET", "/metrics", source=source, timeout=timeout)
        except OSError:
            return None
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_metrics_flood_is_paced_and_refused_in_json(stack):
    aux = stack.start_nginx(metrics_rate=1)
    got = _flood(aux, "127.61.0.9", timeout=6)
    ok = [r for r in got if r is not None and r.status == 200]
    refused = [r for r in got if r is not None and r.status == 429]
    assert len(ok) >= 3, [r and r.status for r in got]  # the rate and 2 s worth at once
    assert refused, [r and r.status for r in got]
    assert len(refused) <= FLOOD - 21  # 20 s worth wait their turn instead
    for r in refused:
        assert r.json()["error"] == "rate_limited"
        assert r.headers["Retry-After"] == "1" and r.headers["X-Served-By"] == "nginx"
    # The same address's API calls and another address's scrape are not held up.
    assert aux["request"]("GET", "/api/v1/jobs", source="127.61.0.9").status == 200
    assert aux["request"]("GET", "/metrics", source="127.62.0.9").status == 200


def test_metrics_rate_zero_leaves_metrics_unpaced(stack):
    aux = stack.start_nginx(metrics_rate=0)
    got = _flood(aux, "127.63.0.9", timeout=60)
    assert all(r is not None and r.status == 200 for r in got), [r and r.status for r in got]
