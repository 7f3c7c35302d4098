"""The Failed invoices page: the worklist (one page, one invoice, CSV), its breakdowns by currency, decline
code and age, the filter choices, and the recovery chart and rates. Money is never summed across currencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from sqlalchemy import (
    Select,
    and_,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from lib import columns
from lib.declines import explain
from lib.export import stream_csv
from lib.models import (
    Invoice,
    InvoiceFollowup,
    InvoiceRecoveryDaily,
    utcnow,
)
from lib.money import major
from lib.queries.new_card import (
    _new_card_columns,
    _with_card_joins,
    new_card_condition,
    new_card_hint,
)
from lib.queries.paging import (
    Page,
    _order,
    _page_by_ids,
    _rows,
)

AGE_BUCKETS = ("0–7 days", "8–30 days", "31–60 days", "over 60 days")
_MONDAY = 3 * 86400  # epoch weeks start on Thursday; shift them to start on Monday

@dataclass(frozen=True)
class FailedFilters:
    decline_code: str | None = None
    currency: str | None = None
    status: str | None = None  # open | uncollectible
    followup: str | None = None  # open | contacted | promised | resolved
    age: str | None = None  # one of AGE_BUCKETS
    new_card: bool = False  # only invoices whose customer has a new card since the failure (`new_card_condition`)
    sort: str = "amount"  # amount | created | next_retry
    descending: bool = True


FAILED_COLUMNS = ["id", "customer_id", "customer_email", "number", "status", "currency", "amount_remaining",
                  "amount_due", "attempt_count", "code", "meaning", "next_step", "next_payment_attempt",
                  "created", "age_days", "hosted_invoice_url", "followup_status", "followup_note",
                  "followup_by", "followup_at", "new_card"]
_CODE = func.coalesce(col(Invoice.decline_code), col(Invoice.failure_code), "")


def _failed_base() -> ColumnElement[bool]:
    """Open invoices with at least one failed attempt, and uncollectible ones.

    Written as `status IN (…)` plus a filter (no OR) so both databases read it from ix_invoices_status_attempt
    alone (an OR of two index ranges would make SQLite fetch every table row).
    """
    return and_(col(Invoice.status).in_(["open", "uncollectible"]),
                col(Invoice.attempt_count) >= case((col(Invoice.status) == "uncollectible", 0), else_=1))


def _age_bounds(bucket: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    edges = {AGE_BUCKETS[0]: (7, None), AGE_BUCKETS[1]: (30, 7), AGE_BUCKETS[2]: (60, 30),
             AGE_BUCKETS[3]: (None, 60)}
    older, newer = edges[bucket]
    return (now - timedelta(days=older) if older else None, now - timedelta(days=newer) if newer else None)


def _failed_where(stmt: Select, f: FailedFilters, now: datetime) -> Select:
    stmt = stmt.where(_failed_base())
    if f.new_card:
        stmt = stmt.where(new_card_condition())
    if f.decline_code is not None:
        stmt = stmt.where(_CODE == f.decline_code)
    if f.currency:
        stmt = stmt.where(col(Invoice.currency) == f.currency.lower())
    if f.status:
        stmt = stmt.where(col(Invoice.status) == f.status)
    if f.followup == "open":
        stmt = stmt.where(or_(col(InvoiceFollowup.status).is_(None), col(InvoiceFollowup.status) == "open"))
    elif f.followup:
        stmt = stmt.where(col(InvoiceFollowup.status) == f.followup)
    if f.age in AGE_BUCKETS:
        lo, hi = _age_bounds(f.age, now)
        if lo:
            stmt = stmt.where(col(Invoice.created) >= lo)
        if hi:
            stmt = stmt.where(col(Invoice.created) < hi)
    return stmt


def _failed_from(stmt: Select, f: FailedFilters | None = None) -> Select:
    """FROM invoices, joined to their follow-ups and to the card a retry would charge when the rows show them
    or the filter needs them."""
    stmt = stmt.select_from(Invoice)
    if f is None or f.followup:
        stmt = stmt.outerjoin(InvoiceFollowup, col(InvoiceFollowup.invoice_id) == col(Invoice.id))
    if f is None or f.new_card:
        stmt = _with_card_joins(stmt)
    return stmt


FAILED_SORTS = {"amount": col(Invoice.amount_remaining), "created": col(Invoice.created),
                "next_retry": Invoice.next_payment_attempt}


def _failed_select(*extra: Any) -> Select:
    """The worklist's columns (plus `extra`) from invoices with their follow-ups and new-card joins."""
    return _failed_from(select(
        col(Invoice.id), col(Invoice.customer_id), col(Invoice.customer_email), col(Invoice.number),
        col(Invoice.status), col(Invoice.currency), col(Invoice.amount_remaining), col(Invoice.amount_due),
        col(Invoice.attempt_count),
        _CODE.label("code"), col(Invoice.failure_message), col(Invoice.next_payment_attempt), col(Invoice.created),
        col(Invoice.hosted_invoice_url), col(InvoiceFollowup.status).label("followup_status"),
        col(InvoiceFollowup.note).label("followup_note"), col(InvoiceFollowup.updated_by).label("followup_by"),
        col(InvoiceFollowup.updated_at).label("followup_at"), *_new_card_columns(), *extra))


def _failed_stmt(f: FailedFilters, now: datetime) -> Select:
    stmt = _failed_select()
    order = _order(FAILED_SORTS.get(f.sort, col(Invoice.amount_remaining)), col(Invoice.id), f.descending)
    return _failed_where(stmt, f, now).order_by(*order)


def _decorate_failed(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    d = explain(r["code"])
    r["meaning"], r["next_step"] = d.meaning, d.next_step
    r["followup_status"] = r["followup_status"] or "open"
    r["followup_note"] = r["followup_note"] or ""
    r["age_days"] = (now - r["created"]).days if r["created"] else None
    r["new_card"] = new_card_hint(r)
    return r


def failed_invoices(*, session: Session, filters: FailedFilters, page: int = 1, page_size: int = 25,
                    now: datetime | None = None) -> Page:
    """One page of the failed-payment worklist with decline meaning, next retry and follow-up."""
    now = now or utcnow()
    order = _order(FAILED_SORTS.get(filters.sort, col(Invoice.amount_remaining)), col(Invoice.id), filters.descending)
    # 1) the page's ids, sorted inside the covering index; 2) their full rows (the table read 26 times)
    ids_stmt = _failed_where(_failed_from(select(col(Invoice.id)), filters), filters, now).order_by(*order)
    result = _page_by_ids(session, ids_stmt, _failed_stmt(filters, now), col(Invoice.id), page, page_size)
    for r in result.rows:
        _decorate_failed(r, now)
    return result


def worklist_invoice(*, session: Session, invoice_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """One invoice by id as a worklist row (with `subscription_id`, and `on_worklist`: whether the failed
    worklist lists it, i.e. open after a failed attempt or uncollectible), or None when the cache lacks it.
    Any cached invoice is returned: finance may note a follow-up on one that has just been paid."""
    now = now or utcnow()
    stmt = _failed_select(col(Invoice.subscription_id)).where(col(Invoice.id) == invoice_id)
    rows = _rows(session, stmt.limit(1))
    if not rows:
        return None
    r = _decorate_failed(rows[0], now)
    r["on_worklist"] = r["status"] == "uncollectible" or (r["status"] == "open" and (r["attempt_count"] or 0) > 0)
    return r


def export_failed_csv(*, session: Session, filters: FailedFilters) -> IO[bytes]:
    now = utcnow()

    def row(r: dict) -> dict:
        r = _decorate_failed(r, now)
        return {**r, "amount_remaining": major(r["amount_remaining"], r["currency"]),
                "amount_due": major(r["amount_due"], r["currency"])}

    return stream_csv(session, _failed_stmt(filters, now), FAILED_COLUMNS, transform=row,
                      headers=columns.FAILED_INVOICES)


def at_risk_by_currency(*, session: Session, filters: FailedFilters | None = None) -> list[dict[str, Any]]:
    """Money at risk (amount remaining) and invoice count per currency: never one cross-currency sum."""
    f = filters or FailedFilters()
    stmt = _failed_from(select(col(Invoice.currency), func.count().label("invoices"),
                               func.sum(col(Invoice.amount_remaining)).label("amount")), f)
    stmt = _failed_where(stmt, f, utcnow()).group_by(col(Invoice.currency))
    return _rows(session, stmt.order_by(col(Invoice.currency)))


def failed_by_decline_code(*, session: Session, filters: FailedFilters | None = None) -> list[dict[str, Any]]:
    """Per decline code and currency: invoices, amount at risk, meaning and next step."""
    f = filters or FailedFilters()
    stmt = _failed_from(select(_CODE.label("code"), col(Invoice.currency), func.count().label("invoices"),
                               func.sum(col(Invoice.amount_remaining)).label("amount")), f)
    stmt = _failed_where(stmt, f, utcnow()).group_by(_CODE, col(Invoice.currency))
    rows = _rows(session, stmt.order_by(func.count().desc()))
    for r in rows:
        d = explain(r["code"])
        r["code"], r["meaning"], r["next_step"] = d.code, d.meaning, d.next_step
    return rows


def failed_by_age(*, session: Session, filters: FailedFilters | None = None) -> list[dict[str, Any]]:
    """Per age bucket (since the invoice was created) and currency: invoices and amount at risk."""
    now = utcnow()
    bucket = case(
        (col(Invoice.created) >= now - timedelta(days=7), AGE_BUCKETS[0]),
        (col(Invoice.created) >= now - timedelta(days=30), AGE_BUCKETS[1]),
        (col(Invoice.created) >= now - timedelta(days=60), AGE_BUCKETS[2]),
        else_=AGE_BUCKETS[3],
    )
    f = filters or FailedFilters()
    stmt = _failed_from(select(bucket.label("age"), col(Invoice.currency), func.count().label("invoices"),
                               func.sum(col(Invoice.amount_remaining)).label("amount")), f)
    stmt = _failed_where(stmt, f, now).group_by(bucket, col(Invoice.currency))
    rows = _rows(session, stmt)
    return sorted(rows, key=lambda r: (AGE_BUCKETS.index(r["age"]), r["currency"]))


def decline_codes(*, session: Session) -> list[str]:
    """Codes present in the failed worklist (for the filter box)."""
    stmt = select(_CODE).where(_failed_base()).group_by(_CODE).order_by(_CODE).limit(200)
    return [r[0] for r in session.execute(stmt)]


def failed_currencies(*, session: Session) -> list[str]:
    """Currencies present in the failed worklist (for the filter box); an invoice without one adds nothing."""
    stmt = (select(col(Invoice.currency))
            .where(_failed_base(), col(Invoice.currency).is_not(None), col(Invoice.currency) != "")
            .group_by(col(Invoice.currency)).order_by(col(Invoice.currency)))
    return [r[0] for r in session.execute(stmt)]


@dataclass(frozen=True)
class Recovery:
    weekly: list[dict[str, Any]] = field(default_factory=list)  # week, currency, kind, amount
    rates: list[dict[str, Any]] = field(default_factory=list)  # currency, failed, recovered, rate
    monthly: list[dict[str, Any]] = field(default_factory=list)  # month, currency, failed, recovered, rate


def _month_start(d: date, back: int = 0) -> date:
    """The first day of `d`'s month, `back` months earlier."""
    m = d.year * 12 + d.month - 1 - back
    return date(m // 12, m % 12 + 1, 1)


def recovery(*, session: Session, currency: str | None = None, weeks: int = 52, months: int = 12,
             now: datetime | None = None) -> Recovery:
    """Failed vs recovered money: the weekly cash view for the chart, and the recovery rate by month of failure.

    weekly: over the last `weeks` weeks (from the UTC day of `now - weeks`), amounts that failed (invoices with
    a failed attempt, still open/uncollectible or paid after more than one attempt: amount_due, by the week
    they were created) and that were recovered (paid after a failed attempt: amount_paid, by the week paid).
    monthly: per currency and UTC month of failure (invoice creation) over the last `months` months, this
    month included: rate = amount recovered, whenever paid, of the invoices that failed that month ÷ amount
    failed that month (the cohort rate dunning tools report; a recent month still rises as retries pay).
    rates: the same per currency over those months together. Never across currencies. Read from
    invoice_recovery_daily (kept by triggers on `invoices`), never from the invoices themselves.
    """
    now = now or utcnow()
    since = now - timedelta(weeks=weeks)
    week0 = (int(since.timestamp()) + _MONDAY) // 604800
    month0 = _month_start(now.astimezone(UTC).date(), months - 1)
    daily = InvoiceRecoveryDaily
    stmt = select(col(daily.day), col(daily.currency), col(daily.kind), col(daily.amount)).where(
        col(daily.day) >= min(since.astimezone(UTC).date(), month0),
        col(daily.invoices) > 0)  # rows of 0 invoices: skipped
    if currency:
        stmt = stmt.where(col(daily.currency) == currency.lower())
    weekly: list[dict[str, Any]] = []
    cohorts: dict[tuple[str, date], dict[str, int]] = {}
    for d, c, kind, amount in session.execute(stmt):
        day, amount = _as_date(d), int(amount or 0)
        if kind in ("failed", "recovered_cohort") and day >= month0:
            cohort = cohorts.setdefault((c, _month_start(day)), {"failed": 0, "recovered": 0})
            cohort["failed" if kind == "failed" else "recovered"] += amount
        if kind == "recovered_cohort":
            continue
        w = (day.toordinal() - _EPOCH_ORDINAL + 3) // 7  # epoch week, Monday-based
        if w < week0:
            continue
        start = datetime.fromtimestamp(w * 604800 - _MONDAY, UTC).date()
        weekly.append({"week": start, "currency": c, "kind": kind, "amount": amount})
    monthly: list[dict[str, Any]] = [{"month": m, "currency": c, **t, "rate": _rate(t)}
                                     for (c, m), t in sorted(cohorts.items())]
    totals: dict[str, dict[str, int]] = {}
    for r in monthly:
        t = totals.setdefault(r["currency"], {"failed": 0, "recovered": 0})
        t["failed"] += r["failed"]
        t["recovered"] += r["recovered"]
    rates = [{"currency": c, **t, "rate": _rate(t)} for c, t in sorted(totals.items())]
    return Recovery(weekly=sorted(_merge_weeks(weekly), key=lambda r: (r["week"], r["currency"], r["kind"])),
                    rates=rates, monthly=monthly)


def _rate(t: dict[str, int]) -> float | None:
    return t["recovered"] / t["failed"] if t["failed"] else None


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _merge_weeks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (week, currency, kind): a week's days folded together."""
    merged: dict[tuple, int] = {}
    for r in rows:
        key = (r["week"], r["currency"], r["kind"])
        merged[key] = merged.get(key, 0) + r["amount"]
    return [{"week": w, "currency": c, "kind": k, "amount": a} for (w, c, k), a in merged.items()]
