"""Billing Console entry: page config, the login gate and navigation. Nothing else lives here."""

from __future__ import annotations

import streamlit as st

from app_pages.components.gate import gate, render_account
from app_pages.components.header import render_header
from app_pages.components.tables import guarded
from lib import access
from lib.config import get_settings
from lib.db import ensure_migrated

st.set_page_config(page_title="Billing Console", page_icon=":material/receipt_long:", layout="wide")

user = gate()  # login screen, no-role page or refusal end the run here; nothing below renders for them

ready: list[object] = []  # gate() has read the settings already (a ConfigError stopped the run there)
guarded(lambda: ready.append(ensure_migrated(get_settings().database_url)))  # database down: one clear message
if not ready:
    st.stop()

# Every page is registered so a direct URL to a forbidden one runs its own require_page() and says
# "no access"; only the permitted ones are visible in the menu.
sections: dict[str, list[st.Page]] = {}
hidden: list[st.Page] = []
for spec in access.PAGES:
    allowed = access.may_open(user.roles, spec.key)
    page = st.Page(f"app_pages/{spec.file}", title=spec.title, icon=spec.icon, url_path=spec.key,
                   default=spec.key == "overview", visibility="visible" if allowed else "hidden")
    (sections.setdefault(spec.section, []) if allowed else hidden).append(page)
next(iter(sections.values())).extend(hidden)  # gate() guarantees a role, and every role opens Overview
current = st.navigation(sections)
render_account(user)
header = st.empty()
render_header(header)
current.run()
# drawn again: an action on the page (Refresh now, a customer refresh) may have moved the cache's freshness
# after the header above was drawn; a page that stops or reruns is redrawn by its next run
render_header(header)
