"""Stripe's customer Tax IDs: list one customer's, create one."""

from __future__ import annotations

from typing import Any, TypedDict

from lib.config import Settings
from lib.gateway.client import get_client, write
from lib.gateway.reads import checked_id, list_all
from lib.ids import IdKind


class TaxIdCreate(TypedDict):
    """A tax id as `customers.tax_ids.create` takes it (e.g. type "eu_vat", value "DE123456789")."""

    type: str
    value: str


def for_customer(customer_id: str, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every tax id of one customer."""
    checked_id(IdKind.CUSTOMER, customer_id)
    return list_all(f"/v1/customers/{customer_id}/tax_ids", settings=settings)


def create(customer_id: str, params: TaxIdCreate, *, idempotency_key: str,
           settings: Settings | None = None) -> dict[str, Any]:
    """POST /v1/customers/{id}/tax_ids."""
    checked_id(IdKind.CUSTOMER, customer_id)
    return write(get_client(settings).v1.customers.tax_ids.create, customer_id, params=params,
                 idempotency_key=idempotency_key, settings=settings)
