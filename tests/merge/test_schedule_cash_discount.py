"""Blockers and copies that need the sandbox's subscription schedules, cash balances and coupons: a schedule or a
funded cash balance on the duplicate stops the plan with its reason and writes nothing to Stripe; a subscription
with a coupon is recreated on the survivor with the same discount, and the survivor's invoices carry it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from lib import gateway as gw
from lib import merge
from lib.models import MergeJob
from tests.merge.world import ADMIN, World, assert_end_state, last_seq, make_world, posts
from tests.utils.sandbox import SandboxServer


def _scheduled(sb: SandboxServer, w: World) -> str:
    sched = sb.client.v1.subscription_schedules.create(params={"from_subscription": w.old_subs[0]})
    return f"{w.old_subs[0]} is managed by schedule {sched.id}: release or finish the schedule first"


def _cash(sb: SandboxServer, w: World) -> str:
    sb.client.v1.test_helpers.customers.fund_cash_balance(w.duplicate, params={"amount": 4250, "currency": "usd"})
    return f"{w.duplicate} holds a cash balance of 42.50 USD: refund or apply it to an invoice first"


CASES: dict[str, Callable[[SandboxServer, World], str]] = {"schedule": _scheduled, "cash_balance": _cash}


@pytest.mark.parametrize("case", list(CASES))
def test_blocker_from_stripe_stops_the_plan_and_writes_nothing(sandbox: SandboxServer, session: Session,
                                                               case: str) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    needle = CASES[case](sandbox, w)
    since = last_seq(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert plan.blocked
    assert needle in " ".join(plan.blockers), plan.blockers
    with pytest.raises(merge.MergeError, match="blocked"):
        merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    assert posts(sandbox, since) == []
    assert session.exec(select(MergeJob)).all() == []


def test_released_schedule_no_longer_blocks(sandbox: SandboxServer) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    sched = sandbox.client.v1.subscription_schedules.create(params={"from_subscription": w.old_subs[0]})
    sandbox.client.v1.subscription_schedules.release(sched.id)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert not plan.blocked, plan.blockers


def test_cash_balance_read_of_a_missing_customer_is_an_error(sandbox: SandboxServer) -> None:
    assert gw.customers.cash_balance(make_world(sandbox, duplicate_extra=False).duplicate) == {}
    with pytest.raises(gw.NotFound):
        gw.customers.cash_balance("cus_nope")


def test_merge_recreates_the_subscription_with_the_same_discount(sandbox: SandboxServer, session: Session) -> None:
    c = sandbox.client
    w = make_world(sandbox, duplicate_extra=False)
    coupon = c.v1.coupons.create(params={"percent_off": 25, "duration": "forever", "name": "Partner"})
    old = c.v1.subscriptions.create(params={"customer": w.duplicate, "items": [{"price": w.price_monthly}],
                                            "discounts": [{"coupon": coupon.id}]})
    assert c.v1.invoices.retrieve(old.latest_invoice).amount_paid == 1500  # 2000 - 25 %
    w.old_subs.append(old.id)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert not plan.blocked, plan.blockers
    create = next(s.params["create"] for s in plan.steps
                  if s.kind == "recreate_subscription" and s.params["old_subscription"] == old.id)
    assert create["discounts"] == [{"coupon": coupon.id}]
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    job = merge.run_job(job.id, user=ADMIN, session=session)
    assert_end_state(sandbox, w, job, session)
    new = next(s for s in c.v1.subscriptions.list(params={"customer": w.survivor, "expand": ["data.discounts"]}).data
               if s.metadata.to_dict().get("merged_from") == old.id)
    assert [(d.source.coupon, d.customer, d.subscription) for d in new.discounts] == [
        (coupon.id, w.survivor, new.id)]
    # Past the old period end: the survivor's first paid invoice of the new subscription carries the discount.
    sandbox.advance(days=32)
    paid = [i for i in c.v1.invoices.list(params={"subscription": new.id}).data if i.amount_due > 0]
    assert [(i.subtotal, i.amount_paid) for i in paid] == [(2000, 1500)]
    assert paid[0].discounts == [new.discounts[0].id]
