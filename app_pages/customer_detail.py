"""Customer detail: profile, balance, default card, subscriptions, invoices, cards, recent events, links to
the Stripe Dashboard, and the portal-link and merge actions. Opened as /customer?id=cus_…"""

from __future__ import annotations

import streamlit as st

from app_pages.components import urlstate
from app_pages.components.data import query
from app_pages.components.format import (
    PERIOD_END_HELP,
    ago,
    balance,
    count_column,
    date_columns,
    long_text,
    money,
    money_columns,
    money_lines,
    period_end,
    pinned,
    table_height,
    tick_columns,
    when,
)
from app_pages.components.gate import require_page
from app_pages.components.merge import merge_action
from app_pages.components.merged import render_merge_marks
from app_pages.components.portal import portal_link_action
from app_pages.components.retry import retry_now_action
from app_pages.components.tables import (
    customer_link,
    dashboard_url,
    frame,
    guarded,
    link_to,
    open_customer,
    pager,
    pager_controls,
    selected_ids,
)
from app_pages.components.text import md, safe_id, safe_url
from lib.columns import BALANCE_HELP
from lib.declines import explain
from lib.queries import MAX_SEARCH_LEN, CustomerFilters, SearchError

P = "cd"  # widget-key prefix
CUSTOMERS_PREFIX = "cust"  # the Customers page's prefix: its URL state is the way back
FINDER_ROWS = 25


def back_link() -> None:
    """Back to the Customers page as it was left (its search, filters and page, remembered from its URL)."""
    link_to("customers.py", label="Back to customer search", icon=":material/arrow_back:",
            query_params=urlstate.saved(CUSTOMERS_PREFIX) or None)


def customer_id_from_url() -> str | None:
    raw = st.query_params.get("id", "")
    cid = raw.strip() if isinstance(raw, str) else ""
    return cid or None


def render_finder() -> None:
    """Opened without an id (e.g. from the menu): a search box (id, email, name, phone, card last 4: the
    Customers page's search) and the matches, a selected row opens that customer."""
    st.title("Customer detail")
    url = urlstate.UrlState(P)
    url.bind(f"{P}_find", urlstate.Text(MAX_SEARCH_LEN), default="", label="Find a customer")
    st.text_input("Find a customer", key=f"{P}_find", placeholder="cus_… id, email, name, phone or card last 4",
                  help="The same search as the Customers page: email in any case, names without accents.")
    url.render_notes()
    text = (st.session_state.get(f"{P}_find") or "").strip()
    if not text:
        st.caption("Type a customer's id, email or name to open their page.")
        return
    try:
        page = query("search_customers", filters=CustomerFilters(q=text), page=1, page_size=FINDER_ROWS)
    except SearchError as exc:
        st.warning(md(str(exc)), icon=":material/search_off:")
        return
    if not page.rows:
        st.info("No customer matches. Check the spelling, or try part of the name or the email without its +tag.")
        return
    if len(page.rows) == 1 and customer_link(page.rows[0]["id"]):
        only = page.rows[0]
        link_to("customer_detail.py", label=f"Open {only['email'] or only['name'] or only['id']}",
                icon=":material/person:", query_params={"id": only["id"]})
    more = " (the first ones: refine the search, or use the Customers page)" if page.has_more else ""
    st.caption(f"{page.total_label} customer(s){more} · select a row to open it")
    df = frame([{k: r[k] for k in ("id", "email", "name", "currency")} for r in page.rows])
    picked = selected_ids(f"{P}_found", [str(i) for i in df["id"]], what="customer")
    st.dataframe(df, key=f"{P}_found", hide_index=True, on_select="rerun", selection_mode="single-row",
                 column_config={"id": "Customer", "email": "Email", "name": "Name", "currency": "Currency"})
    if picked:
        open_customer(picked[0])


def render_missing(cid: str) -> None:
    st.title("Customer detail")
    if safe_id("customer", cid) is None:
        shown = cid if len(cid) <= 80 else f"{cid[:80]}… ({len(cid):,} characters)"
        st.error(f"“{md(shown)}” is not a customer id (they look like cus\\_NffrFeUfNV2Hib). Search for the "
                 "customer instead.")
    else:
        st.error(f"Customer {md(cid)} is not in the cache. It may be new (wait for the next sync or refresh from "
                 "the Sync page), deleted long ago, or from the other key mode.")
    back_link()


def render_leftovers(user, cid: str, leftovers: dict[str, bool]) -> None:  # noqa: ANN001
    """A customer id with no customer row but invoices or subscriptions in the cache: said plainly, then what
    the cache holds (Stripe's customer list leaves deleted customers out; their invoices stay)."""
    st.title(f"Customer {md(cid)}")
    held = " and ".join(k for k, v in leftovers.items() if v)
    st.warning(f"Customer {md(cid)} is not in the cache: it was probably deleted in Stripe (Stripe no longer lists "
               f"deleted customers), but the cache still holds its {held}, shown below. Open it in Stripe to see "
               "what happened to it.", icon=":material/person_off:")
    stripe = dashboard_url("customers", cid)
    if stripe:
        st.markdown(f"[Open in Stripe]({stripe})")
    if leftovers["subscriptions"]:
        render_subscriptions(query("customer_subscriptions", customer_id=cid))
    render_invoices(user, cid)


def render_profile(c: dict) -> None:
    title = next((v for v in (c["name"], c["email"], c["id"]) if isinstance(v, str) and v), "Customer")
    st.title(md(title))
    flags = []
    if c["deleted"]:
        flags.append(":gray-background[deleted in Stripe]")
    if c["delinquent"]:
        flags.append(":red-background[delinquent]")
    stripe = dashboard_url("customers", c["id"])
    st.markdown(" ".join([md(c["id"]), *flags]) + (f" · [Open in Stripe]({stripe})" if stripe else ""))
    contact = " · ".join(x for x in (
        f":material/mail: {md(c['email'])}" if c["email"] else ":material/mail: no email",
        f":material/call: {md(c['phone'])}" if c["phone"] else "",
    ) if x)
    st.markdown(contact)
    m1, m2, m3 = st.columns(3)
    bal = c["balance"] or 0
    m1.metric("Balance", balance(bal, c["currency"]), help=BALANCE_HELP)
    m2.metric("MRR", money(c["mrr"] or 0, c["currency"]))
    owed = query("customer_open_amounts", customer_id=c["id"])
    m3.metric("Unpaid on open invoices", money_lines(owed))
    created = when(c["created"])
    st.caption(f"Customer since {created} · currency {md((c['currency'] or '—').upper())} · "
               f"cached {ago(c['synced_at'])}")


def render_actions(user, cid: str) -> None:  # noqa: ANN001
    """The portal-link and merge actions (widgets owned by the portal and merge modules)."""
    st.subheader("Actions")
    a1, a2 = st.columns(2)
    with a1:
        portal_link_action(user, cid, key_prefix=f"{P}_portal")
    with a2:
        merge_action(user, cid, key_prefix=f"{P}_merge")


def pm_kind(pm: dict) -> str:
    """'Visa' for a card, 'us bank account' for another kind of payment method."""
    return pm["card_brand"].title() if pm["card_brand"] else (pm["type"] or "payment method").replace("_", " ")


def pm_expiry(pm: dict) -> str:
    """'03/2030'; empty for payment methods that do not expire (bank accounts, SEPA debits)."""
    return f"{pm['card_exp_month']:02d}/{pm['card_exp_year']}" if pm["card_exp_month"] and pm["card_exp_year"] else ""


def render_payment_methods(c: dict, pms: list[dict]) -> None:
    st.subheader("Payment methods")
    if not pms:
        st.info("No card on file: the customer must add one (send a portal link) before invoices can be paid.")
        return
    default = c["default_payment_method_id"]
    df = frame([{
        "id": pm["id"], "default": pm["id"] == default, "brand": pm_kind(pm), "last4": pm["card_last4"],
        "expires": pm_expiry(pm), "stripe": dashboard_url("payment_methods", pm["id"]),
    } for pm in pms])
    ticks = tick_columns(df, {"default": "Default"})
    st.dataframe(df, key=f"{P}_pms", hide_index=True, height=table_height(len(df)), column_config={
        "id": pinned("Payment method"), "brand": "Brand", "last4": "Last 4", "expires": "Expires", **ticks,
        "stripe": st.column_config.LinkColumn("Stripe", display_text="Open"),
    })
    if default and default not in {pm["id"] for pm in pms}:
        st.caption(f"Default payment method {md(default)} is not cached yet.")


def render_subscriptions(subs: list[dict]) -> None:
    st.subheader(f"Subscriptions ({len(subs)})")
    if not subs:
        st.info("No subscriptions.")
        return
    rows = []
    for s in subs:
        items = ", ".join(
            f"{i['product_name'] or i['product_id'] or i['price_id']}"
            + (f" × {i['quantity']}" if i["quantity"] != 1 else "")
            + (f" ({money(i['unit_amount'], i['currency'])}/{i['interval']})" if i["unit_amount"] is not None
               and i["interval"] else "") for i in s["items"])
        ends = s["current_period_end"] or next(
            (i["current_period_end"] for i in s["items"] if i["current_period_end"]), None)
        rows.append({
            "id": s["id"], "status": s["status"], "items": items, "currency": s["currency"], "mrr": s["mrr"],
            "period_end": ends, "cancel_at_period_end": s["cancel_at_period_end"],
            "trial_end": s["trial_end"], "stripe": dashboard_url("subscriptions", s["id"]),
        })
    df = frame(rows, money=("mrr",))
    df["period_end"] = [period_end(e, c) for e, c in zip(df["period_end"].astype(object),
                                                         df["cancel_at_period_end"].astype(object), strict=True)]
    st.dataframe(df, key=f"{P}_subs", hide_index=True, height=table_height(len(df), max_rows=25),
                 column_order=["id", "status", "items", "mrr", "period_end", "trial_end", "stripe"], column_config={
        "id": pinned("Subscription", width=140), "status": st.column_config.TextColumn("Status", width=90),
        "items": long_text("Items", width=240, help="Product × quantity (unit price/interval)."),
        **money_columns(df, {"mrr": "MRR"}, width=110),
        "period_end": st.column_config.TextColumn("Period ends", width=185, help=PERIOD_END_HELP),
        **date_columns(df, {"trial_end": "Trial ends"}, width=140),
        "stripe": st.column_config.LinkColumn("Stripe", display_text="Open", width=60),
    })


def render_invoices(user, cid: str) -> list[str]:  # noqa: ANN001
    """The invoices table, paged, with "new card since the failure" hints and Retry now; returns the ids shown
    (their events join the timeline)."""
    page_no, size = pager(f"{P}_inv", cid)
    page = query("customer_invoices", customer_id=cid, page=page_no, page_size=size)
    st.subheader(f"Invoices ({page.total_label})")
    if not page.rows:
        st.info("No invoices.")
        return []
    for inv in page.rows:
        if inv["new_card"]:
            st.info(md(f"{inv['id']}: {inv['new_card']}"), icon=":material/credit_card:")
    rows = []
    for inv in page.rows:
        code = inv["decline_code"] or inv["failure_code"]
        rows.append({
            "id": inv["id"], "number": inv["number"], "status": inv["status"], "currency": inv["currency"],
            "amount_due": inv["amount_due"], "amount_paid": inv["amount_paid"],
            "amount_remaining": inv["amount_remaining"], "attempts": inv["attempt_count"],
            "decline": code or "", "new_card": inv["new_card"],
            "next_retry": inv["next_payment_attempt"], "created": inv["created"],
            "hosted": safe_url(inv["hosted_invoice_url"]), "stripe": dashboard_url("invoices", inv["id"]),
        })
    df = frame(rows, money=("amount_due", "amount_paid", "amount_remaining"))
    st.dataframe(df, key=f"{P}_invoices", hide_index=True, height=table_height(len(df)), column_order=[
        "id", "status", "amount_due", "amount_remaining", "attempts", "decline", "next_retry", "created", "hosted",
        "number", "amount_paid", "stripe"], column_config={
        "id": pinned("Invoice", width=140), "status": st.column_config.TextColumn("Status", width=85),
        "number": "Number", "attempts": count_column("Attempts", width=70),
        **money_columns(df, {"amount_due": "Due", "amount_remaining": "Remaining", "amount_paid": "Paid"}, width=105),
        "decline": long_text("Decline", width=100, help="The last decline code; its meaning and the next step are "
                             "under “Why these payments failed” below the table."),
        **date_columns(df, {"next_retry": "Next retry", "created": "Created"}, width=140,
                       help={"next_retry": "Empty: no automatic retry is scheduled."}),
        "hosted": st.column_config.LinkColumn("Pay page", display_text="Open", width=75),
        "stripe": st.column_config.LinkColumn("Stripe", display_text="Open", width=60),
    })
    reasons = {r["decline"] for r in rows if r["decline"]}
    if reasons:
        with st.expander("Why these payments failed"):
            for code in sorted(reasons):
                d = explain(code)
                st.markdown(f"**{md(code)}** — {d.meaning} Next step: {d.next_step}")
    pager_controls(f"{P}_inv", page)
    retry_now_action(user, [r for r in page.rows if r["attempt_count"]], key_prefix=f"{P}_inv")
    return [r["id"] for r in page.rows]


def render_timeline(cid: str, object_ids: list[str]) -> None:
    st.subheader("Recent events")
    events = query("customer_timeline", customer_id=cid, object_ids=tuple(object_ids))
    if not events:
        if query("event_history")["complete"]:
            st.caption("No events about this customer in the last 30 days (Stripe keeps events for 30 days; new "
                       "ones arrive with each sync and webhook).")
        else:
            st.caption("Events not fetched yet — the last 30 days arrive with the next sync (after the card "
                       "lists), new ones with each sync and webhook.")
        return
    df = frame(events)
    df["stripe"] = [dashboard_url("events", e) for e in df["id"]]
    when_col = date_columns(df, {"created": "When"}, time=True, width=170)
    st.dataframe(df, key=f"{P}_events", hide_index=True, height=table_height(len(df)),
                 column_order=["created", "type", "object_id", "source", "id", "stripe"], column_config={
        "id": "Event", "type": "Type", "object_id": "About", "source": "Received via", **when_col,
        "stripe": st.column_config.LinkColumn("Stripe", display_text="Open"),
    })


def render(user) -> None:  # noqa: ANN001
    cid = customer_id_from_url()
    if cid is None:
        render_finder()
        return
    customer = query("get_customer", customer_id=cid)
    if customer is None:
        leftovers = query("customer_leftovers", customer_id=cid) if safe_id("customer", cid) else None
        if leftovers and any(leftovers.values()):
            back_link()
            render_leftovers(user, cid, leftovers)
            return
        render_missing(cid)
        return
    back_link()
    render_merge_marks(cid)
    render_profile(customer)
    pms = query("customer_payment_methods", customer_id=cid)
    subs = query("customer_subscriptions", customer_id=cid)
    default = next((pm for pm in pms if pm["id"] == customer["default_payment_method_id"]), None)
    if default:
        last4 = f" •••• {default['card_last4']}" if default["card_last4"] else ""
        expires = f" expires {pm_expiry(default)}" if pm_expiry(default) else ""
        what = "card" if default["type"] == "card" else "payment method"
        st.caption(f"Default {what}: {md(pm_kind(default))}{md(last4)}{expires}")
    elif pms:
        st.caption("No default payment method set: invoices fall back to the subscription's card, if any.")
    render_actions(user, cid)
    render_subscriptions(subs)
    invoice_ids = render_invoices(user, cid)
    render_payment_methods(customer, pms)
    render_timeline(cid, [s["id"] for s in subs] + invoice_ids + [pm["id"] for pm in pms])


user = require_page("customer")
guarded(render, user)
