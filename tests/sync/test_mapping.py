"""Tolerant mapping: current and older API shapes land in the same columns; junk never crashes."""

from __future__ import annotations

from lib import mapping
from lib.models import from_ts

T0 = 1_760_000_000


def price(amount: int, interval: str = "month", count: int = 1, product: object = "prod_1") -> dict:
    return {"id": f"price_{amount}_{interval}", "object": "price", "unit_amount": amount, "currency": "usd",
            "product": product, "recurring": {"interval": interval, "interval_count": count}}


def test_customer_current_and_2017_shapes_map_alike() -> None:
    current = {"id": "cus_1", "object": "customer", "email": "  Ana.Lima+vip@GMail.com ", "name": "José Ñúñez",
               "phone": "(415) 555-0100", "created": T0, "currency": "eur", "balance": -500, "delinquent": True,
               "invoice_settings": {"default_payment_method": {"id": "pm_9", "object": "payment_method"}},
               "metadata": {"crm": "42"}, "livemode": False, "brand_new_field": {"x": 1}}
    old = {k: v for k, v in current.items() if k not in ("balance", "invoice_settings")}
    old |= {"account_balance": -500, "invoice_settings": {"default_payment_method": "pm_9"}}
    a, b = mapping.customer_row(current, 7), mapping.customer_row(old, 7)
    for shape, row in (("current", a), ("2017", b)):
        assert row["balance"] == -500, shape
        assert row["default_payment_method_id"] == "pm_9", shape
        assert row["email_normalized"] == "ana.lima+vip@gmail.com", shape
        assert row["email_canonical"] == "analima@gmail.com", shape
        assert row["name_search"] == "jose nunez", shape
        assert row["phone_normalized"] == "+14155550100", shape
        assert row["created"] == from_ts(T0), shape
        assert row["delinquent"] is True, shape
        assert row["metadata"] == {"crm": "42"}, shape
        assert "brand_new_field" not in row, shape
    assert {k: v for k, v in a.items() if k != "synced_at"} == {k: v for k, v in b.items() if k != "synced_at"}


def test_missing_and_malformed_optionals_become_null_not_errors() -> None:
    row = mapping.customer_row({"id": "cus_2", "created": "not-a-time", "balance": None, "metadata": "junk",
                                "email": 12, "address": None}, 1)
    assert row["email"] is None
    assert row["balance"] == 0
    assert row["metadata"] == {}
    assert row["address"] == {}
    sub, items = mapping.subscription_rows({"id": "sub_1", "items": {"data": [{"id": "si_1"}]}}, 1)
    assert sub["customer_id"] == ""
    assert sub["current_period_end"] is None
    assert sub["mrr"] == 0
    assert items[0]["unit_amount"] is None
    assert items[0]["quantity"] == 1
    inv, lines = mapping.invoice_rows({"id": "in_1", "lines": "garbage", "status_transitions": None}, 1)
    assert inv["subscription_id"] is None
    assert inv["failure_code"] is None
    assert lines == []
    pm = mapping.payment_method_row({"id": "pm_1", "card": None}, 1)
    assert pm["customer_id"] is None
    assert pm["card_last4"] is None


def test_subscription_periods_from_items_or_from_the_subscription() -> None:
    items = {"object": "list", "data": [
        {"id": "si_a", "price": price(1000), "quantity": 2, "current_period_start": T0,
         "current_period_end": T0 + 30 * 86400},
        {"id": "si_b", "price": price(12000, "year", product={"id": "prod_2", "name": "Pro"}), "quantity": 1,
         "current_period_start": T0 - 86400, "current_period_end": T0 + 364 * 86400},
    ]}
    current = {"id": "sub_1", "customer": "cus_1", "status": "active", "created": T0, "items": items}
    row, item_rows = mapping.subscription_rows(current, 5, {"prod_1": "Basic"})
    assert row["current_period_start"] == from_ts(T0 - 86400)
    assert row["current_period_end"] == from_ts(T0 + 30 * 86400)  # the next renewal of any item
    assert row["mrr"] == 2 * 1000 + 12000 // 12
    assert [i["product_name"] for i in item_rows] == ["Basic", "Pro"]
    old = {**current, "current_period_start": T0, "current_period_end": T0 + 99,
           "items": {"data": [{"id": "si_a", "plan": {"id": "plan_1", "amount": 700, "currency": "usd",
                                                      "interval": "week", "product": "prod_1"}, "quantity": 3}]}}
    row, item_rows = mapping.subscription_rows(old, 5)
    assert row["current_period_start"] == from_ts(T0)
    assert row["current_period_end"] == from_ts(T0 + 99)
    assert item_rows[0]["price_id"] == "plan_1"
    assert item_rows[0]["interval"] == "week"
    assert row["mrr"] == round(700 * 3 * 52 / 12)


def test_mrr_normalises_interval_counts_and_applies_inline_coupons() -> None:
    sub = {"id": "sub_2", "customer": {"id": "cus_9", "object": "customer"}, "status": "active",
           "items": {"data": [{"id": "si_1", "price": price(3000, "month", 3), "quantity": 1}]},
           "discounts": [{"id": "di_1", "source": {"coupon": {"percent_off": 50}}}, "di_unknown"]}
    row, _ = mapping.subscription_rows(sub, 1)
    assert row["customer_id"] == "cus_9"
    assert row["mrr"] == 500  # 3000 per quarter → 1000 a month, half off
    assert row["discounts"] == ["di_1", "di_unknown"]


def test_invoice_subscription_and_decline_in_every_shape() -> None:
    base = {"id": "in_1", "customer": "cus_1", "status": "open", "amount_due": 900, "attempt_count": 2,
            "attempted": True, "created": T0, "status_transitions": {"paid_at": None}}
    current = {**base, "parent": {"type": "subscription_details",
                                  "subscription_details": {"subscription": "sub_1"}},
               "payments": {"data": [
                   {"id": "inpay_1", "created": T0, "payment": {"type": "payment_intent", "payment_intent": {
                       "id": "pi_1", "last_payment_error": {"code": "card_declined",
                                                            "decline_code": "insufficient_funds",
                                                            "message": "Your card has insufficient funds."}}}}]}}
    old = {**base, "subscription": "sub_1", "charge": {"id": "ch_1", "failure_code": "card_declined",
                                                       "failure_message": "Your card has insufficient funds.",
                                                       "outcome": {"reason": "insufficient_funds"}}}
    for obj in (current, old):
        row, _ = mapping.invoice_rows(obj, 3)
        assert row["subscription_id"] == "sub_1"
        assert (row["failure_code"], row["decline_code"]) == ("card_declined", "insufficient_funds")
        assert row["failure_message"] == "Your card has insufficient funds."
    paid, _ = mapping.invoice_rows({**current, "status": "paid"}, 3)
    assert paid["failure_code"] is None  # a paid invoice is no longer at risk


def test_invoice_lines_current_and_old_shapes() -> None:
    lines = {"data": [
        {"id": "il_1", "amount": 500, "currency": "usd", "quantity": 1, "period": {"start": T0, "end": T0 + 9},
         "pricing": {"price_details": {"price": "price_1", "product": "prod_1"}},
         "parent": {"subscription_item_details": {"subscription": "sub_1", "subscription_item": "si_1",
                                                  "proration": True}}},
        {"id": "il_2", "amount": 700, "price": {"id": "price_2", "product": "prod_2"}, "subscription": "sub_2"},
    ]}
    _, rows = mapping.invoice_rows({"id": "in_1", "lines": lines}, 1)
    assert [(r["price_id"], r["product_id"], r["subscription_id"], r["proration"]) for r in rows] == [
        ("price_1", "prod_1", "sub_1", True), ("price_2", "prod_2", "sub_2", False)]
    assert rows[0]["period_end"] == from_ts(T0 + 9)
    assert rows[1]["period_start"] is None
