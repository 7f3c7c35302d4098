"""The Stripe API route table: method + path pattern -> handler(store, params, **ids)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.core import Obj, Store

Handler = Callable[..., Obj]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    allowed: frozenset[str] | None


ROUTES: list[Route] = []
_EXACT: dict[tuple[str, str], Route] = {}


def route(method: str, path: str, allowed: set[str] | None = None) -> Callable[[Handler], Handler]:
    """Register a handler; `allowed` lists the top-level params it takes (others get Stripe's 400)."""

    def wrap(fn: Handler) -> Handler:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
        allow = frozenset((allowed or set()) | {"expand"}) if allowed is not None else None
        r = Route(method, regex, fn, allow)
        if "{" in path:
            ROUTES.append(r)
        else:
            _EXACT[(method, path)] = r
        return fn

    return wrap


def match(method: str, path: str) -> tuple[Route, dict[str, Any]] | None:
    r = _EXACT.get((method, path))
    if r is not None:
        return r, {}
    for r in ROUTES:
        if r.method == method:
            m = r.pattern.match(path)
            if m:
                return r, m.groupdict()
    return None


def path_known(path: str) -> bool:
    return any(k[1] == path for k in _EXACT) or any(r.pattern.match(path) for r in ROUTES)


# Top-level parameters by kind, checked before any handler runs (Stripe answers 400 "Invalid string" etc.).
ARRAYS = {"expand", "types", "lookup_keys", "enabled_events", "preferred_locales", "items", "tax_id_data",
          "images", "ids", "discounts"}
HASHES = {"metadata", "address", "shipping", "invoice_settings", "card", "billing_details", "recurring",
          "product_data", "features", "business_profile", "flow_data", "pause_collection", "cancellation_details",
          "trial_settings", "payment_settings", "default_price_data", "login_page", "automatic_tax", "tax",
          "connect"}
EITHER = {"created", "current_period_end", "current_period_start", "due_date"}  # a value or a range hash


def _check_kinds(params: Obj) -> None:
    from sandbox.core import invalid

    for key, value in params.items():
        if key in EITHER:
            ok = isinstance(value, (str, dict))
            kind = "integer or hash"
        elif key in ARRAYS:
            ok = isinstance(value, list) or value == ""
            if ok and key not in ("items", "tax_id_data", "discounts") and value != "":
                ok = all(isinstance(v, str) for v in value)  # arrays of strings
            kind = "array"
        elif key in HASHES:
            ok = isinstance(value, dict) or value == ""
            kind = "hash"
        else:
            ok = isinstance(value, str)
            kind = "string"
        if not ok:
            raise invalid(f"Invalid {kind}: {key} must be a{'n' if kind[0] in 'aei' else ''} {kind}.", param=key)


def call(store: Store, r: Route, params: Obj, ids: dict[str, Any]) -> Obj:
    if r.allowed is not None:
        for key in params:
            if key not in r.allowed:
                from sandbox.core import invalid

                raise invalid(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")
    _check_kinds(params)
    return r.handler(store, params, **ids)
