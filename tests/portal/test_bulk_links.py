"""Finance's bulk links against the sandbox: one 'update payment method' link per customer of the selected
failed invoices, paced to the request budget, every attempt audited, a CSV with a valid link per row."""

from __future__ import annotations

import bisect
import csv
import io
import urllib.request
from typing import Any

import pytest
from sqlmodel import Session

from lib import portal
from lib.config import get_settings
from lib.portal import PortalError
from tests.portal.helpers import FINANCE, STAFF, audit_rows, portal_requests
from tests.utils import factories


def seed_failed_invoices(sandbox: Any, session: Session, n: int) -> list[str]:
    """n customers made through the SDK, each with one failed invoice in the cache; returns invoice ids."""
    invoice_ids = []
    for i in range(n):
        cust = sandbox.client.v1.customers.create(params={"name": f"Customer {i:03d}",
                                                          "email": f"c{i:03d}@example.com"})
        factories.make_customer(session, id=cust.id, name=f"Customer {i:03d}", email=f"c{i:03d}@example.com")
        inv = factories.make_failed_invoice(session, cust.id, amount_due=1000 + i, currency="eur" if i % 2 else "usd")
        invoice_ids.append(inv.id)
    return invoice_ids


def busiest_window(sent: list[dict[str, Any]], seconds: float) -> int:
    """The most requests the sandbox received within any sliding window of `seconds`."""
    times = sorted(r["time"] for r in sent)
    return max(bisect.bisect_right(times, t + seconds) - i for i, t in enumerate(times))


def parse(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


def test_200_invoices_within_the_request_budget(sandbox: Any, session: Session, configured: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_REQUESTS_PER_SECOND", "50")
    get_settings.cache_clear()
    invoice_ids = seed_failed_invoices(sandbox, session, 200)
    sandbox.clear_requests()
    seen: list[tuple[int, int]] = []

    result = portal.bulk_links(invoice_ids, user=FINANCE, session=session, progress=lambda d, t: seen.append((d, t)))

    assert (result.made, result.failed) == (200, 0)
    sent = portal_requests(sandbox)
    assert len(sent) == 200
    assert {r["status"] for r in sent} == {200}
    # Arrival times jitter when the machine is busy, so look at 2-second windows: at most 2 × budget (+2 for
    # the bucket's edges); without pacing all 200 would arrive within a second or so.
    assert busiest_window(sent, 2.0) <= 2 * 50 + 2, "never more than the budget per second"
    assert sent[-1]["time"] - sent[0]["time"] >= 199 / 50 * 0.95, "paced, not sent in one burst"
    assert len({r["idempotency_key"] for r in sent}) == 200
    assert all(r["params"]["flow_data"] == {"type": "payment_method_update"} for r in sent)
    assert seen[-1] == (200, 200)
    assert len(seen) == 200

    rows = parse(result.csv())
    assert len(rows) == 200
    assert list(rows[0]) == [
        "Customer", "Name", "Email", "Amount due", "Currency", "Portal link", "Link made", "Error"]
    assert (rows[0]["Amount due"], rows[0]["Currency"]) == ("10.00", "USD")
    assert (rows[1]["Amount due"], rows[1]["Currency"]) == ("10.01", "EUR")
    assert rows[0]["Link made"].endswith("Z"), "an ISO 8601 time in UTC"
    assert len({r["Portal link"] for r in rows}) == 200
    assert not any(r["Error"] for r in rows)
    for row in (rows[0], rows[-1]):  # the links open the sandbox's portal page
        with urllib.request.urlopen(row["Portal link"], timeout=10) as resp:
            assert resp.status == 200

    links = audit_rows(session)
    assert len(links) == 200
    assert {r.result for r in links} == {"succeeded"}
    assert {r.correlation_id for r in links} == {result.run_id}
    (parent,) = audit_rows(session, "bulk_portal_links")
    assert parent.result == "succeeded"
    assert parent.details["made"] == 200
    assert parent.actor == FINANCE.email
    assert not any(r["Portal link"] in repr(a.model_dump()) for a in links[:5] for r in rows)


def test_one_link_per_customer_with_amounts_summed(sandbox: Any, session: Session, configured: str) -> None:
    cust = sandbox.client.v1.customers.create(params={"name": "Two Bills", "email": "two@example.com"})
    factories.make_customer(session, id=cust.id, name="Two Bills", email="two@example.com")
    a = factories.make_failed_invoice(session, cust.id, amount_due=1500)
    b = factories.make_failed_invoice(session, cust.id, amount_due=2500)
    result = portal.bulk_links([a.id, b.id, "in_gone"], user=FINANCE, session=session)
    (row,) = parse(result.csv())
    assert (row["Customer"], row["Amount due"], row["Currency"]) == (cust.id, "40.00", "USD")
    assert row["Portal link"]
    assert result.missing_invoices == ["in_gone"]
    assert len(portal_requests(sandbox)) == 1


def test_rate_limited_requests_are_retried_with_the_same_key(sandbox: Any, session: Session, configured: str) -> None:
    invoice_ids = seed_failed_invoices(sandbox, session, 10)
    sandbox.faults(rate_limit=0.3, seed=7)
    sandbox.clear_requests()
    result = portal.bulk_links(invoice_ids, user=FINANCE, session=session)
    assert result.made == 10
    sent = portal_requests(sandbox)
    assert any(r["status"] == 429 for r in sent), "the fault should have hit at least once"
    by_key: dict[str, list[int]] = {}
    for r in sent:
        by_key.setdefault(r["idempotency_key"], []).append(r["status"])
    assert len(by_key) == 10
    assert all(statuses[-1] == 200 for statuses in by_key.values())
    assert result.requests >= len(sent)


def test_portal_not_configured_stops_the_run_and_says_why(sandbox: Any, session: Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_REQUESTS_PER_SECOND", "4")  # 2 requests in flight: the run stops at the first answer
    get_settings.cache_clear()
    invoice_ids = seed_failed_invoices(sandbox, session, 20)
    sandbox.clear_requests()
    result = portal.bulk_links(invoice_ids, user=FINANCE, session=session)
    assert result.made == 0
    assert result.failed == 20
    assert "Customer portal" in result.error
    assert "PORTAL_CONFIGURATION_ID" in result.error
    assert len(portal_requests(sandbox)) == 2
    rows = parse(result.csv())
    assert sum(r["Error"].startswith("Not attempted") for r in rows) == 18
    (parent,) = audit_rows(session, "bulk_portal_links")
    assert parent.result == "failed"
    assert "20 of 20" in parent.error


def test_staff_may_not_make_bulk_links(sandbox: Any, session: Session, configured: str) -> None:
    invoice_ids = seed_failed_invoices(sandbox, session, 2)
    sandbox.clear_requests()
    with pytest.raises(PortalError) as info:
        portal.bulk_links(invoice_ids, user=STAFF, session=session)
    assert info.value.kind == "refused"
    assert "finance or admin" in info.value.message
    assert portal_requests(sandbox) == []
    (row,) = audit_rows(session, "bulk_portal_links")
    assert row.result == "refused"
    assert row.actor == STAFF.email
