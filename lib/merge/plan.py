"""The merge plan: what would block it, the steps it takes and what it warns about (pure), and `plan_merge`,
which reads both customers from Stripe first. A blocked plan writes nothing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from lib.config import Settings, get_settings
from lib.gateway import GatewayError, NotFound
from lib.ids import IdKind, id_problem
from lib.merge.facts import Facts, read_facts, suggest_survivor
from lib.merge.terms import (
    billing_note,
    currencies,
    day,
    describe_items,
    in_force,
    next_charge_at,
    pause_params,
    recreate_params,
)
from lib.merge.vocabulary import MERGE_KEYS, RECREATE_STATUSES, MergeError, StepKind, WarningCode
from lib.money import format_money


@dataclass
class PlanStep:
    """One step as planned: what it does (`title`, shown as text) and the parameters it runs with."""

    kind: StepKind
    title: str
    params: dict[str, Any]


@dataclass
class MergeWarning:
    """Something the merge cannot carry over but may run with; `needs_ack`: the admin must tick it first."""

    code: WarningCode
    message: str
    needs_ack: bool = False


@dataclass
class Plan:
    survivor_id: str
    duplicate_id: str
    suggested_survivor_id: str
    survivor_reason: str
    steps: list[PlanStep]
    blockers: list[str]
    warnings: list[MergeWarning]
    survivor: Facts
    duplicate: Facts

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def needs_ack(self) -> list[WarningCode]:
        return [w.code for w in self.warnings if w.needs_ack]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what a job stores and the page keeps in its session); `from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(
            survivor_id=data["survivor_id"], duplicate_id=data["duplicate_id"],
            suggested_survivor_id=data["suggested_survivor_id"], survivor_reason=data["survivor_reason"],
            steps=[PlanStep(StepKind(s["kind"]), s["title"], s["params"]) for s in data["steps"]],
            blockers=list(data["blockers"]),
            warnings=[MergeWarning(WarningCode(w["code"]), w["message"], bool(w.get("needs_ack")))
                      for w in data["warnings"]],
            survivor=Facts(**data["survivor"]), duplicate=Facts(**data["duplicate"]),
        )


# --- which subscriptions move ---------------------------------------------------------------------


def _to_recreate(survivor: Facts, duplicate: Facts) -> list[tuple[dict[str, Any], str | None]]:
    """The duplicate's subscriptions to move, each with the id of the copy an earlier (abandoned) merge already
    made on the survivor (None: not made yet). A copy is never made twice."""
    copies = {(s.get("metadata") or {}).get("merged_from"): s["id"] for s in survivor.subscriptions
              if s.get("status") in RECREATE_STATUSES and (s.get("metadata") or {}).get("merged_from")}
    return [(sub, copies.get(sub["id"])) for sub in duplicate.subscriptions
            if sub.get("status") in RECREATE_STATUSES]


# --- blockers ---------------------------------------------------------------------------------------


def _pair_blockers(survivor: Facts, duplicate: Facts) -> list[str]:
    """The two customers cannot be merged as they are (deleted, merged already, unpaid, other currency…)."""
    blockers: list[str] = []
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
    survivor_cur = {c for s in survivor.subscriptions for c in currencies(s)}
    if survivor.currency:
        survivor_cur.add(survivor.currency.lower())
    for sub in duplicate.subscriptions:
        blockers.extend(_subscription_blockers(sub, sid, survivor_cur))
    if duplicate.balance and survivor.currency and duplicate.currency and survivor.currency != duplicate.currency:
        blockers.append(f"{did}'s balance is in {duplicate.currency.upper()} but {sid} uses "
                        f"{survivor.currency.upper()}: settle the balance first.")
    return blockers


def _subscription_blockers(sub: dict[str, Any], sid: str, survivor_cur: set[str]) -> list[str]:
    """A live subscription of the duplicate that cannot move in its state (schedule, paused, unpaid…)."""
    blockers: list[str] = []
    status = sub.get("status")
    if sub.get("schedule"):
        blockers.append(f"Subscription {sub['id']} is managed by schedule {sub['schedule']}: release or finish "
                        "the schedule first.")
    if status == "paused":
        blockers.append(f"Subscription {sub['id']} is paused: resume it (or cancel it) first.")
    if status in ("past_due", "unpaid"):
        blockers.append(f"Subscription {sub['id']} is {status.replace('_', '-')}: settle its unpaid invoice first.")
    if status == "incomplete":
        blockers.append(f"Subscription {sub['id']} is incomplete (first payment pending): wait for it or cancel it.")
    other = currencies(sub) - survivor_cur if survivor_cur else set()
    if other:
        blockers.append(
            f"Subscription {sub['id']} bills in {', '.join(sorted(c.upper() for c in other))} but {sid} bills in "
            f"{', '.join(sorted(c.upper() for c in survivor_cur))}: a customer has one currency.")
    return blockers


def _copy_blockers(sub: dict[str, Any]) -> list[str]:
    """What a new subscription cannot be made with: an archived price, a trial ended but not billed yet."""
    blockers: list[str] = []
    sid = sub["id"]
    for it in (sub.get("items") or {}).get("data", []):
        price = it.get("price") or {}
        if price.get("active") is False:
            blockers.append(f"Subscription {sid} uses price {price.get('id')}, which is archived: a new subscription "
                            "cannot use it. Reactivate the price in Stripe (or move the subscription to an active "
                            "price) first.")
    if sub.get("status") == "trialing" and sub.get("trial_end") and int(sub["trial_end"]) <= int(time.time()):
        blockers.append(f"Subscription {sid}'s trial has ended but Stripe has not billed it yet: wait a few minutes "
                        "and plan again.")
    return blockers


def plan_blockers(survivor: Facts, duplicate: Facts) -> list[str]:
    """Every reason the merge cannot run now, each saying what to do first (empty: it may run)."""
    blockers = _pair_blockers(survivor, duplicate)
    for sub, copy in _to_recreate(survivor, duplicate):
        if copy is None:
            blockers.extend(_copy_blockers(sub))
    return blockers


# --- steps ------------------------------------------------------------------------------------------


def _subscription_steps(survivor: Facts, duplicate: Facts) -> list[PlanStep]:
    """Per subscription to move: recreate it on the survivor (unless an earlier merge did), cancel the old one."""
    sid, did = survivor.id, duplicate.id
    steps: list[PlanStep] = []
    for sub, copy in _to_recreate(survivor, duplicate):
        what = describe_items(sub, duplicate.product_names)
        if copy is None:
            steps.append(PlanStep(StepKind.RECREATE_SUBSCRIPTION,
                                  f"Recreate {sub['id']} ({what}) on {sid}: {billing_note(sub)}",
                                  {"old_subscription": sub["id"], "create": recreate_params(sub),
                                   "pause": pause_params(sub),
                                   "expect": {"status": sub.get("status"), "next_charge": next_charge_at(sub)}}))
        steps.append(PlanStep(StepKind.CANCEL_OLD_SUBSCRIPTION,
                              f"Cancel {sub['id']} ({what}) on {did} now, without refund or proration "
                              f"(its copy on {sid} carries on)", {"subscription": sub["id"]}))
    return steps


def plan_steps(survivor: Facts, duplicate: Facts) -> list[PlanStep]:
    """The steps that merge `duplicate` into `survivor`, in the order they run."""
    sid, did = survivor.id, duplicate.id
    steps = _subscription_steps(survivor, duplicate)
    if duplicate.balance:
        kind = "credit" if duplicate.balance < 0 else "amount owed"
        shown = format_money(abs(duplicate.balance), duplicate.currency or survivor.currency)
        steps.append(PlanStep(StepKind.MOVE_BALANCE, f"Move {did}'s balance ({kind} {shown}) "
                              f"to {sid} with a pair of balance transactions",
                              {"amount": duplicate.balance, "currency": duplicate.currency or survivor.currency}))
    have = {(t["type"], t["value"]) for t in survivor.tax_ids}
    for t in duplicate.tax_ids:
        if (t["type"], t["value"]) not in have:
            steps.append(PlanStep(StepKind.COPY_TAX_ID, f"Add tax id {t['type']} {t['value']} to {sid}", dict(t)))
    missing = {k: v for k, v in duplicate.metadata.items() if k not in survivor.metadata and k not in MERGE_KEYS}
    if missing:
        steps.append(PlanStep(StepKind.COPY_METADATA, f"Copy metadata keys {', '.join(sorted(missing))} to {sid}",
                              {"metadata": missing}))
    steps.append(PlanStep(StepKind.MARK_DUPLICATE,
                          f"Mark {did} with metadata merged_into={sid} (it is kept, not deleted)",
                          {"merged_into": sid}))
    return steps


# --- warnings ---------------------------------------------------------------------------------------


def _copy_warnings(sub: dict[str, Any]) -> list[MergeWarning]:
    """What the copy of one subscription will not carry over: its own card, discounts that end or restart."""
    warnings: list[MergeWarning] = []
    sid = sub["id"]
    at = next_charge_at(sub)
    if sub.get("default_payment_method"):
        warnings.append(MergeWarning(
            WarningCode.SUBSCRIPTION_PAYMENT_METHOD,
            f"{sid} charges its own payment method, which cannot move: the new subscription charges the surviving "
            "customer's default payment method."))
    discounts = [d for d in sub.get("discounts") or [] if isinstance(d, dict)]
    ending = [d for d in discounts if not in_force(d, at)]
    if ending:
        ends = ", ".join(day(int(d["end"])) for d in ending)
        warnings.append(MergeWarning(
            WarningCode.DISCOUNT_ENDS,
            f"{sid}'s discount ends ({ends}) before its next charge ({day(at)}). A new discount cannot be given that "
            "end date, so the copy has none: its charges are the same, but its MRR is shown without the discount "
            "from now on instead of from its end.", needs_ack=True))
    repeating = [d for d in discounts if d.get("end") and in_force(d, at)]
    if repeating:
        ends = ", ".join(day(int(d["end"])) for d in repeating)
        warnings.append(MergeWarning(
            WarningCode.DISCOUNT_RESTARTS,
            f"{sid}'s limited-duration discount (ending {ends}) starts its duration again on the new subscription, "
            "so it ends later there."))
    return warnings


def plan_warnings(survivor: Facts, duplicate: Facts) -> list[MergeWarning]:
    """What the merge cannot carry over but may run with, per subscription and then for the pair."""
    sid, did = survivor.id, duplicate.id
    warnings: list[MergeWarning] = []
    charges_auto = False
    for sub, copy in _to_recreate(survivor, duplicate):
        if copy is not None:
            what = describe_items(sub, duplicate.product_names)
            warnings.append(MergeWarning(
                WarningCode.ALREADY_RECREATED,
                f"{sub['id']} ({what}) was already recreated on {sid} as {copy} by an earlier merge: only the old "
                "one is canceled."))
            continue
        warnings.extend(_copy_warnings(sub))
        charges_auto |= recreate_params(sub)["collection_method"] == "charge_automatically"
    if charges_auto and not survivor.usable_payment_method:
        warnings.append(MergeWarning(
            WarningCode.NO_PAYMENT_METHOD,
            f"{sid} has no usable default payment method, but the recreated subscriptions charge automatically: "
            "their first invoice will fail unless the customer adds a card. Cards cannot move from "
            f"{did}. Send the customer a payment-method-update link.", needs_ack=True))
    if duplicate.usable_payment_method:
        warnings.append(MergeWarning(WarningCode.CARDS_STAY,
                                     f"{did}'s payment methods stay on {did} (Stripe cannot move them)."))
    return warnings


def build_plan(survivor: Facts, duplicate: Facts, *, suggested: tuple[str, str]) -> Plan:
    """Steps, blockers and warnings for merging `duplicate` into `survivor` (pure: no I/O)."""
    return Plan(survivor.id, duplicate.id, suggested[0], suggested[1], plan_steps(survivor, duplicate),
                plan_blockers(survivor, duplicate), plan_warnings(survivor, duplicate), survivor, duplicate)


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
        except NotFound:
            raise MergeError(f"Customer {cid} does not exist in Stripe: check the id.") from None
        except GatewayError as err:
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
