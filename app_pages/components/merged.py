"""Merge marks on customer pages: "Merged into <survivor> on <date> by <who>" on a merged-away customer, and
"Merged from …" on a survivor, each with links built from validated cus_ ids (lib.queries.merged_into /
merged_from read customers.merged_into, the audit log and merge jobs)."""

from __future__ import annotations

import streamlit as st

from app_pages.components.data import query
from app_pages.components.tables import link_to
from app_pages.components.text import md
from lib.mapping import valid_customer_id
from lib.queries import customer_detail
from lib.queries.customer_detail import MergeMark


def when_by(mark: MergeMark) -> str:
    """' on 2026-12-03 14:05 UTC by ada@corp.test', or what is unknown about a merge made elsewhere."""
    when = f" on {mark.at:%Y-%m-%d %H:%M} UTC" if mark.at else ""
    who = f" by {mark.by}" if mark.by else " (no merge record in this dashboard: made elsewhere)"
    return when + who


def render_merge_marks(customer_id: str) -> None:
    """The banner for a merged-away customer and the list of customers merged into this one."""
    mark: MergeMark | None = query(customer_detail.merged_into, customer_id=customer_id)
    if mark is not None:
        st.warning(md(f"Merged into {mark.survivor}{when_by(mark)}. This record is kept for history: "
                             "work with the surviving customer."), icon=":material/call_merge:")
        survivor = valid_customer_id(mark.survivor)
        if survivor:
            link_to("customer_detail.py", label=f"Open {survivor} (the surviving customer)",  # link_to escapes
                    icon=":material/arrow_forward:", query_params={"id": survivor})
    sources: list[MergeMark] = query(customer_detail.merged_from, customer_id=customer_id)
    if sources:
        with st.container(border=True):
            st.caption(f"Merged from {len(sources)} customer(s)")
            for m in sources:
                dup = valid_customer_id(m.duplicate)
                if dup is None:
                    continue
                label = f"{dup}{' · ' + m.duplicate_label if m.duplicate_label else ''}{when_by(m)}"
                link_to("customer_detail.py", label=label, icon=":material/history:",
                        query_params={"id": dup})
