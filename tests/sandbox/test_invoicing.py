"""One-off invoices and invoice items (what the messy seed's 150-line invoice is made of), through the SDK."""

from __future__ import annotations

import pytest
import stripe

from tests.utils.sandbox import SandboxServer


@pytest.fixture
def customer(sandbox: SandboxServer) -> stripe.Customer:
    return sandbox.client.v1.customers.create({"name": "One-off", "payment_method": "pm_card_visa",
                                               "invoice_settings": {"default_payment_method": "pm_card_visa"}})


def test_items_become_lines_and_the_total(sandbox: SandboxServer, customer: stripe.Customer) -> None:
    api = sandbox.client.v1
    inv = api.invoices.create({"customer": customer.id, "currency": "jpy"})
    for i in range(12):
        api.invoice_items.create({"customer": customer.id, "invoice": inv.id, "amount": 100 + i,
                                  "description": f"line {i}"})
    inv = api.invoices.pay(inv.id)
    lines = list(api.invoices.line_items.list(inv.id).auto_paging_iter())
    assert [line.description for line in lines] == [f"line {i}" for i in range(12)]
    assert (inv.status, inv.currency, inv.amount_paid, inv.billing_reason) == ("paid", "jpy", 1266, "manual")
    assert api.customers.retrieve(customer.id).currency == "jpy"


def test_an_item_needs_a_draft_invoice(sandbox: SandboxServer, customer: stripe.Customer) -> None:
    api = sandbox.client.v1
    with pytest.raises(stripe.InvalidRequestError, match="draft invoice"):
        api.invoice_items.create({"customer": customer.id, "amount": 100, "currency": "usd"})
    inv = api.invoices.create({"customer": customer.id})
    api.invoices.finalize_invoice(inv.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft invoices"):
        api.invoice_items.create({"customer": customer.id, "invoice": inv.id, "amount": 100})


def test_an_item_in_another_currency_is_refused(sandbox: SandboxServer, customer: stripe.Customer) -> None:
    api = sandbox.client.v1
    inv = api.invoices.create({"customer": customer.id, "currency": "kwd"})
    with pytest.raises(stripe.InvalidRequestError, match="currency"):
        api.invoice_items.create({"customer": customer.id, "invoice": inv.id, "amount": 100, "currency": "usd"})
