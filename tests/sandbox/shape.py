"""Check sandbox answers against the pinned SDK's resource classes: every emitted key must be a field the SDK
declares (class annotations, nested classes included) and every non-Optional field must be present."""

from __future__ import annotations

import importlib
import types
import typing
from typing import Any, ForwardRef

import stripe
from stripe._object_classes import OBJECT_CLASSES

LIST_KEYS = {"object", "data", "has_more", "url", "total_count"}
SEARCH_KEYS = {"object", "data", "has_more", "url", "next_page", "total_count"}
# Keys the SDK reads on every object without declaring them per class.
UNIVERSAL = {"deleted"}


def _class_for(object_name: str) -> type | None:
    entry = OBJECT_CLASSES.get(object_name)
    if entry is None:
        return None
    return getattr(importlib.import_module(entry[0]), entry[1])


def _annotations(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass, "__annotations__", {}))
    return {k: v for k, v in out.items() if not k.startswith("_") and k != "OBJECT_NAME"}


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp) or "Optional" in str(tp) or "NoneType" in str(tp)


def _resolve(ref: Any, owner: type) -> Any:
    if isinstance(ref, ForwardRef):
        ref = ref.__forward_arg__
    if isinstance(ref, str):
        mod = importlib.import_module(owner.__module__)
        found = getattr(mod, ref, None) or getattr(stripe, ref, None)
        return found
    return ref


def check(value: Any, cls: type | None = None, path: str = "$", owner: type | None = None) -> list[str]:
    """Problems found in `value` (a JSON-decoded answer); empty when the shape matches."""
    problems: list[str] = []
    if isinstance(value, dict):
        obj_name = value.get("object")
        if obj_name == "list":
            extra = set(value) - LIST_KEYS
            if extra:
                problems.append(f"{path}: list has undeclared keys {sorted(extra)}")
            for key in ("data", "has_more", "url"):
                if key not in value:
                    problems.append(f"{path}: list lacks {key}")
            for i, item in enumerate(value.get("data", [])):
                problems += check(item, None, f"{path}.data[{i}]")
            return problems
        if obj_name == "search_result":
            extra = set(value) - SEARCH_KEYS
            if extra:
                problems.append(f"{path}: search_result has undeclared keys {sorted(extra)}")
            for key in ("data", "has_more", "url", "next_page"):
                if key not in value:
                    problems.append(f"{path}: search_result lacks {key}")
            for i, item in enumerate(value.get("data", [])):
                problems += check(item, None, f"{path}.data[{i}]")
            return problems
        if isinstance(obj_name, str) and "id" in value:
            top = _class_for(obj_name)
            if top is None:
                return [f"{path}: unknown object type {obj_name!r}"]
            cls = top
        if cls is None:
            return problems
        ann = _annotations(cls)
        if value.get("deleted") is True:
            return [f"{path}.{k}: not declared on {cls.__name__}" for k in value
                    if k not in ann and k not in UNIVERSAL]
        for key, sub in value.items():
            if key not in ann and key not in UNIVERSAL:
                problems.append(f"{path}.{key}: not declared on {cls.__qualname__}")
                continue
            if key in ann:
                problems += _check_typed(sub, ann[key], f"{path}.{key}", cls)
        for key, tp in ann.items():
            if key not in value and not _is_optional(tp):
                problems.append(f"{path}: required field {key} missing on {cls.__qualname__}")
        return problems
    return problems


def _check_typed(value: Any, tp: Any, path: str, owner: type) -> list[str]:
    if value is None:
        return [] if _is_optional(tp) else [f"{path}: is null but {tp} is not Optional"]
    tp = _resolve(tp, owner)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(value, dict):
            for cand in candidates:
                cand = _resolve(cand, owner)
                if isinstance(cand, type) and issubclass(cand, stripe.StripeObject):
                    return check(value, cand, path, owner)
            return check(value, None, path, owner)
        if isinstance(value, list):
            for cand in candidates:
                if typing.get_origin(_resolve(cand, owner)) in (list, typing.List):  # noqa: UP006
                    return _check_typed(value, cand, path, owner)
        return []
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        (inner,) = typing.get_args(tp) or (Any,)
        out: list[str] = []
        for i, v in enumerate(value):
            out += _check_typed(v, inner, f"{path}[{i}]", owner)
        return out
    if isinstance(tp, type) and issubclass(tp, stripe.StripeObject):
        if not isinstance(value, dict):
            return [f"{path}: expected an object for {tp.__name__}"]
        if tp.__name__ in ("UntypedStripeObject",):
            return []
        return check(value, tp, path, owner)
    if origin is not None and isinstance(origin, type) and issubclass(origin, stripe.StripeObject):
        # ListObject["X"], SearchResultObject["X"], UntypedStripeObject[...]
        if isinstance(value, dict) and value.get("object") in ("list", "search_result"):
            return check(value, None, path, owner)
    if isinstance(value, dict) and "id" in value and value.get("object") in OBJECT_CLASSES:
        return check(value, None, path, owner)  # e.g. an event's data.object: checked by its own class
    return []


def assert_shape(value: Any) -> None:
    problems = check(value)
    assert not problems, "shape differs from the SDK:\n" + "\n".join(problems[:40])
