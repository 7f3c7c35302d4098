"""A portal link in the real dashboard: made from a failed invoice on the failed-invoices page, opened (the
sandbox's portal page), and followed back to the dashboard through the return URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from lib.db import get_engine, migrate
from lib.models import AuditLog
from tests.portal.helpers import make_configuration
from tests.utils import factories
from tests.utils.browser import browser_page, dashboard, screenshot, wait_idle
from tests.utils.net import free_port

pytestmark = [pytest.mark.browser]


def test_link_from_a_failed_invoice_opens_the_portal_and_returns(sandbox: Any, tmp_path: Path) -> None:
    make_configuration(sandbox)
    cust = sandbox.client.v1.customers.create(params={"name": "Marie Curie", "email": "marie@example.com"})
    db_url = f"sqlite:///{tmp_path / 'cache.db'}"
    migrate(db_url)
    engine = get_engine(db_url)
    with Session(engine) as session:
        factories.make_customer(session, id=cust.id, name="Marie Curie", email="marie@example.com")
        factories.make_failed_invoice(session, cust.id, amount_due=4200, customer_email="marie@example.com")
    port = free_port()
    back_to = f"http://127.0.0.1:{port}/failed-invoices"
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": sandbox.url, "STRIPE_API_KEY": sandbox.key,
           "PORTAL_RETURN_URL": back_to, "PORTAL_CONFIGURATION_ID": ""}

    with dashboard(env, port=port) as url, browser_page() as page:
        page.set_default_timeout(60_000)  # the whole suite runs on 2 busy cores
        page.goto(url + "/failed-invoices")
        wait_idle(page, timeout=60_000)
        page.get_by_role("button", name="Portal link…").click()  # under the worklist
        wait_idle(page, timeout=60_000)
        page.get_by_role("button", name="Make link").click()
        page.get_by_text("Link made at").wait_for()
        wait_idle(page, timeout=60_000)
        link = page.locator("[data-testid='stCode']").first.inner_text().strip()
        # the whole link is on screen, wrapped inside the half-width panel: nothing hidden behind a scroll bar
        shown = page.locator("[data-testid='stCode'] pre").first
        assert shown.evaluate("e => e.scrollWidth <= e.clientWidth"), "the link is cut off on the right"
        assert link.startswith(sandbox.url + "/_sandbox/pages/portal/bps_"), link
        email_text = page.locator("[data-testid='stCode']").nth(1).inner_text()
        assert "Hi Marie Curie" in email_text
        assert link in email_text
        page.get_by_text("right before you send it").wait_for()
        screenshot(page, "portal_link_made")

        page.goto(link)  # what the customer sees
        assert page.locator("#customer").inner_text() == "Marie Curie"
        assert page.locator("#flow").inner_text() == "payment_method_update"
        screenshot(page, "portal_sandbox_page")

        page.locator("#return").click()  # the portal's way back
        page.wait_for_url(back_to)
        wait_idle(page, timeout=60_000)
        page.get_by_role("heading", name="Failed invoices").wait_for()

    with Session(engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.action == "portal_link")).all()
    assert [(r.customer_id, r.flow, r.result) for r in rows] == [(cust.id, "payment_method_update", "succeeded")]
    assert link not in repr([r.model_dump() for r in rows])
    (sent,) = [r for r in sandbox.requests() if r["path"] == "/v1/billing_portal/sessions"]
    assert sent["params"] == {"customer": cust.id, "return_url": back_to,
                              "flow_data": {"type": "payment_method_update"}}
