"""Subscription schedules, cash balances and coupon discounts, driven through the official SDK (every answer is
shape-checked by the autouse fixture in conftest.py)."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import customer, price, subscribe
from tests.sandbox.shape import check
from tests.utils.sandbox import SandboxServer


def _event_types(c: stripe.StripeClient, prefix: str) -> list[str]:
    return [e.type for e in c.v1.events.list(params={"limit": 100}).data if e.type.startswith(prefix)]


# --- subscription schedules ---------------------------------------------------------------------------

def test_schedule_from_subscription_sets_subscription_schedule_and_releases(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c, 1500).id, metadata={"plan": "pro"})
    sched = c.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert sched.id.startswith("sub_sched_")
    assert sched.status == "active"
    assert sched.subscription == sub.id
    assert sched.end_behavior == "release"
    phase = sched.phases[0]
    item = sub["items"].data[0]
    assert (phase.start_date, phase.end_date) == (item.current_period_start, item.current_period_end)
    assert [(i.price, i.quantity) for i in phase["items"]] == [(item.price.id, 1)]
    assert c.v1.subscriptions.retrieve(sub.id).schedule == sched.id
    got = c.v1.subscription_schedules.retrieve(sched.id, params={"expand": ["subscription"]})
    assert got.subscription.id == sub.id
    assert got.subscription.schedule == sched.id
    listed = c.v1.subscription_schedules.list(params={"customer": cus.id}).data
    assert [s.id for s in listed] == [sched.id]
    assert c.v1.subscription_schedules.list(params={"customer": customer(c, None).id}).data == []

    with pytest.raises(stripe.InvalidRequestError, match="already attached to a schedule"):
        c.v1.subscription_schedules.create(params={"from_subscription": sub.id})

    released = c.v1.subscription_schedules.release(sched.id)
    assert released.status == "released"
    assert released.released_subscription == sub.id
    assert released.subscription is None
    assert released.released_at is not None
    after = c.v1.subscriptions.retrieve(sub.id)
    assert after.schedule is None
    assert after.status == "active"
    with pytest.raises(stripe.InvalidRequestError, match="`released` status"):
        c.v1.subscription_schedules.cancel(sched.id)
    assert _event_types(c, "subscription_schedule.") == ["subscription_schedule.released",
                                                         "subscription_schedule.created"]


def test_canceling_a_schedule_cancels_its_subscription(sandbox: SandboxServer) -> None:
    c = sandbox.client
    sub = subscribe(c, customer(c).id, price(c).id)
    sched = c.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    canceled = c.v1.subscription_schedules.cancel(sched.id)
    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    assert c.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert "subscription_schedule.canceled" in _event_types(c, "subscription_schedule.")
    with pytest.raises(stripe.InvalidRequestError, match="canceled subscription"):
        c.v1.subscription_schedules.create(params={"from_subscription": sub.id})


def test_schedule_releases_at_the_phase_end_and_the_subscription_renews(sandbox: SandboxServer) -> None:
    c = sandbox.client
    sub = subscribe(c, customer(c).id, price(c).id)
    sched = c.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    sandbox.advance(days=32)
    assert c.v1.subscription_schedules.retrieve(sched.id).status == "released"
    after = c.v1.subscriptions.retrieve(sub.id)
    assert after.schedule is None
    assert after.status == "active"
    assert len(c.v1.invoices.list(params={"subscription": sub.id}).data) == 2


def test_schedule_errors(sandbox: SandboxServer) -> None:
    c = sandbox.client
    with pytest.raises(stripe.InvalidRequestError, match="No such subscription: 'sub_nope'") as err:
        c.v1.subscription_schedules.create(params={"from_subscription": "sub_nope"})
    assert err.value.param == "from_subscription"
    with pytest.raises(stripe.InvalidRequestError, match="only with from_subscription"):
        c.v1.subscription_schedules.create(params={"customer": customer(c).id})
    with pytest.raises(stripe.InvalidRequestError, match="cannot set customer"):
        c.v1.subscription_schedules.create(params={"from_subscription": "sub_x", "customer": "cus_x"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.subscription_schedules.retrieve("sub_sched_nope")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"


# --- cash balances ------------------------------------------------------------------------------------

def test_fund_cash_balance_shows_available_per_currency(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    empty = c.v1.customers.cash_balance.retrieve(cus.id)
    assert empty.object == "cash_balance"
    assert empty.customer == cus.id
    assert empty.available is None
    txn = c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 5000, "currency": "usd",
                                                                      "reference": "INV-77"})
    assert txn.object == "customer_cash_balance_transaction"
    assert txn.type == "funded"
    assert (txn.net_amount, txn.ending_balance, txn.currency) == (5000, 5000, "usd")
    assert txn.funded.bank_transfer.reference == "INV-77"
    c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 250, "currency": "usd"})
    c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 900, "currency": "eur"})
    bal = c.v1.customers.cash_balance.retrieve(cus.id)
    assert bal.available.to_dict() == {"usd": 5250, "eur": 900}
    # The generic shape check skips objects without an id: check this one against its SDK class here.
    raw = next(r["response"] for r in reversed(sandbox.requests()) if r["path"].endswith("/cash_balance"))
    assert check(raw, stripe.CashBalance) == []
    assert "cash_balance.funds_available" in _event_types(c, "cash_balance.")
    assert "customer_cash_balance_transaction.created" in _event_types(c, "customer_cash_balance_transaction.")


def test_cash_balance_errors(sandbox: SandboxServer) -> None:
    c = sandbox.client
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.customers.cash_balance.retrieve("cus_nope")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        c.v1.test_helpers.customers.fund_cash_balance("cus_nope", params={"amount": 1, "currency": "usd"})
    assert err.value.http_status == 404
    cus = customer(c)
    with pytest.raises(stripe.InvalidRequestError, match="between 1") as err:
        c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 0, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError, match="Invalid currency"):
        c.v1.test_helpers.customers.fund_cash_balance(cus.id, params={"amount": 10, "currency": "dollars"})
    assert c.v1.customers.cash_balance.retrieve(cus.id).available is None


# --- coupons and discounts ----------------------------------------------------------------------------

def test_coupon_create_retrieve_list_and_validation(sandbox: SandboxServer) -> None:
    c = sandbox.client
    pct = c.v1.coupons.create(params={"percent_off": 25.5, "duration": "forever", "name": "Launch"})
    amt = c.v1.coupons.create(params={"id": "TENOFF", "amount_off": 1000, "currency": "usd",
                                      "duration": "repeating", "duration_in_months": 3})
    assert (pct.percent_off, pct.amount_off, pct.duration, pct.valid, pct.times_redeemed) == (25.5, None, "forever",
                                                                                              True, 0)
    assert (amt.id, amt.currency, amt.duration_in_months) == ("TENOFF", "usd", 3)
    assert c.v1.coupons.retrieve("TENOFF").amount_off == 1000
    assert [x.id for x in c.v1.coupons.list().data] == ["TENOFF", pct.id]
    bad = [({"duration": "once"}, "exactly one of"), ({"percent_off": 10, "amount_off": 5, "currency": "usd"},
                                                     "exactly one of"),
           ({"amount_off": 5}, "currency"), ({"percent_off": 120}, "at most 100"),
           ({"percent_off": 10, "duration": "repeating"}, "duration_in_months"),
           ({"id": "TENOFF", "percent_off": 5}, "already exists")]
    for params, needle in bad:
        with pytest.raises(stripe.InvalidRequestError, match=needle):
            c.v1.coupons.create(params=params)  # type: ignore[arg-type]
    assert c.v1.coupons.delete("TENOFF").deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.coupons.retrieve("TENOFF")


def test_subscription_discount_applies_to_invoices(sandbox: SandboxServer) -> None:
    c = sandbox.client
    coupon = c.v1.coupons.create(params={"percent_off": 20, "duration": "forever"})
    cus = customer(c)
    sub = subscribe(c, cus.id, price(c, 2000).id, discounts=[{"coupon": coupon.id}])
    assert len(sub.discounts) == 1
    assert isinstance(sub.discounts[0], str)
    got = c.v1.subscriptions.retrieve(sub.id, params={"expand": ["discounts"]})
    d = got.discounts[0]
    assert (d.object, d.source.coupon, d.source.type, d.subscription, d.end) == ("discount", coupon.id, "coupon",
                                                                                 sub.id, None)
    inv = c.v1.invoices.retrieve(sub.latest_invoice)
    assert (inv.subtotal, inv.total, inv.amount_paid) == (2000, 1600, 1600)
    assert inv.discounts == [d.id]
    assert [(x.amount, x.discount) for x in inv.total_discount_amounts] == [(400, d.id)]
    assert [(x.amount, x.discount) for x in inv.lines.data[0].discount_amounts] == [(400, d.id)]
    assert inv.lines.data[0].amount == 2000
    sandbox.advance(days=32)
    renewal = c.v1.invoices.list(params={"subscription": sub.id}).data[0]
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.amount_paid == 1600
    assert c.v1.coupons.retrieve(coupon.id).times_redeemed == 1


def test_once_and_repeating_discounts_end(sandbox: SandboxServer) -> None:
    c = sandbox.client
    once = c.v1.coupons.create(params={"amount_off": 500, "currency": "usd", "duration": "once"})
    two = c.v1.coupons.create(params={"percent_off": 50, "duration": "repeating", "duration_in_months": 2})
    p = price(c, 2000)
    a = subscribe(c, customer(c).id, p.id, discounts=[{"coupon": once.id}])
    b = subscribe(c, customer(c).id, p.id, discounts=[{"coupon": two.id}])
    assert c.v1.subscriptions.retrieve(b.id, params={"expand": ["discounts"]}).discounts[0].end is not None

    def dropped() -> set[str]:  # subscriptions whose update event shows a discount leaving them
        events = c.v1.events.list(params={"type": "customer.subscription.updated", "limit": 100}).data
        return {e.data.object["id"] for e in events
                if "discounts" in (e.data.to_dict().get("previous_attributes") or {})}

    sandbox.advance(days=31)
    assert dropped() == {a.id}  # the once discount leaves at the second invoice
    sandbox.advance(days=31)
    assert b.id in dropped()  # the 2-month one at the third
    sandbox.advance(days=31)

    def paid(sub_id: str) -> list[int]:
        return [i.amount_paid for i in reversed(c.v1.invoices.list(params={"subscription": sub_id}).data)]

    assert paid(a.id) == [1500, 2000, 2000, 2000]
    assert paid(b.id) == [1000, 1000, 2000, 2000]
    assert c.v1.subscriptions.retrieve(a.id).discounts == []
    assert c.v1.subscriptions.retrieve(b.id).discounts == []


def test_discount_errors(sandbox: SandboxServer) -> None:
    c = sandbox.client
    cus = customer(c)
    p = price(c, 2000, currency="usd")
    eur = c.v1.coupons.create(params={"amount_off": 100, "currency": "eur", "duration": "once"})
    with pytest.raises(stripe.InvalidRequestError, match="No such coupon: 'NOPE'") as err:
        subscribe(c, cus.id, p.id, discounts=[{"coupon": "NOPE"}])
    assert err.value.param == "discounts[0][coupon]"
    with pytest.raises(stripe.InvalidRequestError, match="is in eur"):
        subscribe(c, cus.id, p.id, discounts=[{"coupon": eur.id}])
    with pytest.raises(stripe.InvalidRequestError, match="coupons only"):
        subscribe(c, cus.id, p.id, discounts=[{"promotion_code": "promo_1"}])
    assert c.v1.subscriptions.list(params={"customer": cus.id}).data == []  # nothing half-made
    assert c.v1.coupons.retrieve(eur.id).times_redeemed == 0
