"""Customers (being built)."""

from __future__ import annotations

import streamlit as st

from lib.auth import require_page

user = require_page("customers")
st.title("Customers")
st.info("This page is being built.")
