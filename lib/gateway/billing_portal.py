"""Stripe's Billing Portal Sessions: a link to the hosted Customer Portal for one customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

from lib.config import Settings
from lib.gateway.client import call, get_client

FlowType = Literal["payment_method_update", "subscription_cancel", "subscription_update"]


class FlowSubscription(TypedDict):
    subscription: str | None  # None only in a request refused before sending (a subscription flow needs one)


class FlowData(TypedDict):
    """`flow_data`: the portal opens on one task; a subscription flow names its subscription."""

    type: FlowType
    subscription_cancel: NotRequired[FlowSubscription]
    subscription_update: NotRequired[FlowSubscription]


class SessionCreate(TypedDict):
    """`billing_portal.sessions.create` parameters as the dashboard sends them."""

    customer: str
    return_url: str
    locale: NotRequired[str]
    configuration: NotRequired[str]
    flow_data: NotRequired[FlowData]


@dataclass(frozen=True)
class PortalSession:
    """What the dashboard keeps of a portal session: its id, URL and creation time (the URL is shown, never stored)."""

    id: str
    url: str
    created: int


def create_session(params: SessionCreate, *, idempotency_key: str, settings: Settings | None = None,
                   max_attempts: int = 3) -> PortalSession:
    """Create a billing portal session within the request budget (a write: always with the caller's key).

    Someone is waiting on a single link, so few attempts (a brief 429 or blip is retried with the same key,
    then the user is told); bulk runs pass more. Raises GatewayError; lib/portal.py words portal advice.
    """
    client = get_client(settings)
    sess = call(client.v1.billing_portal.sessions.create, params=dict(params), idempotency_key=idempotency_key,
                settings=settings, max_attempts=max_attempts)
    return PortalSession(id=sess.id, url=sess.url, created=int(sess.created))
