"""Customers written straight into the cache, with the same normal forms the sync computes."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from lib.models import Customer, Invoice, PaymentMethod, Subscription, utcnow
from lib.normalize import canonical_email, fold_name, normalize_email, normalize_phone

_seq = itertools.count(1)


def add_customer(
    session: Session, *, id: str | None = None, email: str | None = None, name: str | None = None,
    phone: str | None = None, address: dict[str, Any] | None = None, card: str | None = None,
    metadata: dict[str, Any] | None = None, days_old: int = 100, **fields: Any,
) -> Customer:
    cid = id or f"cus_t{next(_seq):06d}"
    c = Customer(
        id=cid, email=email, email_normalized=normalize_email(email), email_canonical=canonical_email(email),
        name=name, name_search=fold_name(name), phone=phone, phone_normalized=normalize_phone(phone),
        address=address or {}, metadata_=metadata or {}, created=utcnow() - timedelta(days=days_old), **fields,
    )
    session.add(c)
    if card:
        session.add(PaymentMethod(id=f"pm_{cid}_{card}", customer_id=cid, card_fingerprint=card, card_last4="4242"))
    session.commit()
    return c


def add_subscription(session: Session, customer_id: str, *, status: str = "active", mrr: int = 1000) -> None:
    session.add(Subscription(id=f"sub_{customer_id}_{next(_seq)}", customer_id=customer_id, status=status,
                             created=utcnow() - timedelta(days=10), mrr=mrr, currency="usd"))
    session.commit()


def add_invoice(session: Session, customer_id: str, *, status: str = "open", amount: int = 500) -> None:
    session.add(Invoice(id=f"in_{customer_id}_{next(_seq)}", customer_id=customer_id, status=status,
                        amount_due=amount, amount_remaining=amount if status == "open" else 0,
                        created=utcnow() - timedelta(days=2)))
    session.commit()
