"""Every CSV download the dashboard offers, through one audited path.

`export_button(user, ...)` draws a download button whose file is made when it is fetched: at that moment the
user's roles are read again from roles.toml (`authz.authorize`), the CSV is written by lib/export (formula
cells neutralised) and an audit row records who exported what, from which page, with which filters and how
many rows (`lib.audit.recorded_export`). `export_csv(...)` is that callable's body, for tests and callers
that already hold the bytes' producer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import IO, Any

import streamlit as st
from sqlmodel import Session

from app_pages.components.authz import authorize, current_claims
from app_pages.components.text import plain
from lib import access, audit
from lib.auth import User
from lib.db import session_scope
from lib.export import csv_text

Maker = Callable[[Session], IO[bytes]]


def export_csv(
    user: User, *, action: str, page: str, filters: Any, make: Maker, right: access.Action | None = None,
    claims: Mapping[str, Any] | None = None,
) -> bytes:
    """The CSV bytes for this export, made and audited now; when the user's roles no longer allow it, a
    one-cell CSV saying why (the refusal is audited too). `claims` are the OIDC claims captured when the
    button was drawn (a deferred download runs outside the script, where st.user cannot be read)."""
    said: list[str] = []
    fresh = authorize(user, action, right=right, page=page, claims=claims, details={"page": page},
                      tell=said.append)
    if fresh is None:
        return csv_text(["error"], [[plain(said[0]) if said else "Not allowed."]]).encode("utf-8")
    with session_scope() as session:
        return audit.recorded_export(session=session, actor=fresh.email, role=fresh.role_label,
                                     action=audit.AuditAction(action), page=page, filters=filters,
                                     make=lambda: make(session))


def export_button(
    user: User, label: str, *, key: str, file_name: str, action: str, page: str, filters: Any, make: Maker,
    right: access.Action | None = None, disabled: bool = False,
) -> None:
    """A "Download CSV" button whose file is made, checked and audited only when the user fetches it."""
    data = functools.partial(export_csv, user, action=action, page=page, filters=filters, make=make, right=right,
                             claims=current_claims() if not user.demo else None)
    st.download_button(label, key=key, file_name=file_name, mime="text/csv", icon=":material/download:",
                       data=data, disabled=disabled)


def query_maker(export: Callable[..., IO[bytes]], /, **kwargs: Any) -> Maker:
    """A maker for one of lib/queries' export_* functions:
    `query_maker(customers.export_customers_csv, filters=f)`."""

    def make(session: Session) -> IO[bytes]:
        return export(session=session, **kwargs)

    return make
