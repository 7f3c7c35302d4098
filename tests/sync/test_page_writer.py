"""The sync's page writer: a page and its cursor in one transaction, newer wins, children follow their parent;
on PostgreSQL a page is sent whole and settled while the next one is prepared (lib/sync/writer.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from lib.sync import PageWriter, get_state
from tests.utils.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
T = 1_760_000_000


def _customer(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": f"cus_{i:04d}", "object": "customer", "email": f"u{i}@example.com", "name": f"User {i}",
            "created": T + i, "currency": "usd", "livemode": False, "metadata": {}, **kw}


def _subscription(i: int, customer: str, *, items: int = 1, amount: int = 1000) -> dict[str, Any]:
    price = {"id": "price_1", "object": "price", "unit_amount": amount, "currency": "usd", "product": "prod_1",
             "recurring": {"interval": "month", "interval_count": 1}}
    data = [{"id": f"si_{i:04d}_{k}", "object": "subscription_item", "price": price, "quantity": 1,
             "current_period_start": T, "current_period_end": T + 30 * 86400} for k in range(items)]
    return {"id": f"sub_{i:04d}", "object": "subscription", "customer": customer, "status": "active",
            "created": T + i, "currency": "usd", "items": {"object": "list", "data": data, "has_more": False},
            "livemode": False, "metadata": {}}


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_pages_land_with_their_cursors_and_report_rows_written(db: Engine) -> None:
    written: dict[str, int] = {}
    with PageWriter(db, on_written=lambda r, n: written.__setitem__(r, written.get(r, 0) + n)) as writer:
        writer.write("customers", [_customer(i) for i in range(3)], T, cursor="cus_0002")
        writer.write("subscriptions", [_subscription(1, "cus_0001", items=2), _subscription(2, "cus_0002")],
                     T, cursor="sub_0002")
    assert written == {"customers": 3, "subscriptions": 2}
    assert _scalar(db, "SELECT COUNT(*) FROM subscription_items") == 3
    assert _scalar(db, "SELECT mrr FROM customers WHERE id = 'cus_0001'") == 2000  # two items of 10.00
    assert get_state(db, "customers")["backfill_cursor"] == "cus_0002"
    assert get_state(db, "subscriptions")["backfill_cursor"] == "sub_0002"


def test_a_customer_written_after_its_subscriptions_gets_their_mrr(db: Engine) -> None:
    with PageWriter(db) as writer:
        writer.write("subscriptions", [_subscription(1, "cus_0007", amount=2500)], T)
        writer.write("customers", [_customer(7)], T)
    assert _scalar(db, "SELECT mrr FROM customers WHERE id = 'cus_0007'") == 2500


def test_an_older_page_changes_nothing_not_even_the_children(db: Engine) -> None:
    written: list[int] = []
    with PageWriter(db, on_written=lambda _r, n: written.append(n)) as writer:
        writer.write("subscriptions", [_subscription(1, "cus_0001", items=3)], T + 10)
        writer.write("subscriptions", [_subscription(1, "cus_0001", items=1)], T)  # an older state
    assert written == [1, 0]
    assert _scalar(db, "SELECT COUNT(*) FROM subscription_items WHERE subscription_id = 'sub_0001'") == 3
    with PageWriter(db) as writer:  # an equal-or-newer state replaces the children
        writer.write("subscriptions", [_subscription(1, "cus_0001", items=1)], T + 10)
    assert _scalar(db, "SELECT COUNT(*) FROM subscription_items WHERE subscription_id = 'sub_0001'") == 1


@contextmanager
def refusing(db: Engine, table: str, row_id: str, message: str) -> Iterator[None]:
    """A trigger that makes the database refuse one row id of `table` with `message`: a real error from the
    real server, raised inside the page's transaction. Names come from the test, never from input."""
    name = f"refuse_{table}"
    with db.begin() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.id = '{row_id}' THEN RAISE EXCEPTION '{message}'; END IF; RETURN NEW; END $$"))
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
                              f"EXECUTE FUNCTION {name}()"))
        else:
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN NEW.id = '{row_id}' "
                              f"BEGIN SELECT RAISE(ABORT, '{message}'); END"))
    try:
        yield
    finally:
        with db.begin() as conn:
            conn.execute(text(f"DROP TRIGGER {name}" + (f" ON {table}" if db.dialect.name == "postgresql" else "")))
            if db.dialect.name == "postgresql":
                conn.execute(text(f"DROP FUNCTION {name}()"))


@pytest.fixture
def refuse_customer(db: Engine) -> Iterator[None]:
    with refusing(db, "customers", "cus_0666", "refused by test trigger"):
        yield


def test_a_refused_page_writes_nothing_keeps_the_cursor_and_fails_its_resource(
        db: Engine, refuse_customer: None) -> None:
    writer = PageWriter(db)
    writer.write("customers", [_customer(1)], T, cursor="cus_0001")
    with pytest.raises(Exception, match="refused by test trigger"):
        writer.write("customers", [_customer(2), _customer(666)], T, cursor="cus_0666")
        writer.flush("customers")
    writer.close()
    assert _scalar(db, "SELECT COUNT(*) FROM customers") == 1  # cus_0002 went with the refused page
    assert get_state(db, "customers")["backfill_cursor"] == "cus_0001"
    with PageWriter(db) as again:  # the connection went back to the pool clean
        again.write("customers", [_customer(2)], T, cursor="cus_0002")
    assert _scalar(db, "SELECT COUNT(*) FROM customers") == 2


@pytest.fixture
def refuse_item(db: Engine) -> Iterator[None]:
    """Refuses one subscription item: the page's parent upsert has already run by then."""
    with refusing(db, "subscription_items", "si_0002_0", "item refused by test trigger"):
        yield


def test_a_page_failing_in_a_later_statement_leaves_nothing_of_its_earlier_ones(db: Engine, refuse_item: None) -> None:
    with PageWriter(db) as writer:
        writer.write("customers", [_customer(1), _customer(2)], T, cursor="cus_0002")
    writer = PageWriter(db)
    with pytest.raises(Exception, match="item refused by test trigger"):
        writer.write("subscriptions", [_subscription(1, "cus_0001"), _subscription(2, "cus_0002")], T,
                     cursor="sub_0002")
        writer.flush("subscriptions")
    writer.close()
    # the upsert of the two subscriptions, the mrr of their customers and the cursor ran before the items:
    # one transaction, so none of it stayed
    assert _scalar(db, "SELECT COUNT(*) FROM subscriptions") == 0
    assert _scalar(db, "SELECT COUNT(*) FROM subscription_items") == 0
    assert _scalar(db, "SELECT COALESCE(SUM(mrr), 0) FROM customers") == 0
    assert get_state(db, "subscriptions")["backfill_cursor"] is None


@pytest.fixture
def pg(db: Engine) -> Engine:
    if db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite pages are written synchronously, in-process")
    return db


def test_a_page_refused_as_a_serialization_failure_is_sent_again(pg: Engine) -> None:
    with pg.begin() as conn:  # the first attempt fails as PostgreSQL fails a concurrent writer; a sequence
        conn.execute(text("CREATE SEQUENCE IF NOT EXISTS fail_once"))  # is not rolled back with it
        conn.execute(text(
            "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('fail_once') = 1 THEN RAISE EXCEPTION 'try again' USING ERRCODE = '40001'; END IF; "
            "RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER fail_once BEFORE INSERT ON customers FOR EACH ROW "
                          "EXECUTE FUNCTION fail_once()"))
    try:
        written: list[int] = []
        with PageWriter(pg, on_written=lambda _r, n: written.append(n)) as writer:
            writer.write("customers", [_customer(1), _customer(2)], T, cursor="cus_0002")
        assert written == [2]
        assert _scalar(pg, "SELECT COUNT(*) FROM customers") == 2
        assert _scalar(pg, "SELECT last_value FROM fail_once") == 3  # one failed row, then both rows
    finally:
        with pg.begin() as conn:
            conn.execute(text("DROP TRIGGER fail_once ON customers"))
            conn.execute(text("DROP FUNCTION fail_once()"))
            conn.execute(text("DROP SEQUENCE fail_once"))


def test_a_sent_page_is_committed_even_if_the_process_is_killed_before_reading_the_answer(
        pg: Engine, db_url: str) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from lib.db import get_engine
        from lib.sync import PageWriter
        writer = PageWriter(get_engine({db_url!r}))
        writer.write("customers", [{{"id": f"cus_{{i:04d}}", "created": {T}, "email": "k@example.com"}}
                                   for i in range(100)], {T}, cursor="cus_0099")
        os.kill(os.getpid(), signal.SIGKILL)  # the page is in flight: sent, never settled
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DATABASE_URL": db_url})
    assert done.returncode == -signal.SIGKILL, done.stderr
    wait_until(lambda: _scalar(pg, "SELECT COUNT(*) FROM customers") == 100, timeout=10,
               what="the 100 customers the killed sync committed")
    assert get_state(pg, "customers")["backfill_cursor"] == "cus_0099"


def test_pages_still_write_after_other_work_resets_prepared_statements(pg: Engine) -> None:
    with PageWriter(pg) as writer:
        writer.write("customers", [_customer(1)], T, cursor="cus_0001")
    for _ in range(3):  # pooled connections: psycopg prepares repeated queries, then drops them all after a
        with pg.connect() as conn:  # ROLLBACK (DEALLOCATE ALL): the writer's statements must not be among them
            for _ in range(6):
                conn.execute(text("SELECT COUNT(*) FROM customers")).scalar()
            conn.rollback()
            conn.execute(text("DROP TABLE IF EXISTS writer_probe"))
            conn.commit()
    with PageWriter(pg) as writer:
        writer.write("customers", [_customer(2)], T, cursor="cus_0002")
    assert _scalar(pg, "SELECT COUNT(*) FROM customers") == 2


def test_a_lost_connection_fails_only_the_resource_whose_page_was_in_flight(pg: Engine) -> None:
    with pg.begin() as conn:  # customers pages take a second on the server: still in flight when the end comes
        conn.execute(text("CREATE FUNCTION slow_page() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "PERFORM pg_sleep(1); RETURN NULL; END $$"))
        conn.execute(text("CREATE TRIGGER slow_page AFTER INSERT ON customers FOR EACH STATEMENT "
                          "EXECUTE FUNCTION slow_page()"))
    try:
        writer = PageWriter(pg)
        writer.write("customers", [_customer(1)], T, cursor="cus_0001")  # sent, not settled
        with pg.connect() as conn:  # the server ends the writer's connection (a restart, a failover)
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": writer.backend_pid()})
        writer.write("subscriptions", [_subscription(1, "cus_0001")], T, cursor="sub_0001")
        writer.flush("subscriptions")  # another resource carries on, on a new connection
        assert get_state(pg, "subscriptions")["backfill_cursor"] == "sub_0001"
        with pytest.raises(Exception, match="terminat|connection|server closed"):
            writer.write("customers", [_customer(2)], T, cursor="cus_0002")  # stops before its lost page
        assert _scalar(pg, "SELECT COUNT(*) FROM customers") == 0
        assert get_state(pg, "customers")["backfill_cursor"] is None
        writer.close()
    finally:
        with pg.begin() as conn:
            conn.execute(text("DROP TRIGGER slow_page ON customers"))
            conn.execute(text("DROP FUNCTION slow_page()"))
