"""The "new card since the failure" hint on the Failed invoices worklist and the customer page, its filter,
and who is offered "Retry now" (AppTest over cache rows; the Stripe side is in test_retry_sandbox.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import queries
from tests.utils.apptest import PAGES_DIR, run_page
from tests.utils.factories import make_customer, make_failed_invoice, make_payment_method, make_subscription
from tests.utils.login import as_role

ADDED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def cards(session: Session) -> dict[str, str]:
    """Four failed invoices: the customer's default card changed since the failure (hinted), the same card that
    failed is still the default, the subscription's own card is the failed one (a retry would charge it), and a
    failure without any card, now with one (hinted)."""
    changed = make_customer(session, email="changed@example.com")
    old = make_payment_method(session, changed, card_last4="0341")
    new = make_payment_method(session, changed, card_brand="mastercard", card_last4="4444", created=ADDED)
    changed.default_payment_method_id = new.id
    session.add(changed)
    session.commit()
    hinted = make_failed_invoice(session, changed, amount_due=5000, failed_payment_method_id=old.id)

    same = make_customer(session, email="same@example.com")
    card = make_payment_method(session, same)
    same.default_payment_method_id = card.id
    session.add(same)
    session.commit()
    unchanged = make_failed_invoice(session, same, amount_due=4000, failed_payment_method_id=card.id)

    subbed = make_customer(session, email="subbed@example.com")
    failing = make_payment_method(session, subbed, card_last4="0002")
    other = make_payment_method(session, subbed, card_last4="1111")
    subbed.default_payment_method_id = other.id
    session.add(subbed)
    session.commit()
    sub = make_subscription(session, subbed, default_payment_method_id=failing.id)
    by_sub = make_failed_invoice(session, subbed, amount_due=3000, subscription_id=sub.id,
                                 failed_payment_method_id=failing.id)

    missing = make_customer(session, email="nocard@example.com")
    first = make_payment_method(session, missing, card_last4="5555", created=ADDED)
    missing.default_payment_method_id = first.id
    session.add(missing)
    session.commit()
    no_card = make_failed_invoice(session, missing, amount_due=2000, failure_code="payment_method_missing",
                                  decline_code=None)
    return {"hinted": hinted.id, "unchanged": unchanged.id, "by_sub": by_sub.id, "no_card": no_card.id,
            "customer": changed.id, "new_card": new.id}


def _table(at: AppTest, key: str):
    return at.dataframe(key=key).value


def test_worklist_shows_the_hint_only_where_a_retry_would_charge_another_card(cards: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    assert not at.exception, at.exception
    hints = dict(zip(_table(at, "fi_table")["id"], _table(at, "fi_table")["new_card"], strict=True))
    assert hints[cards["hinted"]] == "New card Mastercard •••• 4444 added 2026-12-01 09:30 UTC — retry now"
    assert hints[cards["unchanged"]] == ""
    assert hints[cards["by_sub"]] == ""
    assert hints[cards["no_card"]] == "New card Visa •••• 5555 added 2026-12-01 09:30 UTC — retry now"


def test_the_filter_keeps_only_invoices_with_a_new_card(cards: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    at.checkbox(key="fi_new_card").check().run()
    assert not at.exception, at.exception
    assert list(_table(at, "fi_table")["id"]) == [cards["hinted"], cards["no_card"]]
    assert {m.label: m.value for m in at.metric}["At risk · USD"] == "70.00 USD"


def test_the_filter_counts_in_sql(session: Session, cards: dict[str, str]) -> None:
    page = queries.failed_invoices(session=session, filters=queries.FailedFilters(new_card=True))
    assert page.total == 2


def test_customer_page_shows_the_hint(cards: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": cards["customer"]})
    assert not at.exception, at.exception
    hint = f"{cards['hinted']}: New card Mastercard •••• 4444 added 2026-12-01 09:30 UTC — retry now"
    shown = [i.value for i in at.info if "New card" in i.value]
    assert shown == [hint.replace("_", "\\_").replace("-", "\\-").replace(":", "\\:")]  # Markdown-escaped
    df = next(d.value for d in at.dataframe if "new_card" in d.value.columns)  # plain dataframes carry no key
    assert df[df["id"] == cards["hinted"]].iloc[0]["new_card"].startswith("New card Mastercard")


@pytest.mark.parametrize("role", ["staff", "finance", "admin"])
def test_retry_now_is_offered_to_finance_and_admin_only(role: str, cards: dict[str, str], db: Engine,
                                                         roles_file: Path) -> None:
    at = as_role(AppTest.from_file(str(PAGES_DIR / "failed_invoices.py"), default_timeout=30), role).run()
    assert not at.exception, at.exception
    offered = any(b.label == "Retry now" for b in at.button)
    assert offered == (role in {"finance", "admin"})
    if offered:  # invoices with a new card come first in the picker
        assert at.selectbox(key="fi_retry_invoice").value == cards["hinted"]
    else:
        assert "Only finance and admins can retry a payment." in [c.value for c in at.caption]


def test_recovery_chart_groups_bars_by_week_on_an_ordinal_axis(session: Session) -> None:
    import json

    from lib.models import utcnow
    from tests.utils.factories import make_invoice

    a = make_customer(session)
    make_failed_invoice(session, a, amount_due=5000)
    make_invoice(session, a, status="paid", amount_due=2000, attempt_count=2, paid_at=utcnow())
    at = run_page("failed_invoices.py")
    assert not at.exception, at.exception
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    spec = json.loads(charts[0].proto.spec)
    encoding = spec.get("encoding") or spec["layer"][0]["encoding"]
    assert (encoding["x"]["field"], encoding["x"]["type"]) == ("week", "ordinal")
    assert encoding["xOffset"]["field"] == "kind"
