"""Customers: one search box (email any case, a company's email domain, name without accents, cus_ id, phone,
card last 4), filters, sorted and paged in SQL, MRR per row, click a row to open the customer, CSV of the whole
result."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.components.data import query
from app_pages.components.exports import export_button, query_maker
from app_pages.components.format import balance_column, date_columns, long_text, money_columns, table_height
from app_pages.components.gate import require_page
from app_pages.components.tables import (
    ANY,
    chosen,
    customer_link,
    frame,
    guarded,
    link_to,
    open_customer,
    pager,
    pager_controls,
    past_the_end,
    selected_ids,
    unfiltered,
)
from app_pages.components.text import md
from app_pages.components.urlstate import Choice, Day, Flag, Text, UrlState
from lib import columns
from lib.auth import User
from lib.queries import MAX_SEARCH_LEN, SUBSCRIPTION_STATUSES, CustomerFilters, SearchError

P = "cust"  # widget-key prefix
SORTS = {"Newest first": ("created", True), "Oldest first": ("created", False), "Highest MRR": ("mrr", True),
         "Email A–Z": ("email", False), "Name A–Z": ("name", False), "Largest balance": ("balance", True)}


def bind_url(url: UrlState, currencies: list[str]) -> None:
    """Every filter of this page in the URL (before its widget is created): Back and shared links keep them."""
    url.bind(f"{P}_search", Text(MAX_SEARCH_LEN), default="", label="Search")
    url.bind(f"{P}_delinquent", Flag(), default=False, label="Delinquent only")
    url.bind(f"{P}_unpaid", Flag(), default=False, label="Has an unpaid invoice")
    url.bind(f"{P}_sub_status", Choice([ANY, *SUBSCRIPTION_STATUSES]), default=ANY, label="Subscription status")
    url.bind(f"{P}_currency", Choice([ANY, *currencies]), default=ANY, label="Currency")
    url.bind(f"{P}_from", Day(), label="Created from")
    url.bind(f"{P}_to", Day(), label="Created to")
    url.bind(f"{P}_sort", Choice(list(SORTS)), default=next(iter(SORTS)), label="Sort")
    url.bind(f"{P}_deleted", Flag(), default=False, label="Include deleted customers")


def filters_from_widgets() -> CustomerFilters:
    currencies = [c.upper() for c in query("customer_currencies")]
    url = UrlState(P)
    bind_url(url, currencies)
    st.text_input(
        "Search", key=f"{P}_search", placeholder="Email, @company.com, name, cus_… id, phone (+1 415…) or card last 4",
        help="Email matches any case, with or without a +tag; @acme.com (or acme.com) lists that company's "
             "customers; names match without accents.",
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.checkbox("Delinquent only", key=f"{P}_delinquent")
    c1.checkbox("Has an unpaid invoice", key=f"{P}_unpaid")
    c2.selectbox("Subscription status", [ANY, *SUBSCRIPTION_STATUSES], key=f"{P}_sub_status")
    c2.selectbox("Currency", [ANY, *currencies], key=f"{P}_currency")
    c3.date_input("Created from", value=None, key=f"{P}_from")
    c3.date_input("Created to", value=None, key=f"{P}_to")
    c4.selectbox("Sort", list(SORTS), key=f"{P}_sort")
    c4.checkbox("Include deleted customers", key=f"{P}_deleted")
    url.render_notes()
    sort, desc = SORTS[st.session_state.get(f"{P}_sort") or "Newest first"]
    return CustomerFilters(
        q=st.session_state.get(f"{P}_search") or "",
        delinquent=bool(st.session_state.get(f"{P}_delinquent")),
        unpaid=bool(st.session_state.get(f"{P}_unpaid")),
        sub_status=chosen(f"{P}_sub_status"), currency=(chosen(f"{P}_currency") or "").lower() or None,
        created_from=st.session_state.get(f"{P}_from"), created_to=st.session_state.get(f"{P}_to"),
        include_deleted=bool(st.session_state.get(f"{P}_deleted")), sort=sort, descending=desc,
    )


# At 1440 px every column a lookup needs is in view; the phone and the currency (part of each amount) are
# in the customer's page and the CSV. The customer column is pinned and links to the customer's page.
COLUMN_ORDER = ["open", "name", "email", "mrr", "balance", "flags", "created"]
L = columns.CUSTOMERS


def flags(row: dict) -> str:
    """'delinquent', 'deleted', 'merged into cus_…' — the states that change what support does; '' if none."""
    marks = [w for w, on in (("delinquent", row.get("delinquent")), ("deleted", row.get("deleted"))) if on is True]
    merged = row.get("merged_into")
    if isinstance(merged, str) and merged:
        marks.append(f"merged into {merged}")
    return ", ".join(marks)


def customers_frame(rows: list[dict]) -> pd.DataFrame:
    """The page's rows as shown: a link per customer (its id as the text), money in major units, flags."""
    df = frame(rows, money=("mrr", "balance"))
    df["open"] = [customer_link(cid) or "" for cid in df["id"]]
    df["flags"] = [flags(r) for r in rows]
    return df


def customer_columns(df: pd.DataFrame) -> dict:
    """Column configs of the customers table (changes `df`'s money, balance and date cells into their text)."""
    return {
        "open": st.column_config.LinkColumn(L["id"], display_text=r"customer\?id=(.*)", pinned=True, width=145,
                                            help="Open the customer's page (or select the row)."),
        "name": long_text(L["name"], width=150), "email": long_text(L["email"], width=175),
        **money_columns(df, {"mrr": L["mrr"]}, help="Monthly recurring revenue of the customer's active and "
                        "past-due subscriptions, in the customer's currency.", width=105),
        **balance_column(df, "balance", L["balance"], width=130),
        "flags": long_text("Flags", width=85, help="Delinquent (an invoice is past due), deleted in Stripe, or "
                           "merged into another customer (open it to reach the survivor)."),
        **date_columns(df, {"created": L["created"]}, width=145),
    }


def render_results(user: User, filters: CustomerFilters) -> None:
    page_no, size = pager(P, filters)
    try:
        page = query("search_customers", filters=filters, page=page_no, page_size=size)
        past_the_end(P, page)
    except SearchError as exc:
        st.warning(md(str(exc)), icon=":material/search_off:")
        return
    if not page.rows:
        st.info("No customer matches. Check the spelling, try part of the name or the email without its "
                "+tag, or clear the filters." if not unfiltered(filters) else
                "The cache holds no customers yet: run a sync from the Sync page.")
        return
    st.caption(f"{page.total_label} customer(s) · MRR is per customer, in the customer's currency")
    ids = [str(r["id"]) for r in page.rows]
    picked = selected_ids(f"{P}_table", ids, what="customer")
    df = customers_frame(page.rows)
    st.dataframe(df, key=f"{P}_table", hide_index=True, on_select="rerun", selection_mode="single-row",
                 height=table_height(len(df)), column_order=COLUMN_ORDER, column_config=customer_columns(df))
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
