"""Turn stored objects into API answers: hide internal `_` keys, cut nested lists to Stripe's first 10
entries, and apply `expand[]`."""

from __future__ import annotations

import json
from typing import Any

from sandbox.core import Obj, Store, invalid

NESTED_LIST_LIMIT = 10


def render(store: Store, obj: Obj) -> Obj:
    if obj.get("_deleted"):
        return {"id": obj["id"], "object": obj["object"], "deleted": True}
    if obj["object"] == "event":
        return render_event(obj)
    out = {k: v for k, v in obj.items() if k[0] != "_"}
    for key in obj.get("_lists", ()):
        lst = out[key]
        if lst is not None and len(lst["data"]) > NESTED_LIST_LIMIT:
            out[key] = dict(lst, data=lst["data"][:NESTED_LIST_LIMIT], has_more=True)
    return out


def render_event(event: Obj) -> Obj:
    out = {k: v for k, v in event.items() if k[0] != "_"}
    data: Obj = {"object": json.loads(event["_snap"])}
    if event.get("_prev"):
        data["previous_attributes"] = json.loads(event["_prev"])
    out["data"] = data
    return out


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
