"""Running a merge job: the preflight before the first write, each step claimed, audited and performed, a stop
request honoured between steps, then a verification against Stripe and a cache refresh."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from sqlmodel import Session

from lib import audit
from lib import gateway as gw
from lib.audit import AuditAction, AuditResult
from lib.auth import User
from lib.config import Settings, get_settings
from lib.merge.jobs import claim_job, claim_step, heartbeat, never_started, require_admin, step_audit, steps_of
from lib.merge.plan import plan_merge
from lib.merge.steps import exec_step
from lib.merge.vocabulary import RECREATE_STATUSES, JobStatus, MergeError, StepKind, StepStatus
from lib.models import MergeJob, MergeStep, utcnow
from lib.sync import refresh_customer

Moment = Literal["before_call", "after_call"]  # around a step's Stripe calls
StepHook = Callable[[Moment, MergeStep], None]  # a test's hook: (moment, step)


def run_job(job_id: str, *, user: User, session: Session, settings: Settings | None = None,
            hook: StepHook | None = None, takeover: bool = False,
            progress: Callable[[MergeStep], None] | None = None) -> MergeJob:
    """Run (or resume) a job to the end, or until a stop request or an error; returns the job."""
    s = settings or get_settings()
    require_admin(user, session=session, correlation_id=job_id)
    first_run = never_started(job_id, session=session)
    job = claim_job(job_id, session=session, takeover=takeover)
    if job.status == JobStatus.SUCCEEDED:
        return job
    role = user.role_label
    if first_run:
        problem = preflight(job, settings=s)
        if problem:
            job.status, job.error, job.updated_at = JobStatus.FAILED, problem, utcnow()
            session.add(job)
            session.commit()
            row = audit.start(session=session, actor=user.email, role=role, action=AuditAction.MERGE_PREFLIGHT,
                              customer_id=job.duplicate_id, object_id=job.survivor_id, correlation_id=job.id)
            audit.finish(row, session=session, result=AuditResult.REFUSED, error=problem)  # why, on the Audit log page
            return job
    with heartbeat(job.id, session):
        for step in steps_of(job_id, session=session):
            if step.status == StepStatus.DONE:
                continue
            session.refresh(job)
            if job.stop_requested:
                job.status, job.updated_at = JobStatus.STOPPED, utcnow()
                session.add(job)
                session.commit()
                audit.record(session=session, actor=user.email, role=role, action=AuditAction.MERGE_STOPPED,
                             result=AuditResult.SUCCEEDED, customer_id=job.duplicate_id, correlation_id=job.id,
                             details={"before_step": step.seq})
                return job
            if not claim_step(step, session=session):
                raise MergeError("Another session took this merge over; it carries on there.")
            row = step_audit(job, step, user=user, session=session)
            if hook:
                hook("before_call", step)
            try:
                result = exec_step(job, step, s)
            except (gw.GatewayError, MergeError) as err:
                message = str(err)
                step.status, step.error, step.finished_at = StepStatus.FAILED, message, utcnow()
                step.result = {"failed_attempts": int((step.result or {}).get("failed_attempts", 0)) + 1}
                job.status, job.error = JobStatus.FAILED, f"Step {step.seq} ({step.kind}): {message}"
                job.updated_at = utcnow()
                session.add(step)
                session.add(job)
                session.commit()
                audit.finish(row, session=session, result=AuditResult.FAILED, error=message)
                return job
            if hook:
                hook("after_call", step)
            step.status, step.result, step.finished_at = StepStatus.DONE, {**result, "audit_id": row.id}, utcnow()
            session.add(step)
            session.commit()
            audit.finish(row, session=session, result=AuditResult.SUCCEEDED, details={"result": result})
            if progress:
                progress(step)
        return finish(job, user=user, session=session, settings=s)


def preflight(job: MergeJob, *, settings: Settings) -> str | None:
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


def verify(job: MergeJob, *, session: Session, settings: Settings) -> list[str]:
    """Re-read both customers from Stripe and list every way the end state differs from the plan."""
    problems: list[str] = []
    steps = steps_of(job.id, session=session)
    surv_subs = gw.subscriptions.for_customer(job.survivor_id, status="all", settings=settings)
    dup_subs = {x["id"]: x for x in gw.subscriptions.for_customer(job.duplicate_id, status="all", settings=settings)}
    for st in steps:
        if st.kind == StepKind.RECREATE_SUBSCRIPTION:
            old = st.params["old_subscription"]
            made = [x for x in surv_subs if (x.get("metadata") or {}).get("merged_from") == old
                    and (x.get("metadata") or {}).get("merge_job") == job.id]
            live = [x for x in made if x.get("status") in RECREATE_STATUSES]
            if len(made) != 1 or len(live) != 1:
                problems.append(f"{old} should exist exactly once, live, on {job.survivor_id}; found {len(made)}.")
            expect = st.params.get("expect") or {}
            if len(live) == 1 and expect.get("status") == "trialing" and live[0].get("status") != "trialing":
                problems.append(f"{old} was trialing but its copy {live[0]['id']} is {live[0].get('status')}.")
        if st.kind == StepKind.CANCEL_OLD_SUBSCRIPTION:
            old_sub = dup_subs.get(st.params["subscription"])
            if old_sub is None or old_sub.get("status") != "canceled":
                problems.append(f"{st.params['subscription']} is not canceled.")
    dup = gw.customers.retrieve(job.duplicate_id, settings=settings)
    if dup.get("deleted"):
        problems.append(f"{job.duplicate_id} was deleted.")
    elif (dup.get("metadata") or {}).get("merged_into") != job.survivor_id:
        problems.append(f"{job.duplicate_id} lacks metadata merged_into={job.survivor_id}.")
    if any(st.kind == StepKind.MOVE_BALANCE for st in steps) and int(dup.get("balance") or 0) != 0:
        problems.append(f"{job.duplicate_id} still has a balance of {dup.get('balance')}.")
    return problems


def refresh_cache(customer_ids: list[str], settings: Settings) -> str | None:
    """Bring the cache up to date for both customers (the sync's refresh); a failure only delays it."""
    try:
        for cid in customer_ids:
            refresh_customer(cid, settings=settings)
    except Exception as exc:  # noqa: BLE001 - Stripe is already correct; only the cache lags
        return f"The merge is done in Stripe but the cache could not be refreshed ({exc}); run a sync."
    return None


def finish(job: MergeJob, *, user: User, session: Session, settings: Settings) -> MergeJob:
    role = user.role_label
    row = audit.start(session=session, actor=user.email, role=role, action=AuditAction.MERGE_VERIFY,
                      customer_id=job.duplicate_id, object_id=job.survivor_id, correlation_id=job.id)
    try:
        problems = verify(job, session=session, settings=settings)
    except gw.GatewayError as err:
        job.status, job.error = JobStatus.FAILED, f"Verification could not read Stripe: {err}"
        job.updated_at = utcnow()
        session.add(job)
        session.commit()
        audit.finish(row, session=session, result=AuditResult.FAILED, error=job.error)
        return job
    cache_note = refresh_cache([job.survivor_id, job.duplicate_id], settings)
    plan = dict(job.plan)
    plan["verification"] = {"problems": problems, "cache": cache_note, "at": int(time.time())}
    job.plan = plan
    job.status = JobStatus.FAILED if problems else JobStatus.SUCCEEDED
    job.error = "; ".join(problems) or None
    job.finished_at = job.updated_at = utcnow()
    session.add(job)
    session.commit()
    audit.finish(row, session=session, result=AuditResult.FAILED if problems else AuditResult.SUCCEEDED,
                 error=job.error, details={"cache": cache_note})
    return job
