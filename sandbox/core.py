"""The sandbox's in-memory state: objects by id, ordered indexes for newest-first lists, the clock, the
event log and the timer heap that drives renewals and payment retries.

Everything runs on the event loop's thread, so no locks are needed. Lookups are dict hits; lists walk an
ordered index backwards from the newest entry (or from a cursor found in O(1)), so requests stay cheap at
10,000+ customers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from sandbox.shape import render

API_VERSION = "2026-10-28.endive"
DOC_BASE = "https://stripe.com/docs/error-codes/"
EVENT_RETENTION = 30 * 86400

Obj = dict[str, Any]


class ApiError(Exception):
    """A Stripe-shaped error answer."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, decline_code: str | None = None,
                 extra: Obj | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: Obj = {"type": type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = DOC_BASE + code.replace("_", "-")
        if param:
            self.body["param"] = param
        if decline_code:
            self.body["decline_code"] = decline_code
        if extra:
            self.body.update(extra)
        self.headers: dict[str, str] = {}


def missing(kind: str, oid: Any, param: str | None = "id") -> ApiError:
    """Stripe answers 404 for the object in the URL and 400 for a missing object named by a parameter."""
    return ApiError(404 if param == "id" else 400, f"No such {kind}: '{oid}'", code="resource_missing",
                    param=param)


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, code=code or ("parameter_invalid" if param else None), param=param)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


_IDS = random.Random(secrets.token_bytes(16))
_ID_TABLE = bytes(ord(_ALNUM[i % 62]) for i in range(256))


def new_id(prefix: str) -> str:
    """`prefix_` + 14 random alphanumerics (Stripe-like; cheap enough to make 20 per request)."""
    return prefix + "_" + _IDS.randbytes(14).translate(_ID_TABLE).decode()


_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False, ensure_ascii=False).encode


class OrderedIndex:
    """Ids in creation order with O(1) position lookup; lists read it newest first."""

    __slots__ = ("ids", "pos", "start")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.start = 0  # entries before it were pruned (events retention)

    def add(self, oid: str) -> None:
        self.pos[oid] = len(self.ids)
        self.ids.append(oid)

    def __len__(self) -> int:
        return len(self.ids) - self.start


class Objs(dict):
    """Objects by id. A lookup with a non-string id (a hash where an id belongs) finds nothing, not a crash."""

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return dict.get(self, key, default)
        except TypeError:
            return default


class Store:
    """All sandbox state. Pickled as a whole for --state persistence."""

    def __init__(self) -> None:
        self.objs: dict[str, Obj] = Objs()
        self.index: dict[str, OrderedIndex] = {}
        self.by_parent: dict[tuple[str, str], list[str]] = {}  # (kind, parent id) -> ids, oldest first
        self.email_index: dict[str, list[str]] = {}
        self.fingerprints: dict[str, str] = {}
        self.offset = 0.0
        self.frozen: float | None = None
        self.heap: list[tuple[float, int, str, str, Any]] = []
        self.seq = itertools.count()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.default_portal_config: str | None = None
        self.settings: Obj = default_settings()
        self.base_url = "http://127.0.0.1:12111"
        self.request_id: str | None = None
        self.idempotency_key: str | None = None
        self.event_hooks: list[Callable[[Obj], None]] = []
        self.discard_before = 0  # events older than this are pruned when the running advance ends
        self.event_types: dict[str, OrderedIndex] = {}  # events by type, for `events?type=` without a scan

    def has_endpoints(self) -> bool:
        idx = self.index.get("webhook_endpoint")
        return idx is not None and any(not self.objs[w].get("_deleted") for w in idx.ids)

    # --- clock -------------------------------------------------------------------------------
    def now(self) -> int:
        if self.frozen is not None:
            return int(self.frozen)
        return int(time.time() + self.offset)

    def is_empty(self) -> bool:
        return not self.objs

    # --- objects and indexes --------------------------------------------------------------------
    def put(self, obj: Obj, kind: str | None = None) -> Obj:
        oid = obj["id"]
        self.objs[oid] = obj
        kind = kind or obj["object"]
        idx = self.index.get(kind)
        if idx is None:
            idx = self.index[kind] = OrderedIndex()
        idx.add(oid)
        return obj

    def child(self, kind: str, parent: str, oid: str) -> None:
        self.by_parent.setdefault((kind, parent), []).append(oid)

    def children(self, kind: str, parent: str) -> list[str]:
        return self.by_parent.get((kind, parent), [])

    def get(self, oid: Any, kind: str, label: str | None = None, param: str | None = "id") -> Obj:
        obj = self.objs.get(oid) if isinstance(oid, str) else None
        if obj is None or obj.get("object") != kind or obj.get("_deleted"):
            raise missing(label or kind, oid, param)
        return obj

    # --- timers -----------------------------------------------------------------------------------
    def schedule(self, due: float, action: str, oid: str, token: Any = None) -> None:
        heapq.heappush(self.heap, (due, next(self.seq), action, oid, token))

    # --- events -----------------------------------------------------------------------------------
    def emit(self, type_: str, obj: Obj, previous: Obj | None = None) -> Obj | None:
        now = self.now()
        if now < self.discard_before and not self.has_endpoints():
            return None  # a clock advance will prune it before anyone can list it: skip the work
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now,
            "data": None,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": type_,
            "_snap": _ENCODE(render(self, obj)),
            "_prev": _ENCODE(previous) if previous else None,
        }
        self.put(event)
        by_type = self.event_types.get(type_)
        if by_type is None:
            by_type = self.event_types[type_] = OrderedIndex()
        by_type.add(event["id"])
        for hook in self.event_hooks:
            hook(event)
        return event

    def prune_events(self) -> None:
        idx = self.index.get("event")
        if idx is None:
            return
        cutoff = self.now() - EVENT_RETENTION
        while idx.start < len(idx.ids):
            eid = idx.ids[idx.start]
            ev = self.objs.get(eid)
            if ev is not None and ev["created"] >= cutoff:
                break
            self.objs.pop(eid, None)
            idx.pos.pop(eid, None)
            idx.start += 1
        for by_type in [idx, *self.event_types.values()]:
            while by_type.start < len(by_type.ids) and by_type.ids[by_type.start] not in self.objs:
                by_type.pos.pop(by_type.ids[by_type.start], None)  # pruned in creation order: a prefix
                by_type.start += 1
            if by_type.start > 50_000 and by_type.start > len(by_type.ids) // 2:  # compact now and then
                by_type.ids = by_type.ids[by_type.start:]
                by_type.pos = {eid: i for i, eid in enumerate(by_type.ids)}
                by_type.start = 0

    def __getstate__(self) -> Obj:
        state = dict(self.__dict__)
        state["event_hooks"] = []
        state["seq"] = next(self.seq)
        return state

    def __setstate__(self, state: Obj) -> None:
        """Load a saved state; attributes and settings added since it was written get their defaults."""
        Store.__init__(self)
        settings = {**self.settings, **state.pop("settings", {})}
        self.__dict__.update(state)
        self.settings = settings
        self.seq = itertools.count(state.get("seq", 0) if isinstance(state.get("seq"), int) else 0)
        if not isinstance(self.objs, Objs):
            self.objs = Objs(self.objs)


def default_settings() -> Obj:
    return {
        "retry_days": [3, 5, 7],  # payment retries after the first failure, in days since it
        "final_action": "cancel",  # after the last retry: "cancel" or "unpaid" the subscription
        "final_invoice": "uncollectible",  # and "uncollectible" or "open" for the invoice
        "webhook_retry_seconds": [1, 2, 4, 8, 16],  # real seconds between webhook delivery attempts
        "incomplete_expiry_seconds": 23 * 3600,
    }


# --- params -------------------------------------------------------------------------------------

def parse_form(pairs: Iterable[tuple[str, str]]) -> Obj:
    """Decode Stripe's form encoding (`a[b][0][c]=v`, `expand[]=x`) into nested dicts and lists."""
    root: Obj = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(len(node))  # `x[]` appends
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise invalid(f"Invalid value for {key}.", param=parts[0])
    return _listify(root)


def _split_key(key: str) -> list[str]:
    if "[" not in key:
        return [key]
    head, _, rest = key.partition("[")
    parts = [head]
    for piece in rest.split("["):
        parts.append(piece[:-1] if piece.endswith("]") else piece)
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_listify(node[k]) for k in sorted(node, key=int)]
        return {k: _listify(v) for k, v in node.items()}
    return node


def as_int(params: Obj, name: str, *, default: int | None = None, minimum: int | None = None,
           maximum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {raw}", param=name) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise invalid(f"Invalid value for {name}: must be between {minimum} and {maximum}.", param=name)
    return value


def as_bool(params: Obj, name: str, default: bool | None = None) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if raw in ("true", "false"):
        return raw == "true"
    raise invalid(f"Invalid boolean: {raw}", param=name)


def metadata_update(current: Obj, raw: Any, param: str = "metadata") -> Obj:
    """Stripe's metadata rules: keys merge, "" deletes a key, metadata="" clears everything."""
    if raw is None:
        return current
    if raw == "":
        return {}
    if not isinstance(raw, dict):
        raise invalid("Invalid metadata: must be a hash.", param=param)
    result = dict(current)
    for k, v in raw.items():
        if len(k) > 40:
            raise invalid(f"Metadata key '{k}' is longer than 40 characters.", param=f"{param}[{k}]")
        if v == "" or v is None:
            result.pop(k, None)
        else:
            if len(str(v)) > 500:
                raise invalid(f"Metadata value for '{k}' is longer than 500 characters.",
                              param=f"{param}[{k}]")
            result[k] = str(v)
    if len(result) > 50:
        raise invalid("Metadata can have at most 50 keys.", param=param)
    return result


def copy_fields(obj: Obj, params: Obj, keys: Iterable[str]) -> None:
    """Set each given key from params; an empty string clears it (None), as on Stripe."""
    for key in keys:
        if key in params:
            obj[key] = params[key] or None


def created_filter(params: Obj, name: str = "created") -> Callable[[int], bool] | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        value = as_int(params, name)
        return lambda c: c == value
    bounds = {}
    for op in ("gt", "gte", "lt", "lte"):
        if op in raw:
            bounds[op] = as_int(raw, op)
    unknown = set(raw) - set(bounds)
    if unknown:
        raise invalid(f"Received unknown parameter: {name}[{sorted(unknown)[0]}]", param=name)

    def check(c: int) -> bool:
        return not (("gt" in bounds and c <= bounds["gt"]) or ("gte" in bounds and c < bounds["gte"])
                    or ("lt" in bounds and c >= bounds["lt"]) or ("lte" in bounds and c > bounds["lte"]))

    lows = ([bounds["gt"] + 1] if "gt" in bounds else []) + ([bounds["gte"]] if "gte" in bounds else [])
    check.lower = max(lows) if lows else None  # type: ignore[attr-defined]
    return check


# --- previous_attributes --------------------------------------------------------------------------

def diff(obj: Obj, before: Obj) -> Obj:
    """previous_attributes: the old value of every top-level key that changed."""
    return {k: v for k, v in before.items() if obj.get(k) != v}


def snapshot(obj: Obj, keys: Any, deep: bool = False) -> Obj:
    """Values before a change, for previous_attributes. Nested values are replaced, not mutated, everywhere
    except subscription items, so only subscription updates need a deep copy."""
    if deep:
        return {k: _copy(obj.get(k)) for k in keys}
    return {k: obj.get(k) for k in keys}


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def list_page(store: Store, ids: list[str], params: Obj, url: str, *, start: int = 0,
              pos: dict[str, int] | None = None, match: Callable[[Obj], bool] | None = None,
              created: Callable[[int], bool] | None = None) -> Obj:
    """A newest-first page of `ids` (oldest first) with limit/starting_after/ending_before."""
    limit = as_int(params, "limit", default=10, minimum=1, maximum=100)
    after, before = params.get("starting_after"), params.get("ending_before")
    lower = getattr(created, "lower", None) if created else None

    def position(cursor: str, param: str) -> int:
        if pos is not None:
            p = pos.get(cursor)
        else:
            try:
                p = ids.index(cursor, start)
            except ValueError:
                p = None
        if p is None:
            raise invalid(f"No such object: '{cursor}'", param=param, code="resource_missing")
        return p

    def ok(oid: str) -> Obj | None:
        obj = store.objs.get(oid)
        if obj is None or obj.get("_deleted"):
            return None
        if created is not None and not created(obj["created"]):
            return None
        if match is not None and not match(obj):
            return None
        return obj

    found: list[Obj] = []
    has_more = False
    if before:  # the `limit` objects just newer than the cursor, walking forward
        indices: range = range(position(before, "ending_before") + 1, len(ids))
    else:
        indices = range((position(after, "starting_after") if after else len(ids)) - 1, start - 1, -1)
    for i in indices:
        oid = ids[i]
        if lower is not None and not before:
            o = store.objs.get(oid)
            if o is not None and o["created"] < lower:
                break  # ids are in creation order: nothing older can match
        obj = ok(oid)
        if obj is None:
            continue
        if len(found) == limit:
            has_more = True
            break
        found.append(obj)
    if before:
        found.reverse()
    return {"object": "list", "data": found, "has_more": has_more, "url": url}


def rng_for(seed: Any) -> random.Random:
    return random.Random(seed if seed is not None else os.urandom(8))
