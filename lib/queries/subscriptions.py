"""The Subscriptions list: filters, one page with plan names, totals per status and currency (from the
trigger-kept `subscription_totals`), the CSV export, the filter choices; the one MRR rule (`counts_as_mrr`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from sqlalchemy import (
    Select,
    case,
    exists,
    func,
    select,
)
from sqlmodel import Session, col

from lib import columns
from lib.export import stream_csv
from lib.models import (
    MRR_STATUSES,
    Customer,
    Subscription,
    SubscriptionItem,
    SubscriptionTotal,
    utcnow,
)
from lib.money import major
from lib.queries.paging import (
    Page,
    _order,
    _page_by_ids,
    _rows,
    distinct_values,
)

SUBSCRIPTION_STATUSES = (
    "active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused",
)


@dataclass(frozen=True)
class SubscriptionFilters:
    statuses: tuple[str, ...] = ()
    product_id: str | None = None
    price_id: str | None = None
    interval: str | None = None
    currency: str | None = None
    cancel_at_period_end: bool = False
    trial_ending_days: int | None = None
    sort: str = "created"  # created | mrr | current_period_end
    descending: bool = True


SUB_SORTS = {"created": col(Subscription.created), "mrr": col(Subscription.mrr),
             "current_period_end": Subscription.current_period_end}
SUB_COLUMNS = ["id", "customer_id", "customer_email", "status", "currency", "mrr", "current_period_end",
               "cancel_at_period_end", "trial_end", "created"]


def _subs_where(stmt: Select, f: SubscriptionFilters, *, paged: bool = True) -> Select:
    """Apply the filters. Item filters: EXISTS for a page (probed in sort order, stops early), IN for sums
    (which read every match anyway, best started from the item index)."""
    if f.statuses:
        stmt = stmt.where(col(Subscription.status).in_(list(f.statuses)))
    item_conds = []
    if f.product_id:
        item_conds.append(col(SubscriptionItem.product_id) == f.product_id)
    if f.price_id:
        item_conds.append(col(SubscriptionItem.price_id) == f.price_id)
    if f.interval:
        item_conds.append(col(SubscriptionItem.interval) == f.interval)
    if item_conds and paged:
        stmt = stmt.where(exists().where(col(SubscriptionItem.subscription_id) == col(Subscription.id), *item_conds))
    elif item_conds:
        stmt = stmt.where(col(Subscription.id).in_(select(col(SubscriptionItem.subscription_id)).where(*item_conds)))
    if f.currency:
        stmt = stmt.where(col(Subscription.currency) == f.currency.lower())
    if f.cancel_at_period_end:
        stmt = stmt.where(col(Subscription.cancel_at_period_end) == True)  # noqa: E712 — "= true" can use the index
    if f.trial_ending_days is not None:
        now = utcnow()
        stmt = stmt.where(col(Subscription.status) == "trialing", col(Subscription.trial_end) >= now,
                          col(Subscription.trial_end) <= now + timedelta(days=max(0, f.trial_ending_days)))
    return stmt


def counts_as_mrr(status: str | None) -> bool:
    """The one MRR rule: only subscriptions in MRR_STATUSES (active, past due) have MRR; any other shows none."""
    return status in MRR_STATUSES


def mrr_or_none(status: str | None, mrr: int | None) -> int | None:
    """A row's MRR as every table, breakdown and export shows it: None (empty) outside MRR_STATUSES."""
    return int(mrr or 0) if counts_as_mrr(status) else None


# A subscription's MRR column as the pages show it (SQL side of mrr_or_none).
SUB_MRR = case((col(Subscription.status).in_(MRR_STATUSES), col(Subscription.mrr)), else_=None).label("mrr")


def _subs_stmt(f: SubscriptionFilters, *, filtered: bool = True) -> Select:
    stmt = select(col(Subscription.id), col(Subscription.customer_id), col(Customer.email).label("customer_email"),
                  col(Subscription.status), col(Subscription.currency), SUB_MRR,
                  col(Subscription.current_period_end), col(Subscription.cancel_at_period_end),
                  col(Subscription.trial_end), col(Subscription.created)
                  ).outerjoin(Customer, col(Customer.id) == col(Subscription.customer_id))
    order = _order(SUB_SORTS.get(f.sort, col(Subscription.created)), col(Subscription.id), f.descending)
    return (_subs_where(stmt, f) if filtered else stmt).order_by(*order)


def list_subscriptions(*, session: Session, filters: SubscriptionFilters, page: int = 1,
                       page_size: int = 25) -> Page:
    """One page of subscriptions with MRR and their plan names ("Basic × 2, Add-on").

    Two steps, as for the failed worklist: the page's ids are filtered and sorted without the join to
    customers (from a covering index where one fits, e.g. the trial-end or cancel-at-period-end ones),
    then only those rows are read in full and joined. A sort over 25,000 trial matches no longer joins
    25,000 customers first.
    """
    order = _order(SUB_SORTS.get(filters.sort, col(Subscription.created)), col(Subscription.id), filters.descending)
    ids_stmt = _subs_where(select(col(Subscription.id)), filters).order_by(*order)
    result = _page_by_ids(session, ids_stmt, _subs_stmt(filters, filtered=False), col(Subscription.id), page, page_size)
    items = _items_for(session, [r["id"] for r in result.rows])
    for r in result.rows:
        r["plan"] = ", ".join(
            (i["product_name"] or i["product_id"] or i["price_id"] or "?")
            + (f" × {i['quantity']}" if i["quantity"] != 1 else "") for i in items.get(r["id"], []))
        r["interval"] = ", ".join(sorted({i["interval"] for i in items.get(r["id"], []) if i["interval"]}))
    return result


def subscription_totals(*, session: Session, filters: SubscriptionFilters) -> list[dict[str, Any]]:
    """Count and MRR per status and currency for the filtered subscriptions (one row per pair); `mrr` is None
    for a status outside MRR_STATUSES (such rows have no MRR).

    Filtered by status and currency only (the page's default view), the figures come from
    subscription_totals, which triggers keep exact; any other filter sums the matching rows.
    """
    if filters == SubscriptionFilters(statuses=filters.statuses, currency=filters.currency,
                                      sort=filters.sort, descending=filters.descending):
        rows = _totals(session, statuses=filters.statuses, currency=filters.currency, by_status=True)
    else:
        stmt = select(col(Subscription.status), col(Subscription.currency), func.count().label("count"),
                      func.coalesce(func.sum(col(Subscription.mrr)), 0).label("mrr"))
        stmt = _subs_where(stmt, filters, paged=False).group_by(col(Subscription.status), col(Subscription.currency))
        rows = _rows(session, stmt.order_by(col(Subscription.status), col(Subscription.currency)))
    return [{**r, "mrr": mrr_or_none(r["status"], r["mrr"])} for r in rows]


def export_subscriptions_csv(*, session: Session, filters: SubscriptionFilters) -> IO[bytes]:
    """Every matching subscription as CSV, streamed: the page's column names, MRR in major units."""
    def money(r: dict) -> dict:
        return {**r, "mrr": major(r["mrr"], r["currency"])}

    return stream_csv(session, _subs_stmt(filters), SUB_COLUMNS, transform=money, headers=columns.SUBSCRIPTIONS)


def subscription_choices(*, session: Session) -> dict[str, list[tuple[str, str]]]:
    """Products, prices and currencies to filter by: [(id, label)] each, read through their indexes."""
    product_ids = distinct_values(session, col(SubscriptionItem.product_id), limit=500)
    names = {p: session.execute(select(col(SubscriptionItem.product_name)).where(
        col(SubscriptionItem.product_id) == p, col(SubscriptionItem.product_name).is_not(None)).limit(1)).scalar()
        for p in product_ids}  # one index probe per product
    return {
        "products": [(p, f"{names[p]} ({p})" if names.get(p) else p) for p in product_ids],
        "prices": [(p, p) for p in distinct_values(session, SubscriptionItem.price_id, limit=500)],
        "currencies": [(r["currency"], r["currency"].upper()) for r in _totals(  # no subscriptions.currency index
            session, statuses=(), currency=None, by_status=False) if r["currency"]],
    }


def _items_for(session: Session, sub_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not sub_ids:
        return out
    for item in session.execute(select(SubscriptionItem).where(col(SubscriptionItem.subscription_id).in_(sub_ids))
                                .order_by(col(SubscriptionItem.id))).scalars():
        out.setdefault(item.subscription_id, []).append(item.model_dump())
    return out


def _totals(session: Session, *, statuses: Iterable[str], currency: str | None,
            by_status: bool) -> list[dict[str, Any]]:
    """Count and MRR from subscription_totals (a few dozen rows), grouped per currency (and status).

    Labels match the row-summing queries: `count` and `mrr` per status and currency, or `subscriptions`
    and `mrr` per currency; the '' currency key is a subscription without a currency (None).
    """
    t = SubscriptionTotal
    cur = func.nullif(col(t.currency), "").label("currency")
    keys = [col(t.status), cur] if by_status else [cur]
    n = func.sum(col(t.subscriptions)).label("count" if by_status else "subscriptions")
    stmt = select(*keys, n, func.sum(col(t.mrr)).label("mrr")).where(col(t.subscriptions) > 0)
    statuses = list(statuses)
    if statuses:
        stmt = stmt.where(col(t.status).in_(statuses))
    if currency:
        stmt = stmt.where(col(t.currency) == currency.lower())
    stmt = stmt.group_by(*keys).order_by(*keys)
    return _rows(session, stmt)
