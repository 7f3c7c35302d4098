"""Audit log (being built)."""

from __future__ import annotations

import streamlit as st

from lib.auth import require_page

user = require_page("audit")
st.title("Audit log")
st.info("This page is being built.")
