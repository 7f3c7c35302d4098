"""The shape check itself: it flags undeclared and missing fields, and the suite's answers cover every kind of
object the sandbox emits (the autouse fixture in conftest.py checks each answer)."""

from __future__ import annotations

from typing import Any

from tests.sandbox.helpers import DECLINE_ALWAYS, customer, price, subscribe
from tests.sandbox.shape import check
from tests.utils.sandbox import SandboxServer

KINDS = {"customer", "payment_method", "product", "price", "subscription", "subscription_item", "plan", "invoice",
         "line_item", "invoice_payment", "payment_intent", "charge", "event", "customer_balance_transaction",
         "tax_id", "webhook_endpoint", "billing_portal.configuration", "billing_portal.session", "list",
         "search_result", "coupon", "discount", "subscription_schedule", "customer_cash_balance_transaction",
         "cash_balance"}


def _kinds(value: Any, seen: set[str]) -> None:
    if isinstance(value, dict):
        if isinstance(value.get("object"), str):
            seen.add(value["object"])
        for v in value.values():
            _kinds(v, seen)
    elif isinstance(value, list):
        for v in value:
            _kinds(v, seen)


def test_checker_flags_unknown_and_missing_fields() -> None:
    bad = {"id": "cus_1", "object": "customer", "account_balance": 5}
    problems = check(bad)
    assert any("account_balance: not declared on Customer" in p for p in problems)
    assert any("required field created missing" in p for p in problems)
    old_sub = {"id": "sub_1", "object": "subscription", "current_period_end": 1}
    assert any("current_period_end: not declared on Subscription" in p for p in check(old_sub))
    nested = {"object": "list", "url": "/v1/x", "has_more": False,
              "data": [{"id": "in_1", "object": "invoice", "charge": "ch_1"}]}
    assert any("charge: not declared on Invoice" in p for p in check(nested))


def test_every_kind_of_object_is_answered_and_checked(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, DECLINE_ALWAYS)
    sub = subscribe(c, cus.id, price(c).id)
    inv = c.v1.invoices.retrieve(sub.latest_invoice, params={"expand": ["payments.data.payment.payment_intent"]})
    pi = inv.payments.data[0].payment.payment_intent
    c.v1.charges.retrieve(pi.latest_charge)
    c.v1.invoice_payments.list(params={"invoice": inv.id})
    c.v1.customers.balance_transactions.create(cus.id, params={"amount": 100, "currency": "usd"})
    c.v1.customers.tax_ids.create(cus.id, params={"type": "us_ein", "value": "12-3456789"})
    c.v1.webhook_endpoints.create(params={"url": "https://example.com/h", "enabled_events": ["invoice.paid"]})
    c.v1.billing_portal.configurations.create(params={"features": {"invoice_history": {"enabled": True}}})
    c.v1.billing_portal.sessions.create(params={"customer": cus.id})
    c.v1.customers.search(params={"query": "email~'example'"})
    c.v1.subscription_items.list(params={"subscription": sub.id})
    coupon = c.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    discounted = subscribe(c, cus.id, price(c).id, discounts=[{"coupon": coupon.id}],
                           expand=["discounts", "latest_invoice"])
    c.v1.subscription_schedules.create(params={"from_subscription": discounted.id})
    c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 100, "currency": "usd"})
    c.v1.customers.cash_balance.retrieve(cus.id)
    c.v1.events.list(params={"limit": 100})
    seen: set[str] = set()
    for entry in sandbox.requests():
        assert entry["status"] == 200, entry
        _kinds(entry["response"], seen)
    assert KINDS <= seen, KINDS - seen
