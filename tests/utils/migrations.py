"""Databases left at an older migration, for upgrade tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, create_engine, text

from lib.db import alembic_config, get_engine
from tests.conftest import _pg_url


def head_revision() -> str:
    """The newest migration's revision id (what `lib.db.migrate` leaves a database at)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


@contextmanager
def database_at(backend: str, revision: str, tmp_path: Path, setup: Callable[[Connection], None]) -> Iterator[str]:
    """A new database (a SQLite file, or a PostgreSQL schema of its own) migrated only to `revision`, with
    `setup` run in the same transaction — what that revision's code installed besides its migrations (e.g.
    its triggers). Yields the URL; the PostgreSQL schema is dropped afterwards."""
    admin, schema = None, ""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'at{revision}.db'}"
    else:
        if not os.environ.get("TEST_DATABASE_URL"):
            pytest.skip("needs TEST_DATABASE_URL")
        schema = f"bc_at{revision}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(_pg_url("public"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = _pg_url(schema)
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        setup(conn)
    engine.dispose()
    try:
        yield url
    finally:
        if admin is not None:
            get_engine(url).dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
