"""The Duplicates page's reads: customers merged since a scan began, and a customer's cluster by search text."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlmodel import Session, col

from lib.models import (
    Customer,
)
from lib.queries.customers import (
    CustomerFilters,
    _customers_stmt,
)


def merged_since(*, session: Session, since: datetime, limit: int = 10_000) -> set[str]:
    """Ids of customers marked merged whose cached row changed since `since` (the duplicates page drops them
    from a scan made before): the merged-into index range, usually a handful of rows."""
    stmt = (select(col(Customer.id)).where(col(Customer.merged_into).is_not(None), col(Customer.synced_at) >= since)
            .limit(limit))
    return {r[0] for r in session.execute(stmt)}


def customer_ids_matching(*, session: Session, text: str, limit: int = 200) -> list[str]:
    """Customers the search box would find for `text` (id, email, phone, card last 4 or name), at most
    `limit`, deleted ones included (raises SearchError on unusable text)."""
    f = CustomerFilters(q=text, include_deleted=True)
    stmt = _customers_stmt(session, f, columns=[col(Customer.id)]).limit(limit)
    return [r[0] for r in session.execute(stmt)]
