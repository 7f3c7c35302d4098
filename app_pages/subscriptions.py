"""Subscriptions: filter by status, product, price, interval, currency, cancel-at-period-end and trials
ending soon; MRR per row; counts and MRR per status and currency; CSV of the whole result."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app_pages.components.data import query
from app_pages.components.exports import export_button, query_maker
from app_pages.components.format import (
    PERIOD_END_HELP,
    count,
    count_column,
    date_columns,
    long_text,
    money,
    money_columns,
    period_end,
    pinned,
    table_height,
)
from app_pages.components.gate import require_page
from app_pages.components.tables import (
    ANY,
    chosen,
    frame,
    guarded,
    open_customer,
    paged,
    pager_controls,
    selected_ids,
)
from app_pages.components.text import md
from app_pages.components.urlstate import Choice, Choices, Flag, UrlState, Whole
from lib import columns
from lib.auth import User
from lib.models import MRR_STATUSES
from lib.queries import SUBSCRIPTION_STATUSES, SubscriptionFilters

P = "subs"  # widget-key prefix
SORTS = {"Newest first": ("created", True), "Highest MRR": ("mrr", True),
         "Period ends soonest": ("current_period_end", False)}
INTERVALS = [ANY, "day", "week", "month", "year"]


def filters_from_widgets() -> SubscriptionFilters:
    choices = query("subscription_choices")
    currencies = [ANY, *[label for _, label in choices["currencies"]]]
    products = {label: pid for pid, label in choices["products"]}
    prices = [ANY, *[p for p, _ in choices["prices"]]]
    url = UrlState(P)  # every filter in the URL, bound before its widget: Back and shared links keep them
    url.bind(f"{P}_status", Choices(SUBSCRIPTION_STATUSES), default=[], label="Status")
    url.bind(f"{P}_currency", Choice(currencies), default=ANY, label="Currency")
    url.bind(f"{P}_product", Choice([ANY, *products]), default=ANY, label="Product")
    url.bind(f"{P}_price", Choice(prices), default=ANY, label="Price")
    url.bind(f"{P}_interval", Choice(INTERVALS), default=ANY, label="Billing interval")
    url.bind(f"{P}_cape", Flag(), default=False, label="Cancels at period end")
    url.bind(f"{P}_trial_days", Whole(0, 365), label="Trial ends within (days)")
    url.bind(f"{P}_sort", Choice(list(SORTS)), default=next(iter(SORTS)), label="Sort")
    c1, c2, c3, c4 = st.columns(4)
    c1.multiselect("Status", SUBSCRIPTION_STATUSES, key=f"{P}_status", placeholder="Any status")
    c1.selectbox("Currency", currencies, key=f"{P}_currency")
    c2.selectbox("Product", [ANY, *products], key=f"{P}_product")
    c2.selectbox("Price", prices, key=f"{P}_price")
    c3.selectbox("Billing interval", INTERVALS, key=f"{P}_interval")
    c3.checkbox("Cancels at period end", key=f"{P}_cape")
    c4.number_input("Trial ends within (days)", min_value=0, max_value=365, value=None, step=1,
                    key=f"{P}_trial_days", placeholder="any", help="Only trialing subscriptions whose trial "
                    "ends between now and this many days from now.")
    c4.selectbox("Sort", list(SORTS), key=f"{P}_sort")
    url.render_notes()

    sort, desc = SORTS[st.session_state.get(f"{P}_sort") or "Newest first"]
    days = trial_days(st.session_state.get(f"{P}_trial_days"))
    return SubscriptionFilters(
        statuses=tuple(st.session_state.get(f"{P}_status") or ()),
        product_id=products.get(chosen(f"{P}_product") or ""), price_id=chosen(f"{P}_price"),
        interval=chosen(f"{P}_interval"), currency=(chosen(f"{P}_currency") or "").lower() or None,
        cancel_at_period_end=bool(st.session_state.get(f"{P}_cape")),
        trial_ending_days=days, sort=sort, descending=desc,
    )


def trial_days(value: object) -> int | None:
    """The "Trial ends within" days as a whole number 0–365, or None (no filter). A value the box should not
    hold (empty, not a number, NaN, out of range) is no filter, and a message says so."""
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or not 0 <= number <= 365:
        st.warning("“Trial ends within” takes a whole number of days from 0 to 365; that value was ignored, so "
                   "trials are not filtered. Type a number of days or clear the box.", icon=":material/warning:")
        return None
    return int(number)


def render_totals(filters: SubscriptionFilters) -> None:
    totals = query("subscription_totals", filters=filters)
    if not totals:
        return
    by_currency: dict[str, dict[str, int]] = {}
    for t in totals:
        cur = by_currency.setdefault(t["currency"] if isinstance(t["currency"], str) and t["currency"] else "—",
                                     {"count": 0, "mrr": 0})
        cur["count"] += t["count"]
        if t["status"] in MRR_STATUSES:
            cur["mrr"] += t["mrr"]
    cols = st.columns(min(4, len(by_currency)))
    for i, (cur, v) in enumerate(sorted(by_currency.items())):
        cols[i % len(cols)].metric(f"MRR {md(cur.upper())}", money(v["mrr"], cur),
                                   help="Active and past-due subscriptions of this filter (trials are not revenue yet)")
        cols[i % len(cols)].caption(f"{count(v['count'])} subscriptions")
    table = pd.DataFrame(totals)
    pivot = table.pivot_table(index="status", columns="currency", values="count", aggfunc="sum", fill_value=0)
    pivot.columns = [str(c).upper() for c in pivot.columns]
    with st.expander("Counts and MRR per status and currency"):
        st.dataframe(pivot, key=f"{P}_counts", column_config={
            "_index": "Status", **{c: count_column(c) for c in pivot.columns}})
        tf = frame(totals, money=("mrr",))
        st.dataframe(tf, key=f"{P}_totals", hide_index=True, column_config={
            "status": "Status", "currency": "Currency", "count": count_column("Subscriptions"),
            **money_columns(tf, {"mrr": "MRR"})})


# At 1440 px every column a review needs is in view, the subscription pinned; the interval, creation date and
# currency (part of each amount) are in the CSV and on the customer's page. "Period ends" says when it cancels.
COLUMN_ORDER = ["id", "customer_email", "status", "plan", "mrr", "current_period_end", "trial_end"]
L = columns.SUBSCRIPTIONS


def subscription_columns(df: pd.DataFrame) -> dict:
    """Column configs of the subscriptions table (changes `df`'s money and date cells into their text)."""
    df["current_period_end"] = [period_end(e, c) for e, c in zip(
        df["current_period_end"].astype(object), df["cancel_at_period_end"].astype(object), strict=True)]
    return {
        "id": pinned(L["id"], width=140), "customer_email": long_text(L["customer_email"], width=155),
        "status": st.column_config.TextColumn(L["status"], width=90),
        "plan": long_text("Items", width=140),
        **money_columns(df, {"mrr": L["mrr"]}, width=105, help="Monthly recurring revenue (active and past-due "
                        "subscriptions only), in the subscription's currency."),
        "current_period_end": st.column_config.TextColumn(L["current_period_end"], width=170, help=PERIOD_END_HELP),
        **date_columns(df, {"trial_end": L["trial_end"]}, width=140),
    }


def render_table(user: User, filters: SubscriptionFilters) -> None:
    page = paged(P, "list_subscriptions", filters, none_match="No subscription matches these filters: clear some "
                 "of them.", empty="The cache holds no subscriptions yet: run a sync from the Sync page.")
    if page is None:
        return
    st.caption(f"{page.total_label} subscription(s)")
    picked = selected_ids(f"{P}_table", [str(r["id"]) for r in page.rows], what="subscription")
    df = frame(page.rows, money=("mrr",))
    st.dataframe(df, key=f"{P}_table", hide_index=True, on_select="rerun", selection_mode="single-row",
                 height=table_height(len(df)), column_order=COLUMN_ORDER, column_config=subscription_columns(df))
    if picked:
        owner = {r["id"]: r["customer_id"] for r in page.rows}
        open_customer(str(owner.get(picked[0], "")))
    pager_controls(P, page)
    export_button(user, "Download CSV (all pages)", key=f"{P}_csv", file_name="subscriptions.csv",
                  action="export_subscriptions", page="subscriptions", filters=filters,
                  make=query_maker("export_subscriptions_csv", filters=filters))


def render(user: User) -> None:
    st.title("Subscriptions")
    filters = filters_from_widgets()
    render_totals(filters)
    render_table(user, filters)


user = require_page("subscriptions")
guarded(render, user)
