"""What each merge step does in Stripe. Every step first looks for its own earlier effect (metadata
`merge_job`), so a repeat after a crash or a retry changes nothing; every write carries the step's key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lib import gateway as gw
from lib.config import Settings
from lib.gateway.balance_transactions import BalanceTransactionCreate
from lib.merge.jobs import attempt_key
from lib.merge.terms import item_period_end
from lib.merge.vocabulary import RECREATE_STATUSES, MergeError, StepKind
from lib.models import MergeJob, MergeStep

StepResult = dict[str, Any]  # what a step did (ids made or reused), kept in merge_steps.result and the audit row


def _find_recreated(job: MergeJob, old_id: str, settings: Settings) -> dict[str, Any] | None:
    for sub in gw.subscriptions.for_customer(job.survivor_id, status="all", settings=settings):
        md = sub.get("metadata") or {}
        if md.get("merged_from") == old_id and (md.get("merge_job") == job.id
                                                 or sub.get("status") in RECREATE_STATUSES):
            return sub
    return None


def _recreate(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    """The copy on the survivor: same trial or next charge, scheduled end, discounts, pause and metadata."""
    found = _find_recreated(job, p["old_subscription"], settings)
    if found is None:
        # The old one may have renewed (or its trial ended) since the plan: bill from its next charge as it is now.
        old = gw.subscriptions.retrieve(p["old_subscription"], settings=settings)
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
            create["billing_cycle_anchor"] = item_period_end(old) or create.get("billing_cycle_anchor")
        create["metadata"] = {**create.get("metadata", {}), "merged_from": p["old_subscription"],
                              "merge_job": job.id}
        found = gw.subscriptions.create(create, idempotency_key=key, settings=settings)
        result: StepResult = {"subscription": found["id"], "status": found.get("status")}
    else:
        result = {"subscription": found["id"], "status": found.get("status"), "reused": True}
    pause = p.get("pause")
    if pause and not found.get("pause_collection"):
        gw.subscriptions.update(found["id"], {"pause_collection": pause}, idempotency_key=f"{key}-pause",
                                settings=settings)
        result["pause_collection"] = pause["behavior"]
    return result


def _cancel_old(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    """The duplicate's subscription, canceled now without refund or proration (marked with the job first)."""
    old = gw.subscriptions.retrieve(p["subscription"], settings=settings)
    if old.get("status") in ("canceled", "incomplete_expired"):
        return {"subscription": old["id"], "status": old.get("status"), "reused": True}
    if (old.get("metadata") or {}).get("merge_job") != job.id:
        gw.subscriptions.update(old["id"], {"metadata": {"merge_job": job.id}}, idempotency_key=f"{key}-mark",
                                settings=settings)
    sub = gw.subscriptions.cancel(
        old["id"], {"prorate": False, "invoice_now": False,
                    "cancellation_details": {"comment": f"Merged into {job.survivor_id} (merge {job.id})"}},
        idempotency_key=key, settings=settings)
    return {"subscription": sub["id"], "status": sub.get("status")}


def _move_balance(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    """A pair of balance transactions: out of the duplicate, into the survivor (each leg found or made once)."""
    amount, currency = int(p["amount"]), p.get("currency")
    legs = ((job.duplicate_id, -amount, "out", f"moved to {job.survivor_id}"),
            (job.survivor_id, amount, "in", f"moved from {job.duplicate_id}"))
    out: StepResult = {}
    for customer, value, leg, text in legs:
        existing = next((t for t in gw.balance_transactions.for_customer(customer, settings=settings)
                         if (t.get("metadata") or {}).get("merge_job") == job.id
                         and (t.get("metadata") or {}).get("merge_leg") == leg), None)
        if existing is None:
            params: BalanceTransactionCreate = {"amount": value, "description": f"Merge {job.id}: balance {text}",
                                                "metadata": {"merge_job": job.id, "merge_leg": leg}}
            if currency:
                params["currency"] = currency
            existing = gw.balance_transactions.create(customer, params, idempotency_key=f"{key}-{leg}",
                                                      settings=settings)
        out[leg] = existing["id"]
    return out


def _copy_tax_id(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    for t in gw.tax_ids.for_customer(job.survivor_id, settings=settings):
        if t.get("type") == p["type"] and t.get("value") == p["value"]:
            return {"tax_id": t["id"], "reused": True}
    made = gw.tax_ids.create(job.survivor_id, {"type": p["type"], "value": p["value"]}, idempotency_key=key,
                             settings=settings)
    return {"tax_id": made["id"]}


def _copy_metadata(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    gw.customers.update(job.survivor_id, {"metadata": p["metadata"]}, idempotency_key=key, settings=settings)
    return {"keys": sorted(p["metadata"])}


def _mark_duplicate(job: MergeJob, p: dict[str, Any], key: str, settings: Settings) -> StepResult:
    gw.customers.update(job.duplicate_id, {"metadata": {"merged_into": job.survivor_id, "merge_job": job.id}},
                        idempotency_key=key, settings=settings)
    return {"merged_into": job.survivor_id}


STEPS: dict[StepKind, Callable[[MergeJob, dict[str, Any], str, Settings], StepResult]] = {
    StepKind.RECREATE_SUBSCRIPTION: _recreate,
    StepKind.CANCEL_OLD_SUBSCRIPTION: _cancel_old,
    StepKind.MOVE_BALANCE: _move_balance,
    StepKind.COPY_TAX_ID: _copy_tax_id,
    StepKind.COPY_METADATA: _copy_metadata,
    StepKind.MARK_DUPLICATE: _mark_duplicate,
}


def exec_step(job: MergeJob, step: MergeStep, settings: Settings) -> StepResult:
    """Perform one step; first look for its own earlier effect so a repeat changes nothing."""
    try:
        run = STEPS[StepKind(step.kind)]
    except ValueError:
        raise MergeError(f"Unknown merge step {step.kind!r}.") from None
    return run(job, step.params, attempt_key(step), settings)
