"""A transaction PostgreSQL picks as a deadlock victim is run again instead of failing the sync or webhook."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from lib.db import retry_transaction
from tests.conftest import _pg_url


def _make_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS deadlock_probe"))
        conn.execute(text("CREATE TABLE deadlock_probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO deadlock_probe (id, n) VALUES (1, 0), (2, 0)"))


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A scratch PostgreSQL schema: deadlocks are PostgreSQL's (SQLite serialises writers by its file lock)."""
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("needs TEST_DATABASE_URL")
    schema = f"bc_deadlock_{uuid.uuid4().hex[:8]}"
    admin = create_engine(_pg_url("public"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(_pg_url(schema))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_deadlock_victim_is_retried_and_both_writers_finish(pg_engine: Engine) -> None:
    db = pg_engine
    _make_rows(db)
    both_hold_first = threading.Barrier(2, timeout=20)
    attempts: dict[str, int] = {"a": 0, "b": 0}

    def writer(name: str, first: int, second: int) -> None:
        @retry_transaction()
        def transaction() -> None:
            attempts[name] += 1
            with db.begin() as conn:
                conn.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :i"), {"i": first})
                if attempts[name] == 1:
                    both_hold_first.wait()  # each holds its first row, then wants the other's: a deadlock
                conn.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :i"), {"i": second})

        transaction()

    errors: list[BaseException] = []

    def run(*args: object) -> None:
        try:
            writer(*args)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=("a", 1, 2)), threading.Thread(target=run, args=("b", 2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(attempts.values()) == [1, 2]  # one victim, run once more
    with db.connect() as conn:
        assert conn.execute(text("SELECT n FROM deadlock_probe ORDER BY id")).scalars().all() == [2, 2]


def test_other_database_errors_are_not_retried(db: Engine) -> None:
    calls = 0

    @retry_transaction()
    def broken() -> None:
        nonlocal calls
        calls += 1
        with db.begin() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(Exception, match="no_such_table"):
        broken()
    assert calls == 1
