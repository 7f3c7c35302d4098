"""Customers, search, balance transactions and tax ids through the official SDK."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import customer, price, subscribe
from tests.utils.sandbox import SandboxServer


def test_create_retrieve_update_metadata_and_delete(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = c.v1.customers.create(params={
        "email": "zoë@example.com", "name": "Zoë Ødegaard", "phone": "+44 20 7946 0958",
        "metadata": {"plan": "gold", "crm": "42"}, "preferred_locales": ["fr", "en"],
        "address": {"line1": "1 Rue X", "city": "Paris", "country": "FR"}})
    assert cus.id.startswith("cus_")
    assert cus.balance == 0
    assert cus.delinquent is False
    assert cus.address.city == "Paris"
    assert cus.preferred_locales == ["fr", "en"]
    got = c.v1.customers.retrieve(cus.id)
    assert got.name == "Zoë Ødegaard"
    assert got.invoice_settings.default_payment_method is None

    upd = c.v1.customers.update(cus.id, params={"metadata": {"plan": "", "tier": "b"}, "name": "Zoe"})
    assert upd.metadata.to_dict() == {"crm": "42", "tier": "b"}
    assert upd.name == "Zoe"

    gone = c.v1.customers.delete(cus.id)
    assert gone.deleted is True
    again = c.v1.customers.retrieve(cus.id)
    assert again["deleted"] is True
    assert again.id == cus.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.update(cus.id, params={"name": "x"})
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"


def test_delete_cancels_subscriptions(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    assert sub.status == "active"
    c.v1.customers.delete(cus.id)
    after = c.v1.subscriptions.retrieve(sub.id)
    assert after.status == "canceled"
    assert after.canceled_at is not None
    types = [e.type for e in c.v1.events.list(params={"limit": 5}).data]
    assert types[:2] == ["customer.deleted", "customer.subscription.deleted"]


def test_create_with_a_card_in_one_request(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = c.v1.customers.create(params={"email": "one@example.com", "payment_method": "pm_card_visa",
                                        "invoice_settings": {"default_payment_method": "pm_card_visa"},
                                        "tax_id_data": [{"type": "gb_vat", "value": "GB123456789"}]})
    pm_id = cus.invoice_settings.default_payment_method
    assert pm_id.startswith("pm_")
    assert c.v1.payment_methods.retrieve(pm_id).customer == cus.id
    assert c.v1.customers.tax_ids.list(cus.id).data[0].country == "GB"
    created = c.v1.events.list(params={"type": "customer.created"}).data[0]
    assert created.data.object.invoice_settings.default_payment_method == pm_id
    with pytest.raises(stripe.CardError):
        c.v1.customers.create(params={"email": "no@example.com", "payment_method": "pm_card_chargeDeclined"})
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.customers.create(params={"email": "no@example.com",
                                      "invoice_settings": {"default_payment_method": pm_id}})
    assert [x.email for x in c.v1.customers.list().data] == ["one@example.com"]  # failed creates left nothing


def test_missing_customer_is_resource_missing(sandbox: SandboxServer) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        sandbox.client.v1.customers.retrieve("cus_nope")
    e = err.value
    assert e.http_status == 404
    assert e.code == "resource_missing"
    assert e.param == "id"
    assert "No such customer: 'cus_nope'" in e.user_message
    assert e.error.doc_url.startswith("https://stripe.com/docs/error-codes/")


def test_list_newest_first_paginates_and_filters(sandbox: SandboxServer) -> None:
    c = sandbox.client
    ids = [c.v1.customers.create(params={"email": f"u{i}@example.com"}).id for i in range(7)]
    c.v1.customers.create(params={"email": "u3@example.com", "name": "dup"})
    page = c.v1.customers.list(params={"limit": 3})
    assert page.has_more is True
    assert len(page.data) == 3
    assert page.url == "/v1/customers"
    assert page.data[1].id == ids[6]
    assert page.data[2].id == ids[5]
    nxt = c.v1.customers.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [x.id for x in nxt.data] == [ids[4], ids[3], ids[2]]
    prev = c.v1.customers.list(params={"limit": 2, "ending_before": ids[2]})
    assert [x.id for x in prev.data] == [ids[4], ids[3]]
    assert prev.has_more is True
    every = [x.id for x in c.v1.customers.list(params={"limit": 2}).auto_paging_iter()]
    assert len(every) == 8
    assert every[-1] == ids[0]
    by_email = c.v1.customers.list(params={"email": "u3@example.com"})
    assert {x.id for x in by_email.data} == {ids[3], by_email.data[0].id}
    assert len(by_email.data) == 2
    newest = c.v1.customers.retrieve(ids[6]).created
    assert len(c.v1.customers.list(params={"created": {"gt": newest + 10}}).data) == 0
    assert len(c.v1.customers.list(params={"created": {"lte": newest + 10}, "limit": 100}).data) == 8
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.list(params={"limit": 101})
    assert err.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.customers.list(params={"starting_after": "cus_unknown"})


def test_search(sandbox: SandboxServer) -> None:
    c = sandbox.client
    a = c.v1.customers.create(params={"email": "Maria.Garcia@Example.com", "name": "María García",
                                      "phone": "+34 600 000 001", "metadata": {"crm": "77"}})
    b = c.v1.customers.create(params={"email": "mgarcia+shop@gmail.com", "name": "Maria Garcia"})
    c.v1.customers.create(params={"email": "li.wei@example.cn", "name": "李伟"})
    res = c.v1.customers.search(params={"query": "email:'maria.garcia@example.com'"})
    assert [x.id for x in res.data] == [a.id]
    assert res.next_page is None
    assert [x.id for x in c.v1.customers.search(params={"query": "name~'garcia'"}).data] == [b.id]
    assert [x.id for x in c.v1.customers.search(params={"query": "metadata['crm']:'77'"}).data] == [a.id]
    both = c.v1.customers.search(params={"query": "name~'García' OR email~'gmail'"})
    assert {x.id for x in both.data} == {a.id, b.id}
    assert c.v1.customers.search(params={"query": "name:'李伟' AND email~'example'"}).data[0].name == "李伟"
    paged = c.v1.customers.search(params={"query": "email~'example'", "limit": 1})
    assert paged.has_more is True
    assert paged.next_page
    second = c.v1.customers.search(params={"query": "email~'example'", "limit": 1, "page": paged.next_page})
    assert second.data[0].id != paged.data[0].id
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.search(params={"query": "email = 'x'"})
    assert err.value.param == "query"


def test_balance_transactions_move_balance(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, None)
    t1 = c.v1.customers.balance_transactions.create(cus.id, params={"amount": -2500, "currency": "eur",
                                                                      "description": "goodwill"})
    assert t1.ending_balance == -2500
    assert t1.type == "adjustment"
    c.v1.customers.balance_transactions.create(cus.id, params={"amount": 500, "currency": "eur"})
    fresh = c.v1.customers.retrieve(cus.id)
    assert fresh.balance == -2000
    assert fresh.currency == "eur"
    listed = c.v1.customers.balance_transactions.list(cus.id)
    assert [t.amount for t in listed.data] == [500, -2500]
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.balance_transactions.create(cus.id, params={"amount": 5, "currency": "usd"})
    assert err.value.param == "currency"


def test_credit_balance_applies_to_next_invoice(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    c.v1.customers.balance_transactions.create(cus.id, params={"amount": -1000, "currency": "usd"})
    sub = subscribe(c, cus.id, price(c, 1500).id, expand=["latest_invoice"])
    inv = sub.latest_invoice
    assert inv.total == 1500
    assert inv.amount_due == 500
    assert inv.amount_paid == 500
    assert inv.starting_balance == -1000
    assert inv.ending_balance == 0
    assert c.v1.customers.retrieve(cus.id).balance == 0


def test_tax_ids(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, None)
    tid = c.v1.customers.tax_ids.create(cus.id, params={"type": "eu_vat", "value": "DE123456789"})
    assert tid.country == "DE"
    assert tid.customer == cus.id
    assert tid.verification.status == "pending"
    assert [t.id for t in c.v1.customers.tax_ids.list(cus.id).data] == [tid.id]
    assert c.v1.customers.tax_ids.retrieve(cus.id, tid.id).value == "DE123456789"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.customers.tax_ids.create(cus.id, params={"type": "xx_nope", "value": "1"})
    assert c.v1.customers.tax_ids.delete(cus.id, tid.id).deleted is True
    assert c.v1.customers.tax_ids.list(cus.id).data == []
    types = [e.type for e in c.v1.events.list(params={"type": "customer.tax_id.*"}).data]
    assert types == ["customer.tax_id.deleted", "customer.tax_id.created"]
