"""One MRR definition (lib.models.MRR_STATUSES: active, past due), the same in every table, breakdown and
export: a subscription outside it shows no MRR (empty, not 0); a customer's MRR is the sum of its rows' MRR;
the overview's MRR equals the Subscriptions page's. On factory data with every status, and on the demo
account (sandbox seed + full sync)."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from lib import queries
from lib.models import MRR_STATUSES, Customer, Subscription
from lib.sync import recompute_mrr, run_sync
from tests.utils.apptest import ROOT, run_page
from tests.utils.factories import make_customer, make_subscription
from tests.utils.sandbox import SandboxServer

STATUS_MRR = {"active": 1000, "past_due": 500, "unpaid": 1200, "paused": 700, "incomplete": 300,
              "incomplete_expired": 400, "canceled": 900, "trialing": 800}


def _table(at: Any, column: str, without: str = "") -> Any:
    """The first dataframe on the page with `column` (and not `without`): plain dataframes carry no key."""
    return next(d.value for d in at.dataframe if column in d.value.columns and without not in d.value.columns)


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


@pytest.fixture
def grace(session: Session, db: Engine) -> dict[str, str]:
    """One customer with a subscription in every status, each with a monthly amount in the cache."""
    c = make_customer(session, email="grace@example.com", name="Grace Turner")
    other = make_customer(session, email="other@example.com")
    ids = {status: make_subscription(session, c, status=status, mrr=mrr).id for status, mrr in STATUS_MRR.items()}
    make_subscription(session, other, status="active", mrr=2500)
    with db.begin() as conn:
        recompute_mrr(conn, [c.id, other.id])  # what the sync does after writing subscriptions
    return {"customer": c.id, **ids}


def test_rows_outside_mrr_statuses_show_no_mrr_and_the_customer_is_their_sum(
        grace: dict[str, str], session: Session) -> None:
    rows = queries.customer_subscriptions(session=session, customer_id=grace["customer"])
    by_status = {r["status"]: r["mrr"] for r in rows}
    assert {s for s, m in by_status.items() if m is not None} == set(MRR_STATUSES)
    customer = queries.get_customer(session=session, customer_id=grace["customer"])
    assert customer["mrr"] == sum(m for m in by_status.values() if m is not None) == 1500


def test_customer_detail_shows_empty_mrr_outside_mrr_statuses(grace: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": grace["customer"]})
    assert not at.exception, at.exception
    df = _table(at, "items")
    shown = dict(zip(df["status"], df["mrr"], strict=True))
    assert [s for s, m in shown.items() if _empty(m)] == [s for s in shown if s not in MRR_STATUSES]
    assert shown["unpaid"] != 12.0
    assert _empty(shown["unpaid"])  # Grace's unpaid row no longer shows 12.00
    assert {m.label: m.value for m in at.metric}["MRR"] == "15.00 USD"  # = 10.00 active + 5.00 past due


def test_subscriptions_list_breakdown_and_csv_show_no_mrr_outside_mrr_statuses(grace: dict[str, str],
                                                                                session: Session) -> None:
    at = run_page("subscriptions.py")
    assert not at.exception, at.exception
    df = at.dataframe(key="subs_table").value
    listed = dict(zip(df["status"], df["mrr"], strict=False))
    assert sorted(s for s, m in listed.items() if _empty(m)) == sorted(set(STATUS_MRR) - set(MRR_STATUSES))
    breakdown = _table(at, "mrr", without="id")
    per_status = dict(zip(breakdown["status"], breakdown["mrr"], strict=True))
    assert sorted(s for s, m in per_status.items() if _empty(m)) == sorted(set(STATUS_MRR) - set(MRR_STATUSES))
    assert per_status["active"] == "35.00 USD"  # Grace's 10.00 and the other customer's 25.00
    csv_rows = list(csv.DictReader(io.TextIOWrapper(queries.export_subscriptions_csv(
        session=session, filters=queries.SubscriptionFilters()), encoding="utf-8")))
    exported = {r["Subscription"]: r["MRR"] for r in csv_rows}
    assert [st for st in STATUS_MRR if exported[grace[st]] == ""] == [
        st for st in STATUS_MRR if st not in MRR_STATUSES]
    assert exported[grace["active"]] == "10.00"


def test_overview_mrr_equals_the_subscriptions_page(grace: dict[str, str]) -> None:
    overview = run_page("overview.py")
    subs = run_page("subscriptions.py")
    page_mrr = {m.label: m.value for m in subs.metric}["MRR USD"]
    assert page_mrr == "40.00 USD"  # 10 + 5 + 25: no unpaid, paused, incomplete, canceled or trialing
    assert page_mrr in " ".join(m.value for m in overview.markdown)


# --- the demo account ------------------------------------------------------------------------------


@pytest.fixture
def demo(sandbox: SandboxServer, session: Session) -> Session:
    """The demo account (sandbox seed, 40 customers) synced into the cache by a full sync."""
    seed = subprocess.run([sys.executable, "-m", "sandbox.seed", "--api-base", sandbox.url, "--customers", "40",
                           "--reset", "--api-key", sandbox.key, "--webhook-url", "none"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert seed.returncode == 0, seed.stderr[-2000:]
    result = run_sync(mode="full")
    assert result.status == "succeeded", result.error
    session.expire_all()
    return session


def test_demo_account_has_one_mrr_everywhere(demo: Session) -> None:
    outside = demo.execute(select(Subscription.id).where(Subscription.status.not_in(MRR_STATUSES),
                                                         Subscription.mrr > 0)).all()
    assert outside, "the demo has no subscription outside MRR_STATUSES with an amount: the test would prove nothing"
    customers = demo.execute(select(Customer.id, Customer.mrr)).all()
    for cid, mrr in customers:
        rows = queries.customer_subscriptions(session=demo, customer_id=cid)
        assert [r["id"] for r in rows if r["status"] not in MRR_STATUSES and r["mrr"] is not None] == []
        assert mrr == sum(r["mrr"] for r in rows if r["mrr"] is not None), cid
    overview = {r["currency"]: r["mrr"] for r in queries.mrr_by_currency(session=demo)}
    totals = queries.subscription_totals(session=demo, filters=queries.SubscriptionFilters())
    page: dict[str, int] = {}
    for t in totals:
        if t["mrr"] is not None:
            page[t["currency"]] = page.get(t["currency"], 0) + t["mrr"]
    assert overview == page
    listed = queries.list_subscriptions(session=demo, filters=queries.SubscriptionFilters(), page_size=200).rows
    assert [r["id"] for r in listed if r["status"] not in MRR_STATUSES and r["mrr"] is not None] == []


def test_demo_overview_and_subscriptions_page_show_the_same_mrr(demo: Session) -> None:
    overview = " ".join(m.value for m in run_page("overview.py").markdown)
    metrics = {m.label: m.value for m in run_page("subscriptions.py").metric}
    mrr = {k: v for k, v in metrics.items() if k.startswith("MRR ")}
    assert mrr
    for value in mrr.values():
        assert value in overview
