"""Test cache databases: a migrated SQLite file, or a migrated PostgreSQL schema of its own (TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from lib.db import get_engine, migrate


def pg_url(schema: str) -> str:
    """TEST_DATABASE_URL for psycopg 3 with `schema` as the search path."""
    base = os.environ["TEST_DATABASE_URL"]
    for prefix in ("postgresql://", "postgres://"):
        if base.startswith(prefix):
            base = "postgresql+psycopg://" + base[len(prefix) :]
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def database(backend: str, tmp_dir: str, *, name: str = "cache") -> Iterator[str]:
    """A new, migrated cache database of its own: a SQLite file in `tmp_dir`, or a PostgreSQL schema that is
    dropped afterwards. Yields its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_dir}/{name}.db"
        migrate(url)
        yield url
        return
    schema = f"bc_{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(pg_url("public"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = pg_url(schema)
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
