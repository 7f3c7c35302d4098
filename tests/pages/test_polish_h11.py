"""Polish after issues #12/#13: a deleted customer's invoices, null currencies in filter boxes, sync errors in
words, and money of a customer without a currency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.format import money_columns
from app_pages.components.header import run_error
from app_pages.components.tables import customer_link, frame
from app_pages.components.text import plain
from lib import queries
from lib.models import utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import (
    make_customer,
    make_failed_invoice,
    make_invoice,
    make_subscription,
    make_sync_run,
)

GONE = "cus_DeletedInStripe1"


def _texts(at: AppTest) -> list[str]:
    """Every Markdown-rendered text of the page, as it reads on screen."""
    parts = [*at.title, *at.markdown, *at.caption, *at.error, *at.warning, *at.info]
    return [plain(p.value) for p in parts] + [f"{m.label} {m.value}" for m in at.metric]


# --- 1. a customer deleted in Stripe whose invoices remain ------------------------------------------------


@pytest.fixture
def orphan(session: Session) -> str:
    for i in range(30):
        make_invoice(session, GONE, amount_due=1000 + i, created=utcnow() - timedelta(days=i + 1))
    make_failed_invoice(session, GONE, amount_due=5000, id="in_OrphanFailed1")
    return GONE


def test_deleted_customer_page_says_it_is_not_in_the_cache_probably_deleted(orphan: str) -> None:
    at = run_page("customer_detail.py", query={"id": orphan})
    assert any("not in the cache" in t and "deleted in Stripe" in t for t in _texts(at))


def test_deleted_customer_page_shows_its_invoices(orphan: str) -> None:
    at = run_page("customer_detail.py", query={"id": orphan})
    invoices = next(d.value for d in at.dataframe if "amount_due" in d.value.columns)
    assert "in_OrphanFailed1" in set(invoices["id"])


def test_deleted_customer_invoices_are_paged(orphan: str) -> None:
    at = run_page("customer_detail.py", query={"id": orphan})
    invoices = next(d.value for d in at.dataframe if "amount_due" in d.value.columns)
    assert len(invoices) == 25


def test_deleted_customer_page_is_not_an_error(orphan: str) -> None:
    at = run_page("customer_detail.py", query={"id": orphan})
    assert not at.error


def test_customer_with_nothing_cached_still_says_not_in_the_cache(db: Engine) -> None:
    at = run_page("customer_detail.py", query={"id": "cus_NeverSeen1"})
    assert any("not in the cache" in plain(e.value) for e in at.error)


def test_failed_worklist_lists_a_deleted_customers_invoice_with_a_link(orphan: str) -> None:
    at = run_page("failed_invoices.py")
    df = next(d.value for d in at.dataframe if "amount_remaining" in d.value.columns)
    row = df[df["id"] == "in_OrphanFailed1"].iloc[0]
    assert row["customer"] == customer_link(GONE)


# --- 2. null currencies never reach a select box ---------------------------------------------------------


def test_failed_currencies_leaves_out_a_missing_currency(session: Session) -> None:
    c = make_customer(session)
    make_failed_invoice(session, c, currency="")  # invoices.currency is NOT NULL; the sync writes '' for none
    make_failed_invoice(session, c, currency="eur")
    assert queries.failed_currencies(session=session) == ["eur"]


def test_customer_currencies_leave_out_an_empty_currency(session: Session) -> None:
    make_customer(session, currency="")
    make_customer(session, currency=None)
    make_customer(session, currency="gbp")
    assert queries.customer_currencies(session=session) == ["gbp"]


def test_subscription_currency_choices_leave_out_a_missing_currency(session: Session) -> None:
    c = make_customer(session)
    make_subscription(session, c, currency=None)
    make_subscription(session, c, currency="usd")
    assert [code for code, _ in queries.subscription_choices(session=session)["currencies"]] == ["usd"]


def test_failed_page_currency_box_has_no_none_option(session: Session) -> None:
    c = make_customer(session)
    make_failed_invoice(session, c, currency=None)
    at = run_page("failed_invoices.py")
    assert "None" not in at.selectbox(key="fi_currency").options


# --- 3. a failed sync run's error in words, never the driver's text ---------------------------------------

RAW = ("customers: OperationalError: (psycopg.OperationalError) connection failed: connection to server at "
       "\"127.0.0.1\", port 5432 failed: FATAL:  the database system is shutting down")


@pytest.fixture
def failed_run(session: Session) -> None:
    make_sync_run(session, status="failed", error=RAW)


def test_sync_runs_table_has_no_driver_text(failed_run: None) -> None:
    at = run_page("sync.py")
    runs = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert "psycopg" not in runs.iloc[0]["error"]


def test_sync_runs_table_names_the_cause_and_what_to_do(failed_run: None) -> None:
    at = run_page("sync.py")
    runs = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert "DATABASE_URL" in runs.iloc[0]["error"]


def test_last_run_failed_message_has_no_driver_text(failed_run: None) -> None:
    at = run_page("sync.py")
    message = next(plain(e.value) for e in at.error if "last run failed" in e.value)
    assert "FATAL" not in message


def test_last_run_failed_message_says_the_cache_could_not_be_written(failed_run: None) -> None:
    at = run_page("sync.py")
    message = next(plain(e.value) for e in at.error if "last run failed" in e.value)
    assert "cache database could not be written" in message


def test_an_unexpected_error_names_its_class_and_the_log(session: Session) -> None:
    make_sync_run(session, status="failed", error="invoices: KeyError: 'lines' at /srv/app/lib/mapping.py")
    at = run_page("sync.py")
    message = next(plain(e.value) for e in at.error if "last run failed" in e.value)
    assert "KeyError" in message
    assert "log" in message
    assert "/srv/app" not in message


def test_a_stripe_error_message_is_kept(session: Session) -> None:
    make_sync_run(session, status="failed", error="invoices: Stripe answered 429 too many times; try again later.")
    at = run_page("sync.py")
    runs = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert runs.iloc[0]["error"] == "invoices: Stripe answered 429 too many times; try again later."


# --- 5. no currency never reads as USD; a zero balance is a formatted zero ---------------------------------


@pytest.fixture
def no_currency(session: Session) -> str:
    return make_customer(session, email="nocur@example.com", currency=None, balance=0, mrr=0).id


def test_no_currency_customer_detail_never_says_usd(no_currency: str) -> None:
    at = run_page("customer_detail.py", query={"id": no_currency})
    assert [t for t in _texts(at) if "USD" in t] == []


def test_zero_balance_is_a_formatted_zero(no_currency: str) -> None:
    at = run_page("customer_detail.py", query={"id": no_currency})
    assert {m.label: m.value for m in at.metric}["Balance"] == "0.00"


def test_zero_balance_shows_the_currency(session: Session) -> None:
    cid = make_customer(session, currency="eur", balance=0).id
    at = run_page("customer_detail.py", query={"id": cid})
    assert {m.label: m.value for m in at.metric}["Balance"] == "0.00 EUR"


def test_money_column_of_a_table_with_a_customer_without_currency_has_no_dollar_sign() -> None:
    df = frame([{"currency": "usd", "mrr": 100}, {"currency": None, "mrr": 100}], money=("mrr",))
    money_columns(df, {"mrr": "MRR"})
    assert "$" not in "".join(df["mrr"])


def test_run_error_classifies_each_resource_of_a_run() -> None:
    stored = ("customers: Stripe answered 429 too many times; try again later.; "
              "writing a page: IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: customers.id")
    shown = run_error(stored)
    assert shown.startswith("customers: Stripe answered 429 too many times; try again later.; writing a page: "
                            "the cache database could not be written (IntegrityError)")


def test_run_error_drops_the_driver_text_of_every_part() -> None:
    stored = "customers: OperationalError: database is locked; invoices: DataError: (psycopg.DataError) NUL"
    assert "psycopg" not in run_error(stored)
