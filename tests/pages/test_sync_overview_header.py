"""Sync health page, overview, and the header's key-mode banner and freshness warning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib.config import get_settings
from lib.models import utcnow
from tests.utils.apptest import run_app, run_page
from tests.utils.factories import (
    make_customer,
    make_event,
    make_failed_invoice,
    make_subscription,
    make_sync_run,
    make_sync_state,
)


def test_sync_page_shows_runs_errors_cursors_and_webhooks(session: Session) -> None:
    make_sync_run(session, mode="full", counts={"customers": 120, "invoices": 300}, requests=14,
                  started_at=utcnow() - timedelta(hours=2), finished_at=utcnow() - timedelta(hours=2, seconds=-30))
    make_sync_run(session, status="failed", error="Stripe answered 429 too many times; try again later.",
                  started_at=utcnow() - timedelta(minutes=5), finished_at=utcnow() - timedelta(minutes=4))
    make_sync_state(session, "customers", event_cursor="evt_1", event_cursor_created=utcnow() - timedelta(minutes=30),
                    backfill_completed_at=utcnow() - timedelta(days=1))
    make_sync_state(session, "invoices", backfill_cursor="in_123")
    for i in range(3):
        make_event(session, f"cus_{i}", source="webhook", type="customer.updated")
    make_event(session, "cus_old", source="webhook", processed_at=utcnow() - timedelta(days=3))
    make_event(session, "cus_polled", source="events")
    at = run_page("sync.py")
    assert not at.exception, at.exception
    runs = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert list(runs["status"]) == ["failed", "succeeded"]
    assert runs.iloc[1]["objects"] == 420
    assert runs.iloc[1]["requests"] == 14
    assert runs.iloc[1]["seconds"] == 30.0
    assert "429" in runs.iloc[0]["error"]
    assert any("The last run failed" in e.value and "429" in e.value for e in at.error)
    cursors = next(d.value for d in at.dataframe if "resource" in d.value.columns).set_index("resource")
    assert 29 <= cursors.loc["customers", "event cursor age (min)"] <= 31
    assert cursors.loc["invoices", "backfill"] == "in progress"
    assert cursors.loc["customers", "backfill"] == "done"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Received in the last 24 h"] == "3"
    assert metrics["Last received"] == "just now"
    assert at.button(key="sync_refresh")


def test_sync_page_empty_cache_says_what_to_do(db: Engine) -> None:
    at = run_page("sync.py")
    assert not at.exception
    assert any("No sync has run yet" in i.value for i in at.info)


def test_overview_money_per_currency(session: Session) -> None:
    c = make_customer(session, email="x@example.com")
    make_subscription(session, c, mrr=1000)
    make_subscription(session, c, mrr=200000, currency="jpy")
    make_subscription(session, c, mrr=999, status="canceled")
    make_failed_invoice(session, c, amount_due=2500)
    at = run_page("overview.py")
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "200,000 JPY" in text
    assert "10.00 USD" in text
    assert "25.00 USD" in text
    assert {m.label: m.value for m in at.metric}["Customers"] == "1"
    key = get_settings().stripe_api_key
    assert {m.label: m.value for m in at.metric}["Stripe key"] == f"TEST …{key[-4:]}", "last 4 as typed, not upper"


def test_header_shows_test_mode_and_freshness(session: Session) -> None:
    make_sync_run(session, finished_at=utcnow() - timedelta(minutes=3))
    at = run_app()
    assert not at.exception, at.exception
    assert any("TEST MODE" in m.value for m in at.markdown)
    assert any("refreshed 3 min ago" in c.value for c in at.caption)
    assert not [w for w in at.warning if "ache" in w.value or "synced" in w.value]


def test_header_warns_when_cache_is_stale(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_STALE_AFTER_MINUTES", "30")
    get_settings.cache_clear()
    make_sync_run(session, finished_at=utcnow() - timedelta(hours=2))
    at = run_app()
    assert any("2 h ago" in w.value and "older than 30 min" in w.value for w in at.warning)


def test_header_never_synced(db: Engine) -> None:
    at = run_app()
    assert any("never been synced" in w.value for w in at.warning)


def _header_only() -> None:
    from app_pages.components.header import render_header

    render_header()


def test_header_live_mode_banner(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "rk_live_abcdefgh1234")
    get_settings.cache_clear()
    at = AppTest.from_function(_header_only).run()
    banner = " ".join(m.value for m in at.markdown)
    assert "LIVE MODE" in banner
    assert "…1234" in banner
    assert "abcdefgh" not in banner


@pytest.mark.parametrize("name", ["overview.py", "customers.py", "customer_detail.py", "subscriptions.py",
                                  "failed_invoices.py", "sync.py"])
def test_database_down_is_a_clear_message(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    from tests.utils.net import free_port

    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    get_settings.cache_clear()
    at = run_page(name, query={"id": "cus_x"})
    assert not at.exception, at.exception
    assert any("cache database did not answer" in e.value for e in at.error)


def test_overview_counts_the_customers_the_list_shows(session: Session) -> None:
    """Exact counts, never the planner's stale estimate: three live customers and one deleted one read "3"
    on the Overview and on the Customers list alike, after the tables once held many more rows."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE customers"))  # statistics from the rows earlier tests left, then removed
    for i in range(3):
        make_customer(session, email=f"live{i}@example.com")
    make_customer(session, email="gone@example.com", deleted=True)
    overview = run_page("overview.py")
    assert {m.label: m.value for m in overview.metric}["Customers"] == "3"
    customers = run_page("customers.py")
    captions = [c.value for c in customers.caption]
    assert any(c.startswith("3 customer(s)") for c in captions), captions
