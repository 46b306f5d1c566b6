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

    done = 'jobmaster_job_tasks{job="%s",name="metrics",state="done"}' % job
    pending = 'jobmaster_job_tasks{job="%s",name="metrics",state="pending"}' % job

    def agreeing(scrapes):
        # Per-process counters are summed over every process of the stack. A
        # process writes its task counts at most once a second, and before it
        # answers a scrape; job figures are read at most once per
        # JOBMASTER_METRICS_CACHE_SECONDS per process: within a few seconds
        # every instance tells the same story.
        figures = {(_value(t, done), _value(t, pending)) for t in scrapes.values()}
        if len(scrapes) > 1 and len(set(leased(scrapes).values())) == 1 and figures == {(4, 2)}:
            return scrapes
        return None

    scrapes = wait_until(lambda: agreeing(_metrics_by_instance(stack)),
                         timeout=20, what="agreeing scrapes from two instances")
    assert list(leased(scrapes).values())[0] >= 4, leased(scrapes)
