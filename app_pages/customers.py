"""Customers: one search box (email any case, a company's email domain, name without accents, cus_ id, phone,
card last 4), filters, sorted and paged in SQL, MRR per row, click a row to open the customer, CSV of the whole
result."""

from __future__ import annotations

import streamlit as st

from app_pages.components.data import query
from app_pages.components.exports import export_button, query_maker
from app_pages.components.gate import require_page
from app_pages.components.tables import (
    ANY,
    chosen,
    customer_link,
    frame,
    guarded,
    link_to,
    money_column,
    open_customer,
    pager,
    pager_controls,
    selected_ids,
    unfiltered,
)
from app_pages.components.text import md
from lib.auth import User
from lib.queries import SUBSCRIPTION_STATUSES, CustomerFilters, SearchError

P = "cust"  # widget-key prefix
SORTS = {"Newest first": ("created", True), "Oldest first": ("created", False), "Highest MRR": ("mrr", True),
         "Email A–Z": ("email", False), "Name A–Z": ("name", False), "Largest balance": ("balance", True)}


def filters_from_widgets() -> CustomerFilters:
    st.text_input(
        "Search", key=f"{P}_search", placeholder="Email, @company.com, name, cus_… id, phone (+1 415…) or card last 4",
        help="Email matches any case, with or without a +tag; @acme.com (or acme.com) lists that company's "
             "customers; names match without accents.",
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.checkbox("Delinquent only", key=f"{P}_delinquent")
    c1.checkbox("Has an unpaid invoice", key=f"{P}_unpaid")
    c2.selectbox("Subscription status", [ANY, *SUBSCRIPTION_STATUSES], key=f"{P}_sub_status")
    currencies = query("customer_currencies")
    c2.selectbox("Currency", [ANY, *[c.upper() for c in currencies]], key=f"{P}_currency")
    c3.date_input("Created from", value=None, key=f"{P}_from")
    c3.date_input("Created to", value=None, key=f"{P}_to")
    c4.selectbox("Sort", list(SORTS), key=f"{P}_sort")
    c4.checkbox("Include deleted customers", key=f"{P}_deleted")
    sort, desc = SORTS[st.session_state.get(f"{P}_sort") or "Newest first"]
    return CustomerFilters(
        q=st.session_state.get(f"{P}_search") or "",
        delinquent=bool(st.session_state.get(f"{P}_delinquent")),
        unpaid=bool(st.session_state.get(f"{P}_unpaid")),
        sub_status=chosen(f"{P}_sub_status"), currency=(chosen(f"{P}_currency") or "").lower() or None,
        created_from=st.session_state.get(f"{P}_from"), created_to=st.session_state.get(f"{P}_to"),
        include_deleted=bool(st.session_state.get(f"{P}_deleted")), sort=sort, descending=desc,
    )


def render_results(user: User, filters: CustomerFilters) -> None:
    page_no, size = pager(P, filters)
    try:
        page = query("search_customers", filters=filters, page=page_no, page_size=size)
    except SearchError as exc:
        st.warning(md(str(exc)), icon=":material/search_off:")
        return
    if not page.rows:
        st.info("No customer matches. Check the spelling, try part of the name or the email without its "
                "+tag, or clear the filters." if not unfiltered(filters) else
                "The cache holds no customers yet: run a sync from the Sync page.")
        return
    st.caption(f"{page.total_label} customer(s) · MRR is per customer, in the customer's currency")
    df = frame(page.rows, money=("mrr", "balance"))
    df.insert(1, "open", [customer_link(cid) for cid in df["id"]])
    df["merged"] = [f"merged into {m}" if isinstance(m, str) and m else "" for m in df["merged_into"]]
    picked = selected_ids(f"{P}_table", [str(cid) for cid in df["id"]], what="customer")
    st.dataframe(
        df, key=f"{P}_table", hide_index=True, on_select="rerun", selection_mode="single-row",
        column_order=["id", "open", "merged", "email", "name", "phone", "created", "currency", "mrr", "balance",
                      "delinquent", "deleted"],
        column_config={
            "id": st.column_config.TextColumn("Customer"),
            "open": st.column_config.LinkColumn("Detail", display_text="Open"),
            "merged": st.column_config.TextColumn("Merged", help="Merged away into another customer (kept for "
                                                  "history): open it to reach the surviving customer."),
            "email": "Email", "name": "Name", "phone": "Phone",
            "created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD"),
            "currency": "Currency",
            "mrr": money_column("MRR", df["currency"]),
            "balance": money_column("Balance", df["currency"],
                                    help="Negative = credit the customer holds; positive = owed."),
            "delinquent": st.column_config.CheckboxColumn("Delinquent"),
            "deleted": st.column_config.CheckboxColumn("Deleted"),
        },
    )
    if picked:
        open_customer(picked[0])
    if len(page.rows) == 1 and customer_link(page.rows[0]["id"]):
        only = page.rows[0]
        link_to("customer_detail.py", label=f"Open {only['email'] or only['name'] or only['id']}",
                icon=":material/person:", query_params={"id": only["id"]})
    else:
        st.caption("Select a row (left edge) to open the customer.")
    pager_controls(P, page)
    export_button(user, "Download CSV (all pages)", key=f"{P}_csv", file_name="customers.csv",
                  action="export_customers", page="customers", filters=filters,
                  make=query_maker("export_customers_csv", filters=filters))


def render(user: User) -> None:
    st.title("Customers")
    filters = filters_from_widgets()
    render_results(user, filters)


user = require_page("customers")
guarded(render, user)
