"""The sync's SQL: the cache tables it writes, dialect upserts (SQLite `VALUES`, PostgreSQL `json_to_recordset`)
with their value converters, customers' mrr, and the per-resource sync state.

Statements are built from model column names and constants only; values always travel as bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

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
    utcnow,
)

Obj = dict[str, Any]
Statement = tuple[str, tuple[Any, ...]]  # SQL with %s placeholders, and its parameters

RESOURCES = ("customers", "subscriptions", "invoices", "payment_methods")
# SQLModel sets `__table__` on every table model but its stubs do not declare it (hence attr-defined below).
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
    cursors = [raw.cursor() for _ in statements]  # type: ignore[union-attr]  # psycopg here: the dialect says so
    try:
        with raw.pipeline():  # type: ignore[union-attr]  # a psycopg Connection (typed as any DBAPI one)
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
            out[c.name] = c.default.arg  # type: ignore[attr-defined]  # is_scalar: a ScalarElementColumnDefault
    return out


def _table(name: str) -> Table:
    return TABLES[name] if name in TABLES else {"subscription_items": ITEMS, "invoice_lines": LINES}[name]


def _versions(conn: Connection, table: Table, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    q = select(table.c.id, table.c.version_ts).where(table.c.id.in_(bindparam("ids", expanding=True)))
    return dict(conn.execute(q, {"ids": ids}).all())


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


def get_state(engine: Engine, resource: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(STATE).where(STATE.c.resource == resource)).mappings().first()
    return dict(row) if row else {"resource": resource, "backfill_cursor": None, "backfill_started_at": None,
                                  "backfill_completed_at": None, "event_cursor": None,
                                  "event_cursor_created": None}
