"""Stripe text made literal for Streamlit elements that render Markdown (st.info, st.warning, st.markdown…).

A stand-in for this branch until the shared helper (app_pages/components/text.py) lands: use that one then.
"""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def escape_md(text: str) -> str:
    """`text` with every Markdown (and Streamlit directive) punctuation mark backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text)
