"""What a merge must never change, checked on every merge the merge tests run (tests/merge/conftest.py):
per currency, total MRR in Stripe and in the cache after a sync; per recreated subscription, its status, next
charge date and next charge amount. A merge changes nothing but the owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from sqlmodel import Session

from lib import queries
from lib.mapping import subscription_rows
from lib.models import MRR_STATUSES
from lib.sync import run_sync
from tests.utils.sandbox import SandboxServer


@dataclass(frozen=True)
class Charge:
    status: str
    next_charge_at: int | None  # None: it ends before billing again
    next_amount: int | None


@dataclass
class Snapshot:
    stripe_mrr: dict[str, int]
    cache_mrr: dict[str, int]
    charges: dict[str, Charge]  # the duplicate's live subscriptions, by id


def _all_subscriptions(c: stripe.StripeClient, customer: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"status": "all", "limit": 100, "expand": ["data.discounts.source.coupon"]}
    if customer:
        params["customer"] = customer
    return [s.to_dict() for s in c.v1.subscriptions.list(params=params).auto_paging_iter()]


def stripe_mrr(c: stripe.StripeClient) -> dict[str, int]:
    """Per currency, Σ MRR of the account's subscriptions in MRR_STATUSES, computed as the sync computes it."""
    out: dict[str, int] = {}
    for sub in _all_subscriptions(c):
        if sub["status"] in MRR_STATUSES:
            row, _ = subscription_rows(sub, 0)
            out[row["currency"]] = out.get(row["currency"], 0) + row["mrr"]
    return out


def cache_mrr(session: Session) -> dict[str, int]:
    """Per currency, the overview's MRR from the cache after a full sync from the sandbox."""
    result = run_sync(mode="full")
    assert result.status == "succeeded", result.error
    session.expire_all()
    return {r["currency"]: r["mrr"] for r in queries.mrr_by_currency(session=session)}


def next_charge(sub: dict[str, Any]) -> Charge:
    """When and how much the subscription charges next: the trial end while trialing, else its period end;
    the items' amounts less the discounts still in force then (a `once` coupon is spent by the first invoice)."""
    ends = [int(i["current_period_end"]) for i in sub["items"]["data"] if i.get("current_period_end")]
    at: int | None = int(sub["trial_end"]) if sub["status"] == "trialing" and sub.get("trial_end") else max(ends)
    if sub.get("cancel_at_period_end") or (sub.get("cancel_at") and at and int(sub["cancel_at"]) <= at):
        return Charge(sub["status"], None, None)
    amount = sum(int(i["price"]["unit_amount"]) * int(i.get("quantity") or 1) for i in sub["items"]["data"])
    for d in sub.get("discounts") or []:
        coupon = (d.get("source") or {}).get("coupon")
        if not isinstance(coupon, dict) or coupon.get("duration") == "once":
            continue
        if d.get("end") is not None and int(d["end"]) <= (at or 0):
            continue
        if coupon.get("percent_off") is not None:
            amount -= round(amount * float(coupon["percent_off"]) / 100)
        else:
            amount -= min(amount, int(coupon["amount_off"]))
    return Charge(sub["status"], at, amount)


def snapshot(sb: SandboxServer, session: Session, duplicate: str) -> Snapshot:
    c = sb.client
    live = [s for s in _all_subscriptions(c, duplicate) if s["status"] in ("active", "trialing")]
    return Snapshot(stripe_mrr(c), cache_mrr(session), {s["id"]: next_charge(s) for s in live})


def assert_unchanged(sb: SandboxServer, session: Session, before: Snapshot, survivor: str, *,
                     mrr: bool = True) -> None:
    """After a successful merge: MRR per currency as before (Stripe and cache; `mrr=False` only where the
    plan warned it changes), and every recreated copy bills like its original."""
    c = sb.client
    if mrr:
        assert stripe_mrr(c) == before.stripe_mrr, "MRR in Stripe changed with the merge"
        assert cache_mrr(session) == before.cache_mrr, "MRR in the cache (after a sync) changed with the merge"
    copies = {(s.get("metadata") or {}).get("merged_from"): s for s in _all_subscriptions(c, survivor)
              if s["status"] not in ("canceled", "incomplete_expired")}
    for old_id, charge in before.charges.items():
        assert old_id in copies, f"{old_id} has no live copy on {survivor}"
        assert next_charge(copies[old_id]) == charge, f"the copy of {old_id} bills differently"
