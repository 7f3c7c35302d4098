"""Stripe objects (plain JSON dicts) → cache rows, tolerant of API versions.

Events may arrive in an older API version than the SDK's, so each column is read from every place Stripe
has put it (`current_period_*` on the subscription or its items, `balance` or `account_balance`,
`invoice.subscription` or `invoice.parent.subscription_details.subscription`, `price` or `plan`).
Unknown fields are ignored; a missing optional field becomes None (or the column's neutral default);
a malformed value never raises. Rows are dicts keyed by column name, ready for a bulk upsert.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from lib.models import from_ts, utcnow
from lib.normalize import canonical_email, email_domain, fold_name, normalize_email, normalize_phone

Obj = dict[str, Any]
_fromtimestamp = datetime.fromtimestamp



def ref(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if type(value) is str or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) else None
    return None


def dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]…, or None as soon as a step is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, default: int | None = None) -> int | None:
    if type(value) is int:  # the usual case first: this runs ~10 times per object
        return value
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return default
    return default


_DATETIMES: dict[int, datetime] = {}  # recent epochs: a page repeats its periods, item after item


def _ts(value: Any) -> datetime | None:
    """An epoch timestamp as an aware UTC datetime; the same epoch gives the same (immutable) object."""
    if value is None:
        return None
    ts = value if type(value) is int else _int(value)
    if ts is None:
        return None
    found = _DATETIMES.get(ts)
    if found is not None:
        return found
    try:
        found = _fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if len(_DATETIMES) >= 4096:
        _DATETIMES.clear()
    _DATETIMES[ts] = found
    return found


def _str(value: Any) -> str | None:
    return value if (type(value) is str or isinstance(value, str)) and value else None


def _fold(name: str | None) -> str | None:
    """fold_name, without the per-character Unicode walk when the name is plain ASCII (the same result)."""
    if name is not None and name.isascii():
        return name.lower().strip() or None
    return fold_name(name)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _list_data(value: Any) -> list[Obj]:
    """The objects of a nested list (`{"object": "list", "data": [...]}`) or of a bare list."""
    if isinstance(value, dict):
        value = value.get("data")
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _bookkeeping(obj: Obj, version_ts: int, synced_at: datetime | None) -> Obj:
    """The columns every Stripe table ends with."""
    return {"livemode": bool(obj.get("livemode") or False), "version_ts": version_ts,
            "synced_at": synced_at or utcnow()}


# --- customers --------------------------------------------------------------------------------

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_PUNCT = str.maketrans("", "", " -.()\u00a0")


@lru_cache(maxsize=65536)
def phone_e164(phone: str | None, region: str = "US") -> str | None:
    """normalize_phone, with a fast path for numbers already written internationally (+33 4 72 …):
    phonenumbers' parser costs ~40 µs, more than the rest of a customer row."""
    if not phone:
        return None
    compact = phone.strip().translate(_PHONE_PUNCT)
    if "(0)" not in phone and _E164.fullmatch(compact):  # "+44 (0)20…": the trunk 0 needs the real parser
        return compact
    return normalize_phone(phone, region)



def customer_row(obj: Obj, version_ts: int, *, synced_at: datetime | None = None) -> Obj:
    """A customer row; a deleted customer (`deleted: true`) keeps its last known fields."""
    email = _str(obj.get("email"))
    name = _str(obj.get("name"))
    phone = _str(obj.get("phone"))
    balance = obj.get("balance")
    if balance is None:
        balance = obj.get("account_balance")  # before 2019-10-17
    default_pm = ref(dig(obj, "invoice_settings", "default_payment_method")) or ref(obj.get("default_source"))
    country = dig(obj, "address", "country")
    return {
        "id": obj["id"],
        "email": email,
        "email_normalized": normalize_email(email),
        "email_canonical": canonical_email(email),
        "email_domain": email_domain(email),
        "name": name,
        "name_search": _fold(name),
        "phone": phone,
        "phone_normalized": phone_e164(phone, country if isinstance(country, str) and country else "US"),
        "created": _ts(obj.get("created")) or from_ts(0),
        "currency": _str(obj.get("currency")),
        "balance": _int(balance, 0),
        "delinquent": bool(obj.get("delinquent") or False),
        "deleted": bool(obj.get("deleted") or False),
        "default_payment_method_id": default_pm,
        "address": _dict(obj.get("address")),
        "metadata": _dict(obj.get("metadata")),
        "merged_into": merged_into(obj),
        **_bookkeeping(obj, version_ts, synced_at),
    }


_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9_]{1,60}")


def valid_customer_id(value: Any) -> str | None:
    """`value` when it is a well-formed customer id (cus_ + letters, digits, underscores), else None: ids read
    from metadata, a URL or a form become links and queries only through this."""
    return value if isinstance(value, str) and _CUSTOMER_ID.fullmatch(value) else None


def merged_into(obj: Obj) -> str | None:
    """The survivor a merge moved this customer into (metadata `merged_into`, lib/merge/), when valid and not
    the customer itself."""
    target = valid_customer_id(dig(obj, "metadata", "merged_into"))
    return target if target != obj.get("id") else None


# --- subscriptions ----------------------------------------------------------------------------

# Approximate months per interval unit, to normalise every price to a monthly amount.
_PER_MONTH = {"month": 1.0, "year": 1.0 / 12.0, "week": 52.0 / 12.0, "day": 365.0 / 12.0}


def _price_of(item: Obj) -> Obj:
    price = item.get("price")
    if isinstance(price, dict):
        return price
    plan = item.get("plan")  # older shape
    return plan if isinstance(plan, dict) else {}


def _unit_amount(price: Obj) -> int | None:
    amount = _int(price.get("unit_amount"))
    if amount is None:
        amount = _int(price.get("amount"))  # plans
    if amount is None and price.get("unit_amount_decimal") is not None:
        amount = _int(price.get("unit_amount_decimal"))
    return amount


def _interval(price: Obj) -> tuple[str | None, int]:
    recurring = price.get("recurring")
    if isinstance(recurring, dict):
        return _str(recurring.get("interval")), _int(recurring.get("interval_count"), 1) or 1
    return _str(price.get("interval")), _int(price.get("interval_count"), 1) or 1


def item_row(item: Obj, subscription_id: str, product_names: dict[str, str] | None = None) -> Obj:
    """A subscription item row; the product name comes from an expanded product or `product_names`."""
    price = _price_of(item)
    product = price.get("product")
    product_id = ref(product)
    product_name = _str(product.get("name")) if isinstance(product, dict) else None
    if product_name is None and product_id and product_names:
        product_name = product_names.get(product_id)
    interval, interval_count = _interval(price)
    quantity = _int(item.get("quantity"), 1)
    return {
        "id": item["id"],
        "subscription_id": subscription_id,
        "price_id": _str(price.get("id")),
        "product_id": product_id,
        "product_name": product_name,
        "quantity": 1 if quantity is None else quantity,
        "unit_amount": _unit_amount(price),
        "currency": _str(price.get("currency")),
        "interval": interval,
        "interval_count": interval_count,
        "current_period_start": _ts(item.get("current_period_start")),
        "current_period_end": _ts(item.get("current_period_end")),
        "metadata": _dict(item.get("metadata")),
    }


def monthly_amount(items: list[Obj]) -> float:
    """Σ unit_amount × quantity over item rows, each normalised to one month."""
    total = 0.0
    for it in items:
        amount = it.get("unit_amount") or 0
        per_month = _PER_MONTH.get(it.get("interval") or "", 0.0) / max(1, it.get("interval_count") or 1)
        total += amount * (it.get("quantity") or 0) * per_month
    return total


def _discounted(monthly: float, discounts: list[Any], months_per_invoice: float) -> float:
    """Apply discounts whose coupon Stripe sent inline (percent or amount off); ids alone cannot be applied."""
    for d in discounts:
        coupon = dig(d, "coupon") if isinstance(d, dict) else None
        if not isinstance(coupon, dict):
            coupon = dig(d, "source", "coupon") if isinstance(d, dict) else None
        if not isinstance(coupon, dict):
            continue
        pct = coupon.get("percent_off")
        off = _int(coupon.get("amount_off"))
        if isinstance(pct, int | float):
            monthly *= max(0.0, 1.0 - float(pct) / 100.0)
        elif off:
            monthly = max(0.0, monthly - off / max(months_per_invoice, 1e-9))
    return monthly


def subscription_rows(obj: Obj, version_ts: int, product_names: dict[str, str] | None = None,
                      *, synced_at: datetime | None = None) -> tuple[Obj, list[Obj]]:
    """A subscription row and its item rows (the items list must be complete: see complete_nested)."""
    sub_id = obj["id"]
    items = [item_row(it, sub_id, product_names) for it in _list_data(obj.get("items")) if it.get("id")]
    starts = [it["current_period_start"] for it in items if it["current_period_start"] is not None]
    ends = [it["current_period_end"] for it in items if it["current_period_end"] is not None]
    period_start = _ts(obj.get("current_period_start")) or (min(starts) if starts else None)
    period_end = _ts(obj.get("current_period_end")) or (min(ends) if ends else None)
    monthly = monthly_amount(items)
    discounts = obj.get("discounts")
    if not isinstance(discounts, list):
        discounts = [obj["discount"]] if isinstance(obj.get("discount"), dict) else []  # older shape
    if items and monthly:
        first = items[0]
        months = 1.0 / (_PER_MONTH.get(first["interval"] or "month", 1.0) / max(1, first["interval_count"]))
        monthly = _discounted(monthly, discounts, months)
    pause = obj.get("pause_collection")
    row = {
        "id": sub_id,
        "customer_id": ref(obj.get("customer")) or "",
        "status": _str(obj.get("status")) or "unknown",
        "created": _ts(obj.get("created")) or from_ts(0),
        "current_period_start": period_start,
        "current_period_end": period_end,
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end") or False),
        "cancel_at": _ts(obj.get("cancel_at")),
        "canceled_at": _ts(obj.get("canceled_at")),
        "trial_end": _ts(obj.get("trial_end")),
        "collection_method": _str(obj.get("collection_method")),
        "currency": _str(obj.get("currency")) or (items[0]["currency"] if items else None),
        "mrr": int(round(monthly)),
        "latest_invoice_id": ref(obj.get("latest_invoice")),
        "default_payment_method_id": ref(obj.get("default_payment_method")),
        "schedule_id": ref(obj.get("schedule")),
        "pause_collection": dict(pause) if isinstance(pause, dict) else None,
        "discounts": [ref(d) or d for d in discounts if d],
        "metadata": _dict(obj.get("metadata")),
        **_bookkeeping(obj, version_ts, synced_at),
    }
    return row, items


# --- invoices ---------------------------------------------------------------------------------


def invoice_subscription_id(obj: Obj) -> str | None:
    """`parent.subscription_details.subscription` (current) or `subscription` (before 2025-03-31)."""
    return ref(dig(obj, "parent", "subscription_details", "subscription")) or ref(obj.get("subscription"))


def _failure(obj: Obj) -> tuple[str | None, str | None, str | None, str | None]:
    """(failure_code, decline_code, failure_message, payment method charged) of the last attempt, wherever this
    shape keeps it. Only an unpaid invoice has a current failure (a paid or void one is not at risk any more)."""
    if obj.get("status") not in ("open", "uncollectible") or not obj.get("attempted"):
        return None, None, None, None
    candidates: list[Any] = []
    for payment in reversed(_list_data(obj.get("payments"))):  # current: invoice payments → payment intent
        candidates.append(dig(payment, "payment", "payment_intent", "last_payment_error"))
        candidates.append(dig(payment, "last_payment_error"))
    candidates.append(dig(obj, "payment_intent", "last_payment_error"))  # 2022–2025 with expand
    charge = obj.get("charge")  # 2017-era, expanded
    if isinstance(charge, dict):
        candidates.append({"code": charge.get("failure_code"), "message": charge.get("failure_message"),
                           "decline_code": dig(charge, "outcome", "reason")})
    candidates.append(obj.get("last_payment_error"))
    candidates.append(obj.get("last_finalization_error"))
    for c in candidates:
        if isinstance(c, dict) and (c.get("code") or c.get("decline_code") or c.get("message")):
            charged = ref(c.get("payment_method")) or (ref(charge.get("payment_method"))
                                                       if isinstance(charge, dict) else None)
            return _str(c.get("code")), _str(c.get("decline_code")), _str(c.get("message")), charged
    return None, None, None, None


def line_row(line: Obj, invoice_id: str) -> Obj:
    pricing = line.get("pricing")
    price = pricing.get("price_details") if isinstance(pricing, dict) else None
    if isinstance(price, dict):
        price_id, product_id = ref(price.get("price")), ref(price.get("product"))
    else:
        price_id = product_id = None
    if price_id is None and isinstance(line.get("price"), dict):  # older shape
        price_id = _str(line["price"].get("id"))
        product_id = ref(line["price"].get("product"))
    parent = line.get("parent")
    parent = parent if isinstance(parent, dict) else {}
    sub_details = parent.get("subscription_item_details")
    sub_details = sub_details if isinstance(sub_details, dict) else {}
    item_details = parent.get("invoice_item_details")
    item_details = item_details if isinstance(item_details, dict) else {}
    subscription_id = (ref(sub_details.get("subscription")) or ref(item_details.get("subscription"))
                       or ref(line.get("subscription")))
    proration = sub_details.get("proration")
    if proration is None:
        proration = item_details.get("proration")
    if proration is None:
        proration = line.get("proration")
    period = _dict(line.get("period"))
    return {
        "id": line["id"],
        "invoice_id": invoice_id,
        "subscription_id": subscription_id,
        "subscription_item_id": ref(sub_details.get("subscription_item")) or ref(line.get("subscription_item")),
        "price_id": price_id,
        "product_id": product_id,
        "description": _str(line.get("description")),
        "quantity": _int(line.get("quantity")),
        "amount": _int(line.get("amount"), 0),
        "currency": _str(line.get("currency")),
        "period_start": _ts(period.get("start")),
        "period_end": _ts(period.get("end")),
        "proration": bool(proration or False),
    }


def invoice_rows(obj: Obj, version_ts: int, *, synced_at: datetime | None = None) -> tuple[Obj, list[Obj]]:
    """An invoice row and its line rows (the lines list must be complete: see complete_nested)."""
    inv_id = obj["id"]
    transitions = _dict(obj.get("status_transitions"))
    failure_code, decline_code, failure_message, failed_pm = _failure(obj)
    row = {
        "id": inv_id,
        "customer_id": ref(obj.get("customer")) or "",
        "subscription_id": invoice_subscription_id(obj),
        "number": _str(obj.get("number")),
        "status": _str(obj.get("status")),
        "currency": _str(obj.get("currency")) or "usd",
        "amount_due": _int(obj.get("amount_due"), 0),
        "amount_paid": _int(obj.get("amount_paid"), 0),
        "amount_remaining": _int(obj.get("amount_remaining"), 0),
        "total": _int(obj.get("total"), 0),
        "attempt_count": _int(obj.get("attempt_count"), 0),
        "attempted": bool(obj.get("attempted") or False),
        "next_payment_attempt": _ts(obj.get("next_payment_attempt")),
        "created": _ts(obj.get("created")) or from_ts(0),
        "due_date": _ts(obj.get("due_date")),
        "paid_at": _ts(transitions.get("paid_at")),
        "voided_at": _ts(transitions.get("voided_at")),
        "marked_uncollectible_at": _ts(transitions.get("marked_uncollectible_at")),
        "hosted_invoice_url": _str(obj.get("hosted_invoice_url")),
        "customer_email": _str(obj.get("customer_email")),
        "collection_method": _str(obj.get("collection_method")),
        "billing_reason": _str(obj.get("billing_reason")),
        "failure_code": failure_code,
        "decline_code": decline_code,
        "failure_message": failure_message,
        "failed_payment_method_id": failed_pm,
        **_bookkeeping(obj, version_ts, synced_at),
    }
    lines = [line_row(ln, inv_id) for ln in _list_data(obj.get("lines")) if ln.get("id")]
    return row, lines


# --- payment methods --------------------------------------------------------------------------


def payment_method_row(obj: Obj, version_ts: int, *, synced_at: datetime | None = None) -> Obj:
    """A payment method row; `customer_id` None means detached."""
    card = _dict(obj.get("card"))
    return {
        "id": obj["id"],
        "customer_id": ref(obj.get("customer")),
        "type": _str(obj.get("type")) or "card",
        "card_brand": _str(card.get("brand")),
        "card_last4": _str(card.get("last4")),
        "card_exp_month": _int(card.get("exp_month")),
        "card_exp_year": _int(card.get("exp_year")),
        "card_fingerprint": _str(card.get("fingerprint")),
        "created": _ts(obj.get("created")),
        **_bookkeeping(obj, version_ts, synced_at),
    }
