"""Writing pages: objects → cache rows, newer-wins, each page in one transaction with its cursor (`PageWriter`).

On PostgreSQL a page's transaction is sent whole and settled later (libpq pipeline mode,
`PipelinedConnection`). A page's statements go out as one pipeline ending in a Sync: PostgreSQL runs them as
ONE implicit transaction and commits it at the Sync, or rolls all of it back on an error. `send` returns once
every byte is in the socket, without waiting for the server; `settle` reads the results. Between the two the
server writes page N while this process parses and maps page N+1, so client and server work overlap instead
of adding up.

Why a page is still never lost by a kill: `send` returns only when the whole transaction, Sync included, has
left this process; a SIGKILL after that cannot stop the server from committing it (the server reads what was
sent before it notices the closed socket). So a killed sync still re-fetches at most the page it was on.
"""

from __future__ import annotations

import hashlib
import random
import re
import select
import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Engine, update

from lib import mapping
from lib.db import RETRYABLE_SQLSTATES, retry_transaction
from lib.models import utcnow
from lib.sync.sql import (
    ITEMS,
    LINES,
    TABLES,
    Obj,
    Statement,
    _in,
    _pg_mrr_update,
    _pg_page_json,
    _pg_upsert,
    _pipeline,
    _touch_state_sql,
    _upsert,
    recompute_mrr,
)

# --- the pipelined connection (PostgreSQL) -------------------------------------------------------


class TransactionFailed(Exception):
    """The transaction in flight was rolled back by the server; `error` is psycopg's error for it."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def retryable(self) -> bool:
        """A deadlock or serialization failure: the same statements may simply be sent again."""
        return getattr(self.error, "sqlstate", None) in RETRYABLE_SQLSTATES


@lru_cache(maxsize=256)
def _prepared(sql: str) -> tuple[bytes, bytes]:
    """(name, text) of a statement prepared once per connection: `%s` placeholders (psycopg's) become
    `$1, $2, …` (libpq's) — the statements come from the sync's constant builders, which use no other `%`.
    Parsing and planning a page's upserts again for every page cost the server ~7 µs an object."""
    count = iter(range(1, sql.count("%s") + 1))
    text = re.sub("%s", lambda _m: f"${next(count)}", sql).encode()
    return b"bc_page_" + hashlib.sha1(text).hexdigest()[:20].encode(), text


def _param(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format; the statements cast each one (`$1::json`, …)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class PipelinedConnection:
    """A connection of its own (detached from the pool) that holds at most one transaction in flight.

    Detached because its prepared statements must stay: psycopg sends `DEALLOCATE ALL` on a pooled connection
    whenever its own statement cache is reset (after a ROLLBACK or DROP it ran), and nothing else ever uses
    this one. Closing it closes the connection."""

    def __init__(self, engine: Engine) -> None:
        self._fairy = engine.raw_connection()
        driver = self._fairy.driver_connection
        self._fairy.detach()
        if not isinstance(driver, psycopg.Connection):
            raise TypeError("the page writer's pipeline needs PostgreSQL through psycopg 3")
        self._pg = driver.pgconn
        self._sent = 0  # statements of the transaction in flight; 0 when none
        self._expect: list[bytes | None] = []

    @property
    def backend_pid(self) -> int:
        """The server process writing for this connection (benchmarks read its CPU time)."""
        return self._pg.backend_pid

    def send(self, statements: list[Statement]) -> None:
        """Send the statements as one transaction; return when all of it has left this process."""
        if self._sent:
            raise RuntimeError("settle() the transaction in flight first")
        if self._fairy is None:
            raise psycopg.OperationalError("this pipelined connection was closed")
        pg = self._pg
        prepared: set[bytes] = self._fairy.info.setdefault("pipeline_prepared", set())  # per connection
        expect: list[bytes | None] = []  # per command sent: the name it prepares, or None for a statement
        try:
            pg.enter_pipeline_mode()
            for sql, params in statements:
                name, text = _prepared(sql)
                if name not in prepared:
                    pg.send_prepare(name, text)
                    prepared.add(name)  # taken back in settle() if the server refuses it
                    expect.append(name)
                pg.send_query_prepared(name, [_param(p) for p in params])
                expect.append(None)
            pg.pipeline_sync()
            sock = pg.socket
            while pg.flush():  # non-blocking connection: wait until the socket takes the rest
                readable, _, _ = select.select([sock], [sock], [])
                if readable:  # keep reading, so a server blocked on its own output never blocks us
                    pg.consume_input()
        except BaseException:
            self._discard()  # half a transaction may be queued: this connection is never used again
            raise
        self._expect = expect
        self._sent = len(statements)

    def settle(self) -> list[int]:
        """Wait for the transaction in flight: rows affected per statement, or `TransactionFailed` (nothing of
        it was written). No-op when nothing is in flight."""
        if not self._sent:
            return []
        pg = self._pg
        prepared: set[bytes] = self._fairy.info.setdefault("pipeline_prepared", set())
        counts: list[int] = []
        error: psycopg.Error | None = None
        try:
            for preparing in self._expect:
                ok = False
                while (res := self._result()) is not None:
                    if res.status == pq.ExecStatus.FATAL_ERROR and error is None:
                        error = psycopg.errors.error_from_result(res, encoding="utf-8")
                    elif res.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                        ok = True
                        if preparing is None:
                            counts.append(res.command_tuples or 0)
                if preparing is not None and not ok:
                    prepared.discard(preparing)
            sync = self._result()
            if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
                raise psycopg.OperationalError("the pipeline lost its Sync")
            pg.exit_pipeline_mode()
        except BaseException:
            self._discard()
            raise
        finally:
            self._sent = 0
        if error is not None:
            raise TransactionFailed(error)
        return counts

    def _result(self) -> pq.abc.PGresult | None:
        """The next result, waiting on the socket (not in libpq, so other threads keep running)."""
        pg = self._pg
        sock = pg.socket
        pg.consume_input()
        while pg.is_busy():
            select.select([sock], [], [])
            pg.consume_input()
        return pg.get_result()

    def _discard(self) -> None:
        """A connection whose protocol state is unknown is closed, never handed back to the pool."""
        self._sent = 0
        if self._fairy is None:
            return
        try:
            self._fairy.invalidate()
        finally:
            self._fairy = None  # type: ignore[assignment]  # None once closed; typed for the open writer

    def close(self) -> None:
        """Settle what is in flight (its error raises) and close the connection."""
        if self._fairy is None:
            return
        try:
            self.settle()
        finally:
            if self._fairy is not None:
                self._fairy.close()
                self._fairy = None  # type: ignore[assignment]  # None once closed; typed for the open writer


# --- pages --------------------------------------------------------------------------------------


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
    be sent whole (`PipelinedConnection`); and the indexes of those whose row counts are rows written.

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
# once per connection (`PipelinedConnection`); each page is still planned for its own values: PostgreSQL's generic
# plans for them ran 20-50% slower (server CPU 27.7-28.5 µs an object with custom plans, 29.7-32.8 without).
_PG_PAGE_SETTINGS: tuple[Statement, ...] = (
    ("SELECT set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true), "
     "set_config('enable_hashjoin', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)", ()),
)


class PageWriter:
    """Writes list pages, each in one transaction with its backfill cursor, for one sync run.

    On PostgreSQL a page's transaction is sent whole and its results are read when the next page is written
    (or at `flush`): the server commits page N while this process parses and maps page N+1 (this module's docstring
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
