"""Reads by path, parsed into plain dicts: pages of a list, one object, every object, nested lists completed.

The sync and the per-resource modules read through here; every path is checked (ids of their kind, no
`..`) before any request, and every read goes through `call` (budget, retries, typed errors).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any, cast

import orjson
import stripe

from lib import ids
from lib.config import Settings
from lib.gateway.bucket import count
from lib.gateway.client import call, get_client, header
from lib.gateway.errors import bad_id


@dataclass
class Page:
    """One list page as plain dicts, plus Stripe's clock when it answered (the version of these states)."""

    data: list[dict[str, Any]]
    has_more: bool
    server_time: int


def _server_time(headers: Mapping[str, Any] | None) -> int:
    """Stripe's `Date` header in epoch seconds (our own clock if it is missing or unreadable)."""
    raw = header(headers, "Date")
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
        return decode(cast(bytes, body)), headers  # the requestor types its raw body as object
    except orjson.JSONDecodeError:
        raise stripe.APIError(f"Invalid response body from API (HTTP {status})", http_status=status) from None


def checked_path(path: str) -> str:
    """`path` when every id in it has its kind's shape (lib/ids.py); else InvalidRequest, before any request."""
    problem = ids.path_problem(path)
    if problem:
        raise bad_id(problem)
    return path


def checked_id(kind: ids.IdKind, value: str) -> str:
    """`value` when it is a `kind` id; else InvalidRequest naming it, before any request."""
    problem = ids.id_problem(kind, value)
    if problem:
        raise bad_id(problem)
    return value


def _resource_of(path: str) -> str:
    """`/v1/customers/cus_1/payment_methods` → `payment_methods`; `/v1/invoices` → `invoices`."""
    parts = [part for part in path.split("/") if part and part != "v1"]
    if len(parts) >= 3:
        return parts[2]
    return parts[0] if parts else "other"


def _get(path: str, params: dict[str, Any], settings: Settings | None) -> tuple[Any, int]:
    """Every GET by path goes through here: the path is checked first (ids of their kind, no `..`)."""
    checked_path(path)
    count("requests:" + _resource_of(path))
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


def list_all(path: str, params: dict[str, Any] | None = None, *, limit: int | None = None,
             settings: Settings | None = None) -> list[dict[str, Any]]:
    """The objects of a list endpoint (e.g. `/v1/subscriptions` of one customer), at most `limit` of them."""
    return list(islice(iter_list(path, params, settings=settings), limit))


def complete_nested(obj: dict[str, Any], field: str, path: str, params: dict[str, Any] | None = None, *,
                    settings: Settings | None = None) -> None:
    """Stripe embeds at most 10 items of a nested list (`items`, `lines`): fetch the rest when there are more."""
    nested = obj.get(field)
    if not isinstance(nested, dict) or not nested.get("has_more"):
        return
    data = list(nested.get("data") or [])
    rest = iter_list(path, params, starting_after=data[-1]["id"] if data else None, settings=settings)
    obj[field] = {**nested, "data": data + list(rest), "has_more": False}
