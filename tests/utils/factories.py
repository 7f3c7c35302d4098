"""Synthetic cache rows written straight into the database (no Stripe): small, explicit test data.

Each helper fills the derived search columns exactly as the sync does (lib/normalize), commits, and
returns the row. Ids are unique per process; pass `id=` to choose one.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from lib.models import (
    Customer,
    Invoice,
    PaymentMethod,
    StripeEvent,
    Subscription,
    SubscriptionItem,
    SyncRun,
    SyncState,
    utcnow,
)
from lib.normalize import canonical_email, email_domain, fold_name, normalize_email, normalize_phone

_seq = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_T{next(_seq):08d}"


def _save(session: Session, row: Any) -> Any:
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def make_customer(session: Session, **kw: Any) -> Customer:
    email = kw.pop("email", None)
    name = kw.pop("name", None)
    phone = kw.pop("phone", None)
    row = Customer(
        id=kw.pop("id", None) or _id("cus"), email=email, email_normalized=normalize_email(email),
        email_canonical=canonical_email(email), email_domain=email_domain(email), name=name,
        name_search=fold_name(name), phone=phone,
        phone_normalized=normalize_phone(phone), created=kw.pop("created", None) or utcnow(),
        currency=kw.pop("currency", "usd"), **kw,
    )
    return _save(session, row)


def make_subscription(session: Session, customer: Customer | str, **kw: Any) -> Subscription:
    items: list[dict[str, Any]] = kw.pop("items", None) or [{}]
    cid = customer if isinstance(customer, str) else customer.id
    now = utcnow()
    row = Subscription(
        id=kw.pop("id", None) or _id("sub"), customer_id=cid, status=kw.pop("status", "active"),
        created=kw.pop("created", None) or now, currency=kw.pop("currency", "usd"),
        current_period_start=kw.pop("current_period_start", now - timedelta(days=10)),
        current_period_end=kw.pop("current_period_end", now + timedelta(days=20)), **kw,
    )
    _save(session, row)
    for item in items:
        make_item(session, row, **item)
    return row


def make_item(session: Session, subscription: Subscription, **kw: Any) -> SubscriptionItem:
    row = SubscriptionItem(
        id=kw.pop("id", None) or _id("si"), subscription_id=subscription.id,
        price_id=kw.pop("price_id", "price_basic_monthly"), product_id=kw.pop("product_id", "prod_basic"),
        product_name=kw.pop("product_name", "Basic"), unit_amount=kw.pop("unit_amount", subscription.mrr),
        currency=kw.pop("currency", subscription.currency), interval=kw.pop("interval", "month"),
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end, **kw,
    )
    return _save(session, row)


def make_invoice(session: Session, customer: Customer | str, **kw: Any) -> Invoice:
    cid = customer if isinstance(customer, str) else customer.id
    status = kw.pop("status", "paid")
    amount = kw.pop("amount_due", 1000)
    paid = amount if status == "paid" else 0
    iid = kw.pop("id", None) or _id("in")
    row = Invoice(
        id=iid, customer_id=cid, status=status, currency=kw.pop("currency", "usd"), amount_due=amount,
        amount_paid=kw.pop("amount_paid", paid), amount_remaining=kw.pop("amount_remaining", amount - paid),
        total=kw.pop("total", amount), attempt_count=kw.pop("attempt_count", 1 if status == "paid" else 0),
        attempted=kw.pop("attempted", True), created=kw.pop("created", None) or utcnow(),
        hosted_invoice_url=kw.pop("hosted_invoice_url", f"https://invoice.stripe.com/i/{iid}"), **kw,
    )
    return _save(session, row)


def make_failed_invoice(session: Session, customer: Customer | str, **kw: Any) -> Invoice:
    """An open invoice whose payment failed (attempted, with a decline code and a next retry)."""
    kw.setdefault("status", "open")
    kw.setdefault("attempt_count", 1)
    kw.setdefault("decline_code", "insufficient_funds")
    kw.setdefault("failure_code", "card_declined")
    kw.setdefault("failure_message", "Your card has insufficient funds.")
    kw.setdefault("next_payment_attempt", utcnow() + timedelta(days=3))
    return make_invoice(session, customer, **kw)


def make_payment_method(session: Session, customer: Customer | str | None, **kw: Any) -> PaymentMethod:
    cid = customer if customer is None or isinstance(customer, str) else customer.id
    row = PaymentMethod(
        id=kw.pop("id", None) or _id("pm"), customer_id=cid, card_brand=kw.pop("card_brand", "visa"),
        card_last4=kw.pop("card_last4", "4242"), card_exp_month=kw.pop("card_exp_month", 12),
        card_exp_year=kw.pop("card_exp_year", utcnow().year + 2), created=kw.pop("created", None) or utcnow(),
        **kw,
    )
    return _save(session, row)


def make_event(session: Session, object_id: str, **kw: Any) -> StripeEvent:
    row = StripeEvent(
        id=kw.pop("id", None) or _id("evt"), type=kw.pop("type", "customer.updated"), object_id=object_id,
        created=kw.pop("created", None) or utcnow(), **kw,
    )
    return _save(session, row)


def make_sync_run(session: Session, **kw: Any) -> SyncRun:
    now = utcnow()
    row = SyncRun(
        mode=kw.pop("mode", "incremental"), status=kw.pop("status", "succeeded"),
        started_at=kw.pop("started_at", now - timedelta(seconds=5)), finished_at=kw.pop("finished_at", now),
        **kw,
    )
    return _save(session, row)


def make_sync_state(session: Session, resource: str, **kw: Any) -> SyncState:
    return _save(session, SyncState(resource=resource, **kw))
