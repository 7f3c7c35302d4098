"""The cache compared with Stripe field by field: `differences` lists every way they disagree.

The expected values are read straight from the SDK's objects (not through lib/mapping), so a mapping mistake
shows up as a difference. Used by `bench/backfill.py` (a backfill's fidelity) and the sync tests
(tests/sync/fidelity.py builds the accounts it is run on).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

import lib.models  # noqa: F401 — registers the cache tables

LIVE = ("active", "past_due")  # the MRR rule (lib.models.MRR_STATUSES): trials are not revenue yet
PER_MONTH = {"month": 1.0, "year": 1 / 12, "week": 52 / 12, "day": 365 / 12}


def ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _sql(engine: Engine, table: str) -> dict[str, dict[str, Any]]:
    """All rows of a cache table by id, through SQLAlchemy's types (aware datetimes, decoded JSON)."""
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(SQLModel.metadata.tables[table])).mappings()}


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(microsecond=0)
    if isinstance(v, stripe.StripeObject):
        return v.to_dict()
    return v


def _diff(kind: str, oid: str, row: dict[str, Any] | None, expected: dict[str, Any], out: list[str]) -> None:
    if row is None:
        out.append(f"{kind} {oid}: missing from the cache")
        return
    for key, want in expected.items():
        got = row.get(key)
        if _norm(got) != _norm(want):
            out.append(f"{kind} {oid}.{key}: cache {got!r} != stripe {want!r}")


def differences(client: stripe.StripeClient, engine: Engine, *, all_cards: bool = True) -> list[str]:
    """Every difference between the cache and the sandbox, as readable lines (empty = identical).

    `all_cards=False` checks what the sync's pass 1 promises: every customer's default card (and every
    card the cache holds) as Stripe has it, without requiring each customer's other cards."""
    out: list[str] = []
    customers = _sql(engine, "customers")
    subs = _sql(engine, "subscriptions")
    items = _sql(engine, "subscription_items")
    invoices = _sql(engine, "invoices")
    lines = _sql(engine, "invoice_lines")
    pms = _sql(engine, "payment_methods")
    names = {p.id: p.name for p in client.v1.products.list({"limit": 100}).auto_paging_iter()}

    listed_customers: set[str] = set()
    mrr_by_customer: dict[str, int] = {}
    listed_subs: set[str] = set()
    for s in client.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter():
        listed_subs.add(s.id)
        sub_items = list(client.v1.subscription_items.list({"subscription": s.id, "limit": 100})
                         .auto_paging_iter())
        monthly = 0.0
        for it in sub_items:
            p = it.price
            monthly += (p.unit_amount or 0) * (it.quantity or 0) * PER_MONTH[p.recurring.interval] / (
                p.recurring.interval_count or 1)
            _diff("item", it.id, items.get(it.id), {
                "subscription_id": s.id, "price_id": p.id, "product_id": p.product, "quantity": it.quantity,
                "unit_amount": p.unit_amount, "interval": p.recurring.interval,
                "interval_count": p.recurring.interval_count, "product_name": names.get(p.product),
                "current_period_start": ts(it.current_period_start),
                "current_period_end": ts(it.current_period_end)}, out)
        cached_items = {i for i, r in items.items() if r["subscription_id"] == s.id}
        if cached_items != {it.id for it in sub_items}:
            out.append(f"subscription {s.id}: {len(cached_items)} items cached, {len(sub_items)} in stripe")
        _diff("subscription", s.id, subs.get(s.id), {
            "customer_id": s.customer, "status": s.status, "created": ts(s.created),
            "current_period_start": ts(min(it.current_period_start for it in sub_items)),
            "current_period_end": ts(min(it.current_period_end for it in sub_items)),
            "cancel_at_period_end": s.cancel_at_period_end, "cancel_at": ts(s.cancel_at),
            "canceled_at": ts(s.canceled_at), "trial_end": ts(s.trial_end),
            "collection_method": s.collection_method, "currency": s.currency, "mrr": round(monthly),
            "latest_invoice_id": s.latest_invoice, "metadata": s.metadata.to_dict()}, out)
        if s.status in LIVE:
            mrr_by_customer[s.customer] = mrr_by_customer.get(s.customer, 0) + round(monthly)
    if set(subs) != listed_subs:
        out.append(f"subscriptions: cache has {sorted(set(subs) - listed_subs)} extra, "
                   f"misses {sorted(listed_subs - set(subs))}")

    attached: set[str] = set()
    for c in client.v1.customers.list({"limit": 100}).auto_paging_iter():
        listed_customers.add(c.id)
        default = c.invoice_settings.default_payment_method if c.invoice_settings else None
        _diff("customer", c.id, customers.get(c.id), {
            "email": c.email, "name": c.name, "phone": c.phone, "created": ts(c.created), "currency": c.currency,
            "balance": c.balance, "delinquent": bool(c.delinquent), "deleted": False,
            "default_payment_method_id": default, "metadata": c.metadata.to_dict(),
            "email_normalized": c.email.strip().casefold() if c.email else None,
            "mrr": mrr_by_customer.get(c.id, 0)}, out)
        for pm in client.v1.customers.payment_methods.list(c.id, {"limit": 100}).auto_paging_iter():
            attached.add(pm.id)
            if not all_cards and pm.id != default and pm.id not in pms:
                continue
            _diff("payment_method", pm.id, pms.get(pm.id), {
                "customer_id": c.id, "type": pm.type, "card_brand": pm.card.brand, "card_last4": pm.card.last4,
                "card_exp_month": pm.card.exp_month, "card_exp_year": pm.card.exp_year,
                "card_fingerprint": pm.card.fingerprint}, out)
    for cid, row in customers.items():
        if cid not in listed_customers:
            gone = client.v1.customers.retrieve(cid)
            if not getattr(gone, "deleted", False) or not row["deleted"]:
                out.append(f"customer {cid}: cached deleted={row['deleted']} but stripe does not list it")
    for pid, row in pms.items():
        if pid not in attached and row["customer_id"] is not None:
            out.append(f"payment_method {pid}: cache says attached to {row['customer_id']}, stripe does not")

    listed_invoices: set[str] = set()
    for inv in client.v1.invoices.list({"limit": 100}).auto_paging_iter():
        listed_invoices.add(inv.id)
        inv_lines = list(client.v1.invoices.line_items.list(inv.id, {"limit": 100}).auto_paging_iter())
        cached_lines = {i for i, r in lines.items() if r["invoice_id"] == inv.id}
        if cached_lines != {ln.id for ln in inv_lines}:
            out.append(f"invoice {inv.id}: {len(cached_lines)} lines cached, {len(inv_lines)} in stripe")
        for ln in inv_lines:
            _diff("line", ln.id, lines.get(ln.id), {"amount": ln.amount, "currency": ln.currency,
                                                    "quantity": ln.quantity}, out)
        code = decline = message = None
        if inv.status in ("open", "uncollectible") and inv.attempt_count:
            payments = list(client.v1.invoice_payments.list({"invoice": inv.id}).auto_paging_iter())
            if payments:
                pi = client.v1.payment_intents.retrieve(max(payments, key=lambda p: p.created).payment.payment_intent)
                err = pi.last_payment_error
                if err:
                    code, decline, message = err.code, err.decline_code, err.message
        parent = inv.parent.subscription_details.subscription if inv.parent and inv.parent.subscription_details \
            else None
        _diff("invoice", inv.id, invoices.get(inv.id), {
            "customer_id": inv.customer, "subscription_id": parent, "number": inv.number, "status": inv.status,
            "currency": inv.currency, "amount_due": inv.amount_due, "amount_paid": inv.amount_paid,
            "amount_remaining": inv.amount_remaining, "total": inv.total, "attempt_count": inv.attempt_count,
            "attempted": inv.attempted, "next_payment_attempt": ts(inv.next_payment_attempt),
            "created": ts(inv.created), "due_date": ts(inv.due_date), "hosted_invoice_url": inv.hosted_invoice_url,
            "failure_code": code, "decline_code": decline, "failure_message": message}, out)
    if set(invoices) != listed_invoices:
        out.append(f"invoices: cache has {sorted(set(invoices) - listed_invoices)} extra, "
                   f"misses {sorted(listed_invoices - set(invoices))}")
    _endpoint_differences(client, engine, out)
    return out


def _endpoint_differences(client: stripe.StripeClient, engine: Engine, out: list[str]) -> None:
    """The account's webhook endpoints as the last sync run read them (url, status, events)."""
    cached = _sql(engine, "webhook_endpoints")
    listed = {e.id: e for e in client.v1.webhook_endpoints.list({"limit": 100}).auto_paging_iter()}
    for e in listed.values():
        _diff("webhook_endpoint", e.id, cached.get(e.id), {
            "url": e.url, "status": e.status, "enabled_events": list(e.enabled_events)}, out)
    if set(cached) != set(listed):
        out.append(f"webhook endpoints: cache has {sorted(set(cached) - set(listed))} extra")
