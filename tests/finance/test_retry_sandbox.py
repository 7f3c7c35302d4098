"""Retry now against the sandbox (official SDK over HTTP, both backends): a failed invoice whose customer put a
new card on file shows the hint after a sync, "Retry now" pays it through POST /v1/invoices/{id}/pay with an
idempotency key, audited, and the cached row is refreshed; a second decline, a network outage, Stripe 5xx
errors and a role without the right end in clear messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import stripe
from sqlalchemy import Engine
from sqlmodel import Session, select

from lib import queries
from lib.auth import User
from lib.config import get_settings
from lib.invoice_retry import RetryError, retry_invoice
from lib.models import AuditLog, Invoice
from lib.sync import refresh_customer, run_sync
from tests.utils.sandbox import SandboxServer

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"  # generic_decline
CARD_NO_FUNDS = "4000000000009995"  # insufficient_funds
FINANCE = User(email="fran@corp.test", name="Fran", roles=frozenset({"finance"}))


@dataclass
class Failed:
    customer: str
    invoice: str
    bad_card: str


def _card(client: stripe.StripeClient, customer: str, number: str) -> str:
    pm = client.v1.payment_methods.create({"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}})
    client.v1.payment_methods.attach(pm.id, {"customer": customer})
    return pm.id


@pytest.fixture
def failed(sandbox: SandboxServer, db: Engine) -> Failed:
    """A customer whose first subscription invoice failed on a declining card, synced into the cache."""
    client = sandbox.client
    product = client.v1.products.create({"name": "Team"})
    price = client.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 4900,
                                     "recurring": {"interval": "month"}})
    customer = client.v1.customers.create({"email": "retry@example.com", "name": "Retry Me"})
    bad = _card(client, customer.id, CARD_DECLINED)
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": bad}})
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    invoice = client.v1.invoices.retrieve(sub.latest_invoice if isinstance(sub.latest_invoice, str)
                                          else sub.latest_invoice.id)
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    result = run_sync(mode="full")
    assert result.status == "succeeded", result.error
    return Failed(customer=customer.id, invoice=invoice.id, bad_card=bad)


def _new_default(sandbox: SandboxServer, f: Failed, number: str) -> str:
    """The customer puts another card on file (as the portal does) and the cache hears of it."""
    pm = _card(sandbox.client, f.customer, number)
    sandbox.client.v1.customers.update(f.customer, {"invoice_settings": {"default_payment_method": pm}})
    refresh_customer(f.customer)
    return pm


def _row(session: Session, invoice_id: str) -> dict:
    page = queries.failed_invoices(session=session, filters=queries.FailedFilters())
    return next(r for r in page.rows if r["id"] == invoice_id)


def _audit(session: Session, invoice_id: str) -> list[AuditLog]:
    session.expire_all()
    return list(session.exec(select(AuditLog).where(AuditLog.action == "retry_invoice",
                                                    AuditLog.object_id == invoice_id).order_by(AuditLog.id)))


def test_the_failed_card_is_cached_and_no_hint_before_a_new_card(failed: Failed, session: Session) -> None:
    assert session.get(Invoice, failed.invoice).failed_payment_method_id == failed.bad_card
    assert _row(session, failed.invoice)["new_card"] == ""


def test_new_card_hint_then_retry_now_pays_and_refreshes_the_cache(failed: Failed, sandbox: SandboxServer,
                                                                    session: Session) -> None:
    new = _new_default(sandbox, failed, CARD_OK)
    row = _row(session, failed.invoice)
    assert row["new_card"].startswith("New card Visa •••• 4242 added ")
    assert row["new_card"].endswith(" — retry now")
    only_new = queries.failed_invoices(session=session, filters=queries.FailedFilters(new_card=True))
    assert [r["id"] for r in only_new.rows] == [failed.invoice]
    sandbox.clear_requests()

    outcome = retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)

    assert outcome.message == f"Invoice {failed.invoice} is paid: 49.00 USD collected."
    assert outcome.cache_note is None
    pays = [r for r in sandbox.requests() if r["path"] == f"/v1/invoices/{failed.invoice}/pay"]
    assert len(pays) == 1
    assert pays[0]["idempotency_key"] == f"invoice-pay-{failed.invoice}-a1-{new}"
    assert sandbox.client.v1.invoices.retrieve(failed.invoice).status == "paid"
    session.expire_all()
    assert session.get(Invoice, failed.invoice).status == "paid"
    assert [(a.result, a.actor, a.customer_id) for a in _audit(session, failed.invoice)] == [
        ("succeeded", FINANCE.email, failed.customer)]
    assert _audit(session, failed.invoice)[0].details["idempotency_key"] == pays[0]["idempotency_key"]
    still = queries.failed_invoices(session=session, filters=queries.FailedFilters(new_card=True))
    assert still.rows == []


def test_a_new_card_that_declines_again_says_so_and_counts_the_attempt(failed: Failed, sandbox: SandboxServer,
                                                                        session: Session) -> None:
    new = _new_default(sandbox, failed, CARD_NO_FUNDS)
    with pytest.raises(RetryError) as err:
        retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)
    assert err.value.kind == "declined"
    assert err.value.message.startswith("The card was declined again (insufficient_funds): ")
    assert "Nothing was charged." in err.value.message
    session.expire_all()
    cached = session.get(Invoice, failed.invoice)
    assert (cached.status, cached.attempt_count) == ("open", 2)
    assert cached.failed_payment_method_id == new
    assert _row(session, failed.invoice)["new_card"] == ""  # the new card is now the one that failed
    audit = _audit(session, failed.invoice)
    assert [a.result for a in audit] == ["failed"]
    assert audit[0].error == err.value.message.split(" The cache")[0]


def test_stripe_unreachable_is_a_clear_message_and_nothing_is_charged(failed: Failed, sandbox: SandboxServer,
                                                                       session: Session,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    new = _new_default(sandbox, failed, CARD_OK)
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9")
    get_settings.cache_clear()
    with pytest.raises(RetryError) as err:
        retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)
    assert err.value.kind == "network"
    assert "could not be reached" in err.value.message
    assert "Nothing was charged" in err.value.message
    assert sandbox.client.v1.invoices.retrieve(failed.invoice).status == "open"
    assert [a.result for a in _audit(session, failed.invoice)] == ["failed"]


def test_stripe_server_errors_are_a_clear_message(failed: Failed, sandbox: SandboxServer, session: Session) -> None:
    new = _new_default(sandbox, failed, CARD_OK)
    sandbox.faults(server_error=1.0)
    try:
        with pytest.raises(RetryError) as err:
            retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)
    finally:
        sandbox.faults()
    assert err.value.kind == "server"
    assert err.value.message.startswith("Stripe had an internal error and did not confirm the payment.")
    assert sandbox.client.v1.invoices.retrieve(failed.invoice).status == "open"
    # the same request again once Stripe is back: paid once
    outcome = retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)
    assert outcome.message.startswith(f"Invoice {failed.invoice} is paid")


def test_an_invoice_already_paid_in_stripe_is_reported_and_the_cache_catches_up(
        failed: Failed, sandbox: SandboxServer, session: Session) -> None:
    new = _new_default(sandbox, failed, CARD_OK)
    sandbox.client.v1.invoices.pay(failed.invoice)  # paid elsewhere; the cache does not know yet
    with pytest.raises(RetryError) as err:
        retry_invoice(failed.invoice, user=FINANCE, session=session, card_id=new)
    assert err.value.kind == "already_paid"
    session.expire_all()
    assert session.get(Invoice, failed.invoice).status == "paid"


@pytest.mark.parametrize("role", ["support", "staff"])
def test_roles_without_the_right_are_refused_when_it_runs(role: str, failed: Failed, sandbox: SandboxServer,
                                                          session: Session) -> None:
    new = _new_default(sandbox, failed, CARD_OK)
    sandbox.clear_requests()
    user = User(email=f"{role}@corp.test", name=role, roles=frozenset({role}))
    with pytest.raises(RetryError) as err:
        retry_invoice(failed.invoice, user=user, session=session, card_id=new)
    assert err.value.kind == "refused"
    assert "needs finance or admin" in err.value.message
    assert [r for r in sandbox.requests() if r["path"].endswith("/pay")] == []
    assert [(a.result, a.actor) for a in _audit(session, failed.invoice)] == [("refused", user.email)]
