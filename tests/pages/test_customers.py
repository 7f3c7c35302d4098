"""Customers page: the one search box, each filter, sorting, paging, the CSV of all pages."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.exports import export_csv, query_maker
from app_pages.components.text import plain
from lib import queries
from lib.auth import DEMO_USER
from lib.db import session_scope
from lib.models import UTC, utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import (
    make_customer,
    make_failed_invoice,
    make_invoice,
    make_payment_method,
    make_subscription,
)


@pytest.fixture
def people(session: Session) -> dict[str, str]:
    jane = make_customer(session, email="Jane.Doe+vip@Example.com", name="Jane Doe", delinquent=True, mrr=2500,
                         created=datetime(2026, 3, 1, tzinfo=UTC))
    make_subscription(session, jane, status="active", mrr=2500)
    make_failed_invoice(session, jane, amount_due=2500)
    jose = make_customer(session, email="jose@example.org", name="José García", currency="eur", mrr=900,
                         created=datetime(2025, 1, 15, tzinfo=UTC))
    make_subscription(session, jose, status="past_due", currency="eur", mrr=900)
    make_invoice(session, jose, status="paid")
    gone = make_customer(session, email="gone@example.com", name="Gone Away", deleted=True)
    phoned = make_customer(session, email="phoned@example.com", name="Pat Phone", phone="+1 415 555 0100")
    make_payment_method(session, phoned, card_last4="1234")
    for i in range(30):
        make_customer(session, email=f"filler{i:02d}@example.net", name=f"Filler {i:02d}",
                      created=utcnow() - timedelta(days=400 + i))
    return {"jane": jane.id, "jose": jose.id, "gone": gone.id, "phoned": phoned.id}


def ids(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["id"]) if at.dataframe else []


def search(text: str) -> AppTest:
    return run_page("customers.py", cust_search=text)


def test_upper_case_email_finds_the_customer(people: dict[str, str]) -> None:
    at = search("JANE.DOE+VIP@EXAMPLE.COM")
    assert not at.exception
    assert ids(at) == [people["jane"]]


def test_email_without_plus_tag_finds_the_customer(people: dict[str, str]) -> None:
    assert ids(search("jane.doe@example.com")) == [people["jane"]]


def test_single_result_offers_a_link_to_the_detail(people: dict[str, str]) -> None:
    at = search("jose@example.org")
    assert any(f"customer?id={people['jose']}" in m.value for m in at.markdown)


@pytest.mark.parametrize("text,who", [
    ("jose garcia", "jose"), ("GARCÍA", "jose"), ("+1 (415) 555-0100", "phoned"), ("1234", "phoned"),
])
def test_name_phone_and_card_last4(people: dict[str, str], text: str, who: str) -> None:
    assert ids(search(text)) == [people[who]]


def test_customer_id_search(people: dict[str, str]) -> None:
    assert ids(search(people["jose"])) == [people["jose"]]


@pytest.mark.parametrize("text,hint", [
    ("%", "Type at least two letters"), ("x" * 300, "type at most 200"), ("+1 000 000", "country code"),
    ("cus_<script>", "ids look like cus_"), ("a\x07b", "retype it"),
])
def test_bad_search_text_gives_a_hint_not_a_traceback(people: dict[str, str], text: str, hint: str) -> None:
    at = search(text)
    assert not at.exception
    assert at.warning or at.info, "the user must be told what to type instead"
    assert any(hint in plain(w.value) for w in at.warning), [w.value for w in at.warning]
    assert not at.dataframe


def test_no_match_says_what_to_try(people: dict[str, str]) -> None:
    at = search("nobody@nowhere.example")
    assert not at.exception
    assert not at.dataframe
    assert "No customer matches" in at.info[0].value


def test_filters(people: dict[str, str]) -> None:
    at = run_page("customers.py")
    assert len(ids(at)) == 25  # first page; deleted customers hidden
    at.checkbox(key="cust_delinquent").check().run()
    assert ids(at) == [people["jane"]]
    at.checkbox(key="cust_delinquent").uncheck().run()
    at.checkbox(key="cust_unpaid").check().run()
    assert ids(at) == [people["jane"]]
    at.checkbox(key="cust_unpaid").uncheck().run()
    at.selectbox(key="cust_sub_status").select("past_due").run()
    assert ids(at) == [people["jose"]]
    at.selectbox(key="cust_sub_status").select("Any").run()
    at.selectbox(key="cust_currency").select("EUR").run()
    assert ids(at) == [people["jose"]]
    at.selectbox(key="cust_currency").select("Any").run()
    at.date_input(key="cust_from").set_value(date(2025, 1, 1)).run()
    at.date_input(key="cust_to").set_value(date(2025, 1, 31)).run()
    assert ids(at) == [people["jose"]]


def test_include_deleted(people: dict[str, str]) -> None:
    at = search("gone@example.com")
    assert ids(at) == []
    at.checkbox(key="cust_deleted").check().run()
    assert ids(at) == [people["gone"]]
    at.text_input(key="cust_search").set_value("").run()  # no filter at all: every customer, counted right
    assert any(c.value.startswith("34 customer(s)") for c in at.caption), [c.value for c in at.caption]  # 4 + 30


def test_sort_by_mrr(people: dict[str, str]) -> None:
    at = run_page("customers.py", cust_sort="Highest MRR")
    assert ids(at)[:2] == [people["jane"], people["jose"]]
    mrr = at.dataframe[0].value["mrr"]
    assert list(mrr.iloc[:2]) == ["25.00 USD", "9.00 EUR"]  # minor units as major units, each in its currency


def test_paging(people: dict[str, str]) -> None:
    at = run_page("customers.py")
    first = ids(at)
    assert len(first) == 25
    assert any("of 33" in c.value for c in at.caption)
    at.button(key="cust_next").click().run()
    second = ids(at)
    assert len(second) == 8
    assert not set(first) & set(second)
    assert at.button(key="cust_next").disabled
    at.button(key="cust_prev").click().run()
    assert ids(at) == first


def test_changing_a_filter_goes_back_to_page_one(people: dict[str, str]) -> None:
    at = run_page("customers.py")
    at.button(key="cust_next").click().run()
    at.text_input(key="cust_search").input("filler").run()
    assert len(ids(at)) == 25
    assert any("Page 1" in c.value for c in at.caption)


def test_csv_has_every_page(people: dict[str, str]) -> None:
    at = run_page("customers.py")
    assert at.get("download_button"), "the page offers the CSV"
    # the bytes the download button hands the browser (the same call the button's callable makes)
    filters = queries.CustomerFilters(sort="mrr")
    out = export_csv(DEMO_USER, action="export_customers", page="customers", filters=filters,
                     make=query_maker("export_customers_csv", filters=filters))
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert len(rows) == 33  # more than one page, deleted excluded
    assert rows[0]["Customer"] == people["jane"]
    assert rows[0]["MRR"] == "25.00"
    assert rows[0]["Email"].startswith("Jane")
    with session_scope() as s:
        only = queries.export_customers_csv(session=s, filters=queries.CustomerFilters(q="JOSE@EXAMPLE.ORG"))
    rows = list(csv.DictReader(io.StringIO(only.read().decode())))
    assert [r["Customer"] for r in rows] == [people["jose"]]
    assert rows[0]["Currency"] == "eur"


def test_empty_cache_says_run_a_sync_whatever_the_sort(db: Engine) -> None:
    at = run_page("customers.py", cust_sort="Highest MRR")
    assert not at.exception, at.exception
    assert any("holds no customers yet" in i.value and "Sync page" in i.value for i in at.info)
    at = run_page("subscriptions.py", subs_sort="Highest MRR")
    assert any("holds no subscriptions yet" in i.value for i in at.info)
