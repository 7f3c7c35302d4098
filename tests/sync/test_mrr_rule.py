"""One MRR rule everywhere: active and past-due subscriptions count, trials do not (not revenue yet)."""

from __future__ import annotations

from sqlmodel import Session

from lib import queries
from lib.models import Customer
from lib.sync import recompute_mrr
from tests.utils.factories import make_customer, make_subscription


def test_customer_mrr_and_overview_count_active_and_past_due_but_not_trials(session: Session) -> None:
    cust = make_customer(session, email="rule@example.com", currency="usd")
    make_subscription(session, cust, status="active", mrr=1000, currency="usd")
    make_subscription(session, cust, status="past_due", mrr=200, currency="usd")
    make_subscription(session, cust, status="trialing", mrr=500, currency="usd")
    make_subscription(session, cust, status="canceled", mrr=700, currency="usd")
    session.commit()

    with session.get_bind().begin() as conn:
        recompute_mrr(conn, [cust.id])
    session.expire_all()
    assert session.get(Customer, cust.id).mrr == 1200

    overview = {row["currency"]: row["mrr"] for row in queries.mrr_by_currency(session=session)}
    assert overview == {"usd": 1200}
