"""PostgreSQL transactions sent whole and settled later (libpq pipeline mode), for the sync's page writes.

A page's statements go out as one pipeline ending in a Sync: PostgreSQL runs them as ONE implicit transaction
and commits it at the Sync, or rolls all of it back on an error. `send` returns once every byte is in the
socket, without waiting for the server; `settle` reads the results. Between the two the server writes page N
while this process parses and maps page N+1, so client and server work overlap instead of adding up.

Why a page is still never lost by a kill: `send` returns only when the whole transaction, Sync included, has
left this process; a SIGKILL after that cannot stop the server from committing it (the server reads what was
sent before it notices the closed socket). So a killed sync still re-fetches at most the page it was on.
"""

from __future__ import annotations

import hashlib
import re
import select
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy import Engine

from lib.db import RETRYABLE_SQLSTATES

Statement = tuple[str, tuple[Any, ...]]


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
            self._fairy = None  # type: ignore[assignment]

    def close(self) -> None:
        """Settle what is in flight (its error raises) and close the connection."""
        if self._fairy is None:
            return
        try:
            self.settle()
        finally:
            if self._fairy is not None:
                self._fairy.close()
                self._fairy = None  # type: ignore[assignment]
