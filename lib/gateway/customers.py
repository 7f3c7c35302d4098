"""Stripe's Customers resource: retrieve, update, and the cash balance (reads as plain dicts)."""

from __future__ import annotations

from typing import Any, TypedDict

from lib.config import Settings
from lib.gateway.client import get_client, write
from lib.gateway.reads import checked_id
from lib.gateway.reads import retrieve as read_path
from lib.ids import IdKind


class CustomerUpdate(TypedDict, total=False):
    """The `customers.update` parameters the dashboard sends (a merge's metadata)."""

    metadata: dict[str, str]


def retrieve(customer_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The customer as Stripe has it now, with its default payment method expanded (a deleted one reads as
    `{"id": …, "deleted": true}`). Raises NotFound when Stripe never had it."""
    checked_id(IdKind.CUSTOMER, customer_id)
    obj, _ = read_path(f"/v1/customers/{customer_id}", {"expand": ["invoice_settings.default_payment_method"]},
                       settings=settings)
    return obj


def update(customer_id: str, params: CustomerUpdate, *, idempotency_key: str,
           settings: Settings | None = None) -> dict[str, Any]:
    """POST /v1/customers/{id}."""
    checked_id(IdKind.CUSTOMER, customer_id)
    return write(get_client(settings).v1.customers.update, customer_id, params=params,
                 idempotency_key=idempotency_key, settings=settings)


def cash_balance(customer_id: str, *, settings: Settings | None = None) -> dict[str, int]:
    """Cash balance available per currency ({} when the customer has none: `available` is null or all zero).
    A missing customer raises like any other read."""
    checked_id(IdKind.CUSTOMER, customer_id)
    obj, _ = read_path(f"/v1/customers/{customer_id}/cash_balance", settings=settings)
    return {k: int(v) for k, v in (obj.get("available") or {}).items() if v}
