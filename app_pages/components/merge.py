"""The merge widget: pick the other customer, review the plan, confirm, watch the steps.

Called from customer detail and the Duplicates page: `merge_action(user, customer_id, key_prefix=...)`.
Only admins (`can(user, "merge")`) see it; everyone else gets nothing rendered.
"""

from __future__ import annotations

import streamlit as st

from lib.auth import User, can


def merge_action(user: User, customer_id: str, *, key_prefix: str, other_ids: list[str] | None = None) -> None:
    """Render the merge entry point for `customer_id` (the duplicate or survivor candidate)."""
    if not can(user, "merge"):
        return
    with st.expander("Merge with another customer", expanded=False):
        other = st.text_input(
            "Other customer id", key=f"{key_prefix}_merge_other",
            placeholder="cus_…", help="The customer that is the same person as this one.",
        )
        if st.button("Plan merge", key=f"{key_prefix}_merge_plan", disabled=not other.strip()):
            st.info(f"Planning a merge of {customer_id} and {other.strip()} — the planner is being connected.")
