"""Authorisation at the moment of an action, for every write the dashboard makes.

A page checks the user's roles when it renders, but a click may come much later: widget callbacks run
before the page's gate, and an admin may have removed the user from roles.toml in between. So every write
(follow-up save, portal link, bulk links, merge plan/run/resume/stop/abandon, Refresh now, exports) calls
`authorize()` inside its callback or action: it re-reads the roles from roles.toml for the signed-in person
and returns that user with fresh roles, or — after writing a `refused` audit row and telling the user why —
None.

    fresh = authorize(user, "followup", object_id=invoice_id)
    if fresh is None:
        return  # refused, audited, and the user was told
    followups.set_followup(..., actor=fresh.email, role=fresh.role_label)

Exports hand Streamlit a callable that runs when the file is fetched, outside the script (no `st.user`
there): capture `current_claims()` while rendering and pass them as `claims=`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import streamlit as st

from app_pages.components.gate import auth_section
from app_pages.components.text import md
from lib import access, audit
from lib.auth import User, roles_now
from lib.config import ConfigError
from lib.db import session_scope

# What each right lets a person do, in words (the refusal message says which one is missing).
WHAT: dict[str, str] = {
    "portal_link": "make Customer Portal links",
    "bulk_portal_links": "make portal links in bulk",
    "followup": "change follow-ups",
    "merge": "merge customers",
    "refresh": "refresh the cache from Stripe",
    "export_audit": "export the audit log",
}
_CURRENT = object()  # claims= default: read st.user now


def current_claims() -> dict[str, Any] | None:
    """The signed-in user's claims as Streamlit holds them now (None when nobody is signed in or there is
    no script run to ask, e.g. inside a deferred download)."""
    try:
        if not st.user.get("is_logged_in", False):
            return None
        return st.user.to_dict()
    except Exception:  # noqa: BLE001 - no script context, or no auth configured
        return None


def _allowed(user: User, *, right: access.Action | None, page: str | None) -> bool:
    if page is not None and not access.may_open(user.roles, page):
        return False
    return right is None or access.may_do(user.roles, right)


def _what(action: str, right: access.Action | None, page: str | None) -> str:
    if right in WHAT:
        return WHAT[right]
    if page is not None:
        return f"use the {access.page(page).title} page"
    return action.replace("_", " ")


def _needed(right: access.Action | None, page: str | None) -> str:
    """'finance or admin': the roles that may do it (from the role matrix, so the advice never drifts)."""
    ok = [r for r in access.ROLES if (right is None or r in access.ACTIONS[right])
          and (page is None or access.may_open({r}, page))]
    return " or ".join(filter(None, [", ".join(ok[:-1]), ok[-1]])) if ok else "a role nobody has"


def _tell(message: str) -> None:
    try:
        st.error(message, icon=":material/block:")
    except Exception:  # noqa: BLE001 - outside a script run there is nobody to tell here
        pass


def _record_refusal(user: User, action: str, message: str, *, customer_id: str | None, object_id: str | None,
                    details: Mapping[str, Any] | None) -> None:
    try:
        with session_scope() as session:
            row = audit.start(session=session, actor=user.email, role=user.role_label, action=action,
                              customer_id=customer_id, object_id=object_id, details=dict(details or {}))
            audit.finish(row, session=session, result=audit.AuditResult.REFUSED, error=message)
    except Exception:  # noqa: BLE001 - the refusal stands even when the trail cannot be written
        pass


def authorize(
    user: User, action: str, *, right: access.Action | None = None, page: str | None = None,
    customer_id: str | None = None, object_id: str | None = None, details: Mapping[str, Any] | None = None,
    claims: Any = _CURRENT, tell: Callable[[str], None] | None = None,
) -> User | None:
    """The user with roles read from roles.toml now, when they still allow this action; else None.

    `action` names the attempt in the audit log (e.g. "followup", "export_customers"). The action needs the
    access right `right` (default: `action` itself, when it is one) and, when `page` is given, the right to
    open that page (exports: whoever may open the page may export it). A refusal writes an audit row with
    result `refused` and the reason, and is told through `tell` (default: an st.error where the call runs).
    """
    if right is None and page is None:
        right = cast(access.Action, action)  # not a right: may_do raises KeyError, as it always has
    say = tell or _tell
    try:
        claims_now = current_claims() if claims is _CURRENT else claims
        # The demo user never reads [auth] (roles_now returns it as is); anyone else needs it read now.
        fresh = roles_now(user, claims_now, login_configured=not user.demo and auth_section() is not None)
    except (access.RolesFileError, ConfigError) as exc:
        problem = str(exc)

        def broken(esc: Callable[[str], str]) -> str:
            return (f"Not done: the roles or login settings cannot be read right now, so nobody's access can be "
                    f"checked ({esc(problem)}). Ask an admin to fix it, then try again.")

        _record_refusal(user, action, broken(str), customer_id=customer_id, object_id=object_id, details=details)
        say(broken(md))
        return None
    if _allowed(fresh, right=right, page=page):
        return fresh

    def refused(esc: Callable[[str], str]) -> str:
        return (f"Not done: {esc(fresh.email)} now has {esc(fresh.role_label)}, which may not "
                f"{_what(action, right, page)}: it needs {_needed(right, page)}. Your access may have changed "
                "since this page was loaded; reload it, and ask an admin if you need this.")

    _record_refusal(fresh, action, refused(str), customer_id=customer_id, object_id=object_id, details=details)
    say(refused(md))
    return None
