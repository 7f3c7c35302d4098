"""An audit-log filter holding a NUL character (which PostgreSQL cannot compare) is one clear message naming
the filter, on the page and in lib/audit, instead of "the cache database did not answer"."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from lib import audit
from lib.models import AuditLog
from tests.utils.apptest import APP
from tests.utils.login import as_role


@pytest.fixture
def one_entry(db: Engine) -> Engine:
    with Session(db) as session:
        session.add(AuditLog(actor="ada@corp.test", role="admin", action="portal_link", customer_id="cus_1",
                             result="succeeded", details={}))
        session.commit()
    return db


@pytest.mark.parametrize(("field", "label"), [("actor", "Actor"), ("customer_id", "Customer")])
def test_a_filter_with_nul_is_a_clear_error(one_entry: Engine, field: str, label: str) -> None:
    with pytest.raises(audit.AuditFilterError) as err:
        with Session(one_entry) as s:
            audit.search_audit(session=s, filters=audit.AuditFilters(**{field: "ada\x00"}))
    assert str(err.value).startswith(f"The {label} filter contains a character that cannot be stored (NUL)")


def test_the_page_shows_the_filter_problem(one_entry: Engine, roles_file: Path) -> None:
    at = as_role(AppTest.from_file(APP, default_timeout=30), "admin").run()
    at = at.switch_page("app_pages/audit.py").run()
    at.text_input(key="aud_actor").input("ada\x00").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The Actor filter contains a character that cannot be stored (NUL); remove it and search again."]
