"""Audit log (admins): who did what, for whom, with which result. Filtered and paged in SQL, exportable as CSV.

Read fresh on every run (no cache): an admin checking what just happened must see it.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app_pages.components.exports import export_button
from app_pages.components.format import date_columns, long_text, table_height
from app_pages.components.gate import require_page
from app_pages.components.tables import frame, guarded, pager, pager_controls
from app_pages.components.urlstate import Choice, DayRange, Text, UrlState
from lib import audit, columns
from lib.auth import User, can
from lib.db import session_scope
from lib.models import utcnow

P = "aud"  # widget-key prefix
ANY = "Any"


def filters_from_widgets() -> audit.AuditFilters | None:
    """The filter row; None when the date range is half-picked or backwards, or a filter cannot be searched
    for (a message says so)."""
    with session_scope() as session:
        actions = audit.audit_actions(session=session)
    today = utcnow().date()
    last_30_days = (today - timedelta(days=30), today)
    url = UrlState(P)  # every filter in the URL, bound before its widget: Back and shared links keep them
    url.bind(f"{P}_actor", Text(200), default="", label="Actor")
    url.bind(f"{P}_action", Choice([ANY, *actions]), default=ANY, label="Action")
    url.bind(f"{P}_customer", Text(200), default="", label="Customer")
    url.bind(f"{P}_result", Choice([ANY, *audit.RESULTS]), default=ANY, label="Result")
    url.bind(f"{P}_dates", DayRange(latest=today), default=last_30_days, label="Date range")
    if f"{P}_dates" not in st.session_state:  # the default, set here: a widget given both warns
        st.session_state[f"{P}_dates"] = last_30_days
    c1, c2, c3, c4, c5 = st.columns([2, 2, 2, 1.4, 2.2])
    c1.text_input("Actor", key=f"{P}_actor", placeholder="email, or its beginning",
                  help="A whole email matches exactly; part of one (e.g. 'ada') matches emails that begin so.")
    c2.selectbox("Action", [ANY, *actions], key=f"{P}_action")
    c3.text_input("Customer", key=f"{P}_customer", placeholder="cus_…", help="The whole customer id")
    c4.selectbox("Result", [ANY, *audit.RESULTS], key=f"{P}_result")
    dates = c5.date_input("Date range (UTC)", key=f"{P}_dates", max_value=today)
    url.render_notes()
    if not isinstance(dates, tuple | list) or len(dates) != 2:
        st.info("Pick the last day of the range too (click a second date).", icon=":material/date_range:")
        return None
    since, until = dates
    action = st.session_state.get(f"{P}_action") or ANY
    result = st.session_state.get(f"{P}_result") or ANY
    try:
        return audit.AuditFilters(
            actor=st.session_state.get(f"{P}_actor") or "", action="" if action == ANY else action,
            customer_id=st.session_state.get(f"{P}_customer") or "", result="" if result == ANY else result,
            since=since, until=until,
        )
    except audit.AuditFilterError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def render_results(user: User, filters: audit.AuditFilters) -> None:
    page_no, size = pager(P, filters)
    with session_scope() as session:
        page = audit.search_audit(session=session, filters=filters, page=page_no, page_size=size)
    if not page.rows:
        st.info("No audit entry matches these filters. Widen the date range or clear a filter.")
        return
    df = frame(page.rows)
    L = columns.AUDIT
    # who did what to whom and how it ended, in view at 1440 px; the object, role, flow, correlation and
    # details follow to the right (and are in the CSV)
    st.dataframe(
        df, key=f"{P}_table", hide_index=True, height=table_height(len(df)),
        column_order=["created_at", "actor", "action", "customer_id", "result", "error", "object_id", "role", "flow",
                      "correlation_id", "details"],
        column_config={
            **date_columns(df, {"created_at": L["created_at"]}, time=True, width=180),
            "actor": long_text(L["actor"], width=165), "action": long_text(L["action"], width=140),
            "customer_id": long_text(L["customer_id"], width=155),
            "result": st.column_config.TextColumn(L["result"], width=80),
            "error": long_text(L["error"], width=215, help="The whole message is under “Errors in full” below."),
            "object_id": L["object_id"], "role": L["role"],
            "flow": L["flow"], "correlation_id": L["correlation_id"],
            "details": st.column_config.JsonColumn(L["details"]),
        },
    )
    st.caption(f"{page.total_label} entr{'y' if page.total == 1 else 'ies'} · newest first · times in UTC")
    errors = [r for r in page.rows if r["error"]]
    if errors:
        with st.expander(f"Errors in full ({len(errors)} on this page)"):
            for r in errors:
                st.text(f"{r['created_at']:%Y-%m-%d %H:%M} · {r['action']} · {r['error']}")  # text, never Markdown
    pager_controls(P, page)
    if can(user, "export_audit"):
        export_button(user, "Download CSV (all matching entries)", key=f"{P}_csv",
                      file_name=f"audit-{filters.since}-{filters.until}.csv", action="export_audit",
                      right="export_audit", page="audit", filters=filters,
                      make=lambda session: audit.export_audit_csv(session=session, filters=filters))


def render(user: User) -> None:
    st.title("Audit log")
    st.caption("Every portal link, merge step, follow-up and export: who, when, for which customer, and the "
               "outcome. Portal URLs themselves are never stored.")
    filters = filters_from_widgets()
    if filters is not None:
        render_results(user, filters)


user = require_page("audit")
guarded(render, user)  # a database that does not answer is one clear message, not a traceback
