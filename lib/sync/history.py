"""The customer timeline's history: the account's events of the last 30 days (all Stripe keeps), listed once
during pass 2 at low priority and recorded in `stripe_events` (source `backfill`), so "Recent events" is not
empty after a backfill.

Recording an event marks it processed (an event is applied at most once), so only events the cache already
reflects are recorded: an event about a resource is taken only when it is not newer than that resource's
event cursor (the backfill that set the cursor read the state after it; the Events API refresh applies
everything newer). Events of types the cache does not keep are always taken. Progress is the `events` row of
`sync_state`: `backfill_completed_at` set means the last 30 days are in (the page can then say "no events"
rather than "not fetched yet").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from lib import gateway as gw
from lib import mapping
from lib.config import Settings
from lib.models import from_ts, utcnow
from lib.sync.events import RESOURCE_OF_EVENT
from lib.sync.sql import EVENTS, RESOURCES, Obj, _insert, _set_state, _touch_state, get_state

HISTORY = "events"  # its row in sync_state
HISTORY_DAYS = 30
SOURCE = "backfill"


def _epoch(value: datetime | None) -> int | None:
    if value is None:
        return None
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


def history_done(engine: Engine) -> bool:
    """Whether the last 30 days of events have been listed into the cache at least once."""
    return get_state(engine, HISTORY).get("backfill_completed_at") is not None


class _Limits:
    """Which listed events the cache already reflects (see the module's docstring), walking newest first."""

    def __init__(self, engine: Engine) -> None:
        self.cursors: dict[str, tuple[str | None, int]] = {}
        for resource in RESOURCES:
            state = get_state(engine, resource)
            created = _epoch(state.get("event_cursor_created"))
            if state.get("backfill_started_at") is not None and created is not None:
                self.cursors[resource] = (state.get("event_cursor"), created)
        self.passed: set[str] = set()  # resources whose cursor event the walk has reached

    def reflected(self, event: Obj) -> bool:
        for name, (cursor, _) in self.cursors.items():
            if cursor is not None and cursor == event.get("id"):
                self.passed.add(name)
        resource = RESOURCE_OF_EVENT.get(str(event.get("type")))
        if resource is None or resource not in self.cursors or resource in self.passed:
            return True
        return int(event.get("created") or 0) < self.cursors[resource][1]


def fetch_history(engine: Engine, settings: Settings, *, stripe_now: int, check: Callable[[], None],
                  write_lock: threading.Lock) -> int:
    """List the events of the last 30 days (newest first, at low priority) and record those the cache already
    reflects; returns how many were listed. Each page is written in one transaction; a rerun lists again and
    skips what is recorded."""
    with write_lock, engine.begin() as conn:
        _touch_state(conn, HISTORY)
        _set_state(conn, HISTORY, backfill_started_at=utcnow(), backfill_completed_at=None)
    limits = _Limits(engine)
    listed = 0
    params = {"created": {"gte": stripe_now - HISTORY_DAYS * 86400}}
    with gw.low_priority():
        for page in gw.iter_pages("/v1/events", params, settings=settings):
            check()
            listed += len(page.data)
            rows = [{"id": e["id"], "type": str(e.get("type") or ""), "created": from_ts(int(e.get("created") or 0)),
                     "object_id": mapping.ref(mapping.dig(e, "data", "object")), "source": SOURCE,
                     "processed_at": utcnow()}
                    for e in page.data if isinstance(e.get("id"), str) and limits.reflected(e)]
            with write_lock, engine.begin() as conn:
                _touch_state(conn, HISTORY, cursor=page.data[-1]["id"] if page.data else None)
                if rows:
                    conn.execute(_insert(conn, EVENTS).on_conflict_do_nothing(index_elements=["id"]), rows)
    with write_lock, engine.begin() as conn:
        _touch_state(conn, HISTORY)
        _set_state(conn, HISTORY, backfill_cursor=None, backfill_completed_at=utcnow())
    return listed
