"""The Sync page shows how far pass 2 (every customer's complete card list) has come, and nothing once done."""

from __future__ import annotations

from sqlmodel import Session

from lib.models import utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_sync_state


def test_sync_page_shows_pass_2_progress_by_customers_done(session: Session) -> None:
    ids = [make_customer(session, email=f"c{i}@example.com").id for i in range(4)]
    make_sync_state(session, "payment_methods", backfill_started_at=utcnow(), backfill_cursor=sorted(ids)[0])
    at = run_page("sync.py")
    assert not at.exception, at.exception
    assert [p.text for p in at.get("progress")] == ["1 of 4 customers' complete card lists cached"]


def test_sync_page_hides_pass_2_once_complete(session: Session) -> None:
    make_customer(session, email="done@example.com")
    make_sync_state(session, "payment_methods", backfill_started_at=utcnow(), backfill_completed_at=utcnow())
    at = run_page("sync.py")
    assert not at.exception, at.exception
    assert list(at.get("progress")) == []
