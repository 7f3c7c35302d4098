"""Duplicates: clusters of customers that look like one person, most confident first, with the evidence,
the customers side by side, and a merge for each cluster (admins only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st

from app_pages.components.format import ago, balance, money, when
from app_pages.components.gate import require_page
from app_pages.components.merge import merge_action
from app_pages.components.tables import customer_link
from app_pages.components.text import md
from app_pages.components.urlstate import Choice, Choices, Number, Text, UrlState, Whole
from lib import duplicates, merge, queries
from lib.config import get_settings
from lib.db import session_scope
from lib.queries import SearchError

P = "dup"  # widget-key prefix
SCAN_TTL = 15 * 60
PAGE_SIZES = (10, 25, 50)

user = require_page("duplicates")


@st.cache_data(ttl=SCAN_TTL, show_spinner="Scanning the cache for duplicates…", max_entries=4)
def scan(database_url: str) -> duplicates.DetectionResult:
    """One detection run per database, shared by every admin for SCAN_TTL seconds or until a Re-scan."""
    with session_scope() as session:
        return duplicates.detect(session=session)


@st.cache_data(ttl=60, show_spinner=False, max_entries=200)
def side_by_side(database_url: str, ids: tuple[str, ...]) -> dict[str, duplicates.CustomerSummary]:
    with session_scope() as session:
        return duplicates.summaries(list(ids), session=session)


def render_cluster(n: int, cluster: duplicates.Cluster, people: dict[str, duplicates.CustomerSummary]) -> None:
    labels = ", ".join(duplicates.SIGNAL_LABELS[s] for s in cluster.signals)
    with st.container(border=True):
        size = len(cluster.customer_ids)
        st.markdown(f"**#{n} · {size} customers · confidence {cluster.confidence:.0%}** — {labels}")
        with st.expander("Evidence"):
            for e in cluster.evidence:
                score = f" (name similarity {e.score:.0f}%)" if e.score is not None else ""
                st.markdown(f"- {md(e.a)} ↔ {md(e.b)}: {duplicates.SIGNAL_LABELS[e.signal]} “{md(e.value)}”{score}")
        shown = cluster.customer_ids[:4]
        for col, cid in zip(st.columns(len(shown)), shown, strict=True):
            c = people.get(cid)
            if c is None:
                col.warning(f"{md(cid)} is no longer in the cache.")
                continue
            link = customer_link(cid)
            label = md(c.name or cid)
            col.markdown(f"**{f'[{label}]({link})' if link else label}**  \n{md(cid)}")
            col.caption(f"{md(c.email) or 'no email'} · {md(c.phone) or 'no phone'}")
            col.write(f"Live subscriptions: **{c.live_subscriptions}** · MRR {money(c.mrr, c.currency)}")
            col.write(f"Unpaid invoices: **{c.unpaid_invoices}**"
                      + (f" ({money(c.unpaid_amount, c.currency)})" if c.unpaid_invoices else ""))
            col.write(f"Balance: {balance(c.balance, c.currency)} · created {when(c.created)}")
            col.caption(f"Last activity {ago(c.last_activity)}")
            if c.metadata.get("merged_into"):
                col.info(f"Already merged into {md(c.metadata['merged_into'])}")
        if len(cluster.customer_ids) > len(shown):
            st.caption(f"…and {len(cluster.customer_ids) - len(shown)} more: "
                       + ", ".join(md(i) for i in cluster.customer_ids[len(shown):]))
        merge_action(user, cluster.customer_ids[0], key_prefix=f"{P}_{cluster.id}", other_ids=cluster.customer_ids)


def render_unfinished() -> None:
    """Merges that stopped, failed or were cut off: resumable from here as well as from customer detail."""
    try:
        with session_scope() as session:
            jobs = merge.unfinished_jobs(session=session)
    except Exception as exc:  # noqa: BLE001 - the scan may be cached while the database is down: no traceback
        st.error(f"Unfinished merges could not be read from the cache database ({type(exc).__name__}). Check the "
                 "database on the Sync page and reload.")
        return
    if not jobs:
        return
    with st.expander(f"Unfinished merges ({len(jobs)})", expanded=True):
        for job in jobs:
            merge_action(user, job.duplicate_id, key_prefix=f"{P}_job_{job.id}")


def still_current(result: duplicates.DetectionResult) -> list[duplicates.Cluster] | None:
    """The scan's clusters without the customers merged away since it ran (no Re-scan needed); None after
    saying why when the cache cannot be read."""
    started = result.scanned_at - timedelta(seconds=result.seconds + 1)
    try:
        with session_scope() as session:
            merged = queries.merged_since(session=session, since=started)
    except Exception as exc:  # noqa: BLE001 - never a traceback in the UI
        st.error(f"Could not check the cache for merges since the scan ({type(exc).__name__}). Reload the page.")
        return None
    # a cluster whose merge dialog is open stays until it is closed (its merge just ran: the dialog shows the outcome)
    open_ = {cid for c in result.clusters if st.session_state.get(f"{P}_{c.id}_merge_is_open")
             for cid in c.customer_ids}
    return duplicates.without_merged(result.clusters, merged - open_)


def customers_matching(text: str) -> list[str] | None:
    """Ids of the customers the search finds (as on the Customers page); None after saying why not."""
    try:
        with session_scope() as session:
            return queries.customer_ids_matching(session=session, text=text)
    except SearchError as exc:
        st.warning(md(str(exc)), icon=":material/search_off:")  # it quotes the search: text, maybe from a URL
    except Exception as exc:  # noqa: BLE001 - never a traceback in the UI
        st.error(f"The search could not read the cache ({type(exc).__name__}). Reload the page.")
    return None


def main() -> None:
    st.title("Duplicates")
    db_url = get_settings().database_url
    top = st.columns([3, 1])
    if top[1].button("Re-scan", key=f"{P}_rescan", icon=":material/refresh:"):
        scan.clear()
    try:
        result = scan(db_url)
    except Exception as exc:  # noqa: BLE001 - never a traceback in the UI
        st.error(f"The duplicate scan could not read the cache ({type(exc).__name__}). Check the database on the "
                 "Sync page and press Re-scan.")
        return
    top[0].caption(f"{len(result.clusters):,} clusters · {result.customers_linked:,} customers involved · scanned "
                   f"{ago(result.scanned_at)} in {result.seconds:.1f} s (kept {SCAN_TTL // 60} min; Re-scan after a "
                   "sync or a merge)")
    render_unfinished()
    current = still_current(result)
    if current is None:
        return
    url = UrlState(P)  # the search, filters and page in the URL: Back and shared links keep them
    url.bind(f"{P}_find", Text(queries.MAX_SEARCH_LEN), default="", label="Find a customer's cluster")
    url.bind(f"{P}_signals", Choices(list(duplicates.SIGNAL_LABELS)), default=[], label="Signals")
    url.bind(f"{P}_min_conf", Number(0.0, 1.0, 0.05), default=0.0, label="Minimum confidence")
    url.bind(f"{P}_size", Choice(PAGE_SIZES), default=PAGE_SIZES[0], label="Per page")
    find = st.text_input("Find a customer's cluster", key=f"{P}_find", max_chars=queries.MAX_SEARCH_LEN,
                         placeholder="cus_… id, email or name")
    f1, f2, f3 = st.columns([3, 2, 1])
    signals = f1.multiselect("Signals", list(duplicates.SIGNAL_LABELS), key=f"{P}_signals",
                             format_func=duplicates.SIGNAL_LABELS.get, placeholder="Any signal")
    min_conf = f2.slider("Minimum confidence", 0.0, 1.0, step=0.05, key=f"{P}_min_conf")
    size = f3.selectbox("Per page", PAGE_SIZES, key=f"{P}_size")
    clusters = duplicates.filter_clusters(current, signals=signals, min_confidence=min_conf)
    if find.strip():
        found = customers_matching(find)
        if found is None:
            return
        clusters = duplicates.clusters_of(clusters, found)
        if not clusters:
            st.info("No duplicate cluster holds a customer matching that search (with these filters)." if found
                    else "No customer matches that search. Check the id, email or name.")
            return
    if not clusters:
        st.info("No duplicate clusters match. Lower the minimum confidence or clear the signal filter."
                if current else "No duplicates found in the cache. Run a sync first if it is empty.")
        return
    sig: Any = (tuple(signals), min_conf, size, len(clusters), find.strip())
    if st.session_state.get(f"{P}_sig") != sig:
        st.session_state[f"{P}_sig"], st.session_state[f"{P}_page"] = sig, 1
    url.bind(f"{P}_page", Whole(1, 100_000), default=1, label="Page")  # after the reset: Back or a link wins
    url.render_notes()
    pages = (len(clusters) + size - 1) // size
    page = min(int(st.session_state.get(f"{P}_page", 1)), pages)
    chunk = clusters[(page - 1) * size: page * size]
    try:
        people = side_by_side(db_url, tuple(cid for c in chunk for cid in c.customer_ids[:4]))
    except Exception as exc:  # noqa: BLE001
        st.error(f"Could not read the customers of this page ({type(exc).__name__}). Reload the page.")
        return
    for n, cluster in enumerate(chunk, start=(page - 1) * size + 1):
        render_cluster(n, cluster, people)
    left, mid, right = st.columns([1, 3, 1])
    if left.button("← Previous", key=f"{P}_prev", disabled=page <= 1):
        st.session_state[f"{P}_page"] = page - 1
        st.rerun()
    mid.caption(f"Page {page} of {pages} · {len(clusters):,} clusters")
    if right.button("Next →", key=f"{P}_next", disabled=page >= pages):
        st.session_state[f"{P}_page"] = page + 1
        st.rerun()


main()
