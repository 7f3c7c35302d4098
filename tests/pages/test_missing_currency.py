"""A customer with no currency (never billed yet) next to ordinary ones: the pages still render, for every
role, and money with an unknown currency still shows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.format import money_columns
from app_pages.components.tables import frame
from lib.config import get_settings
from lib.money import format_money, minor_to_major
from tests.utils.apptest import APP, run_page
from tests.utils.factories import make_customer
from tests.utils.login import ROLE_EMAILS, as_role, write_roles


@pytest.fixture
def mixed(session: Session) -> dict[str, str]:
    a = make_customer(session, email="usd@example.com", currency="usd", mrr=4900)
    b = make_customer(session, email="none@example.com", currency=None, balance=-1250)
    return {"usd": a.id, "none": b.id}


def test_customers_page_renders_with_a_customer_without_currency(mixed: dict[str, str]) -> None:
    at = run_page("customers.py")
    assert not at.exception, at.exception


def test_the_amount_of_a_customer_without_currency_still_shows(mixed: dict[str, str]) -> None:
    at = run_page("customers.py")
    df = at.dataframe(key="cust_table").value
    assert df[df["id"] == mixed["none"]].iloc[0]["balance"] == "credit 12.50"


@pytest.mark.parametrize("role", sorted(ROLE_EMAILS))
def test_customers_page_renders_for_every_role(role: str, mixed: dict[str, str], db: Engine, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLES_FILE", str(write_roles(tmp_path / "roles.toml")))
    get_settings.cache_clear()
    at = as_role(AppTest.from_file(APP, default_timeout=30), role).run()
    at.switch_page("app_pages/customers.py").run()
    assert not at.exception, at.exception


def test_customer_detail_of_a_customer_without_currency(mixed: dict[str, str]) -> None:
    at = run_page("customer_detail.py", query={"id": mixed["none"]})
    assert not at.exception, at.exception


@pytest.mark.parametrize("currency", [None, "", math.nan, float("nan")])
def test_minor_to_major_with_no_currency_keeps_the_amount(currency: object) -> None:
    assert minor_to_major(1250, currency) == 12.5  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", [None, "", math.nan])
def test_format_money_with_no_currency_shows_the_amount(currency: object) -> None:
    assert format_money(-1250, currency) == "-12.50"  # type: ignore[arg-type]


def test_format_money_never_shows_text_that_is_not_a_currency_code() -> None:
    assert format_money(100, "[x](http://host)") == "1.00"


def test_frame_with_a_nan_currency_column() -> None:
    df = frame([{"currency": "usd", "mrr": 100}, {"currency": math.nan, "mrr": 250}], money=("mrr",))
    assert list(df["mrr"]) == [1.0, 2.5]


def money_cells(rows: list[dict]) -> list[object]:
    df = frame(rows, money=("mrr",))
    money_columns(df, {"mrr": "MRR"})
    return list(df["mrr"])


def test_a_table_mixing_decimals_shows_each_amount_in_its_own_decimals() -> None:
    # Customers / Failed invoices list USD beside BHD: one two-decimal format showed 12.345 BHD as 12.35.
    rows = [{"currency": "usd", "mrr": 1250}, {"currency": "bhd", "mrr": 12345}, {"currency": "jpy", "mrr": 1200}]
    assert money_cells(rows) == ["12.50 USD", "12.345 BHD", "1,200 JPY"]


def test_a_table_of_one_three_decimal_currency_shows_three_decimals() -> None:
    assert money_cells([{"currency": "kwd", "mrr": 3500}, {"currency": "kwd", "mrr": 1}]) == ["3.500 KWD", "0.001 KWD"]


def test_a_row_without_currency_shows_its_amount_without_a_code_beside_dollars() -> None:
    # a $ (or USD) would claim dollars for the row without one
    assert money_cells([{"currency": "usd", "mrr": 1250}, {"currency": math.nan, "mrr": 250}]) == ["12.50 USD", "2.50"]
