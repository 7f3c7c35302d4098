"""The one place that talks to Stripe: a StripeClient, a request budget, retries, and plain-language errors.

Everything above this module (sync, portal links, merges) calls functions here and catches `GatewayError`,
whose `user_message` says what happened and what to do. The secret key never appears in a message or log.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import stripe

from lib.config import Settings, get_settings

API_VERSION = "2026-10-28"


@dataclass
class GatewayError(Exception):
    """A Stripe call failed; `kind` lets callers branch, `user_message` is safe to show in the UI."""

    kind: str  # not_configured | missing | rate_limited | network | auth | permission | invalid | server | idempotency
    user_message: str
    code: str | None = None
    param: str | None = None
    status: int | None = None
    request_id: str | None = None

    def __str__(self) -> str:
        return self.user_message


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    base = {"api": api_base} if api_base else {}
    # Retries are ours (budget-aware, honouring Stripe-Should-Retry); the SDK's own are off.
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=0)


def get_client(settings: Settings | None = None) -> stripe.StripeClient:
    """One StripeClient per key and address for the process."""
    s = settings or get_settings()
    return _client(s.stripe_api_key, s.stripe_api_base)


def translate(exc: stripe.StripeError) -> GatewayError:
    """Turn an SDK exception into a GatewayError with a message a support engineer can act on."""
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    err = getattr(exc, "error", None)
    param = getattr(err, "param", None) if err is not None else None
    request_id = getattr(exc, "request_id", None)
    message = getattr(err, "message", None) or getattr(exc, "user_message", None) or ""

    def make(kind: str, text: str) -> GatewayError:
        return GatewayError(kind, text, code=code, param=param, status=status, request_id=request_id)

    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return make("rate_limited", "Stripe is rate-limiting this account right now. Wait a minute and try again.")
    if isinstance(exc, stripe.APIConnectionError):
        return make(
            "network",
            "Stripe could not be reached (network error). Check the connection and try again; nothing was changed.",
        )
    if isinstance(exc, stripe.AuthenticationError):
        return make(
            "auth",
            "Stripe rejected the API key. Check STRIPE_API_KEY in the server's settings (it may be revoked or "
            "for another account).",
        )
    if isinstance(exc, stripe.PermissionError):
        return make(
            "permission",
            "The restricted API key lacks a permission this action needs. Add it in Stripe's Dashboard → "
            "Developers → API keys" + (f" ({message})" if message else "."),
        )
    if isinstance(exc, stripe.IdempotencyError):
        return make("idempotency", "Stripe refused a repeated request with different content: " + message)
    if isinstance(exc, stripe.InvalidRequestError):
        if code == "resource_missing":
            return make("missing", (message or "That object does not exist in Stripe.")
                        + " Refresh the cache for this customer; it may have been deleted.")
        return make("invalid", message or "Stripe refused the request as invalid.")
    if status is not None and status >= 500:
        return make("server", "Stripe had an internal error. Try again in a minute; nothing was changed.")
    return make("server", message or "Stripe returned an unexpected error. Try again later.")


# --- reads for the sync (owned by the sync work) ----------------------------------------------


# --- portal sessions (owned by the portal-links work) -----------------------------------------


@dataclass(frozen=True)
class PortalSession:
    """What the dashboard keeps of a portal session: its id, URL and creation time (the URL is shown, never stored)."""

    id: str
    url: str
    created: int


def create_portal_session(
    params: dict, *, idempotency_key: str, settings: Settings | None = None
) -> PortalSession:
    """Create a billing portal session (a write: it always carries the caller's idempotency key).

    Raises GatewayError; the caller (lib/portal.py) turns portal-specific errors into portal advice.
    """
    client = get_client(settings)
    try:
        sess = client.v1.billing_portal.sessions.create(
            params=params, options={"idempotency_key": idempotency_key}  # type: ignore[arg-type]
        )
    except stripe.StripeError as exc:
        raise translate(exc) from None
    return PortalSession(id=sess.id, url=sess.url, created=int(sess.created))


# --- merge writes (owned by the merge work) ---------------------------------------------------
