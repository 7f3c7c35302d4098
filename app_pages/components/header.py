"""The header every page shows: key mode (TEST/LIVE banner) and cache freshness."""

from __future__ import annotations

import streamlit as st

from lib.config import get_settings


def render_header() -> None:
    settings = get_settings()
    if settings.key_mode == "test":
        st.caption(f":orange-background[TEST MODE] Stripe key {settings.key_hint}")
