"""Subscription schedules, only as made `from_subscription`: one phase that mirrors the subscription's current
period and releases it at that period's end. Enough for "this subscription is managed by a schedule" to be
seen (`subscription.schedule`), released and canceled; phases cannot be edited (see sandbox/README.md).
"""

from __future__ import annotations

from sandbox.core import (
    Obj,
    Store,
    as_bool,
    created_filter,
    diff,
    invalid,
    list_page,
    metadata_update,
    new_id,
    snapshot,
)
from sandbox.lifecycle import cancel_subscription
from sandbox.routes import route

OPEN = ("not_started", "active")


def _phase(store: Store, sub: Obj, start: int, end: int) -> Obj:
    coupons = []
    for did in sub.get("discounts") or []:
        d = store.objs.get(did)
        if d is not None:
            coupons.append({"coupon": d["source"]["coupon"], "discount": did, "promotion_code": None})
    return {"add_invoice_items": [], "application_fee_percent": None, "automatic_tax": None,
            "billing_cycle_anchor": None, "billing_thresholds": None,
            "collection_method": sub["collection_method"], "currency": sub["currency"],
            "default_payment_method": sub["default_payment_method"], "default_tax_rates": [],
            "description": sub["description"], "discounts": coupons, "end_date": end, "invoice_settings": None,
            "items": [{"billing_thresholds": None, "discounts": [], "metadata": dict(i["metadata"]),
                       "plan": i["price"]["id"], "price": i["price"]["id"], "quantity": i["quantity"],
                       "tax_rates": []} for i in sub["items"]["data"]],
            "metadata": dict(sub["metadata"]), "on_behalf_of": None, "proration_behavior": "create_prorations",
            "start_date": start, "transfer_data": None, "trial": sub["status"] == "trialing",
            "trial_end": sub["trial_end"] if sub["status"] == "trialing" else None}


@route("POST", "/v1/subscription_schedules", {"from_subscription", "metadata", "customer", "start_date"})
def schedule_create(store: Store, params: Obj) -> Obj:
    sid = params.get("from_subscription")
    if not sid:
        raise invalid("The sandbox creates subscription schedules only with from_subscription.",
                      param="from_subscription", code="parameter_missing")
    for other in ("customer", "start_date"):
        if other in params:
            raise invalid(f"You cannot set {other} when from_subscription is set.", param=other)
    sub = store.get(sid, "subscription", param="from_subscription")
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid(f"You cannot create a subscription schedule from the canceled subscription {sid}.",
                      param="from_subscription")
    if sub["schedule"]:
        raise invalid(f"You cannot migrate a subscription that is already attached to a schedule: "
                      f"{sub['schedule']}.", param="from_subscription")
    now = store.now()
    start, end = sub["_period"]
    sched = {"id": new_id("sub_sched"), "object": "subscription_schedule", "application": None,
             "billing_mode": {"flexible": None, "type": "classic", "updated_at": None}, "canceled_at": None,
             "completed_at": None, "created": now, "current_phase": {"end_date": end, "start_date": start},
             "customer": sub["customer"], "customer_account": None,
             "default_settings": {
                 "application_fee_percent": None, "automatic_tax": None, "billing_cycle_anchor": "automatic",
                 "billing_thresholds": None, "collection_method": sub["collection_method"],
                 "default_payment_method": None, "description": None,
                 "invoice_settings": {"account_tax_ids": None, "custom_fields": None,
                                      "days_until_due": sub["days_until_due"], "description": None,
                                      "footer": None, "issuer": {"account": None, "type": "self"}},
                 "on_behalf_of": None, "transfer_data": None},
             "end_behavior": "release", "livemode": False, "metadata": metadata_update({}, params.get("metadata")),
             "pause_schedules": [], "phases": [_phase(store, sub, start, end)], "released_at": None,
             "released_subscription": None, "status": "active", "subscription": sid, "test_clock": None}
    store.put(sched)
    store.child("subscription_schedule", sub["customer"], sched["id"])
    sub["schedule"] = sched["id"]
    store.emit("subscription_schedule.created", sched)
    store.emit("customer.subscription.updated", sub, {"schedule": None})
    return sched


@route("GET", "/v1/subscription_schedules/{ssid}", set())
def schedule_retrieve(store: Store, params: Obj, ssid: str) -> Obj:
    return store.get(ssid, "subscription_schedule", "subscription schedule")


@route("GET", "/v1/subscription_schedules", {"customer", "scheduled", "created", "limit", "starting_after",
                                            "ending_before"})
def schedule_list(store: Store, params: Obj) -> Obj:
    scheduled = as_bool(params, "scheduled")
    match = (lambda s: (s["status"] == "not_started") == scheduled) if scheduled is not None else None
    url = "/v1/subscription_schedules"
    if params.get("customer"):
        return list_page(store, store.children("subscription_schedule", params["customer"]), params, url, match=match,
                         created=created_filter(params))
    idx = store.index.get("subscription_schedule")
    if idx is None:
        return {"object": "list", "data": [], "has_more": False, "url": url}
    return list_page(store, idx.ids, params, url, pos=idx.pos, match=match, created=created_filter(params))


def _open(store: Store, ssid: str, verb: str) -> Obj:
    sched = store.get(ssid, "subscription_schedule", "subscription schedule")
    if sched["status"] not in OPEN:
        raise invalid(f"You cannot {verb} a subscription schedule that is currently in the `{sched['status']}` "
                      "status. It must be in `not_started` or `active`.")
    return sched


def release(store: Store, sched: Obj) -> None:
    """The subscription goes on without the schedule (kept as it is now)."""
    before = snapshot(sched, ["status", "released_at", "released_subscription", "subscription", "current_phase"])
    sid = sched["subscription"]
    sched.update(status="released", released_at=store.now(), released_subscription=sid, subscription=None,
                 current_phase=None)
    store.emit("subscription_schedule.released", sched, diff(sched, before))
    sub = store.objs.get(sid or "")
    if sub is not None and sub["schedule"] == sched["id"]:
        sub["schedule"] = None
        store.emit("customer.subscription.updated", sub, {"schedule": sched["id"]})


@route("POST", "/v1/subscription_schedules/{ssid}/release", {"preserve_cancel_date"})
def schedule_release(store: Store, params: Obj, ssid: str) -> Obj:
    sched = _open(store, ssid, "release")
    release(store, sched)
    return sched


@route("POST", "/v1/subscription_schedules/{ssid}/cancel", {"invoice_now", "prorate"})
def schedule_cancel(store: Store, params: Obj, ssid: str) -> Obj:
    """Canceling a schedule cancels its subscription at once, as on Stripe."""
    sched = _open(store, ssid, "cancel")
    before = snapshot(sched, ["status", "canceled_at", "current_phase"])
    sched.update(status="canceled", canceled_at=store.now(), current_phase=None)
    store.emit("subscription_schedule.canceled", sched, diff(sched, before))
    sub = store.objs.get(sched["subscription"] or "")
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        cancel_subscription(store, sub, reason="cancellation_requested")
    return sched


def phase_ended(store: Store, sub: Obj, end: int) -> None:
    """A scheduled subscription reached a period end: when the schedule's one phase ends there, the schedule
    releases the subscription (end_behavior=release), which then renews on its own."""
    sched = store.objs.get(sub["schedule"])
    if sched is not None and sched["status"] in OPEN and sched["phases"][-1]["end_date"] <= end:
        release(store, sched)
