"""Every action × role where the action is used: the widgets and pages refuse (and audit the refusal) or
offer the action, for users signed in through the same [auth] path as production."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from lib import portal
from lib.auth import role_rules, user_from_claims
from lib.config import get_settings
from lib.models import AuditLog
from tests.utils.apptest import APP
from tests.utils.login import ROLE_EMAILS, as_role

ROLES = sorted(ROLE_EMAILS)


def _portal_widget() -> None:
    from app_pages.components.gate import current_user
    from app_pages.components.portal import portal_link_action

    portal_link_action(current_user(), "cus_ACTIONS", key_prefix="t")


def _merge_widget() -> None:
    from app_pages.components.gate import current_user
    from app_pages.components.merge import merge_action

    merge_action(current_user(), "cus_ACTIONS", key_prefix="t")


@pytest.mark.parametrize("role", ROLES)
def test_portal_link(role: str, db: Engine, roles_file: Path) -> None:
    at = as_role(AppTest.from_function(_portal_widget, default_timeout=30), role).run()
    at.button(key="t_portal_toggle").click().run()
    allowed = role in {"staff", "finance", "admin"}
    assert bool(at.selectbox) == allowed  # the panel (flow, subscription, locale…) opens only when allowed
    with Session(db) as session:
        refused = session.exec(select(AuditLog).where(AuditLog.result == "refused")).all()
    if allowed:
        assert not at.error
        assert refused == []
    else:
        assert "may not do this" in at.error[0].value
        assert [(r.actor, r.action, r.customer_id) for r in refused] == [(ROLE_EMAILS[role], "portal_link",
                                                                          "cus_ACTIONS")]


@pytest.mark.parametrize("role", ROLES)
def test_bulk_portal_links(role: str, db: Engine, roles_file: Path) -> None:
    user = user_from_claims({"email": ROLE_EMAILS[role], "email_verified": True}, role_rules(get_settings()))
    with Session(db) as session:
        if role in {"finance", "admin"}:
            result = portal.bulk_links([], user=user, session=session)  # allowed: an empty run, no Stripe call
            assert result.rows == []
        else:
            with pytest.raises(portal.PortalError, match="may not do this"):
                portal.bulk_links(["in_1"], user=user, session=session)
            entry = session.exec(select(AuditLog).where(AuditLog.action == "bulk_portal_links")).one()
            assert (entry.actor, entry.result) == (ROLE_EMAILS[role], "refused")


@pytest.mark.parametrize("role", ROLES)
def test_merge(role: str, db: Engine, roles_file: Path) -> None:
    at = as_role(AppTest.from_function(_merge_widget, default_timeout=30), role).run()
    assert not at.exception
    assert [b.label for b in at.button] == (["Merge duplicates…"] if role == "admin" else [])


@pytest.mark.parametrize("role", ROLES)
def test_refresh_on_the_sync_page(role: str, db: Engine, roles_file: Path) -> None:
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    at.switch_page("app_pages/sync.py").run()
    assert "Refresh now" in [b.label for b in at.main.button]  # every role may refresh


@pytest.mark.parametrize("role", ROLES)
def test_audit_export(role: str, db: Engine, roles_file: Path) -> None:
    with Session(db) as session:
        session.add(AuditLog(actor="someone@corp.test", action="portal_link", result="succeeded"))
        session.commit()
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    at.switch_page("app_pages/audit.py").run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == (["Download CSV (all matching entries)"] if role == "admin" else [])
