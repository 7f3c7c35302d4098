"""One customer as Stripe has it right now (`Facts`, read before a plan: not the cache, we are about to write),
and which of two customers should survive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lib import gateway as gw
from lib.config import Settings, get_settings
from lib.merge.vocabulary import LIVE_STATUSES, RECREATE_STATUSES


@dataclass
class Facts:
    """One customer as Stripe has it right now: what the plan and the survivor choice need."""

    id: str
    name: str | None
    email: str | None
    created: int
    currency: str | None
    balance: int
    metadata: dict[str, str]
    deleted: bool
    subscriptions: list[dict[str, Any]]  # live ones (any live status), as Stripe returns them
    open_invoices: list[dict[str, Any]]  # open with something still due
    cash_balance: dict[str, int]
    tax_ids: list[dict[str, str]]  # {type, value}
    usable_payment_method: str | None  # id of a default card that is not expired, else None
    paid_total: int
    product_names: dict[str, str] = field(default_factory=dict)  # product id -> name, for the plan's titles


def _card_usable(pm: Any, now: float) -> bool:
    if not isinstance(pm, dict):
        return False
    card = pm.get("card") or {}
    if pm.get("type") != "card" or not card:
        return True  # a non-card method (SEPA, ACH…) has no expiry to check
    year, month = int(card.get("exp_year") or 0), int(card.get("exp_month") or 0)
    t = time.gmtime(now)
    return (year, month) >= (t.tm_year, t.tm_mon)


def read_facts(customer_id: str, *, settings: Settings | None = None) -> Facts:
    """Read one customer's merge-relevant state from Stripe (not the cache: we are about to write)."""
    s = settings or get_settings()
    cust = gw.customers.retrieve(customer_id, settings=s)
    if cust.get("deleted"):
        return Facts(customer_id, None, None, 0, None, 0, {}, True, [], [], {}, [], None, 0)
    subs = [x for x in gw.subscriptions.for_customer(customer_id, status="all", expand=["data.discounts"], settings=s)
            if x.get("status") in LIVE_STATUSES]
    for sub in subs:
        gw.complete_nested(sub, "items", "/v1/subscription_items", {"subscription": sub["id"]}, settings=s)
    invoices = [i for i in gw.invoices.for_customer(customer_id, status="open", settings=s)
                if int(i.get("amount_remaining") or 0) > 0]
    paid = gw.invoices.for_customer(customer_id, status="paid", limit=300, settings=s)
    tax_ids = [{"type": t["type"], "value": t["value"]}
               for t in gw.tax_ids.for_customer(customer_id, settings=s)]
    pm = (cust.get("invoice_settings") or {}).get("default_payment_method")
    usable = pm["id"] if isinstance(pm, dict) and _card_usable(pm, time.time()) else None
    if usable is None and cust.get("default_source"):
        usable = cust["default_source"] if isinstance(cust["default_source"], str) else cust["default_source"]["id"]
    return Facts(
        id=cust["id"], name=cust.get("name"), email=cust.get("email"), created=int(cust.get("created") or 0),
        currency=cust.get("currency"), balance=int(cust.get("balance") or 0),
        metadata=dict(cust.get("metadata") or {}), deleted=False, subscriptions=subs, open_invoices=invoices,
        cash_balance=gw.customers.cash_balance(customer_id, settings=s), tax_ids=tax_ids,
        usable_payment_method=usable, paid_total=sum(int(i.get("amount_paid") or 0) for i in paid),
        product_names=_product_names(subs, s),
    )


def _product_names(subs: list[dict[str, Any]], settings: Settings) -> dict[str, str]:
    """Names of the products the subscriptions' prices belong to, read with each price as it is now (one read
    per price): an item's embedded price can be older than an archiving, so `active` is refreshed too."""
    prices = {it["price"]["id"]: it["price"] for sub in subs for it in (sub.get("items") or {}).get("data", [])
              if isinstance(it.get("price"), dict) and it["price"].get("id")}
    names: dict[str, str] = {}
    for price_id in sorted(prices):
        fresh = gw.prices.retrieve_with_product(price_id, settings=settings)
        product = fresh.get("product")
        if isinstance(product, dict) and product.get("name"):
            names[str(product["id"])] = str(product["name"])
        if fresh.get("active") is False:
            for sub in subs:
                for it in (sub.get("items") or {}).get("data", []):
                    if (it.get("price") or {}).get("id") == price_id:
                        it["price"]["active"] = False
    return names


def suggest_survivor(facts: list[Facts], *, external_key: str = "") -> tuple[str, str]:
    """Which customer should survive, and why: the one our own system knows, else active subscriptions,
    else the most paid, else the oldest."""
    alive = [f for f in facts if not f.deleted]
    if external_key:
        known = [f for f in alive if f.metadata.get(external_key)]
        if len(known) == 1:
            return known[0].id, f"it has metadata {external_key!r} (your own system knows this one)"
    with_subs = [f for f in alive if any(s["status"] in RECREATE_STATUSES for s in f.subscriptions)]
    if len(with_subs) == 1:
        return with_subs[0].id, "it is the only one with active subscriptions"
    pool = with_subs or alive
    top = max(f.paid_total for f in pool)
    if top > 0 and sum(1 for f in pool if f.paid_total == top) == 1:
        best = next(f for f in pool if f.paid_total == top)
        return best.id, "it has paid the most"
    oldest = min(pool, key=lambda f: (f.created, f.id))
    return oldest.id, "it is the oldest"
