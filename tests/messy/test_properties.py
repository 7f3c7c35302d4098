"""Property tests: any Stripe object the pinned SDK could hand us, however empty or odd, goes through the real
path — mapping → the sync's page writer (`ingest_page`) → every page query → every CSV export — without an
exception, reads back as sent, and never leaves a spreadsheet formula at the start of a CSV text cell.

CSV contract (with the exports' owner): a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return is written with a leading single quote `'`; numbers are written as numbers.

Hypothesis runs each body many times with the same function-scoped engine, so each example empties the
tables itself (`truncate_all`) before writing its account.
"""

from __future__ import annotations

import csv
import io
from typing import IO, Any

from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine
from sqlmodel import Session

from lib import audit, duplicates, followups, queries
from lib.portal import BulkResult, _bulk_targets
from lib.sync import ingest_page
from tests.conftest import truncate_all
from tests.messy.strategies import T0, Account, account

PROPERTY = settings(max_examples=20, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def load(engine: Engine, acct: Account) -> None:
    """An empty cache, then the account written page by page the way the sync writes a list page."""
    truncate_all(engine)
    for resource, objs in (("customers", acct.customers), ("payment_methods", acct.payment_methods),
                           ("subscriptions", acct.subscriptions), ("invoices", acct.invoices)):
        if objs:
            ingest_page(engine, resource, objs, T0)


def expected_text(value: Any) -> str | None:
    """What the cache should hold for a Stripe string field: the text, or None when absent or empty."""
    return value if isinstance(value, str) and value else None


def csv_rows(out: IO[bytes] | bytes | str) -> list[dict[str, str]]:
    raw = out if isinstance(out, bytes | str) else out.read()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return list(csv.DictReader(io.StringIO(text, newline="")))


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def formula_cells(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(column, cell) of every text cell a spreadsheet would run as a formula."""
    return [(col, cell) for row in rows for col, cell in row.items()
            if cell and cell.startswith(FORMULA_START) and not is_number(cell)]


def as_exported(value: str | None) -> str:
    """A text as the CSV contract writes it."""
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_START) and not is_number(value) else value


def all_exports(session: Session, acct: Account) -> dict[str, list[dict[str, str]]]:
    """Every CSV the dashboard offers, over everything in the cache (a follow-up note and a failed action
    with drawn text, so the audit trail holds odd text too)."""
    failed = queries.failed_invoices(session=session, filters=queries.FailedFilters(), page_size=100).rows
    for inv in failed[:2]:
        note = next((c.get("name") for c in acct.customers if c.get("name")), "") or "called"
        followups.set_followup(session=session, invoice_id=inv["id"], status="contacted", note=note[:2000],
                               actor="fran@corp.test", role="finance")
        row = audit.start(session=session, actor="sam@corp.test", action="portal_link", role="staff",
                          customer_id=inv["customer_id"], object_id=inv["id"], details={"note": note})
        audit.finish(row, session=session, result="failed", error=note)
    bulk_rows, _ = _bulk_targets([r["id"] for r in failed], session=session)
    return {
        "customers": csv_rows(queries.export_customers_csv(
            session=session, filters=queries.CustomerFilters(include_deleted=True))),
        "subscriptions": csv_rows(queries.export_subscriptions_csv(
            session=session, filters=queries.SubscriptionFilters())),
        "failed": csv_rows(queries.export_failed_csv(session=session, filters=queries.FailedFilters())),
        "audit": csv_rows(audit.export_audit_csv(session=session, filters=audit.AuditFilters())),
        "bulk_portal_links": csv_rows(BulkResult(run_id="r1", rows=bulk_rows).csv()),
    }


@PROPERTY
@given(acct=account())
def test_customer_fields_read_back_as_sent(db: Engine, acct: Account) -> None:
    load(db, acct)
    with Session(db) as session:
        for sent in acct.customers:
            got = queries.get_customer(session=session, customer_id=sent["id"])
            assert got is not None
            assert got["name"] == expected_text(sent.get("name"))
            assert got["email"] == expected_text(sent.get("email"))
            assert got["phone"] == expected_text(sent.get("phone"))
            assert got["currency"] == expected_text(sent.get("currency"))


@PROPERTY
@given(acct=account())
def test_search_by_id_shows_the_customer_as_sent(db: Engine, acct: Account) -> None:
    load(db, acct)
    with Session(db) as session:
        for sent in acct.customers:
            page = queries.search_customers(session=session, filters=queries.CustomerFilters(q=sent["id"]))
            assert [(r["id"], r["name"], r["email"]) for r in page.rows] == [
                (sent["id"], expected_text(sent.get("name")), expected_text(sent.get("email")))]


@PROPERTY
@given(acct=account())
def test_every_page_query_runs_on_odd_objects(db: Engine, acct: Account) -> None:
    load(db, acct)
    q = queries
    with Session(db) as session:
        currencies = q.customer_currencies(session=session) + q.failed_currencies(session=session)
        for cur in [None, *currencies]:
            q.search_customers(session=session, filters=q.CustomerFilters(currency=cur, sort="name"))
            q.list_subscriptions(session=session, filters=q.SubscriptionFilters(currency=cur, sort="mrr"))
            q.subscription_totals(session=session, filters=q.SubscriptionFilters(currency=cur))
            q.failed_invoices(session=session, filters=q.FailedFilters(currency=cur))
            q.recovery(session=session, currency=cur)
        for code in q.decline_codes(session=session):
            f = q.FailedFilters(decline_code=code)
            q.failed_invoices(session=session, filters=f)
            q.at_risk_by_currency(session=session, filters=f)
            q.failed_by_decline_code(session=session, filters=f)
            q.failed_by_age(session=session, filters=f)
        for c in acct.customers:
            cid = c["id"]
            q.get_customer(session=session, customer_id=cid)
            q.customer_payment_methods(session=session, customer_id=cid)
            subs = q.customer_subscriptions(session=session, customer_id=cid)
            invs = q.customer_invoices(session=session, customer_id=cid).rows
            q.customer_open_amounts(session=session, customer_id=cid)
            q.customer_timeline(session=session, customer_id=cid,
                                object_ids=[s["id"] for s in subs] + [i["id"] for i in invs])
            for text in (c.get("name"), c.get("email"), c.get("phone")):
                try:
                    q.search_customers(session=session, filters=q.CustomerFilters(q=text or ""))
                except q.SearchError:
                    pass  # a clear message for the search box, not a crash
        q.subscription_choices(session=session)
        q.mrr_by_currency(session=session)
        q.at_risk_by_currency(session=session)
        q.table_counts(session=session)
        q.recent_sync_runs(session=session)
        q.sync_states(session=session)
        q.webhook_stats(session=session)
        q.cache_freshness(session=session)
        found = duplicates.detect(session=session)
        duplicates.summaries([c["id"] for c in acct.customers], session=session)
        assert found is not None


@PROPERTY
@given(acct=account())
def test_no_csv_text_cell_starts_a_formula(db: Engine, acct: Account) -> None:
    load(db, acct)
    with Session(db, expire_on_commit=False) as session:
        exports = all_exports(session, acct)
    assert {name: formula_cells(rows) for name, rows in exports.items()} == {name: [] for name in exports}


@PROPERTY
@given(acct=account())
def test_customer_csv_keeps_the_text_as_sent(db: Engine, acct: Account) -> None:
    load(db, acct)
    with Session(db) as session:
        rows = csv_rows(queries.export_customers_csv(session=session,
                                                     filters=queries.CustomerFilters(include_deleted=True)))
    by_id = {r["Customer"]: r for r in rows}  # the CSV's header is the page's column names
    for sent in acct.customers:
        assert (by_id[sent["id"]]["Name"], by_id[sent["id"]]["Email"]) == (
            as_exported(expected_text(sent.get("name"))), as_exported(expected_text(sent.get("email"))))
