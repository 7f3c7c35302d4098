"""List totals: exact up to EXACT_COUNT_LIMIT matching rows, an estimate past it shown as "about 1.2 M"."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, Select, func, select, text, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from lib import queries
from lib.models import Customer, utcnow
from tests.utils.apptest import run_page

UNITS = {"M": 1_000_000, "G": 1_000_000_000}


def read_back(label: str) -> float:
    """The number an 'about …' label states."""
    m = re.fullmatch(r"about ([\d,]+(?:\.\d)?)(?: ([MG]))?", label)
    assert m, label
    return float(m.group(1).replace(",", "")) * UNITS.get(m.group(2) or "", 1)


@given(st.integers(min_value=1, max_value=10**11))
def test_an_estimate_reads_within_five_percent_of_the_figure(n: int) -> None:
    assert abs(read_back(queries.approx_count(n)) - n) <= 0.05 * n


@given(st.integers(min_value=0, max_value=10**11), st.integers(min_value=0, max_value=10**11))
def test_a_larger_figure_never_reads_smaller(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert read_back(queries.approx_count(lo)) <= read_back(queries.approx_count(hi))


@given(st.integers(min_value=0, max_value=10**11))
def test_an_estimate_shows_at_most_two_significant_digits(n: int) -> None:
    digits = re.sub(r"\D", "", queries.approx_count(n)).lstrip("0")
    assert len(digits.rstrip("0")) <= 2


def test_the_issue_example_reads_about_1_2_m() -> None:
    assert queries.approx_count(1_234_567) == "about 1.2 M"


def test_exact_totals_keep_their_thousands_separator() -> None:
    page = queries.Page(rows=[], page=1, page_size=25, has_more=True, total=12_345)
    assert page.total_label == "12,345"


def test_a_lower_bound_says_so() -> None:
    page = queries.Page(rows=[], page=1, page_size=25, has_more=True, total=100_000, total_capped=True)
    assert page.total_label == "100,000+"


# --- counting on both databases -------------------------------------------------------------------------


@pytest.fixture
def three_hundred(session: Session, db: Engine) -> int:
    """300 customers with ids in order, every third in EUR; planner statistics refreshed (as autovacuum does)."""
    now = utcnow()
    session.add_all([Customer(id=f"cus_T{i:05d}", email=f"c{i}@example.com", created=now,
                              currency="eur" if i % 3 == 0 else "usd") for i in range(300)])
    session.commit()
    if db.dialect.name == "postgresql":
        with db.begin() as conn:
            conn.execute(text("ANALYZE customers"))
    return 300


def eur(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Customer).where(Customer.currency == "eur")).scalar_one()


def test_a_count_under_the_limit_is_exact(session: Session, three_hundred: int) -> None:
    stmt = select(Customer.id).where(Customer.currency == "eur")
    assert queries.count_rows(session, stmt, Customer.id, limit=1_000) == queries.Count(eur(session))


def test_a_count_past_the_limit_is_marked_as_an_estimate(session: Session, three_hundred: int) -> None:
    stmt = select(Customer.id).where(Customer.currency == "eur")
    assert queries.count_rows(session, stmt, Customer.id, limit=50, sample=60).estimated


def test_an_estimate_is_close_to_the_true_count(session: Session, three_hundred: int) -> None:
    stmt = select(Customer.id).where(Customer.currency == "eur")
    got = queries.count_rows(session, stmt, Customer.id, limit=50, sample=60).value
    assert abs(got - eur(session)) <= 0.1 * eur(session)


def test_an_estimate_is_never_below_the_exact_limit(session: Session, three_hundred: int) -> None:
    stmt = select(Customer.id).where(Customer.currency == "eur", Customer.id >= "cus_T00150")
    got = queries.count_rows(session, stmt, Customer.id, limit=40, sample=60)  # SQLite's sample holds none
    assert got.value >= 41


def test_a_table_without_random_ids_shows_a_lower_bound(session: Session, three_hundred: int) -> None:
    session.add_all([Customer(id=f"cus_V{i:05d}", created=utcnow()) for i in range(queries.COUNT_CAP)])
    session.commit()
    got = queries.count_rows(session, select(Customer.id), None)
    assert got == queries.Count(queries.COUNT_CAP, capped=True)


def test_the_customers_page_counts_exactly_past_the_old_1000_cap(session: Session, db: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "COUNT_BUDGET_MS", 60_000)  # the rows decide here, not a loaded machine's clock
    now = utcnow()
    session.add_all([Customer(id=f"cus_U{i:05d}", created=now) for i in range(1_234)])
    session.commit()
    at = run_page("customers.py")
    assert any(c.value.startswith("1,234 customer(s)") for c in at.caption), [c.value for c in at.caption]


def test_the_customers_page_shows_an_estimate_past_the_limit(session: Session, db: Engine, three_hundred: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "EXACT_COUNT_LIMIT", 50)
    monkeypatch.setattr(queries, "ESTIMATE_SAMPLE", 60)
    at = run_page("customers.py")
    assert any(c.value.startswith("about 300 customer(s)") for c in at.caption), [c.value for c in at.caption]


def _slow() -> Select[tuple[str]]:
    """A statement far slower than 1 ms on any database: every triple of customers."""
    b, c = aliased(Customer), aliased(Customer)
    return select(Customer.id).join(b, true()).join(c, true()).where(b.id != c.id)


def test_a_count_past_its_time_budget_is_an_estimate(session: Session, three_hundred: int) -> None:
    got = queries.count_rows(session, _slow(), Customer.id, limit=10**9, budget_ms=1, sample=60)
    assert got.estimated


def test_a_stopped_count_leaves_the_session_usable(session: Session, three_hundred: int) -> None:
    queries.count_rows(session, _slow(), Customer.id, limit=10**9, budget_ms=1, sample=60)
    assert eur(session) == 100


def test_a_stopped_count_is_never_below_the_rows_already_shown(session: Session, three_hundred: int) -> None:
    stmt = select(Customer.id).where(Customer.id >= "cus_T00200")  # none of them in SQLite's 60-id sample
    got = queries.count_rows(session, stmt.join(aliased(Customer), true()).join(aliased(Customer), true()),
                             Customer.id, limit=10**9, budget_ms=1, sample=60, at_least=75_000_000)
    assert got.value >= 75_000_000


def _pairs() -> Select[tuple[str]]:
    """90,000 rows for 300 customers: counted in a few ms."""
    return select(Customer.id).join(aliased(Customer), true())


@pytest.mark.parametrize(("stmt", "budget_ms"), [(_slow, 1), (_pairs, 50)], ids=["stopped", "finished"])
def test_the_time_budget_does_not_outlive_the_count(session: Session, three_hundred: int,
                                                 stmt: Callable[[], Select[tuple[str]]], budget_ms: int) -> None:
    queries.count_rows(session, stmt(), Customer.id, limit=10**9, budget_ms=budget_ms, sample=60)
    n = session.execute(select(func.count()).select_from(_slow().limit(1_000_000).subquery())).scalar_one()
    assert n == 1_000_000  # a long statement afterwards runs to its end (takes well over the budget)


def test_a_count_past_1000_within_its_budget_is_exact(session: Session, three_hundred: int) -> None:
    got = queries.count_rows(session, _pairs(), Customer.id, limit=10**9, budget_ms=60_000, sample=60)
    assert got == queries.Count(90_000)
