"""Search by company: an email domain (`@acme.com` or `acme.com`, any case) finds that company's customers from
the indexed `customers.email_domain`, which the sync, webhooks, the customer refresh and migration 0005 fill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from lib import queries
from lib.db import migrate
from lib.normalize import email_domain
from lib.sync import apply_webhook_event, refresh_customer, run_sync
from tests.utils.apptest import run_page
from tests.utils.factories import make_customer
from tests.utils.migrations import database_at
from tests.utils.sandbox import SandboxServer


def found(session: Session, text_: str) -> set[str]:
    page = queries.search_customers(session=session, filters=queries.CustomerFilters(q=text_), page_size=100)
    return {r["id"] for r in page.rows}


@pytest.fixture
def companies(session: Session) -> dict[str, str]:
    """Customers at acme.com and at look-alike domains that must never be found for acme.com."""
    made = {
        "ana": make_customer(session, email="Ana@Acme.com", name="Ana Lima").id,
        "bo": make_customer(session, email="bo+billing@ACME.COM", name="Bo Berg").id,
        "sub": make_customer(session, email="cy@eu.acme.com", name="Cy Subdomain").id,
        "longer": make_customer(session, email="di@acme.com.evil.org", name="Di Longer").id,
        "prefix": make_customer(session, email="ed@notacme.com", name="Ed Prefix").id,
        "under": make_customer(session, email="fa@acme_com", name="Fa Underscore").id,
        "quote": make_customer(session, email="gu@o'acme.com", name="Gu Quote").id,
        "none": make_customer(session, email=None, name="No Email").id,
    }
    return made


@pytest.mark.parametrize("typed", ["@acme.com", "acme.com", "@ACME.COM", "Acme.Com", "  @acme.com  "])
def test_a_domain_finds_that_company_in_any_case_with_or_without_the_at(session: Session, companies: dict,
                                                                        typed: str) -> None:
    assert found(session, typed) == {companies["ana"], companies["bo"]}


def test_a_subdomain_is_its_own_company(session: Session, companies: dict) -> None:
    assert found(session, "@eu.acme.com") == {companies["sub"]}


def test_a_longer_domain_ending_differently_is_not_acme(session: Session, companies: dict) -> None:
    assert found(session, "acme.com.evil.org") == {companies["longer"]}


@pytest.mark.parametrize("hostile", ["@%", "@%.com", "@_cme.com", "@acme.co_", "%acme.com", "acme%.com",
                                     "@acme.com'", "@' OR '1'='1", "@acme.com%", "_cme.com", "@%acme%"])
def test_wildcards_and_quotes_never_widen_the_match(session: Session, companies: dict, hostile: str) -> None:
    try:
        hits = found(session, hostile)
    except queries.SearchError:
        return  # refused with a message: nothing widened either
    assert hits <= {companies["quote"], companies["under"]}, hostile


def test_a_quote_in_a_domain_is_matched_literally(session: Session, companies: dict) -> None:
    assert found(session, "@o'acme.com") == {companies["quote"]}


def test_an_at_with_nothing_usable_after_it_says_what_to_type(session: Session) -> None:
    with pytest.raises(queries.SearchError, match="@acme.com"):
        queries.parse_search("@ ")


def test_the_dotted_beginning_of_an_address_still_finds_the_person(session: Session) -> None:
    ana = make_customer(session, email="ana.lima@example.org", name="Ana Lima").id
    assert found(session, "ana.lima") == {ana}


def test_the_company_count_is_exact(session: Session, companies: dict) -> None:
    page = queries.search_customers(session=session, filters=queries.CustomerFilters(q="@acme.com"))
    assert page.total_label == "2"


def test_the_customers_page_lists_a_company(db: Engine, companies: dict) -> None:
    at = run_page("customers.py", cust_search="ACME.COM")
    assert set(at.dataframe[0].value["id"]) == {companies["ana"], companies["bo"]}


@pytest.mark.parametrize("email", ["Ana@ACME.com", "a@b@Acme.COM", "x@acme.com.", "y@ acme.com ", "no-at-sign",
                                   "z@", "q@.", "Ω@ÄÖ.example", None])
def test_email_domain_rule(email: str | None) -> None:
    expected = {"Ana@ACME.com": "acme.com", "a@b@Acme.COM": "acme.com", "x@acme.com.": "acme.com",
                "y@ acme.com ": "acme.com", "no-at-sign": None, "z@": None, "q@.": None,
                "Ω@ÄÖ.example": "äö.example", None: None}[email]
    assert email_domain(email) == expected


# --- every way a customer is written fills email_domain ---------------------------------------------------


def domain_of(engine: Engine, customer_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT email_domain FROM customers WHERE id = :i"), {"i": customer_id}).scalar()


def test_the_sync_fills_the_domain(db: Engine, sandbox: SandboxServer) -> None:
    made = sandbox.client.v1.customers.create(params={"email": "Sync@Meridiansystems.COM", "name": "Syn"})
    assert run_sync(mode="full", resources=["customers"]).status == "succeeded"
    with Session(db) as s:
        assert found(s, "meridiansystems.com") == {made.id}


def test_a_webhook_moves_the_customer_to_its_new_company(db: Engine, sandbox: SandboxServer) -> None:
    client = sandbox.client
    made = client.v1.customers.create(params={"email": "hook@old-co.com"})
    assert run_sync(mode="full", resources=["customers"]).status == "succeeded"
    sandbox.advance(seconds=5)
    client.v1.customers.update(made.id, {"email": "hook@New-Co.com"})
    event = client.v1.events.list({"type": "customer.updated", "limit": 1}).data[0]
    assert apply_webhook_event(json.loads(json.dumps(event.to_dict()))) == "applied"
    assert domain_of(db, made.id) == "new-co.com"


def test_a_customer_refresh_fills_the_domain(db: Engine, sandbox: SandboxServer) -> None:
    made = sandbox.client.v1.customers.create(params={"email": "fresh@Refresh.example"})
    refresh_customer(made.id)
    assert domain_of(db, made.id) == "refresh.example"


# --- migration 0005 fills existing rows -------------------------------------------------------------------

OLD_EMAILS = ["Ana@ACME.com", "a@b@acme.com", "x@acme.com.", "y@ acme.com ", "no-at-sign", "z@", "q@.",
              "ω@äö.example", "o'brien@o'acme.com", "%@%_.com", None]


def _old_customers(conn: Connection) -> None:
    for i, email in enumerate(OLD_EMAILS):
        norm = email.strip().casefold() if email else None
        conn.execute(text("INSERT INTO customers (id, email, email_normalized, created, balance, delinquent, "
                          "deleted, address, metadata, mrr, livemode, version_ts, synced_at) VALUES (:id, :e, :n, "
                          "'2026-01-01 00:00:00', 0, false, false, '{}', '{}', 0, false, 0, "
                          "'2026-01-01 00:00:00')"), {"id": f"cus_old{i}", "e": email, "n": norm})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0005_fills_the_domain_of_existing_customers_as_the_sync_would(backend: str, tmp_path: Path) -> None:
    with database_at(backend, "0004", tmp_path, _old_customers) as url:
        migrate(url)
        from lib.db import get_engine

        engine = get_engine(url)
        with engine.connect() as conn:
            got = dict(conn.execute(text("SELECT email, email_domain FROM customers WHERE email IS NOT NULL")).all())
            nulls = conn.execute(text("SELECT email_domain FROM customers WHERE email IS NULL")).all()
        assert got == {e: email_domain(e) for e in OLD_EMAILS if e is not None}
        assert nulls == [(None,)]
        with Session(engine) as s:
            assert found(s, "@acme.com") == {"cus_old0", "cus_old1", "cus_old2", "cus_old3"}
