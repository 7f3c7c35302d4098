"""Sandbox time: renewals, dunning retries, trials, anchors and scheduled cancellation."""

from __future__ import annotations

import urllib.error

import pytest

from tests.sandbox.helpers import DECLINE_ALWAYS, VISA, card, customer, price, subscribe
from tests.utils.sandbox import SandboxServer

DAY = 86400


def _switch_card(sandbox: SandboxServer, cus_id: str, number: str) -> str:
    c = sandbox.client
    pm = card(c, number)
    c.v1.payment_methods.attach(pm.id, params={"customer": cus_id})
    c.v1.customers.update(cus_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    return pm.id


def test_renewals_invoice_each_period_and_charge_the_default_card(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c, 1200).id)
    start = sub["items"].data[0].current_period_start
    sandbox.advance(days=95)
    invs = c.v1.invoices.list(params={"subscription": sub.id}).data
    assert [i.billing_reason for i in invs] == ["subscription_cycle"] * 3 + ["subscription_create"]
    assert [i.status for i in invs] == ["paid"] * 4
    assert [i.amount_paid for i in invs] == [1200] * 4
    assert [i.period_start for i in invs][::-1] == sorted(i.period_start for i in invs)
    assert len({i.number for i in invs}) == 4
    fresh = c.v1.subscriptions.retrieve(sub.id)
    assert fresh.status == "active"
    assert fresh.latest_invoice == invs[0].id
    assert fresh["items"].data[0].current_period_start == invs[0].period_start > start + 85 * DAY
    assert invs[0].created == invs[0].period_start  # made at renewal time, not at advance time


def test_dunning_retries_then_cancels_and_marks_uncollectible(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    _switch_card(sandbox, cus.id, DECLINE_ALWAYS)
    period_end = sub["items"].data[0].current_period_end
    sandbox.advance(seconds=period_end - sandbox.now() + 60)
    inv = c.v1.invoices.retrieve(c.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert inv.status == "open"
    assert inv.attempt_count == 1
    assert inv.next_payment_attempt == period_end + 3 * DAY
    assert c.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert c.v1.customers.retrieve(cus.id).delinquent is True
    sandbox.advance(days=3)
    inv = c.v1.invoices.retrieve(inv.id)
    assert inv.attempt_count == 2
    assert inv.next_payment_attempt == period_end + 5 * DAY
    sandbox.advance(days=4.5)
    inv = c.v1.invoices.retrieve(inv.id)
    assert inv.attempt_count == 4
    assert inv.status == "uncollectible"
    assert inv.next_payment_attempt is None
    done = c.v1.subscriptions.retrieve(sub.id)
    assert done.status == "canceled"
    assert done.cancellation_details.reason == "payment_failed"
    failed = c.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert len(failed) == 4


def test_dunning_can_end_unpaid_and_recover_when_paid(sandbox: SandboxServer) -> None:
    c = sandbox.client
    sandbox.control("POST", "settings", {"final_action": "unpaid", "final_invoice": "open"})
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    _switch_card(sandbox, cus.id, DECLINE_ALWAYS)
    sandbox.advance(days=40)
    fresh = c.v1.subscriptions.retrieve(sub.id)
    assert fresh.status == "unpaid"
    inv = c.v1.invoices.retrieve(fresh.latest_invoice)
    assert inv.status == "open"
    assert inv.next_payment_attempt is None
    assert inv.attempt_count == 4
    good = _switch_card(sandbox, cus.id, VISA)
    c.v1.invoices.pay(inv.id, params={"payment_method": good})
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"
    assert c.v1.customers.retrieve(cus.id).delinquent is False


def test_trial_then_active_and_trial_will_end(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id, trial_period_days=14, expand=["latest_invoice"])
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * DAY
    assert sub.latest_invoice.amount_due == 0
    assert sub.latest_invoice.status == "paid"
    sandbox.advance(days=12)
    assert [e.data.object.id for e in c.v1.events.list(
        params={"type": "customer.subscription.trial_will_end"}).data] == [sub.id]
    sandbox.advance(days=3)
    fresh = c.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert fresh.status == "active"
    assert fresh.latest_invoice.amount_paid == 1500
    assert fresh["items"].data[0].current_period_start == sub.trial_end


def test_trial_without_card_pauses_or_goes_past_due(sandbox: SandboxServer) -> None:
    c = sandbox.client
    pr = price(c)
    a, b = customer(c, None), customer(c, None, email="b@example.com")
    paused = subscribe(c, a.id, pr.id, trial_period_days=7,
                       trial_settings={"end_behavior": {"missing_payment_method": "pause"}})
    due = subscribe(c, b.id, pr.id, trial_period_days=7)
    sandbox.advance(days=8)
    assert c.v1.subscriptions.retrieve(paused.id).status == "paused"
    assert c.v1.subscriptions.retrieve(due.id).status == "past_due"
    assert [s.id for s in c.v1.subscriptions.list(params={"status": "paused"}).data] == [paused.id]


def test_future_anchor_without_proration_is_free_until_the_anchor(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    anchor = sandbox.now() + 10 * DAY
    sub = subscribe(c, cus.id, price(c, 3000).id, billing_cycle_anchor=anchor, proration_behavior="none",
                    expand=["latest_invoice"])
    assert sub.status == "active"
    assert sub.billing_cycle_anchor == anchor
    assert sub.latest_invoice.total == 0
    assert sub["items"].data[0].current_period_end == anchor
    prorated = subscribe(c, customer(c, email="p@example.com").id, price(c, 3000).id,
                         billing_cycle_anchor=anchor, expand=["latest_invoice"])
    assert 0 < prorated.latest_invoice.total < 3000
    sandbox.advance(days=11)
    fresh = c.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert fresh.latest_invoice.total == 3000
    assert fresh.latest_invoice.period_start == anchor
    assert fresh["items"].data[0].current_period_start == anchor


def test_cancel_at_period_end(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    end = sub["items"].data[0].current_period_end
    upd = c.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert upd.cancel_at_period_end is True
    assert upd.cancel_at == end
    assert upd.status == "active"
    sandbox.advance(days=20)
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"
    sandbox.advance(days=15)
    done = c.v1.subscriptions.retrieve(sub.id)
    assert done.status == "canceled"
    assert done.ended_at == end
    assert len(c.v1.invoices.list(params={"subscription": sub.id}).data) == 1  # no renewal invoice


def test_cancel_now_stops_retries(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c).id)
    _switch_card(sandbox, cus.id, DECLINE_ALWAYS)
    sandbox.advance(days=32)
    inv_id = c.v1.subscriptions.retrieve(sub.id).latest_invoice
    canceled = c.v1.subscriptions.cancel(sub.id, params={"cancellation_details": {"comment": "too pricey"}})
    assert canceled.status == "canceled"
    assert canceled.cancellation_details.comment == "too pricey"
    sandbox.advance(days=10)
    inv = c.v1.invoices.retrieve(inv_id)
    assert inv.attempt_count == 1
    assert inv.next_payment_attempt is None
    assert inv.status == "open"


def test_send_invoice_subscriptions_get_due_dates(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c, None)
    sub = subscribe(c, cus.id, price(c).id, collection_method="send_invoice", days_until_due=14,
                    expand=["latest_invoice"])
    inv = sub.latest_invoice
    assert sub.status == "active"
    assert inv.status == "open"
    assert inv.attempted is False
    assert inv.due_date - inv.created == 14 * DAY
    sandbox.advance(days=13)
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"
    sandbox.advance(days=2)
    assert c.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert c.v1.customers.retrieve(cus.id).delinquent is True
    assert c.v1.events.list(params={"type": "invoice.overdue"}).data[0].data.object.id == inv.id
    c.v1.invoices.pay(inv.id, params={"paid_out_of_band": True})
    assert c.v1.subscriptions.retrieve(sub.id).status == "active"
    assert c.v1.invoices.retrieve(inv.id).amount_paid == 1500


def test_clock_set_only_when_empty_and_events_kept_30_days(sandbox: SandboxServer) -> None:
    start = sandbox.now() - 200 * DAY
    assert sandbox.control("POST", "clock/set", {"now": start})["now"] == start
    c = sandbox.client
    cus = customer(c)
    assert abs(cus.created - start) < 60
    with pytest.raises(urllib.error.HTTPError) as err:
        sandbox.control("POST", "clock/set", {"now": start})
    assert err.value.code == 400
    subscribe(c, cus.id, price(c).id)
    sandbox.advance(days=100)
    events = list(c.v1.events.list(params={"limit": 100}).auto_paging_iter())
    assert events
    assert min(e.created for e in events) >= sandbox.now() - 30 * DAY
    assert {e.type for e in events} >= {"invoice.created", "invoice.paid"}
    with pytest.raises(urllib.error.HTTPError):
        sandbox.control("POST", "clock/advance", {"seconds": -5})


def test_cancel_at_a_date_and_at_period_end_from_the_start(sandbox: SandboxServer) -> None:
    c = sandbox.client
    pr = price(c)
    at = sandbox.now() + 10 * DAY
    dated = subscribe(c, customer(c).id, pr.id, cancel_at=at)
    at_end = subscribe(c, customer(c, email="e@example.com").id, pr.id, cancel_at_period_end=True)
    assert dated.cancel_at == at
    assert at_end.cancel_at == at_end["items"].data[0].current_period_end
    created = c.v1.events.list(params={"type": "customer.subscription.created"}).data[0]
    assert created.data.object.cancel_at == at_end.cancel_at
    sandbox.advance(days=11)
    gone = c.v1.subscriptions.retrieve(dated.id)
    assert gone.status == "canceled"
    assert gone.ended_at == at
    assert c.v1.subscriptions.retrieve(at_end.id).status == "active"
    sandbox.advance(days=21)
    assert c.v1.subscriptions.retrieve(at_end.id).status == "canceled"
    assert len(c.v1.invoices.list(params={"subscription": at_end.id}).data) == 1
