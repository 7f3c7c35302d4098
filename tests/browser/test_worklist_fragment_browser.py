"""The Failed invoices worklist reruns on its own (a fragment) in the real dashboard: a follow-up saved there
still moves what depends on it elsewhere on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from lib.db import get_engine, migrate
from tests.utils import factories
from tests.utils.browser import browser_page, dashboard, wait_idle

pytestmark = [pytest.mark.browser]


def test_a_follow_up_saved_under_a_follow_up_filter_updates_the_summary(sandbox: Any, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate(db_url)
    with Session(get_engine(db_url)) as session:
        for n in range(2):
            cust = factories.make_customer(session, id=f"cus_frag{n}", email=f"frag{n}@example.com")
            factories.make_failed_invoice(session, cust, amount_due=4200 + n)
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": sandbox.url, "STRIPE_API_KEY": sandbox.key}

    with dashboard(env) as url, browser_page() as page:
        page.set_default_timeout(60_000)  # the whole suite runs on 2 busy cores
        page.goto(url + "/failed-invoices?fi_followup=open")  # only invoices whose follow-up is still open
        wait_idle(page, timeout=60_000)
        page.get_by_text("2 invoice(s)", exact=True).wait_for()  # the summary's count under "At risk · USD"
        page.locator("[data-testid='stRadio']").get_by_text("contacted", exact=True).click()  # the first row's
        wait_idle(page, timeout=60_000)
        page.get_by_role("button", name="Save follow-up").click()
        page.get_by_text("saved", exact=False).first.wait_for()
        wait_idle(page, timeout=60_000)
        # the saved invoice left the "open" list: the summary above the worklist counts one invoice now
        page.get_by_text("1 invoice(s)", exact=True).wait_for()
        assert page.get_by_text("2 invoice(s)", exact=True).count() == 0
