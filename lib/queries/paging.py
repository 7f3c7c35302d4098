"""What every list query shares: pages, sorting, counting (exact when cheap, else estimated) and the few
dialect differences.

Rules: never load a whole table; a page fetches `page_size + 1` rows (to know whether there is a next
page); totals are exact when counting them is cheap (at most `EXACT_COUNT_LIMIT` rows within `COUNT_BUDGET_MS`)
and estimated otherwise (`count_rows`, shown as "about 1.2 M"), so a broad filter over a million rows stays fast.
The same SQL runs on SQLite and PostgreSQL (the few dialect differences are here: `_prefix`, `_count_within`
and `_estimate_count`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from time import perf_counter
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

COUNT_CAP = 1_000  # "1,000+": the bound of a count that cannot be estimated (the audit log; see count_rows)
# Totals are exact when they are cheap: up to FIRST_COUNT always; past it the count stops at
# EXACT_COUNT_LIMIT matching rows and at COUNT_BUDGET_MS of database time, and past either an estimate is shown
# ("about 1.2 M"). Counting 100,000 index entries takes ~5–30 ms at 1M customers; a filter that must read table
# rows or probe another table per customer (one currency, a subscription status) takes 0.1–8 s for 100,000 —
# hence the time budget too (docs/performance.md, "Counts and search by company").
EXACT_COUNT_LIMIT = 100_000
COUNT_BUDGET_MS = 20
FIRST_COUNT = 1_000  # counted first, without a budget: a result this small is always exact (the old cap's cost)
# SQLite's estimate: the share of matching rows among the first ESTIMATE_SAMPLE primary keys, times the
# table's size. Stripe ids are random, so the first ids in order are a uniform sample of the table.
# PostgreSQL's: the planner's row estimate (EXPLAIN).
ESTIMATE_SAMPLE = 5_000
PAGE_SIZES = (25, 50, 100)


def approx_count(n: int) -> str:
    """An estimated count as a person reads it: 'about 1.2 M', 'about 150,000', 'about 940' — two significant
    digits (half rounds up), never more precise than an estimate is; millions and billions with M / G."""
    n = max(0, int(n))
    if n == 0:
        return "about 0"
    digits = len(str(n))
    step = 10 ** max(0, digits - 2)
    rounded = (n + step // 2) // step * step
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M")):
        if rounded >= size:
            value = f"{rounded / size:.1f}".removesuffix(".0")
            return f"about {value} {unit}"
    return f"about {rounded:,}"


@dataclass(frozen=True)
class Page:
    """One page of rows plus its total: exact; at least `total` (`total_capped`); or an estimate
    (`total_estimated`: see count_rows)."""

    rows: list[dict[str, Any]]
    page: int
    page_size: int
    has_more: bool
    total: int | None = None
    total_capped: bool = False
    total_estimated: bool = False

    @property
    def total_label(self) -> str:
        """'12,345' (exact), 'about 1.2 M' (estimated) or '10,000+' (a lower bound)."""
        if self.total is None:
            return ""
        return count_label(Count(self.total, estimated=self.total_estimated, capped=self.total_capped))


def _rows(session: Session, stmt: Select, ints: tuple[str, ...] = ("amount", "mrr", "count", "invoices",
                                                                    "subscriptions")) -> list[dict[str, Any]]:
    """Result rows as dicts, sums as int on both databases (PostgreSQL returns SUM(bigint) as Decimal)."""
    out = []
    for r in session.execute(stmt).mappings():
        d = dict(r)
        for k in ints:
            if d.get(k) is not None:
                d[k] = int(d[k])
        out.append(d)
    return out


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(session: Session, column: Any, value: str) -> ColumnElement[bool]:
    """`column` starts with `value`, in a form each database answers from a b-tree index.

    SQLite's LIKE is case-insensitive and skips the index, so it gets a range; PostgreSQL's LIKE 'x%' uses
    the text_pattern_ops index declared in lib/models.py.
    """
    if _dialect(session) == "sqlite":
        return and_(column >= value, column < value + "\U0010ffff")
    return column.like(_escape_like(value) + "%", escape="\\")


def _bounded_count(session: Session, stmt: Select, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many rows `stmt` matches, counting at most cap+1 of them: (count, capped)."""
    # maintain_column_froms: a statement with no WHERE would otherwise lose its table and count 1 row.
    sub = stmt.with_only_columns(literal(1), maintain_column_froms=True).order_by(None).limit(cap + 1).subquery()
    n = session.execute(select(func.count()).select_from(sub)).scalar_one()
    return (cap, True) if n > cap else (n, False)


@dataclass(frozen=True)
class Count:
    """How many rows a filter matches: exact; an estimate (too many, or too slow, to count); or at least
    `value` (`capped`: a count that cannot be estimated, see count_rows)."""

    value: int
    estimated: bool = False
    capped: bool = False


def count_rows(session: Session, stmt: Select, id_column: Any | None, *, limit: int | None = None,
               sample: int | None = None, budget_ms: int | None = None, at_least: int = 0) -> Count:
    """The rows `stmt` matches: exact when that is cheap, else an estimate (`_estimate_count`) never below what
    is known (past a count's cap, cap + 1; the rows the caller has already seen, `at_least`).

    Steps: (1) count up to FIRST_COUNT (1,000, what every list always counted): most searches end here, exact;
    (2) estimate; (3) when the estimate is within twice `limit` (EXACT_COUNT_LIMIT), count up to the limit within
    `budget_ms` (COUNT_BUDGET_MS) of database time: exact if it gets to the end. A broad filter over a million
    rows thus costs a 1,000-row count and an estimate, never a 100,000-row count; a sparse one that would walk
    the table to count its matches is stopped by the budget. The same statements on SQLite and PostgreSQL; how a
    count is stopped (`_count_within`) and how it is estimated (`_estimate_count`) differ by database.

    `id_column` is the primary key of the table `stmt` lists, whose ids must be random for SQLite's estimate
    (Stripe ids); None for a table whose ids follow time (the audit log): its count stays bounded as before,
    "1,000+" (COUNT_CAP) past 1,000."""
    if id_column is None:
        n, over = _bounded_count(session, stmt, cap=COUNT_CAP)
        return Count(COUNT_CAP, capped=True) if over else Count(n)
    limit = EXACT_COUNT_LIMIT if limit is None else limit
    first_cap = min(limit, FIRST_COUNT)
    n, over = _bounded_count(session, stmt, cap=first_cap)
    if not over:
        return Count(n)
    estimate = _estimate_count(session, stmt, id_column, ESTIMATE_SAMPLE if sample is None else sample)
    floor = first_cap + 1
    if limit > first_cap and estimate <= 2 * limit:
        counted = _count_within(session, stmt, limit, COUNT_BUDGET_MS if budget_ms is None else budget_ms)
        if counted is not None and not counted[1]:
            return Count(counted[0])
        floor = limit + 1 if counted is not None else floor
    return Count(max(floor, at_least, estimate), estimated=True)


def _count_within(session: Session, stmt: Select, cap: int, budget_ms: float) -> tuple[int, bool] | None:
    """`_bounded_count`, or None when the database spent more than `budget_ms` on it and stopped.

    PostgreSQL: `statement_timeout` set for this statement only, inside a savepoint (a cancelled statement
    rolls back to it, which also restores the setting). SQLite: a progress handler, called every few
    thousand virtual-machine steps, interrupts the statement once the time is up (a read leaves the
    transaction as it was)."""
    budget_ms = max(1, int(budget_ms))
    if _dialect(session) == "postgresql":
        try:
            with session.begin_nested():
                before = session.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
                session.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(budget_ms)})
                counted = _bounded_count(session, stmt, cap=cap)
                session.execute(text("SELECT set_config('statement_timeout', :v, true)"), {"v": before})
            return counted
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled: the budget ran out
                return None
            raise
    raw: Any = session.connection().connection.driver_connection  # sqlite3.Connection here
    deadline = perf_counter() + budget_ms / 1000
    raw.set_progress_handler(lambda: int(perf_counter() > deadline), 2_000)
    try:
        return _bounded_count(session, stmt, cap=cap)
    except OperationalError as exc:
        if "interrupted" in str(exc.orig):
            return None
        raise
    finally:
        raw.set_progress_handler(None, 0)


def _estimate_count(session: Session, stmt: Select, id_column: Any, sample: int) -> int:
    """How many rows `stmt` matches, estimated without counting them.

    PostgreSQL: the planner's row estimate for the statement (EXPLAIN, ~1 ms: table statistics kept by
    autovacuum). SQLite has no row estimates: the share of matches among the table's first `sample` primary
    keys, times the table's size (`_table_size`). Stripe's ids are random, so the first keys in order are a
    uniform sample; reading them is one short range of the primary key, and the filter runs on those rows only.
    """
    if _dialect(session) == "postgresql":
        return _planner_rows(session, stmt)
    keys = select(id_column).order_by(id_column).limit(sample).scalar_subquery()
    first = select(id_column).order_by(id_column).limit(sample).subquery()
    taken = session.execute(select(func.count()).select_from(first)).scalar_one()
    if not taken:
        return 0
    hits = _bounded_count(session, stmt.where(id_column.in_(keys)), cap=sample)[0]
    size = max(_table_size(session, id_column), taken)
    return round(hits / taken * size)


def _planner_rows(session: Session, stmt: Select) -> int:
    """PostgreSQL's estimate of the rows `stmt` returns (EXPLAIN's top plan node), parameters bound as usual."""
    compiled = stmt.order_by(None).compile(dialect=session.get_bind().dialect,
                                           compile_kwargs={"render_postcompile": True})
    plan = session.connection().exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params)
    doc = plan.scalar_one()
    doc = json.loads(doc) if isinstance(doc, str) else doc
    return max(0, int(doc[0]["Plan"]["Plan Rows"]))


def _table_size(session: Session, id_column: Any) -> int:
    """A SQLite table's row count without counting it: max(rowid), exact unless rows were deleted."""
    stmt: Select[Any] = select(func.coalesce(func.max(literal_column("rowid")), 0)).select_from(id_column.table)
    return int(session.execute(stmt).scalar_one())


def _page_args(page: int, page_size: int) -> tuple[int, int]:
    """A page number of at least 1 and one of PAGE_SIZES (URL or session state may hold anything)."""
    return max(1, int(page)), page_size if page_size in PAGE_SIZES else PAGE_SIZES[0]


def _order(key: Any, id_column: Any, descending: bool) -> list[Any]:
    """Sort by `key`, ties broken by id in the same direction, so paging is stable."""
    return [key.desc(), id_column.desc()] if descending else [key.asc(), id_column.asc()]


def _page(session: Session, stmt: Select, page: int, page_size: int, id_column: Any | None = None) -> Page:
    page, page_size = _page_args(page, page_size)
    rows = [dict(r) for r in session.execute(stmt.offset((page - 1) * page_size).limit(page_size + 1)).mappings()]
    total = count_rows(session, stmt, id_column, at_least=(page - 1) * page_size + len(rows))
    return Page(rows=rows[:page_size], page=page, page_size=page_size, has_more=len(rows) > page_size,
                total=total.value, total_capped=total.capped, total_estimated=total.estimated)


def _page_by_ids(session: Session, ids_stmt: Select, rows_stmt: Select, id_column: Any, page: int,
                 page_size: int) -> Page:
    """A page in two steps: the ids filtered and sorted (from an index where one fits), then only those
    rows read in full and joined, in `rows_stmt`'s order."""
    page, page_size = _page_args(page, page_size)
    ids = [r[0] for r in session.execute(ids_stmt.offset((page - 1) * page_size).limit(page_size + 1))]
    rows = [dict(r) for r in session.execute(rows_stmt.where(id_column.in_(ids[:page_size]))).mappings()] \
        if ids else []
    total = count_rows(session, ids_stmt, id_column, at_least=(page - 1) * page_size + len(ids))
    return Page(rows=rows, page=page, page_size=page_size, has_more=len(ids) > page_size, total=total.value,
                total_capped=total.capped, total_estimated=total.estimated)


def _day_start(d: date | None) -> datetime | None:
    return datetime.combine(d, time.min, UTC) if d else None


def distinct_values(session: Session, column: Any, limit: int = 200) -> list[Any]:
    """The distinct non-null values of an indexed column, one index probe per value ("loose index scan").

    A recursive CTE asks for the smallest value greater than the last one: a handful of probes instead of
    reading a million index entries, on SQLite and PostgreSQL alike.
    """
    seed = select(func.min(column).label("v")).cte("loose", recursive=True)
    step = select(select(func.min(column)).where(column > seed.c.v).scalar_subquery()).where(seed.c.v.is_not(None))
    loose = seed.union_all(step)
    stmt = select(loose.c.v).where(loose.c.v.is_not(None)).limit(limit)
    return [r[0] for r in session.execute(stmt)]


def count_label(count: Count) -> str:
    """'2,000' (exact), 'about 1.2 M' (estimated) or '1,000+' (a lower bound): the one way a count reads."""
    if count.estimated:
        return approx_count(count.value)
    return f"{count.value:,}+" if count.capped else f"{count.value:,}"


# --- sync health ----------------------------------------------------------------------------------
