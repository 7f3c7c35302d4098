"""The account's webhook endpoints, as Stripe lists them: read once per sync run (one request) into the
`webhook_endpoints` table, so the Sync page can say whether Stripe sends deliveries to the dashboard at all."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, delete, insert

from lib import gateway as gw
from lib.config import Settings
from lib.models import WebhookEndpoint, from_ts, utcnow
from lib.sync.sql import Obj, _set_state, _touch_state

ENDPOINTS = WebhookEndpoint.__table__  # type: ignore[attr-defined]  # set by SQLModel, not in its stubs
STATE_ROW = "webhook_endpoints"  # its row in sync_state: `backfill_completed_at` = when last read from Stripe


def endpoint_row(obj: Obj) -> dict[str, Any]:
    """A webhook endpoint as the cache keeps it (never its secret)."""
    events = obj.get("enabled_events")
    return {"id": obj["id"], "url": str(obj.get("url") or ""),
            "status": "disabled" if obj.get("status") == "disabled" else "enabled",
            "enabled_events": [str(e) for e in events] if isinstance(events, list) else [],
            "description": obj.get("description") if isinstance(obj.get("description"), str) else None,
            "api_version": obj.get("api_version") if isinstance(obj.get("api_version"), str) else None,
            "created": from_ts(obj["created"]) if isinstance(obj.get("created"), int) else None,
            "synced_at": utcnow()}


def sync_webhook_endpoints(engine: Engine, settings: Settings, *, write_lock: threading.Lock) -> int:
    """List the account's webhook endpoints (Stripe allows 16: one page) and replace the cached set in one
    transaction; returns how many. Raises GatewayError (the caller notes it: the sync itself goes on)."""
    rows = [endpoint_row(e) for e in gw.iter_list("/v1/webhook_endpoints", settings=settings)
            if isinstance(e.get("id"), str)]
    with write_lock, engine.begin() as conn:
        _touch_state(conn, STATE_ROW)
        conn.execute(delete(ENDPOINTS))
        if rows:
            conn.execute(insert(ENDPOINTS), rows)
        _set_state(conn, STATE_ROW, backfill_completed_at=utcnow())
    return len(rows)
