"""The audit trail: one row per attempt, written before the Stripe call and completed after it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from lib.models import AuditLog, utcnow


def start(
    *, session: Session, actor: str, action: str, role: str | None = None, customer_id: str | None = None,
    object_id: str | None = None, flow: str | None = None, details: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> AuditLog:
    """Record an attempt as 'started' and commit it, so a crash mid-call still leaves a trace."""
    row = AuditLog(
        actor=actor, role=role, action=action, customer_id=customer_id, object_id=object_id, flow=flow,
        details=dict(details or {}), correlation_id=correlation_id,
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def finish(
    row: AuditLog, *, session: Session, result: str, error: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Complete an attempt: succeeded, failed or refused, with the user-facing error if any."""
    row.result = result
    row.error = error
    if details:
        row.details = {**row.details, **details}  # a new dict: JSON mutated in place is not saved
    row.created_at = row.created_at or utcnow()
    session.add(row)
    session.commit()
    return row


def record(*, session: Session, actor: str, action: str, result: str, **fields: Any) -> AuditLog:
    """A one-shot entry for actions with no Stripe call (follow-up notes, refused attempts)."""
    row = start(session=session, actor=actor, action=action, **fields)
    return finish(row, session=session, result=result)
