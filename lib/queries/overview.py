"""The Overview page: MRR per currency and how many customers, subscriptions and invoices the cache holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
)
from sqlmodel import Session, col

from lib.models import (
    MRR_STATUSES,
    Customer,
    Invoice,
    Subscription,
)
from lib.queries.customers import (
    CustomerFilters,
    _customers_stmt,
)
from lib.queries.paging import (
    Count,
    count_rows,
)
from lib.queries.subscriptions import (
    _totals,
)


def mrr_by_currency(*, session: Session) -> list[dict[str, Any]]:
    """MRR (MRR_STATUSES: active, past due) per currency, from the trigger-kept totals."""
    return _totals(session, statuses=MRR_STATUSES, currency=None, by_status=False)


def table_counts(*, session: Session) -> dict[str, Count]:
    """How many customers (not deleted: the Customers list's default), subscriptions and invoices the cache
    holds, counted as every list counts (`count_rows`): exact when cheap, else an estimate labelled as one
    (`count_label`). So the Overview and the Customers list give the same number for the same rows."""
    statements = {
        "customers": (_customers_stmt(session, CustomerFilters(), [Customer.id]), Customer.id),
        "subscriptions": (select(col(Subscription.id)), Subscription.id),
        "invoices": (select(col(Invoice.id)), Invoice.id),
    }
    return {name: count_rows(session, stmt, key) for name, (stmt, key) in statements.items()}
