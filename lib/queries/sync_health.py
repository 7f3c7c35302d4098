"""The Sync page and the header: recent runs, each resource's cursors, the card pass, webhook deliveries and
endpoints, and how fresh the cache is."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlmodel import Session, col

from lib.models import (
    Customer,
    StripeEvent,
    SyncRun,
    SyncState,
    WebhookEndpoint,
    utcnow,
)


def recent_sync_runs(*, session: Session, limit: int = 20) -> list[dict[str, Any]]:
    stmt = select(SyncRun).order_by(col(SyncRun.started_at).desc()).limit(limit)
    return [r.model_dump() for r in session.execute(stmt).scalars()]


def sync_states(*, session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each resource's cursors and how old its newest processed event is."""
    now = now or utcnow()
    rows = []
    for s in session.execute(select(SyncState).order_by(col(SyncState.resource))).scalars():
        d = s.model_dump()
        ref = s.event_cursor_created or s.backfill_completed_at
        d["cursor_age_minutes"] = round((now - ref).total_seconds() / 60, 1) if ref else None
        rows.append(d)
    return rows


def card_pass_progress(*, session: Session) -> dict[str, Any]:
    """The sync's pass 2 (every customer's complete card list): customers done, customers cached, and whether
    it is complete. Before pass 2 completes, the pages show each customer's default card only."""
    cust = Customer.__table__  # type: ignore[attr-defined]  # SQLModel sets it; its stubs do not declare it
    total = int(session.execute(select(func.count()).select_from(cust).where(cust.c.deleted.is_(False)))
                .scalar_one())
    state = session.get(SyncState, "payment_methods")
    if state is not None and state.backfill_completed_at is not None:
        return {"done": total, "total": total, "complete": True}
    done = 0
    if state is not None and state.backfill_started_at is not None and state.backfill_cursor:
        done = int(session.execute(select(func.count()).select_from(cust).where(
            cust.c.deleted.is_(False), cust.c.id <= state.backfill_cursor)).scalar_one())
    return {"done": done, "total": total, "complete": False}


def webhook_stats(*, session: Session, now: datetime | None = None, limit: int = 20) -> dict[str, Any]:
    """Webhook deliveries received: in the last 24 hours, the newest time, and the latest few."""
    now = now or utcnow()
    is_hook = col(StripeEvent.source) == "webhook"
    last_day = session.execute(select(func.count()).where(
        is_hook, col(StripeEvent.processed_at) >= now - timedelta(hours=24))).scalar_one()
    recent = [dict(r) for r in session.execute(
        select(col(StripeEvent.id), col(StripeEvent.type), col(StripeEvent.object_id), col(StripeEvent.created),
               col(StripeEvent.processed_at)).where(is_hook).order_by(col(StripeEvent.processed_at).desc())
        .limit(limit)).mappings()]
    return {"last_24h": int(last_day), "last_received": recent[0]["processed_at"] if recent else None,
            "recent": recent}


def webhook_endpoints(*, session: Session) -> dict[str, Any]:
    """The account's webhook endpoints as the last sync run read them from Stripe (id, url, status
    enabled/disabled, enabled_events, description), newest first, and `checked_at`: when they were read
    (None: never yet — the next sync run reads them)."""
    state = session.get(SyncState, "webhook_endpoints")  # lib/sync/endpoints.STATE_ROW
    rows = [dict(r) for r in session.execute(
        select(col(WebhookEndpoint.id), col(WebhookEndpoint.url), col(WebhookEndpoint.status),
               col(WebhookEndpoint.enabled_events), col(WebhookEndpoint.description))
        .order_by(col(WebhookEndpoint.created).desc(), col(WebhookEndpoint.id))).mappings()]
    return {"checked_at": state.backfill_completed_at if state is not None else None, "endpoints": rows}


def cache_freshness(*, session: Session) -> datetime | None:
    """When the cache last took in Stripe's state: the newest finished sync run or webhook delivery."""
    run = session.execute(select(func.max(col(SyncRun.finished_at))).where(col(SyncRun.status) == "succeeded")).scalar()
    hook = session.execute(select(func.max(col(StripeEvent.processed_at)))
                           .where(col(StripeEvent.source) == "webhook")).scalar()
    times = [t for t in (run, hook) if t is not None]
    return max(times) if times else None
