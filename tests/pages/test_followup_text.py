"""A follow-up note the database cannot store (a NUL character, e.g. from pasted text) is refused by name,
on SQLite and PostgreSQL alike, and nothing is written."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from lib import followups
from lib.models import AuditLog, InvoiceFollowup
from tests.utils.factories import make_customer, make_failed_invoice


def test_a_note_with_nul_is_refused_and_nothing_is_written(session: Session) -> None:
    invoice = make_failed_invoice(session, make_customer(session))
    with pytest.raises(followups.FollowupError) as err:
        followups.set_followup(session=session, invoice_id=invoice.id, status="contacted",
                               note="called\x00 them", actor="fin@example.com")
    assert "contains a character that cannot be stored (NUL)" in str(err.value)
    session.rollback()
    assert session.get(InvoiceFollowup, invoice.id) is None
    assert session.exec(select(AuditLog)).all() == []


def test_a_note_without_nul_is_saved(session: Session) -> None:
    invoice = make_failed_invoice(session, make_customer(session))
    followups.set_followup(session=session, invoice_id=invoice.id, status="contacted", note="called them\ttoday",
                           actor="fin@example.com")
    assert session.get(InvoiceFollowup, invoice.id).note == "called them\ttoday"
