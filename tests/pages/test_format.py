"""The one formatting layer (lib/money, app_pages/components/format, lib/export's raw cells): money in the
currency's own decimals with thousands separators, balances in words, dates with a relative hint, ticks,
counts; and the CSV's raw values. Properties over any amount and currency, hostile ones included."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from app_pages.components import format as fmt
from app_pages.components.tables import frame
from lib.export import csv_text, raw
from lib.money import decimals, format_money, major
from tests.messy.strategies import amount as any_amount
from tests.messy.strategies import currency as any_currency

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
# an amount as the dashboard shows it: optional minus, thousands groups, the currency's decimals, its code
SHOWN = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)?( [A-Z]{3})?$")
CODES = hs.sampled_from(["usd", "eur", "jpy", "krw", "kwd", "bhd", "gbp", "xxx", "JPY", " kwd "])


# --- money ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (123456789, "usd", "1,234,567.89 USD"), (1200, "jpy", "1,200 JPY"), (3500, "kwd", "3.500 KWD"),
    (12345, "bhd", "12.345 BHD"), (-1050, "eur", "-10.50 EUR"), (0, "usd", "0.00 USD"),
    (1500000, "krw", "1,500,000 KRW"),
])
def test_money_has_the_currencys_decimals_and_thousands_separators(minor: int, currency: str, shown: str) -> None:
    assert fmt.money(minor, currency) == shown


@pytest.mark.parametrize("currency", [None, "", math.nan, "us dollars", "[x](http://h)", 5])
def test_money_without_a_valid_currency_is_the_number_alone(currency: object) -> None:
    assert fmt.money(125000, currency) == "1,250.00"


def test_an_unknown_three_letter_code_is_shown_with_two_decimals() -> None:
    assert fmt.money(1999, "xyz") == "19.99 XYZ"


@pytest.mark.parametrize("amount", [None, math.nan])
def test_no_amount_is_an_empty_text(amount: object) -> None:
    assert fmt.money(amount, "usd") == ""


@given(any_amount, any_currency)
def test_every_amount_is_shown_in_the_one_format(amount: int | None, currency: str | None) -> None:
    shown = fmt.money(amount, currency)
    assert shown == "" if amount is None else SHOWN.fullmatch(shown)


@given(hs.integers(-10**15, 10**15), CODES)
def test_the_shown_decimals_are_the_currencys(amount: int, currency: str) -> None:
    number = fmt.money(amount, currency).split(" ")[0]
    places = len(number.split(".")[1]) if "." in number else 0
    assert places == decimals(currency)


@given(hs.integers(-10**15, 10**15), CODES)
def test_the_shown_text_reads_back_as_the_exact_amount(amount: int, currency: str) -> None:
    number = fmt.money(amount, currency).split(" ")[0].replace(",", "")
    assert Decimal(number).scaleb(decimals(currency)) == amount


@given(hs.integers(-10**15, 10**15), CODES)
def test_the_csv_number_is_the_exact_amount_in_major_units(amount: int, currency: str) -> None:
    value = major(amount, currency)
    assert value.scaleb(decimals(currency)) == amount  # type: ignore[union-attr]


@pytest.mark.parametrize(("minor", "currency", "cell"), [(720000, "usd", "7200.00"), (1200, "jpy", "1200"),
                                                         (3500, "kwd", "3.500"), (0, "usd", "0.00")])
def test_a_csv_amount_has_the_currencys_decimals(minor: int, currency: str, cell: str) -> None:
    assert csv_text(["amount"], [[major(minor, currency)]]).splitlines()[1] == cell


def test_money_lines_never_add_across_currencies() -> None:
    rows = [{"amount": 120000, "currency": "usd"}, {"amount": 30000, "currency": "jpy"}]
    assert fmt.money_lines(rows) == "1,200.00 USD · 30,000 JPY"


def test_lib_format_money_is_the_pages_money() -> None:
    assert format_money(3500, "kwd") == fmt.money(3500, "kwd")


# --- money in tables -----------------------------------------------------------------------------------


def _cells(rows: list[dict]) -> list[object]:
    df = frame(rows, money=("amount",))
    fmt.money_columns(df, {"amount": "Amount"})
    return list(df["amount"])


def test_a_table_mixing_jpy_and_kwd_keeps_each_rows_decimals() -> None:
    rows = [{"currency": "jpy", "amount": 1200}, {"currency": "kwd", "amount": 3500},
            {"currency": "usd", "amount": 123456}]
    assert _cells(rows) == ["1,200 JPY", "3.500 KWD", "1,234.56 USD"]


def test_a_single_currency_table_shows_the_same_text_as_a_metric() -> None:
    assert _cells([{"currency": "jpy", "amount": 1234567}]) == [fmt.money(1234567, "jpy")]


def test_a_missing_amount_in_a_mixed_table_is_an_empty_cell() -> None:
    assert _cells([{"currency": "jpy", "amount": None}, {"currency": "kwd", "amount": 1}])[0] == ""


# --- balances, dates, ticks, counts ---------------------------------------------------------------------


@pytest.mark.parametrize(("minor", "shown"), [(-1000, "credit 10.00 USD"), (500, "owes 5.00 USD"),
                                              (0, "0.00 USD"), (None, "")])
def test_a_balance_says_which_way_it_goes(minor: int | None, shown: str) -> None:
    assert fmt.balance(minor, "usd") == shown


def test_a_balance_column_explains_the_sign_in_its_help() -> None:
    df = pd.DataFrame({"currency": ["usd"], "balance": [-10.0]})
    config = fmt.balance_column(df, "balance")["balance"]
    assert "negative" in config["help"]


def test_a_balance_column_in_major_units_is_words() -> None:
    df = pd.DataFrame({"currency": ["kwd", "jpy"], "balance": [-3.5, 1200.0]})
    fmt.balance_column(df, "balance")
    assert list(df["balance"]) == ["credit 3.500 KWD", "owes 1,200 JPY"]


@pytest.mark.parametrize(("when", "shown"), [
    (NOW, "2026-12-03 · today"), (NOW - timedelta(days=3), "2026-11-30 · 3 days ago"),
    (NOW + timedelta(days=1), "2026-12-04 · tomorrow"), (NOW - timedelta(days=1), "2026-12-02 · yesterday"),
    (NOW + timedelta(days=27), "2026-12-30 · in 27 days"), (NOW - timedelta(days=200), "2026-05-17 · 6 months ago"),
    (NOW - timedelta(days=800), "2024-09-24 · 2 years ago"), (date(2026, 11, 30), "2026-11-30 · 3 days ago"),
])
def test_a_date_has_one_format_with_a_relative_hint(when: datetime | date, shown: str) -> None:
    assert fmt.when(when, now=NOW) == shown


def test_a_naive_time_from_the_cache_is_utc() -> None:
    assert fmt.when(datetime(2026, 12, 3, 9, 30), time=True, now=NOW) == "2026-12-03 09:30 · 2 h ago"


@pytest.mark.parametrize("value", [None, pd.NaT, math.nan, "soon"])
def test_no_date_is_an_empty_text(value: object) -> None:
    assert fmt.when(value, now=NOW) == ""


def test_date_cells_sort_in_time_order_as_text() -> None:
    days = [NOW - timedelta(days=400), NOW - timedelta(days=3), NOW + timedelta(days=20)]
    shown = [fmt.when(d, now=NOW) for d in days]
    assert sorted(shown) == shown


@pytest.mark.parametrize(("flag", "shown"), [(True, "✓"), (False, ""), (None, ""), (math.nan, ""), (pd.NA, "")])
def test_a_flag_is_a_tick_or_nothing(flag: object, shown: str) -> None:
    assert fmt.tick(flag) == shown


@pytest.mark.parametrize(("n", "shown"), [(15063, "15,063"), (0, "0"), (None, "—"), (2_000_000, "2,000,000")])
def test_a_count_has_thousands_separators(n: int | None, shown: str) -> None:
    assert fmt.count(n) == shown


def test_a_page_of_50_rows_needs_no_inner_scroll() -> None:
    assert fmt.table_height(50) == fmt.ROW_PX * 51 + 3


def test_a_period_end_that_cancels_says_so() -> None:
    assert fmt.period_end(NOW + timedelta(days=2), True).endswith("· in 2 days · cancels")


# --- CSV raw values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "cell"), [
    (True, "true"), (False, "false"), (datetime(2026, 11, 30, 9, 15), "2026-11-30T09:15:00Z"),
    (datetime(2026, 11, 30, 10, 15, tzinfo=UTC) .astimezone(UTC), "2026-11-30T10:15:00Z"),
    (date(2026, 11, 30), "2026-11-30"), (math.nan, None), (Decimal("-12.50"), Decimal("-12.50")),
])
def test_a_csv_cell_is_the_raw_machine_value(value: object, cell: object) -> None:
    assert raw(value) == cell


def test_a_csv_header_uses_the_page_labels() -> None:
    text = csv_text(["id", "mrr"], [{"id": "cus_1", "mrr": Decimal("1.00")}], headers={"id": "Customer", "mrr": "MRR"})
    assert next(csv.reader(io.StringIO(text))) == ["Customer", "MRR"]


def test_a_formula_header_label_is_still_neutralised() -> None:
    text = csv_text(["x"], [], headers={"x": "=cmd"})
    assert text.splitlines()[0] == "'=cmd"
