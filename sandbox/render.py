"""Turn stored objects into API answers: hide internal `_` keys, cut nested lists to Stripe's first 10
entries (sandbox.shape), and apply `expand[]`."""

from __future__ import annotations

import json
from typing import Any

from sandbox.core import Obj, Store, invalid
from sandbox.shape import event_json, render


def fast_json(result: Obj) -> str | None:
    """The answer's JSON for events and lists of events (the bulk of what the sync reads), else None."""
    kind = result.get("object")
    if kind == "event":
        return event_json(result)
    if kind == "list" and result["data"] and result["data"][0].get("object") == "event":
        return ('{"object":"list","data":[' + ",".join(event_json(e) for e in result["data"])
                + '],"has_more":' + ("true" if result["has_more"] else "false")
                + ',"url":' + json.dumps(result["url"]) + "}")
    return None


def render_any(store: Store, result: Obj) -> Obj:
    if result.get("object") in ("list", "search_result"):
        return dict(result, data=[render(store, o) for o in result["data"]])
    return render(store, result)


def expand(store: Store, out: Obj, paths: Any) -> Obj:
    if not paths:
        return out
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list):
        raise invalid("Invalid array", param="expand")
    for path in paths:
        parts = str(path).split(".")
        if len(parts) > 4:
            raise invalid(f"You cannot expand more than 4 levels of a property. Property: {path}",
                          param="expand")
        out = _walk(store, out, parts, path)
    return out


def _walk(store: Store, value: Any, parts: list[str], path: str) -> Any:
    if isinstance(value, str):
        target = store.objs.get(value)
        if target is None:
            return value
        value = render(store, target)
    if not parts or value is None:
        return value
    if not isinstance(value, dict):
        return value
    key = parts[0]
    if key not in value:
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    new = dict(value)
    child = value[key]
    if isinstance(child, list):
        new[key] = [_walk(store, c, parts[1:], path) for c in child]
    else:
        new[key] = _walk(store, child, parts[1:], path)
    return new
