"""Stripe's Subscriptions resource: retrieve, list one customer's, create, update, cancel (plain dicts)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from lib.config import Settings
from lib.gateway.client import get_client, write
from lib.gateway.reads import checked_id, list_all
from lib.gateway.reads import retrieve as read_path
from lib.ids import IdKind

# The `status` filter of GET /v1/subscriptions ("all" includes canceled ones; the default leaves them out).
StatusFilter = Literal["all", "active", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired",
                       "trialing", "paused", "ended"]


class CancellationDetails(TypedDict, total=False):
    comment: str


class CancelParams(TypedDict, total=False):
    """`subscriptions.cancel` parameters: a merge cancels the old one now, without refund or proration."""

    prorate: bool
    invoice_now: bool
    cancellation_details: CancellationDetails


def retrieve(subscription_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The subscription as Stripe has it now. Raises NotFound when it does not exist."""
    checked_id(IdKind.SUBSCRIPTION, subscription_id)
    obj, _ = read_path(f"/v1/subscriptions/{subscription_id}", settings=settings)
    return obj


def for_customer(customer_id: str, *, status: StatusFilter | None = None, expand: list[str] | None = None,
                 settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every subscription of one customer (Stripe's default filter leaves canceled ones out: `status="all"`)."""
    checked_id(IdKind.CUSTOMER, customer_id)
    params: dict[str, Any] = {"customer": customer_id}
    if status:
        params["status"] = status
    if expand:
        params["expand"] = expand
    return list_all("/v1/subscriptions", params, settings=settings)


def create(params: dict[str, Any], *, idempotency_key: str, settings: Settings | None = None) -> dict[str, Any]:
    """POST /v1/subscriptions (`params` as `subscriptions.create` takes them: customer, items, …)."""
    return write(get_client(settings).v1.subscriptions.create, params=params, idempotency_key=idempotency_key,
                 settings=settings)


def update(subscription_id: str, params: dict[str, Any], *, idempotency_key: str,
           settings: Settings | None = None) -> dict[str, Any]:
    """POST /v1/subscriptions/{id} (e.g. `pause_collection`, `metadata`)."""
    checked_id(IdKind.SUBSCRIPTION, subscription_id)
    return write(get_client(settings).v1.subscriptions.update, subscription_id, params=params,
                 idempotency_key=idempotency_key, settings=settings)


def cancel(subscription_id: str, params: CancelParams, *, idempotency_key: str,
           settings: Settings | None = None) -> dict[str, Any]:
    """DELETE /v1/subscriptions/{id}: cancel it now."""
    checked_id(IdKind.SUBSCRIPTION, subscription_id)
    return write(get_client(settings).v1.subscriptions.cancel, subscription_id, params=params,
                 idempotency_key=idempotency_key, settings=settings)
