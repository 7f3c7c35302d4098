"""Table plumbing shared by the pages: a page of rows as a DataFrame, a pager, selection, links. How values
look (money, dates, counts) is app_pages/components/format."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from streamlit.errors import StreamlitPageNotFoundError
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app_pages.components.format import count
from app_pages.components.text import IdKind, md, safe_id
from app_pages.components.urlstate import Choice, UrlState, Whole
from lib import access
from lib.config import get_settings
from lib.money import minor_to_major
from lib.queries.paging import PAGE_SIZES, Page


def frame(rows: list[dict[str, Any]], money: Iterable[str] = ()) -> pd.DataFrame:
    """One page of rows as a DataFrame, money converted from minor to major units per row's currency.

    A row with no currency (None, '', or the NaN pandas puts in a text column) keeps its amount, shown as a
    two-decimal number, and an empty Currency cell.
    """
    df = pd.DataFrame(rows, columns=list(rows[0]) if rows else None)
    currencies = list(df["currency"]) if "currency" in df else [None] * len(df)
    for col in money:
        if col in df:
            df[col] = [minor_to_major(a, c) for a, c in zip(df[col], currencies, strict=True)]
    if "currency" in df:
        df["currency"] = [c.upper() if isinstance(c, str) and c else None for c in currencies]
    return df


ANY = "Any"  # the first choice of every filter select box: no filter


def chosen(key: str) -> Any:
    """A filter widget's value, None when it is unset or left at "Any"."""
    value = st.session_state.get(key)
    return None if value in (None, ANY) else value


_DASHBOARD_KINDS: dict[str, IdKind] = {"customers": "customer", "invoices": "invoice", "subscriptions": "subscription",
                    "payment_methods": "payment_method", "events": "event"}


def dashboard_url(kind: str, object_id: object) -> str | None:
    """Link to an object in the Stripe Dashboard, under /test/ for test keys; None (no link) unless
    `object_id` is a Stripe id of that kind (cus_…, in_…, sub_…, pm_…, evt_…), and None whenever the API base
    is not Stripe's (the sandbox's objects exist only there: `Settings.stripe_dashboard`)."""
    settings = get_settings()
    if not settings.stripe_dashboard:
        return None
    valid = safe_id(_DASHBOARD_KINDS[kind], object_id)
    return f"{settings.dashboard_path}{kind}/{valid}" if valid else None


def customer_link(customer_id: object) -> str | None:
    """The relative link to a customer's detail page, only for a real customer id (else None: no link)."""
    valid = safe_id("customer", customer_id)
    return f"customer?id={valid}" if valid else None


MAX_PAGE = 100_000  # a page number from a URL beyond this is refused


def pager(prefix: str, signature: Any) -> tuple[int, int]:
    """The current page and page size for a table; back to page 1 whenever the filters change. Both live in
    the URL (`<prefix>_page`, `<prefix>_size`): a shared link or the browser's Back opens the same page."""
    if st.session_state.get(f"{prefix}_sig") != signature:
        st.session_state[f"{prefix}_sig"] = signature
        st.session_state[f"{prefix}_page"] = 1
    url = UrlState(prefix)  # after the reset above: a page number the URL brings (Back, a link) wins over it
    url.bind(f"{prefix}_page", Whole(1, MAX_PAGE), default=1, label="Page")
    url.bind(f"{prefix}_size", Choice(PAGE_SIZES), default=PAGE_SIZES[0], label="Rows per page")
    url.render_notes()
    size = st.session_state.get(f"{prefix}_size", PAGE_SIZES[0])
    return int(st.session_state.get(f"{prefix}_page", 1)), int(size)


def past_the_end(prefix: str, page: Page) -> bool:
    """True (and back to page 1, rerunning) when a page number from a link or Back lies beyond the list's
    end now: the user sees the first page rather than an empty table."""
    if page.rows or page.page <= 1:
        return False
    st.session_state[f"{prefix}_page"] = 1
    rerun_this_part()
    return True  # not reached: st.rerun() stops this run


def in_fragment_rerun() -> bool:
    """True while a fragment reruns on its own (a row selected, a pager click in it), not in a full run."""
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def rerun_this_part() -> NoReturn:
    """st.rerun() of what is running: the fragment in a fragment's own rerun (a row selected, a pager click in
    it), else the whole page (Streamlit refuses a fragment-scoped rerun during a full run)."""
    st.rerun(scope="fragment" if in_fragment_rerun() else "app")
    raise AssertionError("unreachable")  # st.rerun raises


def _turn_to(prefix: str, page_no: int) -> None:
    """Pager button callback: the page to show, set before the run (one run per click, no st.rerun)."""
    st.session_state[f"{prefix}_page"] = page_no


def pager_controls(prefix: str, page: Page) -> None:
    """Previous / next buttons, the page position and the page size under a table."""
    left, mid, right, size = st.columns([1, 3, 1, 1])
    left.button("← Previous", key=f"{prefix}_prev", disabled=page.page <= 1, on_click=_turn_to,
                args=(prefix, max(1, page.page - 1)))
    shown_from = (page.page - 1) * page.page_size + (1 if page.rows else 0)
    shown_to = (page.page - 1) * page.page_size + len(page.rows)
    of = f" of {page.total_label}" if page.total is not None else ""
    mid.caption(f"Page {page.page} · rows {count(shown_from)}–{count(shown_to)}{of}")
    right.button("Next →", key=f"{prefix}_next", disabled=not page.has_more, on_click=_turn_to,
                 args=(prefix, page.page + 1))
    size.selectbox("Rows per page", PAGE_SIZES, key=f"{prefix}_size", label_visibility="collapsed",
                   format_func=lambda n: f"{n} per page")


def guarded(render: Callable[..., None], *args: Any) -> None:
    """Run a page body; a cache-database failure becomes one clear message instead of a traceback."""
    try:
        render(*args)
    except SQLAlchemyError as exc:
        st.error(f"The cache database did not answer ({type(exc).__name__}). Check DATABASE_URL and that the "
                 "database is running, then reload the page; the Sync page shows when the cache was last "
                 "refreshed.", icon=":material/database:")


def link_to(page_file: str, label: str, *, icon: str | None = None,
            query_params: Mapping[str, str | list[str]] | None = None) -> None:
    """`st.page_link` to another page; a plain link when the page runs outside `st.navigation` (AppTest).

    `label` is plain text (it may hold a customer's name or email): it is escaped here, never Markdown.
    """
    try:
        st.page_link(f"app_pages/{page_file}", label=md(label), icon=icon, query_params=query_params)
    except StreamlitPageNotFoundError:
        spec = next(p for p in access.PAGES if p.file == page_file)
        query = ("?" + urlencode(query_params)) if query_params else ""
        st.markdown(f"[{md(label)}]({spec.key}{query})")


def open_customer(customer_id: str) -> None:
    """Go to the customer's detail page (selection events on the tables call this); nothing for an id
    that is not a customer id."""
    valid = safe_id("customer", customer_id)
    if valid is None:
        return
    try:
        st.switch_page("app_pages/customer_detail.py", query_params={"id": valid})
    except StreamlitPageNotFoundError:
        st.query_params["id"] = valid
        link_to("customer_detail.py", f"Open {valid}", query_params={"id": valid})


def selected_ids(key: str, ids: list[str], *, what: str = "row") -> list[str]:
    """The ids picked in the selectable table `key`, which is about to show rows `ids` (call it just before
    `st.dataframe(..., key=key, on_select=...)`).

    A table's selection holds row positions; positions are only meaningful in the rows the user saw. So the
    ids shown by the last run are remembered, the user's positions are turned into ids against them, and
    the selection is moved to where those ids are now (or dropped, with a message, for ids that left the
    list). An action therefore only ever gets ids the user picked, and a shrunk list never raises.
    """
    shown_key = f"{key}__shown_ids"
    shown: list[str] = st.session_state.get(shown_key, [])
    state = st.session_state.get(key)
    try:
        rows = list(state["selection"]["rows"]) if state else []
    except (KeyError, TypeError):
        rows = []
    picked = [shown[i] for i in rows if isinstance(i, int) and 0 <= i < len(shown)]
    here = {rid: n for n, rid in enumerate(ids)}
    kept = [rid for rid in picked if rid in here]
    st.session_state[shown_key] = list(ids)
    new_rows = [here[rid] for rid in kept]
    if new_rows != rows:
        st.session_state[key] = {"selection": {"rows": new_rows, "columns": [], "cells": []}}
    gone = len(picked) - len(kept) + (len(rows) - len(picked))
    if gone:
        st.info(f"{gone} selected {what}{'s' if gone != 1 else ''} left this list when it changed, so "
                f"{'they were' if gone != 1 else 'it was'} unselected. Check the selection before acting.",
                icon=":material/deselect:")
    return kept


def paged(prefix: str, fetch: Callable[..., Page], filters: Any, *, none_match: str, empty: str) -> Page | None:
    """Run a paged lib.queries function (`fetch`, through the cache) for the current filters and page; say why
    when nothing is shown (then None)."""
    from app_pages.components.data import query

    page_no, size = pager(prefix, filters)
    page = query(fetch, filters=filters, page=page_no, page_size=size)
    past_the_end(prefix, page)
    if page.rows:
        return page
    st.info(empty if unfiltered(filters) else none_match)
    return None


def unfiltered(filters: Any) -> bool:
    """True when a filters dataclass holds its defaults except perhaps the sort (an empty result then means
    an empty cache, not a filter that matches nothing)."""
    default = type(filters)()
    return dataclasses.replace(filters, sort=default.sort, descending=default.descending) == default
