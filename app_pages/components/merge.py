"""The merge widget: pick the other customer, review the plan in a dialog, confirm, watch the steps.

Called from customer detail and the Duplicates page: `merge_action(user, customer_id, key_prefix=...)`.
Only admins (`can(user, "merge")`) see it. UI only: the work is in lib/merge/. All state lives in
st.session_state under `{key_prefix}_merge_*` so the dialog survives reruns and AppTest can drive it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlmodel import Session

from app_pages.components.authz import authorize
from app_pages.components.format import balance
from app_pages.components.tables import dashboard_url
from app_pages.components.text import md, md_id
from lib import merge
from lib.auth import User, can
from lib.config import get_settings
from lib.db import get_engine
from lib.gateway import GatewayError

STATUS_ICON = {"pending": ":material/schedule:", "running": ":material/play_circle:",
               "done": ":green[:material/check_circle:]", "failed": ":red[:material/error:]"}


def _k(kp: str, name: str) -> str:
    return f"{kp}_merge_{name}"


def _session() -> Session:
    return Session(get_engine(get_settings().database_url), expire_on_commit=False)


def _customer_ref(customer_id: str) -> str:
    """A customer id as Markdown: a link to it in Stripe when it is a real customer id, else plain text."""
    url = dashboard_url("customers", customer_id)
    return f"[{md(customer_id)}]({url})" if url else md(customer_id)


def _allowed(kp: str, user: User, customer_id: str | None = None, object_id: str | None = None) -> User | None:
    """The user with roles read again now, if they may still merge; else None (refusal audited and shown)."""
    def refused(message: str) -> None:
        st.session_state[_k(kp, "run_error")] = message

    return authorize(user, "merge", customer_id=customer_id, object_id=object_id, tell=refused)


def _plan(kp: str, ids: tuple[str, str]) -> None:
    """Read both customers from Stripe and keep the plan (or the reason there is none) in session_state."""
    st.session_state.pop(_k(kp, "plan"), None)
    st.session_state.pop(_k(kp, "plan_error"), None)
    try:
        plan = merge.plan_merge(ids)
    except merge.MergeError as err:
        st.session_state[_k(kp, "plan_error")] = md(str(err))
        return
    except Exception:  # noqa: BLE001 - never a traceback in the UI
        st.session_state[_k(kp, "plan_error")] = "Planning failed unexpectedly. Try again; nothing was changed."
        return
    st.session_state[_k(kp, "plan")] = plan.to_dict()


def _run(kp: str, user: User, job_id: str, *, takeover: bool = False) -> None:
    st.session_state.pop(_k(kp, "run_error"), None)
    try:
        with _session() as session, st.status("Merging…", expanded=True) as status:
            def progress(step: Any) -> None:
                status.write(f"{STATUS_ICON['done']} {step.seq}. {md(step.params.get('title', step.kind))}")

            job = merge.run_job(job_id, user=user, session=session, takeover=takeover, progress=progress)
            status.update(label=f"Merge {job.status}", state="complete" if job.status == "succeeded" else "error")
    except merge.MergeError as err:
        st.session_state[_k(kp, "run_error")] = md(str(err))
    except GatewayError as err:
        st.session_state[_k(kp, "run_error")] = f"{md(err.user_message)} Resume the merge when Stripe answers again."
    except Exception:  # noqa: BLE001 - the job stays resumable; its steps say where it stopped
        st.session_state[_k(kp, "run_error")] = ("The merge stopped unexpectedly. Its finished steps are kept: "
                                                 "press Resume to continue from where it stopped.")
    st.session_state[_k(kp, "job")] = job_id


def _start(kp: str, user: User) -> None:
    plan = merge.Plan.from_dict(st.session_state[_k(kp, "plan")])
    acks = [c for c in plan.needs_ack if st.session_state.get(_k(kp, f"ack_{c}"))]
    try:
        with _session() as session:
            job = merge.create_job(plan, user=user, session=session, acknowledged=acks,
                                   confirm_text=st.session_state.get(_k(kp, "confirm"), ""))
    except merge.MergeError as err:
        st.session_state[_k(kp, "run_error")] = md(str(err))
        return
    st.session_state.pop(_k(kp, "plan"), None)
    _run(kp, user, job.id)


def _facts_table(plan: dict[str, Any]) -> None:
    cols = st.columns(2)
    for col, role in zip(cols, ("survivor", "duplicate"), strict=True):
        f = plan[role]
        label = "Keeps" if role == "survivor" else "Merged away"
        col.markdown(f"**{label}: {_customer_ref(f['id'])}**")
        col.caption(f"{md(f.get('name')) or '—'} · {md(f.get('email')) or '—'}")
        names = f.get("product_names") or {}
        subs = "; ".join(f"{s['id']} ({s['status']}: {merge.describe_items(s, names)})"
                         for s in f["subscriptions"]) or "no live subscriptions"
        col.text(f"Subscriptions: {subs}")  # product names come from Stripe: text, never Markdown
        col.write(f"Balance: {balance(f['balance'], f.get('currency'))} · "
                  f"payment method: {md(f.get('usable_payment_method')) or 'none usable'}")


def _render_plan(kp: str, user: User) -> None:
    plan = st.session_state[_k(kp, "plan")]
    sid, did = plan["survivor_id"], plan["duplicate_id"]
    st.markdown(f"Suggested survivor: **{md(plan['suggested_survivor_id'])}** — {md(plan['survivor_reason'])}.")
    choice = st.radio("Survivor (the customer that stays)", [sid, did], key=_k(kp, "survivor_choice"),
                      horizontal=True, format_func=md_id)
    if choice != sid:  # the facts are in the plan already: no second read from Stripe
        st.session_state[_k(kp, "plan")] = merge.with_survivor(merge.Plan.from_dict(plan), choice).to_dict()
        st.rerun()
    _facts_table(plan)
    if plan["blockers"]:
        st.error("This merge cannot run yet. Nothing has been written to Stripe.")
        for reason in plan["blockers"]:
            st.text(f"• {reason}")
        return
    st.markdown("**Steps**")
    for n, step in enumerate(plan["steps"], start=1):
        st.text(f"{n}. {step['title']}")  # titles name Stripe products: shown as text
    for w in plan["warnings"]:
        if w.get("needs_ack"):
            st.warning(md(w["message"]))
            st.checkbox("I understand", key=_k(kp, f"ack_{w['code']}"))
            if w["code"] == "no_payment_method":
                from app_pages.components.portal import portal_link_action

                portal_link_action(user, sid, key_prefix=f"{kp}_mergepm", default_flow="payment_method_update")
        else:
            st.info(md(w["message"]))
    st.text_input(f"Type the survivor's id ({md_id(sid)}) to confirm", key=_k(kp, "confirm"))
    acked = all(st.session_state.get(_k(kp, f"ack_{c}")) for c in
                [w["code"] for w in plan["warnings"] if w.get("needs_ack")])
    ready = acked and st.session_state.get(_k(kp, "confirm"), "").strip() == sid
    if st.button("Run merge", key=_k(kp, "run"), type="primary", disabled=not ready):
        fresh = _allowed(kp, user, customer_id=sid)
        if fresh is not None:
            _start(kp, fresh)
        st.rerun()


def _render_job(kp: str, user: User, job_id: str) -> None:
    with _session() as session:
        job = session.get(merge.MergeJob, job_id)
        if job is None:
            st.warning(f"Merge job {md(job_id)} no longer exists.")
            return
        steps = merge.steps_of(job_id, session=session)
    st.markdown(f"**Merge {md(job.id)}** — {md(job.duplicate_id)} → {md(job.survivor_id)}: **{md(job.status)}**")
    for step in steps:
        line = f"{STATUS_ICON.get(step.status, '')} {step.seq}. {md(step.params.get('title', step.kind))}"
        if step.error:
            line += f" — {md(step.error)}"
        st.markdown(line)
    if job.status == "succeeded":
        note = (job.plan.get("verification") or {}).get("cache")
        st.success(f"Merged. Verified in Stripe. {_customer_ref(job.survivor_id)} keeps the subscriptions; "
                   f"{_customer_ref(job.duplicate_id)} is kept with metadata merged_into and marked as merged away; "
                   "the Duplicates page no longer lists this cluster.")
        if note:
            st.warning(md(note))
        return
    if job.error:
        st.error(md(job.error))
    c1, c2 = st.columns(2)
    if job.status in ("planned", "stopped", "failed", "running"):
        takeover = job.status == "running"
        label = "Resume (the other session has stopped)" if takeover else "Resume"
        if c1.button(label, key=_k(kp, f"resume_{job.id}")):
            fresh = _allowed(kp, user, customer_id=job.survivor_id, object_id=job.id)
            if fresh is not None:
                _run(kp, fresh, job.id, takeover=takeover)
            st.rerun()
    if job.status == "running" and c2.button("Stop after this step", key=_k(kp, f"stop_{job.id}")):
        fresh = _allowed(kp, user, customer_id=job.survivor_id, object_id=job.id)
        try:
            if fresh is not None:
                with _session() as session:
                    merge.request_stop(job.id, user=fresh, session=session)
        except merge.MergeError as err:
            st.session_state[_k(kp, "run_error")] = md(str(err))
        st.rerun()
    if job.status in ("planned", "stopped", "failed") and c2.button(
            "Abandon", key=_k(kp, f"abandon_{job.id}"),
            help="Give up this merge. Steps already done stay done in Stripe; a new plan takes them into account."):
        fresh = _allowed(kp, user, customer_id=job.survivor_id, object_id=job.id)
        try:
            if fresh is not None:
                with _session() as session:
                    merge.abandon_job(job.id, user=fresh, session=session)
        except merge.MergeError as err:
            st.session_state[_k(kp, "run_error")] = md(str(err))
        else:
            if fresh is not None:
                st.session_state.pop(_k(kp, "job"), None)
        st.rerun()


def _body(kp: str, user: User, customer_id: str, other_ids: list[str]) -> None:
    if st.session_state.get(_k(kp, "run_error")):
        st.error(st.session_state[_k(kp, "run_error")])
    job_id = st.session_state.get(_k(kp, "job"))
    if job_id:
        _render_job(kp, user, job_id)
        return
    choices = [o for o in other_ids if o != customer_id]
    if choices:
        other = st.selectbox("Merge with", choices, key=_k(kp, "other_pick"))
    else:
        other = st.text_input("Other customer id", key=_k(kp, "other"), placeholder="cus_…").strip()
    if st.button("Read from Stripe and plan", key=_k(kp, "plan_btn"), disabled=not other):
        st.session_state.pop(_k(kp, "run_error"), None)
        if _allowed(kp, user, customer_id=customer_id) is not None:
            _plan(kp, (customer_id, other))
    if st.session_state.get(_k(kp, "plan_error")):
        st.error(st.session_state[_k(kp, "plan_error")])
    if st.session_state.get(_k(kp, "plan")):
        _render_plan(kp, user)


def _close(kp: str) -> None:
    for key in [k for k in st.session_state if str(k).startswith(f"{kp}_merge_")]:
        del st.session_state[key]


def merge_action(user: User, customer_id: str, *, key_prefix: str, other_ids: list[str] | None = None) -> None:
    """A "Merge…" button for `customer_id`; the plan, confirmation and progress open in a dialog."""
    if not can(user, "merge"):
        return
    kp = key_prefix
    if st.button("Merge duplicates…", key=_k(kp, "open"), icon=":material/call_merge:"):
        _close(kp)
        st.session_state[_k(kp, "is_open")] = True
    try:
        with _session() as session:
            pending = [j for j in merge.latest_jobs(customer_id, session=session) if j.status in merge.UNFINISHED]
    except Exception as exc:  # noqa: BLE001 - never a traceback in the UI
        st.error(f"Merge jobs could not be read from the cache database ({type(exc).__name__}). Check the "
                 "database on the Sync page and reload.")
        return
    if pending and not st.session_state.get(_k(kp, "is_open")):
        st.warning(f"Merge {md(pending[0].id)} ({md(pending[0].duplicate_id)} → {md(pending[0].survivor_id)}) is "
                   f"{md(pending[0].status)} and can be resumed.")
        if st.button("Open it", key=_k(kp, "open_pending")):
            _close(kp)
            st.session_state[_k(kp, "is_open")] = True
            st.session_state[_k(kp, "job")] = pending[0].id
    if not st.session_state.get(_k(kp, "is_open")):
        return

    @st.dialog("Merge customers", width="large", on_dismiss=lambda: _close(kp))
    def dialog() -> None:
        try:
            _body(kp, user, customer_id, other_ids or [])
        except Exception as exc:  # noqa: BLE001 - never a traceback in the UI; the saga keeps its place
            st.error(f"Something went wrong showing this merge ({type(exc).__name__}). Close and reopen it; a "
                     "started merge keeps its finished steps and can be resumed.")

    dialog()
