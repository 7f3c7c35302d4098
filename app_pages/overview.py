"""Overview: which Stripe account and mode, which database, how fresh the cache is."""

from __future__ import annotations

import streamlit as st

from lib.auth import require_page
from lib.config import get_settings

user = require_page("overview")
settings = get_settings()

st.title("Billing Console")
st.write(f"Signed in as **{user.email}** ({user.role_label}).")
col1, col2 = st.columns(2)
col1.metric("Stripe key", settings.key_hint.upper())
col1.caption("Local sandbox at " + settings.stripe_api_base if settings.uses_sandbox else "api.stripe.com")
col2.metric("Cache database", settings.database_kind)
