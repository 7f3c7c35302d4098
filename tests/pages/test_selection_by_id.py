"""Selections are remembered by object id, not row position: when the rows under a selection change, the
selection follows the id or is dropped with a message; an action never gets a row the user did not pick,
and a shrunk list never raises."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components import data
from lib.models import Invoice
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_failed_invoice, make_subscription


def pick(at: AppTest, key: str, *rows: int) -> AppTest:
    """The user ticks rows (by their position on screen), as the browser reports it."""
    at.session_state[key] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    return at.run()


def bulk_label(at: AppTest) -> str:
    return next(b.label for b in at.button if b.key == "fi_bulk_portal_make")


@pytest.fixture
def worklist(session: Session) -> dict[str, Any]:
    c = make_customer(session, email="w@example.com")
    small = make_failed_invoice(session, c, amount_due=1000)
    big = make_failed_invoice(session, c, amount_due=9000)
    return {"customer": c.id, "small": small.id, "big": big.id}


def picked_invoice(at: AppTest) -> str:
    return at.text_input(key="fi_fu_id").value


def test_picking_a_row_picks_that_invoice(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 1)  # largest first: row 1 is the small one
    assert picked_invoice(at) == worklist["small"]


def test_selection_follows_the_invoice_when_a_new_row_comes_first(session: Session,
                                                                  worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 1)
    make_failed_invoice(session, worklist["customer"], amount_due=50000)  # a new largest row goes on top
    data.clear()
    at.run()
    assert picked_invoice(at) == worklist["small"]


def test_the_table_highlights_the_followed_row(session: Session, worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 1)
    make_failed_invoice(session, worklist["customer"], amount_due=50000)
    data.clear()
    at.run()
    assert at.session_state["fi_table"]["selection"]["rows"] == [2]


def test_a_picked_invoice_that_leaves_the_list_is_unselected(session: Session, worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 0, 1)
    session.get(Invoice, worklist["big"]).status = "paid"
    session.commit()
    data.clear()
    at.run()
    assert bulk_label(at) == "Make update-payment links for 1 selected invoice"


def test_leaving_rows_are_reported(session: Session, worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 0)
    session.get(Invoice, worklist["big"]).status = "paid"
    session.commit()
    data.clear()
    at.run()
    assert any("left this list" in i.value for i in at.info)


def test_a_shrunk_list_raises_nothing(session: Session, worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 1)
    session.get(Invoice, worklist["small"]).status = "paid"
    session.commit()
    data.clear()
    at.run()
    assert not at.exception, at.exception


def test_a_shrunk_list_acts_on_nothing_unpicked(session: Session, worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    pick(at, "fi_table", 1)  # the small one
    session.get(Invoice, worklist["small"]).status = "paid"
    session.commit()
    data.clear()
    at.run()
    assert bulk_label(at) == "Make update-payment links for 0 selected invoices"


def test_subscriptions_selection_out_of_range_raises_nothing(session: Session) -> None:
    c = make_customer(session, email="s@example.com")
    make_subscription(session, c)
    at = run_page("subscriptions.py")
    pick(at, "subs_table", 5)
    assert not at.exception, at.exception


def test_customers_selection_out_of_range_raises_nothing(session: Session) -> None:
    make_customer(session, email="c@example.com")
    at = run_page("customers.py")
    pick(at, "cust_table", 3)
    assert not at.exception, at.exception
