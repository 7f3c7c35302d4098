"""The one place that talks to Stripe: a StripeClient, a request budget, retries, and plain-language errors.

Everything above this module (sync, portal links, merges) calls functions here and catches `GatewayError`,
whose `user_message` says what happened and what to do. The secret key never appears in a message or log.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from itertools import islice
from typing import Any, TypeVar

import orjson
import stripe

from lib import ids
from lib.config import Settings, get_settings

API_VERSION = "2026-10-28"
T = TypeVar("T")


@dataclass
class GatewayError(Exception):
    """A Stripe call failed; `kind` lets callers branch, `user_message` is safe to show in the UI."""

    kind: str  # not_configured | missing | rate_limited | network | auth | permission | invalid | server | idempotency
    #            | declined (a card payment the bank refused: `code` is the decline code, else the error code)
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
    if isinstance(exc, stripe.CardError):
        decline = getattr(err, "decline_code", None) if err is not None else None
        return GatewayError("declined", message or "The card was declined.", code=decline or code, param=param,
                            status=status, request_id=request_id)
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


# --- request budget and retries (core: every call goes through `call`) -----------------------


ADAPT_CUT = 0.85  # on a 429 the budget drops to this share of itself (at most once per ADAPT_COOLDOWN s)
ADAPT_COOLDOWN = 1.0
ADAPT_FLOOR = 0.8  # never below this share of the configured budget
ADAPT_QUIET = 3.0  # seconds without a 429 before the budget climbs back
ADAPT_CLIMB = 0.1  # share of the configured budget regained per quiet second

_priority = threading.local()


@contextmanager
def low_priority() -> Iterator[None]:
    """Requests made by this thread inside the block wait while any normal request waits for the budget
    (the sync's pass 2 — every customer's card list — runs in whatever pass 1 leaves)."""
    before = getattr(_priority, "low", False)
    _priority.low = True
    try:
        yield
    finally:
        _priority.low = before


class TokenBucket:
    """A thread-safe token bucket: `acquire()` blocks until a request may go out within the budget.

    The budget adapts: `throttled()` (Stripe answered 429) cuts the rate to `ADAPT_CUT` of itself, at most
    once a second and never below `ADAPT_FLOOR` of the configured rate; after `ADAPT_QUIET` seconds without a
    429 it climbs back by `ADAPT_CLIMB` of the configured rate per second. Low-priority acquirers
    (`low_priority`) wait while a normal one is waiting."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.ceiling = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._normal_waiting = 0
        self._last_429 = -1e9
        self._last_cut = -1e9

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if self.rate < self.ceiling:
            quiet = now - max(self._last_429 + ADAPT_QUIET, self._last)
            if quiet > 0:
                self.rate = min(self.ceiling, self.rate + self.ceiling * ADAPT_CLIMB * quiet)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._last = now

    def acquire(self) -> None:
        low = getattr(_priority, "low", False)
        if not low:
            with self._lock:
                self._normal_waiting += 1
        try:
            while True:
                with self._lock:
                    self._refill(time.monotonic())
                    if self._tokens >= 1.0 and (not low or self._normal_waiting == 0):
                        self._tokens -= 1.0
                        return
                    wait = max(0.002, (1.0 - self._tokens) / self.rate)
                time.sleep(wait)
        finally:
            if not low:
                with self._lock:
                    self._normal_waiting -= 1

    def throttled(self) -> None:
        """Stripe answered 429: spend less for a while."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            self._last_429 = now
            if now - self._last_cut >= ADAPT_COOLDOWN:
                self.rate = max(self.ceiling * ADAPT_FLOOR, self.rate * ADAPT_CUT)
                self._last_cut = now


_buckets: dict[float, TokenBucket] = {}
_buckets_lock = threading.Lock()
_requests_sent = 0
_stats: dict[str, int] = {}  # "requests:<resource>", "rate_limited", "errors" (see `request_stats`)


def budget(settings: Settings | None = None) -> TokenBucket:
    """The process-wide bucket for the configured budget (STRIPE_REQUESTS_PER_SECOND, else 20 test / 80 live)."""
    rate = (settings or get_settings()).request_budget
    with _buckets_lock:
        if rate not in _buckets:
            _buckets[rate] = TokenBucket(rate)
        return _buckets[rate]


def request_stats() -> dict[str, int]:
    """Counters since the process started (callers take differences): `requests:<resource>` per list or
    object path (`requests:customers`, `requests:payment_intents`, …), `rate_limited` (429s answered) and
    `errors` (calls that failed for good)."""
    with _buckets_lock:
        return dict(_stats)


def _count(key: str) -> None:
    with _buckets_lock:
        _stats[key] = _stats.get(key, 0) + 1


def _resource_of(path: str) -> str:
    """`/v1/customers/cus_1/payment_methods` → `payment_methods`; `/v1/invoices` → `invoices`."""
    parts = [p for p in path.split("/") if p and p != "v1"]
    if len(parts) >= 3:
        return parts[2]
    return parts[0] if parts else "other"


def requests_sent() -> int:
    """Requests sent to Stripe by this process so far (retries included): callers take differences."""
    return _requests_sent


def _header(headers: Any, name: str) -> str | None:
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


BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
MAX_ATTEMPTS = 8
NETWORK_ATTEMPTS = 4


def retry_delay(exc: stripe.StripeError, attempt: int, *, safe: bool) -> float | None:
    """Seconds to wait before retrying `exc`, or None when retrying would be wrong.

    Stripe's own `Stripe-Should-Retry` wins; 429 is always retryable (the request was not processed);
    5xx and network errors only when the call is safe to repeat (a read, or a write with an idempotency key).
    """
    headers = getattr(exc, "headers", None)
    should = _header(headers, "Stripe-Should-Retry")
    status = getattr(exc, "http_status", None)
    if should == "false":
        return None
    jittered = random.uniform(0.5, 1.0) * min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    retry_after = _header(headers, "Retry-After")
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
    """Run one SDK call within the request budget, retrying what may be retried; raise `GatewayError`.

    `fn` is an SDK method (e.g. `get_client().v1.customers.update`); `args`/`kwargs` go to it unchanged.
    Writes pass `idempotency_key=`: it is sent as the request option on every attempt, so a retried write
    is applied once. Reads pass `safe=True` (or nothing else is needed when a key is given).
    """
    global _requests_sent
    if idempotency_key is not None:
        options = dict(kwargs.pop("options", None) or {})
        options["idempotency_key"] = idempotency_key
        kwargs["options"] = options
    safe = (idempotency_key is not None) if safe is None else safe
    bucket = budget(settings)
    attempt = 0
    while True:
        bucket.acquire()
        with _buckets_lock:
            _requests_sent += 1
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            if getattr(exc, "http_status", None) == 429 or isinstance(exc, stripe.RateLimitError):
                bucket.throttled()
                _count("rate_limited")
            delay = retry_delay(exc, attempt, safe=safe)
            attempt += 1
            # Unreachable Stripe (refused, DNS, timeout) gets a few seconds, not a minute: say so early.
            limit = min(max_attempts, NETWORK_ATTEMPTS) if isinstance(exc, stripe.APIConnectionError) else max_attempts
            if delay is None or attempt >= limit:
                _count("errors")
                raise translate(exc) from None
            time.sleep(delay)  # this thread only: the others go on within the budget


# --- reads for the sync (owned by the sync work) ----------------------------------------------


@dataclass
class Page:
    """One list page as plain dicts, plus Stripe's clock when it answered (the version of these states)."""

    data: list[dict[str, Any]]
    has_more: bool
    server_time: int


def _server_time(headers: Any) -> int:
    """Stripe's `Date` header in epoch seconds (our own clock if it is missing or unreadable)."""
    raw = _header(headers, "Date")
    if raw:
        try:
            return int(parsedate_to_datetime(raw).timestamp())
        except (TypeError, ValueError):
            pass
    return int(time.time())


def decode(body: bytes | str) -> Any:
    """A response body as plain dicts and lists: what every sync read is parsed with (and `bench/ingest.py`
    measures). The SDK's own `raw_request` parses into OrderedDicts, twice as slow: 22 against 11 µs an
    object on average over a backfill's pages, with the orjson parser 6."""
    return orjson.loads(body)


def _raw_get(client: stripe.StripeClient, path: str, **params: Any) -> tuple[Any, Any]:
    """`client.raw_request("get", …)` that hands back the body parsed by `decode`.

    Sent by the same SDK requestor (headers, API version, key, base address, telemetry); an error status
    is turned into the SDK's own typed exception by the SDK, so `call` retries and translates it as any
    other. Uses the requestor of the pinned SDK (stripe==16.1.0); tests/sync cover it against the sandbox."""
    requestor = client._requestor
    body, status, headers = requestor.request_raw("get", path, params=params, base_address="api",
                                                  api_mode="V1", usage=["raw_request"])
    if not 200 <= status < 300:
        requestor._interpret_response(body, status, headers, "V1")  # raises stripe.StripeError
    try:
        return decode(body), headers  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        raise stripe.APIError(f"Invalid response body from API (HTTP {status})", http_status=status) from None


def bad_id(message: str) -> GatewayError:
    """The error for an id that is not one: refused before any request, so nothing was asked or changed."""
    return GatewayError("invalid", message + " Nothing was sent to Stripe.")


def checked_path(path: str) -> str:
    """`path` when every id in it has its kind's shape (lib/ids.py); else GatewayError, before any request."""
    problem = ids.path_problem(path)
    if problem:
        raise bad_id(problem)
    return path


def checked_id(kind: ids.IdKind, value: str) -> str:
    """`value` when it is a `kind` id; else GatewayError naming it, before any request."""
    problem = ids.id_problem(kind, value)
    if problem:
        raise bad_id(problem)
    return value


def _get(path: str, params: dict[str, Any], settings: Settings | None) -> tuple[Any, int]:
    """Every GET by path goes through here: the path is checked first (ids of their kind, no `..`)."""
    checked_path(path)
    _count("requests:" + _resource_of(path))
    data, headers = call(_raw_get, get_client(settings), path, safe=True, settings=settings, **params)
    return data, _server_time(headers)


def list_page(path: str, params: dict[str, Any] | None = None, *, settings: Settings | None = None) -> Page:
    """GET one page of a list endpoint (e.g. `/v1/customers`, limit 100) with the budget and retries."""
    body, server_time = _get(path, {"limit": 100, **(params or {})}, settings)
    return Page(list(body.get("data") or []), bool(body.get("has_more")), server_time)


def retrieve(path: str, params: dict[str, Any] | None = None, *, settings: Settings | None = None
             ) -> tuple[dict[str, Any], int]:
    """GET one object (e.g. `/v1/customers/cus_1`); returns it with Stripe's clock."""
    return _get(path, dict(params or {}), settings)


def iter_pages(path: str, params: dict[str, Any] | None = None, *, starting_after: str | None = None,
               settings: Settings | None = None) -> Iterator[Page]:
    """Every page of a list endpoint (only one is held at a time), each with Stripe's clock."""
    cursor = starting_after
    while True:
        page = list_page(path, {**(params or {}), **({"starting_after": cursor} if cursor else {})},
                         settings=settings)
        yield page
        if not page.has_more or not page.data:
            return
        cursor = page.data[-1]["id"]


def iter_list(path: str, params: dict[str, Any] | None = None, *, starting_after: str | None = None,
              settings: Settings | None = None) -> Iterator[dict[str, Any]]:
    """Every object of a list endpoint, page by page (only one page is held at a time)."""
    for page in iter_pages(path, params, starting_after=starting_after, settings=settings):
        yield from page.data


def complete_nested(obj: dict[str, Any], field: str, path: str, params: dict[str, Any] | None = None, *,
                    settings: Settings | None = None) -> None:
    """Stripe embeds at most 10 items of a nested list (`items`, `lines`): fetch the rest when there are more."""
    nested = obj.get(field)
    if not isinstance(nested, dict) or not nested.get("has_more"):
        return
    data = list(nested.get("data") or [])
    rest = iter_list(path, params, starting_after=data[-1]["id"] if data else None, settings=settings)
    obj[field] = {**nested, "data": data + list(rest), "has_more": False}



# --- portal sessions (owned by the portal-links work) -----------------------------------------


@dataclass(frozen=True)
class PortalSession:
    """What the dashboard keeps of a portal session: its id, URL and creation time (the URL is shown, never stored)."""

    id: str
    url: str
    created: int


def create_portal_session(
    params: dict[str, Any], *, idempotency_key: str, settings: Settings | None = None, max_attempts: int = 3,
) -> PortalSession:
    """Create a billing portal session within the request budget (a write: always with the caller's key).

    Someone is waiting on a single link, so few attempts (a brief 429 or blip is retried with the same key,
    then the user is told); bulk runs pass more. Raises GatewayError; lib/portal.py words portal advice.
    """
    client = get_client(settings)
    sess = call(client.v1.billing_portal.sessions.create, params=params, idempotency_key=idempotency_key,
                settings=settings, max_attempts=max_attempts)
    return PortalSession(id=sess.id, url=sess.url, created=int(sess.created))


# --- merge writes (owned by the merge work) ---------------------------------------------------
# Reads return plain dicts so lib/merge works on data, not SDK objects; they go through the core's budget
# and retries (`call`, `iter_list`, `retrieve`). Every write carries the caller's idempotency key (derived
# from merge job + step), so a retried or resumed merge step is applied once.


def merge_retrieve_customer(customer_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The customer as Stripe has it now, with its default payment method expanded."""
    checked_id(ids.IdKind.CUSTOMER, customer_id)
    obj, _ = retrieve(f"/v1/customers/{customer_id}", {"expand": ["invoice_settings.default_payment_method"]},
                      settings=settings)
    return obj


def merge_customer_cash_balance(customer_id: str, *, settings: Settings | None = None) -> dict[str, int]:
    """Cash balance available per currency ({} when the customer has none: `available` is null or all zero).
    A missing customer raises like any other read."""
    checked_id(ids.IdKind.CUSTOMER, customer_id)
    obj, _ = retrieve(f"/v1/customers/{customer_id}/cash_balance", settings=settings)
    return {k: int(v) for k, v in (obj.get("available") or {}).items() if v}


def merge_list(path: str, params: dict[str, Any] | None = None, *, limit: int | None = None,
               settings: Settings | None = None) -> list[dict[str, Any]]:
    """A customer's objects from a list endpoint (e.g. `/v1/subscriptions`), at most `limit` of them."""
    return list(islice(iter_list(path, params, settings=settings), limit))


def _merge_write(fn: Callable[..., Any], *args: Any, params: dict[str, Any], idempotency_key: str,
                 settings: Settings | None) -> dict[str, Any]:
    return call(fn, *args, params=params, idempotency_key=idempotency_key, settings=settings).to_dict()


def merge_create_subscription(params: dict[str, Any], *, idempotency_key: str,
                              settings: Settings | None = None) -> dict[str, Any]:
    return _merge_write(get_client(settings).v1.subscriptions.create, params=params,
                        idempotency_key=idempotency_key, settings=settings)


def merge_update_subscription(subscription_id: str, params: dict[str, Any], *, idempotency_key: str,
                              settings: Settings | None = None) -> dict[str, Any]:
    checked_id(ids.IdKind.SUBSCRIPTION, subscription_id)
    return _merge_write(get_client(settings).v1.subscriptions.update, subscription_id, params=params,
                        idempotency_key=idempotency_key, settings=settings)


def merge_cancel_subscription(subscription_id: str, params: dict[str, Any], *, idempotency_key: str,
                              settings: Settings | None = None) -> dict[str, Any]:
    """Cancel a subscription now (`prorate`, `invoice_now`, `cancellation_details`): a merge's old one."""
    return _merge_write(get_client(settings).v1.subscriptions.cancel, subscription_id, params=params,
                        idempotency_key=idempotency_key, settings=settings)


def merge_create_balance_transaction(customer_id: str, params: dict[str, Any], *, idempotency_key: str,
                                     settings: Settings | None = None) -> dict[str, Any]:
    checked_id(ids.IdKind.CUSTOMER, customer_id)
    return _merge_write(get_client(settings).v1.customers.balance_transactions.create, customer_id,
                        params=params, idempotency_key=idempotency_key, settings=settings)


def merge_create_tax_id(customer_id: str, params: dict[str, Any], *, idempotency_key: str,
                        settings: Settings | None = None) -> dict[str, Any]:
    checked_id(ids.IdKind.CUSTOMER, customer_id)
    return _merge_write(get_client(settings).v1.customers.tax_ids.create, customer_id, params=params,
                        idempotency_key=idempotency_key, settings=settings)


def merge_update_customer(customer_id: str, params: dict[str, Any], *, idempotency_key: str,
                          settings: Settings | None = None) -> dict[str, Any]:
    checked_id(ids.IdKind.CUSTOMER, customer_id)
    return _merge_write(get_client(settings).v1.customers.update, customer_id, params=params,
                        idempotency_key=idempotency_key, settings=settings)


# --- invoice writes (finance's "Retry now") ------------------------------------------------------------------


def invoices_pay(invoice_id: str, *, idempotency_key: str, settings: Settings | None = None,
                 max_attempts: int = 3) -> dict[str, Any]:
    """POST /v1/invoices/{id}/pay: charge the invoice now with the card Stripe would use (the invoice's,
    the subscription's or the customer's default). Returns the invoice as a plain dict. A declined card raises
    GatewayError kind "declined" (its `code` the decline code); nothing is retried past a decline."""
    client = get_client(settings)
    paid = call(client.v1.invoices.pay, invoice_id, idempotency_key=idempotency_key, settings=settings,
                max_attempts=max_attempts)
    return paid.to_dict()
