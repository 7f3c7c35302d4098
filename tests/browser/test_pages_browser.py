"""The dashboard pages in a real browser, on a cache synced from a seeded sandbox.

The sandbox is seeded through the SDK (`python -m sandbox.seed`), synced into SQLite with `lib.sync.run_sync`,
and served by the real `streamlit run server.py`; Debian's chromium does one real task per page and saves
a screenshot of each page under test-artifacts/.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import create_engine, text

from lib.config import get_settings
from tests.utils.browser import ROOT, browser_page, dashboard, screenshot, wait_idle
from tests.utils.sandbox import SandboxServer

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("pages_browser")]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A seeded sandbox (60 customers, a year of renewals and declines) synced into a fresh SQLite cache."""
    server = SandboxServer.start()
    try:
        seed = subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", server.url, "--customers", "60",
                               "--reset", "--api-key", server.key], cwd=ROOT, capture_output=True, text=True,
                              timeout=180)
        assert seed.returncode == 0, seed.stderr[-2000:]
        db_url = f"sqlite:///{tmp_path_factory.mktemp('pages_browser') / 'cache.db'}"
        env = {"STRIPE_API_KEY": server.key, "STRIPE_API_BASE": server.url, "DATABASE_URL": db_url}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            get_settings.cache_clear()
            from lib.sync import run_sync

            result = run_sync(mode="full")
            assert result.status == "succeeded", result.error
        get_settings.cache_clear()
        yield env
    finally:
        server.stop()


def one(db_url: str, sql: str, **params: str) -> tuple:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(text(sql), params).first())
    finally:
        engine.dispose()


def select_option(page: Page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)



def download_csv(page: Page, label: str, tries: int = 3) -> str:
    """Click a deferred download button until the file arrives (a person clicks again); the path of the file.

    A first click sometimes downloads nothing in full runs under load (seen in CI, never alone; the cause is not
    known). What the page showed is printed with each retry so that a real failure names itself; after `tries`
    clicks without a file, the last timeout is raised.
    """
    for attempt in range(1, tries + 1):
        try:
            with page.expect_download(timeout=20_000) as download:
                page.get_by_role("button", name=label).click()
            return str(download.value.path())
        except PlaywrightTimeout:
            print(f"download {label!r}: no file after click {attempt}; the page showed:\n"
                  f"{page.locator('[data-testid=stMain]').inner_text()[-2000:]}")
            if attempt == tries:
                raise
            wait_idle(page)
    raise AssertionError("unreachable")

def test_pages_do_real_work(seeded: dict[str, str]) -> None:
    db_url = seeded["DATABASE_URL"]
    # a customer the email search finds alone: the search also matches other addresses that start with the
    # typed one, and the same mailbox without its plus-tag — the seed plants such duplicates, and which
    # customer gets the lowest id depends on its threads' timing
    cid, email, name = one(db_url, """
        SELECT c.id, c.email, c.name FROM customers c
        WHERE c.email IS NOT NULL AND c.name IS NOT NULL AND c.deleted = 0
          AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.id <> c.id
                          AND (o.email_canonical = c.email_canonical
                               OR substr(o.email_normalized, 1, length(c.email_normalized)) = c.email_normalized))
        ORDER BY c.id LIMIT 1""")
    code, n_code = one(db_url, """
        SELECT coalesce(decline_code, failure_code) AS code, count(*) FROM invoices
        WHERE ((status = 'open' AND attempt_count > 0) OR status = 'uncollectible')
          AND coalesce(decline_code, failure_code) IS NOT NULL
        GROUP BY code ORDER BY count(*) DESC, code LIMIT 1""")

    with dashboard(seeded) as base, browser_page() as page:
        page.goto(base + "/")
        wait_idle(page, timeout=60_000)
        assert page.get_by_text("TEST MODE").is_visible()
        screenshot(page, "pages_overview")

        # Customers: find a customer by their email typed in capitals, then open their detail
        page.goto(base + "/customers")
        wait_idle(page)
        box = page.get_by_label("Search", exact=True).and_(page.locator("input"))
        box.fill(email.upper())
        box.press("Enter")
        wait_idle(page)
        try:
            page.get_by_text("1 customer(s)").wait_for()
        except Exception:  # say what the page showed instead (this step failed twice in full runs, not alone)
            screenshot(page, "pages_customers_search_failed")
            shown = page.inner_text("[data-testid='stMain']")[:2000]
            raise AssertionError(f"searching {email.upper()!r} did not show one customer; the page showed:\n"
                                 f"{shown}") from None
        screenshot(page, "pages_customers")
        page.get_by_role("link", name=f"Open {email}").click()
        page.wait_for_url(f"**/customer?id={cid}")
        wait_idle(page)
        page.get_by_role("heading", name=name).wait_for()
        assert page.get_by_role("heading", name="Subscriptions", exact=False).first.is_visible()
        screenshot(page, "pages_customer_detail")

        # Failed invoices: filter by decline code and download the CSV of the filtered worklist
        page.goto(base + "/failed-invoices")
        wait_idle(page)
        select_option(page, "Decline code", code)
        page.get_by_text(f"{n_code} failed invoice(s)").wait_for()
        wait_idle(page)  # the rerun goes on below the count: a click on the old run's button downloads nothing
        rows = list(csv.DictReader(io.StringIO(Path(download_csv(page, "Download CSV (all pages)")).read_text())))
        assert len(rows) == n_code
        assert {r["Decline code"] for r in rows} == {code}
        assert all(r["Meaning"] for r in rows)
        assert all(r["Suggested next step"] for r in rows)
        page.get_by_role("heading", name="Failed invoices").scroll_into_view_if_needed()
        screenshot(page, "pages_failed_invoices")

        # Follow-up: change the status of the first invoice of the worklist (the editor's default) and add a note
        page.locator("[data-testid='stRadio']").get_by_text("contacted", exact=True).click()
        wait_idle(page)
        note = page.locator("textarea[aria-label='Note']")
        note.fill("Called the customer; new card coming")
        note.press("Tab")
        wait_idle(page)
        page.get_by_role("button", name="Save follow-up").click()
        wait_idle(page)
        page.get_by_text("saved", exact=False).first.wait_for()
        screenshot(page, "pages_followup")
        saved = one(db_url, "SELECT invoice_id, status, note, updated_by FROM invoice_followups")
        assert saved == (rows[0]["Invoice"], "contacted", "Called the customer; new card coming", "demo@localhost")

        for path, shot in (("/subscriptions", "pages_subscriptions"), ("/sync", "pages_sync")):
            page.goto(base + path)
            wait_idle(page)
            assert not page.locator("[data-testid='stException']").count()
            screenshot(page, shot)
