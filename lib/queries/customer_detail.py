"""One customer's page: the customer, its cards, subscriptions, invoices, open amounts, event timeline, and
merge marks (merged into / merged from, with when and by whom)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlmodel import Session, col

from lib.mapping import valid_customer_id
from lib.models import (
    AuditLog,
    Customer,
    Invoice,
    MergeJob,
    PaymentMethod,
    StripeEvent,
    Subscription,
    SyncState,
)
from lib.queries.new_card import (
    _new_card_columns,
    _with_card_joins,
    new_card_hint,
)
from lib.queries.paging import (
    Page,
    _page,
    _rows,
)
from lib.queries.subscriptions import (
    _items_for,
    mrr_or_none,
)


def get_customer(*, session: Session, customer_id: str) -> dict[str, Any] | None:
    row = session.get(Customer, customer_id)
    return row.model_dump() if row else None


# --- merges: who was merged into whom, when and by whom -------------------------------------------------------


@dataclass(frozen=True)
class MergeMark:
    """A merge seen from one side: `duplicate` was merged into `survivor`; `at`/`by` come from the audit log of
    the merge step that marked it (else its merge job); None when the merge was made outside the dashboard."""

    survivor: str
    duplicate: str
    at: datetime | None = None
    by: str | None = None
    duplicate_label: str = ""  # the duplicate's name or email (for "merged from" lists)


def _merge_marks(session: Session, pairs: list[tuple[str, str]]) -> dict[str, tuple[datetime | None, str | None]]:
    """(when, who) per duplicate id of (duplicate, survivor) pairs: the newest succeeded `mark_duplicate` merge
    step (audit_log, by customer_id), else the newest succeeded merge job; absent when neither exists."""
    if not pairs:
        return {}
    dups = [d for d, _ in pairs]
    wanted = set(pairs)
    found: dict[str, tuple[datetime | None, str | None]] = {}
    steps = (select(col(AuditLog.customer_id), col(AuditLog.object_id), col(AuditLog.created_at), col(AuditLog.actor))
             .where(col(AuditLog.customer_id).in_(dups), col(AuditLog.action) == "merge_step",
                    col(AuditLog.flow) == "mark_duplicate", col(AuditLog.result) == "succeeded")
             .order_by(col(AuditLog.id).desc()).limit(20 * len(dups)))
    for dup, survivor, at, by in session.execute(steps):
        if (dup, survivor) in wanted:
            found.setdefault(dup, (at, by))
    rest = [d for d in dups if d not in found]
    if rest:
        jobs = (select(col(MergeJob.duplicate_id), col(MergeJob.survivor_id), col(MergeJob.finished_at),
                       col(MergeJob.created_by))
                .where(col(MergeJob.duplicate_id).in_(rest), col(MergeJob.status) == "succeeded")
                .order_by(col(MergeJob.created_at).desc()).limit(20 * len(rest)))
        for dup, survivor, at, by in session.execute(jobs):
            if (dup, survivor) in wanted:
                found.setdefault(dup, (at, by))
    return found


def merged_into(*, session: Session, customer_id: str) -> MergeMark | None:
    """Where this customer was merged to (customers.merged_into), with when and by whom; None if it was not."""
    survivor = session.execute(select(col(Customer.merged_into)).where(col(Customer.id) == customer_id)).scalar()
    survivor = valid_customer_id(survivor)
    if survivor is None:
        return None
    at, by = _merge_marks(session, [(customer_id, survivor)]).get(customer_id, (None, None))
    return MergeMark(survivor=survivor, duplicate=customer_id, at=at, by=by)


MERGED_FROM_LIMIT = 50


def merged_from(*, session: Session, customer_id: str, limit: int = MERGED_FROM_LIMIT) -> list[MergeMark]:
    """The customers merged into this one (the ix_customers_merged_into range), oldest id first, at most
    `limit`, each with when and by whom."""
    stmt = (select(col(Customer.id), col(Customer.name), col(Customer.email))
            .where(col(Customer.merged_into) == customer_id).order_by(col(Customer.id)).limit(limit))
    rows = session.execute(stmt).all()
    marks = _merge_marks(session, [(r[0], customer_id) for r in rows])
    return [MergeMark(survivor=customer_id, duplicate=cid, at=marks.get(cid, (None, None))[0],
                      by=marks.get(cid, (None, None))[1], duplicate_label=name or email or "")
            for cid, name, email in rows]


def customer_leftovers(*, session: Session, customer_id: str) -> dict[str, bool]:
    """Whether the cache holds invoices or subscriptions of a customer id that has no customer row (a customer
    deleted in Stripe: its list of customers leaves deleted ones out, their invoices stay). Two index probes."""
    def has(column: Any) -> bool:
        return session.execute(select(column).where(column == customer_id).limit(1)).first() is not None
    return {"invoices": has(col(Invoice.customer_id)), "subscriptions": has(col(Subscription.customer_id))}


def customer_payment_methods(*, session: Session, customer_id: str) -> list[dict[str, Any]]:
    stmt = (select(PaymentMethod).where(col(PaymentMethod.customer_id) == customer_id)
            .order_by(col(PaymentMethod.created).desc()).limit(100))
    return [pm.model_dump() for pm in session.execute(stmt).scalars()]


def customer_subscriptions(*, session: Session, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The customer's subscriptions, newest first, each with its items (price, product, period)."""
    subs = [s.model_dump() for s in session.execute(
        select(Subscription).where(col(Subscription.customer_id) == customer_id)
        .order_by(col(Subscription.created).desc()).limit(limit)).scalars()]
    items = _items_for(session, [s["id"] for s in subs])
    for s in subs:
        s["items"] = items.get(s["id"], [])
        s["mrr"] = mrr_or_none(s["status"], s["mrr"])  # the customer's MRR is the sum of these
    return subs


def customer_invoices(*, session: Session, customer_id: str, page: int = 1, page_size: int = 25) -> Page:
    stmt = (select(col(Invoice.id), col(Invoice.number), col(Invoice.status), col(Invoice.currency),
                   col(Invoice.amount_due), col(Invoice.amount_paid), col(Invoice.amount_remaining),
                   col(Invoice.attempt_count), col(Invoice.decline_code), col(Invoice.failure_code),
                   col(Invoice.failure_message), col(Invoice.next_payment_attempt), col(Invoice.created),
                   col(Invoice.paid_at), col(Invoice.hosted_invoice_url), col(Invoice.subscription_id),
                   *_new_card_columns()).select_from(Invoice))
    stmt = (_with_card_joins(stmt).where(col(Invoice.customer_id) == customer_id)
            .order_by(col(Invoice.created).desc(), col(Invoice.id).desc()))
    result = _page(session, stmt, page, page_size, col(Invoice.id))
    for r in result.rows:
        r["new_card"] = new_card_hint(r)
    return result


def customer_open_amounts(*, session: Session, customer_id: str) -> list[dict[str, Any]]:
    """What the customer owes on open invoices, per currency."""
    stmt = (select(col(Invoice.currency), func.count().label("invoices"),
                   func.sum(col(Invoice.amount_remaining)).label("amount"))
            .where(col(Invoice.customer_id) == customer_id, col(Invoice.status) == "open")
            .group_by(col(Invoice.currency)))
    return _rows(session, stmt)


def customer_timeline(*, session: Session, customer_id: str, object_ids: Iterable[str] = (),
                      limit: int = 30) -> list[dict[str, Any]]:
    """Recent events about the customer or its subscriptions, invoices and cards, newest first."""
    ids = list(dict.fromkeys([customer_id, *object_ids]))[:500]
    stmt = (select(col(StripeEvent.id), col(StripeEvent.type), col(StripeEvent.created), col(StripeEvent.object_id),
                   col(StripeEvent.source))
            .where(col(StripeEvent.object_id).in_(ids)).order_by(col(StripeEvent.created).desc()).limit(limit))
    return [dict(r) for r in session.execute(stmt).mappings()]


def event_history(*, session: Session) -> dict[str, Any]:
    """Whether the sync has listed the account's last 30 days of events into the cache (the timeline's
    history, `lib/sync/history.py`, whose progress is the `events` row of sync_state): `complete`, and when.
    An empty timeline then means no events, not events not fetched yet."""
    state = session.get(SyncState, "events")
    done = state.backfill_completed_at if state is not None else None
    return {"complete": done is not None, "completed_at": done}
