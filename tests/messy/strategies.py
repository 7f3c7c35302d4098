"""Hypothesis strategies for Stripe objects in the pinned SDK's shape (stripe==16.1.0, API 2026-10-28).

Optional fields are left out, null, empty or odd: no currency, huge and negative amounts, unicode, the
messy seed's Markdown/HTML/formula payloads. Ids are unique per batch (a `ids` counter), so a drawn batch of
customers, subscriptions, invoices and payment methods refers to each other like one account.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from sandbox import messy

T0 = 1_760_000_000
PAYLOADS = (*messy.ALL_PAYLOADS, "=1+1", "+44 20 7946 0958", "-", "@", "'quoted'", '"double"', "a,b", "line\nbreak",
            "\\", "%_", "cus_", "1234", "Ünïcödé ß ǅ", "\u200b", " leading space", "trailing space ")
CURRENCIES = ("usd", "eur", "jpy", "krw", "kwd", "bhd", "USD", "xxx")
STATUSES = ("active", "trialing", "past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused")

# Text Stripe could hold: no NUL (Stripe refuses it in parameters) and no lone surrogates (not valid UTF-8).
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
free_text = st.text(_chars, max_size=30)
payload = st.sampled_from(PAYLOADS)
text_value = st.one_of(payload, free_text, st.tuples(payload, free_text).map("".join),
                       st.tuples(free_text, payload).map("".join))
maybe_text = st.one_of(st.none(), st.just(""), text_value)
currency = st.one_of(st.none(), st.just(""), st.sampled_from(CURRENCIES))
amount = st.one_of(st.none(), st.sampled_from([0, -1, 1, 99_999_999, -99_999_999]),
                   st.integers(-10**12, 10**12))
timestamp = st.one_of(st.none(), st.just(T0), st.integers(0, 2**32))
metadata = st.one_of(st.none(), st.dictionaries(st.text(_chars, min_size=1, max_size=40), text_value, max_size=3))


@dataclass
class Ids:
    """Fresh ids per drawn batch."""

    counter: itertools.count = field(default_factory=itertools.count)

    def new(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter):06d}"


def _drop_absent(d: dict[str, Any], absent: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in absent}


@st.composite
def customer(draw: st.DrawFn, cid: str, pm_id: str | None) -> dict[str, Any]:
    obj = {
        "id": cid, "object": "customer", "name": draw(maybe_text), "email": draw(maybe_text),
        "phone": draw(maybe_text), "description": draw(maybe_text), "currency": draw(currency),
        "balance": draw(amount), "created": draw(timestamp), "delinquent": draw(st.booleans()),
        "address": draw(st.one_of(st.none(), st.fixed_dictionaries({
            "line1": maybe_text, "line2": maybe_text, "city": maybe_text, "state": maybe_text,
            "postal_code": maybe_text, "country": st.sampled_from([None, "", "US", "JP", "KW", "GB"])}))),
        "metadata": draw(metadata), "livemode": False,
        "invoice_settings": {"custom_fields": None, "default_payment_method": pm_id, "footer": None,
                             "rendering_options": None},
        "preferred_locales": draw(st.sampled_from([[], ["ar"], ["ja", "en"]])),
    }
    absent = draw(st.sets(st.sampled_from(["name", "email", "phone", "currency", "balance", "address",
                                           "metadata", "invoice_settings", "delinquent"])))
    return _drop_absent(obj, absent)


@st.composite
def price(draw: st.DrawFn, ids: Ids) -> dict[str, Any]:
    product_id = ids.new("prod")
    product = draw(st.one_of(st.just(product_id), st.fixed_dictionaries(
        {"id": st.just(product_id), "object": st.just("product"), "name": maybe_text})))
    return {"id": ids.new("price"), "object": "price", "currency": draw(currency), "unit_amount": draw(amount),
            "product": product, "nickname": draw(maybe_text),
            "recurring": draw(st.one_of(st.none(), st.fixed_dictionaries({
                "interval": st.sampled_from(["month", "year", "week", "day", None, "fortnight"]),
                "interval_count": st.one_of(st.none(), st.integers(0, 36))})))}


@st.composite
def subscription(draw: st.DrawFn, ids: Ids, cid: str | None) -> dict[str, Any]:
    sid = ids.new("sub")
    items = [{"id": ids.new("si"), "object": "subscription_item", "price": draw(price(ids)),
              "quantity": draw(st.one_of(st.none(), st.integers(0, 10**6))),
              "current_period_start": draw(timestamp), "current_period_end": draw(timestamp),
              "metadata": draw(metadata), "subscription": sid}
             for _ in range(draw(st.integers(0, 3)))]
    obj = {
        "id": sid, "object": "subscription", "customer": cid, "status": draw(st.one_of(
            st.sampled_from(STATUSES), st.none(), st.just("something_new"))),
        "currency": draw(currency), "created": draw(timestamp), "description": draw(maybe_text),
        "cancel_at_period_end": draw(st.booleans()), "cancel_at": draw(timestamp), "trial_end": draw(timestamp),
        "collection_method": draw(st.sampled_from([None, "charge_automatically", "send_invoice"])),
        "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                  "url": f"/v1/subscription_items?subscription={sid}"},
        "metadata": draw(metadata), "discounts": [], "latest_invoice": None, "livemode": False,
    }
    absent = draw(st.sets(st.sampled_from(["currency", "status", "created", "metadata", "discounts",
                                           "collection_method"])))
    return _drop_absent(obj, absent)


@st.composite
def invoice(draw: st.DrawFn, ids: Ids, cid: str | None, sid: str | None) -> dict[str, Any]:
    iid = ids.new("in")
    cur = draw(currency)
    lines = [{
        "id": ids.new("il"), "object": "line_item", "amount": draw(amount), "currency": cur,
        "description": draw(maybe_text), "invoice": iid, "quantity": draw(st.one_of(st.none(), st.integers(0, 10**6))),
        "period": {"start": draw(timestamp), "end": draw(timestamp)}, "metadata": draw(metadata),
        "parent": draw(st.sampled_from([
            None,
            {"type": "subscription_item_details", "invoice_item_details": None, "subscription_item_details": {
                "subscription": sid, "subscription_item": None, "proration": False, "invoice_item": None}},
            {"type": "invoice_item_details", "subscription_item_details": None, "invoice_item_details": {
                "invoice_item": "ii_1", "proration": True, "subscription": None}}])),
        "pricing": None,
    } for _ in range(draw(st.integers(0, 3)))]
    status = draw(st.sampled_from(["draft", "open", "paid", "uncollectible", "void", None]))
    error = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "code": maybe_text, "decline_code": maybe_text, "message": maybe_text, "type": st.just("card_error")})))
    obj = {
        "id": iid, "object": "invoice", "customer": cid, "customer_email": draw(maybe_text),
        "customer_name": draw(maybe_text), "number": draw(maybe_text), "status": status, "currency": cur,
        "amount_due": draw(amount), "amount_paid": draw(amount), "amount_remaining": draw(amount),
        "total": draw(amount), "attempt_count": draw(st.one_of(st.none(), st.integers(0, 10))),
        "attempted": draw(st.booleans()), "next_payment_attempt": draw(timestamp), "created": draw(timestamp),
        "due_date": draw(timestamp), "hosted_invoice_url": draw(maybe_text), "description": draw(maybe_text),
        "collection_method": "charge_automatically", "billing_reason": draw(st.sampled_from(
            [None, "subscription_create", "subscription_cycle", "manual"])),
        "parent": None if sid is None else {"type": "subscription_details", "quote_details": None,
                                            "subscription_details": {"subscription": sid, "metadata": draw(metadata),
                                                                     "subscription_proration_date": None}},
        "status_transitions": {"paid_at": draw(timestamp), "voided_at": None, "finalized_at": draw(timestamp),
                               "marked_uncollectible_at": draw(timestamp)},
        "lines": {"object": "list", "data": lines, "has_more": False, "total_count": len(lines),
                  "url": f"/v1/invoices/{iid}/lines"},
        "payments": {"object": "list", "has_more": False, "data": [] if error is None else [
            {"id": ids.new("inpay"), "object": "invoice_payment", "created": T0,
             "payment": {"type": "payment_intent", "payment_intent": {
                 "id": ids.new("pi"), "object": "payment_intent", "last_payment_error": error}}}]},
        "metadata": draw(metadata), "livemode": False,
    }
    absent = draw(st.sets(st.sampled_from(["currency", "status_transitions", "payments", "lines", "number",
                                           "customer_email", "attempt_count", "metadata"])))
    return _drop_absent(obj, absent)


@st.composite
def payment_method(draw: st.DrawFn, pm_id: str, cid: str | None) -> dict[str, Any]:
    card = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "brand": st.one_of(st.none(), st.sampled_from(["visa", "amex", "unknown"]), text_value),
        "last4": st.one_of(st.none(), st.sampled_from(["4242", "0341"]), text_value),
        "exp_month": st.one_of(st.none(), st.integers(0, 13)),
        "exp_year": st.one_of(st.none(), st.integers(1970, 2200)),
        "fingerprint": maybe_text})))
    return {"id": pm_id, "object": "payment_method", "customer": cid,
            "type": draw(st.sampled_from(["card", "us_bank_account", None])), "card": card,
            "billing_details": {"name": draw(maybe_text), "email": None, "phone": None, "address": None},
            "created": draw(timestamp), "livemode": False}


@dataclass
class Account:
    customers: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    payment_methods: list[dict[str, Any]]


@st.composite
def account(draw: st.DrawFn) -> Account:
    """1–3 customers, each with 0–2 subscriptions, 0–2 invoices (some failed) and 0–1 payment method; now and
    then an invoice or subscription of a customer the cache does not hold (deleted before the sync)."""
    ids = Ids()
    out = Account([], [], [], [])
    for _ in range(draw(st.integers(1, 3))):
        cid = ids.new("cus")
        pm_id = ids.new("pm") if draw(st.booleans()) else None
        out.customers.append(draw(customer(cid, pm_id)))
        if pm_id:
            out.payment_methods.append(draw(payment_method(pm_id, cid)))
        subs = [draw(subscription(ids, cid)) for _ in range(draw(st.integers(0, 2)))]
        out.subscriptions += subs
        for _ in range(draw(st.integers(0, 2))):
            sid = draw(st.sampled_from([None, *[s["id"] for s in subs]]))
            out.invoices.append(draw(invoice(ids, cid, sid)))
    if draw(st.booleans()):
        out.invoices.append(draw(invoice(ids, "cus_gone", None)))
    return out
