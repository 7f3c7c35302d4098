"""Merge two Stripe customers safely: a plan first, then a resumable saga of idempotent steps.

Stripe has no merge: a subscription cannot change customer, payment methods cannot move, invoices stay. A
merge changes nothing but the owner: each live subscription is recreated on the survivor with the same
items, quantities, trial (same trial_end), discounts in force at its next charge, scheduled end, paused
collection, invoicing terms and metadata, its first period free up to the old one's next charge; then the
old one is canceled at once without refund or proration (its period is paid; the copy carries on), so MRR
per currency and each next charge (date and amount) stay as they were. What Stripe cannot carry over is a
blocker or a warning in the plan.
The plan reads the *current* state from Stripe (it is about to write), lists every step and every blocker;
a blocked plan writes nothing. Execution stores each step in `merge_steps`; each write carries an
idempotency key derived from job + step, and each step first looks in Stripe for its own earlier effect
(metadata `merge_job`), so a job killed anywhere and resumed finishes exactly once. One runner at a time: a
live runner keeps a heartbeat (the job's updated_at), another takes over only once it is stale, each step is
claimed by compare-and-set and audited in one row.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from lib import audit
from lib import stripe_gateway as gw
from lib.auth import User, can
from lib.config import Settings, get_settings
from lib.ids import IdKind, id_problem
from lib.models import AuditLog, MergeJob, MergeStep, utcnow
from lib.money import format_money
from lib.stripe_gateway import GatewayError
from lib.sync import refresh_customer

RECREATE_STATUSES = ("active", "trialing")
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")
MERGE_KEYS = ("merged_from", "merged_into", "merge_job")  # never copied between customers
HEARTBEAT_SECONDS = 10  # a live runner touches its job's updated_at this often (its heartbeat)
STALE_RUNNING_SECONDS = 60  # a 'running' job whose heartbeat is this old is taken to have crashed
UNFINISHED = ("planned", "running", "stopped", "failed")


class MergeError(Exception):
    """A merge cannot be planned or run; the message says why and what to do."""


class MergeCrash(BaseException):  # noqa: N818 - a simulated kill, not an error to handle
    """Raised by a test's stop hook to simulate the process dying between two instructions."""


def _require_admin(user: User, *, session: Session, customer_id: str | None = None,
                   object_id: str | None = None, correlation_id: str | None = None) -> None:
    """Every merge action is for admins only: a refusal is recorded in the audit log and raised."""
    if can(user, "merge"):
        return
    message = f"Your role ({user.role_label}) may not merge customers: only admins can."
    row = audit.start(session=session, actor=user.email, role=user.role_label, action="merge",
                      customer_id=customer_id, object_id=object_id, correlation_id=correlation_id)
    audit.finish(row, session=session, result="refused", error=message)
    raise MergeError(message)


# --- the plan -----------------------------------------------------------------------------------


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


@dataclass
class PlanStep:
    kind: str  # recreate_subscription | cancel_old_subscription | move_balance | copy_tax_id |
    #            copy_metadata | mark_duplicate
    title: str
    params: dict[str, Any]


@dataclass
class Plan:
    survivor_id: str
    duplicate_id: str
    suggested_survivor_id: str
    survivor_reason: str
    steps: list[PlanStep]
    blockers: list[str]
    warnings: list[dict[str, Any]]  # {code, message, needs_ack}
    survivor: Facts
    duplicate: Facts

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def needs_ack(self) -> list[str]:
        return [w["code"] for w in self.warnings if w.get("needs_ack")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            survivor_id=data["survivor_id"], duplicate_id=data["duplicate_id"],
            suggested_survivor_id=data["suggested_survivor_id"], survivor_reason=data["survivor_reason"],
            steps=[PlanStep(**s) for s in data["steps"]], blockers=list(data["blockers"]),
            warnings=list(data["warnings"]), survivor=Facts(**data["survivor"]),
            duplicate=Facts(**data["duplicate"]),
        )


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
    cust = gw.merge_retrieve_customer(customer_id, settings=s)
    if cust.get("deleted"):
        return Facts(customer_id, None, None, 0, None, 0, {}, True, [], [], {}, [], None, 0)
    subs = [x for x in gw.merge_list("/v1/subscriptions", {"customer": customer_id, "status": "all",
                                                          "expand": ["data.discounts"]}, settings=s)
            if x.get("status") in LIVE_STATUSES]
    for sub in subs:
        gw.complete_nested(sub, "items", "/v1/subscription_items", {"subscription": sub["id"]}, settings=s)
    invoices = [i for i in gw.merge_list("/v1/invoices", {"customer": customer_id, "status": "open"}, settings=s)
                if int(i.get("amount_remaining") or 0) > 0]
    paid = gw.merge_list("/v1/invoices", {"customer": customer_id, "status": "paid"}, limit=300, settings=s)
    tax_ids = [{"type": t["type"], "value": t["value"]}
               for t in gw.merge_list(f"/v1/customers/{customer_id}/tax_ids", settings=s)]
    pm = (cust.get("invoice_settings") or {}).get("default_payment_method")
    usable = pm["id"] if _card_usable(pm, time.time()) else None
    if usable is None and cust.get("default_source"):
        usable = cust["default_source"] if isinstance(cust["default_source"], str) else cust["default_source"]["id"]
    return Facts(
        id=cust["id"], name=cust.get("name"), email=cust.get("email"), created=int(cust.get("created") or 0),
        currency=cust.get("currency"), balance=int(cust.get("balance") or 0),
        metadata=dict(cust.get("metadata") or {}), deleted=False, subscriptions=subs, open_invoices=invoices,
        cash_balance=gw.merge_customer_cash_balance(customer_id, settings=s), tax_ids=tax_ids,
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
        fresh, _ = gw.retrieve(f"/v1/prices/{price_id}", {"expand": ["product"]}, settings=settings)
        product = fresh.get("product")
        if isinstance(product, dict) and product.get("name"):
            names[str(product["id"])] = str(product["name"])
        if fresh.get("active") is False:
            for sub in subs:
                for it in (sub.get("items") or {}).get("data", []):
                    if (it.get("price") or {}).get("id") == price_id:
                        it["price"]["active"] = False
    return names


def _product_id(item: dict[str, Any]) -> str | None:
    product = (item.get("price") or {}).get("product")
    return product.get("id") if isinstance(product, dict) else product


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


def _item_period_end(sub: dict[str, Any]) -> int | None:
    ends = [int(i["current_period_end"]) for i in (sub.get("items") or {}).get("data", [])
            if i.get("current_period_end")]
    return max(ends) if ends else None


def next_charge_at(sub: dict[str, Any]) -> int | None:
    """When the subscription next bills: the trial end while trialing, else its current period end."""
    if sub.get("status") == "trialing" and sub.get("trial_end"):
        return int(sub["trial_end"])
    return _item_period_end(sub)


def _in_force(discount: dict[str, Any], at: int | None) -> bool:
    """A discount still applies to the invoice at `at` (a discount ending before it no longer does)."""
    end = discount.get("end")
    return end is None or at is None or int(end) > at


def _discount_params(discounts: list[Any], at: int | None = None) -> list[dict[str, str]]:
    """Discount objects still in force at the next charge, as create params: the same coupon or promotion code."""
    out: list[dict[str, str]] = []
    for d in discounts or []:
        if not isinstance(d, dict) or not _in_force(d, at):
            continue
        if d.get("promotion_code"):
            pc = d["promotion_code"]
            out.append({"promotion_code": pc if isinstance(pc, str) else pc["id"]})
            continue
        coupon = (d.get("source") or {}).get("coupon") or d.get("coupon")
        if coupon:
            out.append({"coupon": coupon if isinstance(coupon, str) else coupon["id"]})
    return out


def _currencies(sub: dict[str, Any]) -> set[str]:
    cur = {((i.get("price") or {}).get("currency") or "").lower() for i in (sub.get("items") or {}).get("data", [])}
    if sub.get("currency"):
        cur.add(sub["currency"].lower())
    return {c for c in cur if c}


def _recreate_params(sub: dict[str, Any]) -> dict[str, Any]:
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
        params["billing_cycle_anchor"] = _item_period_end(sub)
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


def _pause_params(sub: dict[str, Any]) -> dict[str, Any] | None:
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


def _carry_over_problems(sub: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """What a new subscription cannot carry over: (blockers, warnings) for one subscription to recreate."""
    blockers: list[str] = []
    warnings: list[dict[str, Any]] = []
    sid = sub["id"]
    for it in (sub.get("items") or {}).get("data", []):
        price = it.get("price") or {}
        if price.get("active") is False:
            blockers.append(f"Subscription {sid} uses price {price.get('id')}, which is archived: a new subscription "
                            "cannot use it. Reactivate the price in Stripe (or move the subscription to an active "
                            "price) first.")
    at = next_charge_at(sub)
    if sub.get("status") == "trialing" and sub.get("trial_end") and int(sub["trial_end"]) <= int(time.time()):
        blockers.append(f"Subscription {sid}'s trial has ended but Stripe has not billed it yet: wait a few minutes "
                        "and plan again.")
    if sub.get("default_payment_method"):
        warnings.append({"code": "subscription_payment_method", "needs_ack": False, "message":
                         f"{sid} charges its own payment method, which cannot move: the new subscription charges "
                         "the surviving customer's default payment method."})
    ending = [d for d in sub.get("discounts") or [] if isinstance(d, dict) and not _in_force(d, at)]
    if ending:
        ends = ", ".join(_day(int(d["end"])) for d in ending)
        warnings.append({"code": "discount_ends", "needs_ack": True, "message":
                         f"{sid}'s discount ends ({ends}) before its next charge ({_day(at)}). A new discount "
                         "cannot be given that end date, so the copy has none: its charges are the same, but its "
                         "MRR is shown without the discount from now on instead of from its end."})
    repeating = [d for d in sub.get("discounts") or [] if isinstance(d, dict) and d.get("end") and _in_force(d, at)]
    if repeating:
        ends = ", ".join(time.strftime("%Y-%m-%d", time.gmtime(int(d["end"]))) for d in repeating)
        warnings.append({"code": "discount_restarts", "needs_ack": False, "message":
                         f"{sid}'s limited-duration discount (ending {ends}) starts its duration again on the new "
                         "subscription, so it ends later there."})
    return blockers, warnings


def _day(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts else "?"


def _billing_note(sub: dict[str, Any]) -> str:
    """How the copy bills: the same status, next charge and scheduled end as the old one."""
    at = next_charge_at(sub)
    if sub.get("status") == "trialing":
        note = f"trialing until {_day(at)} as now, first charge then"
    else:
        note = f"next charge on {_day(at)} as now"
    if sub.get("cancel_at_period_end"):
        note += ", still ending at period end"
    elif sub.get("cancel_at"):
        note += f", still ending on {_day(int(sub['cancel_at']))}"
    if _pause_params(sub):
        note += f", collection still paused ({sub['pause_collection']['behavior']})"
    return note


def build_plan(survivor: Facts, duplicate: Facts, *, suggested: tuple[str, str]) -> Plan:
    """Steps, blockers and warnings for merging `duplicate` into `survivor` (pure: no I/O)."""
    blockers: list[str] = []
    warnings: list[dict[str, Any]] = []
    sid, did = survivor.id, duplicate.id
    if sid == did:
        blockers.append("Survivor and duplicate are the same customer: choose two different customers.")
    for f in (survivor, duplicate):
        if f.deleted:
            blockers.append(f"Customer {f.id} is deleted in Stripe: nothing can be merged into or out of it.")
    if duplicate.metadata.get("merged_into"):
        blockers.append(f"{did} was already merged into {duplicate.metadata['merged_into']}.")
    if survivor.metadata.get("merged_into"):
        blockers.append(f"{sid} was itself merged into {survivor.metadata['merged_into']}: pick that one as survivor.")
    for inv in duplicate.open_invoices:
        blockers.append(
            f"Invoice {inv['id']} of {did} is open with {format_money(inv['amount_remaining'], inv.get('currency'))} "
            "still due: collect, void or mark it uncollectible first.")
    for cur, amount in duplicate.cash_balance.items():
        blockers.append(f"{did} holds a cash balance of {format_money(amount, cur)}: refund or apply it "
                        "to an invoice first — cash balances cannot be moved.")
    survivor_cur = {c for s in survivor.subscriptions for c in _currencies(s)}
    if survivor.currency:
        survivor_cur.add(survivor.currency.lower())
    for sub in duplicate.subscriptions:
        status = sub.get("status")
        if sub.get("schedule"):
            blockers.append(f"Subscription {sub['id']} is managed by schedule {sub['schedule']}: release or finish "
                            "the schedule first.")
        if status == "paused":
            blockers.append(f"Subscription {sub['id']} is paused: resume it (or cancel it) first.")
        if status in ("past_due", "unpaid"):
            blockers.append(f"Subscription {sub['id']} is {status.replace('_', '-')}: settle its unpaid invoice first.")
        if status == "incomplete":
            blockers.append(f"Subscription {sub['id']} is incomplete (first payment pending): "
                            "wait for it or cancel it.")
        other = _currencies(sub) - survivor_cur if survivor_cur else set()
        if other:
            blockers.append(
                f"Subscription {sub['id']} bills in {', '.join(sorted(c.upper() for c in other))} but {sid} bills in "
                f"{', '.join(sorted(c.upper() for c in survivor_cur))}: a customer has one currency.")
    if duplicate.balance and survivor.currency and duplicate.currency and survivor.currency != duplicate.currency:
        blockers.append(f"{did}'s balance is in {duplicate.currency.upper()} but {sid} uses "
                        f"{survivor.currency.upper()}: settle the balance first.")

    steps: list[PlanStep] = []
    recreate = [s for s in duplicate.subscriptions if s.get("status") in RECREATE_STATUSES]
    # A copy an earlier (abandoned) merge already made on the survivor is never made twice.
    copies = {(s.get("metadata") or {}).get("merged_from"): s["id"] for s in survivor.subscriptions
              if s.get("status") in RECREATE_STATUSES and (s.get("metadata") or {}).get("merged_from")}
    charges_auto = False
    for sub in recreate:
        params = _recreate_params(sub)
        what = describe_items(sub, duplicate.product_names)
        if sub["id"] in copies:
            warnings.append({"code": "already_recreated", "needs_ack": False, "message":
                             f"{sub['id']} ({what}) was already recreated on {sid} as {copies[sub['id']]} by an "
                             "earlier merge: only the old one is canceled."})
        else:
            sub_blockers, sub_warnings = _carry_over_problems(sub)
            blockers.extend(sub_blockers)
            warnings.extend(sub_warnings)
            charges_auto |= params["collection_method"] == "charge_automatically"
            steps.append(PlanStep("recreate_subscription",
                                  f"Recreate {sub['id']} ({what}) on {sid}: {_billing_note(sub)}",
                                  {"old_subscription": sub["id"], "create": params, "pause": _pause_params(sub),
                                   "expect": {"status": sub.get("status"), "next_charge": next_charge_at(sub)}}))
        steps.append(PlanStep("cancel_old_subscription",
                              f"Cancel {sub['id']} ({what}) on {did} now, without refund or proration "
                              f"(its copy on {sid} carries on)", {"subscription": sub["id"]}))
    if duplicate.balance:
        kind = "credit" if duplicate.balance < 0 else "amount owed"
        shown = format_money(abs(duplicate.balance), duplicate.currency or survivor.currency)
        steps.append(PlanStep("move_balance", f"Move {did}'s balance ({kind} {shown}) "
                              f"to {sid} with a pair of balance transactions",
                              {"amount": duplicate.balance, "currency": duplicate.currency or survivor.currency}))
    have = {(t["type"], t["value"]) for t in survivor.tax_ids}
    for t in duplicate.tax_ids:
        if (t["type"], t["value"]) not in have:
            steps.append(PlanStep("copy_tax_id", f"Add tax id {t['type']} {t['value']} to {sid}", dict(t)))
    missing = {k: v for k, v in duplicate.metadata.items() if k not in survivor.metadata and k not in MERGE_KEYS}
    if missing:
        steps.append(PlanStep("copy_metadata", f"Copy metadata keys {', '.join(sorted(missing))} to {sid}",
                              {"metadata": missing}))
    steps.append(PlanStep("mark_duplicate", f"Mark {did} with metadata merged_into={sid} (it is kept, not deleted)",
                          {"merged_into": sid}))
    if recreate and charges_auto and not survivor.usable_payment_method:
        warnings.append({"code": "no_payment_method", "needs_ack": True, "message":
                         f"{sid} has no usable default payment method, but the recreated subscriptions charge "
                         "automatically: their first invoice will fail unless the customer adds a card. Cards "
                         f"cannot move from {did}. Send the customer a payment-method-update link."})
    if duplicate.usable_payment_method:
        warnings.append({"code": "cards_stay", "needs_ack": False, "message":
                         f"{did}'s payment methods stay on {did} (Stripe cannot move them)."})
    return Plan(sid, did, suggested[0], suggested[1], steps, blockers, warnings, survivor, duplicate)


def plan_merge(customer_ids: tuple[str, str] | list[str], *, survivor_id: str | None = None,
               settings: Settings | None = None) -> Plan:
    """Read both customers from Stripe and build the plan; `survivor_id` overrides the suggestion."""
    s = settings or get_settings()
    a, b = (x.strip() for x in customer_ids)
    if not a or not b:
        raise MergeError("Give two customer ids (cus_…).")
    for which, cid in (("This customer's", a), ("The other customer's", b)):
        problem = id_problem(IdKind.CUSTOMER, cid)  # before any Stripe call: the id becomes part of a path
        if problem is not None:
            raise MergeError(f"{which} id: {problem}")  # quotes what was typed: shown through md() only
    if survivor_id not in (None, a, b):
        raise MergeError(f"The survivor must be one of {a} and {b}.")
    facts: dict[str, Facts] = {}
    for cid in dict.fromkeys((a, b)):
        try:
            facts[cid] = read_facts(cid, settings=s)
        except GatewayError as err:
            if err.kind == "missing":
                raise MergeError(f"Customer {cid} does not exist in Stripe: check the id.") from None
            raise MergeError(f"Could not read {cid} from Stripe: {err.user_message}") from None
    suggested = suggest_survivor(list(facts.values()), external_key=s.merge_external_id_key)
    sid = survivor_id or suggested[0]
    did = b if sid == a else a
    return build_plan(facts[sid], facts[did], suggested=suggested)


def with_survivor(plan: Plan, survivor_id: str) -> Plan:
    """The same pair with `survivor_id` kept: rebuilt from the facts just read, so switching the survivor costs
    no Stripe reads (the run's preflight reads Stripe again before the first write)."""
    if survivor_id == plan.survivor_id:
        return plan
    if survivor_id != plan.duplicate_id:
        raise MergeError(f"The survivor must be one of {plan.survivor_id} and {plan.duplicate_id}.")
    return build_plan(plan.duplicate, plan.survivor, suggested=(plan.suggested_survivor_id, plan.survivor_reason))


# --- the saga -----------------------------------------------------------------------------------


def step_key(job_id: str, seq: int, kind: str) -> str:
    """The idempotency key of one step: the same on every retry and every resume after a crash."""
    return f"merge-{job_id}-{seq:02d}-{kind}"


def attempt_key(step: MergeStep) -> str:
    """The step's key, with a suffix after a *failed* attempt: Stripe replays a saved error (even a 500) for a
    key, so a resume after a failure needs a new one. That is safe because every step first looks in Stripe
    for its own earlier effect (metadata `merge_job`) before it writes."""
    failed = int((step.result or {}).get("failed_attempts", 0))
    return step.idempotency_key if failed == 0 else f"{step.idempotency_key}-r{failed}"


def create_job(plan: Plan, *, user: User, session: Session, acknowledged: list[str] | tuple[str, ...] = (),
               confirm_text: str = "") -> MergeJob:
    """Store the plan as a job with its steps (nothing is written to Stripe yet)."""
    _require_admin(user, session=session, customer_id=plan.duplicate_id, object_id=plan.survivor_id)
    if plan.blocked:
        raise MergeError("The plan is blocked: " + " ".join(plan.blockers))
    pending = [j for j in latest_jobs(plan.duplicate_id, session=session, limit=20) if j.status in UNFINISHED]
    if pending:
        raise MergeError(f"Merge {pending[0].id} of {plan.duplicate_id} is {pending[0].status}: resume it, or "
                         "abandon it, before planning another.")
    missing_ack = [c for c in plan.needs_ack if c not in acknowledged]
    if missing_ack:
        raise MergeError("Acknowledge the warnings first: " + ", ".join(missing_ack) + ".")
    if confirm_text.strip() != plan.survivor_id:
        raise MergeError(f"Type the survivor's id ({plan.survivor_id}) exactly to confirm.")
    job = MergeJob(id=f"mj_{uuid.uuid4().hex[:20]}", created_by=user.email, survivor_id=plan.survivor_id,
                   duplicate_id=plan.duplicate_id, status="planned",
                   plan={**plan.to_dict(), "acknowledged": list(acknowledged)})
    session.add(job)
    for seq, st in enumerate(plan.steps, start=1):
        session.add(MergeStep(job_id=job.id, seq=seq, kind=st.kind, params={"title": st.title, **st.params},
                              idempotency_key=step_key(job.id, seq, st.kind)))
    session.commit()
    audit.record(session=session, actor=user.email, role=user.role_label, action="merge_planned",
                 result="succeeded", customer_id=plan.duplicate_id, object_id=plan.survivor_id,
                 correlation_id=job.id, details={"steps": len(plan.steps)})
    return job


def steps_of(job_id: str, *, session: Session) -> list[MergeStep]:
    return list(session.exec(select(MergeStep).where(MergeStep.job_id == job_id).order_by(MergeStep.seq)).all())


def abandon_job(job_id: str, *, user: User, session: Session) -> MergeJob:
    """Give up a stopped or failed job (its finished steps stay done in Stripe; a new plan accounts for them)."""
    _require_admin(user, session=session, correlation_id=job_id)
    got = session.execute(update(MergeJob).where(MergeJob.id == job_id, MergeJob.status.in_(["planned", "stopped",
                                                                                              "failed"]))
                          .values(status="abandoned", updated_at=utcnow(), finished_at=utcnow()))
    session.commit()
    if got.rowcount != 1:
        raise MergeError("Only a planned, stopped or failed merge can be abandoned (a running one: stop it first).")
    audit.record(session=session, actor=user.email, role=user.role_label, action="merge_abandoned",
                 result="succeeded", correlation_id=job_id)
    job = session.get(MergeJob, job_id)
    assert job is not None
    session.refresh(job)
    return job


def request_stop(job_id: str, *, user: User, session: Session) -> None:
    """Ask a running job to stop before its next step (it finishes the step it is on)."""
    _require_admin(user, session=session, correlation_id=job_id)
    session.execute(update(MergeJob).where(MergeJob.id == job_id).values(stop_requested=True, updated_at=utcnow()))
    session.commit()


def _claim(job_id: str, *, session: Session, takeover: bool) -> MergeJob:
    """Mark the job running, unless another runner holds it (compare-and-set: one runner at a time).

    A 'running' job is taken over only once its heartbeat is stale (no sign of life for
    STALE_RUNNING_SECONDS): a live runner touches it every HEARTBEAT_SECONDS, so pressing Resume while the
    other session still works is refused, whatever `takeover` says (kept for callers; it grants nothing). On a
    takeover, a step the dead runner left 'running' goes back to 'pending' so this runner claims it afresh."""
    del takeover
    job = session.get(MergeJob, job_id)
    if job is None:
        raise MergeError(f"Merge job {job_id} does not exist.")
    session.refresh(job)
    if job.status == "succeeded":
        return job
    allowed = ["planned", "stopped", "failed"]
    cond = MergeJob.status.in_(allowed)
    if job.status == "running":
        silent = (utcnow() - job.updated_at).total_seconds()
        if silent <= STALE_RUNNING_SECONDS:
            raise MergeError(
                f"This merge is running in another session (its last sign of life was {int(silent)} s ago). Wait "
                f"for it; if that session has stopped, you can resume once it has been silent for "
                f"{STALE_RUNNING_SECONDS} s.")
        stale_before = utcnow() - timedelta(seconds=STALE_RUNNING_SECONDS)
        cond = MergeJob.status.in_(allowed) | ((MergeJob.status == "running") & (MergeJob.updated_at < stale_before))
    got = session.execute(update(MergeJob).where(MergeJob.id == job_id, cond)
                          .values(status="running", stop_requested=False, error=None, updated_at=utcnow()))
    if got.rowcount != 1:
        session.rollback()
        raise MergeError("This merge was just started from another session.")
    session.execute(update(MergeStep).where(MergeStep.job_id == job_id, MergeStep.status == "running")
                    .values(status="pending"))
    session.commit()
    session.refresh(job)
    return job


@contextmanager
def _heartbeat(job_id: str, session: Session) -> Iterator[None]:
    """While the body runs, touch the job's updated_at every HEARTBEAT_SECONDS from a thread of its own (a
    long step still shows signs of life); it stops with the body, or with the process if that is killed."""
    stop = threading.Event()
    engine = session.get_bind()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with Session(engine) as own:
                    own.execute(update(MergeJob).where(MergeJob.id == job_id, MergeJob.status == "running")
                                .values(updated_at=utcnow()))
                    own.commit()
            except Exception:  # noqa: BLE001, S112 - a missed beat is retried at the next one
                continue

    thread = threading.Thread(target=beat, name=f"merge-heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _claim_step(step: MergeStep, *, session: Session) -> bool:
    """pending/failed → running for this runner only (False: another runner has it or has done it)."""
    got = session.execute(update(MergeStep).where(MergeStep.id == step.id,
                                                  MergeStep.status.in_(["pending", "failed"]))
                          .values(status="running", started_at=utcnow(), error=None))
    session.execute(update(MergeJob).where(MergeJob.id == step.job_id).values(updated_at=utcnow()))
    session.commit()
    session.refresh(step)
    return got.rowcount == 1


def _step_audit(job: MergeJob, step: MergeStep, *, user: User, session: Session) -> AuditLog:
    """The audit row of this step: the one an interrupted run of it left 'started', else a new one — each
    step is audited once however often it is resumed."""
    earlier = (step.result or {}).get("audit_id")
    if earlier:
        row = session.get(AuditLog, earlier)
        if row is not None and row.result == "started":
            return row
    row = audit.start(session=session, actor=user.email, role=user.role_label, action="merge_step",
                      customer_id=job.duplicate_id, object_id=job.survivor_id, flow=step.kind,
                      correlation_id=job.id,
                      details={"seq": step.seq, "idempotency_key": attempt_key(step),
                               "title": step.params.get("title")})
    step.result = {**(step.result or {}), "audit_id": row.id}
    session.add(step)
    session.commit()
    return row


def _never_started(job_id: str, *, session: Session) -> bool:
    return not any(st.status != "pending" for st in steps_of(job_id, session=session))


def _preflight(job: MergeJob, *, settings: Settings) -> str | None:
    """Before the first write: read both customers again; a blocker that appeared since the plan stops here."""
    try:
        fresh = plan_merge((job.duplicate_id, job.survivor_id), survivor_id=job.survivor_id, settings=settings)
    except MergeError as err:
        return str(err)
    if fresh.blocked:
        return "Stripe changed since the plan; nothing was written. " + " ".join(fresh.blockers)
    planned = [(st["kind"], st["params"]) for st in job.plan.get("steps", [])]
    if [(st.kind, st.params) for st in fresh.steps] != planned:
        return ("Stripe changed since the plan (subscriptions, balance, tax ids or metadata differ); nothing was "
                "written. Close this merge and plan it again.")
    return None


def _find_recreated(job: MergeJob, old_id: str, settings: Settings) -> dict[str, Any] | None:
    for sub in gw.merge_list("/v1/subscriptions", {"customer": job.survivor_id, "status": "all"}, settings=settings):
        md = sub.get("metadata") or {}
        if md.get("merged_from") == old_id and (md.get("merge_job") == job.id
                                                 or sub.get("status") in RECREATE_STATUSES):
            return sub
    return None


def _recreate(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> dict[str, Any]:
    """The copy on the survivor: same trial or next charge, scheduled end, discounts, pause and metadata."""
    found = _find_recreated(job, p["old_subscription"], settings)
    if found is None:
        # The old one may have renewed (or its trial ended) since the plan: bill from its next charge as it is now.
        old, _ = gw.retrieve(f"/v1/subscriptions/{p['old_subscription']}", settings=settings)
        if old.get("status") not in RECREATE_STATUSES:
            raise MergeError(f"{old['id']} is now {old.get('status')}: it changed since the plan. Stop this merge "
                             "and plan it again.")
        create = dict(p["create"])
        create["customer"] = job.survivor_id
        if old.get("status") == "trialing" and old.get("trial_end"):
            create.pop("billing_cycle_anchor", None)
            create["trial_end"] = int(old["trial_end"])
        else:
            create.pop("trial_end", None)
            create.pop("trial_settings", None)
            create["billing_cycle_anchor"] = _item_period_end(old) or create.get("billing_cycle_anchor")
        create["metadata"] = {**create.get("metadata", {}), "merged_from": p["old_subscription"],
                              "merge_job": job.id}
        found = gw.merge_create_subscription(create, idempotency_key=key, settings=settings)
        result: dict[str, Any] = {"subscription": found["id"], "status": found.get("status")}
    else:
        result = {"subscription": found["id"], "status": found.get("status"), "reused": True}
    pause = p.get("pause")
    if pause and not found.get("pause_collection"):
        gw.merge_update_subscription(found["id"], {"pause_collection": pause}, idempotency_key=f"{key}-pause",
                                     settings=settings)
        result["pause_collection"] = pause["behavior"]
    return result


def _exec_step(job: MergeJob, step: MergeStep, settings: Settings) -> dict[str, Any]:
    """Perform one step; first look for its own earlier effect so a repeat changes nothing."""
    p, key = step.params, attempt_key(step)
    if step.kind == "recreate_subscription":
        return _recreate(job, p, key, settings)
    if step.kind == "cancel_old_subscription":
        old, _ = gw.retrieve(f"/v1/subscriptions/{p['subscription']}", settings=settings)
        if old.get("status") in ("canceled", "incomplete_expired"):
            return {"subscription": old["id"], "status": old.get("status"), "reused": True}
        if (old.get("metadata") or {}).get("merge_job") != job.id:
            gw.merge_update_subscription(old["id"], {"metadata": {"merge_job": job.id}},
                                         idempotency_key=f"{key}-mark", settings=settings)
        sub = gw.merge_cancel_subscription(
            old["id"], {"prorate": False, "invoice_now": False,
                        "cancellation_details": {"comment": f"Merged into {job.survivor_id} (merge {job.id})"}},
            idempotency_key=key, settings=settings)
        return {"subscription": sub["id"], "status": sub.get("status")}
    if step.kind == "move_balance":
        amount, currency = int(p["amount"]), p.get("currency")
        legs = ((job.duplicate_id, -amount, "out", f"moved to {job.survivor_id}"),
                (job.survivor_id, amount, "in", f"moved from {job.duplicate_id}"))
        out: dict[str, Any] = {}
        for customer, value, leg, text in legs:
            existing = next((t for t in gw.merge_list(f"/v1/customers/{customer}/balance_transactions",
                                                      settings=settings)
                             if (t.get("metadata") or {}).get("merge_job") == job.id
                             and (t.get("metadata") or {}).get("merge_leg") == leg), None)
            if existing is None:
                params: dict[str, Any] = {"amount": value, "description": f"Merge {job.id}: balance {text}",
                                          "metadata": {"merge_job": job.id, "merge_leg": leg}}
                if currency:
                    params["currency"] = currency
                existing = gw.merge_create_balance_transaction(customer, params, idempotency_key=f"{key}-{leg}",
                                                               settings=settings)
            out[leg] = existing["id"]
        return out
    if step.kind == "copy_tax_id":
        for t in gw.merge_list(f"/v1/customers/{job.survivor_id}/tax_ids", settings=settings):
            if t.get("type") == p["type"] and t.get("value") == p["value"]:
                return {"tax_id": t["id"], "reused": True}
        made = gw.merge_create_tax_id(job.survivor_id, {"type": p["type"], "value": p["value"]},
                                      idempotency_key=key, settings=settings)
        return {"tax_id": made["id"]}
    if step.kind == "copy_metadata":
        gw.merge_update_customer(job.survivor_id, {"metadata": p["metadata"]}, idempotency_key=key, settings=settings)
        return {"keys": sorted(p["metadata"])}
    if step.kind == "mark_duplicate":
        gw.merge_update_customer(job.duplicate_id, {"metadata": {"merged_into": job.survivor_id, "merge_job": job.id}},
                                 idempotency_key=key, settings=settings)
        return {"merged_into": job.survivor_id}
    raise MergeError(f"Unknown merge step {step.kind!r}.")


StepHook = Callable[[str, MergeStep], None]  # (moment, step) with moment in before_call | after_call


def run_job(job_id: str, *, user: User, session: Session, settings: Settings | None = None,
            hook: StepHook | None = None, takeover: bool = False,
            progress: Callable[[MergeStep], None] | None = None) -> MergeJob:
    """Run (or resume) a job to the end, or until a stop request or an error; returns the job."""
    s = settings or get_settings()
    _require_admin(user, session=session, correlation_id=job_id)
    first_run = _never_started(job_id, session=session)
    job = _claim(job_id, session=session, takeover=takeover)
    if job.status == "succeeded":
        return job
    role = user.role_label
    if first_run:
        problem = _preflight(job, settings=s)
        if problem:
            job.status, job.error, job.updated_at = "failed", problem, utcnow()
            session.add(job)
            session.commit()
            row = audit.start(session=session, actor=user.email, role=role, action="merge_preflight",
                              customer_id=job.duplicate_id, object_id=job.survivor_id, correlation_id=job.id)
            audit.finish(row, session=session, result="refused", error=problem)  # why, on the Audit log page
            return job
    with _heartbeat(job.id, session):
        for step in steps_of(job_id, session=session):
            if step.status == "done":
                continue
            session.refresh(job)
            if job.stop_requested:
                job.status, job.updated_at = "stopped", utcnow()
                session.add(job)
                session.commit()
                audit.record(session=session, actor=user.email, role=role, action="merge_stopped",
                             result="succeeded", customer_id=job.duplicate_id, correlation_id=job.id,
                             details={"before_step": step.seq})
                return job
            if not _claim_step(step, session=session):
                raise MergeError("Another session took this merge over; it carries on there.")
            row = _step_audit(job, step, user=user, session=session)
            if hook:
                hook("before_call", step)
            try:
                result = _exec_step(job, step, s)
            except (GatewayError, MergeError) as err:
                message = str(err)
                step.status, step.error, step.finished_at = "failed", message, utcnow()
                step.result = {"failed_attempts": int((step.result or {}).get("failed_attempts", 0)) + 1}
                job.status, job.error, job.updated_at = "failed", f"Step {step.seq} ({step.kind}): {message}", utcnow()
                session.add(step)
                session.add(job)
                session.commit()
                audit.finish(row, session=session, result="failed", error=message)
                return job
            if hook:
                hook("after_call", step)
            step.status, step.result, step.finished_at = "done", {**result, "audit_id": row.id}, utcnow()
            session.add(step)
            session.commit()
            audit.finish(row, session=session, result="succeeded", details={"result": result})
            if progress:
                progress(step)
        return _finish(job, user=user, session=session, settings=s)


def verify(job: MergeJob, *, session: Session, settings: Settings) -> list[str]:
    """Re-read both customers from Stripe and list every way the end state differs from the plan."""
    problems: list[str] = []
    steps = steps_of(job.id, session=session)
    surv_subs = gw.merge_list("/v1/subscriptions", {"customer": job.survivor_id, "status": "all"}, settings=settings)
    dup_subs = {x["id"]: x for x in gw.merge_list("/v1/subscriptions", {"customer": job.duplicate_id,
                                                                         "status": "all"}, settings=settings)}
    for st in steps:
        if st.kind == "recreate_subscription":
            old = st.params["old_subscription"]
            made = [x for x in surv_subs if (x.get("metadata") or {}).get("merged_from") == old
                    and (x.get("metadata") or {}).get("merge_job") == job.id]
            live = [x for x in made if x.get("status") in RECREATE_STATUSES]
            if len(made) != 1 or len(live) != 1:
                problems.append(f"{old} should exist exactly once, live, on {job.survivor_id}; found {len(made)}.")
            expect = st.params.get("expect") or {}
            if len(live) == 1 and expect.get("status") == "trialing" and live[0].get("status") != "trialing":
                problems.append(f"{old} was trialing but its copy {live[0]['id']} is {live[0].get('status')}.")
        if st.kind == "cancel_old_subscription":
            old_sub = dup_subs.get(st.params["subscription"])
            if old_sub is None or old_sub.get("status") != "canceled":
                problems.append(f"{st.params['subscription']} is not canceled.")
    dup = gw.merge_retrieve_customer(job.duplicate_id, settings=settings)
    if dup.get("deleted"):
        problems.append(f"{job.duplicate_id} was deleted.")
    elif (dup.get("metadata") or {}).get("merged_into") != job.survivor_id:
        problems.append(f"{job.duplicate_id} lacks metadata merged_into={job.survivor_id}.")
    if any(st.kind == "move_balance" for st in steps) and int(dup.get("balance") or 0) != 0:
        problems.append(f"{job.duplicate_id} still has a balance of {dup.get('balance')}.")
    return problems


def _refresh_cache(customer_ids: list[str], settings: Settings) -> str | None:
    """Bring the cache up to date for both customers (the sync's refresh); a failure only delays it."""
    try:
        for cid in customer_ids:
            refresh_customer(cid, settings=settings)
    except Exception as exc:  # noqa: BLE001 - Stripe is already correct; only the cache lags
        return f"The merge is done in Stripe but the cache could not be refreshed ({exc}); run a sync."
    return None


def _finish(job: MergeJob, *, user: User, session: Session, settings: Settings) -> MergeJob:
    role = user.role_label
    row = audit.start(session=session, actor=user.email, role=role, action="merge_verify",
                      customer_id=job.duplicate_id, object_id=job.survivor_id, correlation_id=job.id)
    try:
        problems = verify(job, session=session, settings=settings)
    except GatewayError as err:
        job.status, job.error, job.updated_at = "failed", f"Verification could not read Stripe: {err}", utcnow()
        session.add(job)
        session.commit()
        audit.finish(row, session=session, result="failed", error=job.error)
        return job
    cache_note = _refresh_cache([job.survivor_id, job.duplicate_id], settings)
    plan = dict(job.plan)
    plan["verification"] = {"problems": problems, "cache": cache_note, "at": int(time.time())}
    job.plan = plan
    job.status = "failed" if problems else "succeeded"
    job.error = "; ".join(problems) or None
    job.finished_at = job.updated_at = utcnow()
    session.add(job)
    session.commit()
    audit.finish(row, session=session, result="failed" if problems else "succeeded", error=job.error,
                 details={"cache": cache_note})
    return job


def latest_jobs(customer_id: str, *, session: Session, limit: int = 5) -> list[MergeJob]:
    """The newest merge jobs that involve a customer (for resuming from the page)."""
    stmt = (select(MergeJob).where((MergeJob.survivor_id == customer_id) | (MergeJob.duplicate_id == customer_id))
            .order_by(MergeJob.created_at.desc()).limit(limit))
    return list(session.exec(stmt).all())


def unfinished_jobs(*, session: Session, limit: int = 20) -> list[MergeJob]:
    stmt = (select(MergeJob).where(MergeJob.status.in_(UNFINISHED))
            .order_by(MergeJob.created_at.desc()).limit(limit))
    return list(session.exec(stmt).all())

