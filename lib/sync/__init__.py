"""The sync engine: Stripe → cache by resumable backfill, the Events API and webhooks.

Rules every path follows:
- a page is written in ONE transaction together with the cursor that says it was written, so a run killed
  at any moment resumes from its last committed page (and re-fetches at most that page);
- newer wins: each row carries `version_ts` (Stripe's clock when the state was true: the `Date` of the list
  response, or the event's `created`); an older state never overwrites a newer one, in SQL
  (`ON CONFLICT … DO UPDATE … WHERE excluded.version_ts >= table.version_ts`);
- events are applied at most once (their ids go to `stripe_events` in the same transaction);
- nested lists (subscription items, invoice lines) are completed beyond Stripe's 10 before writing;
- one sync at a time per database (PostgreSQL advisory lock; a `sync_lock` row on SQLite);
- pages stream: only the page in hand is held in memory.

The package, by concern: `sql` (dialect upsert SQL and converters, sync state), `fetch` (Stripe reads that
complete objects), `writer` (`PageWriter`, the pipelined PostgreSQL connection), `events` (Events API and
webhook apply), `history` (the timeline's last 30 days of events, pass 2), `endpoints` (the account's webhook
endpoints, read each run), `lock` (the one-sync lock), `run` (`run_sync`), `customer` (`refresh_customer`).
Every name callers use is re-exported here.
"""

from lib.sync.customer import refresh_customer
from lib.sync.events import (
    EVENT_TYPES,
    RESOURCE_OF_EVENT,
    apply_events,
    apply_webhook_event,
    prepare_events,
)
from lib.sync.fetch import (
    LIST_PARAMS,
    LIST_PATHS,
    RETRIEVE_PATHS,
    Declines,
    ProductNames,
    complete,
    expanded_cards,
    shared_products,
)
from lib.sync.lock import (
    LOCK_NAME,
    LOCK_STALE_AFTER,
    PG_LOCK_KEY,
    PG_LOCK_SQL,
    LockHeld,
    heartbeat,
    holder_name,
    sync_lock,
)
from lib.sync.run import (
    EVENT_RETENTION,
    Progress,
    SyncError,
    SyncMode,
    SyncResult,
    _cached_rows,
    backfill,
    card_pass_progress,
    incremental,
    run_sync,
)
from lib.sync.sql import (
    EVENTS,
    ITEMS,
    LINES,
    LOCKS,
    RESOURCES,
    RUNS,
    STATE,
    TABLES,
    Obj,
    Statement,
    get_state,
    recompute_mrr,
)
from lib.sync.writer import (
    CHILDREN,
    SQLITE_WAL_CHECKPOINT_PAGES,
    PageWriter,
    PipelinedConnection,
    TransactionFailed,
    apply_objects,
    ingest_page,
)

__all__ = [
    "CHILDREN", "EVENTS", "EVENT_RETENTION", "EVENT_TYPES", "ITEMS", "LINES", "LIST_PARAMS", "LIST_PATHS",
    "LOCKS", "LOCK_NAME", "LOCK_STALE_AFTER", "PG_LOCK_KEY", "PG_LOCK_SQL", "RESOURCES", "RESOURCE_OF_EVENT",
    "RETRIEVE_PATHS", "RUNS", "SQLITE_WAL_CHECKPOINT_PAGES", "STATE", "TABLES", "LockHeld", "Obj", "PageWriter",
    "PipelinedConnection", "ProductNames", "Progress", "Statement", "SyncError", "SyncMode", "SyncResult",
    "TransactionFailed", "_cached_rows", "apply_events", "apply_objects", "apply_webhook_event", "backfill",
    "card_pass_progress", "complete", "Declines", "expanded_cards", "get_state", "heartbeat", "holder_name",
    "incremental", "ingest_page", "prepare_events",
    "recompute_mrr", "refresh_customer", "run_sync", "shared_products", "sync_lock",
]
