"""The header every page shows: the key's mode (a TEST/LIVE banner like Stripe's) and cache freshness."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import streamlit as st
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError
from streamlit.delta_generator import DeltaGenerator

from app_pages.components.data import query
from app_pages.components.format import ago
from lib.config import get_settings

# The names of SQLAlchemy's exceptions: a stored run error "customers: OperationalError: (psycopg…) …" is one.
_DB_ERRORS = frozenset(n for n, c in vars(sa_exc).items() if isinstance(c, type) and issubclass(c, SQLAlchemyError))
# lib/sync records each failed resource as "<where>: <message>" (joined by "; "); an exception that is not a
# GatewayError or SyncError as "<where>: <ExceptionClass>: <its first line>" — the raw driver or Python text.
_PART = re.compile(r"; (?=[a-z_ ]+: )")
_RAW = re.compile(r"(?:(?P<where>[a-z_ ]+): )?(?P<cls>[A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning|Timeout|Exit|"
                  r"Interrupt|Found)): .*", re.DOTALL)


def run_error(stored: str | None) -> str:
    """A sync run's stored error in words: Stripe's and the sync's own messages as they are; a raw driver or
    Python error replaced by its cause and what to do (never the driver's text, which may carry SQL and data).

    A database error: "the cache database could not be written … check DATABASE_URL"; anything else: the
    exception class and a pointer to the worker's or server's log, where lib/sync logs the details.
    """
    if not stored:
        return ""
    return "; ".join(_one_error(part) for part in _PART.split(stored))


def _one_error(part: str) -> str:
    m = _RAW.fullmatch(part.strip())
    if m is None:
        return part
    where = f"{m['where']}: " if m["where"] else ""
    if m["cls"] in _DB_ERRORS:
        return (f"{where}the cache database could not be written ({m['cls']}): check DATABASE_URL and that the "
                "database is running and has free space, then press Refresh now; the worker's or server's log "
                "has the details")
    return (f"{where}the sync stopped unexpectedly ({m['cls']}): the worker's or server's log has the details; "
            "press Refresh now to resume, and tell an admin if it keeps happening")


def render_header(slot: DeltaGenerator | None = None) -> None:
    """Key mode banner, "refreshed N min ago", and a warning when the cache is older than allowed.

    With `slot` (an `st.empty()`), drawn into it, replacing what it held: app.py draws the header before the
    page and again after it, so a refresh the page made (Refresh now, a customer refresh) shows at once."""
    if slot is not None:
        with slot.container():
            _draw()
        return
    _draw()


def _draw() -> None:
    settings = get_settings()
    left, right = st.columns([3, 2])
    if settings.key_mode == "test":
        left.markdown(f":orange-background[**TEST MODE**] Stripe key {settings.key_hint} — test data only.")
    else:
        left.markdown(f":red-background[**LIVE MODE**] Stripe key {settings.key_hint} — real customers.")
    try:
        refreshed = query("cache_freshness")
    except Exception:  # noqa: BLE001 — a header must never break the page below it
        right.warning("Cannot read the cache database: check DATABASE_URL and run `python -m lib migrate`.")
        return
    if refreshed is None:
        right.warning("The cache has never been synced: open the Sync page and press **Refresh now**.",
                      icon=":material/sync_problem:")
        return
    age_min = (datetime.now(UTC) - refreshed).total_seconds() / 60
    if age_min > settings.cache_stale_after_minutes:
        right.warning(f"Cache refreshed {ago(refreshed)} — older than {settings.cache_stale_after_minutes} min, "
                      "so figures may be out of date. Open the Sync page and press **Refresh now**.",
                      icon=":material/schedule:")
    else:
        right.caption(f":material/check_circle: Cache refreshed {ago(refreshed)}")
