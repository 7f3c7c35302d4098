"""Customer detail: everything support needs on one page, Stripe Dashboard links, clear messages for bad ids."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib.models import utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import (
    make_customer,
    make_event,
    make_failed_invoice,
    make_invoice,
    make_payment_method,
    make_subscription,
)


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The first dataframe on the page that has `column` (plain dataframes carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture
def customer(session: Session) -> dict[str, str]:
    c = make_customer(session, email="ana@example.com", name="Ana Núñez", phone="+1 415 555 0199", balance=-1500,
                      mrr=4900, default_payment_method_id="pm_default_1")
    make_payment_method(session, c, id="pm_default_1", card_brand="mastercard", card_last4="4444",
                        card_exp_month=3, card_exp_year=2030)
    make_payment_method(session, c, card_last4="0005")
    sub = make_subscription(session, c, status="trialing", mrr=4900, cancel_at_period_end=True,
                            trial_end=utcnow() + timedelta(days=5),
                            items=[{"product_name": "Pro", "unit_amount": 4900, "quantity": 2}])
    bad = make_failed_invoice(session, c, amount_due=4900, decline_code="expired_card", subscription_id=sub.id)
    make_invoice(session, c, status="paid", amount_due=4900, created=utcnow() - timedelta(days=31))
    make_event(session, bad.id, type="invoice.payment_failed")
    make_event(session, c.id, type="customer.updated", created=utcnow() - timedelta(days=2))
    return {"id": c.id, "sub": sub.id, "invoice": bad.id}


def test_detail_shows_profile_subscriptions_invoices_cards_and_events(customer: dict[str, str],
                                                                     real_stripe_base: None) -> None:
    at = run_page("customer_detail.py", query={"id": customer["id"]})
    assert not at.exception, at.exception
    assert plain(at.title[0].value) == "Ana Núñez"
    metrics = {m.label: m.value for m in at.metric}
    assert any("ana@example.com" in plain(m.value) and "+1 415 555 0199" in plain(m.value) for m in at.markdown)
    assert metrics["Balance"] == "credit 15.00 USD"
    assert metrics["MRR"] == "49.00 USD"
    assert any("Mastercard •••• 4444" in plain(c.value) for c in at.caption), "default card named"
    subs = table(at, "items")
    assert subs.iloc[0]["status"] == "trialing"
    assert bool(subs.iloc[0]["cancel_at_period_end"])
    assert "Pro × 2" in subs.iloc[0]["items"]
    assert subs.iloc[0]["mrr"] == ""  # a trial has no MRR (MRR_STATUSES): shown empty, not 49.00
    assert subs.iloc[0]["stripe"] == f"https://dashboard.stripe.com/test/subscriptions/{customer['sub']}"
    inv = table(at, "decline")
    failed = inv[inv["id"] == customer["invoice"]].iloc[0]
    assert failed["status"] == "open"
    assert failed["attempts"] == 1
    assert failed["decline"] == "expired_card"
    assert any("The card on file has expired" in m.value for m in at.markdown), "the decline explained"
    assert failed["hosted"].endswith(customer["invoice"])
    assert failed["next_retry"] is not None
    assert metrics["Unpaid on open invoices"] == "49.00 USD"
    cards = table(at, "last4")
    assert set(cards["last4"]) == {"4444", "0005"}
    assert cards[cards["last4"] == "4444"].iloc[0]["default"] == "✓"
    events = table(at, "type")
    assert list(events["type"]) == ["invoice.payment_failed", "customer.updated"]
    assert any(f"dashboard.stripe.com/test/customers/{customer['id']}" in m.value for m in at.markdown)


def test_no_open_in_stripe_link_against_the_sandbox(customer: dict[str, str]) -> None:
    """The tests' settings point STRIPE_API_BASE at a local address: those objects are not in Stripe's Dashboard."""
    at = run_page("customer_detail.py", query={"id": customer["id"]})
    assert not any("Open in Stripe" in m.value for m in at.markdown)


def test_no_stripe_column_links_against_the_sandbox(customer: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": customer["id"]})
    links = [v for d in at.dataframe if "stripe" in d.value.columns for v in d.value["stripe"] if isinstance(v, str)]
    assert links == []


def test_live_key_links_to_the_live_dashboard(real_stripe_base: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from app_pages.components.tables import dashboard_url
    from lib.config import get_settings

    monkeypatch.setenv("STRIPE_API_KEY", "rk_live_" + "x" * 24)
    get_settings.cache_clear()
    assert dashboard_url("customers", "cus_Live1") == "https://dashboard.stripe.com/customers/cus_Live1"


def test_stripe_api_base_written_out_is_still_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    from app_pages.components.tables import dashboard_url
    from lib.config import get_settings

    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.com")
    get_settings.cache_clear()
    assert dashboard_url("customers", "cus_T1") == "https://dashboard.stripe.com/test/customers/cus_T1"


@pytest.mark.parametrize("base", ["http://127.0.0.1:12111", "http://api.stripe.com", "https://api.stripe.com.evil.io",
                                  "https://stripe-mock.internal"])
def test_any_other_api_base_has_no_dashboard_links(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    from app_pages.components.tables import dashboard_url
    from lib.config import get_settings

    monkeypatch.setenv("STRIPE_API_BASE", base)
    get_settings.cache_clear()
    assert dashboard_url("customers", "cus_T1") is None


def test_detail_has_portal_and_merge_action_slots(customer: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": customer["id"]})
    keys = {b.key for b in at.button}
    assert any(k and k.startswith("cd_portal") for k in keys)
    assert any(k and k.startswith("cd_merge") for k in keys) or any(
        k and k.startswith("cd_merge") for k in {t.key for t in at.text_input})


@pytest.mark.parametrize("query,message", [
    ({"id": "cus_doesnotexist"}, "is not in the cache"),
    ({"id": "not-an-id"}, "is not a customer id"),
])
def test_missing_or_bad_id_explains_and_links_back(db: Engine, query: dict[str, str], message: str) -> None:
    at = run_page("customer_detail.py", query=query)
    assert not at.exception
    assert any(message in e.value for e in [*at.error, *at.info])
    assert any("customers" in m.value for m in at.markdown), "a link back to the search"


def test_invoices_are_paged(session: Session) -> None:
    c = make_customer(session, email="many@example.com")
    for i in range(30):
        make_invoice(session, c, created=utcnow() - timedelta(days=i))
    at = run_page("customer_detail.py", query={"id": c.id})
    assert len(table(at, "decline")) == 25
    at.button(key="cd_inv_next").click().run()
    assert len(table(at, "decline")) == 5


def test_default_payment_method_that_is_not_a_card(session: Session) -> None:
    c = make_customer(session, email="bank@example.com", default_payment_method_id="pm_bank_1")
    make_payment_method(session, c, id="pm_bank_1", type="us_bank_account", card_brand=None, card_last4=None,
                        card_exp_month=None, card_exp_year=None)
    at = run_page("customer_detail.py", query={"id": c.id})
    assert not at.exception, at.exception
    assert any("Default payment method: us bank account" in plain(x.value) for x in at.caption)
    cards = table(at, "last4")
    assert cards.iloc[0]["brand"] == "us bank account"
    assert cards.iloc[0]["expires"] == ""
