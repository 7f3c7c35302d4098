"""Shorthands over tests/utils/factories for duplicate scenarios: a customer with its card in one call."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from lib.models import Customer
from tests.utils.factories import days_ago, make_customer, make_invoice, make_payment_method, make_subscription


def add_customer(session: Session, *, card: str | None = None, metadata: dict[str, Any] | None = None,
                 days_old: int = 100, address: dict[str, Any] | None = None, **fields: Any) -> Customer:
    """A cached customer (normal forms filled like the sync does) plus, with `card=`, a card fingerprint."""
    c = make_customer(session, created=days_ago(days_old), metadata_=metadata or {}, address=address or {},
                      **fields)
    if card:
        make_payment_method(session, c.id, card_fingerprint=card)
    return c


def add_subscription(session: Session, customer_id: str, *, status: str = "active") -> None:
    make_subscription(session, customer_id, status=status, created=days_ago(10))


def add_invoice(session: Session, customer_id: str, *, status: str = "open", amount: int = 500) -> None:
    make_invoice(session, customer_id, status=status, amount_due=amount, created=days_ago(2))
