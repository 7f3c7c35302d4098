"""Stripe's Invoices resource: list one customer's, pay one now (finance's "Retry now")."""

from __future__ import annotations

from typing import Any, Literal

from lib.config import Settings
from lib.gateway.client import get_client, write
from lib.gateway.reads import checked_id, list_all
from lib.ids import IdKind

Status = Literal["draft", "open", "paid", "uncollectible", "void"]


def for_customer(customer_id: str, *, status: Status | None = None, limit: int | None = None,
                 settings: Settings | None = None) -> list[dict[str, Any]]:
    """One customer's invoices, newest first, at most `limit` of them."""
    checked_id(IdKind.CUSTOMER, customer_id)
    params: dict[str, Any] = {"customer": customer_id}
    if status:
        params["status"] = status
    return list_all("/v1/invoices", params, limit=limit, settings=settings)


def pay(invoice_id: str, *, idempotency_key: str, settings: Settings | None = None,
        max_attempts: int = 3) -> dict[str, Any]:
    """POST /v1/invoices/{id}/pay: charge the invoice now with the card Stripe would use (the invoice's, the
    subscription's or the customer's default). Returns the invoice as a plain dict. A declined card raises
    CardDeclined (its `code` the decline code); nothing is retried past a decline. Someone is waiting on the
    click, so few attempts."""
    checked_id(IdKind.INVOICE, invoice_id)
    return write(get_client(settings).v1.invoices.pay, invoice_id, params={}, idempotency_key=idempotency_key,
                 settings=settings, max_attempts=max_attempts)
