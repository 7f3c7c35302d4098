"""The audit trail: one row per attempt, written before the Stripe call and completed after it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import IO, Any

from sqlalchemy import Select, select
from sqlmodel import Session, col

from lib.inputs import nul_problem
from lib.models import AuditLog, utcnow


class AuditResult(StrEnum):
    """`audit_log.result`: a row is written 'started' before a Stripe call and completed after it."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"  # the role may not do it (checked when the action runs)


class AuditAction(StrEnum):
    """`audit_log.action`: what was attempted (the role matrix's actions, each merge stage, each export)."""

    PORTAL_LINK = "portal_link"
    BULK_PORTAL_LINKS = "bulk_portal_links"
    FOLLOWUP = "followup"
    RETRY_INVOICE = "retry_invoice"
    REFRESH = "refresh"
    MERGE = "merge"  # a refused merge action (any stage)
    MERGE_PLANNED = "merge_planned"
    MERGE_PREFLIGHT = "merge_preflight"
    MERGE_STEP = "merge_step"
    MERGE_STOPPED = "merge_stopped"
    MERGE_ABANDONED = "merge_abandoned"
    MERGE_VERIFY = "merge_verify"
    EXPORT_AUDIT = "export_audit"
    EXPORT_CUSTOMERS = "export_customers"
    EXPORT_SUBSCRIPTIONS = "export_subscriptions"
    EXPORT_FAILED_INVOICES = "export_failed_invoices"
    EXPORT_PORTAL_LINKS = "export_portal_links"


def start(
    *, session: Session, actor: str, action: AuditAction | str, role: str | None = None, customer_id: str | None = None,
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
    row: AuditLog, *, session: Session, result: AuditResult, error: str | None = None,
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


def record(*, session: Session, actor: str, action: AuditAction | str, result: AuditResult,
           **fields: Any) -> AuditLog:
    """A one-shot entry for actions with no Stripe call (follow-up notes, refused attempts)."""
    row = start(session=session, actor=actor, action=action, **fields)
    return finish(row, session=session, result=result)


# --- reading the trail (the Audit log page) ------------------------------------------------------
# (added by the access engineer: filters, server-side paging and CSV export for admins)

RESULTS: tuple[str, ...] = tuple(r.value for r in AuditResult)  # the page's filter choices
AUDIT_COLUMNS = ["created_at", "actor", "role", "action", "customer_id", "object_id", "flow", "result", "error",
                 "correlation_id", "details"]


class AuditFilterError(ValueError):
    """A filter value the database cannot compare (a NUL character); the message names the filter."""


FILTER_LABELS = {"actor": "Actor", "action": "Action", "customer_id": "Customer", "result": "Result"}


@dataclass(frozen=True)
class AuditFilters:
    """Empty strings and None mean "any". A whole email or customer id matches exactly, the beginning of an
    email by prefix; dates are whole UTC days. Text holding a NUL character raises AuditFilterError."""

    actor: str = ""
    action: str = ""
    customer_id: str = ""
    result: str = ""
    since: date | None = None
    until: date | None = None  # inclusive

    def __post_init__(self) -> None:
        for name, label in FILTER_LABELS.items():
            problem = nul_problem(getattr(self, name) or "")
            if problem:
                raise AuditFilterError(f"The {label} filter {problem}; remove it and search again.")


def _audit_stmt(session: Session, f: AuditFilters) -> Select:
    from lib.queries import _day_start, _prefix  # the pages' index-friendly prefix match and day bounds

    cols = [getattr(AuditLog, c) for c in AUDIT_COLUMNS]
    stmt = select(col(AuditLog.id), *cols).select_from(AuditLog)  # keeps FROM when the count drops the columns
    # A whole email or customer id is matched exactly (a plain index answers it on both databases); the
    # beginning of an email ("ada", "ada@") by prefix.
    actor = f.actor.strip()
    if actor and "@" in actor and "." in actor.rsplit("@", 1)[1]:
        stmt = stmt.where(col(AuditLog.actor) == actor)
    elif actor:
        stmt = stmt.where(_prefix(session, AuditLog.actor, actor))
    if f.customer_id.strip():
        stmt = stmt.where(col(AuditLog.customer_id) == f.customer_id.strip())
    if f.action:
        stmt = stmt.where(col(AuditLog.action) == f.action)
    if f.result:
        stmt = stmt.where(col(AuditLog.result) == f.result)
    if f.since:
        stmt = stmt.where(col(AuditLog.created_at) >= _day_start(f.since))
    if f.until:
        stmt = stmt.where(col(AuditLog.created_at) < _day_start(f.until + timedelta(days=1)))
    return stmt.order_by(col(AuditLog.created_at).desc(), col(AuditLog.id).desc())


def search_audit(*, session: Session, filters: AuditFilters, page: int = 1, page_size: int = 25) -> Any:
    """One page of audit entries, newest first, with a bounded total (lib.queries.Page)."""
    from lib.queries import _page

    return _page(session, _audit_stmt(session, filters), page, page_size)


def audit_actions(*, session: Session) -> list[str]:
    """The action names present in the trail, for the filter's choices (an indexed DISTINCT)."""
    return list(session.execute(select(col(AuditLog.action)).distinct().order_by(col(AuditLog.action))).scalars())


def export_audit_csv(*, session: Session, filters: AuditFilters) -> IO[bytes]:
    """Every entry matching `filters` as CSV, streamed in batches (details as JSON text)."""
    import json

    from lib import columns
    from lib.export import stream_csv

    def row(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "details": json.dumps(r["details"] or {})}

    return stream_csv(session, _audit_stmt(session, filters), AUDIT_COLUMNS, transform=row, headers=columns.AUDIT)


def filters_used(filters: Any) -> dict[str, Any]:
    """The filters an export ran with, as the audit row stores them: only those set, as text."""
    items = filters.items() if isinstance(filters, dict) else vars(filters).items()
    return {k: (list(map(str, v)) if isinstance(v, tuple | list | set | frozenset) else str(v))
            for k, v in items if v not in (None, "", False, (), [])}


def recorded_export(
    *, session: Session, actor: str, role: str | None, action: AuditAction, page: str, filters: Any,
    make: Callable[[], IO[bytes]],
) -> bytes:
    """The one path every CSV export takes: make the file, then leave an audit row saying who exported what
    (`action`, e.g. "export_customers"), from which page, with which filters, and how many rows. A file
    that cannot be made leaves a `failed` row and the error is raised on."""
    from lib.export import count_rows

    used = filters_used(filters)
    try:
        out = make()
        with out:
            data = out.read()
    except Exception as exc:
        record(session=session, actor=actor, role=role, action=action, result=AuditResult.FAILED,
               details={"page": page, "filters": used, "error": type(exc).__name__})
        raise
    rows = getattr(out, "rows", None)
    record(session=session, actor=actor, role=role, action=action, result=AuditResult.SUCCEEDED,
           details={"page": page, "filters": used, "rows": count_rows(data) if rows is None else rows,
                    "bytes": len(data)})
    return data


def export_recorded(*, session: Session, filters: AuditFilters, actor: str, role: str | None = None) -> bytes:
    """The CSV an admin downloads; exporting the trail is itself an entry in the trail."""
    return recorded_export(session=session, actor=actor, role=role, action=AuditAction.EXPORT_AUDIT, page="audit",
                           filters=filters, make=lambda: export_audit_csv(session=session, filters=filters))
