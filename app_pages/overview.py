"""Overview: the account and mode, cache size and freshness, MRR and money at risk per currency."""

from __future__ import annotations

import streamlit as st

from app_pages.components.data import query
from app_pages.components.format import ago, money_lines
from app_pages.components.gate import require_page
from app_pages.components.tables import guarded, link_to
from app_pages.components.text import md
from lib.config import get_settings
from lib.queries import count_label

P = "ov"  # widget-key prefix


def render(user) -> None:  # noqa: ANN001
    settings = get_settings()
    st.title("Billing Console")
    st.write(f"Signed in as **{md(user.email)}** ({user.role_label}).")
    c1, c2, c3 = st.columns(3)
    mode, _, last4 = settings.key_hint.partition(" ")
    c1.metric("Stripe key", f"{mode.upper()} {last4}")  # a key's characters are case-sensitive: only the mode
    c1.caption("Local sandbox at " + settings.stripe_api_base if settings.uses_sandbox else "api.stripe.com")
    c2.metric("Cache database", settings.database_kind)
    c2.caption(f"Refreshed {ago(query('cache_freshness'))}")
    sizes = query("table_counts")
    c3.metric("Customers", count_label(sizes["customers"]),
              help="Customers not deleted in Stripe, counted as the Customers list counts them.")
    c3.caption(f"{count_label(sizes['subscriptions'])} subscriptions · {count_label(sizes['invoices'])} invoices")
    left, right = st.columns(2)
    with left:
        st.subheader("MRR")
        mrr = query("mrr_by_currency")
        st.markdown(money_lines(mrr, "mrr"))
        st.caption("Active and past-due subscriptions, per currency (never added across currencies).")
        link_to("subscriptions.py", label="Subscriptions", icon=":material/autorenew:")
    with right:
        st.subheader("At risk")
        st.markdown(money_lines(query("at_risk_by_currency")))
        st.caption("Amount remaining on open invoices whose payment failed, and uncollectible ones.")
        link_to("failed_invoices.py", label="Failed invoices", icon=":material/money_off:")
    link_to("customers.py", label="Find a customer", icon=":material/search:")


user = require_page("overview")
guarded(render, user)
