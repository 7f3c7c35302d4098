"""Finance's "Retry now" on failed invoices (lib/invoice_retry.py): pick an invoice, charge it again.

Run in the script body, not in a button callback: callbacks run before the page's login gate, and the role
must be the one the user has at the moment of the click (`retry_invoice` checks it again when it runs).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages.components import data
from lib.auth import User, can
from lib.db import session_scope
from lib.invoice_retry import ACTION, RetryError, retry_invoice
from lib.money import format_money


def _label(r: dict[str, Any]) -> str:
    hint = f" · {r['new_card']}" if r.get("new_card") else ""
    return f"{r['id']} · {format_money(r['amount_remaining'], r['currency'])}{hint}"


def retry_now_action(user: User, rows: list[dict[str, Any]], *, key_prefix: str) -> None:
    """A "Retry now" control over `rows` (invoices with id, currency, amount_remaining, status, new_card,
    new_card_id), invoices with a new card since the failure first. Shows the outcome of the last click."""
    rows = [r for r in rows if r.get("status") in ("open", "uncollectible")]
    if not rows:
        return
    st.subheader("Retry now")
    if not can(user, ACTION):
        st.caption("Only finance and admins can retry a payment.")
        return
    rows = sorted(rows, key=lambda r: not r.get("new_card"))
    labels = {r["id"]: _label(r) for r in rows}
    key = f"{key_prefix}_retry_invoice"
    if st.session_state.get(key) not in labels:
        st.session_state[key] = rows[0]["id"]
    with st.container(border=True):
        st.selectbox("Invoice", list(labels), key=key, format_func=labels.get,
                     help="Charges the invoice now with the card a retry would use (the subscription's or the "
                          "customer's default). Invoices with a new card since the failure come first.")
        clicked = st.button("Retry now", key=f"{key_prefix}_retry_go", type="primary", icon=":material/replay:")
        if clicked:
            chosen = next(r for r in rows if r["id"] == st.session_state[key])
            _run(user, chosen, key_prefix)
        if msg := st.session_state.pop(f"{key_prefix}_retry_ok", None):
            st.success(msg)
        if msg := st.session_state.pop(f"{key_prefix}_retry_note", None):
            st.warning(msg)
        if msg := st.session_state.pop(f"{key_prefix}_retry_error", None):
            st.error(msg)


def _run(user: User, row: dict[str, Any], key_prefix: str) -> None:
    try:
        with session_scope() as session:
            outcome = retry_invoice(row["id"], user=user, session=session, card_id=row.get("new_card_id"))
    except RetryError as exc:
        st.session_state[f"{key_prefix}_retry_error"] = exc.message
    except Exception:  # noqa: BLE001 — never a traceback; the audit row says how far it got
        st.session_state[f"{key_prefix}_retry_error"] = (
            "The retry could not be recorded: the cache database did not answer. Check the Audit log before "
            "trying again.")
    else:
        st.session_state[f"{key_prefix}_retry_ok"] = outcome.message
        if outcome.cache_note:
            st.session_state[f"{key_prefix}_retry_note"] = outcome.cache_note
    data.clear()
    st.rerun()
