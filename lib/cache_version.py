"""The cache's change stamp: one cheap read that changes whenever anything the pages show may have changed.

Each dashboard replica keeps its own query-result cache (`app_pages/components/data.py`). A write made through
another replica, the sync worker or a webhook must not wait for that cache to expire, so the cached queries are
keyed on `generation(url)` as well: a tuple of a few maxima, each answered from an index or a tiny table:

- the newest audit row id: every dashboard write leaves one (follow-up, portal link, merge step, refresh's
  caller, bulk links), committed in the same transaction as the follow-up itself;
- the newest `sync_state.updated_at` (one row per resource): every sync page, event page and
  `refresh_customer` touches it in the transaction that writes the rows;
- the newest sync run's id and finish: a run that starts, ends or fails (the Sync page and the header);
- the newest processed Stripe event: webhook deliveries applied by any replica.

Dashboard writes (the audit id) come often under a team's load (finance saving follow-ups); queries that read
only what the sync writes (`SYNCED_ONLY`) are keyed without that part, so a follow-up saved does not throw
away every customer search and customer page the replica holds.

A replica reads the stamp at most once per `MAX_AGE` seconds (all sessions of a process share the read), so
40 sessions cost ~2 small queries per second, and a write elsewhere shows within `MAX_AGE` plus one page run.
No Streamlit here: the pages' hook lives in `app_pages/components/data.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from lib.db import get_engine

MAX_AGE = 0.5  # seconds a read stamp is reused within one process

# Scalar subqueries only: each is a max over an index (or a table of a few rows), the same SQL on both databases.
STAMP_SQL = text(
    "SELECT (SELECT max(id) FROM audit_log), "
    "(SELECT max(updated_at) FROM sync_state), "
    "(SELECT max(id) FROM sync_runs), "
    "(SELECT finished_at FROM sync_runs ORDER BY id DESC LIMIT 1), "
    "(SELECT max(processed_at) FROM stripe_events)"
)

Generation = tuple[str, ...]  # (audit part, sync parts...)

# lib.queries functions (by `query_name`) that read only tables the sync writes (customers, subscriptions,
# invoices, cards, events, sync state and runs); any other query (follow-ups, audit, merges) is keyed on the
# whole stamp. tests/test_cache_version.py checks each name still names such a function.
SYNCED_ONLY = frozenset({
    "lib.queries.customers.search_customers", "lib.queries.customers.export_customers_csv",
    "lib.queries.customers.customer_currencies", "lib.queries.customer_detail.get_customer",
    "lib.queries.customer_detail.customer_payment_methods", "lib.queries.customer_detail.customer_subscriptions",
    "lib.queries.customer_detail.customer_invoices", "lib.queries.customer_detail.customer_open_amounts",
    "lib.queries.customer_detail.customer_timeline", "lib.queries.subscriptions.list_subscriptions",
    "lib.queries.subscriptions.subscription_totals", "lib.queries.subscriptions.export_subscriptions_csv",
    "lib.queries.subscriptions.subscription_choices", "lib.queries.failed.decline_codes",
    "lib.queries.failed.failed_currencies", "lib.queries.failed.recovery", "lib.queries.overview.mrr_by_currency",
    "lib.queries.overview.table_counts", "lib.queries.sync_health.recent_sync_runs",
    "lib.queries.sync_health.sync_states", "lib.queries.sync_health.webhook_stats",
    "lib.queries.sync_health.cache_freshness",
})


# lib.queries functions that join follow-ups only when their `filters` name a follow-up status
# (`FailedFilters.followup`, see `lib.queries.failed._failed_from`): the Failed invoices page's summary tables.
# Keyed like SYNCED_ONLY when the filters leave the follow-up status open, so a saved follow-up keeps them.
SYNCED_UNLESS_FOLLOWUP_FILTER = frozenset({"lib.queries.failed.at_risk_by_currency",
                                           "lib.queries.failed.failed_by_decline_code",
                                           "lib.queries.failed.failed_by_age"})


@dataclass
class _Memo:
    value: Generation
    read_at: float


_memos: dict[str, _Memo] = {}
_lock = threading.Lock()


def read_generation(url: str | None = None) -> Generation:
    """The stamp as the database has it now (one round trip); raises what the database raises."""
    with get_engine(url).connect() as conn:
        row = conn.execute(STAMP_SQL).one()
    return tuple("" if v is None else str(v) for v in row)


def generation(url: str, *, max_age: float = MAX_AGE, clock: Any = time.monotonic) -> Generation:
    """The stamp for `url`, read again when the last read is older than `max_age` seconds. Threads of one
    process share one read: a thread that finds another reading waits for it instead of querying too."""
    memo = _memos.get(url)
    if memo is not None and clock() - memo.read_at < max_age:
        return memo.value
    with _lock:
        memo = _memos.get(url)
        if memo is not None and clock() - memo.read_at < max_age:
            return memo.value
        value = read_generation(url)
        _memos[url] = _Memo(value, clock())
        return value


def query_name(query: Callable[..., Any]) -> str:
    """The name a query's cached results are kept under: its module and qualified name
    ("lib.queries.customers.search_customers"), the same in every process."""
    return f"{query.__module__}.{query.__qualname__}"


def key_for(query: Callable[..., Any], stamp: Generation, kwargs: dict[str, Any] | None = None) -> Generation:
    """The part of `stamp` a cached result of `query` called with `kwargs` depends on: without the audit part
    for `SYNCED_ONLY` queries and for `SYNCED_UNLESS_FOLLOWUP_FILTER` ones whose `filters` (given, not None)
    have no follow-up status; the whole stamp for any other (a new query is safe by default)."""
    return stamp[1:] if synced_only(query_name(query), kwargs or {}) else stamp


def synced_only(name: str, kwargs: dict[str, Any]) -> bool:
    """True when this call of the query named `name` (`query_name`) reads only tables the sync writes."""
    if name in SYNCED_ONLY:
        return True
    filters = kwargs.get("filters")
    return (name in SYNCED_UNLESS_FOLLOWUP_FILTER and filters is not None
            and getattr(filters, "followup", "unknown") is None)


def forget(url: str | None = None) -> None:
    """Drop the remembered stamp (one URL or all), so the next `generation` reads the database: used right
    after this process writes, so its own next run never serves the old result."""
    with _lock:
        if url is None:
            _memos.clear()
        else:
            _memos.pop(url, None)
