"""Products, prices, payment methods, subscriptions and invoices through the official SDK."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import (
    BAD_CVC,
    DECLINE_ALWAYS,
    DECLINE_AT_ATTACH,
    EXPIRED,
    INSUFFICIENT,
    VISA,
    card,
    customer,
    price,
    subscribe,
)
from tests.utils.sandbox import SandboxServer

DAY = 86400


def test_products_and_prices_in_several_currencies(sandbox: SandboxServer) -> None:
    c = sandbox.client
    prod = c.v1.products.create(params={"name": "Team", "metadata": {"tier": "2"}})
    monthly = c.v1.prices.create(params={"product": prod.id, "currency": "eur", "unit_amount": 900,
                                         "recurring": {"interval": "month"}, "lookup_key": "team_m_eur"})
    yearly = c.v1.prices.create(params={"product": prod.id, "currency": "GBP", "unit_amount": 9000,
                                        "recurring": {"interval": "year"}})
    quarterly = c.v1.prices.create(params={"product": prod.id, "currency": "usd", "unit_amount": 2500,
                                           "recurring": {"interval": "month", "interval_count": 3}})
    assert yearly.currency == "gbp"
    assert yearly.recurring.interval == "year"
    assert monthly.type == "recurring"
    assert quarterly.recurring.interval_count == 3
    listed = c.v1.prices.list(params={"product": prod.id})
    assert [p.id for p in listed.data] == [quarterly.id, yearly.id, monthly.id]
    assert [p.id for p in c.v1.prices.list(params={"currency": "eur"}).data] == [monthly.id]
    assert c.v1.prices.list(params={"lookup_keys": ["team_m_eur"]}).data[0].id == monthly.id
    assert c.v1.products.retrieve(prod.id).metadata["tier"] == "2"
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.prices.create(params={"product": prod.id, "currency": "usd", "unit_amount": 1,
                                   "recurring": {"interval": "fortnight"}})
    assert err.value.param == "recurring[interval]"


def test_cards_fingerprint_attach_detach(sandbox: SandboxServer) -> None:
    c = sandbox.client
    a, b = customer(c, None), customer(c, None, email="bob@example.com")
    pa, pb = card(c, VISA), card(c, VISA)
    mc = card(c, "5555555555554444")
    assert pa.card.brand == "visa"
    assert pa.card.last4 == "4242"
    assert pa.card.exp_year == 2034
    assert pa.card.fingerprint == pb.card.fingerprint
    assert pb.card.fingerprint != mc.card.fingerprint
    assert mc.card.brand == "mastercard"
    c.v1.payment_methods.attach(pa.id, params={"customer": a.id})
    c.v1.payment_methods.attach(pb.id, params={"customer": b.id})
    c.v1.payment_methods.attach(mc.id, params={"customer": a.id})
    assert [p.id for p in c.v1.payment_methods.list(params={"customer": a.id, "type": "card"}).data] == [mc.id, pa.id]
    assert [p.id for p in c.v1.customers.payment_methods.list(b.id).data] == [pb.id]
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.payment_methods.attach(pa.id, params={"customer": b.id})  # belongs to a
    detached = c.v1.payment_methods.detach(pa.id)
    assert detached.customer is None
    assert [p.id for p in c.v1.payment_methods.list(params={"customer": a.id}).data] == [mc.id]
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.payment_methods.attach(pa.id, params={"customer": a.id})
    assert "may not be used again" in err.value.user_message
    via_token = c.v1.payment_methods.attach("pm_card_mastercard", params={"customer": b.id})
    assert via_token.id.startswith("pm_")
    assert via_token.card.brand == "mastercard"
    types = [e.type for e in c.v1.events.list(params={"types": ["payment_method.attached",
                                                                 "payment_method.detached"]}).data]
    assert types[:2] == ["payment_method.attached", "payment_method.detached"]
    assert len(types) == 5


def test_bad_cards(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, None)
    with pytest.raises(stripe.CardError) as err:
        c.v1.payment_methods.attach(card(c, DECLINE_AT_ATTACH).id, params={"customer": cus.id})
    assert err.value.code == "card_declined"
    assert err.value.error.decline_code == "generic_decline"
    with pytest.raises(stripe.CardError) as err:
        card(c, "4242424242424241")
    assert err.value.code == "incorrect_number"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.payment_methods.retrieve("pm_missing")


def test_subscription_with_items_periods_and_first_invoice(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    p1, p2 = price(c, 1000), price(c, 250, name="Seats")
    sub = c.v1.subscriptions.create(params={
        "customer": cus.id, "items": [{"price": p1.id}, {"price": p2.id, "quantity": 4}],
        "metadata": {"source": "test"}, "expand": ["latest_invoice", "customer", "default_payment_method"]})
    assert sub.status == "active"
    assert sub.customer.id == cus.id
    assert sub.currency == "usd"
    item = sub["items"].data[0]
    assert item.current_period_end - item.current_period_start in range(28 * DAY, 32 * DAY)
    inv = sub.latest_invoice
    assert inv.status == "paid"
    assert inv.total == 2000
    assert inv.amount_paid == 2000
    assert inv.amount_remaining == 0
    assert inv.parent.subscription_details.subscription == sub.id
    assert inv.billing_reason == "subscription_create"
    assert inv.number.endswith("-0001")
    assert inv.customer_email == "ann@example.com"
    assert inv.attempted is True
    assert inv.hosted_invoice_url.startswith(sandbox.url)
    assert inv.status_transitions.paid_at is not None
    assert [ln.amount for ln in inv.lines.data] == [1000, 1000]
    assert c.v1.customers.retrieve(cus.id).currency == "usd"
    got = c.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert got.latest_invoice.id == inv.id
    updated = c.v1.subscriptions.update(sub.id, params={"metadata": {"source": ""},
                                                        "items": [{"id": item.id, "quantity": 2}]})
    assert updated.metadata.to_dict() == {}
    assert updated["items"].data[0].quantity == 2
    ev = c.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert ev.data.object.id == sub.id
    assert "metadata" in ev.data.previous_attributes


def test_subscription_errors(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    usd, eur = price(c, 1000), price(c, 900, currency="eur")
    with pytest.raises(stripe.InvalidRequestError) as err:
        subscribe(c, "cus_missing", usd.id)
    assert err.value.param == "customer"
    assert err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.subscriptions.create(params={"customer": cus.id, "items": [{"price": usd.id}, {"price": eur.id}]})
    assert err.value.param == "items"
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.subscriptions.create(params={"customer": cus.id, "items": [{"price": usd.id}], "colour": "red"})
    assert "unknown parameter" in err.value.user_message
    assert err.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.subscriptions.retrieve("sub_nope")


def test_many_items_and_lines_paginate_beyond_ten(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    prices = [price(c, 100 + i, name=f"Addon {i}") for i in range(12)]
    sub = c.v1.subscriptions.create(params={"customer": cus.id, "items": [{"price": p.id} for p in prices]})
    assert len(sub["items"].data) == 10
    assert sub["items"].has_more is True
    all_items = list(sub["items"].auto_paging_iter())
    assert [i.price.id for i in all_items] == [p.id for p in prices]
    inv = c.v1.invoices.retrieve(sub.latest_invoice)
    assert len(inv.lines.data) == 10
    assert inv.lines.has_more is True
    lines = list(inv.lines.auto_paging_iter())
    assert len(lines) == 12
    assert sum(ln.amount for ln in lines) == inv.total
    assert inv.total == sum(100 + i for i in range(12))
    assert len(c.v1.invoices.line_items.list(inv.id, params={"limit": 5}).data) == 5


@pytest.mark.parametrize(("number", "code", "decline"), [
    (DECLINE_ALWAYS, "card_declined", "generic_decline"),
    (INSUFFICIENT, "card_declined", "insufficient_funds"),
    (EXPIRED, "expired_card", "expired_card"),
    (BAD_CVC, "incorrect_cvc", "incorrect_cvc"),
])
def test_declined_first_payment_leaves_subscription_incomplete(sandbox: SandboxServer, number: str, code: str,
                                                               decline: str) -> None:
    c = sandbox.client
    cus = customer(c, number)
    sub = subscribe(c, cus.id, price(c).id, expand=["latest_invoice.payments"])
    assert sub.status == "incomplete"
    inv = sub.latest_invoice
    assert inv.status == "open"
    assert inv.attempt_count == 1
    assert inv.amount_remaining == 1500
    assert inv.last_finalization_error is None
    pi = c.v1.payment_intents.retrieve(inv.payments.data[0].payment.payment_intent)
    err = pi.last_payment_error
    assert (err.code, err.decline_code, err.type) == (code, decline, "card_error")
    assert err.message
    charge = c.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed"
    assert charge.failure_code == code
    assert charge.outcome.reason == decline
    failed = c.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert [e.data.object.id for e in failed] == [inv.id]
    sandbox.advance(days=1)
    assert c.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert c.v1.invoices.retrieve(inv.id).status == "void"


def test_error_if_incomplete_creates_nothing(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, INSUFFICIENT)
    with pytest.raises(stripe.CardError) as err:
        subscribe(c, cus.id, price(c).id, payment_behavior="error_if_incomplete")
    assert err.value.error.decline_code == "insufficient_funds"
    assert err.value.http_status == 402
    assert c.v1.subscriptions.list(params={"customer": cus.id, "status": "all"}).data == []


def test_paying_an_incomplete_invoice_with_a_new_card(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, DECLINE_ALWAYS)
    sub = subscribe(c, cus.id, price(c).id)
    with pytest.raises(stripe.CardError):
        c.v1.invoices.pay(sub.latest_invoice)
    good = card(c, VISA)
    c.v1.payment_methods.attach(good.id, params={"customer": cus.id})
    paid = c.v1.invoices.pay(sub.latest_invoice, params={"payment_method": good.id})
    assert paid.status == "paid"
    assert paid.attempt_count == 3
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.pay(paid.id)


def test_invoice_void_uncollectible_and_list_filters(sandbox: SandboxServer) -> None:
    c = sandbox.client
    a, b = customer(c, DECLINE_ALWAYS), customer(c, DECLINE_ALWAYS, email="b@example.com")
    pr = price(c)
    sa, sb = subscribe(c, a.id, pr.id), subscribe(c, b.id, pr.id)
    voided = c.v1.invoices.void_invoice(sa.latest_invoice)
    assert voided.status == "void"
    assert voided.status_transitions.voided_at is not None
    bad = c.v1.invoices.mark_uncollectible(sb.latest_invoice)
    assert bad.status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.mark_uncollectible(sa.latest_invoice)
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.void_invoice(sa.latest_invoice)
    assert [i.id for i in c.v1.invoices.list(params={"status": "void"}).data] == [voided.id]
    assert [i.id for i in c.v1.invoices.list(params={"customer": b.id}).data] == [bad.id]
    assert [i.id for i in c.v1.invoices.list(params={"subscription": sa.id}).data] == [voided.id]
    assert c.v1.invoices.list(params={"status": "open"}).data == []
    assert len(c.v1.invoices.list(params={"created": {"gte": voided.created}}).data) == 2
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.list(params={"status": "bogus"})
    types = {e.type for e in c.v1.events.list(params={"limit": 100}).data}
    assert {"invoice.voided", "invoice.marked_uncollectible", "invoice.created", "invoice.finalized"} <= types
    assert c.v1.customers.retrieve(a.id).delinquent is False  # its only failed invoice was voided
    assert c.v1.invoices.list(params={"customer": a.id, "expand": ["data.customer"]}).data[0].customer.id == a.id


def test_subscription_list_filters(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    p1, p2 = price(c, 1000), price(c, 2000, name="Big")
    s1, s2 = subscribe(c, cus.id, p1.id), subscribe(c, cus.id, p2.id)
    c.v1.subscriptions.cancel(s1.id)
    assert [s.id for s in c.v1.subscriptions.list(params={"customer": cus.id}).data] == [s2.id]
    assert [s.id for s in c.v1.subscriptions.list(params={"status": "all"}).data] == [s2.id, s1.id]
    assert [s.id for s in c.v1.subscriptions.list(params={"status": "canceled"}).data] == [s1.id]
    assert [s.id for s in c.v1.subscriptions.list(params={"price": p2.id}).data] == [s2.id]
    assert c.v1.subscriptions.list(params={"created": {"gt": s2.created + 5}}).data == []
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.subscriptions.list(params={"status": "sleeping"})


def test_the_accounts_open_invoice_payments_are_listed_with_their_declines(sandbox: SandboxServer) -> None:
    c = sandbox.client
    paid_sub = subscribe(c, customer(c).id, price(c).id)
    declined_sub = subscribe(c, customer(c, DECLINE_ALWAYS).id, price(c).id)

    listed = c.v1.invoice_payments.list(params={"status": "open", "limit": 100,
                                                "expand": ["data.payment.payment_intent"]}).data

    assert [p.invoice for p in listed] == [declined_sub.latest_invoice]
    assert listed[0].payment.payment_intent.last_payment_error.decline_code == "generic_decline"
    everything = c.v1.invoice_payments.list(params={"limit": 100}).data
    assert {p.invoice for p in everything} == {paid_sub.latest_invoice, declined_sub.latest_invoice}
