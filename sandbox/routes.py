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


def call(store: Store, r: Route, params: Obj, ids: dict[str, Any]) -> Obj:
    if r.allowed is not None:
        for key in params:
            if key not in r.allowed:
                from sandbox.core import invalid

                raise invalid(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")
    return r.handler(store, params, **ids)
