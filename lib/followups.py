"""Finance's follow-up on each failed invoice: a status and a note, with who changed it and when.

The current state lives in `invoice_followups` (one row per invoice); every change is also written to the
audit log (`action="followup"`), which is the history.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from lib.audit import AuditAction, AuditResult
from lib.inputs import nul_problem
from lib.models import AuditLog, Invoice, InvoiceFollowup, utcnow


class FollowupStatus(StrEnum):
    """Where finance stands with a failed invoice (`invoice_followups.status`)."""

    OPEN = "open"
    CONTACTED = "contacted"
    PROMISED = "promised"
    RESOLVED = "resolved"


STATUSES: tuple[str, ...] = tuple(s.value for s in FollowupStatus)  # the page's choices, in this order
MAX_NOTE = 2_000


class FollowupError(ValueError):
    """A follow-up change the user must correct (unknown status, note too long or holding a NUL character,
    unknown invoice)."""


def get(*, session: Session, invoice_id: str) -> InvoiceFollowup | None:
    return session.get(InvoiceFollowup, invoice_id)


def set_followup(
    *, session: Session, invoice_id: str, status: str, note: str, actor: str, role: str | None = None,
) -> InvoiceFollowup:
    """Save the status and note for one invoice and its audit-log entry (the history) in one commit, so a
    failure leaves neither."""
    if status not in STATUSES:
        raise FollowupError(f"Unknown follow-up status {status!r}: choose one of {', '.join(STATUSES)}.")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise FollowupError(f"The note is {len(note)} characters; keep it under {MAX_NOTE}.")
    problem = nul_problem(note)
    if problem:  # PostgreSQL refuses NUL in text: say so here, not as a database that did not answer
        raise FollowupError(f"The note {problem}; remove it (it often comes with pasted text) and save again.")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise FollowupError(f"Invoice {invoice_id} is not in the cache any more; refresh the page.")
    row = session.get(InvoiceFollowup, invoice_id)
    before: dict[str, Any] = {"status": row.status, "note": row.note} if row else {"status": "open", "note": ""}
    if row is None:
        row = InvoiceFollowup(invoice_id=invoice_id, status=status, note=note, updated_by=actor)
    else:
        row.status, row.note, row.updated_by = status, note, actor
    row.updated_at = utcnow()
    session.add(row)
    session.add(AuditLog(actor=actor, role=role, action=AuditAction.FOLLOWUP, result=AuditResult.SUCCEEDED,
                         customer_id=invoice.customer_id, object_id=invoice_id,
                         details={"before": before, "after": {"status": status, "note": note}}))
    session.commit()
    return row


def history(*, session: Session, invoice_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """Earlier follow-up changes of one invoice, newest first (from the audit log)."""
    stmt = (select(AuditLog)
            .where(col(AuditLog.action) == AuditAction.FOLLOWUP, col(AuditLog.object_id) == invoice_id)
            .order_by(col(AuditLog.created_at).desc(), col(AuditLog.id).desc()).limit(limit))
    return [{"when": a.created_at, "who": a.actor, "status": a.details.get("after", {}).get("status"),
             "note": a.details.get("after", {}).get("note")} for a in session.execute(stmt).scalars()]
