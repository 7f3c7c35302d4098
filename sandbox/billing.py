"""Subscriptions, invoices and payments: periods, renewals, dunning retries and declines.

Time-driven work (renewals, retries, incomplete expiry, trial_will_end) sits in the store's heap and runs
in due order from `run_due`, so advancing 12 months over thousands of subscriptions is one ordered pass.
"""

from __future__ import annotations

import heapq
from typing import Any

from sandbox import discounts
from sandbox.core import (
    EVENT_RETENTION,
    ApiError,
    Obj,
    Store,
    as_bool,
    as_int,
    copy_fields,
    created_filter,
    diff,
    invalid,
    list_page,
    metadata_update,
    missing,
    new_id,
    snapshot,
)
from sandbox.lifecycle import cancel_subscription, shift
from sandbox.resources import DECLINES, balance_txn, resolve_pm
from sandbox.routes import route
from sandbox.schedules import phase_ended
from sandbox.shape import compact, render

LIVE = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")
TRIAL_WILL_END = 3 * 86400


# --- periods ----------------------------------------------------------------------------------------

def next_period_end(sub: Obj, start: int) -> int:
    """The first cycle boundary after `start`, counted from the billing cycle anchor."""
    interval, count = sub["_interval"]
    anchor = sub["billing_cycle_anchor"]
    n = sub.get("_n", 0) + 1
    end = shift(anchor, interval, count * n)
    while end <= start:
        n += 1
        end = shift(anchor, interval, count * n)
    sub["_n"] = n
    return end


# --- payments ---------------------------------------------------------------------------------------

def _fail_reason(store: Store, pm_id: str | None) -> tuple[str, str, str] | None:
    """None when the card would be charged; else (code, decline_code, message)."""
    if pm_id is None:
        return ("payment_method_missing", "", "The customer has no default payment method.")
    pm = store.objs.get(pm_id)
    if pm is None or pm.get("customer") is None:
        return ("payment_method_unexpected_state", "", "The payment method is no longer attached.")
    behaviour = DECLINES.get(pm["_number"])
    if behaviour:
        return behaviour[1]
    return None


def charge_method(store: Store, inv: Obj, sub: Obj | None) -> str | None:
    if inv.get("default_payment_method"):
        return inv["default_payment_method"]
    if sub is not None and sub.get("default_payment_method"):
        return sub["default_payment_method"]
    c = store.objs.get(inv["customer"])
    return c["invoice_settings"]["default_payment_method"] if c else None


def _payment_intent(store: Store, inv: Obj) -> Obj:
    pi = store.objs.get(inv.get("_pi") or "")
    if pi is not None:
        return pi
    now = store.now()
    pi = {"id": new_id("pi"), "object": "payment_intent", "amount": inv["amount_due"], "amount_capturable": 0,
          "amount_details": {"tip": {}}, "amount_received": 0, "application": None,
          "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
          "cancellation_reason": None, "capture_method": "automatic", "client_secret": None,
          "confirmation_method": "automatic", "created": now, "currency": inv["currency"],
          "customer": inv["customer"], "description": "Subscription update" if inv["parent"] else None,
          "last_payment_error": None, "latest_charge": None, "livemode": False, "metadata": {},
          "next_action": None, "on_behalf_of": None, "payment_method": None,
          "payment_method_configuration_details": None, "payment_method_options": {},
          "payment_method_types": ["card"], "processing": None, "receipt_email": None, "review": None,
          "setup_future_usage": None, "shipping": None, "source": None, "statement_descriptor": None,
          "statement_descriptor_suffix": None, "status": "requires_payment_method", "transfer_data": None,
          "transfer_group": None}
    pi["client_secret"] = pi["id"] + "_secret_sandbox"
    pi = store.put(compact(pi))
    inv["_pi"] = pi["id"]
    ip = {"id": new_id("inpay"), "object": "invoice_payment", "amount_paid": None,
          "amount_requested": inv["amount_due"], "created": now, "currency": inv["currency"],
          "invoice": inv["id"], "is_default": True, "livemode": False,
          "payment": {"type": "payment_intent", "payment_intent": pi["id"]}, "status": "open",
          "status_transitions": {"canceled_at": None, "paid_at": None}}
    ip = store.put(compact(ip))
    inv["payments"]["data"].append(ip)
    inv["payments"]["total_count"] = len(inv["payments"]["data"])
    return pi


def _charge(store: Store, inv: Obj, pi: Obj, pm_id: str, failure: tuple[str, str, str] | None) -> Obj:
    pm = store.objs[pm_id]
    ok = failure is None
    ch = {"id": new_id("ch"), "object": "charge", "amount": inv["amount_due"],
          "amount_captured": inv["amount_due"] if ok else 0, "amount_refunded": 0, "application": None,
          "application_fee": None, "application_fee_amount": None, "balance_transaction": None,
          "billing_details": pm["billing_details"], "calculated_statement_descriptor": "SANDBOX",
          "captured": ok, "created": store.now(), "currency": inv["currency"], "customer": inv["customer"],
          "description": None, "disputed": False, "failure_balance_transaction": None,
          "failure_code": None if ok else failure[0], "failure_message": None if ok else failure[2],
          "fraud_details": {}, "livemode": False, "metadata": {}, "on_behalf_of": None,
          "outcome": None,
          "paid": ok, "payment_intent": pi["id"], "payment_method": pm_id,
          "payment_method_details": None, "receipt_email": None, "receipt_number": None,
          "receipt_url": None, "refunded": False, "review": None, "shipping": None, "source": None,
          "source_transfer": None, "statement_descriptor": None, "statement_descriptor_suffix": None,
          "status": "succeeded" if ok else "failed", "transfer_data": None, "transfer_group": None}
    ch["outcome"] = _outcome(failure)
    ch = store.put(compact(ch))
    return ch


_OUTCOMES: dict[Any, Obj] = {}


def _outcome(failure: tuple[str, str, str] | None) -> Obj:
    """Charge outcomes are shared per decline kind (they never change after the charge)."""
    out = _OUTCOMES.get(failure)
    if out is None:
        ok = failure is None
        out = _OUTCOMES[failure] = {
            "advice_code": None, "network_advice_code": None, "network_decline_code": None,
            "network_status": "approved_by_network" if ok else "declined_by_network",
            "reason": None if ok else failure[1], "risk_level": "normal", "risk_score": 20,
            "seller_message": "Payment complete." if ok else "The bank did not return any further details with "
            "this decline.", "type": "authorized" if ok else "issuer_declined"}
    return out


def attempt(store: Store, inv: Obj, pm_override: str | None = None) -> tuple[str, str, str] | None:
    """Charge the invoice now. Returns None on success, else the decline (code, decline_code, message)."""
    sub = store.objs.get(inv["_sub"]) if inv.get("_sub") else None
    pm_id = pm_override or charge_method(store, inv, sub)
    failure = _fail_reason(store, pm_id)
    pi = _payment_intent(store, inv)
    pi["amount"] = inv["amount_remaining"]
    before = {"attempt_count": inv["attempt_count"], "attempted": inv["attempted"]}
    inv["attempt_count"] += 1
    inv["attempted"] = True
    if pm_id is not None and pm_id in store.objs:
        ch = _charge(store, inv, pi, pm_id, failure)
        pi["latest_charge"] = ch["id"]
        pi["payment_method"] = pm_id
    if failure is None:
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        pi["last_payment_error"] = None
        mark_paid(store, inv)
        return None
    code, decline, message = failure
    pi["status"] = "requires_payment_method"
    pi["last_payment_error"] = {
        "advice_code": None, "charge": pi["latest_charge"], "code": code,
        "decline_code": decline or None, "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": message, "network_advice_code": None, "network_decline_code": None, "param": None,
        "payment_method": None, "payment_method_type": "card" if pm_id else None, "request_log_url": None,
        "type": "card_error" if pm_id else "invalid_request_error"}
    if pm_id and pm_id in store.objs:
        pi["last_payment_error"]["payment_method"] = render(store, store.objs[pm_id])
    _schedule_retry(store, inv, sub)
    store.emit("invoice.payment_failed", inv)
    store.emit("invoice.updated", inv, before)
    _set_delinquent(store, inv["customer"], failed=True)
    return failure


def _schedule_retry(store: Store, inv: Obj, sub: Obj | None) -> None:
    inv["next_payment_attempt"] = None
    if sub is None or inv["billing_reason"] == "subscription_create" or not inv["auto_advance"]:
        return
    if sub["status"] in ("canceled", "incomplete_expired"):
        return
    days = sub["metadata"].get("sandbox_retry_days")
    schedule = [int(x) for x in days.split(",")] if days else store.settings["retry_days"]
    n = inv["attempt_count"]  # attempts so far, including the first
    if n <= len(schedule):
        due = inv["_first_attempt"] + schedule[n - 1] * 86400
        inv["next_payment_attempt"] = due
        store.schedule(due, "retry", inv["id"], n)
    else:
        _dunning_exhausted(store, inv, sub)


def _dunning_exhausted(store: Store, inv: Obj, sub: Obj) -> None:
    final = sub["metadata"].get("sandbox_final_action") or store.settings["final_action"]
    if (sub["metadata"].get("sandbox_final_invoice") or store.settings["final_invoice"]) == "uncollectible":
        mark_uncollectible(store, inv)
    if sub["status"] not in LIVE:
        return
    if final == "unpaid":
        set_status(store, sub, "unpaid")
    else:
        cancel_subscription(store, sub, reason="payment_failed")


def _set_delinquent(store: Store, cid: str, failed: bool = False) -> None:
    """`failed`: a payment just failed or a sent invoice went overdue. Otherwise an invoice was settled, which
    can only clear the flag (so the customer's invoices are scanned only while it is set)."""
    c = store.objs.get(cid)
    if c is None or c.get("_deleted"):
        return
    if failed:
        if not c["delinquent"]:
            c["delinquent"] = True
            store.emit("customer.updated", c, {"delinquent": False})
        return
    if not c["delinquent"]:
        return
    now = store.now()
    bad = any(inv["status"] == "open" and inv["amount_remaining"] > 0
              and (inv["attempt_count"] > 0 or (inv["due_date"] is not None and inv["due_date"] <= now))
              for inv in (store.objs[i] for i in store.children("invoice", cid)))
    if not bad:
        c["delinquent"] = False
        store.emit("customer.updated", c, {"delinquent": True})


def mark_paid(store: Store, inv: Obj, out_of_band: bool = False) -> None:
    now = store.now()
    inv["status"] = "paid"
    if out_of_band:
        inv["amount_paid_off_stripe"] = inv["amount_remaining"]
    inv["amount_paid"] += inv["amount_remaining"]
    inv["amount_remaining"] = 0
    inv["next_payment_attempt"] = None
    inv["status_transitions"] = dict(inv["status_transitions"], paid_at=now)
    for ip in inv["payments"]["data"]:
        ip["status"] = "paid"
        ip["amount_paid"] = inv["amount_paid"]
        ip["status_transitions"] = {"canceled_at": None, "paid_at": now}
    store.emit("invoice.paid", inv)
    store.emit("invoice.payment_succeeded", inv)
    sub = store.objs.get(inv.get("_sub") or "")
    if sub is not None and sub["status"] in ("past_due", "unpaid", "incomplete") and sub["latest_invoice"] == inv["id"]:
        set_status(store, sub, "active")
    _set_delinquent(store, inv["customer"])


def mark_uncollectible(store: Store, inv: Obj) -> None:
    before = snapshot(inv, ["status", "next_payment_attempt", "status_transitions"])
    inv["status"] = "uncollectible"
    inv["next_payment_attempt"] = None
    inv["status_transitions"] = dict(inv["status_transitions"], marked_uncollectible_at=store.now())
    store.emit("invoice.marked_uncollectible", inv, before)
    _set_delinquent(store, inv["customer"])


def void_invoice(store: Store, inv: Obj) -> None:
    before = snapshot(inv, ["status", "next_payment_attempt", "status_transitions", "amount_remaining"])
    inv["status"] = "void"
    inv["next_payment_attempt"] = None
    inv["amount_remaining"] = 0
    inv["status_transitions"] = dict(inv["status_transitions"], voided_at=store.now())
    for ip in inv["payments"]["data"]:
        if ip["status"] == "open":
            ip["status"] = "canceled"
            ip["status_transitions"] = {"canceled_at": store.now(), "paid_at": None}
    store.emit("invoice.voided", inv, before)
    _set_delinquent(store, inv["customer"])


# --- invoices -----------------------------------------------------------------------------------------

def build_invoice(store: Store, c: Obj, sub: Obj | None, reason: str, start: int, end: int,
                  lines: list[tuple[Obj, int, int, int, bool]]) -> Obj:
    """lines: (subscription item, amount, period start, period end, proration)."""
    now = store.now()
    iid = new_id("in")
    total = sum(amount for _, amount, _, _, _ in lines)
    currency = sub["currency"] if sub else c["currency"] or "usd"
    line_objs = []
    for item, amount, ls, le, proration in lines:
        price = item["price"]
        prod = store.objs.get(price["product"], {})
        qty = item["quantity"]
        desc = (f"Remaining time on {qty} × {prod.get('name', 'product')}" if proration
                else f"{qty} × {prod.get('name', 'product')} (at {_money(price['unit_amount'], currency)} / "
                f"{price['recurring']['interval'] if price.get('recurring') else 'unit'})")
        line_objs.append({
            "id": new_id("il"), "object": "line_item", "amount": amount, "currency": currency,
            "description": desc, "discount_amounts": [], "discountable": True, "discounts": [],
            "invoice": iid, "livemode": False, "metadata": {},
            "parent": {"invoice_item_details": None, "subscription_item_details": {
                "invoice_item": None, "proration": proration, "proration_details": {"credited_items": None},
                "subscription": sub["id"] if sub else None, "subscription_item": item["id"]},
                "type": "subscription_item_details"},
            "period": {"end": le, "start": ls}, "pretax_credit_amounts": [],
            "pricing": {"price_details": {"price": price["id"], "product": price["product"]},
                        "type": "price_details", "unit_amount_decimal": str(price["unit_amount"])},
            "quantity": qty, "subtotal": amount, "taxes": []})
    collection = sub["collection_method"] if sub else "charge_automatically"
    inv: Obj = {
        "id": iid, "object": "invoice", "account_country": "US", "account_name": "Sandbox Inc.",
        "account_tax_ids": None, "amount_due": total, "amount_overpaid": 0, "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": total, "amount_shipping": 0, "application": None, "attempt_count": 0,
        "attempted": False, "auto_advance": True,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                          "status": None},
        "automatically_finalizes_at": None, "billing_reason": reason, "collection_method": collection,
        "confirmation_secret": None, "created": now, "currency": currency, "custom_fields": None,
        "customer": c["id"], "customer_address": c["address"], "customer_email": c["email"],
        "customer_name": c["name"], "customer_phone": c["phone"], "customer_shipping": c["shipping"],
        "customer_tax_exempt": c["tax_exempt"], "customer_tax_ids": [], "default_payment_method": None,
        "default_source": None, "default_tax_rates": [], "description": None, "discounts": [],
        "due_date": None, "effective_at": None, "ending_balance": None, "footer": None, "from_invoice": None,
        "hosted_invoice_url": None, "invoice_pdf": None, "issuer": {"type": "self"},
        "last_finalization_error": None, "latest_revision": None,
        "lines": {"object": "list", "data": line_objs, "has_more": False, "total_count": len(line_objs),
                  "url": f"/v1/invoices/{iid}/lines"},
        "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": None,
        "on_behalf_of": None,
        "parent": _parent(sub) if sub else None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "payments": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                     "url": f"/v1/invoice_payments?invoice={iid}"},
        "period_end": end, "period_start": start, "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None,
        "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
        "statement_descriptor": None, "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                               "voided_at": None},
        "subtotal": total, "subtotal_excluding_tax": total, "test_clock": None, "threshold_reason": None,
        "total": total, "total_discount_amounts": [], "total_excluding_tax": total,
        "total_pretax_credit_amounts": [], "total_taxes": [], "webhooks_delivered_at": now,
        "_sub": sub["id"] if sub else None, "_lists": ("lines", "payments"), "_first_attempt": None,
    }
    line_objs[:] = [compact(line) for line in line_objs]  # the list object inside inv["lines"]
    inv = store.put(compact(inv))
    for line in line_objs:
        store.objs[line["id"]] = line
    if sub is not None and sub.get("discounts"):
        _apply_discounts(store, sub, inv, start)
    store.child("invoice", c["id"], iid)
    if sub:
        store.child("invoice", sub["id"], iid)
    store.emit("invoice.created", inv)
    return inv


def _apply_discounts(store: Store, sub: Obj, inv: Obj, start: int) -> None:
    """Take the subscription's current discounts off a new invoice (after `compact`: these fields are
    defaults there, so they are set on the stored dicts here)."""
    lines = inv["lines"]["data"]
    applied = discounts.apply(store, sub, start, [line["amount"] for line in lines])
    if not applied:
        return
    for i, line in enumerate(lines):
        line["discount_amounts"] = [{"amount": off[i], "discount": did} for did, off in applied]
    inv["discounts"] = [did for did, _ in applied]
    inv["total_discount_amounts"] = [{"amount": sum(off), "discount": did} for did, off in applied]
    taken = sum(sum(off) for _, off in applied)
    for key in ("total", "total_excluding_tax", "amount_due", "amount_remaining"):
        inv[key] -= taken


def _parent(sub: Obj) -> Obj:
    """invoice.parent, shared by a subscription's invoices while its metadata stays the same (never mutated)."""
    parent = sub.get("_parent")
    if parent is None or parent["subscription_details"]["metadata"] != sub["metadata"]:
        parent = sub["_parent"] = {"quote_details": None, "subscription_details": {
            "metadata": dict(sub["metadata"]), "subscription": sub["id"], "subscription_proration_date": None},
            "type": "subscription_details"}
    return parent


# Stripe's currencies whose minor unit is not a hundredth: none (¥1,200 is 1200) or a thousandth (3.500 KWD).
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def _money(amount: int, currency: str) -> str:
    """An amount in minor units as Stripe writes it in a line description: $12.00, ¥1,200, KWD 3.500."""
    sym = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency, currency.upper() + " ")
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return f"{sym}{amount / 10**digits:,.{digits}f}"


def finalize(store: Store, inv: Obj) -> None:
    c = store.objs[inv["customer"]]
    before = snapshot(inv, ["status", "number", "status_transitions", "amount_due", "amount_remaining"])
    now = store.now()
    inv["status"] = "open"
    inv["number"] = f"{c['invoice_prefix']}-{c['next_invoice_sequence']:04d}"
    c["next_invoice_sequence"] += 1
    inv["effective_at"] = now
    inv["status_transitions"] = dict(inv["status_transitions"], finalized_at=now)
    inv["hosted_invoice_url"] = f"{store.base_url}/_sandbox/pages/invoice/{inv['id']}"
    inv["invoice_pdf"] = inv["hosted_invoice_url"] + "?format=pdf"
    # the customer's balance: a credit (negative) lowers what is due, a debit (positive) adds to it
    start_bal = c["balance"]
    inv["starting_balance"] = start_bal
    applied = 0
    if start_bal < 0 and inv["total"] > 0:
        applied = max(start_bal, -inv["total"])
    elif start_bal > 0:
        applied = start_bal
    inv["amount_due"] = inv["total"] + applied
    inv["amount_remaining"] = inv["amount_due"]
    inv["ending_balance"] = start_bal - applied
    if applied:
        balance_txn(store, c, -applied, inv["currency"], type_="applied_to_invoice", invoice=inv["id"])
    if inv["collection_method"] == "send_invoice":
        sub = store.objs.get(inv.get("_sub") or "")
        days = (sub or {}).get("days_until_due") or 30
        inv["due_date"] = now + days * 86400
        store.schedule(inv["due_date"], "overdue", inv["id"])
    store.emit("invoice.finalized", inv, before)
    if inv["amount_due"] == 0:
        mark_paid(store, inv)


def collect(store: Store, inv: Obj) -> tuple[str, str, str] | None:
    """Finalize, then charge automatically-collected invoices; returns the decline if any."""
    finalize(store, inv)
    if inv["status"] != "open" or inv["collection_method"] != "charge_automatically":
        return None
    inv["_first_attempt"] = store.now()
    return attempt(store, inv)


INVOICE_LIST = {"customer", "subscription", "status", "created", "collection_method", "due_date", "limit",
                "starting_after", "ending_before"}


@route("GET", "/v1/invoices", INVOICE_LIST)
def invoice_list(store: Store, params: Obj) -> Obj:
    status = params.get("status")
    if status is not None and status not in ("draft", "open", "paid", "uncollectible", "void"):
        raise invalid("Invalid status: must be one of draft, open, paid, uncollectible, or void", param="status")
    conds = []
    if status:
        conds.append(lambda i: i["status"] == status)
    if params.get("collection_method"):
        conds.append(lambda i: i["collection_method"] == params["collection_method"])
    if params.get("customer") and params.get("subscription"):
        conds.append(lambda i: i["customer"] == params["customer"])
    match = (lambda o: all(c(o) for c in conds)) if conds else None
    created = created_filter(params)
    if params.get("subscription"):
        return list_page(store, store.children("invoice", params["subscription"]), params, "/v1/invoices", match=match,
                         created=created)
    if params.get("customer"):
        return list_page(store, store.children("invoice", params["customer"]), params, "/v1/invoices", match=match,
                         created=created)
    idx = store.index.get("invoice")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"}
    return list_page(store, idx.ids, params, "/v1/invoices", pos=idx.pos, match=match, created=created)


@route("GET", "/v1/invoices/{iid}", set())
def invoice_retrieve(store: Store, params: Obj, iid: str) -> Obj:
    return store.get(iid, "invoice")


@route("GET", "/v1/invoices/{iid}/lines", {"limit", "starting_after", "ending_before"})
def invoice_lines(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    ids = [line["id"] for line in reversed(inv["lines"]["data"])]  # Stripe lists lines in invoice order
    page = list_page(store, ids, params, f"/v1/invoices/{iid}/lines")
    return page


@route("POST", "/v1/invoices/{iid}", {"metadata", "description", "footer", "auto_advance", "due_date",
                                      "default_payment_method"})
def invoice_update(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    before = snapshot(inv, ["metadata", "description", "footer", "auto_advance", "due_date"])
    if "metadata" in params:
        inv["metadata"] = metadata_update(inv["metadata"], params["metadata"])
    copy_fields(inv, params, ("description", "footer"))
    if "auto_advance" in params:
        inv["auto_advance"] = as_bool(params, "auto_advance")
        if not inv["auto_advance"]:
            inv["next_payment_attempt"] = None
    if "due_date" in params:
        inv["due_date"] = as_int(params, "due_date")
    prev = diff(inv, before)
    if prev:
        store.emit("invoice.updated", inv, prev)
    return inv


@route("POST", "/v1/invoices/{iid}/finalize", {"auto_advance"})
def invoice_finalize(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    if inv["status"] != "draft":
        raise invalid("This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                      code="invoice_not_editable")
    finalize(store, inv)
    return inv


@route("POST", "/v1/invoices/{iid}/pay", {"payment_method", "paid_out_of_band", "off_session", "forgive",
                                          "source"})
def invoice_pay(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")
    if inv["status"] == "void":
        raise invalid("This invoice can no longer be paid because it has been voided.",
                      code="invoice_not_editable")
    if inv["status"] == "draft":
        finalize(store, inv)
        if inv["status"] == "paid":
            return inv
    if as_bool(params, "paid_out_of_band", False):
        mark_paid(store, inv, out_of_band=True)
        return inv
    pm_id = None
    if params.get("payment_method"):
        pm = resolve_pm(store, params["payment_method"], "payment_method")
        if pm["customer"] not in (None, inv["customer"]):
            raise invalid("The payment method belongs to another customer.", param="payment_method")
        pm_id = pm["id"]
        if pm["customer"] is None:
            from sandbox.resources import attach

            attach(store, pm_id, inv["customer"], param="payment_method")
    if inv["_first_attempt"] is None:
        inv["_first_attempt"] = store.now()
    failure = attempt(store, inv, pm_id)
    if failure is not None:
        code, decline, message = failure
        pi = store.objs[inv["_pi"]]
        raise ApiError(402, message, type="card_error" if code != "payment_method_missing" else
                       "invalid_request_error", code=code, decline_code=decline or None,
                       extra={"payment_intent": {"id": pi["id"], "object": "payment_intent"}})
    return inv


@route("POST", "/v1/invoices/{iid}/void", set())
def invoice_void(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid(f"You can only pass in open or uncollectible invoices. This invoice is {inv['status']}.",
                      code="invoice_not_editable")
    void_invoice(store, inv)
    return inv


@route("POST", "/v1/invoices/{iid}/mark_uncollectible", set())
def invoice_mark_uncollectible(store: Store, params: Obj, iid: str) -> Obj:
    inv = store.get(iid, "invoice")
    if inv["status"] != "open":
        raise invalid(f"You can only mark open invoices as uncollectible. This invoice is {inv['status']}.",
                      code="invoice_not_editable")
    mark_uncollectible(store, inv)
    return inv


@route("GET", "/v1/invoice_payments", {"invoice", "limit", "starting_after", "ending_before", "payment",
                                       "status", "created"})
def invoice_payment_list(store: Store, params: Obj) -> Obj:
    """One invoice's payments (`invoice`), or the account's, newest first; `status` (open | paid | canceled)
    and `created` filter, as in Stripe."""
    status = params.get("status")
    if status is not None and status not in ("open", "paid", "canceled"):
        raise invalid("Invalid status: must be one of canceled, open, or paid", param="status")
    match = (lambda o: o["status"] == status) if status else None
    if params.get("invoice"):
        inv = store.get(params.get("invoice"), "invoice", param="invoice")
        ids = [ip["id"] for ip in inv["payments"]["data"]]
        return list_page(store, ids, params, "/v1/invoice_payments", match=match, created=created_filter(params))
    idx = store.index.get("invoice_payment")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/invoice_payments"}
    return list_page(store, idx.ids, params, "/v1/invoice_payments", start=idx.start, pos=idx.pos, match=match,
                     created=created_filter(params))


@route("GET", "/v1/invoice_payments/{ipid}", set())
def invoice_payment_retrieve(store: Store, params: Obj, ipid: str) -> Obj:
    return store.get(ipid, "invoice_payment", "invoice payment")


@route("GET", "/v1/payment_intents", {"customer", "created", "limit", "starting_after", "ending_before"})
def payment_intent_list(store: Store, params: Obj) -> Obj:
    """The account's PaymentIntents, newest first (each with its `last_payment_error`); `customer` filters."""
    idx = store.index.get("payment_intent")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/payment_intents"}
    customer = params.get("customer")
    match = (lambda o: o["customer"] == customer) if customer else None
    return list_page(store, idx.ids, params, "/v1/payment_intents", pos=idx.pos, match=match,
                     created=created_filter(params))


@route("GET", "/v1/payment_intents/{pid}", {"client_secret"})
def payment_intent_retrieve(store: Store, params: Obj, pid: str) -> Obj:
    return store.get(pid, "payment_intent", "payment_intent")


@route("GET", "/v1/charges/{chid}", set())
def charge_retrieve(store: Store, params: Obj, chid: str) -> Obj:
    return store.get(chid, "charge")


# --- subscriptions --------------------------------------------------------------------------------------

SUB_CREATE = {"customer", "items", "default_payment_method", "collection_method", "days_until_due",
              "trial_period_days", "trial_end", "billing_cycle_anchor", "proration_behavior",
              "cancel_at_period_end", "cancel_at", "metadata", "payment_behavior", "description", "currency",
              "trial_settings", "off_session", "payment_settings", "backdate_start_date", "discounts"}


def _item(store: Store, sub_id: str, raw: Any, param: str, now: int) -> Obj:
    if not isinstance(raw, dict):
        raise invalid("Invalid items: must be an array of hashes.", param="items")
    if not raw.get("price"):
        raise invalid("Missing required param: items[0][price].", param=f"{param}[price]", code="parameter_missing")
    price = store.get(raw["price"], "price", param=f"{param}[price]")
    if price["recurring"] is None:
        raise invalid("The price specified is set to `type=one_time` but this field only accepts prices with "
                      "`type=recurring`.", param=f"{param}[price]")
    if not price["active"]:
        raise invalid("The price specified is inactive. This field only accepts active prices.",
                      param=f"{param}[price]")
    qty = as_int(raw, "quantity", default=1, minimum=0)
    return {"id": new_id("si"), "object": "subscription_item", "billing_thresholds": None, "created": now,
            "current_period_end": 0, "current_period_start": 0, "discounts": [],
            "metadata": metadata_update({}, raw.get("metadata")), "plan": _plan(price), "price": render(store, price),
            "quantity": qty, "subscription": sub_id, "tax_rates": []}


def _plan(price: Obj) -> Obj:
    r = price["recurring"]
    return {"id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit",
            "created": price["created"], "currency": price["currency"], "interval": r["interval"],
            "interval_count": r["interval_count"], "livemode": False, "metadata": price["metadata"],
            "meter": None, "nickname": price["nickname"], "product": price["product"], "tiers_mode": None,
            "transform_usage": None, "trial_period_days": r["trial_period_days"], "usage_type": "licensed"}


def _check_items(items: list[Obj]) -> tuple[str, tuple[str, int]]:
    currencies = {i["price"]["currency"] for i in items}
    if len(currencies) > 1:
        raise invalid("All prices on a subscription must have the same currency.", param="items")
    intervals = {(i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"]) for i in items}
    if len(intervals) > 1:
        raise invalid("All prices on a subscription must have the same recurring interval and interval_count.",
                      param="items")
    return currencies.pop(), intervals.pop()


def _timestamp(params: Obj, name: str, now: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw == "now":
        return now
    return as_int(params, name)


def set_status(store: Store, sub: Obj, status: str, extra: Obj | None = None) -> None:
    before = snapshot(sub, ["status"] + list(extra or {}))
    sub["status"] = status
    if extra:
        sub.update(extra)
    store.emit("customer.subscription.updated", sub, diff(sub, before))


def _set_periods(sub: Obj, start: int, end: int) -> None:
    for item in sub["items"]["data"]:
        item["current_period_start"] = start
        item["current_period_end"] = end
    sub["_period"] = (start, end)


@route("POST", "/v1/subscriptions", SUB_CREATE)
def subscription_create(store: Store, params: Obj) -> Obj:
    now = store.now()
    cid = params.get("customer")
    if not cid:
        raise invalid("Missing required param: customer.", param="customer", code="parameter_missing")
    c = store.get(cid, "customer", param="customer")
    raw_items = params.get("items")
    if not raw_items or not isinstance(raw_items, list):
        raise invalid("Missing required param: items.", param="items", code="parameter_missing")
    if len(raw_items) > 20:
        raise invalid("A subscription can have at most 20 items.", param="items")
    sid = new_id("sub")
    items = [_item(store, sid, raw, f"items[{i}]", now) for i, raw in enumerate(raw_items)]
    currency, interval = _check_items(items)
    if c["currency"] and c["currency"] != currency:
        raise invalid(f"You cannot combine currencies on a single customer. This customer has had a subscription "
                      f"or payment in {c['currency']}, but you are trying to pay in {currency}.", param="currency")
    collection = params.get("collection_method", "charge_automatically")
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid("Invalid collection_method.", param="collection_method")
    days_until_due = as_int(params, "days_until_due", minimum=0, maximum=730)
    if collection == "send_invoice" and days_until_due is None:
        raise invalid("Missing required param: days_until_due (required with collection_method=send_invoice).",
                      param="days_until_due", code="parameter_missing")
    behavior = params.get("payment_behavior", "allow_incomplete")
    if behavior not in ("allow_incomplete", "error_if_incomplete", "default_incomplete", "pending_if_incomplete"):
        raise invalid("Invalid payment_behavior.", param="payment_behavior")
    proration = params.get("proration_behavior", "create_prorations")
    if proration not in ("create_prorations", "none", "always_invoice"):
        raise invalid("Invalid proration_behavior.", param="proration_behavior")
    dpm = None
    if params.get("default_payment_method"):
        pm = store.objs.get(params["default_payment_method"])
        if pm is None or pm["object"] != "payment_method":
            raise missing("PaymentMethod", params["default_payment_method"], "default_payment_method")
        if pm["customer"] != cid:
            raise invalid("The customer does not have a payment method with the ID "
                          f"{params['default_payment_method']}. The payment method must be attached to the customer.",
                          param="default_payment_method", code="resource_missing")
        dpm = pm["id"]
    trial_end = _timestamp(params, "trial_end", now)
    trial_days = as_int(params, "trial_period_days", minimum=0, maximum=730)
    if trial_end is not None and trial_days is not None:
        raise invalid("You may only specify one of these parameters: trial_end, trial_period_days.",
                      param="trial_end")
    if trial_days:
        trial_end = now + trial_days * 86400
    if trial_end is not None and trial_end == now:
        trial_end = None
    if trial_end is not None and trial_end < now:
        raise invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end")
    anchor = _timestamp(params, "billing_cycle_anchor", now)
    if anchor is not None and anchor < now:
        raise invalid("billing_cycle_anchor cannot be in the past.", param="billing_cycle_anchor")
    trial_settings = params.get("trial_settings") or {}
    end_behavior = trial_settings.get("end_behavior") if isinstance(trial_settings, dict) else None
    missing_pm = (end_behavior.get("missing_payment_method") if isinstance(end_behavior, dict) else None) \
        or "create_invoice"
    if not isinstance(missing_pm, str) or missing_pm not in ("cancel", "create_invoice", "pause"):
        raise invalid("Invalid trial_settings[end_behavior][missing_payment_method].",
                      param="trial_settings[end_behavior][missing_payment_method]")
    cancel_at = _timestamp(params, "cancel_at", now)
    sub: Obj = {
        "id": sid, "object": "subscription", "application": None, "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now, "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic", "updated_at": None}, "billing_schedules": [],
        "billing_thresholds": None, "cancel_at": cancel_at, "cancel_at_period_end": False, "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": collection, "created": now, "currency": currency, "customer": cid,
        "days_until_due": days_until_due, "default_payment_method": dpm, "default_source": None,
        "default_tax_rates": [], "description": params.get("description") or None, "discounts": [], "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                  "url": f"/v1/subscription_items?subscription={sid}"},
        "latest_invoice": None, "livemode": False, "metadata": metadata_update({}, params.get("metadata")),
        "next_pending_invoice_item_invoice": None, "on_behalf_of": None, "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None, "pending_setup_intent": None, "pending_update": None,
        "schedule": None, "start_date": now, "status": "incomplete", "test_clock": None,
        "transfer_data": None, "trial_end": None, "trial_settings": {
            "end_behavior": {"missing_payment_method": missing_pm}}, "trial_start": None,
        "_interval": interval, "_lists": ("items",), "_n": 0,
    }
    if behavior == "error_if_incomplete" and trial_end is None and collection == "charge_automatically":
        failure = _fail_reason(store, dpm or c["invoice_settings"]["default_payment_method"])
        if failure is not None:
            code, decline, message = failure
            raise ApiError(402, message, type="card_error", code=code, decline_code=decline or None)
    sub["discounts"] = discounts.make_discounts(store, params.get("discounts"), customer=cid, subscription=sid,
                                                currency=currency, start=now)
    c["currency"] = c["currency"] or currency
    store.put(sub)
    for item in items:
        store.objs[item["id"]] = item
    store.child("subscription", cid, sid)
    if as_bool(params, "cancel_at_period_end", False):
        sub["cancel_at_period_end"] = True
    lines: list[tuple[Obj, int, int, int, bool]]
    if trial_end is not None:
        sub.update(status="trialing", trial_start=now, trial_end=trial_end, billing_cycle_anchor=trial_end)
        _set_periods(sub, now, trial_end)
        lines = [(i, 0, now, trial_end, False) for i in items]
        if trial_end - TRIAL_WILL_END > now:
            store.schedule(trial_end - TRIAL_WILL_END, "trial_will_end", sid, trial_end)
    elif anchor is not None and anchor > now:
        sub["billing_cycle_anchor"] = anchor
        full = shift(anchor, interval[0], -interval[1]) if interval[0] in ("month", "year") else \
            anchor - (shift(anchor, interval[0], interval[1]) - anchor)
        _set_periods(sub, now, anchor)
        if proration == "none":
            lines = [(i, 0, now, anchor, False) for i in items]
        else:
            frac = (anchor - now) / max(1, anchor - full)
            lines = [(i, round(i["price"]["unit_amount"] * i["quantity"] * min(1.0, frac)), now, anchor, True)
                     for i in items]
    else:
        end = next_period_end(sub, now)
        _set_periods(sub, now, end)
        lines = [(i, i["price"]["unit_amount"] * i["quantity"], now, end, False) for i in items]
    start, end = sub["_period"]
    inv = build_invoice(store, c, sub, "subscription_create", start, end, lines)
    sub["latest_invoice"] = inv["id"]
    if sub["status"] != "trialing":
        sub["status"] = "active"
    if behavior == "default_incomplete" and inv["total"] > 0 and collection == "charge_automatically":
        finalize(store, inv)
        sub["status"] = "incomplete"
    else:
        failure = collect(store, inv)
        if failure is not None:
            sub["status"] = "incomplete"
    if sub["status"] == "incomplete":
        store.schedule(now + store.settings["incomplete_expiry_seconds"], "expire", sid, inv["id"])
    if sub["cancel_at_period_end"] and sub["cancel_at"] is None:
        sub["cancel_at"] = end
    store.emit("customer.subscription.created", sub)
    store.schedule(min(end, sub["cancel_at"] or end), "renew", sid, end)
    return sub


def _renew(store: Store, sub: Obj, token: Any) -> None:
    start, end = sub["_period"]
    if sub["status"] in ("canceled", "incomplete_expired", "incomplete") or token != end:
        return
    cancel_at = sub["cancel_at"]
    if cancel_at is not None and cancel_at <= end:
        if cancel_at <= store.now():
            cancel_subscription(store, sub, reason="cancellation_requested", at=cancel_at)
        return
    if sub.get("schedule"):
        phase_ended(store, sub, end)
    if sub["status"] == "paused":
        return
    c = store.objs[sub["customer"]]
    before = snapshot(sub, ["status", "latest_invoice", "trial_end", "discounts"])
    was_trial = sub["status"] == "trialing"
    if was_trial:
        has_pm = charge_method(store, {"default_payment_method": None, "customer": c["id"]}, sub) is not None
        behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
        if not has_pm and behaviour == "pause":
            set_status(store, sub, "paused")
            store.emit("customer.subscription.paused", sub)
            return
        if not has_pm and behaviour == "cancel":
            cancel_subscription(store, sub, reason="cancellation_requested")
            return
    new_start = end
    new_end = next_period_end(sub, new_start)
    _set_periods(sub, new_start, new_end)
    lines = [(i, i["price"]["unit_amount"] * i["quantity"], new_start, new_end, False)
             for i in sub["items"]["data"]]
    inv = build_invoice(store, c, sub, "subscription_cycle", new_start, new_end, lines)
    sub["latest_invoice"] = inv["id"]
    if was_trial:
        sub["status"] = "active"
    pause = sub["pause_collection"]
    failure = None
    if pause:
        if pause["behavior"] == "void":
            finalize(store, inv)
            if inv["status"] == "open":
                void_invoice(store, inv)
        elif pause["behavior"] == "mark_uncollectible":
            finalize(store, inv)
            if inv["status"] == "open":
                mark_uncollectible(store, inv)
    elif sub["status"] == "unpaid":
        finalize(store, inv)  # invoices keep coming but are not attempted
    else:
        failure = collect(store, inv)
        if failure is not None and sub["status"] in ("active", "trialing"):
            sub["status"] = "past_due"
    store.emit("customer.subscription.updated", sub, diff(sub, before) or {"items": None})
    if sub["status"] not in ("canceled",):
        store.schedule(min(new_end, sub["cancel_at"] or new_end), "renew", sub["id"], new_end)


def _expire(store: Store, sub: Obj, inv_id: str) -> None:
    inv = store.objs.get(inv_id)
    if sub["status"] != "incomplete" or inv is None or inv["status"] == "paid":
        return
    if inv["status"] == "open":
        void_invoice(store, inv)
    set_status(store, sub, "incomplete_expired", {"ended_at": store.now()})


def _retry(store: Store, inv: Obj, attempt_no: int) -> None:
    if inv["status"] != "open" or inv["attempt_count"] != attempt_no or inv["next_payment_attempt"] is None:
        return
    sub = store.objs.get(inv.get("_sub") or "")
    if sub is not None and sub["status"] == "canceled":
        return
    attempt(store, inv)


def _overdue(store: Store, inv: Obj) -> None:
    """A sent invoice still open at its due date makes its subscription past_due, as on Stripe."""
    if inv["status"] != "open" or inv["amount_remaining"] <= 0:
        return
    store.emit("invoice.overdue", inv)
    sub = store.objs.get(inv.get("_sub") or "")
    if sub is not None and sub["status"] == "active" and sub["latest_invoice"] == inv["id"]:
        set_status(store, sub, "past_due")
    _set_delinquent(store, inv["customer"], failed=True)


def _trial_will_end(store: Store, sub: Obj, trial_end: int) -> None:
    if sub["status"] == "trialing" and sub["trial_end"] == trial_end:
        store.emit("customer.subscription.trial_will_end", sub)


def run_due(store: Store, until: float) -> int:
    """Run every timer due up to `until`, in time order, each at its own sandbox time."""
    done = 0
    heap = store.heap
    store.discard_before = int(until) - EVENT_RETENTION
    try:
        while heap and heap[0][0] <= until:
            if done % 5000 == 4999:
                store.prune_events()  # keep memory flat over long advances
            due, _, action, oid, token = heapq.heappop(heap)
            store.frozen = max(due, store.now() if store.frozen is None else store.frozen)
            obj = store.objs.get(oid)
            if obj is None:
                continue
            if action == "renew":
                _renew(store, obj, token)
            elif action == "retry":
                _retry(store, obj, token)
            elif action == "expire":
                _expire(store, obj, token)
            elif action == "trial_will_end":
                _trial_will_end(store, obj, token)
            elif action == "overdue":
                _overdue(store, obj)
            done += 1
    finally:
        store.frozen = None
        store.discard_before = 0
    return done


@route("GET", "/v1/subscriptions/{sid}", set())
def subscription_retrieve(store: Store, params: Obj, sid: str) -> Obj:
    return store.get(sid, "subscription")


SUB_UPDATE = {"items", "default_payment_method", "collection_method", "days_until_due", "trial_end",
              "proration_behavior", "cancel_at_period_end", "cancel_at", "metadata", "payment_behavior",
              "description", "pause_collection", "cancellation_details", "trial_settings", "off_session",
              "billing_cycle_anchor", "proration_date"}


@route("POST", "/v1/subscriptions/{sid}", SUB_UPDATE)
def subscription_update(store: Store, params: Obj, sid: str) -> Obj:
    sub = store.get(sid, "subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    now = store.now()
    before = snapshot(sub, [k for k in sub if k[0] != "_"], deep=True)
    if "metadata" in params:
        sub["metadata"] = metadata_update(sub["metadata"], params["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "default_payment_method" in params:
        dpm = params["default_payment_method"] or None
        if dpm:
            pm = store.objs.get(dpm)
            if pm is None or pm["object"] != "payment_method":
                raise missing("PaymentMethod", dpm, "default_payment_method")
            if pm["customer"] != sub["customer"]:
                raise invalid("The payment method must be attached to the subscription's customer.",
                              param="default_payment_method", code="resource_missing")
        sub["default_payment_method"] = dpm
    if "collection_method" in params:
        if params["collection_method"] not in ("charge_automatically", "send_invoice"):
            raise invalid("Invalid collection_method.", param="collection_method")
        sub["collection_method"] = params["collection_method"]
    if "days_until_due" in params:
        sub["days_until_due"] = as_int(params, "days_until_due", minimum=0)
    if "cancellation_details" in params and isinstance(params["cancellation_details"], dict):
        cd = params["cancellation_details"]
        sub["cancellation_details"] = dict(sub["cancellation_details"], comment=cd.get("comment") or None,
                                           feedback=cd.get("feedback") or None)
    if "pause_collection" in params:
        pc = params["pause_collection"]
        if pc in ("", None):
            sub["pause_collection"] = None
        else:
            if not isinstance(pc, dict) or pc.get("behavior") not in ("keep_as_draft", "mark_uncollectible",
                                                                       "void"):
                raise invalid("Invalid pause_collection[behavior].", param="pause_collection[behavior]")
            sub["pause_collection"] = {"behavior": pc["behavior"], "resumes_at": as_int(pc, "resumes_at")}
    start, end = sub["_period"]
    if "cancel_at_period_end" in params:
        flag = as_bool(params, "cancel_at_period_end")
        sub["cancel_at_period_end"] = flag
        sub["cancel_at"] = end if flag else None
        sub["canceled_at"] = now if flag else None
        if not flag:
            sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
        else:
            sub["cancellation_details"] = dict(sub["cancellation_details"], reason="cancellation_requested")
    if "cancel_at" in params:
        at = _timestamp(params, "cancel_at", now)
        sub["cancel_at"] = at
        sub["cancel_at_period_end"] = at is not None and at == end
        sub["canceled_at"] = now if at else None
        if at is not None:
            store.schedule(at, "renew", sid, end)
    if "items" in params:
        _update_items(store, sub, params["items"], now)
    trial_end = _timestamp(params, "trial_end", now)
    changed = diff(sub, before)
    if changed:
        store.emit("customer.subscription.updated", sub, changed)
    if trial_end is not None and sub["status"] == "trialing":
        if trial_end <= now:  # end the trial now: a new period starts and is invoiced
            sub["trial_end"] = now
            sub["billing_cycle_anchor"] = now
            sub["_n"] = 0
            _set_periods(sub, start, now)
            _renew(store, sub, now)
        else:
            sub["trial_end"] = trial_end
            sub["billing_cycle_anchor"] = trial_end
            sub["_n"] = 0
            _set_periods(sub, start, trial_end)
            store.schedule(trial_end, "renew", sid, trial_end)
            store.emit("customer.subscription.updated", sub, {"trial_end": before["trial_end"]})
    return sub


def _update_items(store: Store, sub: Obj, raw_items: Any, now: int) -> None:
    if not isinstance(raw_items, list):
        raise invalid("Invalid items: must be an array.", param="items")
    items = list(sub["items"]["data"])
    start, end = sub["_period"]
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise invalid("Invalid items.", param=f"items[{i}]")
        if raw.get("id"):
            found = next((it for it in items if it["id"] == raw["id"]), None)
            if found is None:
                raise invalid(f"No such subscription item: '{raw['id']}'", param=f"items[{i}][id]",
                              code="resource_missing")
            if as_bool(raw, "deleted", False):
                items.remove(found)
                store.objs.pop(found["id"], None)
                continue
            if raw.get("price"):
                price = store.get(raw["price"], "price", param=f"items[{i}][price]")
                found["price"] = render(store, price)
                found["plan"] = _plan(price)
            if "quantity" in raw:
                found["quantity"] = as_int(raw, "quantity", minimum=0)
            if "metadata" in raw:
                found["metadata"] = metadata_update(found["metadata"], raw["metadata"])
        else:
            item = _item(store, sub["id"], raw, f"items[{i}]", now)
            item["current_period_start"], item["current_period_end"] = start, end
            items.append(item)
            store.objs[item["id"]] = item
    if not items:
        raise invalid("A subscription must have at least one item.", param="items")
    currency, interval = _check_items(items)
    if currency != sub["currency"]:
        raise invalid("Cannot change the currency of a subscription.", param="items")
    if interval != sub["_interval"]:
        raise invalid("Changing the billing interval is not supported by the sandbox.", param="items")
    sub["items"] = dict(sub["items"], data=items, total_count=len(items))


@route("DELETE", "/v1/subscriptions/{sid}", {"invoice_now", "prorate", "cancellation_details"})
def subscription_cancel(store: Store, params: Obj, sid: str) -> Obj:
    sub = store.get(sid, "subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(f"The subscription {sid} is already canceled.")
    cd = params.get("cancellation_details") if isinstance(params.get("cancellation_details"), dict) else {}
    cancel_subscription(store, sub, reason="cancellation_requested", comment=cd.get("comment") or None,
                        feedback=cd.get("feedback") or None)
    return sub


@route("POST", "/v1/subscriptions/{sid}/resume", {"billing_cycle_anchor", "proration_behavior"})
def subscription_resume(store: Store, params: Obj, sid: str) -> Obj:
    sub = store.get(sid, "subscription")
    if sub["status"] != "paused":
        raise invalid("Only paused subscriptions can be resumed.")
    now = store.now()
    sub["billing_cycle_anchor"] = now
    sub["_n"] = 0
    start, _ = sub["_period"]
    sub["status"] = "active"
    _set_periods(sub, start, now)
    _renew(store, sub, now)
    store.emit("customer.subscription.resumed", sub, {"status": "paused"})
    return sub


SUB_LIST = {"customer", "status", "price", "created", "limit", "starting_after", "ending_before",
            "collection_method", "current_period_end", "current_period_start", "test_clock", "automatic_tax"}


@route("GET", "/v1/subscriptions", SUB_LIST)
def subscription_list(store: Store, params: Obj) -> Obj:
    status = params.get("status")
    valid = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due", "paused",
             "trialing", "unpaid")
    if status is not None and status not in valid:
        raise invalid(f"Invalid status: must be one of {', '.join(valid)}", param="status")
    conds = []
    if status is None:
        conds.append(lambda s: s["status"] not in ("canceled", "incomplete_expired"))
    elif status == "ended":
        conds.append(lambda s: s["status"] in ("canceled", "incomplete_expired"))
    elif status != "all":
        conds.append(lambda s: s["status"] == status)
    if params.get("price"):
        conds.append(lambda s: any(i["price"]["id"] == params["price"] for i in s["items"]["data"]))
    if params.get("collection_method"):
        conds.append(lambda s: s["collection_method"] == params["collection_method"])
    match = (lambda o: all(c(o) for c in conds)) if conds else None
    created = created_filter(params)
    if params.get("customer"):
        return list_page(store, store.children("subscription", params["customer"]), params, "/v1/subscriptions",
                         match=match, created=created)
    idx = store.index.get("subscription")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/subscriptions"}
    return list_page(store, idx.ids, params, "/v1/subscriptions", pos=idx.pos, match=match, created=created)


@route("GET", "/v1/subscription_items", {"subscription", "limit", "starting_after", "ending_before"})
def subscription_item_list(store: Store, params: Obj) -> Obj:
    if not params.get("subscription"):
        raise invalid("Missing required param: subscription.", param="subscription", code="parameter_missing")
    sub = store.get(params["subscription"], "subscription", param="subscription")
    ids = [i["id"] for i in reversed(sub["items"]["data"])]  # listed in the subscription's order
    return list_page(store, ids, params, f"/v1/subscription_items?subscription={sub['id']}")


@route("GET", "/v1/subscription_items/{siid}", set())
def subscription_item_retrieve(store: Store, params: Obj, siid: str) -> Obj:
    return store.get(siid, "subscription_item", "subscription item")
