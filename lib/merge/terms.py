"""A subscription's terms as a merge carries them over: next charge, discounts in force, the create parameters
of its copy on the survivor, and the words a plan uses for it (pure: no I/O)."""

from __future__ import annotations

import time
from typing import Any

from lib.merge.vocabulary import MERGE_KEYS


def _product_id(item: dict[str, Any]) -> str | None:
    product = (item.get("price") or {}).get("product")
    return product.get("id") if isinstance(product, dict) else product


def item_period_end(sub: dict[str, Any]) -> int | None:
    """The latest current_period_end of the subscription's items (where Stripe keeps periods now)."""
    ends = [int(i["current_period_end"]) for i in (sub.get("items") or {}).get("data", [])
            if i.get("current_period_end")]
    return max(ends) if ends else None


def next_charge_at(sub: dict[str, Any]) -> int | None:
    """When the subscription next bills: the trial end while trialing, else its current period end."""
    if sub.get("status") == "trialing" and sub.get("trial_end"):
        return int(sub["trial_end"])
    return item_period_end(sub)


def in_force(discount: dict[str, Any], at: int | None) -> bool:
    """A discount still applies to the invoice at `at` (a discount ending before it no longer does)."""
    end = discount.get("end")
    return end is None or at is None or int(end) > at


def _discount_params(discounts: list[Any], at: int | None = None) -> list[dict[str, str]]:
    """Discount objects still in force at the next charge, as create params: the same coupon or promotion code."""
    out: list[dict[str, str]] = []
    for d in discounts or []:
        if not isinstance(d, dict) or not in_force(d, at):
            continue
        if d.get("promotion_code"):
            pc = d["promotion_code"]
            out.append({"promotion_code": pc if isinstance(pc, str) else pc["id"]})
            continue
        coupon = (d.get("source") or {}).get("coupon") or d.get("coupon")
        if coupon:
            out.append({"coupon": coupon if isinstance(coupon, str) else coupon["id"]})
    return out


def currencies(sub: dict[str, Any]) -> set[str]:
    """Every currency the subscription bills in (its own and its prices'), lower-case."""
    cur = {((i.get("price") or {}).get("currency") or "").lower() for i in (sub.get("items") or {}).get("data", [])}
    if sub.get("currency"):
        cur.add(sub["currency"].lower())
    return {c for c in cur if c}


def recreate_params(sub: dict[str, Any]) -> dict[str, Any]:
    """What the new subscription on the survivor is made of (customer, job and keys are added at run).

    Everything but the owner stays: items, prices, quantities, discounts still in force at the next charge,
    the trial (same trial_end, so the same first charge), the scheduled end (cancel_at_period_end or
    cancel_at), collection_method and days_until_due, trial settings, description and metadata. Parameter
    names are those of `subscriptions.create` (stripe 16.1.0). The first period runs free (proration none) to
    the old one's next charge, so the survivor is next charged when and what the duplicate would have been."""
    at = next_charge_at(sub)
    items = []
    for it in (sub.get("items") or {}).get("data", []):
        item: dict[str, Any] = {"price": it["price"]["id"], "metadata": dict(it.get("metadata") or {})}
        if it.get("quantity") is not None:
            item["quantity"] = int(it["quantity"])
        item_discounts = _discount_params(it.get("discounts") or [], at)
        if item_discounts:
            item["discounts"] = item_discounts
        items.append(item)
    params: dict[str, Any] = {
        "items": items,
        "proration_behavior": "none",
        "collection_method": sub.get("collection_method") or "charge_automatically",
        "metadata": {k: v for k, v in (sub.get("metadata") or {}).items() if k not in MERGE_KEYS},
    }
    if sub.get("status") == "trialing" and sub.get("trial_end"):
        params["trial_end"] = int(sub["trial_end"])  # billing starts at the trial end, as on the old one
        behavior = ((sub.get("trial_settings") or {}).get("end_behavior") or {}).get("missing_payment_method")
        if behavior:
            params["trial_settings"] = {"end_behavior": {"missing_payment_method": behavior}}
    else:
        params["billing_cycle_anchor"] = item_period_end(sub)
    if sub.get("cancel_at_period_end"):
        params["cancel_at_period_end"] = True
    elif sub.get("cancel_at"):
        params["cancel_at"] = int(sub["cancel_at"])
    if params["collection_method"] == "send_invoice" and sub.get("days_until_due") is not None:
        params["days_until_due"] = int(sub["days_until_due"])
    discounts = _discount_params(sub.get("discounts") or [], at)
    if discounts:
        params["discounts"] = discounts
    if sub.get("description"):
        params["description"] = sub["description"]
    return params


def pause_params(sub: dict[str, Any]) -> dict[str, Any] | None:
    """pause_collection as an update param (subscriptions.create has none: it is set right after create)."""
    pause = sub.get("pause_collection")
    if not isinstance(pause, dict) or not pause.get("behavior"):
        return None
    out: dict[str, Any] = {"behavior": pause["behavior"]}
    if pause.get("resumes_at"):
        out["resumes_at"] = int(pause["resumes_at"])
    return out


def _item_label(item: dict[str, Any], names: dict[str, str]) -> str:
    """'Pro × 5' (the product's name; the price id only when the name is unknown)."""
    pid = _product_id(item)
    name = names.get(pid or "") or pid or (item.get("price") or {}).get("id") or "?"
    qty = item.get("quantity", 1)
    return f"{name} × {qty}" if qty not in (None, 1) else str(name)


def describe_items(sub: dict[str, Any], names: dict[str, str]) -> str:
    """The subscription's items by product name, for plan titles and the audit log."""
    return ", ".join(_item_label(i, names) for i in (sub.get("items") or {}).get("data", [])) or "no items"


def day(ts: int | None) -> str:
    """A Stripe timestamp as its UTC day (`2026-12-03`), or "?" when there is none."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts else "?"


def billing_note(sub: dict[str, Any]) -> str:
    """How the copy bills: the same status, next charge and scheduled end as the old one."""
    at = next_charge_at(sub)
    if sub.get("status") == "trialing":
        note = f"trialing until {day(at)} as now, first charge then"
    else:
        note = f"next charge on {day(at)} as now"
    if sub.get("cancel_at_period_end"):
        note += ", still ending at period end"
    elif sub.get("cancel_at"):
        note += f", still ending on {day(int(sub['cancel_at']))}"
    if pause_params(sub):
        note += f", collection still paused ({sub['pause_collection']['behavior']})"
    return note
