"""What billing, customers, discounts, schedules and the portal all do to subscriptions: move a date by whole
billing intervals (`shift`) and cancel a subscription (`cancel_subscription`).

Below sandbox.billing, sandbox.resources, sandbox.discounts and sandbox.schedules, so that none of them has
to import another in a circle.
"""

from __future__ import annotations

import calendar
import datetime as dt

from sandbox.core import Obj, Store, diff, snapshot


def shift(anchor: int, interval: str, count: int) -> int:
    """`anchor` moved by `count` intervals, month ends clamped like Stripe (Jan 31 -> Feb 28 -> Mar 31)."""
    if interval == "day":
        return anchor + 86400 * count
    if interval == "week":
        return anchor + 604800 * count
    months = count * (12 if interval == "year" else 1)
    d = dt.datetime.fromtimestamp(anchor, dt.UTC)
    total = d.year * 12 + d.month - 1 + months
    year, month = divmod(total, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return int(d.replace(year=year, month=month + 1, day=day).timestamp())


def cancel_subscription(store: Store, sub: Obj, *, reason: str, at: int | None = None,
                        comment: str | None = None, feedback: str | None = None) -> None:
    now = at or store.now()
    before = snapshot(sub, ["status", "canceled_at", "ended_at", "cancellation_details"])
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    for iid in store.children("invoice", sub["id"]):
        inv = store.objs[iid]
        if inv["status"] == "open" and inv["next_payment_attempt"] is not None:
            inv["next_payment_attempt"] = None
            inv["auto_advance"] = False
    store.emit("customer.subscription.deleted", sub, diff(sub, before))
