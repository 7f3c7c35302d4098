"""Failed invoices: the worklist and its invoice panel are one. Selecting a row opens that invoice's follow-up
editor and portal link; any cached invoice can be opened by id (checked first); a save shows in the row at once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib import followups
from lib.db import session_scope
from lib.declines import explain
from tests.utils.apptest import APP, run_page
from tests.utils.factories import make_customer, make_failed_invoice, make_invoice


@pytest.fixture
def worklist(session: Session) -> dict[str, Any]:
    """27 failed invoices (two pages of 25, largest first) and one paid invoice; one follow-up saved."""
    ann = make_customer(session, email="ann@example.com")
    bob = make_customer(session, email="bob@example.com")
    big = make_failed_invoice(session, ann, amount_due=90_000, customer_email="ann@example.com")
    second = make_failed_invoice(session, bob, amount_due=80_000, customer_email="bob@example.com")
    rest = [make_failed_invoice(session, ann, amount_due=1_000 + i, customer_email="ann@example.com").id
            for i in range(25)]
    paid = make_invoice(session, bob, status="paid", amount_due=500)
    with session_scope() as s:
        followups.set_followup(session=s, invoice_id=second.id, status="contacted", note="Left a voicemail",
                               actor="fin@example.com")
    return {"big": big.id, "second": second.id, "last": rest[0], "paid": paid.id, "ann": ann.id, "bob": bob.id}


def pick(at: AppTest, *rows: int) -> AppTest:
    """The user ticks worklist rows (by their position on screen), as the browser reports it."""
    at.session_state["fi_table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    return at.run()


def table_row(at: AppTest, invoice_id: str) -> Any:
    df = at.dataframe(key="fi_table").value
    return df[df["id"] == invoice_id].iloc[0]


def panel_text(at: AppTest) -> str:
    return "\n".join(plain(m.value) for m in [*at.markdown, *at.caption, *at.warning, *at.error])


def test_selecting_a_row_opens_that_invoice_in_the_editor(worklist: dict[str, Any]) -> None:
    at = pick(run_page("failed_invoices.py"), 1)
    assert at.text_input(key="fi_fu_id").value == worklist["second"]


def test_the_editor_shows_the_selected_invoice_s_saved_follow_up(worklist: dict[str, Any]) -> None:
    at = pick(run_page("failed_invoices.py"), 1)
    assert at.text_area(key="fi_fu_note").value == "Left a voicemail"


def test_selecting_a_row_offers_the_portal_link_for_its_customer(worklist: dict[str, Any]) -> None:
    at = pick(run_page("failed_invoices.py"), 1)
    assert any(b.key == f"fi_{worklist['second']}_portal_toggle" for b in at.button)


def test_the_row_added_last_to_a_selection_is_the_one_edited(worklist: dict[str, Any]) -> None:
    at = pick(run_page("failed_invoices.py"), 1)
    pick(at, 1, 0)
    assert at.text_input(key="fi_fu_id").value == worklist["big"]


def test_any_invoice_is_reachable_by_id(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    assert worklist["last"] not in set(at.dataframe(key="fi_table").value["id"]), "on page 2, not on screen"
    at.text_input(key="fi_fu_id").input(worklist["last"]).run()
    assert f"**{worklist['last']}** · ann@example.com · 10.00 USD remaining" in panel_text(at)


def test_an_invoice_off_the_worklist_is_said_so(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(worklist["paid"]).run()
    assert "not on the failed-payment worklist" in panel_text(at)


@pytest.mark.parametrize("typed", ["cus_123", "in_../../v1/customers", "[x](javascript:alert(1))"])
def test_a_malformed_id_is_refused_before_any_lookup(worklist: dict[str, Any], typed: str) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(typed).run()
    assert not at.exception, at.exception
    assert "is not an invoice id" in panel_text(at)
    assert not any(b.key == "fi_fu_save" for b in at.button)
    assert not any("](javascript" in w.value for w in at.warning)


def test_an_unknown_invoice_id_is_said_so(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input("in_NotInTheCache1").run()
    assert "is not in the cache" in panel_text(at)


def test_saving_shows_the_new_follow_up_in_the_row_at_once(worklist: dict[str, Any]) -> None:
    at = pick(run_page("failed_invoices.py"), 0)
    at.radio(key="fi_fu_status").set_value("promised")
    at.text_area(key="fi_fu_note").input("Pays on Friday")
    at.button(key="fi_fu_save").click().run()
    row = table_row(at, worklist["big"])
    assert (row["followup_status"], row["followup_note"]) == ("promised", "Pays on Friday")


def test_saving_an_invoice_reached_by_id_stores_it(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(worklist["last"]).run()
    at.radio(key="fi_fu_status").set_value("resolved")
    at.button(key="fi_fu_save").click().run()
    with session_scope() as s:
        assert followups.get(session=s, invoice_id=worklist["last"]).status == "resolved"


def test_the_panel_shows_the_saved_state_after_a_save(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(worklist["last"]).run()
    at.radio(key="fi_fu_status").set_value("resolved")
    at.button(key="fi_fu_save").click().run()
    assert "follow-up **resolved** by demo@localhost" in panel_text(at)


def test_the_editor_shows_the_saved_follow_up_after_another_page(worklist: dict[str, Any]) -> None:
    """Streamlit drops the editor's widget state while another page is shown; coming back must not show
    "open" and an empty note for the invoice in the panel (the first row) that has a follow-up."""
    with session_scope() as s:
        followups.set_followup(session=s, invoice_id=worklist["big"], status="promised", note="Card on Monday",
                               actor="fin@example.com")
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.switch_page("app_pages/failed_invoices.py").run()
    at.switch_page("app_pages/customers.py").run()
    at.switch_page("app_pages/failed_invoices.py").run()
    assert at.text_area(key="fi_fu_note").value == "Card on Monday"


def test_until_a_row_is_picked_the_panel_follows_the_first_row(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.button(key="fi_next").click().run()  # page 2: the smallest two
    assert at.text_input(key="fi_fu_id").value == at.dataframe(key="fi_table").value["id"].iloc[0]


def test_a_typed_invoice_stays_when_the_page_changes(worklist: dict[str, Any]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(worklist["second"]).run()
    at.button(key="fi_next").click().run()
    assert at.text_input(key="fi_fu_id").value == worklist["second"]


def test_the_panel_shows_what_the_worklist_leaves_out(session: Session) -> None:
    """The worklist keeps only the columns that fit at 1440 px; the selected invoice's panel carries the rest:
    attempts, the decline's meaning, the customer's page and Stripe's pay page (a javascript: URL is no link)."""
    cus = make_customer(session, email="ann@example.com")
    inv = make_failed_invoice(session, cus, amount_due=5_000, attempt_count=3,
                              hosted_invoice_url="https://invoice.stripe.com/i/acct_1/test_x")
    evil = make_failed_invoice(session, cus, amount_due=100, hosted_invoice_url="javascript:alert(1)")
    at = pick(run_page("failed_invoices.py"), 0)
    assert at.text_input(key="fi_fu_id").value == inv.id
    assert "3 payment attempt(s)" in panel_text(at)
    assert explain("insufficient_funds").meaning in panel_text(at)
    assert [b.proto.url for b in at.get("link_button")] == ["https://invoice.stripe.com/i/acct_1/test_x"]
    assert any(f"customer?id={cus.id}" in m.value for m in at.markdown), "a link to the customer's page"
    at.text_input(key="fi_fu_id").input(evil.id).run()
    assert not at.get("link_button")
