"""Stripe's customer Balance Transactions: list one customer's, create one (a merge moves a balance with two)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from lib.config import Settings
from lib.gateway.client import get_client, write
from lib.gateway.reads import checked_id, list_all
from lib.ids import IdKind


class BalanceTransactionCreate(TypedDict):
    """`customers.balance_transactions.create` parameters: `amount` in the currency's minor unit (negative:
    a credit); `currency` may be left out when the customer has one."""

    amount: int
    description: str
    metadata: dict[str, str]
    currency: NotRequired[str]


def for_customer(customer_id: str, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every balance transaction of one customer."""
    checked_id(IdKind.CUSTOMER, customer_id)
    return list_all(f"/v1/customers/{customer_id}/balance_transactions", settings=settings)


def create(customer_id: str, params: BalanceTransactionCreate, *, idempotency_key: str,
           settings: Settings | None = None) -> dict[str, Any]:
    """POST /v1/customers/{id}/balance_transactions."""
    checked_id(IdKind.CUSTOMER, customer_id)
    return write(get_client(settings).v1.customers.balance_transactions.create, customer_id, params=params,
                 idempotency_key=idempotency_key, settings=settings)
