"""The audit log: filters, SQL paging and CSV export (lib/audit.py), and the admin page over them."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from lib import audit, columns
from lib.models import AuditLog, utcnow
from tests.utils.apptest import APP
from tests.utils.login import as_role

TODAY = utcnow().date()


@pytest.fixture
def trail(db: Engine) -> Engine:
    """60 entries: three actors, two actions, four results, spread over the last 60 days (one a day)."""
    now = utcnow()
    with Session(db) as session:
        for i in range(60):
            session.add(AuditLog(
                created_at=now - timedelta(days=i), actor=f"user{i % 3}@corp.test", role="staff",
                action="portal_link" if i % 2 else "merge_step", customer_id=f"cus_{i:04d}",
                result=audit.RESULTS[i % 4], details={"n": i}, error="boom" if i % 4 == 2 else None,
            ))
        session.commit()
    return db


def _search(session: Session, **kw: object) -> list[dict]:
    page = audit.search_audit(session=session, filters=audit.AuditFilters(**kw), page=1, page_size=100)
    return page.rows


def test_each_filter_narrows_the_trail(trail: Engine) -> None:
    with Session(trail) as s:
        assert len(_search(s)) == 60
        assert {r["actor"] for r in _search(s, actor="user1")} == {"user1@corp.test"}
        assert len(_search(s, actor="user1")) == 20
        assert {r["action"] for r in _search(s, action="merge_step")} == {"merge_step"}
        assert [r["customer_id"] for r in _search(s, customer_id="cus_0007")] == ["cus_0007"]
        assert _search(s, customer_id="cus_001") == []  # customer ids match whole
        assert len(_search(s, actor="user1@corp.test")) == 20
        assert _search(s, actor="user1@corp.tes") == []
        failed = _search(s, result="failed")
        assert len(failed) == 15
        assert all(r["error"] == "boom" for r in failed)
        week = _search(s, since=TODAY - timedelta(days=6), until=TODAY)
        assert len(week) == 7
        both = _search(s, actor="user0", result="succeeded")  # i ≡ 0 mod 3 and i ≡ 1 mod 4
        assert sorted(int(r["customer_id"][4:]) for r in both) == [i for i in range(60) if i % 12 == 9]
        assert _search(s, actor="nobody") == []
        assert audit.audit_actions(session=s) == ["merge_step", "portal_link"]


def test_pages_are_newest_first_and_bounded(trail: Engine) -> None:
    with Session(trail) as s:
        first = audit.search_audit(session=s, filters=audit.AuditFilters(), page=1, page_size=25)
        third = audit.search_audit(session=s, filters=audit.AuditFilters(), page=3, page_size=25)
    assert (len(first.rows), first.has_more, first.total) == (25, True, 60)
    assert (len(third.rows), third.has_more) == (10, False)
    assert first.rows[0]["customer_id"] == "cus_0000"
    assert third.rows[-1]["customer_id"] == "cus_0059"
    stamps = [r["created_at"] for r in first.rows]
    assert stamps == sorted(stamps, reverse=True)


def test_csv_export_has_every_matching_entry_and_is_itself_audited(trail: Engine) -> None:
    filters = audit.AuditFilters(action="portal_link")
    with Session(trail) as s:
        data = audit.export_recorded(session=s, filters=filters, actor="ada@corp.test", role="admin")
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        assert len(rows) == 30
        assert {r["Action"] for r in rows} == {"portal_link"}
        assert list(rows[0]) == [columns.AUDIT[c] for c in audit.AUDIT_COLUMNS]  # the page's column names
        assert rows[0]["Details"].startswith("{")
        entry = s.exec(select(AuditLog).where(AuditLog.action == "export_audit")).one()
    assert (entry.actor, entry.result) == ("ada@corp.test", "succeeded")
    assert entry.details["filters"] == {"action": "portal_link"}


def _audit_page(role: str = "admin") -> AppTest:
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    return at.switch_page("app_pages/audit.py").run()


def test_page_filters_and_pages_through_the_trail(trail: Engine, roles_file: Path) -> None:
    at = _audit_page()
    assert not at.exception
    # Default range: the last 30 days, inclusive (31 entries), 25 to a page.
    assert at.dataframe, [e.value for e in [*at.error, *at.info, *at.warning]]
    assert len(at.dataframe[0].value) == 25
    assert any("31 entries" in c.value for c in at.caption)
    at.button(key="aud_next").click().run()
    assert len(at.dataframe[0].value) == 6
    at.text_input(key="aud_actor").input("user2").run()  # a new filter goes back to page 1
    assert set(at.dataframe[0].value["actor"]) == {"user2@corp.test"}
    assert any("Page 1 " in c.value for c in at.caption)
    at.selectbox(key="aud_result").select("refused").run()
    assert set(at.dataframe[0].value["result"]) == {"refused"}
    at.text_input(key="aud_customer").input("cus_9").run()
    assert not at.dataframe
    assert "No audit entry matches" in at.info[0].value
    assert [b.label for b in at.get("download_button")] == []


def test_page_offers_the_csv_to_admins(trail: Engine, roles_file: Path) -> None:
    at = _audit_page()
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV (all matching entries)"]


def test_half_picked_date_range_asks_for_the_second_date(trail: Engine, roles_file: Path) -> None:
    at = _audit_page()
    at.date_input(key="aud_dates").set_value((TODAY,)).run()
    assert not at.exception
    assert not at.dataframe
    assert "Pick the last day" in at.info[0].value


def test_database_down_is_one_clear_message(roles_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.config import get_settings
    from tests.utils.apptest import PAGES_DIR

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    get_settings.cache_clear()
    at = as_role(AppTest.from_file(str(PAGES_DIR / "audit.py"), default_timeout=30), "admin").run()
    assert not at.exception
    assert "The cache database did not answer" in at.error[0].value
