"""A duplicate pair built in the sandbox through the official SDK, and the end-state checks every merge test
shares: what an admin would look at in Stripe after a merge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from sqlmodel import Session, select

from lib.auth import User
from lib.models import AuditLog, MergeJob
from tests.utils.sandbox import SandboxServer

ADMIN = User(email="admin@example.test", name="Admin", roles=frozenset({"admin"}))
SUPPORT = User(email="support@example.test", name="Support", roles=frozenset({"support"}))


@dataclass
class World:
    survivor: str
    duplicate: str
    old_subs: list[str]
    survivor_balance: int
    duplicate_balance: int
    price_monthly: str
    price_seats: str


def give_card(c: stripe.StripeClient, customer_id: str, test_pm: str) -> str:
    pm = c.v1.payment_methods.attach(test_pm, params={"customer": customer_id})
    c.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return pm.id


def make_world(sb: SandboxServer, *, survivor_card: bool = True, duplicate_extra: bool = True) -> World:
    """Survivor: a card and one subscription. Duplicate: a card, two live subscriptions (one trialing, one with
    quantity and metadata), a credit balance, a tax id and a metadata key the survivor lacks."""
    c: stripe.StripeClient = sb.client
    prod = c.v1.products.create(params={"name": "Pro"})
    monthly = c.v1.prices.create(params={"product": prod.id, "currency": "usd", "unit_amount": 2000,
                                         "recurring": {"interval": "month"}})
    seats = c.v1.prices.create(params={"product": prod.id, "currency": "usd", "unit_amount": 500,
                                       "recurring": {"interval": "month"}})
    survivor = c.v1.customers.create(params={"email": "pat@example.org", "name": "Pat Doe",
                                             "metadata": {"crm_id": "42"}})
    if survivor_card:
        give_card(c, survivor.id, "pm_card_visa")
        c.v1.subscriptions.create(params={"customer": survivor.id, "items": [{"price": monthly.id}]})
    dup = c.v1.customers.create(params={"email": "PAT@example.org", "name": "Pat Doe",
                                        "metadata": {"segment": "smb"}})
    give_card(c, dup.id, "pm_card_mastercard")
    subs = [c.v1.subscriptions.create(params={
        "customer": dup.id, "items": [{"price": seats.id, "quantity": 3, "metadata": {"team": "ops"}}],
        "metadata": {"source": "checkout"}}).id]
    if duplicate_extra:
        subs.append(c.v1.subscriptions.create(params={
            "customer": dup.id, "items": [{"price": monthly.id}], "trial_period_days": 14}).id)
        c.v1.customers.balance_transactions.create(dup.id, params={"amount": -1500, "currency": "usd",
                                                                   "description": "goodwill credit"})
        c.v1.customers.tax_ids.create(dup.id, params={"type": "eu_vat", "value": "DE123456789"})
    s_bal = c.v1.customers.retrieve(survivor.id).balance
    d_bal = c.v1.customers.retrieve(dup.id).balance
    return World(survivor.id, dup.id, subs, s_bal, d_bal, monthly.id, seats.id)


def runner_died_long_ago(session: Session, job_id: str) -> None:
    """The killed runner's heartbeat is older than the staleness limit: a takeover is now allowed."""
    from datetime import timedelta

    from sqlalchemy import update

    from lib.merge import STALE_RUNNING_SECONDS
    from lib.models import utcnow

    session.execute(update(MergeJob).where(MergeJob.id == job_id)
                    .values(updated_at=utcnow() - timedelta(seconds=STALE_RUNNING_SECONDS + 5)))
    session.commit()


def posts(sb: SandboxServer, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in sb.requests(since) if r["method"] != "GET"]


def last_seq(sb: SandboxServer) -> int:
    reqs = sb.requests()
    return reqs[-1]["seq"] if reqs else 0


def assert_end_state(sb: SandboxServer, w: World, job: MergeJob, session: Session) -> None:
    """Every old subscription exists exactly once, live, on the survivor, billing from the old period end; the
    old ones are canceled (their copies carry on); balances add up; no customer deleted; the audit log has
    every step exactly once."""
    c = sb.client
    assert job.status == "succeeded", job.error
    survivor_subs = c.v1.subscriptions.list(params={"customer": w.survivor, "status": "all", "limit": 100}).data
    for old_id in w.old_subs:
        old = c.v1.subscriptions.retrieve(old_id)
        assert old.status == "canceled"
        made = [s for s in survivor_subs if s.metadata.to_dict().get("merged_from") == old_id]
        assert len(made) == 1, f"{old_id} recreated {len(made)} times"
        new = made[0]
        assert new.status in ("active", "trialing")
        assert new.metadata.to_dict().get("merge_job") == job.id
        old_items = sorted((i.price.id, i.quantity, i.metadata.to_dict()) for i in old["items"].data)
        new_items = sorted((i.price.id, i.quantity, i.metadata.to_dict()) for i in new["items"].data)
        assert new_items == old_items
        # The new one's first (free) stub period ends exactly where the old paid period ends: no gap, no overlap.
        assert new.billing_cycle_anchor == old["items"].data[0].current_period_end
        assert new["items"].data[0].current_period_end == old["items"].data[0].current_period_end
        assert {k: v for k, v in old.metadata.to_dict().items() if k != "merge_job"} == {
            k: v for k, v in new.metadata.to_dict().items() if k not in ("merged_from", "merge_job")}
    s, d = c.v1.customers.retrieve(w.survivor), c.v1.customers.retrieve(w.duplicate)
    assert not getattr(s, "deleted", False)
    assert not getattr(d, "deleted", False)
    assert s.balance + d.balance == w.survivor_balance + w.duplicate_balance
    assert d.balance == 0
    assert d.metadata.to_dict().get("merged_into") == w.survivor
    assert not [r for r in sb.requests() if r["method"] == "DELETE" and r["path"].startswith("/v1/customers")]
    step_rows = session.exec(select(AuditLog).where(AuditLog.correlation_id == job.id,
                                                    AuditLog.action == "merge_step")).all()
    from lib.merge import steps_of

    steps = steps_of(job.id, session=session)
    done = sorted((r.details.get("seq"), r.flow) for r in step_rows if r.result == "succeeded")
    assert done == [(st.seq, st.kind) for st in steps]  # each step audited as done exactly once
    assert not [r for r in step_rows if r.result == "started"]  # no attempt left dangling
    verify = session.exec(select(AuditLog).where(AuditLog.correlation_id == job.id,
                                                 AuditLog.action == "merge_verify",
                                                 AuditLog.result == "succeeded")).all()
    assert len(verify) >= 1
