"""invoice_recovery_daily stays equal to the failed/recovered sums over `invoices` through every kind of write
(PostgreSQL's statement-level triggers see whole statements, so mixed ones are tested), a database at 0002
upgrades and gets it filled, and `queries.recovery` reading it answers as the query over `invoices` did."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, delete, func, select, text, update
from sqlmodel import Session

from lib import queries
from lib.db import alembic_config, migrate
from lib.models import Invoice, InvoiceRecoveryDaily
from lib.triggers import _ensure_subscription_totals, ensure_derived_state
from tests.utils.migrations import database_at, head_revision

T = datetime(2026, 3, 4, 23, 59, 59, 500000, tzinfo=UTC)  # half a second before a UTC midnight
_SET = ("status", "attempt_count", "currency", "created", "amount_due", "amount_paid", "paid_at", "version_ts")


def _inv(iid: str, status: str = "open", attempts: int = 1, currency: str = "usd", created: datetime = T,
         due: int = 1000, paid: int | None = None, paid_at: datetime | None = None,
         version_ts: int = 10) -> dict[str, Any]:
    paid = (due if status == "paid" else 0) if paid is None else paid
    return {"id": iid, "customer_id": "cus_1", "status": status, "currency": currency, "amount_due": due,
            "amount_paid": paid, "amount_remaining": due - paid, "total": due, "attempt_count": attempts,
            "attempted": attempts > 0, "created": created, "paid_at": paid_at, "livemode": False,
            "version_ts": version_ts, "synced_at": T}


def _upsert(conn: Any, rows: list[dict[str, Any]]) -> Any:
    """One `INSERT … ON CONFLICT (id) DO UPDATE … WHERE newer` statement, the sync's shape of write."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = Invoice.__table__
    stmt = insert(table).values(rows)
    return conn.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={c: stmt.excluded[c] for c in _SET},
        where=stmt.excluded.version_ts >= table.c.version_ts))


def _expected(conn: Any) -> dict[tuple, tuple[int, int]]:
    """The contributions computed in Python from the invoice rows (independent of the triggers' SQL)."""
    out: dict[tuple, list[int]] = {}
    i = Invoice
    rows = conn.execute(select(i.status, i.attempt_count, i.currency, i.created, i.amount_due, i.amount_paid,
                               i.paid_at)).all()
    for status, attempts, currency, created, due, paid, paid_at in rows:
        failed = (status in ("open", "uncollectible") and attempts > 0) or (status == "paid" and attempts > 1)
        if failed:
            acc = out.setdefault((created.astimezone(UTC).date(), currency, "failed"), [0, 0])
            acc[0], acc[1] = acc[0] + 1, acc[1] + due
        if status == "paid" and attempts > 1 and paid_at is not None:
            acc = out.setdefault((paid_at.astimezone(UTC).date(), currency, "recovered"), [0, 0])
            acc[0], acc[1] = acc[0] + 1, acc[1] + paid
            acc = out.setdefault((created.astimezone(UTC).date(), currency, "recovered_cohort"), [0, 0])
            acc[0], acc[1] = acc[0] + 1, acc[1] + paid
    return {k: (n, a) for k, (n, a) in out.items()}


def assert_exact(conn: Any) -> dict[tuple, tuple[int, int]]:
    d = InvoiceRecoveryDaily
    rows = conn.execute(select(d.day, d.currency, d.kind, d.invoices, d.amount)).all()
    have = {(day, c, k): (int(n), int(a)) for day, c, k, n, a in rows if n != 0}
    assert all(int(a) == 0 for *_, n, a in rows if n == 0), "a row with no invoices holds an amount"
    assert all(isinstance(day, date) for day, *_ in rows)
    expected = _expected(conn)
    assert have == expected
    # every kind is checked above; the hand-written expectations below spell out the chart's two kinds
    return {k: v for k, v in have.items() if k[2] != "recovered_cohort"}


D0, D1 = date(2026, 3, 4), date(2026, 3, 5)


def test_inserts_and_one_upsert_that_inserts_updates_and_skips_rows(db: Engine) -> None:
    with db.begin() as conn:
        _upsert(conn, [_inv("in_a"), _inv("in_b", currency="eur", due=500),
                       _inv("in_c", status="paid", attempts=1, paid_at=T),  # paid at the first attempt: nothing
                       _inv("in_d", status="open", attempts=0),  # not attempted yet: nothing
                       _inv("in_e", status="uncollectible", attempts=4, due=300)])
        assert assert_exact(conn) == {(D0, "usd", "failed"): (2, 1300), (D0, "eur", "failed"): (1, 500)}
    with db.begin() as conn:
        # one statement: in_a is paid after retries (half a second later: the next UTC day), in_b moves currency,
        # in_c gets an older state (skipped by the WHERE), in_f and in_g are new
        later = T + timedelta(seconds=1)
        _upsert(conn, [_inv("in_a", status="paid", attempts=3, paid_at=later, version_ts=20),
                       _inv("in_b", currency="gbp", due=500, version_ts=20),
                       _inv("in_c", status="open", attempts=2, version_ts=5),
                       _inv("in_f", status="paid", attempts=2, paid_at=later, due=700, paid=650),
                       _inv("in_g", created=later, due=50)])
        assert assert_exact(conn) == {
            (D0, "usd", "failed"): (3, 2000), (D0, "gbp", "failed"): (1, 500), (D1, "usd", "failed"): (1, 50),
            (D1, "usd", "recovered"): (2, 1650)}
        # the same statement again: every row conflicts, nothing changes
        _upsert(conn, [_inv("in_f", status="paid", attempts=2, paid_at=later, due=700, paid=650),
                       _inv("in_g", created=later, due=50)])
        assert_exact(conn)


def test_updates_moving_invoices_between_kinds_days_and_currencies(db: Engine) -> None:
    rng = random.Random(3)
    with db.begin() as conn:
        _upsert(conn, [_inv(f"in_{n}", status=rng.choice(["open", "paid", "uncollectible", "void", "draft"]),
                            attempts=rng.randint(0, 4), currency=rng.choice(["usd", "eur"]),
                            created=T - timedelta(hours=rng.randint(0, 72)), due=100 * n,
                            paid_at=rng.choice([None, T + timedelta(hours=rng.randint(0, 72))]))
                       for n in range(40)])
        assert_exact(conn)
    i = Invoice
    with db.begin() as conn:
        # open after a failed attempt → paid after retries, paid_at set
        conn.execute(update(i).where(i.status == "open").values(status="paid", attempt_count=i.attempt_count + 1,
                                                                amount_paid=i.amount_due, paid_at=T))
        assert_exact(conn)
        # attempt_count changes alone: paid-at-first-attempt ones become paid-after-a-retry and back
        conn.execute(update(i).where(i.status == "paid", i.attempt_count == 1).values(attempt_count=2))
        assert_exact(conn)
        conn.execute(update(i).where(i.id.in_(["in_1", "in_2", "in_3"])).values(attempt_count=1))
        assert_exact(conn)
        # paid_at moves a day (recovered day) or goes away; created moves (failed day); currency changes
        conn.execute(update(i).where(i.paid_at.is_not(None)).values(paid_at=T + timedelta(days=1)))
        conn.execute(update(i).where(i.id.in_(["in_4", "in_5"])).values(paid_at=None))
        conn.execute(update(i).where(i.currency == "eur").values(currency="jpy", created=T + timedelta(days=2)))
        assert_exact(conn)
        # amounts change; a status leaves the failed set (void); no key change at all (nets to zero); no row
        conn.execute(update(i).values(amount_due=i.amount_due + 1, amount_paid=i.amount_paid + 2))
        conn.execute(update(i).where(i.status == "uncollectible").values(status="void"))
        conn.execute(update(i).values(synced_at=T + timedelta(days=9)))
        conn.execute(update(i).where(i.id == "in_missing").values(status="open"))
        assert_exact(conn)
        # two rows swapping contributions in one statement
        conn.execute(update(i).where(i.id.in_(["in_6", "in_7"])).values(
            status=select(i.status).where(i.id == "in_7").scalar_subquery(),
            attempt_count=select(i.attempt_count).where(i.id == "in_7").scalar_subquery()))
        assert_exact(conn)


def test_deletes_and_rollbacks_including_a_savepoint(db: Engine) -> None:
    with db.begin() as conn:
        _upsert(conn, [_inv(f"in_{n}", status=("open", "paid", "draft")[n % 3], attempts=1 + n % 3,
                            paid_at=T + timedelta(days=n), due=10 * n) for n in range(12)])
    with db.connect() as conn:
        before = assert_exact(conn)
    with db.connect() as conn, conn.begin() as tx:
        conn.execute(delete(Invoice).where(Invoice.status == "paid"))
        _upsert(conn, [_inv("in_new", due=5), _inv("in_0", status="paid", attempts=3, paid_at=T, version_ts=30)])
        assert_exact(conn)
        tx.rollback()
    with db.connect() as conn:
        assert assert_exact(conn) == before
    with db.connect() as conn, conn.begin():
        conn.execute(delete(Invoice).where(Invoice.status == "draft"))  # the sync's sweep of deleted drafts
        conn.execute(delete(Invoice).where(Invoice.id == "in_1"))
        nested = conn.begin_nested()
        conn.execute(update(Invoice).values(attempt_count=5))
        _upsert(conn, [_inv("in_savepoint")])
        nested.rollback()
        assert_exact(conn)
    with db.connect() as conn:
        assert assert_exact(conn)
        conn.execute(delete(Invoice))
        assert assert_exact(conn) == {}
        conn.rollback()


def test_rebuild_equals_what_the_triggers_kept(db: Engine) -> None:
    """Dropping and reinstalling the triggers (a bulk load, a new version) rebuilds the same figures."""
    from lib.triggers import drop_derived_state

    with db.begin() as conn:
        _upsert(conn, [_inv(f"in_{n}", status=("open", "paid")[n % 2], attempts=n % 4, paid_at=T, due=n)
                       for n in range(20)])
        kept = assert_exact(conn)
        drop_derived_state(conn)
        _upsert(conn, [_inv("in_untracked", due=999)])  # written while the triggers are away
        assert ensure_derived_state(conn) is True
        assert assert_exact(conn) == {**kept, (D0, "usd", "failed"): (kept[(D0, "usd", "failed")][0] + 1,
                                                                      kept[(D0, "usd", "failed")][1] + 999)}
        assert ensure_derived_state(conn) is False


# --- queries.recovery answers as the query over `invoices` did --------------------------------------------

_MONDAY = 3 * 86400


def _recovery_from_invoices(session: Session, currency: str | None, now: datetime, weeks: int = 52) -> Any:
    """lib/queries.recovery as it was before invoice_recovery_daily (three sums over `invoices`)."""
    since = now - timedelta(weeks=weeks)
    week0 = (int(since.timestamp()) + _MONDAY) // 604800
    sqlite = session.get_bind().dialect.name == "sqlite"

    def day(col: Any) -> Any:
        return func.substr(col, 1, 10) if sqlite else func.date(func.timezone("UTC", col))

    i = Invoice
    day_c, day_p = day(i.created), day(i.paid_at)  # one expression each: GROUP BY must repeat the same binds
    cur = [i.currency == currency.lower()] if currency else []
    still_failed = (i.status.in_(["open", "uncollectible"])) & (i.attempt_count > 0)
    paid_after_failing = (i.status == "paid") & (i.attempt_count > 1)
    failed: list[Any] = []
    for cond in (still_failed, paid_after_failing):
        failed += session.execute(select(day_c, i.currency, func.sum(i.amount_due))
                                  .where(cond, i.created >= since, *cur).group_by(day_c, i.currency)).all()
    recovered = session.execute(select(day_p, i.currency, func.sum(i.amount_paid))
                                .where(paid_after_failing, i.paid_at >= since, *cur)
                                .group_by(day_p, i.currency)).all()
    weekly: dict[tuple, int] = {}
    totals: dict[str, dict[str, int]] = {}
    for kind, rows in (("failed", failed), ("recovered", recovered)):
        for d, c, amount in rows:
            d = d if isinstance(d, date) else date.fromisoformat(str(d)[:10])
            w = (d.toordinal() - date(1970, 1, 1).toordinal() + 3) // 7
            if w < week0:
                continue
            start = datetime.fromtimestamp(w * 604800 - _MONDAY, UTC).date()
            weekly[(start, c, kind)] = weekly.get((start, c, kind), 0) + int(amount)
            totals.setdefault(c, {"failed": 0, "recovered": 0})[kind] += int(amount)
    rates = [{"currency": c, "failed": t["failed"], "recovered": t["recovered"],
              "rate": (t["recovered"] / t["failed"]) if t["failed"] else None} for c, t in sorted(totals.items())]
    return queries.Recovery(weekly=[{"week": w, "currency": c, "kind": k, "amount": a}
                                    for (w, c, k), a in sorted(weekly.items())], rates=rates)


def test_recovery_reads_the_summary_and_answers_as_before(db: Engine, session: Session) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    since_day = (now - timedelta(weeks=52)).date()
    rng = random.Random(11)
    rows = []
    for n in range(400):
        created = now - timedelta(seconds=rng.randint(0, 420 * 86400))
        if created.date() == since_day:  # the old query cut that day at the exact time, the summary at the day
            continue
        status = rng.choice(["open", "uncollectible", "paid", "paid", "paid", "void"])
        attempts = rng.choice([0, 1, 1, 2, 3, 4])
        paid_at = created + timedelta(seconds=rng.randint(0, 20 * 86400)) if status == "paid" else None
        if paid_at is not None and paid_at.date() == since_day:
            continue
        rows.append(_inv(f"in_{n}", status=status, attempts=attempts, currency=rng.choice(["usd", "eur", "jpy"]),
                         created=created, due=rng.randint(1, 99) * 100, paid_at=paid_at))
    with db.begin() as conn:
        _upsert(conn, rows)
        assert_exact(conn)
    for currency in ("usd", "EUR", None):
        got = queries.recovery(session=session, currency=currency, now=now)
        want = _recovery_from_invoices(session, currency, now)
        assert got.weekly == want.weekly
        assert got.weekly
        assert all(r["week"].weekday() == 0 for r in got.weekly)
        assert got.monthly == _cohorts_from_rows(rows, currency, now)
    assert queries.recovery(session=session, currency="gbp", now=now) == queries.Recovery()


def _cohorts_from_rows(rows: list[dict[str, Any]], currency: str | None, now: datetime) -> list[dict[str, Any]]:
    """The recovery rate by month of failure, computed in Python from the invoice rows: per currency and UTC
    month of creation over the last 12 months, amount paid after a failed attempt ÷ amount due of the failed."""
    first = date(now.year - (1 if now.month < 12 else 0), now.month % 12 + 1, 1)  # 11 months before this one
    out: dict[tuple[str, date], dict[str, int]] = {}
    for r in rows:
        month = r["created"].astimezone(UTC).date().replace(day=1)
        if month < first or (currency and r["currency"] != currency.lower()):
            continue
        failed = (r["status"] in ("open", "uncollectible") and r["attempt_count"] > 0) or \
                 (r["status"] == "paid" and r["attempt_count"] > 1)
        if not failed:
            continue
        acc = out.setdefault((r["currency"], month), {"failed": 0, "recovered": 0})
        acc["failed"] += r["amount_due"]
        if r["status"] == "paid" and r["paid_at"] is not None:
            acc["recovered"] += r["amount_paid"]
    return [{"month": m, "currency": c, **t, "rate": t["recovered"] / t["failed"]} for (c, m), t in sorted(out.items())]


# --- a database at 0002 upgrades and gets the table filled --------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def url_at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to 0002 only, with the derived state 0002-era code installed (the totals)."""
    with database_at(request.param, "0002", tmp_path, _ensure_subscription_totals) as url:
        yield url


def test_a_database_at_0002_upgrades_and_gets_the_table_filled(url_at_0002: str) -> None:
    engine = create_engine(url_at_0002)
    with engine.begin() as conn:  # data written before the table existed
        _upsert(conn, [_inv("in_old1"), _inv("in_old2", status="paid", attempts=2, paid_at=T, currency="eur"),
                       _inv("in_old3", status="paid", attempts=1, paid_at=T)])
    migrate(url_at_0002)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        assert assert_exact(conn) == {(D0, "usd", "failed"): (1, 1000), (D0, "eur", "failed"): (1, 1000),
                                      (D0, "eur", "recovered"): (1, 1000)}
        _upsert(conn, [_inv("in_old1", status="paid", attempts=2, paid_at=T, version_ts=20), _inv("in_new")])
        assert_exact(conn)
    with engine.begin() as conn:
        assert ensure_derived_state(conn) is False
    # and back down: the triggers go with the table, invoices stay writable
    with engine.begin() as conn:
        cfg = alembic_config(url_at_0002)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
        _upsert(conn, [_inv("in_after_downgrade")])
        conn.execute(delete(Invoice).where(Invoice.id == "in_old1"))
    engine.dispose()
    migrate(url_at_0002)
    with engine.begin() as conn:
        assert_exact(conn)
    engine.dispose()
