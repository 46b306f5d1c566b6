"""/metrics under a flood: made once per window per process, and
per-job series shown only as far as the scraper's token allows."""
import pytest

from app import create_app
from tests.helpers import make_job

ADMIN, WORKER, METRICS = "adm", "wrk", "prom"


def _app(redis_url, **config):
    return create_app({"REDIS_URL": redis_url, "ADMIN_TOKENS": ADMIN, "WORKER_TOKENS": WORKER,
                       **config})


def _count_status_scripts(app):
    """A list that gets one entry per status script run."""
    scripts = app.extensions["jobmaster.backend"].scripts
    calls, real = [], scripts.run

    def run(name, keys, args, client=None):
        if name == "status":
            calls.append(keys[0])
        return real(name, keys, args, client=client)

    scripts.run = run
    return calls


@pytest.mark.parametrize("window,reads", [(60.0, 1), (0.0, 10)])
def test_scrapes_within_the_window_read_the_jobs_once(redis_url, window, reads):
    app = _app(redis_url, METRICS_CACHE_SECONDS=window)
    try:
        c = app.test_client()
        h = {"Authorization": "Bearer " + ADMIN}
        jobs = [make_job(c, total=3, headers=h)["id"] for _ in range(3)]
        calls = _count_status_scripts(app)
        texts = [c.get("/metrics", headers=h).get_data(as_text=True) for _ in range(10)]
        metas = [app.extensions["jobmaster.backend"].keys.job_key(j, "meta") for j in jobs]
        assert sorted(calls) == sorted(metas * reads)
        assert all('jobmaster_tasks{state="total"} 9' in t for t in texts)
        # the process counters too: one text per window (each scrape counts itself)
        assert len(set(texts)) == (1 if reads == 1 else 10)
    finally:
        app.extensions["jobmaster.backend"].close()


def _scrape(c, token=None):
    r = c.get("/metrics", headers={"Authorization": "Bearer " + token} if token else {})
    return r.status_code, r.get_data(as_text=True)


@pytest.mark.parametrize("metrics_token", ["", METRICS])
def test_job_names_and_ids_only_with_a_token(redis_url, metrics_token):
    app = _app(redis_url, METRICS_CACHE_SECONDS=0.0, METRICS_TOKEN=metrics_token)
    try:
        c = app.test_client()
        job = make_job(c, name="secret-name", total=2, headers={"Authorization": "Bearer " + ADMIN})
        named = 'jobmaster_job_tasks{job="%s",name="secret-name",state="total"} 2' % job["id"]
        bare = 'jobmaster_job_tasks{job="%s",state="total"} 2' % job["id"]
        full = [ADMIN] + ([METRICS] if metrics_token else [])
        for token in full:
            status, text = _scrape(c, token)
            assert status == 200 and named in text
        for token in (None, WORKER):
            status, text = _scrape(c, token)
            assert status == 200 and "secret-name" not in text
            assert 'jobmaster_tasks{state="total"} 2' in text
            if metrics_token:  # a metrics token is configured: nothing per job without it
                assert job["id"] not in text and "jobmaster_job_tasks" not in text
            else:
                assert bare in text
        assert _scrape(c, "nonsense")[0] == 401
    finally:
        app.extensions["jobmaster.backend"].close()
