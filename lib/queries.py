"""Every query the dashboard pages run: pure functions over the cache, filtered, sorted and paged in SQL.

Rules: never load a whole table; a page fetches `page_size + 1` rows (to know whether there is a next
page); totals are exact when counting them is cheap (at most `EXACT_COUNT_LIMIT` rows within `COUNT_BUDGET_MS`)
and estimated otherwise (`count_rows`, shown as "about 1.2 M"), so a broad filter over a million rows stays fast;
CSV exports stream one query in batches (`yield_per`) into a spooled file. Money is in minor units per
currency and is never summed across currencies. The same SQL runs on SQLite and PostgreSQL (the few dialect
differences are in `_prefix`, `_count_within` and `_estimate_count`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from typing import IO, Any

from sqlalchemy import (
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from lib import columns
from lib.declines import explain
from lib.export import stream_csv
from lib.mapping import valid_customer_id
from lib.models import (
    MRR_STATUSES,
    AuditLog,
    Customer,
    Invoice,
    InvoiceFollowup,
    InvoiceRecoveryDaily,
    MergeJob,
    PaymentMethod,
    StripeEvent,
    Subscription,
    SubscriptionItem,
    SubscriptionTotal,
    SyncRun,
    SyncState,
    WebhookEndpoint,
    utcnow,
)
from lib.money import major
from lib.normalize import canonical_email, email_domain, fold_name, normalize_email, normalize_phone

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
MAX_SEARCH_LEN = 200
SUBSCRIPTION_STATUSES = (
    "active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused",
)
AGE_BUCKETS = ("0–7 days", "8–30 days", "31–60 days", "over 60 days")
_MONDAY = 3 * 86400  # epoch weeks start on Thursday; shift them to start on Monday


# --- shared helpers ---------------------------------------------------------------------------------


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
    raw = session.connection().connection.driver_connection
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
    stmt = select(func.coalesce(func.max(literal_column("rowid")), 0)).select_from(id_column.table)
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


# --- customers ------------------------------------------------------------------------------------


class SearchError(ValueError):
    """Search text the search box cannot use; the message tells the user what to type instead."""


@dataclass(frozen=True)
class Search:
    kind: str  # none | id | email | domain | phone | last4 | name
    value: str = ""
    extra: str = ""  # email: canonical form; domain typed without '@': the text, also an address's beginning


_PHONEISH = re.compile(r"^\+?[\d\s().\-]{6,}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "acme.com", "mail.acme.co.uk": labels of letters, digits and hyphens (any script) joined by dots
_DOMAINISH = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")


def parse_search(text: str | None) -> Search:
    """Decide what the one search box holds: a customer id, an email, a phone, card last 4 or a name."""
    q = (text or "").strip()
    if not q:
        return Search("none")
    if len(q) > MAX_SEARCH_LEN:
        raise SearchError(f"That search is {len(q)} characters long; type at most {MAX_SEARCH_LEN}, "
                          "e.g. an email, a name, a cus_… id, a phone number or a card's last 4 digits.")
    if _CONTROL.search(q):
        raise SearchError("The search contains invisible control characters; retype it without pasting "
                          "formatting.")
    if q.lower().startswith("cus_"):
        if not re.fullmatch(r"cus_[A-Za-z0-9_]*", q, flags=re.IGNORECASE):
            raise SearchError(f"{q!r} is not a customer id: ids look like cus_NffrFeUfNV2Hib (letters and "
                              "digits only).")
        return Search("id", "cus_" + q[4:])
    if q.startswith("@"):
        domain = email_domain(q) or ""
        if not domain or "@" in domain or re.search(r"\s", domain):
            raise SearchError("Type a company's email domain after the @, e.g. @acme.com.")
        return Search("domain", domain)
    if "@" in q:
        norm = normalize_email(q) or ""
        if " " in norm:
            raise SearchError("An email address cannot contain spaces; check the address and try again.")
        return Search("email", norm, canonical_email(norm) or "")
    digits = re.sub(r"\D", "", q)
    if re.fullmatch(r"\d{4}", q):
        return Search("last4", q)
    if _PHONEISH.match(q) and len(digits) >= 6:
        e164 = normalize_phone(q)
        if not e164:
            raise SearchError(f"{q!r} looks like a phone number but is not a valid one: type it with the "
                              "country code, e.g. +1 415 555 0100.")
        return Search("phone", e164)
    folded = fold_name(q) or ""
    if _DOMAINISH.fullmatch(q) and not q.replace(".", "").isdigit():
        # a company's domain, or the beginning of an address ("ana.lima"): both, each from an index
        return Search("domain", email_domain("@" + q) or "", normalize_email(q) or "")
    if len(folded) < 2 or not re.search(r"\w", folded):
        raise SearchError("Type at least two letters of a name, or an email, a cus_… id, a phone number "
                          "or a card's last 4 digits.")
    return Search("name", folded)


@dataclass(frozen=True)
class CustomerFilters:
    q: str = ""
    delinquent: bool = False
    unpaid: bool = False
    sub_status: str | None = None
    currency: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    include_deleted: bool = False
    sort: str = "created"  # created | mrr | email | name | balance
    descending: bool = True


CUSTOMER_SORTS = {"created": Customer.created, "mrr": Customer.mrr, "email": Customer.email_normalized,
                  "name": Customer.name_search, "balance": Customer.balance}
CUSTOMER_COLUMNS = ["id", "email", "name", "phone", "created", "currency", "mrr", "balance", "delinquent",
                    "deleted", "merged_into"]


def _search_condition(session: Session, s: Search) -> ColumnElement[bool] | None:
    if s.kind == "id":  # exact: a prefix LIKE on the primary key cannot use it under most collations
        return Customer.id == s.value
    if s.kind == "email":
        conds = [_prefix(session, Customer.email_normalized, s.value)]
        if s.extra:
            conds.append(Customer.email_canonical == s.extra)
        return or_(*conds)
    if s.kind == "domain":  # one range of ix_customers_email_domain: exact equality, no wildcard
        by_domain = Customer.email_domain == s.value
        return or_(by_domain, _name_match(session, s.extra, names=False)) if s.extra else by_domain
    if s.kind == "phone":
        return Customer.phone_normalized == s.value
    if s.kind == "last4":
        owners = select(PaymentMethod.customer_id).where(PaymentMethod.card_last4 == s.value)
        return Customer.id.in_(owners)
    if s.kind == "name":
        return _name_match(session, s.value)
    return None


NAME_MATCH_CAP = 1_000


def _name_match(session: Session, folded: str, *, names: bool = True) -> ColumnElement[bool]:
    """Customers whose folded name contains `folded`, or whose email starts with it (at most 1,000 of each);
    with `names=False` only the latter (an index range: a domain-like "ana.lima" is the beginning of an address,
    and a name substring that matches nobody would read every name).

    A substring cannot use a b-tree: PostgreSQL answers it from the trigram index when pg_trgm is
    allowed; otherwise (and on SQLite) the names are read once, without ORDER BY (a plain scan that stops
    at the cap); on SQLite the scan reads the small name index (name + rowid) instead of the table.
    The page query then filters, sorts and pages only those customers.
    """
    if _dialect(session) == "sqlite":
        # instr on the already folded text: the same matches as LIKE '%…%', a third faster per row
        key: Any = literal_column("customers.rowid")
        contains = func.instr(Customer.name_search, folded) > 0
    else:  # LIKE, so the pg_trgm index (lib/models.ensure_optional_indexes) answers it when present
        key = Customer.id
        contains = Customer.name_search.like("%" + _escape_like(folded) + "%", escape="\\")
    by_name = select(key).where(contains)
    by_email = select(key).where(_prefix(session, Customer.email_normalized, folded))
    found: set[Any] = set()
    for stmt in (by_name, by_email) if names else (by_email,):
        found.update(r[0] for r in session.execute(stmt.limit(NAME_MATCH_CAP)))
    return key.in_(sorted(found)) if found else false()


def _customers_stmt(session: Session, f: CustomerFilters, columns: Iterable[Any] | None = None) -> Select:
    stmt = select(*(columns or [getattr(Customer, c) for c in CUSTOMER_COLUMNS]))
    cond = _search_condition(session, parse_search(f.q))
    if cond is not None:
        stmt = stmt.where(cond)
    if not f.include_deleted:
        # IS NOT TRUE: 99% of rows pass, so no index should drive this (SQLite would pick ix_customers_deleted)
        stmt = stmt.where(Customer.deleted.is_not(True))
    if f.delinquent:
        stmt = stmt.where(Customer.delinquent == True)  # noqa: E712 — "= true" can use the index, "IS" cannot
    # EXISTS: the page walks customers in sort order and probes (customer_id, status) per customer, so it
    # stops after page_size matches (and the bounded count after COUNT_CAP)
    if f.unpaid:
        stmt = stmt.where(exists().where(Invoice.customer_id == Customer.id, Invoice.status == "open"))
    if f.sub_status:
        stmt = stmt.where(exists().where(Subscription.customer_id == Customer.id,
                                         Subscription.status == f.sub_status))
    if f.currency:
        stmt = stmt.where(Customer.currency == f.currency.lower())
    if f.created_from:
        stmt = stmt.where(Customer.created >= _day_start(f.created_from))
    if f.created_to:
        stmt = stmt.where(Customer.created < _day_start(f.created_to + timedelta(days=1)))
    return stmt.order_by(*_order(CUSTOMER_SORTS.get(f.sort, Customer.created), Customer.id, f.descending))


def search_customers(*, session: Session, filters: CustomerFilters, page: int = 1, page_size: int = 25) -> Page:
    """One page of customers matching the search box and filters (raises SearchError on bad text)."""
    return _page(session, _customers_stmt(session, filters), page, page_size, Customer.id)


def export_customers_csv(*, session: Session, filters: CustomerFilters) -> IO[bytes]:
    """Every customer of the current result (all pages) as CSV, streamed: the page's column names, amounts in
    major units with the currency's decimals (balance signed as Stripe stores it: negative = credit)."""
    def money(r: dict) -> dict:
        return {**r, "mrr": major(r["mrr"], r["currency"]), "balance": major(r["balance"], r["currency"])}

    return stream_csv(session, _customers_stmt(session, filters), CUSTOMER_COLUMNS, transform=money,
                      headers=columns.CUSTOMERS)


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


def customer_currencies(*, session: Session) -> list[str]:
    """Currencies present among customers (a short list; read from the currency index); never None or ''."""
    return [c for c in distinct_values(session, Customer.currency) if c]


# --- customer detail ------------------------------------------------------------------------------


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
    steps = (select(AuditLog.customer_id, AuditLog.object_id, AuditLog.created_at, AuditLog.actor)
             .where(AuditLog.customer_id.in_(dups), AuditLog.action == "merge_step",
                    AuditLog.flow == "mark_duplicate", AuditLog.result == "succeeded")
             .order_by(AuditLog.id.desc()).limit(20 * len(dups)))
    for dup, survivor, at, by in session.execute(steps):
        if (dup, survivor) in wanted:
            found.setdefault(dup, (at, by))
    rest = [d for d in dups if d not in found]
    if rest:
        jobs = (select(MergeJob.duplicate_id, MergeJob.survivor_id, MergeJob.finished_at, MergeJob.created_by)
                .where(MergeJob.duplicate_id.in_(rest), MergeJob.status == "succeeded")
                .order_by(MergeJob.created_at.desc()).limit(20 * len(rest)))
        for dup, survivor, at, by in session.execute(jobs):
            if (dup, survivor) in wanted:
                found.setdefault(dup, (at, by))
    return found


def merged_into(*, session: Session, customer_id: str) -> MergeMark | None:
    """Where this customer was merged to (customers.merged_into), with when and by whom; None if it was not."""
    survivor = session.execute(select(Customer.merged_into).where(Customer.id == customer_id)).scalar()
    survivor = valid_customer_id(survivor)
    if survivor is None:
        return None
    at, by = _merge_marks(session, [(customer_id, survivor)]).get(customer_id, (None, None))
    return MergeMark(survivor=survivor, duplicate=customer_id, at=at, by=by)


MERGED_FROM_LIMIT = 50


def merged_from(*, session: Session, customer_id: str, limit: int = MERGED_FROM_LIMIT) -> list[MergeMark]:
    """The customers merged into this one (the ix_customers_merged_into range), oldest id first, at most
    `limit`, each with when and by whom."""
    stmt = (select(Customer.id, Customer.name, Customer.email).where(Customer.merged_into == customer_id)
            .order_by(Customer.id).limit(limit))
    rows = session.execute(stmt).all()
    marks = _merge_marks(session, [(r[0], customer_id) for r in rows])
    return [MergeMark(survivor=customer_id, duplicate=cid, at=marks.get(cid, (None, None))[0],
                      by=marks.get(cid, (None, None))[1], duplicate_label=name or email or "")
            for cid, name, email in rows]


def merged_since(*, session: Session, since: datetime, limit: int = 10_000) -> set[str]:
    """Ids of customers marked merged whose cached row changed since `since` (the duplicates page drops them
    from a scan made before): the merged-into index range, usually a handful of rows."""
    stmt = (select(Customer.id).where(Customer.merged_into.is_not(None), Customer.synced_at >= since)
            .limit(limit))
    return {r[0] for r in session.execute(stmt)}


def customer_ids_matching(*, session: Session, text: str, limit: int = 200) -> list[str]:
    """Customers the search box would find for `text` (id, email, phone, card last 4 or name), at most
    `limit`, deleted ones included (raises SearchError on unusable text)."""
    f = CustomerFilters(q=text, include_deleted=True)
    stmt = _customers_stmt(session, f, columns=[Customer.id]).limit(limit)
    return [r[0] for r in session.execute(stmt)]


def customer_leftovers(*, session: Session, customer_id: str) -> dict[str, bool]:
    """Whether the cache holds invoices or subscriptions of a customer id that has no customer row (a customer
    deleted in Stripe: its list of customers leaves deleted ones out, their invoices stay). Two index probes."""
    def has(column: Any) -> bool:
        return session.execute(select(column).where(column == customer_id).limit(1)).first() is not None
    return {"invoices": has(Invoice.customer_id), "subscriptions": has(Subscription.customer_id)}


def customer_payment_methods(*, session: Session, customer_id: str) -> list[dict[str, Any]]:
    stmt = (select(PaymentMethod).where(PaymentMethod.customer_id == customer_id)
            .order_by(PaymentMethod.created.desc()).limit(100))
    return [pm.model_dump() for pm in session.execute(stmt).scalars()]


def customer_subscriptions(*, session: Session, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The customer's subscriptions, newest first, each with its items (price, product, period)."""
    subs = [s.model_dump() for s in session.execute(
        select(Subscription).where(Subscription.customer_id == customer_id)
        .order_by(Subscription.created.desc()).limit(limit)).scalars()]
    items = _items_for(session, [s["id"] for s in subs])
    for s in subs:
        s["items"] = items.get(s["id"], [])
        s["mrr"] = mrr_or_none(s["status"], s["mrr"])  # the customer's MRR is the sum of these
    return subs


def _items_for(session: Session, sub_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not sub_ids:
        return out
    for item in session.execute(select(SubscriptionItem).where(SubscriptionItem.subscription_id.in_(sub_ids))
                                .order_by(SubscriptionItem.id)).scalars():
        out.setdefault(item.subscription_id, []).append(item.model_dump())
    return out


def customer_invoices(*, session: Session, customer_id: str, page: int = 1, page_size: int = 25) -> Page:
    stmt = (select(Invoice.id, Invoice.number, Invoice.status, Invoice.currency, Invoice.amount_due,
                   Invoice.amount_paid, Invoice.amount_remaining, Invoice.attempt_count,
                   Invoice.decline_code, Invoice.failure_code, Invoice.failure_message,
                   Invoice.next_payment_attempt, Invoice.created, Invoice.paid_at, Invoice.hosted_invoice_url,
                   Invoice.subscription_id, *_new_card_columns()).select_from(Invoice))
    stmt = (_with_card_joins(stmt).where(Invoice.customer_id == customer_id)
            .order_by(Invoice.created.desc(), Invoice.id.desc()))
    result = _page(session, stmt, page, page_size, Invoice.id)
    for r in result.rows:
        r["new_card"] = new_card_hint(r)
    return result


def customer_open_amounts(*, session: Session, customer_id: str) -> list[dict[str, Any]]:
    """What the customer owes on open invoices, per currency."""
    stmt = (select(Invoice.currency, func.count().label("invoices"),
                   func.sum(Invoice.amount_remaining).label("amount"))
            .where(Invoice.customer_id == customer_id, Invoice.status == "open").group_by(Invoice.currency))
    return _rows(session, stmt)


def customer_timeline(*, session: Session, customer_id: str, object_ids: Iterable[str] = (),
                      limit: int = 30) -> list[dict[str, Any]]:
    """Recent events about the customer or its subscriptions, invoices and cards, newest first."""
    ids = list(dict.fromkeys([customer_id, *object_ids]))[:500]
    stmt = (select(StripeEvent.id, StripeEvent.type, StripeEvent.created, StripeEvent.object_id,
                   StripeEvent.source)
            .where(StripeEvent.object_id.in_(ids)).order_by(StripeEvent.created.desc()).limit(limit))
    return [dict(r) for r in session.execute(stmt).mappings()]


def event_history(*, session: Session) -> dict[str, Any]:
    """Whether the sync has listed the account's last 30 days of events into the cache (the timeline's
    history, `lib/sync/history.py`, whose progress is the `events` row of sync_state): `complete`, and when.
    An empty timeline then means no events, not events not fetched yet."""
    state = session.get(SyncState, "events")
    done = state.backfill_completed_at if state is not None else None
    return {"complete": done is not None, "completed_at": done}


# --- subscriptions --------------------------------------------------------------------------------


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


SUB_SORTS = {"created": Subscription.created, "mrr": Subscription.mrr,
             "current_period_end": Subscription.current_period_end}
SUB_COLUMNS = ["id", "customer_id", "customer_email", "status", "currency", "mrr", "current_period_end",
               "cancel_at_period_end", "trial_end", "created"]


def _subs_where(stmt: Select, f: SubscriptionFilters, *, paged: bool = True) -> Select:
    """Apply the filters. Item filters: EXISTS for a page (probed in sort order, stops early), IN for sums
    (which read every match anyway, best started from the item index)."""
    if f.statuses:
        stmt = stmt.where(Subscription.status.in_(list(f.statuses)))
    item_conds = []
    if f.product_id:
        item_conds.append(SubscriptionItem.product_id == f.product_id)
    if f.price_id:
        item_conds.append(SubscriptionItem.price_id == f.price_id)
    if f.interval:
        item_conds.append(SubscriptionItem.interval == f.interval)
    if item_conds and paged:
        stmt = stmt.where(exists().where(SubscriptionItem.subscription_id == Subscription.id, *item_conds))
    elif item_conds:
        stmt = stmt.where(Subscription.id.in_(select(SubscriptionItem.subscription_id).where(*item_conds)))
    if f.currency:
        stmt = stmt.where(Subscription.currency == f.currency.lower())
    if f.cancel_at_period_end:
        stmt = stmt.where(Subscription.cancel_at_period_end == True)  # noqa: E712 — "= true" can use the index
    if f.trial_ending_days is not None:
        now = utcnow()
        stmt = stmt.where(Subscription.status == "trialing", Subscription.trial_end >= now,
                          Subscription.trial_end <= now + timedelta(days=max(0, f.trial_ending_days)))
    return stmt


def counts_as_mrr(status: str | None) -> bool:
    """The one MRR rule: only subscriptions in MRR_STATUSES (active, past due) have MRR; any other shows none."""
    return status in MRR_STATUSES


def mrr_or_none(status: str | None, mrr: int | None) -> int | None:
    """A row's MRR as every table, breakdown and export shows it: None (empty) outside MRR_STATUSES."""
    return int(mrr or 0) if counts_as_mrr(status) else None


# A subscription's MRR column as the pages show it (SQL side of mrr_or_none).
SUB_MRR = case((Subscription.status.in_(MRR_STATUSES), Subscription.mrr), else_=None).label("mrr")


def _subs_stmt(f: SubscriptionFilters, *, filtered: bool = True) -> Select:
    stmt = select(Subscription.id, Subscription.customer_id, Customer.email.label("customer_email"),
                  Subscription.status, Subscription.currency, SUB_MRR,
                  Subscription.current_period_end, Subscription.cancel_at_period_end, Subscription.trial_end,
                  Subscription.created).outerjoin(Customer, Customer.id == Subscription.customer_id)
    order = _order(SUB_SORTS.get(f.sort, Subscription.created), Subscription.id, f.descending)
    return (_subs_where(stmt, f) if filtered else stmt).order_by(*order)


def list_subscriptions(*, session: Session, filters: SubscriptionFilters, page: int = 1,
                       page_size: int = 25) -> Page:
    """One page of subscriptions with MRR and their plan names ("Basic × 2, Add-on").

    Two steps, as for the failed worklist: the page's ids are filtered and sorted without the join to
    customers (from a covering index where one fits, e.g. the trial-end or cancel-at-period-end ones),
    then only those rows are read in full and joined. A sort over 25,000 trial matches no longer joins
    25,000 customers first.
    """
    order = _order(SUB_SORTS.get(filters.sort, Subscription.created), Subscription.id, filters.descending)
    ids_stmt = _subs_where(select(Subscription.id), filters).order_by(*order)
    result = _page_by_ids(session, ids_stmt, _subs_stmt(filters, filtered=False), Subscription.id, page, page_size)
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
        stmt = select(Subscription.status, Subscription.currency, func.count().label("count"),
                      func.coalesce(func.sum(Subscription.mrr), 0).label("mrr"))
        stmt = _subs_where(stmt, filters, paged=False).group_by(Subscription.status, Subscription.currency)
        rows = _rows(session, stmt.order_by(Subscription.status, Subscription.currency))
    return [{**r, "mrr": mrr_or_none(r["status"], r["mrr"])} for r in rows]


def export_subscriptions_csv(*, session: Session, filters: SubscriptionFilters) -> IO[bytes]:
    """Every matching subscription as CSV, streamed: the page's column names, MRR in major units."""
    def money(r: dict) -> dict:
        return {**r, "mrr": major(r["mrr"], r["currency"])}

    return stream_csv(session, _subs_stmt(filters), SUB_COLUMNS, transform=money, headers=columns.SUBSCRIPTIONS)


def subscription_choices(*, session: Session) -> dict[str, list[tuple[str, str]]]:
    """Products, prices and currencies to filter by: [(id, label)] each, read through their indexes."""
    product_ids = distinct_values(session, SubscriptionItem.product_id, limit=500)
    names = {p: session.execute(select(SubscriptionItem.product_name).where(
        SubscriptionItem.product_id == p, SubscriptionItem.product_name.is_not(None)).limit(1)).scalar()
        for p in product_ids}  # one index probe per product
    return {
        "products": [(p, f"{names[p]} ({p})" if names.get(p) else p) for p in product_ids],
        "prices": [(p, p) for p in distinct_values(session, SubscriptionItem.price_id, limit=500)],
        "currencies": [(r["currency"], r["currency"].upper()) for r in _totals(  # no subscriptions.currency index
            session, statuses=(), currency=None, by_status=False) if r["currency"]],
    }


# --- failed invoices ------------------------------------------------------------------------------


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
_CODE = func.coalesce(Invoice.decline_code, Invoice.failure_code, "")


def _failed_base() -> ColumnElement[bool]:
    """Open invoices with at least one failed attempt, and uncollectible ones.

    Written as `status IN (…)` plus a filter (no OR) so both databases read it from ix_invoices_status_attempt
    alone (an OR of two index ranges would make SQLite fetch every table row).
    """
    return and_(Invoice.status.in_(["open", "uncollectible"]),
                Invoice.attempt_count >= case((Invoice.status == "uncollectible", 0), else_=1))


def _age_bounds(bucket: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    edges = {AGE_BUCKETS[0]: (7, None), AGE_BUCKETS[1]: (30, 7), AGE_BUCKETS[2]: (60, 30),
             AGE_BUCKETS[3]: (None, 60)}
    older, newer = edges[bucket]
    return (now - timedelta(days=older) if older else None, now - timedelta(days=newer) if newer else None)


# --- "new card since the failure" ---------------------------------------------------------------
# The card a retry would charge now: the subscription's default payment method, else the customer's (Stripe's
# order; an invoice-level default is not cached). It is "new" when it is not the card the last failed attempt
# charged (invoices.failed_payment_method_id), or when that attempt had no card at all. The card must still be
# attached to the invoice's customer in the cache. See docs/schema.md.
_NEW_CARD = aliased(PaymentMethod, name="new_card")
_INV_SUB = aliased(Subscription, name="inv_sub")
_INV_CUSTOMER = aliased(Customer, name="inv_customer")
NEW_CARD_STATUSES = ("open", "uncollectible")


def _with_card_joins(stmt: Select) -> Select:
    """Outer-join an invoices statement to the card a retry would charge now (`_NEW_CARD`)."""
    current = func.coalesce(_INV_SUB.default_payment_method_id, _INV_CUSTOMER.default_payment_method_id)
    return (stmt.outerjoin(_INV_CUSTOMER, _INV_CUSTOMER.id == Invoice.customer_id)
            .outerjoin(_INV_SUB, _INV_SUB.id == Invoice.subscription_id)
            .outerjoin(_NEW_CARD, and_(_NEW_CARD.id == current, _NEW_CARD.customer_id == Invoice.customer_id)))


def new_card_condition() -> ColumnElement[bool]:
    """An attempted unpaid invoice whose retry would charge another card than the one that failed it."""
    return and_(Invoice.status.in_(NEW_CARD_STATUSES), Invoice.attempt_count > 0, _NEW_CARD.id.is_not(None),
                or_(Invoice.failed_payment_method_id != _NEW_CARD.id,
                    and_(Invoice.failed_payment_method_id.is_(None),
                         Invoice.failure_code == "payment_method_missing")))


def _new_card_columns() -> list[Any]:
    """The new card's id, brand, last 4 and creation time, or NULLs when there is none (`new_card_condition`)."""
    def when(column: Any, label: str) -> Any:
        return case((new_card_condition(), column), else_=None).label(label)

    return [when(_NEW_CARD.id, "new_card_id"), when(_NEW_CARD.card_brand, "new_card_brand"),
            when(_NEW_CARD.card_last4, "new_card_last4"), when(_NEW_CARD.created, "new_card_created")]


def new_card_hint(r: dict[str, Any]) -> str:
    """'New card Visa •••• 4242 added 2026-12-03 14:05 UTC — retry now', or '' (a row with `_new_card_columns`)."""
    if not r.get("new_card_id"):
        return ""
    card = " ".join(x for x in (str(r.get("new_card_brand") or "").title(),
                                f"•••• {r['new_card_last4']}" if r.get("new_card_last4") else "") if x)
    created = r.get("new_card_created")
    when = f" added {created.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(created, datetime) else " on file"
    return f"New card{' ' + card if card else ''}{when} — retry now"


def _failed_where(stmt: Select, f: FailedFilters, now: datetime) -> Select:
    stmt = stmt.where(_failed_base())
    if f.new_card:
        stmt = stmt.where(new_card_condition())
    if f.decline_code is not None:
        stmt = stmt.where(_CODE == f.decline_code)
    if f.currency:
        stmt = stmt.where(Invoice.currency == f.currency.lower())
    if f.status:
        stmt = stmt.where(Invoice.status == f.status)
    if f.followup == "open":
        stmt = stmt.where(or_(InvoiceFollowup.status.is_(None), InvoiceFollowup.status == "open"))
    elif f.followup:
        stmt = stmt.where(InvoiceFollowup.status == f.followup)
    if f.age in AGE_BUCKETS:
        lo, hi = _age_bounds(f.age, now)
        if lo:
            stmt = stmt.where(Invoice.created >= lo)
        if hi:
            stmt = stmt.where(Invoice.created < hi)
    return stmt


def _failed_from(stmt: Select, f: FailedFilters | None = None) -> Select:
    """FROM invoices, joined to their follow-ups and to the card a retry would charge when the rows show them
    or the filter needs them."""
    stmt = stmt.select_from(Invoice)
    if f is None or f.followup:
        stmt = stmt.outerjoin(InvoiceFollowup, InvoiceFollowup.invoice_id == Invoice.id)
    if f is None or f.new_card:
        stmt = _with_card_joins(stmt)
    return stmt


FAILED_SORTS = {"amount": Invoice.amount_remaining, "created": Invoice.created,
                "next_retry": Invoice.next_payment_attempt}


def _failed_select(*extra: Any) -> Select:
    """The worklist's columns (plus `extra`) from invoices with their follow-ups and new-card joins."""
    return _failed_from(select(
        Invoice.id, Invoice.customer_id, Invoice.customer_email, Invoice.number, Invoice.status,
        Invoice.currency, Invoice.amount_remaining, Invoice.amount_due, Invoice.attempt_count,
        _CODE.label("code"), Invoice.failure_message, Invoice.next_payment_attempt, Invoice.created,
        Invoice.hosted_invoice_url, InvoiceFollowup.status.label("followup_status"),
        InvoiceFollowup.note.label("followup_note"), InvoiceFollowup.updated_by.label("followup_by"),
        InvoiceFollowup.updated_at.label("followup_at"), *_new_card_columns(), *extra))


def _failed_stmt(f: FailedFilters, now: datetime) -> Select:
    stmt = _failed_select()
    order = _order(FAILED_SORTS.get(f.sort, Invoice.amount_remaining), Invoice.id, f.descending)
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
    order = _order(FAILED_SORTS.get(filters.sort, Invoice.amount_remaining), Invoice.id, filters.descending)
    # 1) the page's ids, sorted inside the covering index; 2) their full rows (the table read 26 times)
    ids_stmt = _failed_where(_failed_from(select(Invoice.id), filters), filters, now).order_by(*order)
    result = _page_by_ids(session, ids_stmt, _failed_stmt(filters, now), Invoice.id, page, page_size)
    for r in result.rows:
        _decorate_failed(r, now)
    return result


def worklist_invoice(*, session: Session, invoice_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """One invoice by id as a worklist row (with `subscription_id`, and `on_worklist`: whether the failed
    worklist lists it, i.e. open after a failed attempt or uncollectible), or None when the cache lacks it.
    Any cached invoice is returned: finance may note a follow-up on one that has just been paid."""
    now = now or utcnow()
    stmt = _failed_select(Invoice.subscription_id).where(Invoice.id == invoice_id)
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
    stmt = _failed_from(select(Invoice.currency, func.count().label("invoices"),
                               func.sum(Invoice.amount_remaining).label("amount")), f)
    stmt = _failed_where(stmt, f, utcnow()).group_by(Invoice.currency)
    return _rows(session, stmt.order_by(Invoice.currency))


def failed_by_decline_code(*, session: Session, filters: FailedFilters | None = None) -> list[dict[str, Any]]:
    """Per decline code and currency: invoices, amount at risk, meaning and next step."""
    f = filters or FailedFilters()
    stmt = _failed_from(select(_CODE.label("code"), Invoice.currency, func.count().label("invoices"),
                               func.sum(Invoice.amount_remaining).label("amount")), f)
    stmt = _failed_where(stmt, f, utcnow()).group_by(_CODE, Invoice.currency)
    rows = _rows(session, stmt.order_by(func.count().desc()))
    for r in rows:
        d = explain(r["code"])
        r["code"], r["meaning"], r["next_step"] = d.code, d.meaning, d.next_step
    return rows


def failed_by_age(*, session: Session, filters: FailedFilters | None = None) -> list[dict[str, Any]]:
    """Per age bucket (since the invoice was created) and currency: invoices and amount at risk."""
    now = utcnow()
    bucket = case(
        (Invoice.created >= now - timedelta(days=7), AGE_BUCKETS[0]),
        (Invoice.created >= now - timedelta(days=30), AGE_BUCKETS[1]),
        (Invoice.created >= now - timedelta(days=60), AGE_BUCKETS[2]),
        else_=AGE_BUCKETS[3],
    )
    f = filters or FailedFilters()
    stmt = _failed_from(select(bucket.label("age"), Invoice.currency, func.count().label("invoices"),
                               func.sum(Invoice.amount_remaining).label("amount")), f)
    stmt = _failed_where(stmt, f, now).group_by(bucket, Invoice.currency)
    rows = _rows(session, stmt)
    return sorted(rows, key=lambda r: (AGE_BUCKETS.index(r["age"]), r["currency"]))


def decline_codes(*, session: Session) -> list[str]:
    """Codes present in the failed worklist (for the filter box)."""
    stmt = select(_CODE).where(_failed_base()).group_by(_CODE).order_by(_CODE).limit(200)
    return [r[0] for r in session.execute(stmt)]


def failed_currencies(*, session: Session) -> list[str]:
    """Currencies present in the failed worklist (for the filter box); an invoice without one adds nothing."""
    stmt = (select(Invoice.currency).where(_failed_base(), Invoice.currency.is_not(None), Invoice.currency != "")
            .group_by(Invoice.currency).order_by(Invoice.currency))
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
    stmt = select(daily.day, daily.currency, daily.kind, daily.amount).where(
        daily.day >= min(since.astimezone(UTC).date(), month0), daily.invoices > 0)  # rows of 0 invoices: skipped
    if currency:
        stmt = stmt.where(daily.currency == currency.lower())
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
    monthly = [{"month": m, "currency": c, **t, "rate": _rate(t)} for (c, m), t in sorted(cohorts.items())]
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


# --- overview -------------------------------------------------------------------------------------


def mrr_by_currency(*, session: Session) -> list[dict[str, Any]]:
    """MRR (MRR_STATUSES: active, past due) per currency, from the trigger-kept totals."""
    return _totals(session, statuses=MRR_STATUSES, currency=None, by_status=False)


def _totals(session: Session, *, statuses: Iterable[str], currency: str | None,
            by_status: bool) -> list[dict[str, Any]]:
    """Count and MRR from subscription_totals (a few dozen rows), grouped per currency (and status).

    Labels match the row-summing queries: `count` and `mrr` per status and currency, or `subscriptions`
    and `mrr` per currency; the '' currency key is a subscription without a currency (None).
    """
    t = SubscriptionTotal
    cur = func.nullif(t.currency, "").label("currency")
    keys = [t.status, cur] if by_status else [cur]
    n = func.sum(t.subscriptions).label("count" if by_status else "subscriptions")
    stmt = select(*keys, n, func.sum(t.mrr).label("mrr")).where(t.subscriptions > 0)
    statuses = list(statuses)
    if statuses:
        stmt = stmt.where(t.status.in_(statuses))
    if currency:
        stmt = stmt.where(t.currency == currency.lower())
    stmt = stmt.group_by(*keys).order_by(*keys)
    return _rows(session, stmt)


def table_counts(*, session: Session) -> dict[str, Count]:
    """How many customers (not deleted: the Customers list's default), subscriptions and invoices the cache
    holds, counted as every list counts (`count_rows`): exact when cheap, else an estimate labelled as one
    (`count_label`). So the Overview and the Customers list give the same number for the same rows."""
    statements = {
        "customers": (_customers_stmt(session, CustomerFilters(), [Customer.id]), Customer.id),
        "subscriptions": (select(Subscription.id), Subscription.id),
        "invoices": (select(Invoice.id), Invoice.id),
    }
    return {name: count_rows(session, stmt, key) for name, (stmt, key) in statements.items()}


def count_label(count: Count) -> str:
    """'2,000' (exact), 'about 1.2 M' (estimated) or '1,000+' (a lower bound): the one way a count reads."""
    if count.estimated:
        return approx_count(count.value)
    return f"{count.value:,}+" if count.capped else f"{count.value:,}"


# --- sync health ----------------------------------------------------------------------------------


def recent_sync_runs(*, session: Session, limit: int = 20) -> list[dict[str, Any]]:
    stmt = select(SyncRun).order_by(SyncRun.started_at.desc()).limit(limit)
    return [r.model_dump() for r in session.execute(stmt).scalars()]


def sync_states(*, session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each resource's cursors and how old its newest processed event is."""
    now = now or utcnow()
    rows = []
    for s in session.execute(select(SyncState).order_by(SyncState.resource)).scalars():
        d = s.model_dump()
        ref = s.event_cursor_created or s.backfill_completed_at
        d["cursor_age_minutes"] = round((now - ref).total_seconds() / 60, 1) if ref else None
        rows.append(d)
    return rows


def card_pass_progress(*, session: Session) -> dict[str, Any]:
    """The sync's pass 2 (every customer's complete card list): customers done, customers cached, and whether
    it is complete. Before pass 2 completes, the pages show each customer's default card only."""
    cust = Customer.__table__
    total = int(session.execute(select(func.count()).select_from(cust).where(cust.c.deleted.is_(False)))
                .scalar_one())
    state = session.get(SyncState, "payment_methods")
    if state is not None and state.backfill_completed_at is not None:
        return {"done": total, "total": total, "complete": True}
    done = 0
    if state is not None and state.backfill_started_at is not None and state.backfill_cursor:
        done = int(session.execute(select(func.count()).select_from(cust).where(
            cust.c.deleted.is_(False), cust.c.id <= state.backfill_cursor)).scalar_one())
    return {"done": done, "total": total, "complete": False}


def webhook_stats(*, session: Session, now: datetime | None = None, limit: int = 20) -> dict[str, Any]:
    """Webhook deliveries received: in the last 24 hours, the newest time, and the latest few."""
    now = now or utcnow()
    is_hook = StripeEvent.source == "webhook"
    last_day = session.execute(select(func.count()).where(
        is_hook, StripeEvent.processed_at >= now - timedelta(hours=24))).scalar_one()
    recent = [dict(r) for r in session.execute(
        select(StripeEvent.id, StripeEvent.type, StripeEvent.object_id, StripeEvent.created,
               StripeEvent.processed_at).where(is_hook).order_by(StripeEvent.processed_at.desc())
        .limit(limit)).mappings()]
    return {"last_24h": int(last_day), "last_received": recent[0]["processed_at"] if recent else None,
            "recent": recent}


def webhook_endpoints(*, session: Session) -> dict[str, Any]:
    """The account's webhook endpoints as the last sync run read them from Stripe (id, url, status
    enabled/disabled, enabled_events, description), newest first, and `checked_at`: when they were read
    (None: never yet — the next sync run reads them)."""
    state = session.get(SyncState, "webhook_endpoints")  # lib/sync/endpoints.STATE_ROW
    rows = [dict(r) for r in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.status, WebhookEndpoint.enabled_events,
               WebhookEndpoint.description)
        .order_by(WebhookEndpoint.created.desc(), WebhookEndpoint.id)).mappings()]
    return {"checked_at": state.backfill_completed_at if state is not None else None, "endpoints": rows}


def cache_freshness(*, session: Session) -> datetime | None:
    """When the cache last took in Stripe's state: the newest finished sync run or webhook delivery."""
    run = session.execute(select(func.max(SyncRun.finished_at)).where(SyncRun.status == "succeeded")).scalar()
    hook = session.execute(select(func.max(StripeEvent.processed_at))
                           .where(StripeEvent.source == "webhook")).scalar()
    times = [t for t in (run, hook) if t is not None]
    return max(times) if times else None
