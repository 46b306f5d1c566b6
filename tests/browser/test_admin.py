"""Schedules and per-job worker tokens from the page (the real stack, no
archive): a schedule created with its cron, zone and job template and
deleted again; a token issued, shown once and used by a worker, then
revoked; the server's validation messages next to their fields; and,
without an archive, no archived view and a word on where attempts are
kept."""
import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.conftest import admin


def _schedules(web):
    return {s["id"]: s for s in admin(web, "GET", "/schedules").json()["schedules"]}


def test_a_schedule_is_created_and_deleted_from_the_page(page, web):
    page.console.allow(r"status of 400")  # the bad inputs below, on purpose
    page.on("dialog", lambda d: d.accept())
    page.goto("/#/schedules")
    expect(page.locator("#schedules-page")).to_be_visible()
    expect(page.locator("#jobs-card")).to_be_hidden()
    form = page.locator("#form-schedule")
    form.locator("[name=name]").fill("nightly-from-the-page")
    form.locator("[name=cron]").fill("30 2 * *")
    page.click("#form-schedule-submit")
    expect(form.locator(".field-error[data-for=cron]")).to_contain_text("body.cron")
    form.locator("[name=cron]").fill("30 2 * * *")
    form.locator("[name=timezone]").fill("Mars/Olympus")
    page.click("#form-schedule-submit")
    expect(form.locator(".field-error[data-for=timezone]")).to_contain_text("unknown time zone")
    form.locator("[name=timezone]").fill("Europe/Paris")
    form.locator("[name=job]").fill('{"name": "nightly", "tasks": {"range": [0, 5]}, "batch_size": 0}')
    page.click("#form-schedule-submit")
    expect(form.locator(".field-error[data-for=job]")).to_contain_text("body.job.batch_size")
    assert _schedules(web) == {}   # nothing was made of the bad ones
    form.locator("[name=job]").fill('{"name": "nightly", "tasks": {"range": [0, 5]}, "batch_size": 2}')
    page.click("#form-schedule-submit")
    row = page.locator("#schedules-body tr", has_text="nightly-from-the-page")
    expect(row).to_contain_text("30 2 * * *")
    expect(row).to_contain_text("Europe/Paris")
    expect(form.locator(".field-error")).to_have_count(0)
    (sid, s), = _schedules(web).items()
    assert s["name"] == "nightly-from-the-page" and s["timezone"] == "Europe/Paris"
    assert s["job"] == {"name": "nightly", "tasks": {"range": [0, 5]}, "batch_size": 2}
    slot = datetime.datetime.fromtimestamp(s["next_run"], ZoneInfo("Europe/Paris"))
    assert (slot.hour, slot.minute) == (2, 30)
    # Run it now: a job from its template, linked from the row.
    row.locator(".sched-run").click()
    expect(row.locator("a")).to_have_count(1)
    made = _schedules(web)[sid]["last_job"]
    assert admin(web, "GET", "/jobs/" + made).json()["counts"]["total"] == 5
    row.locator(".sched-delete").click()
    expect(page.locator("#schedules-body tr[data-schedule='%s']" % sid)).to_have_count(0)
    expect(page.locator("#schedules-empty")).to_be_visible()
    assert _schedules(web) == {}
    assert admin(web, "GET", "/schedules/" + sid).status == 404


def _lease_with(web, token, job):
    return web.request("POST", "/api/v1/lease", {"worker": "pod-with-token", "job": job},
                       headers={"Authorization": "Bearer " + token})


def test_a_job_token_is_issued_used_and_revoked_from_the_page(page, web):
    page.console.allow(r"status of 400")
    page.on("dialog", lambda d: d.accept())
    job = admin(web, "POST", "/jobs", {"name": "tokens", "tasks": {"range": [0, 4]}}).json()["id"]
    page.goto("/#/jobs/" + job)
    expect(page.locator("#detail-name")).to_have_text("tokens")
    form = page.locator("#jobtoken-form")
    form.locator("[name=ttl_seconds]").fill("0")
    page.click("#jobtoken-issue")
    expect(form.locator(".field-error[data-for=ttl_seconds]")).to_contain_text("body.ttl_seconds")
    expect(page.locator("#jobtoken-issued")).to_be_hidden()
    form.locator("[name=ttl_seconds]").fill("3600")
    page.click("#jobtoken-issue")
    expect(page.locator("#jobtoken-issued")).to_be_visible()
    expect(form.locator(".field-error")).to_have_count(0)
    secret = page.locator("#jobtoken-secret").input_value()
    assert secret.startswith("jmt.%s." % job)
    page.click("#jobtoken-copy")
    expect(page.locator("#toast")).to_contain_text("cop")   # copied, or how to copy it
    assert _lease_with(web, secret, job).status == 200
    # Shown once: leaving the job's view forgets it.
    page.click("#tab-jobs")
    page.locator("#jobs-body tr[data-id='%s'] .job-name" % job).click()
    expect(page.locator("#detail-name")).to_have_text("tokens")
    expect(page.locator("#jobtoken-issued")).to_be_hidden()
    page.click("#jobtoken-revoke")
    expect(page.locator("#toast")).to_have_text("Revoked 1 token")
    assert _lease_with(web, secret, job).status == 401


def test_without_an_archive_no_archived_view_and_attempts_are_explained(page, web):
    job = admin(web, "POST", "/jobs", {"name": "no-archive", "tasks": {"range": [0, 1]},
                                       "max_attempts": 2}).json()["id"]
    r = web.request("POST", "/api/v1/lease", {"worker": "pod-x", "job": job},
                    headers={"Authorization": "Bearer browser-worker-token"})
    web.request("POST", "/api/v1/leases/%s/complete" % r.json()["lease"]["id"],
                {"results": [{"id": 0, "ok": False, "error": "no luck"}]},
                headers={"Authorization": "Bearer browser-worker-token"})
    page.goto("/#/jobs/" + job)
    expect(page.locator("#conn-text")).to_have_text("Live")
    expect(page.locator("#opt-archived")).to_be_disabled()
    expect(page.locator("#opt-archived")).to_be_hidden()
    page.fill("#task-id", "0")
    page.click("#task-go")
    expect(page.locator("#task-kv [data-key='Failed attempts']")).to_have_text("1")
    expect(page.locator("#task-note")).to_contain_text("kept only with the archive")
