"""Duplicates (being built)."""

from __future__ import annotations

import streamlit as st

from lib.auth import require_page

user = require_page("duplicates")
st.title("Duplicates")
st.info("This page is being built.")
