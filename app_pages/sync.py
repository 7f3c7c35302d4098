"""Sync health: recent runs with figures and errors, cursor age per resource, webhook deliveries, and a
"Refresh now" button that runs the same incremental sync as `python -m lib sync`."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from app_pages.components import data
from app_pages.components.authz import authorize
from app_pages.components.data import query
from app_pages.components.format import ago, count, count_column, date_columns, long_text, table_height
from app_pages.components.gate import require_page
from app_pages.components.header import run_error
from app_pages.components.tables import frame, guarded
from app_pages.components.text import md
from lib.auth import User, can
from lib.gateway import GatewayError

P = "sync"  # widget-key prefix


def refresh_failure(exc: BaseException) -> str:
    """Why a refresh could not run, in words (never the driver's or the SDK's raw text)."""
    if isinstance(exc, SQLAlchemyError):
        return (f"The refresh could not run: the cache database did not answer ({type(exc).__name__}). Check "
                "DATABASE_URL and that the database is running, then press Refresh now again; nothing was "
                "lost.")
    if isinstance(exc, GatewayError):
        return f"The refresh stopped: {md(exc.user_message)} The cache keeps what was written so far; press " \
               "Refresh now again to resume from where it stopped."
    return (f"The refresh stopped unexpectedly ({type(exc).__name__}). The cache keeps what was written so far; "
            "press Refresh now again to resume, and tell an admin if it keeps happening.")


def _run_refresh() -> None:
    """Run an incremental sync with a live progress bar; the outcome is kept for the next render."""
    from lib.sync import run_sync  # imported on click only: the page itself never needs the sync engine
    with st.status("Refreshing from Stripe…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        seen: dict[str, int] = {}

        def progress(resource: str, count: int) -> None:
            seen[resource] = count
            done = sum(seen.values())
            bar.progress(min(0.99, len(seen) / 8 + done / (done + 500) / 8),
                         text=f"{resource}: {count:,} object(s) · {done:,} in total")

        try:
            result = run_sync(mode="incremental", progress=progress)
        except Exception as exc:  # noqa: BLE001 — the UI must not show a traceback
            status.update(label="Refresh failed", state="error")
            st.session_state[f"{P}_outcome"] = ("error", refresh_failure(exc))
            return
        bar.progress(1.0, text="Done")
        data.clear()
        counts = ", ".join(f"{k}: {v:,}" for k, v in (result.counts or {}).items()) or "no changes"
        if result.status == "succeeded":
            status.update(label="Refresh finished", state="complete", expanded=False)
            st.session_state[f"{P}_outcome"] = ("ok", f"Refreshed in {result.seconds:.1f} s — {counts}.")
        elif result.status == "skipped":
            status.update(label="Another sync is running", state="complete", expanded=False)
            st.session_state[f"{P}_outcome"] = ("info", "Another sync is already running (another replica or the "
                                                "worker); its results will show here when it finishes.")
        else:
            status.update(label="Refresh failed", state="error")
            cause = md(run_error(result.error) or "unknown error")
            st.session_state[f"{P}_outcome"] = ("error", f"The refresh failed: {cause}. "
                                                "Press Refresh now to resume; written pages are kept.")


def _refused(message: str) -> None:
    st.session_state[f"{P}_outcome"] = ("error", message)


def render_refresh(user: User) -> None:
    if not can(user, "refresh"):
        st.caption("Your role cannot start a refresh.")
        return
    if st.button("Refresh now", key=f"{P}_refresh", type="primary", icon=":material/sync:") and authorize(
            user, "refresh", tell=_refused) is not None:
        _run_refresh()
    outcome = st.session_state.pop(f"{P}_outcome", None)
    if outcome:
        kind, message = outcome
        {"ok": st.success, "info": st.info, "error": st.error}[kind](message)
        if kind == "ok":
            st.toast(message, icon=":material/check:")


def render_runs() -> None:
    st.subheader("Recent sync runs")
    runs = query("recent_sync_runs")
    if not runs:
        st.info("No sync has run yet: press Refresh now, or start the worker (`python -m lib worker`).")
        return
    rows = []
    for r in runs:
        took = (r["finished_at"] - r["started_at"]).total_seconds() if r["finished_at"] else None
        rows.append({"started": r["started_at"], "mode": r["mode"], "status": r["status"],
                     "seconds": round(took, 1) if took is not None else None,
                     "objects": sum(v for v in (r["counts"] or {}).values() if isinstance(v, int)),
                     "counts": ", ".join(f"{k} {count(v)}" for k, v in (r["counts"] or {}).items()),
                     "requests": r["requests"], "error": run_error(r["error"]), "host": r["host"] or ""})
    df = frame(rows)
    st.dataframe(df, key=f"{P}_runs", hide_index=True, height=table_height(len(df)), column_order=[
        "started", "mode", "status", "seconds", "objects", "requests", "error", "counts", "host"], column_config={
        **date_columns(df, {"started": "Started"}, time=True, width=170),
        "mode": st.column_config.TextColumn("Mode", width=90),
        "status": st.column_config.TextColumn("Status", width=90),
        "seconds": st.column_config.NumberColumn("Seconds", format="%,.1f", width=80),
        "objects": count_column("Objects written", width=115), "requests": count_column("Stripe requests", width=115),
        "host": "Host", "counts": long_text("Written per resource", width=220),
        "error": long_text("Error", width=230)})
    failed = [r for r in runs[:1] if r["status"] == "failed"]
    if failed:
        why = run_error(failed[0]["error"]) or "no error recorded"
        st.error(f"The last run failed: {md(why)}. Press Refresh now to resume.")


def render_cursors() -> None:
    st.subheader("Cursors per resource")
    states = query("sync_states")
    if not states:
        st.caption("No resource has been synced yet.")
        return
    rows = [{"resource": s["resource"], "event cursor age (min)": s["cursor_age_minutes"],
             "backfill": "done" if s["backfill_completed_at"] else ("in progress" if s["backfill_cursor"]
                                                                    else "not started"),
             "backfill finished": s["backfill_completed_at"], "updated": s["updated_at"]} for s in states]
    df = frame(rows)
    st.dataframe(df, key=f"{P}_cursors", hide_index=True, height=table_height(len(df)), column_config={
        "resource": "Resource", "event cursor age (min)": count_column("Event cursor age (min)"),
        "backfill": "Backfill",
        **date_columns(df, {"backfill finished": "Backfill finished", "updated": "Updated"}, time=True)})


def render_card_pass() -> None:
    """Pass 2 of the backfill (every customer's complete card list) and how far it has come."""
    progress = query("card_pass_progress")
    done, total = progress["done"], progress["total"]
    if progress["complete"] or not total:
        return
    st.subheader("Card lists (pass 2)")
    st.progress(done / total, text=f"{count(done)} of {count(total)} customers' complete card lists cached")
    st.caption("Every page is usable already: each customer's default card is cached. Pass 2 fetches every "
               "other card (one request per customer, inside the request budget) for duplicate detection and "
               "the customer page; the worker or the next sync resumes it where it stopped.")


WEBHOOK_PATH = "/webhooks/stripe"
WANTED_EVENTS = "customer.*, customer.subscription.*, invoice.*, payment_method.*"


def events_label(events: list[str]) -> str:
    """An endpoint's enabled events in a few words: "all events", or the first few types and how many."""
    if "*" in events:
        return "all events"
    if len(events) <= 4:
        return ", ".join(events)
    return f"{len(events)} types: {', '.join(events[:4])}, …"


def render_endpoints(state: dict, hooks: dict) -> None:  # noqa: ANN001
    """Stripe's webhook endpoints as the last sync read them, and what to do when none sends deliveries."""
    endpoints, checked = state["endpoints"], state["checked_at"]
    if checked is None:
        st.info("Stripe's webhook endpoints have not been read yet: the next sync (Refresh now, or the worker) "
                "reads them. Until webhooks arrive, the sync polls the Events API.")
        return
    if not endpoints:
        st.warning(f"Stripe has no webhook endpoint for this account, so changes reach the cache only when the "
                   f"sync polls the Events API. To get them within a second: in Stripe's Dashboard → Developers → "
                   f"Webhooks, add an endpoint with this dashboard's address followed by `{WEBHOOK_PATH}` and the "
                   f"events `{WANTED_EVENTS}`, then set STRIPE_WEBHOOK_SECRET to its signing secret "
                   f"(docs/operations.md).")
    else:
        rows = [{"url": e["url"], "status": e["status"], "events": events_label(e["enabled_events"] or []),
                 "description": e["description"] or ""} for e in endpoints]
        st.dataframe(frame(rows), key=f"{P}_endpoints", hide_index=True, column_config={
            "url": st.column_config.TextColumn("Endpoint URL", width="large"), "status": "Status",
            "events": st.column_config.TextColumn("Events sent", width="medium"), "description": "Description"})
        enabled = [e for e in endpoints if e["status"] == "enabled"]
        if not enabled:
            st.warning("Every webhook endpoint is disabled in Stripe, so no deliveries are sent: enable it in "
                       "Stripe's Dashboard → Developers → Webhooks. Until then the sync polls the Events API.")
        elif hooks["last_received"] is None:
            st.info("Stripe has an enabled endpoint; no delivery has reached the cache yet. Stripe sends one at "
                    "the next change. If changes happen and nothing arrives, check that the URL reaches this "
                    "server and that STRIPE_WEBHOOK_SECRET is the endpoint's signing secret.")
    st.caption(f"Endpoints read from Stripe {ago(checked)} (each sync run reads them).")


def render_webhooks() -> None:
    st.subheader("Webhooks")
    hooks = query("webhook_stats")
    render_endpoints(query("webhook_endpoints"), hooks)
    c1, c2 = st.columns(2)
    c1.metric("Received in the last 24 h", count(hooks["last_24h"]))
    c2.metric("Last received", ago(hooks["last_received"]))
    if hooks["recent"]:
        hf = frame(hooks["recent"])
        st.dataframe(hf, key=f"{P}_hooks", hide_index=True, height=table_height(len(hf)), column_config={
            "id": "Event", "type": "Type",
            **date_columns(hf, {"created": "Event time", "processed_at": "Received"}, time=True)})


def render(user) -> None:  # noqa: ANN001
    st.title("Sync")
    render_refresh(user)
    render_runs()
    render_card_pass()
    render_cursors()
    render_webhooks()


user = require_page("sync")
guarded(render, user)
