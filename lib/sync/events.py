"""Events: the Events API refresh's apply (`apply_events`) and webhook deliveries (`apply_webhook_event`),
each event applied at most once, newer-wins."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, bindparam, delete, select

from lib import gateway as gw
from lib import mapping
from lib.config import Settings, get_settings
from lib.db import ensure_migrated, retry_transaction
from lib.models import from_ts, utcnow
from lib.sync.fetch import RETRIEVE_PATHS, ProductNames, complete, shared_products
from lib.sync.sql import EVENTS, LINES, TABLES, Obj, _insert, _touch_state, _versions
from lib.sync.writer import apply_objects

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "subscriptions": (
        "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
        "customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
        "customer.subscription.pending_update_applied", "customer.subscription.pending_update_expired",
    ),
    "invoices": (
        "invoice.created", "invoice.deleted", "invoice.finalization_failed", "invoice.finalized",
        "invoice.marked_uncollectible", "invoice.overdue", "invoice.paid", "invoice.payment_action_required",
        "invoice.payment_failed", "invoice.payment_succeeded", "invoice.sent", "invoice.updated",
        "invoice.voided", "invoice.will_be_due",
    ),
    "payment_methods": (
        "payment_method.attached", "payment_method.detached", "payment_method.updated",
        "payment_method.automatically_updated",
    ),
}
RESOURCE_OF_EVENT = {t: r for r, types in EVENT_TYPES.items() for t in types}


def _event_object(event: Obj) -> tuple[str | None, Obj | None]:
    """(resource, object as the cache should see it) for an event; (None, None) when not cached."""
    resource = RESOURCE_OF_EVENT.get(str(event.get("type")))
    obj = mapping.dig(event, "data", "object")
    if resource is None or not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None, None
    if event["type"] == "customer.deleted":
        obj = {**obj, "deleted": True}
    return resource, obj


def apply_events(conn: Connection, events: list[Obj], *, source: str,
                 products: ProductNames | None = None) -> tuple[int, dict[str, int]]:
    """Apply events (oldest first) once each, newer-wins; returns (events new to the cache, rows written
    per resource). Nested lists must already be complete (`prepare_events`); processed ids are skipped.
    """
    ids = [e["id"] for e in events if isinstance(e.get("id"), str)]
    if not ids:
        return 0, {}
    done = set(conn.execute(select(EVENTS.c.id).where(EVENTS.c.id.in_(bindparam("ids", expanding=True))),
                            {"ids": ids}).scalars())
    todo = [e for e in events if e.get("id") in ids and e["id"] not in done]
    seen: set[str] = set()
    todo = [e for e in todo if not (e["id"] in seen or seen.add(e["id"]))]  # type: ignore[func-returns-value]
    if not todo:
        return 0, {}
    conn.execute(_insert(conn, EVENTS).on_conflict_do_nothing(index_elements=["id"]), [{
        "id": e["id"], "type": str(e.get("type") or ""), "created": from_ts(int(e.get("created") or 0)),
        "object_id": mapping.ref(mapping.dig(e, "data", "object")), "source": source, "processed_at": utcnow(),
    } for e in todo])
    grouped: dict[str, list[tuple[Obj, int]]] = {}
    deleted_invoices: list[tuple[str, int]] = []
    for e in todo:
        resource, obj = _event_object(e)
        if resource is None or obj is None:
            continue
        ts = int(e.get("_version") or e.get("created") or 0)
        if e["type"] == "invoice.deleted":
            deleted_invoices.append((obj["id"], ts))
            continue
        grouped.setdefault(resource, []).append((obj, ts))
    written: dict[str, int] = {}
    subs = grouped.get("subscriptions")
    names = (products or ProductNames()).resolve(o for o, _ in subs) if subs else None
    for resource, versioned in grouped.items():
        written[resource] = apply_objects(conn, resource, versioned, names)
    for inv_id, ts in deleted_invoices:
        inv = TABLES["invoices"]
        gone = conn.execute(delete(inv).where(inv.c.id == inv_id, inv.c.version_ts <= ts)).rowcount
        if gone:
            conn.execute(delete(LINES).where(LINES.c.invoice_id == inv_id))
            written["invoices"] = written.get("invoices", 0) + gone
    return len(todo), written


def apply_webhook_event(event: Obj, *, settings: Settings | None = None) -> str:
    """Apply one verified webhook event: 'applied', 'duplicate' (already processed) or 'ignored' (a type the
    cache does not keep; still recorded so it is never applied twice). A deadlock reruns the write only."""
    settings = settings or get_settings()
    engine = ensure_migrated(settings.database_url)
    resource, obj = _event_object(event)
    if resource is not None and obj is not None and event.get("type") != "invoice.deleted":
        with engine.connect() as conn:
            cached = _versions(conn, TABLES[resource], [obj["id"]]).get(obj["id"])
        created = int(event.get("created") or 0)
        if cached == created:
            # Same second as the cached state, and webhooks come in any order: only Stripe knows which is
            # newer, so take the object as it is now (a failure here answers 503 and Stripe retries).
            current, server_time = gw.retrieve(f"{RETRIEVE_PATHS[resource]}/{obj['id']}", settings=settings)
            event = {**event, "_version": max(server_time, created), "data": {"object": current}}
    prepare_events([event], settings)
    if not _write_webhook_event(engine, event, resource, shared_products(settings)):
        return "duplicate"
    return "applied" if resource is not None else "ignored"


@retry_transaction()
def _write_webhook_event(engine: Engine, event: Obj, resource: str | None, products: ProductNames) -> int:
    """apply_webhook_event's one transaction; returns 1 when the event was new to the cache, else 0."""
    with engine.begin() as conn:
        _touch_state(conn, resource or "customers")
        new, _ = apply_events(conn, [event], source="webhook", products=products)
    return new


def prepare_events(events: list[Obj], settings: Settings | None = None) -> None:
    """Complete nested lists cut at 10 inside event objects (before the write transaction)."""
    for e in events:
        resource, obj = _event_object(e)
        if resource is not None and obj is not None:
            complete(resource, obj, settings)
