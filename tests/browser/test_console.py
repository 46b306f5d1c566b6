"""The operator's console in Chromium, end to end on the real stack: a job
from the form, a local fleet of 4 launched from the page, progress and the
chart moving, pause and resume, a task inspected, one dead task retried,
results downloaded equal to the API's, and never a console error."""
import json
import sys

from playwright.sync_api import expect

from tests.browser.conftest import admin
from tests.support.procs import wait_until

# Task payloads 0..119: every seventh one fails (and, with max_attempts 1,
# dies); the rest print twice their payload after a short pause, so the job
# lasts long enough to be watched, paused and resumed.
COMMAND = [sys.executable, "-c",
           "import sys, time; n = int(sys.argv[1]); time.sleep(0.1);"
           "sys.exit('bad payload %d' % n) if n % 7 == 3 else print(n * 2)", "{}"]


def _status(web, job):
    return admin(web, "GET", "/jobs/" + job).json()


def _chart_done(page):
    return int(page.locator("svg#chart").get_attribute("data-done") or 0)


def _kill_fleet(web, job):
    import os
    import signal

    doc = admin(web, "GET", "/jobs/%s/fleet" % job).json()
    for launch in doc.get("launches", []):
        for p in launch.get("processes", []):
            if p["state"] == "running":
                os.kill(p["pid"], signal.SIGKILL)


def test_the_week_from_the_browser(page, web, tmp_path):
    page.goto("/")
    expect(page.locator("#conn-text")).to_have_text("Live")
    page.click("#btn-new")
    form = page.locator("#form-new")
    # The settings beyond the fixed ones come from the OpenAPI document.
    expect(form.locator("[name=command]")).to_be_visible()
    form.locator("[name=name]").fill("weekly-from-the-page")
    form.locator("[name=stop]").fill("120")
    form.locator("[name=batch_size]").fill("2")
    form.locator("[name=max_attempts]").fill("1")
    form.locator("[name=command]").fill(json.dumps(COMMAND))
    page.click("#form-new-submit")
    expect(page.locator("#detail-name")).to_have_text("weekly-from-the-page")
    job = page.locator("#detail-id").inner_text()
    assert _status(web, job)["settings"]["command"] == COMMAND
    try:
        page.fill("#fleet-workers", "4")
        page.click("#fleet-launch")
        expect(page.locator("#fleet-body tr")).to_have_count(4)
        expect(page.locator("#fleet-summary")).to_contain_text("4 launched")
        # Progress and the chart move while the fleet works.
        wait_until(lambda: _chart_done(page) > 0, timeout=30, interval=0.2, what="the chart moving")
        first = _chart_done(page)
        page.click("#detail-actions button:text-is('Pause')")
        expect(page.locator("#detail-state")).to_have_text("paused")
        paused = _status(web, job)
        assert paused["state"] == "paused" and paused["counts"]["pending"] > 0
        page.screenshot(path=str(tmp_path / "paused.png"))
        page.click("#detail-actions button:text-is('Resume')")
        expect(page.locator("#detail-state")).to_have_text("completed", timeout=60000)
        wait_until(lambda: _chart_done(page) > first, timeout=10, interval=0.2, what="the chart")
        doc = _status(web, job)
        assert doc["counts"]["done"] + doc["counts"]["dead"] == 120 and doc["counts"]["dead"] == 17
        expect(page.locator(".stat-makespan dd")).not_to_have_text("—")
        expect(page.locator(".stat-rate dd")).to_contain_text("avg")
        # Inspect a dead task: its full error text and the worker that ran it.
        expect(page.locator("#dead-body tr")).to_have_count(17)
        page.fill("#task-id", "3")
        page.click("#task-go")
        expect(page.locator("#task-kv [data-key=State]")).to_have_text("dead")
        expect(page.locator("#task-history")).to_contain_text("bad payload 3")
        expect(page.locator("#task-history")).to_contain_text("fleet-")
        expect(page.locator("#task-payload")).to_have_text("3")
        page.fill("#task-id", "4")
        page.click("#task-go")
        expect(page.locator("#task-result")).to_have_text("8")
        # Retry one dead task: only it goes back to pending.
        page.click("#dead-body tr[data-task='10'] .dead-retry")
        expect(page.locator("#dead-body tr")).to_have_count(16)
        after = _status(web, job)
        assert after["counts"]["dead"] == 16 and after["state"] == "running"
        assert after["counts"]["pending"] + after["counts"]["leased"] + after["counts"]["done"] == 104
        # Results: the first page in the page, then the download equals the API's.
        page.click("#results-section > summary")
        expect(page.locator("#results-body tr").first).to_have_attribute("data-task", "0")
        with page.expect_download() as got:
            page.click("#results-download")
        with open(got.value.path(), "rb") as fh:
            downloaded = fh.read()
        assert downloaded == admin(web, "GET", "/jobs/%s/results" % job).body
        assert len(downloaded.splitlines()) == 103
    finally:
        _kill_fleet(web, job)


def test_the_servers_validation_message_shows_next_to_the_field(page):
    page.console.allow(r"status of 400")  # the browser logs the server's answer
    page.goto("/")
    page.click("#btn-new")
    page.fill("#form-new [name=name]", "bad")
    page.fill("#form-new [name=stop]", "10")
    page.fill("#form-new [name=command]", "[]")
    page.click("#form-new-submit")
    err = page.locator("#form-new .field-error[data-for=command]")
    expect(err).to_contain_text("body.command")
    expect(page.locator("#dlg-new")).to_be_visible()


def test_search_and_state_filter(page, web):
    a = admin(web, "POST", "/jobs", {"name": "alpha-search", "tasks": {"range": [0, 3]}}).json()["id"]
    b = admin(web, "POST", "/jobs", {"name": "beta-search", "tasks": {"range": [0, 3]}}).json()["id"]
    admin(web, "POST", "/jobs/%s/cancel" % b)
    page.goto("/")
    expect(page.locator("#jobs-body tr[data-id='%s']" % a)).to_be_visible()
    page.fill("#job-search", "alpha-sea")
    expect(page.locator("#jobs-body tr[data-id='%s']" % b)).to_have_count(0)
    expect(page.locator("#jobs-body tr[data-id='%s']" % a)).to_be_visible()
    page.fill("#job-search", "")
    page.select_option("#job-state", "cancelled")
    expect(page.locator("#jobs-body tr[data-id='%s']" % a)).to_have_count(0)
    expect(page.locator("#jobs-body tr[data-id='%s']" % b)).to_be_visible()


def test_workers_page_across_jobs(page, web):
    job = admin(web, "POST", "/jobs", {"name": "w-page", "tasks": {"range": [0, 4]}}).json()["id"]
    r = web.request("POST", "/api/v1/lease", {"worker": "pod-on-the-page", "job": job},
                    headers={"Authorization": "Bearer browser-worker-token"})
    assert r.status == 200
    page.goto("/#/workers")
    row = page.locator("#allworkers-body tr[data-worker='pod-on-the-page']")
    expect(row).to_contain_text("w-page")
    expect(row).to_contain_text("working")
    expect(page.locator("#jobs-card")).to_be_hidden()


def test_kubernetes_dry_run_manifest(web):
    job = admin(web, "POST", "/jobs", {"name": "k8s", "tasks": {"range": [0, 4]},
                                       "command": ["./sim", "{}"]}).json()["id"]
    r = admin(web, "GET", "/jobs/%s/fleet?dry_run=1&workers=25&launcher=kubernetes" % job)
    assert r.status == 200
    secret, kjob = r.json()["manifest"]["objects"]
    assert kjob["spec"]["parallelism"] == 25 and secret["kind"] == "Secret"
    container = kjob["spec"]["template"]["spec"]["containers"][0]
    assert any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == secret["metadata"]["name"]
               for e in container["env"])
    assert container["lifecycle"]["preStop"]["exec"]["command"][:3] == ["jobmaster", "worker", "stop"]
    assert b"browser-worker-token" not in r.body
