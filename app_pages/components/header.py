"""The header every page shows: the key's mode (a TEST/LIVE banner like Stripe's) and cache freshness."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from app_pages.components.data import query
from app_pages.components.tables import ago
from lib.config import get_settings


def render_header() -> None:
    """Key mode banner, "refreshed N min ago", and a warning when the cache is older than allowed."""
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
