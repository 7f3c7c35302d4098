"""Coupons and the discounts they make on subscriptions, applied to the subscription's invoices.

Kept simple on purpose (differences are listed in sandbox/README.md): subscription-level discounts from
coupons only; percent_off or amount_off taken off the invoice subtotal; `once` covers the subscription's first
invoice, `repeating` the invoices whose period starts before the discount's end, `forever` every invoice.
"""

from __future__ import annotations

from typing import Any

from sandbox.core import Obj, Store, as_int, invalid, list_page, metadata_update, missing, new_id
from sandbox.lifecycle import shift
from sandbox.resources import cur
from sandbox.routes import route

COUPON_CREATE = {"id", "percent_off", "amount_off", "currency", "duration", "duration_in_months", "name",
                 "metadata"}


@route("POST", "/v1/coupons", COUPON_CREATE)
def coupon_create(store: Store, params: Obj) -> Obj:
    percent_raw, amount = params.get("percent_off"), as_int(params, "amount_off", minimum=1)
    if (percent_raw in (None, "")) == (amount is None):
        raise invalid("You must pass exactly one of percent_off or amount_off.", param="percent_off")
    percent = None
    if percent_raw not in (None, ""):
        try:
            percent = float(percent_raw)
        except (TypeError, ValueError):
            raise invalid(f"Invalid decimal: {percent_raw}", param="percent_off") from None
        if not 0 < percent <= 100:
            raise invalid("percent_off must be greater than 0 and at most 100.", param="percent_off")
    currency = None
    if amount is not None:
        if "currency" not in params:
            raise invalid("You must pass currency when passing amount_off.", param="currency",
                          code="parameter_missing")
        currency = cur(params["currency"])
    duration = params.get("duration", "once")
    if duration not in ("once", "repeating", "forever"):
        raise invalid("Invalid duration: must be one of forever, once, or repeating", param="duration")
    months = as_int(params, "duration_in_months", minimum=1)
    if duration == "repeating" and months is None:
        raise invalid("duration_in_months is required when duration is repeating.", param="duration_in_months",
                      code="parameter_missing")
    if duration != "repeating" and months is not None:
        raise invalid("duration_in_months can only be set when duration is repeating.",
                      param="duration_in_months")
    cid = params.get("id") or new_id("co")[3:11]
    if cid in store.objs:
        raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
    coupon = {"id": cid, "object": "coupon", "amount_off": amount, "applies_to": None, "created": store.now(),
              "currency": currency, "currency_options": None, "duration": duration, "duration_in_months": months,
              "livemode": False, "max_redemptions": None, "metadata": metadata_update({}, params.get("metadata")),
              "name": params.get("name") or None, "percent_off": percent, "redeem_by": None, "times_redeemed": 0,
              "valid": True}
    store.put(coupon)
    store.emit("coupon.created", coupon)
    return coupon


@route("GET", "/v1/coupons/{cid}", set())
def coupon_retrieve(store: Store, params: Obj, cid: str) -> Obj:
    return store.get(cid, "coupon")


@route("GET", "/v1/coupons", {"limit", "starting_after", "ending_before", "created"})
def coupon_list(store: Store, params: Obj) -> Obj:
    idx = store.index.get("coupon")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": "/v1/coupons"}
    return list_page(store, idx.ids, params, "/v1/coupons", pos=idx.pos)


@route("DELETE", "/v1/coupons/{cid}", set())
def coupon_delete(store: Store, params: Obj, cid: str) -> Obj:
    """Deleting a coupon stops new redemptions; discounts already made keep applying (as on Stripe)."""
    coupon = store.get(cid, "coupon")
    coupon["_deleted"] = True
    store.emit("coupon.deleted", coupon)
    return {"id": cid, "object": "coupon", "deleted": True}


def make_discounts(store: Store, raw: Any, *, customer: str, subscription: str, currency: str, start: int) -> list[str]:
    """Discount objects for `discounts=[{"coupon": …}]` on a new subscription; returns their ids (validated
    first, then stored, so a bad entry leaves nothing behind)."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise invalid("Invalid array: discounts must be an array.", param="discounts")
    coupons: list[Obj] = []
    for i, entry in enumerate(raw):
        param = f"discounts[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"coupon", "discount", "promotion_code"}:
            raise invalid(f"Invalid hash: {param}.", param=param)
        if entry.get("promotion_code") or entry.get("discount"):
            raise invalid("The sandbox applies discounts from coupons only.", param=param)
        if not entry.get("coupon"):
            raise invalid(f"Missing required param: {param}[coupon].", param=f"{param}[coupon]",
                          code="parameter_missing")
        coupon = store.objs.get(entry["coupon"])
        if coupon is None or coupon.get("object") != "coupon" or coupon.get("_deleted"):
            raise missing("coupon", entry["coupon"], f"{param}[coupon]")
        if coupon["currency"] and coupon["currency"] != currency:
            raise invalid(f"Coupon {coupon['id']} is in {coupon['currency']} but the subscription bills in "
                          f"{currency}.", param=f"{param}[coupon]")
        if any(c["id"] == coupon["id"] for c in coupons):
            raise invalid(f"Coupon {coupon['id']} is given twice.", param=f"{param}[coupon]")
        coupons.append(coupon)
    ids = []
    for coupon in coupons:
        end = None
        if coupon["duration"] == "repeating":
            end = shift(start, "month", coupon["duration_in_months"])
        d = {"id": new_id("di"), "object": "discount", "checkout_session": None, "customer": customer,
             "customer_account": None, "end": end, "invoice": None, "invoice_item": None, "promotion_code": None,
             "source": {"coupon": coupon["id"], "type": "coupon"}, "start": start, "subscription": subscription,
             "subscription_item": None, "_once": coupon["duration"] == "once"}
        store.put(d)
        coupon["times_redeemed"] += 1
        ids.append(d["id"])
    return ids


def apply(store: Store, sub: Obj, period_start: int, amounts: list[int]) -> list[tuple[str, list[int]]]:
    """Which of the subscription's discounts cover an invoice for the period starting at `period_start`, and
    how much each takes off each line (`amounts`: the line amounts before discounts). Ended discounts are
    dropped from the subscription (they no longer show on it, as on Stripe)."""
    out: list[tuple[str, list[int]]] = []
    if not sub.get("discounts"):
        return out
    keep: list[str] = []
    remaining = list(amounts)
    for did in sub["discounts"]:
        d = store.objs.get(did)
        if d is None or (d["end"] is not None and period_start >= d["end"]) or d.get("_used"):
            continue
        keep.append(did)
        coupon = store.objs[d["source"]["coupon"]]
        if coupon["percent_off"] is not None:
            off = [min(r, round(a * coupon["percent_off"] / 100)) for a, r in zip(amounts, remaining, strict=True)]
        else:
            left, off = coupon["amount_off"], []
            for r in remaining:
                take = min(r, left)
                off.append(take)
                left -= take
        remaining = [r - o for r, o in zip(remaining, off, strict=True)]
        out.append((did, off))
        if d["_once"]:
            d["_used"] = True  # spent by this invoice; it leaves the subscription at the next one
    if keep != sub["discounts"]:
        sub["discounts"] = keep
    return out
