"""Events: one per change, with the object as it was and previous_attributes; filters and paging."""

from __future__ import annotations

import pytest
import stripe

from sandbox.core import parse_form
from tests.sandbox.helpers import card, customer, price, subscribe
from tests.utils.sandbox import SandboxServer


def test_events_carry_the_object_then_and_what_changed(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = c.v1.customers.create(params={"email": "ev@example.com", "name": "Before"})
    c.v1.customers.update(cus.id, params={"name": "After", "metadata": {"k": "v"}})
    created, updated = (c.v1.events.list(params={"type": t}).data[0]
                        for t in ("customer.created", "customer.updated"))
    assert created.data.object.name == "Before"
    assert "previous_attributes" not in created.data
    assert updated.data.object.name == "After"
    assert updated.data.previous_attributes.to_dict() == {"name": "Before", "metadata": {}}
    assert updated.request.id.startswith("req_")
    assert updated.api_version.startswith("2026-10-28")
    assert c.v1.events.retrieve(updated.id).type == "customer.updated"
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.events.retrieve("evt_missing")


def test_event_types_for_a_subscription_lifecycle(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    c.v1.invoices.update(sub.latest_invoice, params={"metadata": {"note": "x"}})
    c.v1.subscriptions.cancel(sub.id)
    types = [e.type for e in c.v1.events.list(params={"limit": 100}).auto_paging_iter()]
    for expected in ("customer.created", "payment_method.attached", "customer.updated", "invoice.created",
                     "invoice.finalized", "invoice.paid", "customer.subscription.created", "invoice.updated",
                     "customer.subscription.deleted"):
        assert expected in types, expected
    assert types[0] == "customer.subscription.deleted"
    inv_types = [e.type for e in c.v1.events.list(params={"type": "invoice.*"}).data]
    assert inv_types
    assert all(t.startswith("invoice.") for t in inv_types)
    both = c.v1.events.list(params={"types": ["customer.created", "customer.subscription.deleted"]}).data
    assert [e.type for e in both] == ["customer.subscription.deleted", "customer.created"]
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.events.list(params={"type": "customer.created", "types": ["invoice.paid"]})


def test_events_page_by_created_and_cursor(sandbox: SandboxServer) -> None:
    c = sandbox.client
    for i in range(5):
        c.v1.customers.create(params={"email": f"e{i}@example.com"})
    first = c.v1.events.list(params={"limit": 2})
    assert len(first.data) == 2
    assert first.has_more is True
    rest = list(c.v1.events.list(params={"limit": 2, "starting_after": first.data[-1].id}).auto_paging_iter())
    assert len(rest) == 3
    newer = c.v1.events.list(params={"ending_before": rest[-1].id, "limit": 10}).data
    assert [e.id for e in newer] == [e.id for e in first.data + rest[:-1]]
    sandbox.advance(days=2)
    later = c.v1.customers.create(params={"email": "late@example.com"})
    recent = c.v1.events.list(params={"created": {"gte": later.created}}).data
    assert [e.data.object.id for e in recent] == [later.id]
    older = c.v1.events.list(params={"created": {"lt": later.created}, "limit": 100}).data
    assert len(older) == 5


def test_date_header_is_sandbox_time(sandbox: SandboxServer) -> None:
    from email.utils import parsedate_to_datetime

    sandbox.advance(days=30)
    page = sandbox.client.v1.customers.list()
    served = parsedate_to_datetime(page.last_response.headers["Date"]).timestamp()
    assert abs(served - sandbox.now()) < 5


def test_subscription_item_changes_pause_and_resume(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    base, addon = price(c, 1000), price(c, 300, name="Addon")
    sub = subscribe(c, cus.id, base.id)
    item = sub["items"].data[0].id
    grown = c.v1.subscriptions.update(sub.id, params={"items": [{"id": item, "quantity": 3},
                                                                {"price": addon.id}]})
    assert [(i.price.id, i.quantity) for i in grown["items"].data] == [(base.id, 3), (addon.id, 1)]
    new_item = grown["items"].data[1]
    assert new_item.current_period_end == grown["items"].data[0].current_period_end
    shrunk = c.v1.subscriptions.update(sub.id, params={"items": [{"id": item, "deleted": True}]})
    assert [i.price.id for i in shrunk["items"].data] == [addon.id]
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.subscriptions.update(sub.id, params={"items": [{"id": new_item.id, "deleted": True}]})
    paused = c.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
    assert paused.pause_collection.behavior == "void"
    sandbox.advance(days=32)
    renewal = c.v1.invoices.retrieve(c.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert renewal.status == "void"
    assert renewal.total == 300
    c.v1.subscriptions.update(sub.id, params={"pause_collection": ""})
    assert c.v1.subscriptions.retrieve(sub.id).pause_collection is None


def test_trial_end_now_and_resume_from_paused(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id, trial_period_days=30)
    ended = c.v1.subscriptions.update(sub.id, params={"trial_end": "now", "expand": ["latest_invoice"]})
    assert ended.status == "active"
    assert ended.latest_invoice.amount_paid == 1500
    nocard = customer(c, None, email="n@example.com")
    paused = subscribe(c, nocard.id, price(c).id, trial_period_days=1,
                       trial_settings={"end_behavior": {"missing_payment_method": "pause"}})
    sandbox.advance(days=2)
    assert c.v1.subscriptions.retrieve(paused.id).status == "paused"
    pm = card(c)
    c.v1.payment_methods.attach(pm.id, params={"customer": nocard.id})
    c.v1.subscriptions.update(paused.id, params={"default_payment_method": pm.id})
    resumed = c.v1.subscriptions.resume(paused.id, params={"expand": ["latest_invoice"]})
    assert resumed.status == "active"
    assert resumed.latest_invoice.status == "paid"
    kinds = [e.type for e in c.v1.events.list(params={"type": "customer.subscription.*", "limit": 100}).data
             if e.data.object.id == paused.id]
    assert kinds.index("customer.subscription.resumed") < kinds.index("customer.subscription.paused")
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.subscriptions.resume(paused.id)


def test_form_decoding_handles_indexed_and_bare_brackets() -> None:
    decoded = parse_form([("expand[]", "a"), ("expand[]", "b"), ("items[0][price]", "p"),
                          ("items[1][price]", "q"), ("metadata[k]", ""), ("created[gt]", "5")])
    assert decoded == {"expand": ["a", "b"], "items": [{"price": "p"}, {"price": "q"}],
                       "metadata": {"k": ""}, "created": {"gt": "5"}}


def test_one_type_pages_and_ages_out(sandbox: SandboxServer) -> None:
    c = sandbox.client
    made = [c.v1.customers.create(params={"email": f"t{i}@example.com"}).id for i in range(5)]
    c.v1.products.create(params={"name": "noise"})
    page = c.v1.events.list(params={"type": "customer.created", "limit": 2})
    assert [e.data.object.id for e in page.data] == made[:-3:-1]
    assert page.has_more
    every = [e.data.object.id for e in page.auto_paging_iter()]
    assert every == made[::-1]
    older = c.v1.events.list(params={"type": "customer.created", "ending_before": page.data[-1].id}).data
    assert [e.data.object.id for e in older] == [made[-1]]
    assert c.v1.events.list(params={"type": "invoice.voided"}).data == []
    sandbox.advance(days=31)
    c.v1.customers.create(params={"email": "fresh@example.com"})
    assert [e.data.object.email for e in c.v1.events.list(params={"type": "customer.created"}).data] == [
        "fresh@example.com"]
