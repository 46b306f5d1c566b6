"""The console with the archive on (the real stack and nx-27017, the MongoDB
stand-in): a job deleted from Redis is listed from MongoDB and opened with
its counts, outcome, dead tasks and results (paged, and downloaded equal to
the API's), and the task inspector lists a task's failed attempts with
their workers and errors."""
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_TOKEN, WORKER_TOKEN, admin
from tests.support.mongo import start_mongo
from tests.support.procs import wait_until
from tests.support.stack import start_stack


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """The browser tests' stack, with an archive whose drainers look at idle
    jobs often (a test waits for an attempt to reach MongoDB, never sleeps)."""
    mongo = start_mongo(tmp_path_factory.mktemp("browser-mongo"))
    try:
        st = start_stack(tmp_path_factory.mktemp("browser-archive-stack"), instances=2, env={
            "JOBMASTER_ADMIN_TOKENS": ADMIN_TOKEN, "JOBMASTER_WORKER_TOKENS": WORKER_TOKEN,
            "JOBMASTER_MONGO_URL": mongo.url, "JOBMASTER_ARCHIVE_IDLE_SECONDS": "0.1",
            "JOBMASTER_WAIT_SECONDS": "0.3"})
        try:
            yield st
        finally:
            st.stop()
    finally:
        mongo.stop()


def _worker(web, method, path, body=None):
    return web.request(method, "/api/v1" + path, body,
                       headers={"Authorization": "Bearer " + WORKER_TOKEN})


def _run(web, job, worker, fail=lambda t: False):
    """Lease the job's tasks as ``worker`` until none is left; a task for
    which ``fail`` is true fails with an error naming it and the worker."""
    for _ in range(1000):
        got = _worker(web, "POST", "/lease", {"worker": worker, "job": job, "max_tasks": 50}).json()
        if got["status"] != "ok":
            return got["status"]
        results = [{"id": t["id"], "ok": False, "error": "task %d broke on %s" % (t["id"], worker)}
                   if fail(t) else {"id": t["id"], "ok": True, "result": {"twice": t["payload"] * 2}}
                   for t in got["tasks"]]
        r = _worker(web, "POST", "/leases/%s/complete" % got["lease"]["id"], {"results": results})
        assert r.status == 200, r.body
    raise AssertionError("the job never finished")


def test_an_archived_job_is_opened_from_mongodb_after_delete(page, web):
    job = admin(web, "POST", "/jobs", {"name": "archived-from-the-page", "tasks": {"range": [0, 120]},
                                       "batch_size": 50, "max_attempts": 1}).json()["id"]
    assert _run(web, job, "pod-arch", fail=lambda t: t["id"] % 40 == 7) == "done"
    deleted = admin(web, "DELETE", "/jobs/" + job).json()
    assert deleted == {"id": job, "deleted": True, "archived": True}
    assert admin(web, "GET", "/jobs/" + job).json()["archived"] is True
    page.goto("/")
    expect(page.locator("#conn-text")).to_have_text("Live")
    expect(page.locator("#jobs-body tr[data-id='%s']" % job)).to_have_count(0)
    page.select_option("#job-state", "archived")
    row = page.locator("#jobs-body tr[data-id='%s']" % job)
    expect(row).to_contain_text("117 / 120 done")
    expect(row.locator(".actions button")).to_have_count(0)   # nothing to act on
    expect(page.locator("#jobs-summary")).to_contain_text("archived job")
    row.locator(".job-name").click()
    expect(page.locator("#detail-name")).to_have_text("archived-from-the-page")
    expect(page.locator("#detail-archived")).to_be_visible()
    expect(page.locator("#detail-state")).to_have_text("completed")
    expect(page.locator(".stat-done dd")).to_have_text("117")
    expect(page.locator(".stat-outcome dd")).to_have_text("partial")
    expect(page.locator("#btn-retry-dead")).to_be_hidden()
    expect(page.locator("#chart")).to_be_hidden()
    expect(page.locator("#fleet-form")).to_be_hidden()
    # Its dead tasks, from the archive, with their errors (and no Retry).
    expect(page.locator("#dead-body tr")).to_have_count(3)
    expect(page.locator("#dead-body tr[data-task='47']")).to_contain_text("task 47 broke on pod-arch")
    expect(page.locator("#dead-body .dead-retry").first).to_be_hidden()
    # A task of it in the inspector, from the archive alone.
    page.fill("#task-id", "47")
    page.click("#task-go")
    expect(page.locator("#task-kv [data-key=State]")).to_have_text("dead")
    expect(page.locator("#task-history")).to_contain_text("task 47 broke on pod-arch")
    page.fill("#task-id", "60")
    page.click("#task-go")
    expect(page.locator("#task-kv [data-key=State]")).to_have_text("done")
    expect(page.locator("#task-result")).to_contain_text('"twice": 120')
    # Its results: paged, then downloaded equal to the API's.
    page.click("#results-section > summary")
    expect(page.locator("#results-body tr")).to_have_count(50)
    expect(page.locator("#results-body tr").first).to_have_attribute("data-task", "0")
    page.click("#results-next")
    # (7 and 47 failed for good: the first page ends at 51)
    expect(page.locator("#results-body tr").first).to_have_attribute("data-task", "52")
    expect(page.locator("#results-body tr[data-task='60']")).to_contain_text('"twice": 120')
    with page.expect_download() as got:
        page.click("#results-download")
    with open(got.value.path(), "rb") as fh:
        downloaded = fh.read()
    api = admin(web, "GET", "/jobs/%s/results" % job)
    assert api.status == 200 and downloaded == api.body
    assert len(downloaded.splitlines()) == 117


def test_the_inspector_lists_a_tasks_failed_attempts_from_the_archive(page, web):
    job = admin(web, "POST", "/jobs", {"name": "attempts", "tasks": {"items": ["only"]},
                                       "batch_size": 1, "max_attempts": 3}).json()["id"]
    for pod in ("pod-a", "pod-b"):
        got = _worker(web, "POST", "/lease", {"worker": pod, "job": job}).json()
        _worker(web, "POST", "/leases/%s/complete" % got["lease"]["id"], {"results": [
            {"id": 0, "ok": False, "error": "%s says no\n  at line %d" % (pod, len(pod))}]})

    def archived():
        return len(admin(web, "GET", "/jobs/%s/attempts?task=0" % job).json()["attempts"]) == 2

    wait_until(archived, timeout=20, interval=0.1, what="both attempts in MongoDB")
    page.goto("/#/jobs/" + job)
    expect(page.locator("#detail-name")).to_have_text("attempts")
    page.fill("#task-id", "0")
    page.click("#task-go")
    expect(page.locator("#task-kv [data-key=State]")).to_have_text("pending")
    rows = page.locator("#task-history tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("pod-a")
    expect(rows.nth(0)).to_contain_text("pod-a says no")
    expect(rows.nth(0)).to_contain_text("failed")
    expect(rows.nth(1)).to_contain_text("pod-b")
    expect(rows.nth(1)).to_contain_text("pod-b says no")
    expect(page.locator("#task-note")).to_contain_text("from the archive")
    # The third attempt succeeds: the two failures stay listed before it.
    assert _run(web, job, "pod-c") == "done"
    wait_until(lambda: admin(web, "GET", "/jobs/%s/tasks/0" % job).json()["result"],
               timeout=20, interval=0.1, what="the result in MongoDB")
    page.click("#task-go")
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_contain_text("pod-c")
    expect(rows.nth(2)).to_contain_text("ok")
    expect(page.locator("#task-kv [data-key=State]")).to_have_text("done")
    expect(page.locator("#task-kv [data-key=Attempts]")).to_have_text("3")
    expect(page.locator("#task-kv [data-key='Failed attempts']")).to_have_text("2")
    expect(page.locator("#task-result")).to_contain_text("twice")
