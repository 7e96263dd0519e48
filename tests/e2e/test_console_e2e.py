"""End to end: the console in a real browser (Debian's chromium, headless, driven by Playwright)
against the chart on the real local cluster, with runner pods doing real syncs. Screenshots of
each page go to test-artifacts/console/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import RECORDS, SLOW_RECORDS
from tests.support.browser import browser, screenshot_path  # noqa: F401
from tests.support.release import Release

pytestmark = [pytest.mark.cluster, pytest.mark.pods]

RUN_TIMEOUT_MS = 240_000


@pytest.fixture
def page(browser: Browser, api: Release) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=api.url, viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    try:
        yield tab
    finally:
        context.close()


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Connections"))).to_be_visible()


def api_get(rel: Release, path: str) -> Any:
    with httpx.Client(base_url=rel.url, headers={"X-API-Key": rel.key}, timeout=30) as c:
        resp = c.get(path)
        resp.raise_for_status()
        return resp.json()


def row(page: Page, name: str) -> Any:
    return page.locator(f'tr[data-connection="{name}"]')


def test_sign_in_refuses_a_wrong_key_then_lists_the_connections(page: Page, api: Release) -> None:
    page.goto("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.screenshot(path=screenshot_path("login"))
    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That key is not accepted.")
    page.get_by_label("API key").fill(api.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Connections"))).to_be_visible()
    for name in ("e2e-mcp-items", "e2e-cli-items", "e2e-slow", "e2e-ui-items", "e2e-broken"):
        expect(row(page, name)).to_be_visible()
    page.get_by_label("Search").fill("slow")
    page.get_by_role("button", name="Filter").click()
    expect(row(page, "e2e-slow")).to_be_visible()
    expect(row(page, "e2e-ui-items")).to_have_count(0)


def test_run_shows_live_progress_and_ends_with_the_apis_row_count(page: Page, api: Release) -> None:
    sign_in(page, api.key)
    row(page, "e2e-ui-items").get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"/ui/tasks/e2e-ui-items-"))
    run_id = page.url.rsplit("/", 1)[1]
    # no reload from here on: the page follows the run from the event stream
    result = page.locator(".result")
    expect(result).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(result).to_have_attribute("data-success", "true")
    status = api_get(api, f"/task_status/{run_id}")
    assert status["result"]["rows_inserted"] == RECORDS
    expect(page.locator(".rows")).to_have_attribute("data-rows", str(RECORDS))
    expect(page.locator(".logs")).not_to_have_text("Nothing yet.")
    page.screenshot(path=screenshot_path("run"), full_page=True)
    page.goto("/ui/")
    expect(row(page, "e2e-ui-items").locator(".rows")).to_have_text(f"{RECORDS:,} rows")


def test_cancel_the_slow_sample_after_live_progress(page: Page, api: Release) -> None:
    sign_in(page, api.key)
    row(page, "e2e-slow").get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"/ui/tasks/e2e-slow-"))
    records = page.locator("[data-records]")
    expect(records).to_be_visible(timeout=RUN_TIMEOUT_MS)  # live progress, pushed
    extracted = int(records.get_attribute("data-records") or 0)
    assert 0 < extracted < SLOW_RECORDS
    page.screenshot(path=screenshot_path("run-live"), full_page=True)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator('[data-phase="Cancelled"]').first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    run_id = page.url.rsplit("/", 1)[1]
    assert api_get(api, f"/task_status/{run_id}")["status"] == "cancelled"


def test_a_failed_runs_error_and_logs_are_shown(page: Page, api: Release) -> None:
    sign_in(page, api.key)
    row(page, "e2e-broken").get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"/ui/tasks/e2e-broken-"))
    expect(page.locator('[data-phase="Failed"]').first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    run_id = page.url.rsplit("/", 1)[1]
    error = api_get(api, f"/task_status/{run_id}")["error"]
    assert error
    expect(page.get_by_role("alert")).to_contain_text(error[:60])
    expect(page.locator(".logs")).not_to_have_text("Nothing yet.")
    page.screenshot(path=screenshot_path("run-failed"), full_page=True)


def test_history_filters(page: Page, api: Release) -> None:
    sign_in(page, api.key)
    page.get_by_role("link", name="History").click()
    page.get_by_label("Outcome").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    rows = page.locator("tr[data-status]")
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"failed"}
    expect(page.get_by_text("e2e-broken").first).to_be_visible()
    page.get_by_label("Outcome").select_option("succeeded")
    page.get_by_label("Connection").fill("e2e-ui")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"succeeded"}
    page.screenshot(path=screenshot_path("history"), full_page=True)
    # after a run, a cancel and a failure: the README's picture
    page.get_by_role("link", name="Connections").click()
    expect(row(page, "e2e-broken").locator(".phase-failed")).to_be_visible()
    page.screenshot(path=screenshot_path("connections"))


def test_csrf_and_sign_out(page: Page, api: Release) -> None:
    sign_in(page, api.key)
    forged = page.request.post("/ui/run_selected", form={"csrf": "forged"})
    assert forged.status == 403
    missing = page.request.post("/ui/connections/x/e2e-ui-items/run")
    assert missing.status == 403
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto("/ui/history")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
