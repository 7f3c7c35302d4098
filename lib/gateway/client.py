"""One StripeClient per key, and `call`: every SDK call within the budget, retried where that is safe.

Retries are ours (budget-aware, honouring `Stripe-Should-Retry`); the SDK's own are off. A call that fails
for good raises the GatewayError subclass for it (lib/gateway/errors.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar

import stripe

from lib.config import Settings, get_settings
from lib.gateway.bucket import budget, count, count_sent
from lib.gateway.errors import translate

API_VERSION = "2026-10-28"
T = TypeVar("T")

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
MAX_ATTEMPTS = 8
NETWORK_ATTEMPTS = 4


@lru_cache(maxsize=4)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    base: Any = {"api": api_base} if api_base else {}
    return stripe.StripeClient(api_key, base_addresses=base, max_network_retries=0)


def get_client(settings: Settings | None = None) -> stripe.StripeClient:
    """One StripeClient per key and address for the process."""
    s = settings or get_settings()
    return _client(s.stripe_api_key, s.stripe_api_base)


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A response header by name, case-insensitively (None when absent or `headers` is not a mapping)."""
    if not headers:
        return None
    try:
        value = headers.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    except AttributeError:
        return None
    return None if value is None else str(value)


def retry_delay(exc: stripe.StripeError, attempt: int, *, safe: bool) -> float | None:
    """Seconds to wait before retrying `exc`, or None when retrying would be wrong.

    Stripe's own `Stripe-Should-Retry` wins; 429 is always retryable (the request was not processed);
    5xx and network errors only when the call is safe to repeat (a read, or a write with an idempotency key).
    """
    headers = getattr(exc, "headers", None)
    should = header(headers, "Stripe-Should-Retry")
    status = getattr(exc, "http_status", None)
    if should == "false":
        return None
    jittered = random.uniform(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    retry_after = header(headers, "Retry-After")
    if retry_after:
        try:
            jittered = max(jittered, min(60.0, float(retry_after)))
        except ValueError:
            pass
    if should == "true" or status == 429 or isinstance(exc, stripe.RateLimitError):
        return jittered
    if not safe:
        return None
    if isinstance(exc, stripe.APIConnectionError) or (status is not None and status >= 500):
        return jittered
    return None


def call(
    fn: Callable[..., T],
    *args: Any,
    idempotency_key: str | None = None,
    safe: bool | None = None,
    settings: Settings | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    **kwargs: Any,
) -> T:
    """Run one SDK call within the request budget, retrying what may be retried; raise a `GatewayError`.

    `fn` is an SDK method (e.g. `get_client().v1.customers.update`); `args`/`kwargs` go to it unchanged.
    Writes pass `idempotency_key=`: it is sent as the request option on every attempt, so a retried write
    is applied once. Reads pass `safe=True` (or nothing else is needed when a key is given).
    """
    if idempotency_key is not None:
        options = dict(kwargs.pop("options", None) or {})
        options["idempotency_key"] = idempotency_key
        kwargs["options"] = options
    safe = (idempotency_key is not None) if safe is None else safe
    bucket = budget(settings)
    attempt = 0
    while True:
        bucket.acquire()
        count_sent()
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            if getattr(exc, "http_status", None) == 429 or isinstance(exc, stripe.RateLimitError):
                bucket.throttled()
                count("rate_limited")
            delay = retry_delay(exc, attempt, safe=safe)
            attempt += 1
            # Unreachable Stripe (refused, DNS, timeout) gets a few seconds, not a minute: say so early.
            limit = min(max_attempts, NETWORK_ATTEMPTS) if isinstance(exc, stripe.APIConnectionError) else max_attempts
            if delay is None or attempt >= limit:
                count("errors")
                raise translate(exc) from None
            time.sleep(delay)  # this thread only: the others go on within the budget


def write(fn: Callable[..., Any], *args: Any, params: Mapping[str, Any], idempotency_key: str,
          settings: Settings | None = None, max_attempts: int = MAX_ATTEMPTS) -> dict[str, Any]:
    """One SDK write (`fn`, e.g. `client.v1.customers.update`) with the caller's idempotency key, so a retried or
    resumed write is applied once; returns Stripe's answer as a plain dict."""
    done = call(fn, *args, params=dict(params), idempotency_key=idempotency_key, settings=settings,
                max_attempts=max_attempts)
    return done.to_dict()
