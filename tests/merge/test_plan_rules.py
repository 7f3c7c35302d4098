"""The planner's rules on given Stripe states (no I/O): survivor choice, steps, blockers, warnings."""

from __future__ import annotations

from typing import Any

from lib.merge import Facts, build_plan, suggest_survivor

NOW = 1_800_000_000


def facts(cid: str, **kw: Any) -> Facts:
    base: dict[str, Any] = dict(
        id=cid, name="Pat", email="pat@x.test", created=NOW - 1000, currency="usd", balance=0, metadata={},
        deleted=False, subscriptions=[], open_invoices=[], cash_balance={}, tax_ids=[],
        usable_payment_method="pm_1", paid_total=0,
    )
    base.update(kw)
    return Facts(**base)


def sub(sid: str, *, status: str = "active", currency: str = "usd", **kw: Any) -> dict[str, Any]:
    item = {"id": f"si_{sid}", "price": {"id": "price_pro", "currency": currency}, "quantity": 3,
            "metadata": {"seat": "x"}, "current_period_end": NOW + 86400 * 10, "discounts": []}
    return {"id": sid, "status": status, "currency": currency, "items": {"data": [item]}, "metadata": {"plan": "pro"},
            "collection_method": "charge_automatically", "discounts": [], "schedule": None,
            "pause_collection": None, "cancel_at_period_end": False, **kw}


def test_survivor_suggestion_order() -> None:
    a = facts("cus_a", created=NOW - 10, paid_total=900)
    b = facts("cus_b", created=NOW - 50, paid_total=100)
    assert suggest_survivor([a, b])[0] == "cus_a"  # most paid beats oldest
    assert suggest_survivor([facts("cus_a", created=NOW - 10), facts("cus_b", created=NOW - 50)])[0] == "cus_b"
    b_sub = facts("cus_b", subscriptions=[sub("sub_1")])
    assert suggest_survivor([a, b_sub])[0] == "cus_b"  # active subscriptions beat money paid
    known = facts("cus_a", metadata={"crm_id": "42"})
    sid, why = suggest_survivor([known, b_sub], external_key="crm_id")
    assert sid == "cus_a"
    assert "crm_id" in why


def test_steps_recreate_cancel_balance_taxids_metadata_mark() -> None:
    survivor = facts("cus_s", tax_ids=[{"type": "eu_vat", "value": "DE123456789"}], metadata={"crm_id": "1"})
    dup = facts(
        "cus_d", balance=-2500, subscriptions=[sub("sub_1", discounts=[{"id": "di_1", "source": {"coupon": "SAVE"}}]),
                                               sub("sub_2", status="trialing")],
        tax_ids=[{"type": "eu_vat", "value": "DE123456789"}, {"type": "gb_vat", "value": "GB123456789"}],
        metadata={"crm_id": "2", "segment": "smb", "merged_from": "x"},
    )
    plan = build_plan(survivor, dup, suggested=("cus_s", "why"))
    assert not plan.blocked
    kinds = [s.kind for s in plan.steps]
    assert kinds == ["recreate_subscription", "cancel_old_subscription", "recreate_subscription",
                     "cancel_old_subscription", "move_balance", "copy_tax_id", "copy_metadata", "mark_duplicate"]
    create = plan.steps[0].params["create"]
    assert create["items"] == [{"price": "price_pro", "quantity": 3, "metadata": {"seat": "x"}}]
    assert create["billing_cycle_anchor"] == NOW + 86400 * 10
    assert create["proration_behavior"] == "none"
    assert create["discounts"] == [{"coupon": "SAVE"}]
    assert create["metadata"] == {"plan": "pro"}
    assert plan.steps[4].params == {"amount": -2500, "currency": "usd"}
    assert plan.steps[5].params == {"type": "gb_vat", "value": "GB123456789"}
    assert plan.steps[6].params == {"metadata": {"segment": "smb"}}  # crm_id kept, merge keys never copied
    assert plan.needs_ack == []


def test_every_blocker_has_a_reason() -> None:
    survivor = facts("cus_s", subscriptions=[sub("sub_s", currency="eur")], currency="eur")
    dup = facts(
        "cus_d", currency="usd", balance=100,
        open_invoices=[{"id": "in_1", "amount_remaining": 500, "currency": "usd"}], cash_balance={"usd": 700},
        subscriptions=[sub("sub_sched", schedule="sub_sched_1", currency="eur"),
                       sub("sub_paused", status="paused", currency="eur"),
                       sub("sub_pd", status="past_due", currency="eur"), sub("sub_usd")],
    )
    plan = build_plan(survivor, dup, suggested=("cus_s", "why"))
    text = " | ".join(plan.blockers)
    for needle in ("in_1", "cash balance", "schedule", "paused", "past-due", "USD but cus_s bills in EUR",
                   "balance is in USD"):
        assert needle in text, needle


def test_no_usable_payment_method_needs_acknowledgement() -> None:
    plan = build_plan(facts("cus_s", usable_payment_method=None), facts("cus_d", subscriptions=[sub("sub_1")]),
                      suggested=("cus_s", "why"))
    assert plan.needs_ack == ["no_payment_method"]
    invoiced = sub("sub_1", collection_method="send_invoice", days_until_due=30)
    plan = build_plan(facts("cus_s", usable_payment_method=None), facts("cus_d", subscriptions=[invoiced]),
                      suggested=("cus_s", "why"))
    assert plan.needs_ack == []  # invoices sent by email do not need a card


def test_a_failed_step_resumes_under_a_new_key_derived_from_job_and_step() -> None:
    from lib.merge import MergeStep, attempt_key, step_key

    base = step_key("mj_1", 3, "copy_tax_id")
    assert base == "merge-mj_1-03-copy_tax_id"
    step = MergeStep(job_id="mj_1", seq=3, kind="copy_tax_id", idempotency_key=base)
    assert attempt_key(step) == base  # crash or retry: the same key, Stripe replays the first answer
    step.result = {"failed_attempts": 2}
    assert attempt_key(step) == base + "-r2"  # Stripe would replay a saved error for the old key
