"""The schema's derived state and migrations: subscription_totals stays equal to SUM over `subscriptions` through
every kind of write (PostgreSQL's statement-level triggers see whole statements, so mixed ones are tested), a
database at revision 0001 (row-level triggers, the old indexes) upgrades in place, and the indexes in the
database are the ones lib/models.py declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, delete, func, inspect, select, text, update
from sqlmodel import Session, SQLModel

from lib import queries
from lib.db import alembic_config, migrate
from lib.models import Subscription, SubscriptionTotal, utcnow
from lib.triggers import _ensure_subscription_totals, ensure_derived_state
from tests.utils.migrations import database_at, head_revision

# The PostgreSQL row-level triggers as installed before migration 0002 (what an existing database still has).
_ADD = ("INSERT INTO subscription_totals (status, currency, subscriptions, mrr) "
        "VALUES (NEW.status, coalesce(NEW.currency, ''), 1, NEW.mrr) ON CONFLICT (status, currency) DO UPDATE "
        "SET subscriptions = subscription_totals.subscriptions + 1, mrr = subscription_totals.mrr + excluded.mrr;")
_SUB = ("UPDATE subscription_totals SET subscriptions = subscriptions - 1, mrr = mrr - OLD.mrr "
        "WHERE status = OLD.status AND currency = coalesce(OLD.currency, '');")
OLD_PG_ROW_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION subscription_totals_apply() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path FROM CURRENT AS $$ BEGIN "
    f"IF TG_OP <> 'INSERT' THEN {_SUB} END IF; "
    f"IF TG_OP <> 'DELETE' THEN {_ADD} END IF; "
    "RETURN NULL; END $$",
    "CREATE TRIGGER trg_subscription_totals_ins AFTER INSERT ON subscriptions FOR EACH ROW "
    "EXECUTE FUNCTION subscription_totals_apply()",
    "CREATE TRIGGER trg_subscription_totals_del AFTER DELETE ON subscriptions FOR EACH ROW "
    "EXECUTE FUNCTION subscription_totals_apply()",
    "CREATE TRIGGER trg_subscription_totals_upd AFTER UPDATE OF status, currency, mrr ON subscriptions "
    "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.currency IS DISTINCT FROM NEW.currency "
    "OR OLD.mrr IS DISTINCT FROM NEW.mrr) EXECUTE FUNCTION subscription_totals_apply()",
)


def _sub(sid: str, status: str = "active", currency: str | None = "usd", mrr: int = 1000,
         version_ts: int = 10) -> dict[str, Any]:
    return {"id": sid, "customer_id": f"cus_{sid}", "status": status, "currency": currency, "mrr": mrr,
            "created": utcnow(), "cancel_at_period_end": False, "discounts": [], "metadata": {},
            "livemode": False, "version_ts": version_ts, "synced_at": utcnow()}


def _upsert(conn: Any, rows: list[dict[str, Any]]) -> Any:
    """One `INSERT … ON CONFLICT (id) DO UPDATE … WHERE newer` statement, the sync's shape of write."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = Subscription.__table__
    stmt = insert(table).values(rows)
    return conn.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={c: stmt.excluded[c] for c in ("status", "currency", "mrr", "version_ts")},
        where=stmt.excluded.version_ts >= table.c.version_ts))


def _state(conn: Any) -> tuple[list[tuple], list[tuple]]:
    """(totals, sums): subscription_totals' non-empty rows and the same figures summed from the rows."""
    t = SubscriptionTotal
    totals = conn.execute(select(t.status, t.currency, t.subscriptions, t.mrr).where(t.subscriptions != 0)
                          .order_by(t.status, t.currency)).all()
    s = Subscription
    cur = func.coalesce(s.currency, "")
    sums = conn.execute(select(s.status, cur, func.count(), func.sum(s.mrr)).group_by(s.status, cur)
                        .order_by(s.status, cur)).all()
    return [tuple(int(v) if i > 1 else v for i, v in enumerate(r)) for r in totals], \
        [tuple(int(v) if i > 1 else v for i, v in enumerate(r)) for r in sums]


def assert_exact(conn: Any) -> list[tuple]:
    totals, sums = _state(conn)
    assert totals == sums
    return totals


def test_one_upsert_that_inserts_updates_and_skips_rows(db: Engine) -> None:
    with db.begin() as conn:
        _upsert(conn, [_sub("sub_a"), _sub("sub_b", currency="eur", mrr=500), _sub("sub_c", mrr=300)])
        assert assert_exact(conn) == [("active", "eur", 1, 500), ("active", "usd", 2, 1300)]
    with db.begin() as conn:
        # one statement: sub_a changes status and mrr, sub_b moves currency, sub_c is an older state (skipped
        # by the WHERE), sub_d and sub_e are new (one without a currency)
        _upsert(conn, [_sub("sub_a", status="past_due", mrr=1500, version_ts=20),
                       _sub("sub_b", currency="gbp", mrr=500, version_ts=20),
                       _sub("sub_c", status="canceled", mrr=0, version_ts=5),
                       _sub("sub_d", status="trialing", mrr=0), _sub("sub_e", currency=None, mrr=700)])
        assert assert_exact(conn) == [("active", "", 1, 700), ("active", "gbp", 1, 500), ("active", "usd", 1, 300),
                                      ("past_due", "usd", 1, 1500), ("trialing", "usd", 1, 0)]
        # the same statement again: every row conflicts, nothing changes
        _upsert(conn, [_sub("sub_d", status="trialing", mrr=0), _sub("sub_e", currency=None, mrr=700)])
        assert_exact(conn)


def test_multi_row_updates_moving_rows_between_keys_and_updates_that_change_nothing(db: Engine) -> None:
    with db.begin() as conn:
        _upsert(conn, [_sub(f"sub_{i}", currency=("usd", "eur", None)[i % 3], mrr=100 * i) for i in range(12)])
        s = Subscription
        conn.execute(update(s).where(s.id.in_(["sub_0", "sub_1", "sub_2"])).values(status="past_due"))
        conn.execute(update(s).where(s.currency == "eur").values(currency="usd", mrr=s.mrr + 1))
        conn.execute(update(s).where(s.currency.is_(None)).values(currency="jpy"))
        conn.execute(update(s).values(synced_at=utcnow()))  # no key or mrr change: nets to zero
        conn.execute(update(s).where(s.id == "sub_missing").values(status="canceled"))  # no row
        # a row swapping keys with another in one statement: the counts stay, the mrr moves
        conn.execute(update(s).where(s.id.in_(["sub_3", "sub_0"])).values(
            status=func.coalesce(select(s.status).where(s.id == "sub_3").scalar_subquery(), "x")))
        assert_exact(conn)
        assert {r[0] for r in assert_exact(conn)} == {"active", "past_due"}


def test_deletes_and_rollbacks_including_a_savepoint(db: Engine) -> None:
    with db.begin() as conn:
        _upsert(conn, [_sub(f"sub_{i}", status=("active", "canceled")[i % 2], mrr=10 * i) for i in range(10)])
    with db.connect() as conn:
        before = assert_exact(conn)
    with db.connect() as conn, conn.begin() as tx:
        conn.execute(delete(Subscription).where(Subscription.status == "canceled"))
        _upsert(conn, [_sub("sub_new", mrr=5), _sub("sub_0", status="unpaid", version_ts=30)])
        assert_exact(conn)
        tx.rollback()
    with db.connect() as conn:
        assert assert_exact(conn) == before
    with db.connect() as conn, conn.begin():
        conn.execute(delete(Subscription).where(Subscription.id == "sub_1"))
        nested = conn.begin_nested()
        conn.execute(update(Subscription).values(mrr=1))
        _upsert(conn, [_sub("sub_savepoint")])
        nested.rollback()
        assert_exact(conn)
    with db.connect() as conn:
        after = assert_exact(conn)
        assert ("canceled", "usd", 4, 10 * (3 + 5 + 7 + 9)) in after
        conn.execute(delete(Subscription))
        assert assert_exact(conn) == []
        conn.rollback()


def test_totals_match_the_queries_view(session: Session) -> None:
    """The page reads what the triggers keep: per (status, currency), '' shown as no currency."""
    with session.get_bind().begin() as conn:
        _upsert(conn, [_sub("sub_x", currency=None, mrr=700), _sub("sub_y", status="past_due", mrr=200)])
    got = queries.subscription_totals(session=session, filters=queries.SubscriptionFilters())
    assert [(r["status"], r["currency"], r["count"], r["mrr"]) for r in got] == [
        ("active", None, 1, 700), ("past_due", "usd", 1, 200)]


# --- the schema in the database is the one lib/models.py declares ------------------------------------------


def test_database_indexes_match_the_models(db: Engine) -> None:
    with db.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    index_diffs = [(d[0], d[1].name) for d in diffs if isinstance(d, tuple) and d[0] in ("add_index", "remove_index")]
    assert [d for d in index_diffs if d[1] != "ix_customers_name_trgm"] == []  # the optional trigram index
    declared = {i.name: i for t in SQLModel.metadata.tables.values() for i in t.indexes}
    with db.connect() as conn:
        have = {i["name"] for t in SQLModel.metadata.tables for i in inspect(conn).get_indexes(t)}
    assert have - {"ix_customers_name_trgm"} == set(declared)


# --- upgrading a database created at 0001 ---------------------------------------------------------------


def _triggers_of_0001(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        for ddl in OLD_PG_ROW_TRIGGERS:
            conn.execute(text(ddl))
    else:  # SQLite's totals triggers did not change (invoice_recovery_daily came with 0003)
        _ensure_subscription_totals(conn)


@pytest.fixture(params=["sqlite", "postgresql"])
def url_at_0001(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to 0001 only, with the triggers 0001-era code installed."""
    with database_at(request.param, "0001", tmp_path, _triggers_of_0001) as url:
        yield url


def test_a_database_at_0001_with_row_triggers_upgrades_in_place(url_at_0001: str) -> None:
    engine = create_engine(url_at_0001)
    with engine.begin() as conn:  # data written under the old triggers
        _upsert(conn, [_sub("sub_old1"), _sub("sub_old2", status="past_due", currency="eur", mrr=300)])
        assert_exact(conn)
        assert "ix_subscriptions_status" in {i["name"] for i in inspect(conn).get_indexes("subscriptions")}
    migrate(url_at_0001)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        if conn.dialect.name == "postgresql":
            rows = conn.execute(text(
                "SELECT t.tgname, t.tgtype & 1, t.tgnewtable IS NOT NULL OR t.tgoldtable IS NOT NULL "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = 'subscriptions' "
                "AND c.relnamespace = to_regnamespace(current_schema())::oid AND NOT t.tgisinternal "
                "ORDER BY 1")).all()
            assert rows == [("trg_subscription_totals_del", 0, True), ("trg_subscription_totals_ins", 0, True),
                            ("trg_subscription_totals_upd", 0, True)]  # statement-level, transition tables
            assert conn.execute(text("SELECT to_regproc('subscription_totals_apply')")).scalar() is None
        assert_exact(conn)
        _upsert(conn, [_sub("sub_old1", status="canceled", mrr=0, version_ts=20), _sub("sub_new3")])
        assert_exact(conn)
        have = {i["name"] for t in SQLModel.metadata.tables for i in inspect(conn).get_indexes(t)}
    declared = {i.name for t in SQLModel.metadata.tables.values() for i in t.indexes}
    assert have - {"ix_customers_name_trgm"} == declared
    assert ensure_derived_state_is_idempotent(engine)
    engine.dispose()


def ensure_derived_state_is_idempotent(engine: Engine) -> bool:
    with engine.begin() as conn:
        return ensure_derived_state(conn) is False


def test_migration_0002_downgrades_to_0001_and_back(url_at_0001: str) -> None:
    migrate(url_at_0001)
    cfg = alembic_config(url_at_0001)
    engine = create_engine(url_at_0001)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        have = {i["name"] for i in inspect(conn).get_indexes("invoices")}
        assert {"ix_invoices_status", "ix_invoices_customer_id", "ix_invoices_decline_code"} <= have
    engine.dispose()
    migrate(url_at_0001)


# --- the partial indexes are usable: each database proves the query's filter implies the index's WHERE --------


def _plan(conn: Any, stmt: Any) -> str:
    """The plan of `stmt` (values inlined), with sequential scans and sorts discouraged on PostgreSQL: on an
    almost empty table the planner would rightly read the table; the question is whether it *can* use the
    index."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    return " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))


@pytest.mark.parametrize("name,build", [
    ("ix_customers_delinquent_created",
     lambda s: queries._customers_stmt(s, queries.CustomerFilters(delinquent=True))),
    ("ix_subscriptions_canceling_created",
     lambda s: queries._subs_where(select(Subscription.id), queries.SubscriptionFilters(cancel_at_period_end=True))
     .order_by(Subscription.created.desc(), Subscription.id.desc())),
    ("ix_subscriptions_canceling_currency_created",
     lambda s: queries._subs_where(select(Subscription.id), queries.SubscriptionFilters(
         cancel_at_period_end=True, currency="eur")).order_by(Subscription.created.desc(), Subscription.id.desc())),
])
def test_the_pages_filters_use_the_partial_indexes(session: Session, name: str, build: Any) -> None:
    with session.get_bind().connect() as conn, conn.begin():
        assert name in _plan(conn, build(session))


def test_the_failed_worklist_by_date_uses_the_unpaid_index_on_postgresql(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite reads the covering index (it does not match `status IN (?, ?)` to a partial index)")
    from lib.models import Invoice

    f = queries.FailedFilters(sort="created")
    stmt = queries._failed_where(queries._failed_from(select(Invoice.id), f), f, utcnow()).order_by(
        Invoice.created.desc(), Invoice.id.desc()).limit(26)
    with session.get_bind().connect() as conn, conn.begin():
        assert "ix_invoices_unpaid_created" in _plan(conn, stmt)
