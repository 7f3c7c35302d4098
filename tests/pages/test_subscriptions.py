"""Subscriptions page: each filter, MRR per row, totals per status and currency, paging, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import queries
from lib.db import session_scope
from lib.models import utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_subscription


@pytest.fixture
def subs(session: Session) -> dict[str, str]:
    c = make_customer(session, email="owner@example.com")
    basic = make_subscription(session, c, status="active", mrr=1000)
    pro_year = make_subscription(session, c, status="active", currency="eur", mrr=5000, items=[
        {"product_id": "prod_pro", "product_name": "Pro", "price_id": "price_pro_yearly", "interval": "year"}])
    late = make_subscription(session, c, status="past_due", mrr=1000, cancel_at_period_end=True)
    trial = make_subscription(session, c, status="trialing", mrr=0, trial_end=utcnow() + timedelta(days=3))
    far_trial = make_subscription(session, c, status="trialing", mrr=0, trial_end=utcnow() + timedelta(days=40))
    gone = make_subscription(session, c, status="canceled", mrr=0)
    return {"basic": basic.id, "pro_year": pro_year.id, "late": late.id, "trial": trial.id,
            "far_trial": far_trial.id, "gone": gone.id}


def ids(at: AppTest) -> set[str]:
    return set(at.dataframe(key="subs_table").value["id"]) if at.dataframe else set()


def test_all_subscriptions_with_mrr_and_plan(subs: dict[str, str]) -> None:
    at = run_page("subscriptions.py")
    assert not at.exception, at.exception
    assert ids(at) == set(subs.values())
    assert any(c.value.startswith(f"{len(subs)} subscription(s)") for c in at.caption)  # the unfiltered count
    df = at.dataframe(key="subs_table").value
    row = df[df["id"] == subs["pro_year"]].iloc[0]
    assert row["mrr"] == "50.00 EUR"  # the table mixes currencies: each amount is text in its own
    assert row["plan"] == "Pro"


def test_totals_per_currency_never_mixed(subs: dict[str, str]) -> None:
    at = run_page("subscriptions.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["MRR USD"] == "20.00 USD"  # active 10 + past_due 10
    assert metrics["MRR EUR"] == "50.00 EUR"
    with session_scope() as s:
        totals = queries.subscription_totals(session=s, filters=queries.SubscriptionFilters())
    assert {(t["status"], t["currency"]): t["count"] for t in totals}[("trialing", "usd")] == 2


@pytest.mark.parametrize("widget,value,expected", [
    ("status", ["past_due"], {"late"}),
    ("product", "Pro (prod_pro)", {"pro_year"}),
    ("price", "price_pro_yearly", {"pro_year"}),
    ("interval", "year", {"pro_year"}),
    ("currency", "EUR", {"pro_year"}),
])
def test_each_select_filter(subs: dict[str, str], widget: str, value: str | list[str], expected: set[str]) -> None:
    at = run_page("subscriptions.py")
    if widget == "status":
        for v in value:
            at.multiselect(key="subs_status").select(v)
        at.run()
    else:
        at.selectbox(key=f"subs_{widget}").select(value).run()
    assert ids(at) == {subs[k] for k in expected}


def test_cancel_at_period_end_and_trial_ending(subs: dict[str, str]) -> None:
    at = run_page("subscriptions.py")
    at.checkbox(key="subs_cape").check().run()
    assert ids(at) == {subs["late"]}
    at.checkbox(key="subs_cape").uncheck().run()
    at.number_input(key="subs_trial_days").set_value(7).run()
    assert ids(at) == {subs["trial"]}


def test_paging_and_csv(session: Session) -> None:
    c = make_customer(session, email="bulk@example.com")
    for _ in range(27):
        make_subscription(session, c, mrr=1234)
    at = run_page("subscriptions.py")
    assert len(ids(at)) == 25
    at.button(key="subs_next").click().run()
    assert len(ids(at)) == 2
    assert at.get("download_button")
    with session_scope() as s:
        out = queries.export_subscriptions_csv(session=s, filters=queries.SubscriptionFilters())
    rows = list(csv.DictReader(io.StringIO(out.read().decode())))
    assert len(rows) == 27
    assert {r["MRR"] for r in rows} == {"12.34"}
    assert rows[0]["Email"] == "bulk@example.com"


def test_no_match_message(subs: dict[str, str]) -> None:
    at = run_page("subscriptions.py")
    at.multiselect(key="subs_status").select("paused").run()
    assert not at.exception
    assert "No subscription matches" in at.info[0].value


def _summed(session: Session) -> list[dict]:
    """Count and MRR per status and currency, summed from the rows (what subscription_totals must equal)."""
    from sqlalchemy import func, select

    from lib.models import Subscription

    stmt = (select(Subscription.status, Subscription.currency, func.count().label("count"),
                    func.sum(Subscription.mrr).label("mrr"))
            .group_by(Subscription.status, Subscription.currency)
            .order_by(Subscription.status, Subscription.currency))
    return [{**dict(r), "mrr": queries.mrr_or_none(r.status, r.mrr)} for r in session.execute(stmt).mappings()]


def test_totals_stay_exact_through_inserts_updates_deletes_and_rollbacks(subs: dict[str, str],
                                                                          session: Session) -> None:
    from sqlalchemy import delete, update

    from lib.models import Subscription

    def totals() -> list[dict]:
        return queries.subscription_totals(session=session, filters=queries.SubscriptionFilters())

    assert totals() == _summed(session)
    # a renewal failing: active → past_due with a new MRR; a currency change; a deletion; no currency
    session.execute(update(Subscription).where(Subscription.id == subs["basic"]).values(status="past_due", mrr=1500))
    session.execute(update(Subscription).where(Subscription.id == subs["pro_year"]).values(currency="gbp"))
    session.execute(delete(Subscription).where(Subscription.id == subs["gone"]))
    make_subscription(session, "cus_nocurrency", status="active", currency=None, mrr=700)
    session.commit()
    assert totals() == _summed(session)
    live = {r["currency"]: (r["subscriptions"], r["mrr"]) for r in queries.mrr_by_currency(session=session)}
    assert live == {None: (1, 700), "gbp": (1, 5000), "usd": (2, 2500)}
    # a change rolled back leaves the totals as they were
    before = totals()
    session.execute(update(Subscription).values(mrr=1))
    session.rollback()
    assert totals() == before == _summed(session)
