"""Failed invoices (finance): worklist, money at risk per currency, decline meanings, age, recovery,
follow-up notes saved with who/when and shown, filters, paging, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from app_pages.components.text import plain
from lib import followups, queries
from lib.db import session_scope
from lib.models import AuditLog, InvoiceFollowup, utcnow
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer, make_failed_invoice, make_invoice


@pytest.fixture
def failed(session: Session) -> dict[str, str]:
    a = make_customer(session, email="a@example.com")
    b = make_customer(session, email="b@example.com", currency="eur")
    funds = make_failed_invoice(session, a, amount_due=5000, customer_email="a@example.com")
    expired = make_failed_invoice(session, a, amount_due=1500, decline_code="expired_card",
                                  created=utcnow() - timedelta(days=45), next_payment_attempt=None)
    euro = make_failed_invoice(session, b, amount_due=7000, currency="eur", created=utcnow() - timedelta(days=10))
    dead = make_invoice(session, b, status="uncollectible", amount_due=3000, currency="eur", attempt_count=4,
                        decline_code="do_not_honor", created=utcnow() - timedelta(days=90))
    make_invoice(session, a, status="paid", amount_due=9999)  # paid first time: not failed
    make_invoice(session, a, status="open", amount_due=1111, attempt_count=0)  # not attempted yet: not failed
    make_invoice(session, a, status="paid", amount_due=2000, attempt_count=3, paid_at=utcnow(),
                 created=utcnow() - timedelta(days=5))  # recovered after failures
    return {"funds": funds.id, "expired": expired.id, "euro": euro.id, "dead": dead.id}


def worklist(at: AppTest) -> list[str]:
    return list(at.dataframe(key="fi_table").value["id"]) if any(d.key == "fi_table" for d in at.dataframe) else []


def test_worklist_has_only_failed_invoices_largest_first(failed: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    assert not at.exception, at.exception
    assert worklist(at) == [failed["euro"], failed["funds"], failed["dead"], failed["expired"]]
    df = at.dataframe(key="fi_table").value
    row = df[df["id"] == failed["expired"]].iloc[0]
    assert row["code"] == "expired_card"
    assert "new card" in row["next_step"]
    assert row["age_days"] == 45
    assert row["next_payment_attempt"] == ""  # no retry scheduled: an empty cell


def test_amount_at_risk_per_currency_never_summed(failed: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["At risk · USD"] == "65.00 USD"
    assert metrics["At risk · EUR"] == "100.00 EUR"
    assert not any("165" in v for v in metrics.values())


def test_decline_code_breakdown_and_age_buckets(failed: dict[str, str]) -> None:
    with session_scope() as s:
        codes = {(r["code"], r["currency"]): r for r in queries.failed_by_decline_code(session=s)}
        ages = {(r["age"], r["currency"]): r["amount"] for r in queries.failed_by_age(session=s)}
    assert codes[("insufficient_funds", "usd")]["amount"] == 5000
    assert "retr" in codes[("insufficient_funds", "usd")]["next_step"].lower()
    assert codes[("do_not_honor", "eur")]["invoices"] == 1
    assert ages == {("0–7 days", "usd"): 5000, ("8–30 days", "eur"): 7000, ("31–60 days", "usd"): 1500,
                    ("over 60 days", "eur"): 3000}


def test_filter_by_decline_code_currency_status_and_age(failed: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    at.selectbox(key="fi_decline").select("expired_card").run()
    assert worklist(at) == [failed["expired"]]
    assert any("expired_card" in plain(i.value) and "new card" in i.value for i in at.info)
    at.selectbox(key="fi_decline").select("Any").run()
    at.selectbox(key="fi_currency").select("EUR").run()
    assert set(worklist(at)) == {failed["euro"], failed["dead"]}
    at.selectbox(key="fi_status").select("uncollectible").run()
    assert worklist(at) == [failed["dead"]]
    at.selectbox(key="fi_status").select("Any").run()
    at.selectbox(key="fi_currency").select("Any").run()
    at.selectbox(key="fi_age").select("31–60 days").run()
    assert worklist(at) == [failed["expired"]]


def test_follow_up_saved_with_who_and_when_and_shown(failed: dict[str, str]) -> None:
    at = run_page("failed_invoices.py")
    at.text_input(key="fi_fu_id").input(failed["funds"]).run()
    at.radio(key="fi_fu_status").set_value("promised")
    at.text_area(key="fi_fu_note").input("Will pay Friday")
    at.button(key="fi_fu_save").click().run()
    assert not at.exception, at.exception
    assert any("saved" in s.value for s in at.success)
    df = at.dataframe(key="fi_table").value
    row = df[df["id"] == failed["funds"]].iloc[0]
    assert row["followup_status"] == "promised"
    assert row["followup_note"] == "Will pay Friday"
    assert row["followup_by"] == "demo@localhost"
    with session_scope() as s:
        saved = s.get(InvoiceFollowup, failed["funds"])
        assert saved.updated_by == "demo@localhost"
        assert (utcnow() - saved.updated_at).total_seconds() < 60
        audit = s.exec(select(AuditLog).where(AuditLog.action == "followup")).all()
        assert [(a.object_id, a.details["after"]["status"]) for a in audit] == [(failed["funds"], "promised")]
    # filter by follow-up status, and the editor shows the saved note when the invoice is picked again
    at.selectbox(key="fi_followup").select("promised").run()
    assert worklist(at) == [failed["funds"]]
    assert at.text_area(key="fi_fu_note").value == "Will pay Friday"
    history = next(d.value for d in at.dataframe if "who" in d.value.columns)
    assert history.iloc[0]["status"] == "promised"
    assert history.iloc[0]["who"] == "demo@localhost"


def test_bad_follow_up_is_refused_clearly(failed: dict[str, str]) -> None:
    with session_scope() as s, pytest.raises(followups.FollowupError, match="choose one of"):
        followups.set_followup(session=s, invoice_id=failed["funds"], status="done", note="", actor="x@y")
    with session_scope() as s, pytest.raises(followups.FollowupError, match="not in the cache"):
        followups.set_followup(session=s, invoice_id="in_missing", status="open", note="", actor="x@y")
    with session_scope() as s:
        assert s.get(InvoiceFollowup, failed["funds"]) is None


def test_recovery_weekly_and_rate(failed: dict[str, str]) -> None:
    with session_scope() as s:
        rec = queries.recovery(session=s, currency="usd")
    rate = rec.rates[0]
    assert rate["currency"] == "usd"
    assert rate["recovered"] == 2000
    assert rate["failed"] == 5000 + 1500 + 2000  # the recovered one had failed too
    assert {r["kind"] for r in rec.weekly} == {"failed", "recovered"}
    assert all(r["week"].weekday() == 0 for r in rec.weekly), "weeks start on Monday"
    at = run_page("failed_invoices.py")
    at.selectbox(key="fi_chart_currency").select("USD").run()
    assert {m.label: m.value for m in at.metric}["Recovery rate"] == "24%"
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")


def test_paging_and_csv(session: Session, failed: dict[str, str]) -> None:
    c = make_customer(session, email="many@example.com")
    for i in range(25):
        make_failed_invoice(session, c, amount_due=100 + i)
    at = run_page("failed_invoices.py")
    assert len(worklist(at)) == 25
    at.button(key="fi_next").click().run()
    assert len(worklist(at)) == 4
    with session_scope() as s:
        followups.set_followup(session=s, invoice_id=failed["expired"], status="contacted", note="emailed",
                               actor="fin@example.com")
        out = queries.export_failed_csv(session=s, filters=queries.FailedFilters(decline_code="expired_card"))
    rows = list(csv.DictReader(io.StringIO(out.read().decode())))
    assert len(rows) == 1
    assert rows[0]["Invoice"] == failed["expired"]
    assert rows[0]["At risk"] == "15.00"
    assert rows[0]["Meaning"] == "The card on file has expired."
    assert rows[0]["Follow-up"] == "contacted"
    assert rows[0]["Note"] == "emailed"
    assert rows[0]["Follow-up by"] == "fin@example.com"
    with session_scope() as s:
        everything = queries.export_failed_csv(session=s, filters=queries.FailedFilters())
    assert len(list(csv.DictReader(io.StringIO(everything.read().decode())))) == 29


def test_nothing_failed(db: Engine) -> None:
    at = run_page("failed_invoices.py")
    assert not at.exception
    assert "No failed payments" in at.info[0].value
