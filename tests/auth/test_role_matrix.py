"""The role matrix, end to end under AppTest: every page × role and every action × role.

Expectations are written out here from the access-control issue, not read from lib/access.py, so a change
to the matrix that opens a page or an action to the wrong team fails a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import access
from lib.auth import can, role_rules, user_from_claims
from lib.config import get_settings
from tests.utils.apptest import APP, PAGES_DIR
from tests.utils.factories import make_customer
from tests.utils.login import ROLE_EMAILS, as_role, rendered_text

ALL = {"support", "staff", "finance", "admin"}
EXPECTED_PAGES = {
    "overview": ALL, "customers": ALL, "customer": ALL, "subscriptions": ALL, "sync": ALL,
    "failed-invoices": {"staff", "finance", "admin"},
    "duplicates": {"admin"},
    "audit": {"admin"},
}
EXPECTED_ACTIONS = {
    "portal_link": {"staff", "finance", "admin"},
    "bulk_portal_links": {"finance", "admin"},
    "followup": {"finance", "admin"},
    "retry_invoice": {"finance", "admin"},
    "merge": {"admin"},
    "refresh": ALL,
    "export_audit": {"admin"},
}
NO_ACCESS = "You do not have access to this page"
SECRET_CUSTOMER = "matrix-secret-customer@corp.test"


def test_the_matrix_covers_every_page_and_action() -> None:
    assert {p.key for p in access.PAGES} == set(EXPECTED_PAGES)
    assert set(access.ACTIONS) == set(EXPECTED_ACTIONS)
    assert {p.file for p in access.PAGES} == {f.name for f in PAGES_DIR.glob("*.py")}


@pytest.fixture
def seeded(db: Engine, roles_file: Path) -> Engine:
    with Session(db) as session:
        make_customer(session, email=SECRET_CUSTOMER, name="Matrix Secret", id="cus_MATRIXSECRET")
    return db


@pytest.mark.parametrize("role", sorted(ALL))
@pytest.mark.parametrize("spec", access.PAGES, ids=lambda s: s.key)
def test_page_opens_only_for_its_roles(spec: access.PageSpec, role: str, seeded: Engine) -> None:
    """Each page by direct URL (registered but hidden from the menu when not permitted)."""
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    at.query_params["id"] = "cus_MATRIXSECRET"  # the detail page's customer
    at.switch_page(f"app_pages/{spec.file}").run()
    errors = [e.value for e in at.error]
    if role in EXPECTED_PAGES[spec.key]:
        assert not any(NO_ACCESS in e for e in errors), errors
        assert not at.exception, [e.value for e in at.exception]
        assert at.title, "an allowed page renders its content"
        assert at.title[0].value, "an allowed page renders its content"
    else:
        assert any(NO_ACCESS in e for e in errors), errors
        text = rendered_text(at)
        assert SECRET_CUSTOMER not in text
        assert "cus_MATRIXSECRET" not in text
        assert not at.title
        assert not at.dataframe
        assert not at.main.text_input
        assert not at.main.button


@pytest.mark.parametrize("spec", [p for p in access.PAGES if EXPECTED_PAGES[p.key] != ALL], ids=lambda s: s.key)
def test_page_file_refuses_by_itself(spec: access.PageSpec, seeded: Engine) -> None:
    """Defence in depth: the page's own require_page() refuses, whatever the navigation did."""
    outsiders = sorted(ALL - EXPECTED_PAGES[spec.key])
    at = as_role(AppTest.from_file(str(PAGES_DIR / spec.file), default_timeout=30), outsiders[0]).run()
    assert [e.value for e in at.error] == [
        "You do not have access to this page. Ask an admin to grant you a role that includes it."]
    assert len(at.main.children) == 1
    assert not at.sidebar.children


@pytest.mark.parametrize("role", sorted(ALL))
def test_app_routes_a_forbidden_page_to_the_refusal(role: str, seeded: Engine) -> None:
    """Through app.py's navigation: a direct URL to the audit page (admins only)."""
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    at.switch_page("app_pages/audit.py").run()
    refused = any(NO_ACCESS in e.value for e in at.error)
    assert refused == (role != "admin")
    assert ("Audit log" in [t.value for t in at.title]) == (role == "admin")


@pytest.mark.parametrize("role", sorted(ALL))
@pytest.mark.parametrize("action", sorted(EXPECTED_ACTIONS))
def test_action_allowed_only_for_its_roles(action: str, role: str, roles_file: Path) -> None:
    rules = role_rules(get_settings())
    user = user_from_claims({"email": ROLE_EMAILS[role], "email_verified": True}, rules)
    assert user.roles == {role}
    assert can(user, action) == (role in EXPECTED_ACTIONS[action])
