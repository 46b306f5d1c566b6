"""/metrics through nginx: every instance tells the same story."""
import re

from tests.support.procs import wait_until


def _metrics_by_instance(stack):
    """One /metrics scrape from each instance (found by varying the /24)."""
    seen = {}
    for x in range(1, 60):
        r = stack.get("/metrics", source="127.0.%d.3" % x)
        assert r.status == 200
        seen.setdefault(r.headers["X-Served-By"], r.body.decode())
        if len(seen) == len(stack.instances):
            break
    return seen


def _value(text, pattern):
    m = re.search(r"^%s (\S+)$" % re.escape(pattern), text, re.M)
    return float(m.group(1)) if m else None


def test_metrics_agree_across_instances(stack):
    job = stack.post("/api/v1/jobs", {"name": "metrics", "tasks": {"range": [0, 6]}}).json()["id"]
    got = stack.post("/api/v1/lease", {"worker": "m", "job": job, "max_tasks": 4}).json()
    stack.post("/api/v1/leases/%s/complete" % got["lease"]["id"],
               {"results": [{"id": t["id"], "ok": True} for t in got["tasks"]]})
    def leased(scrapes):
        return {name: _value(text, "jobmaster_tasks_total{event=\"leased\"}")
                for name, text in scrapes.items()}

    # Per-process counters are summed over every process of the stack. A
    # process writes its task counts at most once a second, and before it
    # answers a scrape: once each has been scraped, all agree.
    scrapes = wait_until(lambda: (lambda s: s if len(s) > 1 and len(set(leased(s).values())) == 1
                                  else None)(_metrics_by_instance(stack)),
                         timeout=20, what="agreeing scrapes from two instances")
    done = 'jobmaster_job_tasks{job="%s",name="metrics",state="done"}' % job
    pending = 'jobmaster_job_tasks{job="%s",name="metrics",state="pending"}' % job
    for text in scrapes.values():
        assert _value(text, done) == 4 and _value(text, pending) == 2
    assert list(leased(scrapes).values())[0] >= 4, leased(scrapes)
