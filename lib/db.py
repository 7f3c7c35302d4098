"""Database engine, sessions and migrations: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from lib.config import DEFAULT_DATABASE_URL, get_settings, require_sqlite_directory, sqlite_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
P = ParamSpec("P")
R = TypeVar("R")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    """WAL lets the dashboard read while the sync writes; a busy timeout instead of 'database is locked'."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL per process (pages wrap this in st.cache_resource); no URL: the settings'
    URL now (resolved before the cache, so a changed DATABASE_URL is never answered with the first engine)."""
    return _engine(url or get_settings().database_url)


def _sqlite_directory(url: str) -> None:
    """The default database's directory (`data/`) is made when missing; any other must exist (ConfigError)."""
    file = sqlite_file(url)
    if url == DEFAULT_DATABASE_URL and file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    require_sqlite_directory(url)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        _sqlite_directory(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error: no half-written change."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest migration (run on start and by `python -m lib migrate`)."""
    url = url or get_settings().database_url
    engine = get_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together must not run the same migration twice: serialise them per schema.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('billing-console-migrate:' || current_schema()))")
            )
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
        # the triggers that keep subscription_totals exact, and PostgreSQL's trigram name index when the
        # server allows pg_trgm (lib/triggers.py and lib/models.py: DDL that Alembic autogenerate cannot express)
        from lib.models import ensure_optional_indexes
        from lib.triggers import ensure_derived_state

        ensure_derived_state(connection)
        ensure_optional_indexes(connection)


def ensure_migrated(url: str | None = None) -> Engine:
    """Migrate once per process and database and return the engine; the dashboard calls this on start."""
    return _migrated(url or get_settings().database_url)


@lru_cache(maxsize=8)
def _migrated(url: str) -> Engine:
    migrate(url)
    return get_engine(url)


def is_retryable(exc: BaseException) -> bool:
    """A PostgreSQL deadlock or serialization failure: the whole transaction was rolled back and may rerun."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_transaction(attempts: int = 4) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Rerun a function that is one whole transaction when PostgreSQL aborts it as a deadlock victim.

    Concurrent writers (the sync worker, webhooks in every replica, a customer refresh) can lock the same rows
    in opposite orders; PostgreSQL then rolls one back. The decorated functions write with newer-wins upserts,
    so running them again is safe.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return fn(*args, **kwargs)
                except DBAPIError as exc:
                    if attempt == attempts or not is_retryable(exc):
                        raise
                    time.sleep(random.uniform(0.05, 0.2) * attempt)
            raise AssertionError("unreachable")

        return wrapper

    return decorate
