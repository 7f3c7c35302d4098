"""Customer cash balances (bank-transfer funds held for a customer) and Stripe's test helper that funds one.

Only what the merge needs to see: the balance per currency and a way to put money in it. Funds are never
applied to invoices here (see sandbox/README.md).
"""

from __future__ import annotations

from sandbox.core import Obj, Store, as_int, invalid, new_id
from sandbox.resources import cur
from sandbox.routes import route

TRANSFER_TYPES = {"usd": "us_bank_transfer", "eur": "eu_bank_transfer", "gbp": "gb_bank_transfer",
                  "jpy": "jp_bank_transfer", "mxn": "mx_bank_transfer"}


def cash_balance(c: Obj) -> Obj:
    """The customer's cash_balance object (`available` is null until funds first arrive, as on Stripe)."""
    held = c.get("_cash")
    return {"object": "cash_balance", "available": dict(held) if held else None, "customer": c["id"],
            "customer_account": None, "livemode": False,
            "settings": {"reconciliation_mode": "automatic", "using_merchant_default": True}}


@route("GET", "/v1/customers/{cid}/cash_balance", set())
def cash_balance_retrieve(store: Store, params: Obj, cid: str) -> Obj:
    return cash_balance(store.get(cid, "customer"))


@route("POST", "/v1/test_helpers/customers/{cid}/fund_cash_balance", {"amount", "currency", "reference"})
def fund_cash_balance(store: Store, params: Obj, cid: str) -> Obj:
    c = store.get(cid, "customer")
    amount = as_int(params, "amount", minimum=1)
    if amount is None:
        raise invalid("Missing required param: amount.", param="amount", code="parameter_missing")
    if "currency" not in params:
        raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
    currency = cur(params["currency"])
    held = dict(c.get("_cash") or {})
    held[currency] = held.get(currency, 0) + amount
    c["_cash"] = held
    kind = TRANSFER_TYPES.get(currency, "us_bank_transfer")
    t = {"id": new_id("ccsbtxn"), "object": "customer_cash_balance_transaction", "adjusted_for_overdraft": None,
         "applied_to_payment": None, "created": store.now(), "currency": currency, "customer": cid,
         "customer_account": None, "ending_balance": held[currency],
         "funded": {"bank_transfer": {"eu_bank_transfer": None, "gb_bank_transfer": None, "jp_bank_transfer": None,
                                      "reference": params.get("reference") or None, "type": kind,
                                      "us_bank_transfer": None}},
         "livemode": False, "net_amount": amount, "refunded_from_payment": None, "transferred_to_balance": None,
         "type": "funded", "unapplied_from_payment": None}
    store.put(t)
    store.child("customer_cash_balance_transaction", cid, t["id"])
    store.emit("customer_cash_balance_transaction.created", t)
    store.emit("cash_balance.funds_available", cash_balance(c))
    return t
