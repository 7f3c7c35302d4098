"""Authorisation at the moment of the action: roles are read again from roles.toml when a write runs, not
taken from when the page was drawn. A user removed or demoted while the page is open is refused, the
refusal is audited (result `refused`) and explained.

Who may do what is written out here from the access issue (finance and admins change follow-ups, staff,
finance and admins make portal links, admins export the audit log), not read from lib/access.py.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib.models import AuditLog, InvoiceFollowup
from tests.utils.apptest import APP
from tests.utils.factories import make_customer, make_failed_invoice
from tests.utils.login import ROLE_EMAILS, as_role, write_roles

FRAN = ROLE_EMAILS["finance"]
ADA = ROLE_EMAILS["admin"]
WITHOUT_FINANCE = "\n".join(f'[roles.{r}]\nemails = ["{e}"]' for r, e in ROLE_EMAILS.items() if r != "finance")
FINANCE_AS_STAFF = "\n".join([
    '[roles.support]', f'emails = ["{ROLE_EMAILS["support"]}"]',
    '[roles.staff]', f'emails = ["{ROLE_EMAILS["staff"]}", "{FRAN}"]',
    '[roles.admin]', f'emails = ["{ADA}"]',
]) + "\n"
ADMIN_AS_SUPPORT = "\n".join([
    '[roles.support]', f'emails = ["{ROLE_EMAILS["support"]}", "{ADA}"]',
    '[roles.staff]', f'emails = ["{ROLE_EMAILS["staff"]}"]',
    '[roles.finance]', f'emails = ["{FRAN}"]',
]) + "\n"


def rewrite_roles(path: Path, text: str) -> None:
    """An admin edits roles.toml (the modification time moves on, so the cached rules are re-read).

    The time is moved on explicitly, a second past the previous write, rather than by sleeping past the
    file system's timestamp resolution."""
    before = path.stat().st_mtime_ns
    write_roles(path, text)
    later = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(later, later))


@pytest.fixture
def invoice(db: Engine) -> str:
    with Session(db) as s:
        c = make_customer(s, email="late@example.com")
        return make_failed_invoice(s, c).id


def finance_page(role: str = "finance") -> AppTest:
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    return at.switch_page("app_pages/failed_invoices.py").run()


def save_followup(at: AppTest, invoice_id: str) -> AppTest:
    at.text_input(key="fi_fu_id").input(invoice_id)
    at.radio(key="fi_fu_status").set_value("promised")
    at.text_area(key="fi_fu_note").input("Pays Friday")
    return at.button(key="fi_fu_save").click().run()


def refused_rows(db: Engine, action: str) -> list[AuditLog]:
    with Session(db) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action, AuditLog.result == "refused")).all())


def test_followup_still_saves_for_finance(invoice: str, db: Engine, roles_file: Path) -> None:
    save_followup(finance_page(), invoice)
    with Session(db) as s:
        assert s.get(InvoiceFollowup, invoice).status == "promised"


def test_followup_by_a_user_removed_meanwhile_is_not_written(invoice: str, db: Engine, roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    save_followup(at, invoice)
    with Session(db) as s:
        assert s.get(InvoiceFollowup, invoice) is None


def test_followup_by_a_user_removed_meanwhile_is_audited_as_refused(invoice: str, db: Engine,
                                                                    roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    save_followup(at, invoice)
    assert [(r.actor, r.object_id, r.role) for r in refused_rows(db, "followup")] == [(FRAN, invoice, "no role")]


def test_followup_by_a_user_removed_meanwhile_is_told_why(invoice: str, db: Engine, roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    save_followup(at, invoice)
    assert any("Not done" in e.value and "may not change follow-ups" in plain(e.value) for e in at.error), \
        [e.value for e in at.error]


def test_followup_by_a_user_demoted_to_staff_is_refused(invoice: str, db: Engine, roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, FINANCE_AS_STAFF)
    save_followup(at, invoice)
    assert [(r.actor, r.role) for r in refused_rows(db, "followup")] == [(FRAN, "staff")]


def test_followup_refusal_writes_no_followup_audit_entry(invoice: str, db: Engine, roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, FINANCE_AS_STAFF)
    save_followup(at, invoice)
    with Session(db) as s:
        assert s.exec(select(AuditLog).where(AuditLog.result == "succeeded")).all() == []


def test_followup_refusal_is_not_a_traceback(invoice: str, db: Engine, roles_file: Path) -> None:
    at = finance_page()
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    save_followup(at, invoice)
    assert not at.exception


# --- portal links: the click re-checks too -----------------------------------------------------------


def _portal_widget() -> None:
    from app_pages.components.gate import current_user
    from app_pages.components.portal import portal_link_action

    portal_link_action(current_user(), "cus_ACTIONS", key_prefix="t")


def test_portal_link_by_a_user_demoted_meanwhile_is_refused_and_audited(db: Engine, roles_file: Path) -> None:
    at = as_role(AppTest.from_function(_portal_widget, default_timeout=30), "finance").run()
    at.button(key="t_portal_toggle").click().run()
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    at.button(key="t_portal_make").click().run()
    assert [(r.actor, r.customer_id) for r in refused_rows(db, "portal_link")] == [(FRAN, "cus_ACTIONS")]


# --- exports: the file is made when fetched, so the check happens then ---------------------------------


def _export_script() -> None:
    """Draws nothing: runs the download's callable the way the server does when the file is fetched, for a
    user whose roles were read when the page was drawn (`t_roles`) and the claims captured then."""
    import streamlit as st

    from app_pages.components.authz import current_claims
    from app_pages.components.exports import export_csv, query_maker
    from lib import audit, queries
    from lib.auth import User

    stale = User(email=st.session_state["t_email"], name="x", roles=frozenset(st.session_state["t_roles"]))
    claims = current_claims() if not st.session_state.get("t_logged_out") else None
    if st.session_state["t_kind"] == "audit":
        filters = audit.AuditFilters()
        data = export_csv(stale, action="export_audit", right="export_audit", page="audit", filters=filters,
                          make=lambda s: audit.export_audit_csv(session=s, filters=filters), claims=claims)
    else:
        data = export_csv(stale, action="export_customers", page="customers", filters=queries.CustomerFilters(),
                          make=query_maker("export_customers_csv", filters=queries.CustomerFilters()), claims=claims)
    st.session_state["t_csv"] = data.decode()


def run_export(role: str, kind: str = "audit", *, logged_out: bool = False) -> list[dict[str, str]]:
    at = as_role(AppTest.from_function(_export_script, default_timeout=30), role)
    at.session_state["t_email"] = ROLE_EMAILS[role]
    at.session_state["t_roles"] = [role]
    at.session_state["t_kind"] = kind
    at.session_state["t_logged_out"] = logged_out
    at.run()
    assert not at.exception, at.exception
    return list(csv.DictReader(io.StringIO(at.session_state["t_csv"])))


def test_audit_export_by_a_demoted_admin_is_refused(db: Engine, roles_file: Path) -> None:
    rewrite_roles(roles_file, ADMIN_AS_SUPPORT)
    rows = run_export("admin")
    assert "may not export the audit log" in rows[0]["error"]


def test_audit_export_by_a_demoted_admin_is_audited_as_refused(db: Engine, roles_file: Path) -> None:
    rewrite_roles(roles_file, ADMIN_AS_SUPPORT)
    run_export("admin")
    assert [(r.actor, r.role) for r in refused_rows(db, "export_audit")] == [(ADA, "support")]


def test_audit_export_by_an_admin_still_works(db: Engine, roles_file: Path) -> None:
    run_export("admin")
    with Session(db) as s:
        entry = s.exec(select(AuditLog).where(AuditLog.action == "export_audit")).one()
    assert (entry.result, entry.role) == ("succeeded", "admin")


def test_export_after_logout_is_refused(db: Engine, roles_file: Path) -> None:
    run_export("admin", logged_out=True)
    assert [r.actor for r in refused_rows(db, "export_audit")] == [ADA]


def test_customer_export_by_a_removed_user_is_refused(db: Engine, roles_file: Path) -> None:
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    run_export("finance", "customers")
    assert [r.actor for r in refused_rows(db, "export_customers")] == [FRAN]


def test_customer_export_by_a_removed_user_hands_over_no_customer(db: Engine, roles_file: Path) -> None:
    with Session(db) as s:
        make_customer(s, email="secret@example.com")
    rewrite_roles(roles_file, WITHOUT_FINANCE)
    assert list(run_export("finance", "customers")[0]) == ["error"]
