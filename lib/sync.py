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
"""

from __future__ import annotations

import json
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from lib import mapping
from lib import stripe_gateway as gw
from lib.config import Settings, get_settings
from lib.db import ensure_migrated, retry_transaction
from lib.ids import IdKind
from lib.models import (
    MRR_STATUSES,
    Customer,
    Invoice,
    InvoiceLine,
    PaymentMethod,
    StripeEvent,
    Subscription,
    SubscriptionItem,
    SyncLock,
    SyncRun,
    SyncState,
    from_ts,
    utcnow,
)
from lib.pg_pipeline import PipelinedConnection, TransactionFailed

Obj = dict[str, Any]
Statement = tuple[str, tuple[Any, ...]]  # SQL with %s placeholders, and its parameters
Progress = Callable[[str, int], None]

RESOURCES = ("customers", "subscriptions", "invoices", "payment_methods")
EVENT_RETENTION = timedelta(days=30)
LOCK_NAME = "sync"
LOCK_STALE_AFTER = timedelta(minutes=5)  # another machine's SQLite lock row without heartbeat
PG_LOCK_KEY = 0x5B1C_C0DE  # pg_advisory_lock key of the sync worker …
# … in the cache's schema: two caches in one database (e.g. staging and production schemas) lock apart.
PG_LOCK_SQL = "(CAST(:k AS bigint) << 32) + CAST(hashtext(current_schema()) AS bigint)"

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
LIST_PATHS = {"customers": "/v1/customers", "subscriptions": "/v1/subscriptions", "invoices": "/v1/invoices"}
LIST_PARAMS: dict[str, Obj] = {"subscriptions": {"status": "all"}}
RETRIEVE_PATHS = {**LIST_PATHS, "payment_methods": "/v1/payment_methods"}
TABLES: dict[str, Table] = {
    "customers": Customer.__table__,  # type: ignore[attr-defined]
    "subscriptions": Subscription.__table__,  # type: ignore[attr-defined]
    "invoices": Invoice.__table__,  # type: ignore[attr-defined]
    "payment_methods": PaymentMethod.__table__,  # type: ignore[attr-defined]
}
ITEMS = SubscriptionItem.__table__  # type: ignore[attr-defined]
LINES = InvoiceLine.__table__  # type: ignore[attr-defined]
STATE = SyncState.__table__  # type: ignore[attr-defined]
EVENTS = StripeEvent.__table__  # type: ignore[attr-defined]
RUNS = SyncRun.__table__  # type: ignore[attr-defined]
LOCKS = SyncLock.__table__  # type: ignore[attr-defined]


class SyncError(Exception):
    """A sync step failed; the message is one sentence that says what to do."""


@dataclass
class SyncResult:
    status: str  # succeeded | failed | skipped
    counts: dict[str, int] = field(default_factory=dict)  # objects written per resource
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    fetched: dict[str, int] = field(default_factory=dict)  # objects received per resource
    run_id: int | None = None
    timing: dict[str, float] = field(default_factory=dict)  # seconds spent fetching / writing, all threads

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "skipped")

    def summary(self) -> str:
        """One line for the CLI and the Sync page."""
        if self.status == "skipped":
            return f"skipped: {self.error}"
        per = ", ".join(f"{r} {n:,}" for r, n in self.counts.items()) or "nothing written"
        line = f"{self.status}: {per}; {self.requests:,} requests in {self.seconds:.1f} s"
        return line + (f" — {self.error}" if self.error else "")


# --- writing pages -------------------------------------------------------------------------------


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@lru_cache(maxsize=128)
def _upsert_sql(table_name: str, cols: tuple[str, ...], versioned: bool, rows: int,
                insert_only: tuple[str, ...] = (), returning: bool = False) -> str:
    """SQLite's `INSERT … VALUES (?, …)[, (…)] ON CONFLICT (id) DO UPDATE SET … [WHERE excluded.version_ts >=
    t.version_ts] [RETURNING id]`, built once: one row run by executemany, or `rows` rows when the ids of the
    written rows are wanted. Column names come from the models, never from input."""
    one = "(" + ", ".join("?" for _ in cols) + ")"
    values = ", ".join([one] * rows)
    quoted = ", ".join(f'"{c}"' for c in cols)
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != "id" and c not in insert_only)
    where = f' WHERE excluded.version_ts >= "{table_name}".version_ts' if versioned else ""
    return (f'INSERT INTO "{table_name}" ({quoted}) VALUES {values} '  # noqa: S608 — model column names only
            f"ON CONFLICT (id) DO UPDATE SET {sets}{where}" + (" RETURNING id" if returning else ""))


def _pg_type(col_type: Any) -> str:
    name = type(col_type).__name__
    if isinstance(col_type, JSON):
        return "json"
    if name in ("AutoString", "String", "Text", "VARCHAR"):
        return "text"
    if name == "BigInteger":
        return "int8"
    if name == "Integer":
        return "int4"
    if name == "Boolean":
        return "bool"
    if "DateTime" in name:
        return "timestamptz"
    return "text"


@lru_cache(maxsize=64)
def _pg_upsert_sql(table_name: str, cols: tuple[str, ...], versioned: bool, insert_only: tuple[str, ...],
                   returning: bool, parent: tuple[str, str] | None = None) -> str:
    """PostgreSQL's bulk upsert: `INSERT … SELECT … FROM json_to_recordset(%s::json)`: the whole page is ONE
    text parameter, encoded by the json module's C encoder. The plan does not grow with the page (a 100-row
    VALUES list takes longer to plan than to run), and unlike one array per column it needs no per-value
    escaping in Python (psycopg dumps text arrays value by value: 40 µs an object). JSON columns travel as
    JSON. Columns left to their insert default (`insert_only`) come as one more parameter each — except a new
    customer's mrr, summed from the subscriptions already cached (pages of different resources interleave),
    which spares a second write of the row. With `parent` (table, key column), child rows carry their
    parent's version as `_v` and are written only under a parent at that version (see `_pg_statements`).
    Column names come from the models only."""
    table = _table(table_name)
    given = tuple(c for c in cols if c not in insert_only)
    types = {c: _pg_type(table.c[c].type) for c in cols}
    # Datetimes travel as integer microseconds since the epoch: exact, and cheaper to read than ISO text.
    defs = ", ".join([f'"{c}" {"int8" if types[c] == "timestamptz" else types[c]}' for c in given]
                     + (['"_v" int8'] if parent else []))
    quoted = ", ".join(f'"{c}"' for c in cols)

    def default(c: str) -> str:
        if table_name == "customers" and c == "mrr":
            return _MRR_TOTAL.format(customer='u."id"')
        return f"%s::{types[c]}"

    picks = ", ".join([f"(TIMESTAMPTZ 'epoch' + u.\"{c}\" * INTERVAL '1 microsecond')" if types[c] == "timestamptz"
                       else f'u."{c}"' for c in given] + [default(c) for c in insert_only])
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != "id" and c not in insert_only)
    where = f' WHERE excluded.version_ts >= "{table_name}".version_ts' if versioned else ""
    under = (f' WHERE EXISTS (SELECT 1 FROM "{parent[0]}" AS p WHERE p.id = u."{parent[1]}" '  # noqa: S608
             f'AND p.version_ts = u."_v")') if parent else ""
    return (f'INSERT INTO "{table_name}" ({quoted}) SELECT {picks} FROM json_to_recordset(%s::json) '  # noqa: S608
            f"AS u({defs}){under} ON CONFLICT (id) DO UPDATE SET {sets}{where}"
            + (" RETURNING id" if returning else ""))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _json_default(v: Any) -> Any:
    """Datetimes in a page's JSON parameter: integer microseconds since the epoch (naive ones taken as UTC,
    the cache's convention); `_pg_upsert_sql` turns them back into timestamptz."""
    if isinstance(v, datetime):
        return ((v if v.tzinfo is not None else v.replace(tzinfo=UTC)) - _EPOCH) // _MICROSECOND
    raise TypeError(f"cannot send {type(v).__name__} to the database")


_pg_page_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                                 default=_json_default).encode


_SQLITE_DATETIMES: dict[datetime, str] = {}  # recent conversions: a page repeats its sync time and periods


def _sqlite_datetime(v: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format, for an aware datetime (stored as UTC). A page's rows
    repeat most of their datetimes (synced_at, item and line periods): remembered, half of the 0.6 µs each
    conversion costs goes."""
    if v is None:
        return None
    text_ = _SQLITE_DATETIMES.get(v)
    if text_ is None:
        u = v if v.tzinfo is UTC else v.astimezone(UTC)
        text_ = "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 — 5x faster than strftime
            u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond)
        if len(_SQLITE_DATETIMES) >= 4096:
            _SQLITE_DATETIMES.clear()
        _SQLITE_DATETIMES[v] = text_
    return text_


def _json_text(v: Any) -> str | None:
    if v is None:
        return None
    if not v:
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(v)


@lru_cache(maxsize=64)
def _converters(table_name: str, cols: tuple[str, ...]) -> tuple[Callable[[Any], Any] | None, ...]:
    """Per column: how a Python value becomes a SQLite parameter as SQLAlchemy's types would bind it (UTC
    datetimes as text, JSON as text), without SQLAlchemy's per-value processing cost. None = as is."""
    table = _table(table_name)
    out: list[Callable[[Any], Any] | None] = []
    for c in cols:
        col_type = table.c[c].type
        if isinstance(col_type, JSON):
            out.append(_json_text)
        elif getattr(col_type, "python_type", None) is datetime or "DateTime" in type(col_type).__name__:
            out.append(_sqlite_datetime)
        else:
            out.append(None)
    return tuple(out)


def _upsert(conn: Connection, table: Table, rows: list[Obj], *, versioned: bool = True,
            returning: bool = False) -> Any:
    """Bulk insert-or-update by primary key; with `versioned`, a row only replaces an older-or-equal one.

    Returns how many rows were written, or with `returning` the ids that were (inserted or newer)."""
    if not rows:
        return [] if returning else 0
    if conn.dialect.name == "postgresql":  # the page as one JSON text: a tiny statement, planned once
        result = conn.exec_driver_sql(*_pg_upsert(table, rows, versioned=versioned, returning=returning))
        return [r[0] for r in result] if returning else result.rowcount
    given = tuple(rows[0])
    defaults = _insert_defaults(table.name, given)  # columns the row leaves to their default (customers.mrr)
    cols = given + tuple(defaults)
    tail = tuple(defaults.values())
    convs = tuple(zip(given, _converters(table.name, given), strict=True))
    params = [tuple([f(r[c]) if f else r[c] for c, f in convs]) + tail for r in rows]
    if not returning:
        return conn.exec_driver_sql(_upsert_sql(table.name, cols, versioned, 1, tuple(defaults)), params).rowcount
    written: list[str] = []
    per = max(1, min(200, 30000 // len(cols)))  # stay under SQLite's 32,766 bound parameters
    for i in range(0, len(params), per):
        chunk = params[i : i + per]
        sql = _upsert_sql(table.name, cols, versioned, len(chunk), tuple(defaults), True)
        written.extend(r[0] for r in conn.exec_driver_sql(sql, tuple(chain.from_iterable(chunk))))
    return written


def _pg_upsert(table: Table, rows: list[Obj], *, versioned: bool = True, returning: bool = False,
               parent: tuple[str, str] | None = None) -> Statement:
    """PostgreSQL's bulk upsert of `rows` as (statement, parameters), for `exec_driver_sql` or a pipeline."""
    given = tuple(c for c in rows[0] if c != "_v")
    defaults = _insert_defaults(table.name, given)
    sql = _pg_upsert_sql(table.name, given + tuple(defaults), versioned, tuple(defaults), returning, parent)
    params = tuple(v for c, v in defaults.items() if not (table.name == "customers" and c == "mrr"))
    return sql, (*params, _pg_page_json(rows))


def _pipeline(conn: Connection, statements: list[Statement]) -> list[int]:
    """Run statements in order, in the connection's transaction; returns the rows each affected. On
    PostgreSQL they go as one pipeline: one round trip for all instead of one each (a page's statements are
    a few hundred µs of server work; each round trip on a busy host costs 50–100 µs more). An error in any
    of them raises, and the caller's transaction rolls back as for any statement."""
    if conn.dialect.name != "postgresql" or len(statements) < 2:
        return [conn.exec_driver_sql(sql, params).rowcount for sql, params in statements]
    raw = conn.connection.driver_connection
    cursors = [raw.cursor() for _ in statements]  # type: ignore[union-attr]
    try:
        with raw.pipeline():  # type: ignore[union-attr]
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        return [c.rowcount for c in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


@lru_cache(maxsize=64)
def _insert_defaults(table_name: str, given: tuple[str, ...]) -> dict[str, Any]:
    """Scalar defaults of NOT NULL columns a row does not carry: set on insert, left alone on update."""
    table = _table(table_name)
    out: dict[str, Any] = {}
    for c in table.columns:
        if c.name not in given and not c.nullable and c.default is not None and c.default.is_scalar:
            out[c.name] = c.default.arg
    return out


def _table(name: str) -> Table:
    return TABLES[name] if name in TABLES else {"subscription_items": ITEMS, "invoice_lines": LINES}[name]


def _versions(conn: Connection, table: Table, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    q = select(table.c.id, table.c.version_ts).where(table.c.id.in_(bindparam("ids", expanding=True)))
    return dict(conn.execute(q, {"ids": ids}).all())  # type: ignore[arg-type]


def _in(conn: Connection, column: str, ids: list[str]) -> tuple[str, tuple[Any, ...]]:
    """`column IN (?, …)` on SQLite; `column = ANY(%s)` with one array on PostgreSQL (a 100-value IN list
    gets a generic plan there that scans the table: 15 ms a page against 0.2)."""
    if conn.dialect.name == "postgresql":
        return f"{column} = ANY(%s::text[])", (list(ids),)
    return f"{column} IN ({', '.join('?' * len(ids))})", tuple(ids)


_LIVE_SQL = ", ".join(f"'{s}'" for s in MRR_STATUSES)  # constants, never input
# A customer's mrr: the status test sits inside the sum so that the customer's id is the only condition.
# As `AND status IN (…)` the planner, without statistics for a filling table, also probed the status index,
# which matches most subscriptions: a bitmap over the whole index for every customer (133 µs a subscription).
_MRR_TOTAL = (f"COALESCE((SELECT SUM(CASE WHEN s.status IN ({_LIVE_SQL}) THEN s.mrr ELSE 0 END) "  # noqa: S608
              "FROM subscriptions s WHERE s.customer_id = {customer}), 0)")


def recompute_mrr(conn: Connection, customer_ids: Iterable[str], *, only_with_subscriptions: bool = False) -> None:
    """customers.mrr = Σ mrr of the customer's live subscriptions (MRR_STATUSES).

    Plain SQL with bound parameters: this runs on every page, and SQLAlchemy's expanding IN would compile
    the statement each time (10 µs an object)."""
    ids = sorted({c for c in customer_ids if c})
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        if only_with_subscriptions:
            where, params = _in(conn, "customer_id", chunk)
            sql = f"SELECT DISTINCT customer_id FROM subscriptions WHERE {where}"  # noqa: S608
            chunk = sorted(r[0] for r in conn.exec_driver_sql(sql, params))
            if not chunk:
                continue
        total = _MRR_TOTAL.format(customer="customers.id")
        # Only rows whose mrr changes are rewritten (mrr is indexed: an update rewrites the row's index entries).
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(*_pg_mrr_update(chunk))
        else:
            where, params = _in(conn, "id", chunk)
            sql = f"UPDATE customers SET mrr = {total} WHERE {where} AND mrr <> {total}"  # noqa: S608 — bound ids
            conn.exec_driver_sql(sql, params)


def _pg_mrr_update(customer_ids: list[str]) -> tuple[str, tuple[Any, ...]]:
    """PostgreSQL's recompute_mrr for these customers as (statement, parameters): the ids, one JSON text,
    drive the plan (an index lookup each, never a scan); only rows whose mrr changes are rewritten."""
    total = _MRR_TOTAL.format(customer="u.id")
    sql = (f"UPDATE customers SET mrr = t.total FROM (SELECT u.id, {total} AS total "  # noqa: S608 — constants
           "FROM json_array_elements_text(%s::json) AS u(id)) AS t "
           "WHERE customers.id = t.id AND customers.mrr <> t.total")
    return sql, (json.dumps(customer_ids),)


class ProductNames:
    """Product id → name for subscription items (Stripe cannot expand price.product 5 levels deep)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._names: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._settings = settings

    def resolve(self, objs: Iterable[Obj]) -> dict[str, str]:
        with self._lock:
            if self._names is None:
                self._names = {p["id"]: p.get("name") or "" for p in
                               gw.iter_list("/v1/products", settings=self._settings)}
            for obj in objs:
                for item in mapping._list_data(obj.get("items")):
                    pid = mapping.ref(mapping.dig(mapping._price_of(item), "product"))
                    if pid and pid not in self._names:
                        try:
                            product, _ = gw.retrieve(f"/v1/products/{pid}", settings=self._settings)
                            self._names[pid] = product.get("name") or ""
                        except gw.GatewayError:
                            self._names[pid] = ""
            return self._names


_shared: dict[tuple[str, str], tuple[float, ProductNames]] = {}


def shared_products(settings: Settings, ttl: float = 600.0) -> ProductNames:
    """Product names for webhook deliveries, listed once per 10 minutes rather than per delivery."""
    key = (settings.stripe_api_base, settings.stripe_api_key)
    born, names = _shared.get(key, (0.0, None))  # type: ignore[assignment]
    if names is None or time.monotonic() - born > ttl:
        names = ProductNames(settings)
        _shared[key] = (time.monotonic(), names)
    return names


def complete(resource: str, obj: Obj, settings: Settings | None = None) -> None:
    """Fetch the rest of nested lists cut at 10 (subscription items, invoice lines)."""
    if resource == "subscriptions":
        gw.complete_nested(obj, "items", "/v1/subscription_items", {"subscription": obj["id"]}, settings=settings)
    elif resource == "invoices" and obj.get("id"):
        gw.complete_nested(obj, "lines", f"/v1/invoices/{obj['id']}/lines", settings=settings)
        _attach_last_payment_error(obj, settings)


def _attach_last_payment_error(invoice: Obj, settings: Settings | None) -> None:
    """Put the decline of the last attempt where mapping reads it.

    In the current API an invoice's failure lives on the PaymentIntent of its last invoice payment, 5 expand
    levels below a list (Stripe allows 4), so it costs one call — made only for unpaid invoices that were
    attempted, the only ones whose failure the cache shows.
    """
    if invoice.get("status") not in ("open", "uncollectible") or not (invoice.get("attempt_count") or 0):
        return
    payments = invoice.get("payments")
    if not isinstance(payments, dict):  # not included: ask for them
        data = gw.list_page("/v1/invoice_payments", {"invoice": invoice["id"]}, settings=settings).data
        payments = invoice["payments"] = {"object": "list", "data": data, "has_more": False}
    entries = [p for p in mapping._list_data(payments) if mapping.dig(p, "payment", "payment_intent")]
    if not entries:
        return
    last = max(entries, key=lambda p: (p.get("created") or 0))
    pi = last["payment"]["payment_intent"]
    if isinstance(pi, str):
        last["payment"] = {**last["payment"], "payment_intent": gw.retrieve(f"/v1/payment_intents/{pi}",
                                                                            settings=settings)[0]}


def _page_rows(resource: str, versioned: list[tuple[Obj, int]], product_names: dict[str, str] | None,
               now: datetime) -> tuple[list[Obj], list[Obj], list[tuple[str, int]]]:
    """The rows of a batch: (rows, child rows, deleted-customer stubs), the newest state per id, in id order."""
    latest: dict[str, tuple[Obj, int]] = {}
    for obj, ts in versioned:  # the same object twice in one batch: the later one wins ties
        oid = obj.get("id")
        if isinstance(oid, str) and (oid not in latest or ts >= latest[oid][1]):
            latest[oid] = (obj, ts)
    rows: list[Obj] = []
    children: list[Obj] = []
    stubs: list[tuple[str, int]] = []
    for oid, (obj, ts) in sorted(latest.items()):  # one order everywhere: no deadlocks between writers
        if resource == "customers":
            if obj.get("deleted") and "created" not in obj:  # `{"id", "deleted": true}`: keep the last fields
                stubs.append((oid, ts))
                continue
            rows.append(mapping.customer_row(obj, ts, synced_at=now))
        elif resource == "subscriptions":
            row, items = mapping.subscription_rows(obj, ts, product_names, synced_at=now)
            rows.append(row)
            children.extend(items)
        elif resource == "invoices":
            row, lines = mapping.invoice_rows(obj, ts, synced_at=now)
            rows.append(row)
            children.extend(lines)
        else:
            rows.append(mapping.payment_method_row(obj, ts, synced_at=now))
    return rows, children, stubs


CHILDREN = {"subscriptions": (ITEMS, "subscription_id"), "invoices": (LINES, "invoice_id")}


def apply_objects(conn: Connection, resource: str, versioned: list[tuple[Obj, int]],
                  product_names: dict[str, str] | None = None) -> int:
    """Write objects (each with its version) newer-wins; returns how many rows changed.

    The version check happens in SQL (`WHERE excluded.version_ts >= t.version_ts`), so a concurrent webhook
    writer can never be overwritten by an older state. Child rows (items, lines) are replaced only for the
    parents whose new state was applied. Objects must be complete (see `complete`).
    """
    now = utcnow()
    rows, children, stubs = _page_rows(resource, versioned, product_names, now)
    if not rows and not stubs:
        return 0
    if conn.dialect.name == "postgresql":
        statements, counted = _pg_statements(resource, rows, children, stubs, now)
        counts = _pipeline(conn, statements)
        return sum(counts[i] for i in counted)
    return _sqlite_apply(conn, resource, rows, children, stubs, now)


def _pg_statements(resource: str, rows: list[Obj], children: list[Obj], stubs: list[tuple[str, int]],
                   now: datetime) -> tuple[list[Statement], list[int]]:
    """PostgreSQL's writes of a batch as statements that need no answer from each other, so that a page can
    be sent whole (lib/pg_pipeline); and the indexes of those whose row counts are rows written.

    Which parents' children to replace is decided in SQL, not by a round trip: the parent upsert locks every
    row it meets (ON CONFLICT locks even the rows its WHERE leaves alone) until commit, so after it a parent
    whose `version_ts` equals the version of this batch's state is exactly one this batch applied."""
    table = TABLES[resource]
    statements: list[Statement] = []
    counted: list[int] = []
    if rows:
        counted.append(0)
        statements.append(_pg_upsert(table, rows))
    if resource in CHILDREN and rows:
        child_table, key = CHILDREN[resource]
        versions = _pg_page_json([{"id": r["id"], "v": r["version_ts"]} for r in rows])
        statements.append((
            f'DELETE FROM "{child_table.name}" AS c USING json_to_recordset(%s::json) AS u(id text, v int8), '  # noqa: S608 — model names
            f'"{table.name}" AS p WHERE p.id = u.id AND p.version_ts = u.v AND c."{key}" = u.id', (versions,)))
        if children:
            version = {r["id"]: r["version_ts"] for r in rows}
            kids = [{**c, "_v": version[c[key]]} for c in children]
            statements.append(_pg_upsert(child_table, kids, versioned=False, parent=(table.name, key)))
        if resource == "subscriptions":
            owners = sorted({r["customer_id"] for r in rows})
            statements += [_pg_mrr_update(owners[i : i + 500]) for i in range(0, len(owners), 500)]
    if resource == "customers":
        if stubs:
            counted.append(len(statements))
            statements.append((
                "UPDATE customers SET deleted = true, version_ts = u.v, synced_at = %s::timestamptz "
                "FROM json_to_recordset(%s::json) AS u(id text, v int8) "
                "WHERE customers.id = u.id AND customers.version_ts <= u.v",
                (now, _pg_page_json([{"id": oid, "v": ts} for oid, ts in stubs]))))
        gone = [{"id": r["id"], "v": r["version_ts"]} for r in rows if r["deleted"]]
        gone += [{"id": oid, "v": ts} for oid, ts in stubs]
        if gone:  # a deleted customer's cards are detached with it (Stripe sends no events)
            statements.append((
                "UPDATE payment_methods SET customer_id = NULL, version_ts = u.v, synced_at = %s::timestamptz "
                "FROM json_to_recordset(%s::json) AS u(id text, v int8) "
                "WHERE payment_methods.customer_id = u.id AND payment_methods.version_ts <= u.v",
                (now, _pg_page_json(gone))))
    return statements, counted


def _sqlite_apply(conn: Connection, resource: str, rows: list[Obj], children: list[Obj],
                  stubs: list[tuple[str, int]], now: datetime) -> int:
    """SQLite's writes of a batch (in-process: asking which parents were applied costs no round trip)."""
    table = TABLES[resource]
    if resource in CHILDREN:
        applied = set(_upsert(conn, table, rows, returning=True))
        written = len(applied)
        child_table, key = CHILDREN[resource]
        if applied:
            where, params = _in(conn, f'"{key}"', sorted(applied))
            conn.exec_driver_sql(f'DELETE FROM "{child_table.name}" WHERE {where}', params)  # noqa: S608
            _upsert(conn, child_table, [c for c in children if c[key] in applied], versioned=False)
            if resource == "subscriptions":
                recompute_mrr(conn, {r["customer_id"] for r in rows if r["id"] in applied})
        return written
    written = _upsert(conn, table, rows)
    if resource == "customers":
        for oid, ts in stubs:
            written += conn.execute(update(table).where(table.c.id == oid, table.c.version_ts <= ts)
                                    .values(deleted=True, version_ts=ts, synced_at=now)).rowcount or 0
        gone = [(r["id"], r["version_ts"]) for r in rows if r["deleted"]] + stubs
        pm = TABLES["payment_methods"]
        for cid, ts in gone:  # a deleted customer's cards are detached with it (Stripe sends no events)
            conn.execute(update(pm).where(pm.c.customer_id == cid, pm.c.version_ts <= ts)
                         .values(customer_id=None, version_ts=ts, synced_at=now))
        if rows:  # mrr is kept on update; a customer new to the cache may already have subscriptions
            recompute_mrr(conn, [r["id"] for r in rows], only_with_subscriptions=True)
    return written


def _touch_state(conn: Connection, resource: str, cursor: str | None = None) -> None:
    """First statement of every page transaction: a write, so SQLite takes its write lock up front (a read
    first could meet a newer snapshot and fail with 'database is locked'). With `cursor`, it also moves the
    backfill cursor: committed together with the page or not at all."""
    conn.exec_driver_sql(*_touch_state_sql(conn.dialect.name, resource, cursor))


def _touch_state_sql(dialect: str, resource: str, cursor: str | None = None) -> Statement:
    """`_touch_state` as (statement, parameters)."""
    mark = "%s" if dialect == "postgresql" else "?"
    now = utcnow()
    stamp = now if dialect == "postgresql" else _sqlite_datetime(now)
    cursor_set = ", backfill_cursor = excluded.backfill_cursor" if cursor is not None else ""
    sql = (f"INSERT INTO sync_state (resource, backfill_cursor, updated_at) VALUES ({mark}, {mark}, {mark}) "  # noqa: S608 — constants only
           f"ON CONFLICT (resource) DO UPDATE SET updated_at = excluded.updated_at{cursor_set}")
    return sql, (resource, cursor, stamp)


def _set_state(conn: Connection, resource: str, **values: Any) -> None:
    conn.execute(update(STATE).where(STATE.c.resource == resource).values(**values))


@retry_transaction()
def ingest_page(engine: Engine, resource: str, objs: list[Obj], server_time: int, *,
                cursor: str | None = None, product_names: dict[str, str] | None = None) -> int:
    """Write one list page and (if given) its backfill cursor in one transaction; returns rows written."""
    with engine.begin() as conn:
        _start_page(conn, resource, cursor)
        return apply_objects(conn, resource, [(o, server_time) for o in objs], product_names)


SQLITE_WAL_CHECKPOINT_PAGES = 10_000  # 40 MB of WAL between automatic checkpoints (SQLite's default: 1,000)


def _sqlite_writer(conn: Connection) -> None:
    """SQLite: checkpoint the WAL every 10,000 pages instead of every 1,000 for the connection that writes
    pages. A checkpoint copies each changed page back to the database file once however often it changed
    since the last one, and syncs the file; a backfill rewrites the same index leaf pages page after page,
    so at 1,000 it spent more time checkpointing than inserting. Durability is unchanged (WAL with
    synchronous=NORMAL either way); readers keep working (a longer WAL to search, at most ~40 MB)."""
    record = conn.connection
    if conn.dialect.name == "sqlite" and not record.info.get("sync_writer"):
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_CHECKPOINT_PAGES}")
        record.info["sync_writer"] = True


def _start_page(conn: Connection, resource: str, cursor: str | None = None) -> None:
    """First statements of a page's transaction (list page or event page): `_touch_state` and
    `_page_settings`, in one round trip on PostgreSQL."""
    _pipeline(conn, [_touch_state_sql(conn.dialect.name, resource, cursor), *_page_settings(conn)])


def _page_settings(conn: Connection) -> list[Statement]:
    """Settings for a page's transaction, as statements to run first. SQLite: see `_sqlite_writer`.
    PostgreSQL: `_PG_PAGE_SETTINGS`."""
    _sqlite_writer(conn)
    return list(_PG_PAGE_SETTINGS) if conn.dialect.name == "postgresql" else []


# PostgreSQL: do not wait for this page's WAL flush at commit. A server crash can then lose the last few
# committed pages — each together with its cursor, so the next run simply fetches them again — and never
# leaves a page half-written. Cuts a page's commit from a disk flush to a memory write. And every statement
# of a page is driven by its ≤ 100 ids, so index lookups are always right; a cache that is still filling
# has no statistics yet, and the planner then hashes or scans whole tables for them (a page's child DELETE
# took 2 ms and grew with the table): for this transaction only, no. The page writer prepares its statements
# once per connection (lib/pg_pipeline); each page is still planned for its own values: PostgreSQL's generic
# plans for them ran 20-50% slower (server CPU 27.7-28.5 µs an object with custom plans, 29.7-32.8 without).
_PG_PAGE_SETTINGS: tuple[Statement, ...] = (
    ("SELECT set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true), "
     "set_config('enable_hashjoin', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)", ()),
)


class PageWriter:
    """Writes list pages, each in one transaction with its backfill cursor, for one sync run.

    On PostgreSQL a page's transaction is sent whole and its results are read when the next page is written
    (or at `flush`): the server commits page N while this process parses and maps page N+1 (lib/pg_pipeline
    explains why a kill still loses at most the page in hand). Written-row counts arrive through
    `on_written` as pages settle. A page the server refuses as a deadlock victim is sent again; any other
    failure of a page (refused, or its connection lost) is raised to the resource that wrote it, at its next
    `write` or `flush` — never to another resource's thread, which carries on with a new connection; the
    failed resource stops before sending a page past the lost one. Not thread-safe: the sync's resource
    threads share one writer under their write lock.
    """

    def __init__(self, engine: Engine, on_written: Callable[[str, int], None] | None = None) -> None:
        self.engine = engine
        self._on_written = on_written
        self._pipe: PipelinedConnection | None = None
        self._pending: tuple[str, list[Statement], list[int]] | None = None
        self._failed: dict[str, BaseException] = {}

    def write(self, resource: str, objs: list[Obj], server_time: int, *, cursor: str | None = None,
              product_names: dict[str, str] | None = None) -> None:
        if self.engine.dialect.name != "postgresql":
            self._raise_failed(resource)
            written = ingest_page(self.engine, resource, objs, server_time, cursor=cursor,
                                  product_names=product_names)
            self._report(resource, written)
            return
        now = utcnow()
        rows, children, stubs = _page_rows(resource, [(o, server_time) for o in objs], product_names, now)
        statements, counted = _pg_statements(resource, rows, children, stubs, now)
        head = [_touch_state_sql("postgresql", resource, cursor), *_PG_PAGE_SETTINGS]
        self._settle()  # the previous page: its results are (nearly always) in by now
        self._raise_failed(resource)
        self._send(resource, head + statements, [len(head) + i for i in counted])

    def backend_pid(self) -> int | None:
        """PostgreSQL: the server process that writes the pages (connecting now if needed); SQLite: None."""
        if self.engine.dialect.name != "postgresql":
            return None
        if self._pipe is None:
            self._pipe = PipelinedConnection(self.engine)
        return self._pipe.backend_pid

    def flush(self, resource: str | None = None) -> None:
        """Wait for the page in flight; raise `resource`'s failure (any resource's when None)."""
        self._settle()
        if resource is not None:
            self._raise_failed(resource)
        elif self._failed:
            raise self._failed.pop(next(iter(self._failed)))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pipe is not None:
                pipe, self._pipe = self._pipe, None
                pipe.close()

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, resource: str, statements: list[Statement], counted: list[int]) -> None:
        if self._pipe is None:
            self._pipe = PipelinedConnection(self.engine)
        try:
            self._pipe.send(statements)
        except BaseException:
            self._pipe = None  # its connection was invalidated, never reused; the next page opens another
            raise
        self._pending = (resource, statements, counted)

    def _settle(self) -> None:
        if self._pending is None or self._pipe is None:
            return
        resource, statements, counted = self._pending
        self._pending = None
        for attempt in range(1, 5):
            try:
                counts = self._pipe.settle()
            except TransactionFailed as exc:
                if not exc.retryable or attempt == 4:
                    self._failed[resource] = exc.error
                    return
            except Exception as exc:  # noqa: BLE001 — the connection broke: this page's fate is unknown, and
                self._pipe = None  # it is its own resource's failure, whichever thread settles it
                self._failed[resource] = exc
                return
            else:
                self._report(resource, sum(counts[i] for i in counted))
                return
            time.sleep(random.uniform(0.05, 0.2) * attempt)  # a deadlock victim: the same page again
            try:
                self._send(resource, statements, counted)
            except Exception as exc:  # noqa: BLE001 — as above
                self._failed[resource] = exc
                return
            self._pending = None

    def _report(self, resource: str, written: int) -> None:
        if self._on_written is not None:
            self._on_written(resource, written)

    def _raise_failed(self, resource: str) -> None:
        if resource in self._failed:
            raise self._failed.pop(resource)


def get_state(engine: Engine, resource: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(STATE).where(STATE.c.resource == resource)).mappings().first()
    return dict(row) if row else {"resource": resource, "backfill_cursor": None, "backfill_started_at": None,
                                  "backfill_completed_at": None, "event_cursor": None,
                                  "event_cursor_created": None}


# --- events --------------------------------------------------------------------------------------


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


# --- the lock ------------------------------------------------------------------------------------


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_stale(row: Any) -> bool:
    host, _, pid = str(row.holder).rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    heartbeat = row.heartbeat_at
    return heartbeat is None or utcnow() - heartbeat > LOCK_STALE_AFTER


class LockHeld(Exception):
    """Another sync holds the lock; the message names it."""


@contextmanager
def sync_lock(engine: Engine, holder: str | None = None) -> Iterator[str]:
    """Hold the database's one sync lock for the block, or raise LockHeld naming who holds it.

    PostgreSQL: a session advisory lock (released by the server if this process dies), plus a `sync_lock`
    row that tells others who holds it. SQLite: the `sync_lock` row alone; a row left by a dead process
    (same host, pid gone; or no heartbeat for 5 minutes) is taken over.
    """
    me = holder or holder_name()
    pg_conn = None
    if engine.dialect.name == "postgresql":
        pg_conn = engine.connect()
        got = pg_conn.execute(text(f"SELECT pg_try_advisory_lock({PG_LOCK_SQL})"), {"k": PG_LOCK_KEY}).scalar()
        pg_conn.commit()
        if not got:
            pg_conn.close()
            raise LockHeld(_held_message(engine))
    try:
        with engine.begin() as conn:
            now = utcnow()
            row = {"name": LOCK_NAME, "holder": me, "acquired_at": now, "heartbeat_at": now}
            if pg_conn is not None:  # the advisory lock is the truth: the row only informs
                conn.execute(_insert(conn, LOCKS).values(**row).on_conflict_do_update(
                    index_elements=["name"], set_={k: v for k, v in row.items() if k != "name"}))
            else:
                got = conn.execute(_insert(conn, LOCKS).values(**row).on_conflict_do_nothing()).rowcount
                if not got:
                    existing = conn.execute(select(LOCKS).where(LOCKS.c.name == LOCK_NAME)).first()
                    if existing is not None and not _lock_is_stale(existing):
                        raise LockHeld(_held_text(existing))
                    taken = conn.execute(update(LOCKS).where(
                        LOCKS.c.name == LOCK_NAME, LOCKS.c.holder == (existing.holder if existing else me)
                    ).values(**{k: v for k, v in row.items() if k != "name"})).rowcount
                    if not taken:
                        raise LockHeld("another sync took the lock at the same moment")
        try:
            yield me
        finally:
            with engine.begin() as conn:
                conn.execute(delete(LOCKS).where(LOCKS.c.name == LOCK_NAME, LOCKS.c.holder == me))
    finally:
        if pg_conn is not None:
            try:
                pg_conn.execute(text(f"SELECT pg_advisory_unlock({PG_LOCK_SQL})"), {"k": PG_LOCK_KEY})
                pg_conn.commit()
            finally:
                pg_conn.close()


def _held_text(row: Any) -> str:
    since = row.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC") if row.acquired_at else "?"
    return f"another sync is running ({row.holder}, since {since})"


def _held_message(engine: Engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(select(LOCKS).where(LOCKS.c.name == LOCK_NAME)).first()
    return _held_text(row) if row is not None else "another sync is running (holder unknown)"


def heartbeat(engine: Engine, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(LOCKS).where(LOCKS.c.name == LOCK_NAME, LOCKS.c.holder == holder)
                     .values(heartbeat_at=utcnow()))


# --- one run -------------------------------------------------------------------------------------


class _Run:
    """State shared by the resource workers of one run."""

    def __init__(self, engine: Engine, settings: Settings, holder: str) -> None:
        self.engine = engine
        self.settings = settings
        self.holder = holder
        self.counts: dict[str, int] = {}
        self.fetched: dict[str, int] = {}
        self.notes: list[str] = []
        self.updates: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.write_lock = threading.Lock()  # one writer per process: short transactions, no SQLite busy-snapshot
        self.writer = PageWriter(engine, on_written=lambda resource, n: self.add(resource, n, 0))  # under the lock
        self.products = ProductNames(settings)
        self._last_beat = 0.0
        self._newest: tuple[str | None, int, int] | None = None
        self.timing: dict[str, float] = {"fetch": 0.0, "write": 0.0}
        self._newest_lock = threading.Lock()

    def add(self, resource: str, written: int, fetched: int) -> None:
        self.counts[resource] = self.counts.get(resource, 0) + written
        self.fetched[resource] = self.fetched.get(resource, 0) + fetched
        self.updates.put((resource, self.counts[resource]))
        if time.monotonic() - self._last_beat > 15:
            self._last_beat = time.monotonic()
            heartbeat(self.engine, self.holder)

    def newest_event(self) -> tuple[str | None, int, int]:
        """(id and created of the newest event, Stripe's clock), asked once per run: event cursors start there
        after a backfill, and the clock tells whether a cursor is past the 30-day retention."""
        with self._newest_lock:
            if self._newest is None:
                page = gw.list_page("/v1/events", {"limit": 1}, settings=self.settings)
                ev = page.data[0] if page.data else None
                created = int(ev["created"]) if ev else 0
                self._newest = (ev["id"] if ev else None, created, max(page.server_time, created))
            return self._newest

    def stripe_time(self, response_time: int) -> int:
        """The version of a fetched state: Stripe's clock. The `Date` of the response, but never before the
        newest event seen (a clock that runs ahead of ours — a sandbox's advanced clock — stays ordered)."""
        return max(response_time, self.newest_event()[1])

    def check(self) -> None:
        if self.stop.is_set():
            raise SyncError("stopped because another resource failed")


def _backfill_list(run: _Run, resource: str, state: dict[str, Any]) -> None:
    """Page through a list endpoint from the committed cursor, one transaction per page."""
    cursor = state.get("backfill_cursor")
    path, extra = LIST_PATHS[resource], LIST_PARAMS.get(resource, {})
    while True:
        run.check()
        params = {**extra, **({"starting_after": cursor} if cursor else {})}
        started = time.monotonic()
        page = gw.list_page(path, params, settings=run.settings)
        for obj in page.data:
            complete(resource, obj, run.settings)
        names = run.products.resolve(page.data) if resource == "subscriptions" else None
        cursor = page.data[-1]["id"] if page.data else cursor
        fetched_at = time.monotonic()
        with run.write_lock:
            run.writer.write(resource, page.data, run.stripe_time(page.server_time), cursor=cursor,
                             product_names=names)
        run.timing["fetch"] += fetched_at - started
        run.timing["write"] += time.monotonic() - fetched_at
        run.add(resource, 0, len(page.data))
        if not page.has_more or not page.data:
            return


def _backfill_payment_methods(run: _Run, state: dict[str, Any]) -> None:
    """Stripe lists payment methods per customer only: walk the cached customers in id order."""
    cust = TABLES["customers"]
    cursor = state.get("backfill_cursor")
    while True:
        q = select(cust.c.id).where(cust.c.deleted.is_(False)).order_by(cust.c.id).limit(200)
        if cursor:
            q = q.where(cust.c.id > cursor)
        with run.engine.connect() as conn:
            ids = list(conn.execute(q).scalars())
        if not ids:
            return
        for cid in ids:
            run.check()
            pms, server_time = [], 0
            try:
                for pm_page in gw.iter_pages(f"/v1/customers/{cid}/payment_methods", settings=run.settings):
                    pms.extend(pm_page.data)
                    server_time = pm_page.server_time
            except gw.GatewayError as exc:
                if exc.kind != "missing":  # deleted since the customers page: its cards went with it
                    raise
            with run.write_lock:
                run.writer.write("payment_methods", pms, run.stripe_time(server_time or int(time.time())),
                                 cursor=cid)
            run.add("payment_methods", 0, len(pms))
            cursor = cid


def _sweep(conn: Connection, resource: str, started: datetime) -> int:
    """After a complete backfill: what Stripe no longer lists is gone (deleted customers, detached cards,
    deleted drafts). Rows seen by this backfill have `synced_at` >= its start."""
    table = TABLES[resource]
    if resource == "customers":
        stmt = update(table).where(table.c.deleted.is_(False), table.c.synced_at < started).values(deleted=True)
    elif resource == "payment_methods":
        stmt = update(table).where(table.c.customer_id.is_not(None), table.c.synced_at < started).values(
            customer_id=None)
    elif resource == "invoices":
        gone = select(table.c.id).where(table.c.status == "draft", table.c.synced_at < started)
        conn.execute(delete(LINES).where(LINES.c.invoice_id.in_(gone)))
        stmt = delete(table).where(table.c.status == "draft", table.c.synced_at < started)
    else:
        return 0
    n = conn.execute(stmt).rowcount or 0
    if resource == "customers" and n:
        conn.execute(update(TABLES["subscriptions"]).where(
            TABLES["subscriptions"].c.customer_id.in_(select(table.c.id).where(table.c.deleted.is_(True))),
            TABLES["subscriptions"].c.status.not_in(("canceled", "incomplete_expired")),
            TABLES["subscriptions"].c.synced_at < started).values(status="canceled"))
    return n


def _cached_rows(engine: Engine, resource: str) -> int:
    table = TABLES[resource]
    q = select(func.count()).select_from(table)
    if resource == "customers":
        q = q.where(table.c.deleted.is_(False))
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def backfill(run: _Run, resource: str, *, restart: bool) -> None:
    """Full backfill of one resource: resume an unfinished one, else start anew (and seed its event cursor)."""
    state = get_state(run.engine, resource)
    in_progress = state.get("backfill_started_at") is not None and state.get("backfill_completed_at") is None
    if not in_progress or restart:
        event_id, event_created, stripe_now = run.newest_event()
        with run.write_lock, run.engine.begin() as conn:
            _touch_state(conn, resource)
            _set_state(conn, resource, backfill_cursor=None, backfill_started_at=utcnow(),
                       backfill_completed_at=None, event_cursor=event_id,
                       event_cursor_created=from_ts(event_created if event_id else stripe_now))
        state = get_state(run.engine, resource)
    elif state.get("backfill_cursor"):
        run.notes.append(f"{resource}: resuming the interrupted backfill after {state['backfill_cursor']}")
    had = _cached_rows(run.engine, resource)
    before = run.fetched.get(resource, 0)
    if resource == "payment_methods":
        _backfill_payment_methods(run, state)
    else:
        _backfill_list(run, resource, state)
    with run.write_lock:
        run.writer.flush(resource)  # its last page is committed before the backfill is marked complete
    fetched_now = run.fetched.get(resource, 0) - before
    if fetched_now == 0 and had > 0 and not state.get("backfill_cursor") and resource != "payment_methods":
        raise SyncError(
            f"Stripe listed no {resource.replace('_', ' ')} although the cache holds {had:,}: the API key may "
            "belong to another account or lack read permission. Nothing was removed; check STRIPE_API_KEY."
        )
    with run.write_lock, run.engine.begin() as conn:
        _touch_state(conn, resource)
        swept = _sweep(conn, resource, state["backfill_started_at"])
        _set_state(conn, resource, backfill_cursor=None, backfill_completed_at=utcnow())
    if swept:
        run.notes.append(f"{resource}: {swept:,} no longer in Stripe, marked gone")


def incremental(run: _Run, resource: str) -> None:
    """Apply this resource's events since its cursor, oldest first; a cursor past retention → backfill."""
    state = get_state(run.engine, resource)
    if state.get("backfill_completed_at") is None:
        run.notes.append(f"{resource}: no completed backfill yet, running one")
        return backfill(run, resource, restart=False)
    cursor, cursor_created = state.get("event_cursor"), state.get("event_cursor_created")
    newest_id, newest_created, stripe_now = run.newest_event()
    if cursor_created is not None and from_ts(stripe_now) - cursor_created > EVENT_RETENTION:
        return _expired(run, resource, cursor_created)
    types = {"types": list(EVENT_TYPES[resource])}
    applied = 0
    if cursor is None:  # there were no events at all when the backfill started: start at the oldest since
        since = int(cursor_created.timestamp()) - 5 if cursor_created else 0
        oldest: Obj | None = None
        for page in gw.iter_pages("/v1/events", {**types, "created": {"gte": since}}, settings=run.settings):
            run.check()
            oldest = page.data[-1] if page.data else oldest  # newest first: keep only the last one seen
        if oldest is not None:
            _apply_event_page(run, resource, [oldest], server_time=stripe_now)
            applied, cursor = 1, oldest["id"]
    while cursor is not None:
        run.check()
        try:
            page = gw.list_page("/v1/events", {**types, "ending_before": cursor}, settings=run.settings)
        except gw.GatewayError as exc:
            if exc.kind == "missing":  # the cursor event itself is past retention
                return _expired(run, resource, cursor_created)
            raise
        if page.data:
            _apply_event_page(run, resource, list(reversed(page.data)), server_time=page.server_time)
            applied += len(page.data)
            cursor = page.data[0]["id"]
        if not page.has_more or not page.data:
            break
    if not applied and newest_id is not None and newest_id != cursor:
        # A quiet resource: move its cursor up to the account's newest event (read before this scan), so it
        # never ages past the retention while nothing happens to it.
        with run.write_lock, run.engine.begin() as conn:
            _touch_state(conn, resource)
            _set_state(conn, resource, event_cursor=newest_id, event_cursor_created=from_ts(newest_created))


@retry_transaction()
def _apply_event_page(run: _Run, resource: str, events: list[Obj], *, server_time: int) -> None:
    prepare_events(events, run.settings)
    newest = events[-1]
    with run.write_lock, run.engine.begin() as conn:
        _start_page(conn, resource)
        _, per_resource = apply_events(conn, events, source="events", products=run.products)
        _set_state(conn, resource, event_cursor=newest["id"], event_cursor_created=from_ts(int(newest["created"])))
    run.add(resource, sum(per_resource.values()), len(events))


def _expired(run: _Run, resource: str, cursor_created: datetime | None) -> None:
    when = cursor_created.strftime("%Y-%m-%d") if cursor_created else "unknown"
    run.notes.append(f"{resource}: the event cursor ({when}) is older than Stripe's 30-day event retention; "
                     "running a full backfill instead")
    backfill(run, resource, restart=True)


def _record_run(engine: Engine, **values: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(RUNS.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]


def _finish_run(engine: Engine, run_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(finished_at=utcnow(), **values))


def run_sync(*, mode: str = "incremental", resources: list[str] | None = None,
             progress: Progress | None = None, settings: Settings | None = None) -> SyncResult:
    """Refresh the cache from Stripe; never raises for Stripe or lock trouble (see SyncResult).

    mode "full": backfill every resource (resuming an interrupted backfill); "incremental": apply events since
    each resource's cursor (a backfill where there is none, or where it is past the 30-day retention).
    `progress(resource, objects_written_so_far)` is called from the caller's thread.
    """
    started = time.monotonic()
    settings = settings or get_settings()
    wanted = list(dict.fromkeys(resources or RESOURCES))
    bad = [r for r in wanted if r not in RESOURCES]
    if mode not in ("full", "incremental") or bad:
        return SyncResult("failed", error=f"unknown {'mode ' + mode if bad == [] else 'resource ' + bad[0]}: "
                          f"use --resource one of {', '.join(RESOURCES)}")
    engine = ensure_migrated(settings.database_url)
    requests_before = gw.requests_sent()
    holder = holder_name()
    try:
        lock = sync_lock(engine, holder)
        lock.__enter__()
    except LockHeld as exc:
        run_id = _record_run(engine, mode=mode, status="skipped", error=str(exc), host=holder,
                             finished_at=utcnow())
        return SyncResult("skipped", error=f"{exc}; nothing to do", run_id=run_id,
                          seconds=time.monotonic() - started)
    try:
        with engine.begin() as conn:  # runs left 'running' by a killed process
            conn.execute(update(RUNS).where(RUNS.c.status == "running").values(
                status="failed", finished_at=utcnow(), error="interrupted: the process ended before finishing"))
        run_id = _record_run(engine, mode=mode, status="running", host=holder)
        run = _Run(engine, settings, holder)
        try:
            result = _execute(run, mode, wanted, progress)
        except (gw.GatewayError, SyncError) as exc:  # e.g. the events check after an empty backfill
            result = SyncResult("failed", counts={r: run.counts.get(r, 0) for r in wanted}, error=str(exc),
                                notes=run.notes, fetched=run.fetched, timing=run.timing)
        finally:
            run.writer.close()  # no-op when _execute closed it; never leaves a page or connection behind
        result.run_id = run_id
        result.requests = gw.requests_sent() - requests_before
        result.seconds = time.monotonic() - started
        _finish_run(engine, run_id, status=result.status, counts=result.counts, requests=result.requests,
                    error=result.error)
        return result
    finally:
        lock.__exit__(None, None, None)


def _execute(run: _Run, mode: str, wanted: list[str], progress: Progress | None) -> SyncResult:
    if "payment_methods" in wanted and "customers" not in wanted and \
            get_state(run.engine, "customers").get("backfill_completed_at") is None:
        wanted = ["customers", *wanted]  # cards are listed per cached customer: they must be there first
        run.notes.append("payment_methods: customers were never backfilled, backfilling them first")
    finished_earlier = _done_by_interrupted_backfill(run.engine, wanted) if mode == "full" else set()
    for resource in sorted(finished_earlier):
        run.notes.append(f"{resource}: already backfilled by the interrupted run, not fetched again")

    def work(resource: str) -> None:
        try:
            if resource in finished_earlier:
                return
            if mode == "full":
                backfill(run, resource, restart=False)
            else:
                incremental(run, resource)
        except BaseException:
            run.stop.set()
            raise

    lists = [r for r in wanted if r != "payment_methods"]
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, len(wanted)), thread_name_prefix="sync") as pool:
        futures = {r: pool.submit(work, r) for r in lists}
        pm_future = None
        while True:
            _drain(run, progress)
            if pm_future is None and "payment_methods" in wanted:
                customers_done = "customers" not in futures or futures["customers"].done()
                if customers_done:  # cards are listed per cached customer
                    failed = "customers" in futures and futures["customers"].exception() is not None
                    if not failed:
                        futures["payment_methods"] = pm_future = pool.submit(work, "payment_methods")
                    else:
                        pm_future = futures["customers"]
            if all(f.done() for f in futures.values()) and (pm_future is not None or "payment_methods"
                                                               not in wanted):
                break
            time.sleep(0.05)
        for resource, fut in futures.items():
            exc = fut.exception()
            if exc is not None and not (isinstance(exc, SyncError) and run.stop.is_set()
                                        and str(exc).startswith("stopped")):
                errors.append(f"{resource}: {_describe(exc)}")
    try:
        run.writer.close()  # the page still in flight, when a resource stopped early
    except Exception as exc:  # noqa: BLE001 — reported as the run's error
        errors.append(f"writing a page: {_describe(exc)}")
    _drain(run, progress)
    counts = {r: run.counts.get(r, 0) for r in wanted}
    if not errors and mode == "full" and sum(run.fetched.values()) == 0:
        event_id, _, _ = run.newest_event()
        if event_id is not None:
            errors.append("Stripe returned no objects although the account has events: the API key may lack "
                          "read permission or belong to another account; check STRIPE_API_KEY")
    if errors:
        return SyncResult("failed", counts=counts, error="; ".join(errors), notes=run.notes, fetched=run.fetched,
                          timing=run.timing)
    return SyncResult("succeeded", counts=counts, notes=run.notes, fetched=run.fetched, timing=run.timing)


def _done_by_interrupted_backfill(engine: Engine, wanted: list[str]) -> set[str]:
    """When a full backfill was interrupted, the resources it had already finished are not fetched again:
    the rerun resumes the unfinished ones only (their events catch up with the rest on the next run)."""
    states = {r: get_state(engine, r) for r in wanted}
    unfinished = [s["backfill_started_at"] for s in states.values()
                  if s.get("backfill_started_at") is not None and s.get("backfill_completed_at") is None]
    if not unfinished:
        return set()
    since = min(unfinished)
    return {r for r, s in states.items() if s.get("backfill_completed_at") is not None
            and s["backfill_completed_at"] >= since}


def _drain(run: _Run, progress: Progress | None) -> None:
    while True:
        try:
            resource, n = run.updates.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            try:
                progress(resource, n)
            except Exception:  # noqa: BLE001 — a display problem must not stop the sync
                pass


def _describe(exc: BaseException) -> str:
    """The error of a run, as stored and shown on the Sync page: a database error's first line only (its
    `[SQL: …]` and `[parameters: …]` would carry a whole page of customer data)."""
    if isinstance(exc, gw.GatewayError | SyncError):
        return str(exc)
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


# --- one customer --------------------------------------------------------------------------------


def refresh_customer(customer_id: str, *, settings: Settings | None = None) -> None:
    """Re-fetch one customer with its subscriptions, invoices and payment methods into the cache.

    Used after portal and merge actions. Raises GatewayError when Stripe cannot be read. Only the write is
    rerun when PostgreSQL picks it as a deadlock victim: the Stripe reads are not repeated.
    """
    gw.checked_id(IdKind.CUSTOMER, customer_id)  # before any request: an id like cus_x/../cus_Y reads no one
    settings = settings or get_settings()
    engine = ensure_migrated(settings.database_url)
    newest = gw.list_page("/v1/events", {"limit": 1}, settings=settings).data
    customer, server_time = gw.retrieve(f"/v1/customers/{customer_id}", settings=settings)
    server_time = max(server_time, int(newest[0]["created"]) if newest else 0)  # see _Run.stripe_time
    def listed(path: str, params: dict[str, Any]) -> list[Obj]:
        try:
            return list(gw.iter_list(path, params, settings=settings))
        except gw.GatewayError as exc:
            if exc.kind == "missing" and customer.get("deleted"):  # a deleted customer's lists may be gone
                return []
            raise

    subs = listed("/v1/subscriptions", {"customer": customer_id, "status": "all"})
    for s in subs:
        complete("subscriptions", s, settings)
    invoices = listed("/v1/invoices", {"customer": customer_id})
    for inv in invoices:
        complete("invoices", inv, settings)
    pms: list[Obj] = []
    if not customer.get("deleted"):
        pms = list(gw.iter_list(f"/v1/customers/{customer_id}/payment_methods", settings=settings))
    # the product names webhooks use (listed once per 10 minutes), not a product list per refresh
    names = shared_products(settings).resolve(subs) if subs else None
    _write_customer(engine, customer_id, server_time, customer, subs, invoices, pms, names)


@retry_transaction()
def _write_customer(engine: Engine, customer_id: str, server_time: int, customer: Obj, subs: list[Obj],
                    invoices: list[Obj], pms: list[Obj], names: dict[str, str] | None) -> None:
    """refresh_customer's one transaction: the customer, its lists, and its cards no longer attached."""
    pm_table = TABLES["payment_methods"]
    with engine.begin() as conn:
        _touch_state(conn, "customers")
        apply_objects(conn, "customers", [(customer, server_time)])
        apply_objects(conn, "subscriptions", [(s, server_time) for s in subs], names)
        apply_objects(conn, "invoices", [(i, server_time) for i in invoices])
        apply_objects(conn, "payment_methods", [(p, server_time) for p in pms])
        conn.execute(update(pm_table).where(   # cards the cache still puts on this customer are detached now
            pm_table.c.customer_id == customer_id, pm_table.c.id.not_in([p["id"] for p in pms]),
            pm_table.c.version_ts <= server_time).values(customer_id=None, version_ts=server_time))
