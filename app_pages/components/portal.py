"""Portal-link widgets: one link for a customer (customer detail, the selected failed invoice) and bulk links for
finance. UI only: the work is in lib/portal.py. All state lives in st.session_state under the caller's
key prefix, so AppTest can drive it (no st.dialog)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from app_pages.components import data
from app_pages.components.authz import authorize
from app_pages.components.exports import export_button
from app_pages.components.text import md
from lib import portal
from lib.auth import User, can
from lib.config import get_settings
from lib.db import session_scope
from lib.gateway import GatewayError
from lib.sync import refresh_customer


def _k(prefix: str, name: str) -> str:
    return f"{prefix}_portal_{name}"


def _attempt(kp: str, user: User, req: portal.PortalRequest, key: str) -> None:
    """Run one attempt and leave its outcome (link or error) in session_state for the render below."""
    st.session_state[_k(kp, "attempt")] = {"req": req, "key": key}
    st.session_state.pop(_k(kp, "result"), None)
    st.session_state.pop(_k(kp, "error"), None)
    try:
        with session_scope() as session:
            link = portal.create_link(req, user=user, session=session, idempotency_key=key)
            name, _email = portal.customer_label(req.customer_id, session=session)
    except portal.PortalError as err:
        st.session_state[_k(kp, "error")] = {"kind": err.kind, "message": md(err.message),
                                              "retry": err.retry_same_key, "refresh": err.offer_refresh}
        return
    except Exception:  # noqa: BLE001 - never a traceback in the UI; the audit row says 'started'
        st.session_state[_k(kp, "error")] = {
            "kind": "unexpected", "retry": False, "refresh": False,
            "message": "Something unexpected went wrong while making the link. Try again; if it keeps "
                       "happening, tell an admin (the attempt is in the audit log).",
        }
        return
    st.session_state[_k(kp, "result")] = {
        "url": link.url, "flow": link.flow, "customer_id": link.customer_id,
        "made_at": link.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "email": portal.email_text(name, link),
    }


def _refresh(kp: str, user: User, customer_id: str) -> None:
    if not can(user, "refresh"):
        st.session_state[_k(kp, "refreshed")] = "Your role may not refresh customers. Ask an admin."
        return
    try:
        refresh_customer(customer_id)
    except GatewayError as exc:
        st.session_state[_k(kp, "refreshed")] = f"Could not refresh the customer: {md(exc.user_message)}"
        return
    except Exception as exc:  # noqa: BLE001 - never raw driver text in the UI
        st.session_state[_k(kp, "refreshed")] = (
            f"Could not refresh the customer ({type(exc).__name__}): check the cache database on the Sync page "
            "and try again.")
        return
    data.clear()  # the pages' cached queries must show the refreshed customer on the next run
    st.session_state[_k(kp, "refreshed")] = "Customer refreshed from Stripe: the page now shows its current state."


def _fresh(kp: str, user: User, action: str, *, customer_id: str | None = None) -> User | None:
    """The user with roles read again now, if `action` is still allowed; else None (audited, message shown
    in this panel's error slot)."""
    def refused(message: str) -> None:
        st.session_state[_k(kp, "error")] = {"kind": "refused", "message": message, "retry": False,
                                              "refresh": False}
        st.session_state.pop(_k(kp, "result"), None)

    return authorize(user, action, customer_id=customer_id, tell=refused)


def portal_link_action(
    user: User, customer_id: str, *, key_prefix: str, default_flow: str | None = None,
    subscription_id: str | None = None,
) -> None:
    """A 'Portal link' button that opens a small panel: flow, subscription, locale, return URL → a link."""
    kp = key_prefix
    settings = get_settings()
    open_key = _k(kp, "open")
    if st.session_state.get(_k(kp, "customer")) != customer_id:
        # Another customer under the same key prefix (e.g. customer detail reopened): forget the last
        # customer's link, error and panel, so a link is never shown next to the wrong customer.
        for name in ("open", "attempt", "result", "error", "refreshed", "refused"):
            st.session_state.pop(_k(kp, name), None)
        st.session_state[_k(kp, "customer")] = customer_id
    if st.button("Portal link…", key=_k(kp, "toggle"), icon=":material/link:",
                 help="Make a link to Stripe's Customer Portal for this customer"):
        if not can(user, "portal_link"):
            with session_scope() as session:
                err = portal.refuse(user, "portal_link", session=session, customer_id=customer_id,
                                    flow=default_flow or portal.PORTAL)
            st.session_state[_k(kp, "refused")] = err.message
            st.session_state[open_key] = False
        else:
            st.session_state[open_key] = not st.session_state.get(open_key, False)
    if st.session_state.get(_k(kp, "refused")):
        st.error(st.session_state[_k(kp, "refused")])
    if not st.session_state.get(open_key):
        return

    with st.container(border=True):
        flows = list(portal.FLOWS)
        flow = st.selectbox(
            "What should the customer do?", flows, key=_k(kp, "flow"),
            index=flows.index(default_flow) if default_flow in flows else 0,
            format_func=lambda f: portal.FLOWS[f],
        )
        sub_id: str | None = None
        if flow in portal.SUBSCRIPTION_FLOWS:
            with session_scope() as session:
                choices = portal.subscription_choices(customer_id, session=session)
            ids = [c.id for c in choices]
            labels = {c.id: c.label for c in choices}
            if subscription_id and subscription_id not in ids:
                ids.insert(0, subscription_id)
                labels[subscription_id] = f"{subscription_id} (not in the cache for this customer)"
            if ids:
                sub_id = st.selectbox(
                    "Subscription", ids, key=_k(kp, "sub"),
                    index=ids.index(subscription_id) if subscription_id in ids else 0,
                    format_func=lambda i: labels.get(i, i),
                )
            else:
                st.caption("The cache shows no live subscription for this customer; type its id if you know it.")
                sub_id = st.text_input("Subscription id", key=_k(kp, "sub_text"), placeholder="sub_…").strip()
        cols = st.columns(2)
        locale = cols[0].selectbox("Portal language", portal.LOCALES, key=_k(kp, "locale"),
                                   help="auto: the customer's preferred language or their browser's")
        return_url = cols[1].text_input("Return URL", value=settings.portal_return_url, key=_k(kp, "return_url"),
                                        help="Where the portal's back link takes the customer")
        configuration = st.text_input(
            "Portal configuration id (optional)", value=settings.portal_configuration_id,
            key=_k(kp, "config"), placeholder="bpc_… (empty: the account's default)",
        )
        if st.button("Make link", key=_k(kp, "make"), type="primary"):
            req = portal.PortalRequest(
                customer_id=customer_id, flow=flow, subscription_id=sub_id or None, locale=locale,
                return_url=return_url.strip() or None, configuration_id=configuration.strip() or None,
            )
            fresh = _fresh(kp, user, "portal_link", customer_id=customer_id)
            if fresh is not None:
                _attempt(kp, fresh, req, portal.new_attempt_key())  # a new key per click

        error: dict[str, Any] | None = st.session_state.get(_k(kp, "error"))
        if error:
            st.error(error["message"])
            if error["retry"] and st.button("Try again", key=_k(kp, "retry")):
                attempt = st.session_state[_k(kp, "attempt")]
                fresh = _fresh(kp, user, "portal_link", customer_id=customer_id)
                if fresh is not None:
                    _attempt(kp, fresh, attempt["req"], attempt["key"])  # the same attempt: the same key
                st.rerun()
            if error["refresh"] and st.button("Refresh this customer from Stripe", key=_k(kp, "refresh")):
                fresh = _fresh(kp, user, "refresh", customer_id=customer_id)
                if fresh is not None:
                    _refresh(kp, fresh, customer_id)
                st.rerun()  # redraw the whole page from the refreshed cache
            if st.session_state.get(_k(kp, "refreshed")):
                st.info(st.session_state[_k(kp, "refreshed")])

        result: dict[str, Any] | None = st.session_state.get(_k(kp, "result"))
        if result:
            st.success(f"Link made at {result['made_at']} ({portal.FLOWS[result['flow']]}).")
            st.code(result["url"], language=None, wrap_lines=True)  # wrapped, never cut off by a narrow column
            st.warning(portal.EXPIRY_NOTE, icon=":material/timer:")
            st.caption("Email text to paste:")
            st.code(result["email"], language=None, wrap_lines=True)


def bulk_portal_links_action(user: User, invoice_ids: list[str], *, key_prefix: str) -> None:
    """Finance: 'update payment method' links for the customers of the selected failed invoices, as CSV."""
    kp = f"{key_prefix}_bulk"
    settings = get_settings()
    n = len(invoice_ids)
    clicked = st.button(
        f"Make update-payment links for {n} selected invoice{'s' if n != 1 else ''}", key=_k(kp, "make"),
        disabled=n == 0, icon=":material/link:",
        help=f"One link per customer, sent at most {settings.request_budget:g} requests per second",
    )
    fresh: User | None = None
    if clicked:
        st.session_state.pop(_k(kp, "result"), None)
        st.session_state.pop(_k(kp, "error"), None)
        fresh = authorize(user, "bulk_portal_links", details={"invoices": n},
                          tell=lambda message: st.session_state.__setitem__(_k(kp, "error"), message))
    if clicked and fresh is not None:
        bar = st.progress(0.0, text="Making links…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Made {done} of {total} links…")

        try:
            with session_scope() as session:
                result = portal.bulk_links(invoice_ids, user=fresh, session=session, progress=progress)
        except portal.PortalError as err:
            st.session_state[_k(kp, "error")] = md(err.message)
        except Exception:  # noqa: BLE001 - never a traceback in the UI
            st.session_state[_k(kp, "error")] = (
                "Something unexpected went wrong while making the links. Links already made are in the audit "
                "log; try again, and tell an admin if it keeps happening."
            )
        else:
            st.session_state[_k(kp, "result")] = {
                "csv": result.csv(), "made": result.made, "failed": result.failed, "seconds": result.seconds,
                "missing": len(result.missing_invoices), "error": result.error, "run_id": result.run_id,
                "stamp": datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
                "problems": [(r.customer_id, r.error) for r in result.rows if r.error][:20],
            }
        bar.empty()
    if st.session_state.get(_k(kp, "error")):
        st.error(st.session_state[_k(kp, "error")])
    shown = st.session_state.get(_k(kp, "result"))
    if not shown:
        return
    if shown["made"]:
        st.success(f"Made {shown['made']} links in {shown['seconds']:.1f} s.")
    if shown["failed"]:
        st.error(md(shown["error"]) if shown["error"] else
                 f"{shown['failed']} links could not be made (see the error column of the CSV).")
        for cid, problem in shown["problems"][:5]:
            st.caption(f"{md(cid)}: {md(problem)}")
    if shown["missing"]:
        st.warning(f"{shown['missing']} selected invoices are no longer in the cache and were skipped.")
    made = shown["csv"].encode("utf-8")  # written by lib/export when the links were made
    export_button(user, "Download links as CSV", key=_k(kp, "download"),
                  file_name=f"portal-links-{shown['stamp']}.csv", action="export_portal_links",
                  right="bulk_portal_links", page="failed-invoices", filters={"run": shown.get("run_id", "")},
                  make=lambda _session: io.BytesIO(made))
    st.warning(portal.EXPIRY_NOTE, icon=":material/timer:")
