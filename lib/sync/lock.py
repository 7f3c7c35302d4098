"""The database's one sync lock: PostgreSQL advisory lock plus an informative `sync_lock` row; the row alone
on SQLite. `sync_lock` is a context manager (`with`, or `ExitStack.enter_context`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, text, update

from lib.models import utcnow
from lib.sync.sql import LOCKS, _insert

LOCK_NAME = "sync"
LOCK_STALE_AFTER = timedelta(minutes=5)  # another machine's SQLite lock row without heartbeat
PG_LOCK_KEY = 0x5B1C_C0DE  # pg_advisory_lock key of the sync worker …
WORKER_LOCK_NAME = "worker"  # held by the active `python -m lib worker` for its lifetime (standbys wait)
PG_LOCK_KEYS = {LOCK_NAME: PG_LOCK_KEY, WORKER_LOCK_NAME: PG_LOCK_KEY + 1}
# … in the cache's schema: two caches in one database (e.g. staging and production schemas) lock apart.
PG_LOCK_SQL = "(CAST(:k AS bigint) << 32) + CAST(hashtext(current_schema()) AS bigint)"


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
def sync_lock(engine: Engine, holder: str | None = None, name: str = LOCK_NAME) -> Iterator[str]:
    """Hold the database's one sync lock for the block, or raise LockHeld naming who holds it.

    `name` picks the lock: `sync` (one sync run at a time) or `worker` (one active worker per database).

    PostgreSQL: a session advisory lock (released by the server if this process dies), plus a `sync_lock`
    row that tells others who holds it. SQLite: the `sync_lock` row alone; a row left by a dead process
    (same host, pid gone; or no heartbeat for 5 minutes) is taken over.
    """
    me = holder or holder_name()
    pg_conn = None
    if engine.dialect.name == "postgresql":
        pg_conn = engine.connect()
        got = pg_conn.execute(text(f"SELECT pg_try_advisory_lock({PG_LOCK_SQL})"),
                              {"k": PG_LOCK_KEYS[name]}).scalar()
        pg_conn.commit()
        if not got:
            pg_conn.close()
            raise LockHeld(_held_message(engine, name))
    try:
        with engine.begin() as conn:
            now = utcnow()
            row = {"name": name, "holder": me, "acquired_at": now, "heartbeat_at": now}
            if pg_conn is not None:  # the advisory lock is the truth: the row only informs
                conn.execute(_insert(conn, LOCKS).values(**row).on_conflict_do_update(
                    index_elements=["name"], set_={k: v for k, v in row.items() if k != "name"}))
            else:
                got = conn.execute(_insert(conn, LOCKS).values(**row).on_conflict_do_nothing()).rowcount
                if not got:
                    existing = conn.execute(select(LOCKS).where(LOCKS.c.name == name)).first()
                    if existing is not None and not _lock_is_stale(existing):
                        raise LockHeld(_held_text(existing, name))
                    taken = conn.execute(update(LOCKS).where(
                        LOCKS.c.name == name, LOCKS.c.holder == (existing.holder if existing else me)
                    ).values(**{k: v for k, v in row.items() if k != "name"})).rowcount
                    if not taken:
                        raise LockHeld("another sync took the lock at the same moment")
        try:
            yield me
        finally:
            with engine.begin() as conn:
                conn.execute(delete(LOCKS).where(LOCKS.c.name == name, LOCKS.c.holder == me))
    finally:
        if pg_conn is not None:
            try:
                pg_conn.execute(text(f"SELECT pg_advisory_unlock({PG_LOCK_SQL})"), {"k": PG_LOCK_KEYS[name]})
                pg_conn.commit()
            finally:
                pg_conn.close()


def _held_text(row: Any, name: str = LOCK_NAME) -> str:
    since = row.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC") if row.acquired_at else "?"
    what = "another worker is active" if name == WORKER_LOCK_NAME else "another sync is running"
    return f"{what} ({row.holder}, since {since})"


def _held_message(engine: Engine, name: str = LOCK_NAME) -> str:
    with engine.connect() as conn:
        row = conn.execute(select(LOCKS).where(LOCKS.c.name == name)).first()
    if row is not None:
        return _held_text(row, name)
    return "another worker is active (holder unknown)" if name == WORKER_LOCK_NAME else \
        "another sync is running (holder unknown)"


def heartbeat(engine: Engine, holder: str, name: str = LOCK_NAME) -> None:
    with engine.begin() as conn:
        conn.execute(update(LOCKS).where(LOCKS.c.name == name, LOCKS.c.holder == holder)
                     .values(heartbeat_at=utcnow()))
