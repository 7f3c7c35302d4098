"""Every blocker the sandbox can produce stops the plan with its reason and writes nothing to Stripe; the
missing-payment-method warning must be acknowledged. (Schedules and cash balances: see
tests/merge/test_schedule_cash_discount.py.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from lib import merge
from lib.models import AuditLog, MergeJob
from tests.merge.world import ADMIN, World, give_card, last_seq, make_world, posts
from tests.utils.sandbox import SandboxServer


def _open_invoice(sb: SandboxServer, w: World) -> str:
    sub = sb.client.v1.subscriptions.create(params={
        "customer": w.duplicate, "items": [{"price": w.price_monthly}], "collection_method": "send_invoice",
        "days_until_due": 30})
    return sub.latest_invoice if isinstance(sub.latest_invoice, str) else sub.latest_invoice.id


def _past_due(sb: SandboxServer, w: World) -> str:
    give_card(sb.client, w.duplicate, "pm_card_chargeCustomerFail")
    sb.advance(days=32)
    return w.old_subs[0]


def _paused(sb: SandboxServer, w: World) -> str:
    """A trial that ended without a payment method, set to pause then: status `paused`."""
    c = sb.client
    c.v1.customers.update(w.duplicate, params={"invoice_settings": {"default_payment_method": ""}})
    sub = c.v1.subscriptions.create(params={
        "customer": w.duplicate, "items": [{"price": w.price_monthly}], "trial_period_days": 1,
        "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}}})
    sb.advance(days=2)
    assert c.v1.subscriptions.retrieve(sub.id).status == "paused"
    return sub.id


def _archived_price(sb: SandboxServer, w: World) -> str:
    sb.client.v1.prices.update(w.price_seats, params={"active": False})
    return w.price_seats


def _other_currency(sb: SandboxServer, w: World) -> str:
    c = sb.client
    eur = c.v1.prices.create(params={"product": c.v1.prices.retrieve(w.price_monthly).product, "currency": "eur",
                                     "unit_amount": 1900, "recurring": {"interval": "month"}})
    survivor = c.v1.customers.create(params={"email": "eu@example.org"})
    give_card(c, survivor.id, "pm_card_visa")
    c.v1.subscriptions.create(params={"customer": survivor.id, "items": [{"price": eur.id}]})
    w.survivor = survivor.id
    return "USD but"


CASES: dict[str, tuple[Callable[[SandboxServer, World], str], str]] = {
    "open_invoice": (_open_invoice, "still due"),
    "past_due": (_past_due, "is past-due"),
    "paused": (_paused, "is paused"),
    "archived_price": (_archived_price, "is archived"),
    "other_currency": (_other_currency, "a customer has one currency"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_blocker_stops_the_plan_and_writes_nothing(sandbox: SandboxServer, session: Session, case: str) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    make, needle = CASES[case]
    detail = make(sandbox, w)
    since = last_seq(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert plan.blocked
    reason = " ".join(plan.blockers)
    assert needle in reason, reason
    assert detail in reason, reason
    with pytest.raises(merge.MergeError, match="blocked"):
        merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    assert posts(sandbox, since) == []
    assert session.exec(select(MergeJob)).all() == []


def test_survivor_without_card_needs_acknowledgement(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox, survivor_card=False, duplicate_extra=False)
    since = last_seq(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert not plan.blocked
    assert plan.needs_ack == ["no_payment_method"]
    assert "payment-method-update link" in plan.warnings[0].message or any(
        "payment-method-update" in x.message for x in plan.warnings)
    with pytest.raises(merge.MergeError, match="Acknowledge"):
        merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    assert posts(sandbox, since) == []
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor,
                           acknowledged=["no_payment_method"])
    assert merge.run_job(job.id, user=ADMIN, session=session).status == "succeeded"


def test_missing_customer_is_a_clear_message(sandbox: SandboxServer) -> None:
    with pytest.raises(merge.MergeError, match="does not exist in Stripe"):
        merge.plan_merge(("cus_nope", "cus_nope2"))


def test_blocker_appearing_after_the_plan_stops_before_any_write(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    invoice = _open_invoice(sandbox, w)  # e.g. support sent an invoice while the admin read the plan
    since = last_seq(sandbox)
    job = merge.run_job(job.id, user=ADMIN, session=session)
    assert job.status == "failed"
    assert "nothing was written" in job.error
    assert invoice in job.error
    assert posts(sandbox, since) == []
    (row,) = session.exec(select(AuditLog).where(AuditLog.action == "merge_preflight")).all()
    # the Audit log page says why it stopped
    assert row.result == "refused"
    assert invoice in row.error
