"""Billing Console entry: page config, the login gate and navigation. Nothing else lives here."""

from __future__ import annotations

import streamlit as st

from app_pages.components.header import render_header
from lib import access
from lib.auth import current_user
from lib.config import ConfigError, get_settings
from lib.db import ensure_migrated

st.set_page_config(page_title="Billing Console", page_icon=":material/receipt_long:", layout="wide")

try:
    settings = get_settings()
    ensure_migrated(settings.database_url)
except ConfigError as exc:
    st.error(f"Configuration problem: {exc}")
    st.stop()

user = current_user()
sections: dict[str, list[st.Page]] = {}
for spec in access.PAGES:
    if spec.roles & user.roles:
        sections.setdefault(spec.section, []).append(
            st.Page(f"app_pages/{spec.file}", title=spec.title, icon=spec.icon, url_path=spec.key,
                    default=spec.key == "overview")
        )
current = st.navigation(sections)
render_header()
current.run()
