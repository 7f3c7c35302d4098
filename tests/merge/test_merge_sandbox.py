"""Merges against the sandbox through the real SDK: plan, run, kill anywhere, resume, faults, renewals."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from lib import merge
from lib.config import get_settings
from lib.models import AuditLog, Customer, MergeJob, Subscription
from tests.merge.world import (
    ADMIN,
    SUPPORT,
    World,
    assert_end_state,
    last_seq,
    make_world,
    posts,
    runner_died_long_ago,
)
from tests.utils.sandbox import SandboxServer

STEP_KINDS = ["recreate_subscription", "cancel_old_subscription", "recreate_subscription",
              "cancel_old_subscription", "move_balance", "copy_tax_id", "copy_metadata", "mark_duplicate"]


def plan_and_job(w: World, session: Session) -> tuple[merge.Plan, MergeJob]:
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert not plan.blocked, plan.blockers
    return plan, merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)


def test_plan_reads_stripe_and_suggests_the_survivor(sandbox: SandboxServer, session: Session,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world(sandbox)
    since = last_seq(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor))
    assert (plan.survivor_id, plan.survivor_reason) == (w.survivor, "it has paid the most")  # 20.00 vs 15.00
    monkeypatch.setenv("MERGE_EXTERNAL_ID_KEY", "segment")  # the company's own id lives on the duplicate
    get_settings.cache_clear()
    plan = merge.plan_merge((w.survivor, w.duplicate))
    assert plan.survivor_id == w.duplicate
    assert "segment" in plan.survivor_reason
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    assert [s.kind for s in plan.steps] == STEP_KINDS
    assert posts(sandbox, since) == []  # planning only reads
    assert plan.needs_ack == []


def test_merge_end_to_end_then_renewal_bills_once_per_period(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox)
    _, job = plan_and_job(w, session)
    job = merge.run_job(job.id, user=ADMIN, session=session)
    assert_end_state(sandbox, w, job, session)
    # The cache was refreshed for both customers: pages show the merge without waiting for a sync.
    assert job.plan["verification"]["cache"] is None
    cached = session.exec(select(Subscription).where(Subscription.customer_id == w.survivor)).all()
    merged_from = [s.metadata_.get("merged_from") for s in cached]
    assert sorted(m for m in merged_from if m) == sorted(w.old_subs)
    assert session.get(Customer, w.duplicate).metadata_["merged_into"] == w.survivor
    c = sandbox.client
    keys = {r["idempotency_key"] for r in posts(sandbox) if r["idempotency_key"]}
    assert all(k.startswith(f"merge-{job.id}-") for k in keys if k.startswith("merge-"))
    # Past the old period end (and one more period): per merged subscription, one paid period each —
    # the old one ends, the new one bills from the anchor; no double charge, no free period.
    sandbox.advance(days=35)
    for old_id in w.old_subs:
        old = c.v1.subscriptions.retrieve(old_id)
        assert old.status == "canceled"
        new = next(s for s in c.v1.subscriptions.list(params={"customer": w.survivor, "status": "all"}).data
                   if s.metadata.to_dict().get("merged_from") == old_id)
        new_invoices = [i for i in c.v1.invoices.list(params={"subscription": new.id, "limit": 100}).data
                        if i.amount_due > 0]
        old_after = [i for i in c.v1.invoices.list(params={"subscription": old_id, "limit": 100}).data
                     if i.period_start >= old["items"].data[0].current_period_end]
        assert len(new_invoices) == 1, [(i.id, i.amount_due) for i in new_invoices]
        assert old_after == []


@pytest.mark.parametrize("moment", ["before_call", "after_call"])
@pytest.mark.parametrize("seq", range(1, len(STEP_KINDS) + 1))
def test_kill_at_every_step_and_resume(sandbox: SandboxServer, session: Session, seq: int, moment: str) -> None:
    w = make_world(sandbox)
    _, job = plan_and_job(w, session)

    def crash(when: str, step: merge.MergeStep) -> None:
        if step.seq == seq and when == moment:
            raise merge.MergeCrash(f"killed {moment} step {seq}")

    with pytest.raises(merge.MergeCrash):
        merge.run_job(job.id, user=ADMIN, session=session, hook=crash)
    session.expire_all()
    assert session.get(MergeJob, job.id).status == "running"  # a dead process leaves it 'running'
    with pytest.raises(merge.MergeError, match="running in another session"):
        merge.run_job(job.id, user=ADMIN, session=session)  # not stolen from a live runner by accident
    runner_died_long_ago(session, job.id)
    job = merge.run_job(job.id, user=ADMIN, session=session, takeover=True)
    assert_end_state(sandbox, w, job, session)
    again = merge.run_job(job.id, user=ADMIN, session=session)  # finished exactly once
    assert again.status == "succeeded"


def test_stop_between_steps_and_resume(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox)
    _, job = plan_and_job(w, session)

    def stop_after_two(when: str, step: merge.MergeStep) -> None:
        if when == "after_call" and step.seq == 2:
            merge.request_stop(job.id, user=ADMIN, session=session)

    stopped = merge.run_job(job.id, user=ADMIN, session=session, hook=stop_after_two)
    assert stopped.status == "stopped"
    assert [s.status for s in merge.steps_of(job.id, session=session)][:3] == ["done", "done", "pending"]
    job = merge.run_job(job.id, user=ADMIN, session=session)
    assert_end_state(sandbox, w, job, session)


def test_only_admins_merge(sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox, duplicate_extra=False)
    since = last_seq(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    with pytest.raises(merge.MergeError, match="only admins"):
        merge.create_job(plan, user=SUPPORT, session=session, confirm_text=w.survivor)
    refused = session.exec(select(AuditLog).where(AuditLog.action == "merge", AuditLog.result == "refused")).all()
    assert [r.actor for r in refused] == ["support@example.test"]
    with pytest.raises(merge.MergeError, match="Type the survivor's id"):
        merge.create_job(plan, user=ADMIN, session=session, confirm_text="cus_wrong")
    # A job an admin created cannot be run, stopped or abandoned by anyone else either; each refusal is audited.
    job = merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)
    for action in (lambda: merge.run_job(job.id, user=SUPPORT, session=session),
                   lambda: merge.request_stop(job.id, user=SUPPORT, session=session),
                   lambda: merge.abandon_job(job.id, user=SUPPORT, session=session)):
        with pytest.raises(merge.MergeError, match="only admins"):
            action()
    session.expire_all()
    stored = session.get(MergeJob, job.id)
    assert (stored.status, stored.stop_requested) == ("planned", False)
    refused = session.exec(select(AuditLog).where(AuditLog.action == "merge", AuditLog.result == "refused",
                                                  AuditLog.correlation_id == job.id)).all()
    assert len(refused) == 3
    assert {r.actor for r in refused} == {"support@example.test"}
    assert posts(sandbox, since) == []


def test_with_rate_limits_and_server_errors_killed_midway(sandbox: SandboxServer, session: Session) -> None:
    """20% 429 and 5% 500 on every Stripe call, plus a kill after step 3: same end state, no duplicates."""
    w = make_world(sandbox)
    sandbox.faults(rate_limit=0.2, server_error=0.05, seed=3)
    _, job = plan_and_job(w, session)

    def crash(when: str, step: merge.MergeStep) -> None:
        if step.seq == 3 and when == "after_call":
            raise merge.MergeCrash("killed")

    with pytest.raises(merge.MergeCrash):
        merge.run_job(job.id, user=ADMIN, session=session, hook=crash)
    runner_died_long_ago(session, job.id)
    for _ in range(5):  # what an admin does on the page: Resume until it is done
        job = merge.run_job(job.id, user=ADMIN, session=session, takeover=True)
        if job.status == "succeeded":
            break
    faulted = [r for r in sandbox.requests() if r["status"] in (429, 500)]
    sandbox.faults()
    assert faulted, "the faults were not injected"
    assert_end_state(sandbox, w, job, session)


def test_abandoned_half_merge_is_finished_by_a_new_plan_without_a_second_copy(
        sandbox: SandboxServer, session: Session) -> None:
    w = make_world(sandbox)
    _, first = plan_and_job(w, session)

    def crash(when: str, step: merge.MergeStep) -> None:
        if step.seq == 2 and when == "before_call":  # sub 1 recreated, its old one not yet set to end
            raise merge.MergeCrash("killed")

    with pytest.raises(merge.MergeCrash):
        merge.run_job(first.id, user=ADMIN, session=session, hook=crash)
    with pytest.raises(merge.MergeError, match="resume it, or abandon it"):
        plan_and_job(w, session)
    with pytest.raises(merge.MergeError, match="stop it first"):
        merge.abandon_job(first.id, user=ADMIN, session=session)  # still 'running' (fresh): not yet
    merge.request_stop(first.id, user=ADMIN, session=session)
    session.execute(update(MergeJob).where(MergeJob.id == first.id).values(status="stopped"))
    session.commit()
    assert merge.abandon_job(first.id, user=ADMIN, session=session).status == "abandoned"
    plan, second = plan_and_job(w, session)
    assert [s.kind for s in plan.steps][:2] == ["cancel_old_subscription", "recreate_subscription"]
    assert any(x.code == "already_recreated" for x in plan.warnings)
    assert merge.run_job(second.id, user=ADMIN, session=session).status == "succeeded"
    c = sandbox.client
    survivor_subs = c.v1.subscriptions.list(params={"customer": w.survivor, "status": "all"}).data
    for old_id in w.old_subs:
        copies = [s for s in survivor_subs if s.metadata.to_dict().get("merged_from") == old_id]
        assert len(copies) == 1, old_id
        assert copies[0].status in ("active", "trialing"), old_id
        assert c.v1.subscriptions.retrieve(old_id).status == "canceled"
    assert c.v1.customers.retrieve(w.duplicate).balance == 0
