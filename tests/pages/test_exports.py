"""Every CSV is safe to open in a spreadsheet (OWASP CSV injection: formula cells prefixed with a quote,
numbers left numbers) and every export leaves an audit row: who, which page, which filters, how many rows."""

from __future__ import annotations

import csv
import io

import pytest
from sqlmodel import Session, select

from app_pages.components.exports import export_csv, query_maker
from lib import audit, queries
from lib.auth import DEMO_USER
from lib.db import session_scope
from lib.export import csv_text, neutralise
from lib.models import AuditLog
from lib.portal import BulkResult, BulkRow
from tests.utils.factories import make_customer, make_failed_invoice, make_subscription

FORMULA = '=HYPERLINK("http://host/x","Refund")'


def parse(data: bytes | str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode() if isinstance(data, bytes) else data)))


@pytest.fixture
def hostile(session: Session) -> dict[str, str]:
    c = make_customer(session, name=FORMULA, email="@SUM(1+1)@example.com", phone="+1 415 555 0100",
                      balance=-1250)
    make_subscription(session, c, mrr=4900)
    make_failed_invoice(session, c, amount_due=5000, customer_email="-2+3@example.com")
    return {"id": c.id}


def customers_csv() -> list[dict[str, str]]:
    with session_scope() as s:
        return parse(queries.export_customers_csv(session=s, filters=queries.CustomerFilters()).read())


def test_customer_name_formula_is_text(hostile: dict[str, str]) -> None:
    assert customers_csv()[0]["Name"] == "'" + FORMULA


def test_customer_email_starting_with_at_is_text(hostile: dict[str, str]) -> None:
    assert customers_csv()[0]["Email"] == "'@SUM(1+1)@example.com"


def test_phone_starting_with_plus_is_text(hostile: dict[str, str]) -> None:
    assert customers_csv()[0]["Phone"] == "'+1 415 555 0100"


def test_negative_balance_stays_a_number_in_the_currencys_decimals(hostile: dict[str, str]) -> None:
    assert customers_csv()[0]["Balance"] == "-12.50"


def test_subscriptions_csv_neutralises_the_email(session: Session, hostile: dict[str, str]) -> None:
    with session_scope() as s:
        rows = parse(queries.export_subscriptions_csv(session=s, filters=queries.SubscriptionFilters()).read())
    assert [r["Email"] for r in rows] == ["'@SUM(1+1)@example.com"]


def test_failed_invoices_csv_neutralises_the_email(hostile: dict[str, str]) -> None:
    with session_scope() as s:
        rows = parse(queries.export_failed_csv(session=s, filters=queries.FailedFilters()).read())
    assert [r["Email"] for r in rows] == ["'-2+3@example.com"]


def test_failed_invoices_csv_keeps_amounts_numbers_in_major_units(hostile: dict[str, str]) -> None:
    with session_scope() as s:
        rows = parse(queries.export_failed_csv(session=s, filters=queries.FailedFilters()).read())
    assert rows[0]["At risk"] == "50.00"


def test_bulk_links_csv_neutralises_names() -> None:
    result = BulkResult(run_id="r1", rows=[BulkRow(customer_id="cus_1", name=FORMULA, email="\tx@example.com",
                                                   amount_due={"usd": 1200}, invoice_ids=["in_1"])])
    row = parse(result.csv())[0]
    assert (row["Name"], row["Email"]) == ("'" + FORMULA, "'\tx@example.com")


def test_audit_log_csv_neutralises_errors(session: Session) -> None:
    session.add(AuditLog(actor="ada@corp.test", action="portal_link", result="failed", error="=1+2"))
    session.commit()
    with session_scope() as s:
        rows = parse(audit.export_audit_csv(session=s, filters=audit.AuditFilters()).read())
    assert rows[0]["Error"] == "'=1+2"


@pytest.mark.parametrize("value", ["=1", "+1", "-1", "@x", "\t1", "\r1"])
def test_every_formula_start_is_neutralised(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", [-12.5, -3, 0, None, "plain", "a=b"])
def test_other_cells_are_left_alone(value: object) -> None:
    assert neutralise(value) == value


def test_a_cell_with_a_newline_stays_one_row() -> None:
    assert len(parse(csv_text(["a"], [["=x\ny"]]))) == 1


# --- each export is an audited action --------------------------------------------------------------


def _export(kind: str, filters: object) -> bytes:
    names = {"customers": ("export_customers", "customers", "export_customers_csv"),
             "subscriptions": ("export_subscriptions", "subscriptions", "export_subscriptions_csv"),
             "failed": ("export_failed_invoices", "failed-invoices", "export_failed_csv")}
    action, page, query = names[kind]
    return export_csv(DEMO_USER, action=action, page=page, filters=filters, make=query_maker(query, filters=filters))


def _entry(session: Session, action: str) -> AuditLog:
    return session.exec(select(AuditLog).where(AuditLog.action == action)).one()


def test_customer_export_is_audited_with_its_row_count(session: Session, hostile: dict[str, str]) -> None:
    make_customer(session, email="second@example.com")
    _export("customers", queries.CustomerFilters())
    assert _entry(session, "export_customers").details["rows"] == 2


def test_customer_export_audit_names_page_and_filters(session: Session, hostile: dict[str, str]) -> None:
    _export("customers", queries.CustomerFilters(q="example.com", delinquent=True))
    details = _entry(session, "export_customers").details
    assert (details["page"], details["filters"]["q"], details["filters"]["delinquent"]) == (
        "customers", "example.com", "True")


def test_customer_export_audit_names_who(session: Session, hostile: dict[str, str]) -> None:
    _export("customers", queries.CustomerFilters())
    entry = _entry(session, "export_customers")
    assert (entry.actor, entry.result) == (DEMO_USER.email, "succeeded")


def test_subscription_export_is_audited(session: Session, hostile: dict[str, str]) -> None:
    _export("subscriptions", queries.SubscriptionFilters())
    assert _entry(session, "export_subscriptions").details["rows"] == 1


def test_failed_invoice_export_is_audited(session: Session, hostile: dict[str, str]) -> None:
    _export("failed", queries.FailedFilters(currency="usd"))
    details = _entry(session, "export_failed_invoices").details
    assert (details["rows"], details["filters"]["currency"]) == (1, "usd")


def test_export_hands_back_the_csv(session: Session, hostile: dict[str, str]) -> None:
    data = _export("customers", queries.CustomerFilters())
    assert [r["Customer"] for r in parse(data)] == [hostile["id"]]


def test_bulk_links_download_is_audited(session: Session) -> None:
    made = BulkResult(run_id="run42", rows=[BulkRow("cus_1", "A", "a@x.test", {"usd": 100}, ["in_1"], link="https://l"),
                                            BulkRow("cus_2", "B", "b@x.test", {"usd": 200}, ["in_2"], link="https://m")])
    data = made.csv().encode()
    export_csv(DEMO_USER, action="export_portal_links", right="bulk_portal_links", page="failed-invoices",
               filters={"run": "run42"}, make=lambda _s: io.BytesIO(data))
    details = _entry(session, "export_portal_links").details
    assert (details["rows"], details["filters"]) == (2, {"run": "run42"})


def test_audit_log_export_is_audited_with_its_row_count(session: Session) -> None:
    for _ in range(3):
        session.add(AuditLog(actor="x@corp.test", action="portal_link", result="succeeded"))
    session.commit()
    filters = audit.AuditFilters(action="portal_link")
    export_csv(DEMO_USER, action="export_audit", right="export_audit", page="audit", filters=filters,
               make=lambda s: audit.export_audit_csv(session=s, filters=filters))
    assert _entry(session, "export_audit").details["rows"] == 3
