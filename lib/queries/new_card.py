"""The card a retry would charge now, and whether it is new since the failure: the columns, joins and hint
shared by the failed worklist and the customer page's invoices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    case,
    func,
    or_,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from lib.models import (
    Customer,
    Invoice,
    PaymentMethod,
    Subscription,
)

# --- "new card since the failure" ---------------------------------------------------------------
# The card a retry would charge now: the subscription's default payment method, else the customer's (Stripe's
# order; an invoice-level default is not cached). It is "new" when it is not the card the last failed attempt
# charged (invoices.failed_payment_method_id), or when that attempt had no card at all. The card must still be
# attached to the invoice's customer in the cache. See docs/schema.md.
_NEW_CARD = aliased(PaymentMethod, name="new_card")
_INV_SUB = aliased(Subscription, name="inv_sub")
_INV_CUSTOMER = aliased(Customer, name="inv_customer")
NEW_CARD_STATUSES = ("open", "uncollectible")


def _with_card_joins(stmt: Select) -> Select:
    """Outer-join an invoices statement to the card a retry would charge now (`_NEW_CARD`)."""
    current = func.coalesce(col(_INV_SUB.default_payment_method_id), col(_INV_CUSTOMER.default_payment_method_id))
    return (stmt.outerjoin(_INV_CUSTOMER, col(_INV_CUSTOMER.id) == col(Invoice.customer_id))
            .outerjoin(_INV_SUB, col(_INV_SUB.id) == col(Invoice.subscription_id))
            .outerjoin(_NEW_CARD, and_(col(_NEW_CARD.id) == current,
                                       col(_NEW_CARD.customer_id) == col(Invoice.customer_id))))


def new_card_condition() -> ColumnElement[bool]:
    """An attempted unpaid invoice whose retry would charge another card than the one that failed it."""
    return and_(col(Invoice.status).in_(NEW_CARD_STATUSES), col(Invoice.attempt_count) > 0,
                col(_NEW_CARD.id).is_not(None),
                or_(col(Invoice.failed_payment_method_id) != col(_NEW_CARD.id),
                    and_(col(Invoice.failed_payment_method_id).is_(None),
                         col(Invoice.failure_code) == "payment_method_missing")))


def _new_card_columns() -> list[Any]:
    """The new card's id, brand, last 4 and creation time, or NULLs when there is none (`new_card_condition`)."""
    def when(column: Any, label: str) -> Any:
        return case((new_card_condition(), column), else_=None).label(label)

    return [when(col(_NEW_CARD.id), "new_card_id"), when(col(_NEW_CARD.card_brand), "new_card_brand"),
            when(col(_NEW_CARD.card_last4), "new_card_last4"), when(col(_NEW_CARD.created), "new_card_created")]


def new_card_hint(r: dict[str, Any]) -> str:
    """'New card Visa •••• 4242 added 2026-12-03 14:05 UTC — retry now', or '' (a row with `_new_card_columns`)."""
    if not r.get("new_card_id"):
        return ""
    card = " ".join(x for x in (str(r.get("new_card_brand") or "").title(),
                                f"•••• {r['new_card_last4']}" if r.get("new_card_last4") else "") if x)
    created = r.get("new_card_created")
    when = f" added {created.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(created, datetime) else " on file"
    return f"New card{' ' + card if card else ''}{when} — retry now"
