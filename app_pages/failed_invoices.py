"""Failed invoices (finance): money at risk per currency, why payments failed and what to do, age buckets,
next retries, failed vs recovered per week, recovery rate, a follow-up per invoice, bulk portal links, CSV."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.components import data
from app_pages.components.authz import authorize
from app_pages.components.data import query
from app_pages.components.exports import export_button, query_maker
from app_pages.components.format import (
    WRAP_ROW_PX,
    count,
    count_column,
    date_columns,
    long_text,
    money,
    money_columns,
    money_lines,
    pinned,
    table_height,
)
from app_pages.components.gate import require_page
from app_pages.components.portal import bulk_portal_links_action, portal_link_action
from app_pages.components.retry import retry_now_action
from app_pages.components.tables import (
    ANY,
    chosen,
    frame,
    guarded,
    in_fragment_rerun,
    link_to,
    paged,
    pager_controls,
    selected_ids,
)
from app_pages.components.text import md, safe_id, safe_url
from app_pages.components.urlstate import Choice, Flag, UrlState
from lib import columns, followups
from lib.auth import User, can
from lib.db import session_scope
from lib.declines import explain
from lib.ids import IdKind, id_problem
from lib.queries import failed
from lib.queries.failed import AGE_BUCKETS, FailedFilters

P = "fi"  # widget-key prefix
SORTS = {"Largest amount first": ("amount", True), "Oldest first": ("created", False),
         "Newest first": ("created", True), "Next retry soonest": ("next_retry", False)}
STATUSES = [ANY, "open", "uncollectible"]  # the worklist's invoice statuses


def filters_from_widgets() -> FailedFilters:
    codes = [ANY, *query(failed.decline_codes)]
    currencies = [ANY, *[c.upper() for c in query(failed.failed_currencies) if isinstance(c, str) and c]]
    url = UrlState(P)  # every filter in the URL, bound before its widget: Back and shared links keep them
    url.bind(f"{P}_decline", Choice(codes), default=ANY, label="Decline code")
    url.bind(f"{P}_currency", Choice(currencies), default=ANY, label="Currency")
    url.bind(f"{P}_status", Choice(STATUSES), default=ANY, label="Invoice status")
    url.bind(f"{P}_followup", Choice([ANY, *followups.STATUSES]), default=ANY, label="Follow-up")
    url.bind(f"{P}_age", Choice([ANY, *AGE_BUCKETS]), default=ANY, label="Age")
    url.bind(f"{P}_sort", Choice(list(SORTS)), default=next(iter(SORTS)), label="Sort")
    url.bind(f"{P}_new_card", Flag(), default=False, label="New card since the failure")
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox("Decline code", codes, key=f"{P}_decline",
                 format_func=lambda c: c if c == ANY else (c if isinstance(c, str) and c else "(no code)"))
    c1.selectbox("Currency", currencies, key=f"{P}_currency")
    c2.selectbox("Invoice status", STATUSES, key=f"{P}_status")
    c2.selectbox("Follow-up", [ANY, *followups.STATUSES], key=f"{P}_followup")
    c3.selectbox("Age", [ANY, *AGE_BUCKETS], key=f"{P}_age")
    c4.selectbox("Sort", list(SORTS), key=f"{P}_sort")
    c4.checkbox("New card since the failure", key=f"{P}_new_card",
                help="Only invoices whose customer put another card on file after the last failed attempt: a "
                     "retry now would charge that card.")
    url.render_notes()

    sort, desc = SORTS[st.session_state.get(f"{P}_sort") or "Largest amount first"]
    return FailedFilters(decline_code=chosen(f"{P}_decline"), currency=(chosen(f"{P}_currency") or "").lower() or None,
                         status=chosen(f"{P}_status"), followup=chosen(f"{P}_followup"), age=chosen(f"{P}_age"),
                         new_card=bool(st.session_state.get(f"{P}_new_card")), sort=sort, descending=desc)


def render_summary(filters: FailedFilters) -> None:
    at_risk = query(failed.at_risk_by_currency, filters=filters)
    if not at_risk:
        return
    cols = st.columns(min(4, len(at_risk)))
    for i, r in enumerate(at_risk):
        cur = md((r["currency"] or "—").upper())
        cols[i % len(cols)].metric(f"At risk · {cur}", money(r["amount"], r["currency"]),
                                   help="Amount remaining on failed invoices in this currency")
        cols[i % len(cols)].caption(f"{count(r['invoices'])} invoice(s)")
    # full width: the meaning and the next step are what this table is for, so they must be in view
    st.subheader("Why payments failed")
    codes = query(failed.failed_by_decline_code, filters=filters)
    df = frame(codes, money=("amount",))
    st.dataframe(df, key=f"{P}_codes", hide_index=True, row_height=WRAP_ROW_PX,  # the meaning and the next step wrap
                 height=table_height(len(df), row_px=WRAP_ROW_PX),
                 column_order=["code", "invoices", "amount", "meaning", "next_step"],
                 column_config={"code": pinned(L["code"]), "invoices": count_column("Invoices", width=75),
                                **money_columns(df, {"amount": L["amount_remaining"]}, width=115),
                                "meaning": long_text(L["meaning"], width=300),
                                "next_step": long_text(L["next_step"], width=350)})
    with st.expander("Age of the failed invoices"):
        ages = query(failed.failed_by_age, filters=filters)
        df = frame(ages, money=("amount",))
        st.dataframe(df, key=f"{P}_ages", hide_index=True, column_order=["age", "invoices", "amount"],
                     column_config={"age": "Since created", "invoices": count_column("Invoices"),
                                    **money_columns(df, {"amount": L["amount_remaining"]})})


def render_recovery() -> None:
    st.subheader("Failed vs recovered, last 12 months")
    currencies = [c for c in query(failed.failed_currencies) if isinstance(c, str) and c]  # a chart needs one currency
    if not currencies:
        st.caption("No failed payments in the cache.")
        return
    cur = st.selectbox("Chart currency", [c.upper() for c in currencies], key=f"{P}_chart_currency",
                       help="Amounts are never added across currencies: pick one.").lower()
    rec = query(failed.recovery, currency=cur)
    rate = next((r for r in rec.rates if r["currency"] == cur), None)
    if rate:
        c1, c2, c3 = st.columns(3)
        c1.metric("Failed", money(rate["failed"], cur),
                  help="Amount due of the invoices that failed in the last 12 months (by the month they failed)")
        c2.metric("Recovered", money(rate["recovered"], cur),
                  help="Of those, the amount paid later (on a retry or after a card update)")
        c3.metric("Recovery rate", f"{rate['rate']:.0%}" if rate["rate"] is not None else "—",
                  help="Recovered ÷ failed amount of the failures of the last 12 months; a recent month still "
                       "rises as retries pay")
    if rec.weekly:
        df = frame(rec.weekly, money=("amount",))
        # an ordinal x (one band per week, labelled by its Monday), so the two kinds sit side by side
        df["week"] = pd.to_datetime(df["week"]).dt.strftime("%Y-%m-%d")
        chart = alt.Chart(df).mark_bar().encode(
            x=alt.X("week:O", title="Week (from Monday)", axis=alt.Axis(labelAngle=-45)), xOffset="kind:N",
            y=alt.Y("amount:Q", title=f"Amount ({cur.upper()})"),
            color=alt.Color("kind:N", title="", scale=alt.Scale(domain=["failed", "recovered"],
                                                                 range=["#d62728", "#2ca02c"])),
            tooltip=[alt.Tooltip("week:O", title="Week from"), "kind:N", alt.Tooltip("amount:Q", format=",.2f")],
        ).properties(height=260)
        st.altair_chart(chart, key=f"{P}_chart")
    if rec.monthly:
        st.caption("Recovery rate by month of failure: of the money that failed that month, how much was "
                   "paid later (whenever). Failed bars count an invoice in the week it failed, recovered bars "
                   "in the week it was paid.")
        mdf = frame([{**m, "month": m["month"].strftime("%Y-%m")} for m in rec.monthly],
                    money=("failed", "recovered"))
        st.dataframe(mdf[["month", "failed", "recovered", "rate"]], key=f"{P}_recovery_months", hide_index=True,
                     column_config={"month": "Month of failure",
                                    **money_columns(mdf, {"failed": "Failed", "recovered": "Recovered"}),
                                    "rate": st.column_config.NumberColumn("Recovery rate", format="percent")})


def _save_followup(user: User) -> None:
    """Button callback: save before the rerun, so the table below already shows the new status. The user's
    roles are read again first (the callback runs before the page's gate), and the invoice id is checked
    again (it is whatever the id box held at the click)."""
    invoice_id = (st.session_state.get(f"{P}_fu_id") or "").strip()
    problem = id_problem(IdKind.INVOICE, invoice_id)
    if problem:
        st.session_state[f"{P}_fu_error"] = md(problem)
        return
    fresh = authorize(user, "followup", object_id=invoice_id)  # a refusal is shown at the top of the page
    if fresh is None:
        return
    try:
        with session_scope() as session:
            followups.set_followup(session=session, invoice_id=invoice_id, actor=fresh.email, role=fresh.role_label,
                                   status=st.session_state.get(f"{P}_fu_status", "open"),
                                   note=st.session_state.get(f"{P}_fu_note", ""))
    except followups.FollowupError as exc:
        st.session_state[f"{P}_fu_error"] = md(str(exc))
        return
    except Exception:  # noqa: BLE001 — never a traceback; nothing was half-written (one transaction)
        st.session_state[f"{P}_fu_error"] = "Could not save the follow-up: the cache database did not answer. " \
                                            "Try again in a moment."
        return
    data.written()  # the worklist row and the editor read the saved follow-up in the run that follows
    st.session_state[f"{P}_fu_saved"] = f"Follow-up for {md(invoice_id)} saved."
    if chosen(f"{P}_followup") is not None:  # the summary above counts by follow-up status: redraw it too
        st.session_state[f"{P}_whole_page"] = True


def follow_selection(selected: list[str], rows: list[dict]) -> None:
    """Point the invoice panel at the row the user just selected in the worklist (the newest one when several
    are). Until the user selects a row or types an id, the panel follows the first row of the page shown (a
    new filter or page moves it along). Runs before the id box exists."""
    key, before_key, auto_key = f"{P}_fu_id", f"{P}_table__followed", f"{P}_fu_auto"
    before = st.session_state.get(before_key, [])
    added = [i for i in selected if i not in before]
    st.session_state[before_key] = list(selected)
    current = (st.session_state.get(key) or "").strip()
    if added:
        st.session_state[key] = added[-1]
        st.session_state.pop(auto_key, None)
    elif rows and (not current or (current == st.session_state.get(auto_key)
                                   and current not in {r["id"] for r in rows})):
        st.session_state[key] = st.session_state[auto_key] = rows[0]["id"]


def load_followup(invoice: dict) -> None:
    """Put the invoice's saved status and note into the editor when the panel turns to another invoice (before
    the editor's widgets exist; an unsaved edit of the same invoice is kept)."""
    drawn = f"{P}_fu_status" in st.session_state  # Streamlit drops the editor's state after another page
    if drawn and st.session_state.get(f"{P}_fu_loaded") == invoice["id"]:
        return
    st.session_state[f"{P}_fu_loaded"] = invoice["id"]
    status = invoice["followup_status"] if invoice["followup_status"] in followups.STATUSES else "open"
    st.session_state[f"{P}_fu_status"] = status
    st.session_state[f"{P}_fu_note"] = invoice["followup_note"] or ""


def invoice_summary(invoice: dict) -> None:
    """Who, how much and where the invoice stands, in one line (text from Stripe escaped)."""
    who = invoice["customer_email"] or invoice["customer_id"]
    amount = money(invoice["amount_remaining"], invoice["currency"])
    st.markdown(f"**{md(invoice['id'])}** · {md(who)} · {amount} remaining · {md(invoice['status'])} · "
                f"follow-up **{md(invoice['followup_status'])}**"
                + (f" by {md(invoice['followup_by'])}" if invoice["followup_by"] else ""))
    if not invoice["on_worklist"]:
        st.caption("This invoice is not on the failed-payment worklist (paid, void, or not attempted yet); a "
                   "follow-up can still be noted.")
    invoice_details(invoice)


def invoice_details(invoice: dict) -> None:
    """What the worklist leaves out to keep its columns in view: attempts, the decline's meaning and next
    step, the new-card hint, and links to the customer's page and Stripe's pay page."""
    attempts = invoice["attempt_count"] or 0
    st.caption(f"{attempts:,} payment attempt(s) · {md(invoice['meaning'])} Next step: {md(invoice['next_step'])}")
    if invoice["new_card"]:
        st.caption(md(invoice["new_card"]))
    links = st.columns(2)
    with links[0]:
        if safe_id("customer", invoice["customer_id"]):
            link_to("customer_detail.py", "Customer page", icon=":material/person:",
                    query_params={"id": invoice["customer_id"]})
    if pay_page := safe_url(invoice["hosted_invoice_url"]):
        links[1].link_button("Pay page", pay_page, icon=":material/open_in_new:")


def render_followup_editor(user, invoice: dict) -> None:  # noqa: ANN001
    st.markdown("**Follow-up**")
    if not can(user, "followup"):
        st.caption("Only finance and admins can change follow-ups; you can read them in the table.")
        return
    load_followup(invoice)
    st.radio("Status", followups.STATUSES, key=f"{P}_fu_status", horizontal=True)
    st.text_area("Note", key=f"{P}_fu_note", max_chars=followups.MAX_NOTE,
                 placeholder="e.g. Emailed on Monday; customer promised to pay by Friday")
    st.button("Save follow-up", key=f"{P}_fu_save", type="primary", on_click=_save_followup, args=(user,))
    if msg := st.session_state.pop(f"{P}_fu_saved", None):
        st.toast(msg, icon=":material/check:")
        st.success(msg)
    if err := st.session_state.pop(f"{P}_fu_error", None):
        st.error(err)
    with session_scope() as session:
        past = followups.history(session=session, invoice_id=invoice["id"])
    if past:
        st.caption("History")
        hist = pd.DataFrame(past)
        st.dataframe(hist, key=f"{P}_fu_history", hide_index=True,
                     column_config=date_columns(hist, {"when": "When"}, time=True))


def render_invoice_panel(user, selected: list[str], rows: list[dict]) -> None:  # noqa: ANN001
    """The invoice in focus — the row just selected in the worklist, or any invoice typed by id — with its
    follow-up editor and its portal-link action side by side."""
    st.subheader("Selected invoice")
    follow_selection(selected, rows)
    st.text_input("Invoice id", key=f"{P}_fu_id", max_chars=255, placeholder="in_…",
                  help="Select a row in the worklist, or type the id of any invoice in the cache.")
    invoice_id = (st.session_state.get(f"{P}_fu_id") or "").strip()
    problem = id_problem(IdKind.INVOICE, invoice_id) if invoice_id else None
    if not invoice_id or problem:
        st.session_state.pop(f"{P}_fu_error", None)  # a save refused for this id: the warning below says why
        st.warning(md(problem) if problem else "Select a row in the worklist or type an invoice id.",
                   icon=":material/receipt_long:")
        return
    invoice = query(failed.worklist_invoice, invoice_id=invoice_id)
    if invoice is None:
        st.warning(f"Invoice {md(invoice_id)} is not in the cache. Check the id; a new invoice appears after the "
                   "next sync.", icon=":material/search_off:")
        return
    with st.container(border=True):
        invoice_summary(invoice)
        left, right = st.columns(2)
        with left:
            render_followup_editor(user, invoice)
        with right:
            st.markdown("**Portal link for this customer**")
            portal_link_action(user, invoice["customer_id"], key_prefix=f"{P}_{invoice['id']}",
                               default_flow="payment_method_update", subscription_id=invoice["subscription_id"])


# At 1440 px every column of the follow-up job is in view, the invoice pinned: who, how much, why, when the
# next retry is, how old, and the follow-up — and nothing half off screen. Attempts, the customer's page, the
# pay page, the status, the new-card hint and who saved the follow-up are in the selected invoice's panel
# (`invoice_details`); the decline's meaning and next step also in "Why payments failed" above.
WORKLIST_ORDER = ["id", "customer_email", "amount_remaining", "code", "next_payment_attempt", "age_days",
                  "followup_status", "followup_note"]
L = columns.FAILED_INVOICES


def worklist_columns(df: pd.DataFrame) -> dict:
    """Column configs of the worklist (changes `df`'s money and date cells into their text)."""
    return {
        "id": pinned(L["id"], width=140), "customer_email": long_text(L["customer_email"], width=150),
        **money_columns(df, {"amount_remaining": L["amount_remaining"]}, width=105),
        "code": long_text(L["code"], width=120),
        **date_columns(df, {"next_payment_attempt": L["next_payment_attempt"]}, width=155,
                       help={"next_payment_attempt": "Empty: no automatic retry is scheduled."}),
        "age_days": count_column(L["age_days"], width=70),
        "followup_status": st.column_config.TextColumn(L["followup_status"], width=80),
        "followup_note": long_text(L["followup_note"], width=110, help="The whole note is in the follow-up "
                                   "editor below."),
    }


def render_worklist(user, filters: FailedFilters) -> None:  # noqa: ANN001
    st.subheader("Worklist")
    page = paged(P, failed.failed_invoices, filters, none_match="No failed invoice matches these filters.",
                 empty="No failed payments: nothing is at risk right now.")
    if page is None:
        return
    st.caption(f"{page.total_label} failed invoice(s) · at risk: "
               f"{money_lines(query(failed.at_risk_by_currency, filters=filters))}")
    ids = selected_ids(f"{P}_table", [str(r["id"]) for r in page.rows], what="invoice")
    df = frame(page.rows, money=("amount_remaining", "amount_due"))
    st.dataframe(df, key=f"{P}_table", hide_index=True, on_select="rerun", selection_mode="multi-row",
                 height=table_height(len(df)), column_order=WORKLIST_ORDER, column_config=worklist_columns(df))
    pager_controls(P, page)
    export_button(user, "Download CSV (all pages)", key=f"{P}_csv", file_name="failed-invoices.csv",
                  action="export_failed_invoices", page="failed-invoices", filters=filters,
                  make=query_maker(failed.export_failed_csv, filters=filters))
    st.caption("Select a row to open its follow-up and portal link below; select several to make "
               "update-payment links for their customers.")
    bulk_portal_links_action(user, ids, key_prefix=P)
    render_invoice_panel(user, ids, page.rows)
    retry_now_action(user, page.rows, key_prefix=P)
    if filters.decline_code is not None:
        d = explain(filters.decline_code)
        st.info(f"**{md(d.code)}** — {d.meaning} Next step: {d.next_step}")


@st.fragment
def worklist_part(user, filters: FailedFilters) -> None:  # noqa: ANN001
    """The worklist with the selected invoice's panel, rerun on its own: a row selected, a pager click or a
    follow-up saved redraws this part only (the filters, summary and chart stay as drawn; a filter change
    reruns the whole page). A save while the page is filtered by follow-up status reruns the whole page, as
    the summary's counts move with it."""
    if st.session_state.pop(f"{P}_whole_page", False) and in_fragment_rerun():
        st.rerun(scope="app")
    guarded(render_worklist, user, filters)


@st.fragment
def recovery_part() -> None:
    """The recovery chart, rerun on its own when its currency changes."""
    guarded(render_recovery)


def render(user) -> None:  # noqa: ANN001
    st.title("Failed invoices")
    filters = filters_from_widgets()
    render_summary(filters)
    worklist_part(user, filters)
    recovery_part()


user = require_page("failed-invoices")
guarded(render, user)
