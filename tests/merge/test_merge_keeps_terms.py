"""A merge changes nothing but the owner: each recreated subscription keeps its trial, items, quantities,
discounts, scheduled end, paused collection, collection method and metadata; the plan and its audit name
products, not price ids. (MRR and next charge per copy are checked by the merge_invariants fixture.)"""

from __future__ import annotations

import stripe
from sqlmodel import Session, select

from lib import merge
from lib.models import AuditLog
from tests.merge.world import ADMIN, World, assert_end_state, make_world
from tests.utils.sandbox import SandboxServer

DAY = 86400


def _copy_of(c: stripe.StripeClient, survivor: str, old_id: str) -> stripe.Subscription:
    subs = c.v1.subscriptions.list(params={"customer": survivor, "status": "all",
                                           "expand": ["data.discounts"]}).data
    (copy,) = [s for s in subs if s.metadata.to_dict().get("merged_from") == old_id]
    return copy


def _run(w: World, session: Session) -> merge.MergeJob:
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert not plan.blocked, plan.blockers
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    return merge.run_job(job.id, user=ADMIN, session=session)


def test_a_trialing_subscription_stays_trialing_to_the_same_day(sandbox: SandboxServer, session: Session) -> None:
    c = sandbox.client
    w = make_world(sandbox, duplicate_extra=False)
    trial = c.v1.subscriptions.create(params={"customer": w.duplicate, "trial_period_days": 10,
                                              "items": [{"price": w.price_seats, "quantity": 5}]})
    w.old_subs.append(trial.id)
    job = _run(w, session)
    assert_end_state(sandbox, w, job, session)
    copy = _copy_of(c, w.survivor, trial.id)
    assert copy.status == "trialing"
    assert copy.trial_end == trial.trial_end
    assert [(i.price.id, i.quantity) for i in copy["items"].data] == [(w.price_seats, 5)]
    # The survivor pays nothing before the trial ends, then the full amount once.
    sandbox.advance(days=11)
    paid = [i.amount_paid for i in c.v1.invoices.list(params={"subscription": copy.id}).data]
    assert sorted(paid) == [0, 2500]


def test_scheduled_end_paused_collection_invoicing_and_metadata_carry_over(
        sandbox: SandboxServer, session: Session) -> None:
    c = sandbox.client
    w = make_world(sandbox, duplicate_extra=False)
    ending = c.v1.subscriptions.create(params={"customer": w.duplicate, "items": [{"price": w.price_monthly}],
                                               "cancel_at_period_end": True, "metadata": {"crm": "7"}})
    invoiced = c.v1.subscriptions.create(params={
        "customer": w.duplicate, "items": [{"price": w.price_seats, "quantity": 2}],
        "collection_method": "send_invoice", "days_until_due": 14, "description": "PO 4711"})
    c.v1.invoices.pay(invoiced.latest_invoice, params={"paid_out_of_band": True})
    c.v1.subscriptions.update(invoiced.id, params={"pause_collection": {"behavior": "mark_uncollectible"}})
    later = c.v1.subscriptions.create(params={"customer": w.duplicate, "items": [{"price": w.price_monthly}],
                                              "cancel_at": sandbox.now() + 45 * DAY})
    w.old_subs += [ending.id, invoiced.id, later.id]
    job = _run(w, session)
    assert_end_state(sandbox, w, job, session)
    ending_copy = _copy_of(c, w.survivor, ending.id)
    assert ending_copy.cancel_at_period_end is True
    assert ending_copy.cancel_at == ending["items"].data[0].current_period_end
    assert ending_copy.metadata.to_dict()["crm"] == "7"
    later_copy = _copy_of(c, w.survivor, later.id)
    assert (later_copy.cancel_at, later_copy.cancel_at_period_end) == (later.cancel_at, False)
    invoiced_copy = _copy_of(c, w.survivor, invoiced.id)
    assert (invoiced_copy.collection_method, invoiced_copy.days_until_due) == ("send_invoice", 14)
    assert invoiced_copy.description == "PO 4711"
    assert invoiced_copy.pause_collection.behavior == "mark_uncollectible"


def test_a_discount_that_ends_before_the_next_charge_is_not_restarted(sandbox: SandboxServer,
                                                                     session: Session) -> None:
    c = sandbox.client
    w = make_world(sandbox, duplicate_extra=False)
    coupon = c.v1.coupons.create(params={"percent_off": 50, "duration": "repeating", "duration_in_months": 1})
    old = c.v1.subscriptions.create(params={"customer": w.duplicate, "items": [{"price": w.price_monthly}],
                                            "discounts": [{"coupon": coupon.id}]})
    w.old_subs.append(old.id)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    create = next(s.params["create"] for s in plan.steps if s.params.get("old_subscription") == old.id)
    assert "discounts" not in create  # it covers this month only: the next charge is at full price
    assert plan.needs_ack == ["discount_ends"]  # said before anything runs: MRR shows the full price from now
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor,
                           acknowledged=["discount_ends"])
    assert merge.run_job(job.id, user=ADMIN, session=session).status == "succeeded"
    sandbox.advance(days=32)
    copy = _copy_of(c, w.survivor, old.id)
    paid = [i.amount_paid for i in c.v1.invoices.list(params={"subscription": copy.id}).data if i.amount_paid]
    assert paid == [2000]


def test_the_plan_and_its_audit_name_products_not_price_ids(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    titles = [s.title for s in plan.steps if s.kind == "recreate_subscription"]
    assert any("(Pro × 3)" in t for t in titles), titles
    assert not [t for t in titles if "price_" in t]
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    merge.run_job(job.id, user=ADMIN, session=session)
    audited = [r.details.get("title") or "" for r in session.exec(
        select(AuditLog).where(AuditLog.correlation_id == job.id, AuditLog.action == "merge_step")).all()]
    assert any("Pro × 3" in t for t in audited), audited
    assert not [t for t in audited if "price_" in t]
