"""The dashboard in a real browser: it loads under its CSP with no console
error, and a job created from its form shows up with its progress."""
from playwright.sync_api import expect

from tests.browser.conftest import admin


def test_page_loads_live_with_no_console_error(page):
    page.goto("/")
    expect(page.locator("#conn-text")).to_have_text("Live")
    expect(page.locator("#banner-open")).to_be_hidden()


def test_job_created_from_the_form_is_listed_and_opened(page, web):
    page.goto("/")
    page.click("#btn-new")
    page.fill("#form-new [name=name]", "from-the-form")
    page.fill("#form-new [name=stop]", "25")
    page.click("#form-new-submit")
    expect(page.locator("#detail-name")).to_have_text("from-the-form")
    job_id = page.locator("#detail-id").inner_text()
    doc = admin(web, "GET", "/jobs/" + job_id).json()
    assert doc["name"] == "from-the-form" and doc["counts"]["total"] == 25
    expect(page.locator("#jobs-body tr[data-id='%s']" % job_id)).to_contain_text("0 / 25 done")
