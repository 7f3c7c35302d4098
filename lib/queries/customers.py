"""The Customers list: the search box (`parse_search`), filters, one page, the CSV export and the currency
filter's choices."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import IO, Any

from sqlalchemy import (
    Select,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from lib import columns
from lib.export import stream_csv
from lib.models import (
    Customer,
    Invoice,
    PaymentMethod,
    Subscription,
)
from lib.money import major
from lib.normalize import canonical_email, email_domain, fold_name, normalize_email, normalize_phone
from lib.queries.paging import (
    Page,
    _day_start,
    _dialect,
    _escape_like,
    _order,
    _page,
    _prefix,
    distinct_values,
)

MAX_SEARCH_LEN = 200


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


CUSTOMER_SORTS = {"created": col(Customer.created), "mrr": col(Customer.mrr), "email": col(Customer.email_normalized),
                  "name": Customer.name_search, "balance": Customer.balance}
CUSTOMER_COLUMNS = ["id", "email", "name", "phone", "created", "currency", "mrr", "balance", "delinquent",
                    "deleted", "merged_into"]


def _search_condition(session: Session, s: Search) -> ColumnElement[bool] | None:
    if s.kind == "id":  # exact: a prefix LIKE on the primary key cannot use it under most collations
        return col(Customer.id) == s.value
    if s.kind == "email":
        conds = [_prefix(session, col(Customer.email_normalized), s.value)]
        if s.extra:
            conds.append(col(Customer.email_canonical) == s.extra)
        return or_(*conds)
    if s.kind == "domain":  # one range of ix_customers_email_domain: exact equality, no wildcard
        by_domain = col(Customer.email_domain) == s.value
        return or_(by_domain, _name_match(session, s.extra, names=False)) if s.extra else by_domain
    if s.kind == "phone":
        return col(Customer.phone_normalized) == s.value
    if s.kind == "last4":
        owners = select(col(PaymentMethod.customer_id)).where(col(PaymentMethod.card_last4) == s.value)
        return col(Customer.id).in_(owners)
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
        contains = func.instr(col(Customer.name_search), folded) > 0
    else:  # LIKE, so the pg_trgm index (lib/models.ensure_optional_indexes) answers it when present
        key = col(Customer.id)
        contains = col(Customer.name_search).like("%" + _escape_like(folded) + "%", escape="\\")
    by_name = select(key).where(contains)
    by_email = select(key).where(_prefix(session, col(Customer.email_normalized), folded))
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
        stmt = stmt.where(col(Customer.deleted).is_not(True))
    if f.delinquent:
        stmt = stmt.where(col(Customer.delinquent) == True)  # noqa: E712 — "= true" can use the index, "IS" cannot
    # EXISTS: the page walks customers in sort order and probes (customer_id, status) per customer, so it
    # stops after page_size matches (and the bounded count after COUNT_CAP)
    if f.unpaid:
        stmt = stmt.where(exists().where(col(Invoice.customer_id) == col(Customer.id), col(Invoice.status) == "open"))
    if f.sub_status:
        stmt = stmt.where(exists().where(col(Subscription.customer_id) == col(Customer.id),
                                         col(Subscription.status) == f.sub_status))
    if f.currency:
        stmt = stmt.where(col(Customer.currency) == f.currency.lower())
    if f.created_from:
        stmt = stmt.where(col(Customer.created) >= _day_start(f.created_from))
    if f.created_to:
        stmt = stmt.where(col(Customer.created) < _day_start(f.created_to + timedelta(days=1)))
    return stmt.order_by(*_order(CUSTOMER_SORTS.get(f.sort, col(Customer.created)), col(Customer.id), f.descending))


def search_customers(*, session: Session, filters: CustomerFilters, page: int = 1, page_size: int = 25) -> Page:
    """One page of customers matching the search box and filters (raises SearchError on bad text)."""
    return _page(session, _customers_stmt(session, filters), page, page_size, col(Customer.id))


def export_customers_csv(*, session: Session, filters: CustomerFilters) -> IO[bytes]:
    """Every customer of the current result (all pages) as CSV, streamed: the page's column names, amounts in
    major units with the currency's decimals (balance signed as Stripe stores it: negative = credit)."""
    def money(r: dict) -> dict:
        return {**r, "mrr": major(r["mrr"], r["currency"]), "balance": major(r["balance"], r["currency"])}

    return stream_csv(session, _customers_stmt(session, filters), CUSTOMER_COLUMNS, transform=money,
                      headers=columns.CUSTOMERS)


def customer_currencies(*, session: Session) -> list[str]:
    """Currencies present among customers (a short list; read from the currency index); never None or ''."""
    return [c for c in distinct_values(session, col(Customer.currency)) if c]
