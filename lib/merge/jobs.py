"""Merge jobs in the database: a plan stored with its steps, one runner at a time (compare-and-set claims and
a heartbeat), each step's idempotency key and audit row, stop and abandon, the jobs of a customer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, col, select

from lib import audit
from lib.audit import AuditAction, AuditResult
from lib.auth import User, can
from lib.merge.plan import Plan
from lib.merge.vocabulary import UNFINISHED, JobStatus, MergeError, StepStatus
from lib.models import AuditLog, MergeJob, MergeStep, utcnow

HEARTBEAT_SECONDS = 10  # a live runner touches its job's updated_at this often (its heartbeat)
STALE_RUNNING_SECONDS = 60  # a 'running' job whose heartbeat is this old is taken to have crashed
RESUMABLE = (JobStatus.PLANNED, JobStatus.STOPPED, JobStatus.FAILED)  # may be claimed, or abandoned


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's `rowcount`; `Session.execute` is typed as a plain Result)."""
    return int(result.rowcount)


def require_admin(user: User, *, session: Session, customer_id: str | None = None,
                   object_id: str | None = None, correlation_id: str | None = None) -> None:
    """Every merge action is for admins only: a refusal is recorded in the audit log and raised."""
    if can(user, "merge"):
        return
    message = f"Your role ({user.role_label}) may not merge customers: only admins can."
    row = audit.start(session=session, actor=user.email, role=user.role_label, action=AuditAction.MERGE,
                      customer_id=customer_id, object_id=object_id, correlation_id=correlation_id)
    audit.finish(row, session=session, result=AuditResult.REFUSED, error=message)
    raise MergeError(message)


def step_key(job_id: str, seq: int, kind: str) -> str:
    """The idempotency key of one step: the same on every retry and every resume after a crash."""
    return f"merge-{job_id}-{seq:02d}-{kind}"


def attempt_key(step: MergeStep) -> str:
    """The step's key, with a suffix after a *failed* attempt: Stripe replays a saved error (even a 500) for a
    key, so a resume after a failure needs a new one. That is safe because every step first looks in Stripe
    for its own earlier effect (metadata `merge_job`) before it writes."""
    failed = int((step.result or {}).get("failed_attempts", 0))
    return step.idempotency_key if failed == 0 else f"{step.idempotency_key}-r{failed}"


def create_job(plan: Plan, *, user: User, session: Session, acknowledged: Sequence[str] = (),
               confirm_text: str = "") -> MergeJob:
    """Store the plan as a job with its steps (nothing is written to Stripe yet)."""
    require_admin(user, session=session, customer_id=plan.duplicate_id, object_id=plan.survivor_id)
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
                   duplicate_id=plan.duplicate_id, status=JobStatus.PLANNED,
                   plan={**plan.to_dict(), "acknowledged": list(acknowledged)})
    session.add(job)
    for seq, st in enumerate(plan.steps, start=1):
        session.add(MergeStep(job_id=job.id, seq=seq, kind=st.kind, params={"title": st.title, **st.params},
                              idempotency_key=step_key(job.id, seq, st.kind)))
    session.commit()
    audit.record(session=session, actor=user.email, role=user.role_label, action=AuditAction.MERGE_PLANNED,
                 result=AuditResult.SUCCEEDED, customer_id=plan.duplicate_id, object_id=plan.survivor_id,
                 correlation_id=job.id, details={"steps": len(plan.steps)})
    return job


def steps_of(job_id: str, *, session: Session) -> list[MergeStep]:
    """The job's steps in the order they run."""
    stmt = select(MergeStep).where(col(MergeStep.job_id) == job_id).order_by(col(MergeStep.seq))
    return list(session.exec(stmt).all())


def abandon_job(job_id: str, *, user: User, session: Session) -> MergeJob:
    """Give up a stopped or failed job (its finished steps stay done in Stripe; a new plan accounts for them)."""
    require_admin(user, session=session, correlation_id=job_id)
    got = session.execute(update(MergeJob).where(col(MergeJob.id) == job_id, col(MergeJob.status).in_(RESUMABLE))
                          .values(status=JobStatus.ABANDONED, updated_at=utcnow(), finished_at=utcnow()))
    session.commit()
    if _rowcount(got) != 1:
        raise MergeError("Only a planned, stopped or failed merge can be abandoned (a running one: stop it first).")
    audit.record(session=session, actor=user.email, role=user.role_label, action=AuditAction.MERGE_ABANDONED,
                 result=AuditResult.SUCCEEDED, correlation_id=job_id)
    job = session.get(MergeJob, job_id)
    assert job is not None
    session.refresh(job)
    return job


def request_stop(job_id: str, *, user: User, session: Session) -> None:
    """Ask a running job to stop before its next step (it finishes the step it is on)."""
    require_admin(user, session=session, correlation_id=job_id)
    session.execute(update(MergeJob).where(col(MergeJob.id) == job_id).values(stop_requested=True, updated_at=utcnow()))
    session.commit()


def claim_job(job_id: str, *, session: Session, takeover: bool) -> MergeJob:
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
    if job.status == JobStatus.SUCCEEDED:
        return job
    cond: ColumnElement[bool] = col(MergeJob.status).in_(RESUMABLE)
    if job.status == JobStatus.RUNNING:
        silent = (utcnow() - job.updated_at).total_seconds()
        if silent <= STALE_RUNNING_SECONDS:
            raise MergeError(
                f"This merge is running in another session (its last sign of life was {int(silent)} s ago). Wait "
                f"for it; if that session has stopped, you can resume once it has been silent for "
                f"{STALE_RUNNING_SECONDS} s.")
        stale_before = utcnow() - timedelta(seconds=STALE_RUNNING_SECONDS)
        cond = cond | ((col(MergeJob.status) == JobStatus.RUNNING) & (col(MergeJob.updated_at) < stale_before))
    got = session.execute(update(MergeJob).where(col(MergeJob.id) == job_id, cond)
                          .values(status=JobStatus.RUNNING, stop_requested=False, error=None, updated_at=utcnow()))
    if _rowcount(got) != 1:
        session.rollback()
        raise MergeError("This merge was just started from another session.")
    session.execute(update(MergeStep)
                    .where(col(MergeStep.job_id) == job_id, col(MergeStep.status) == StepStatus.RUNNING)
                    .values(status=StepStatus.PENDING))
    session.commit()
    session.refresh(job)
    return job


@contextmanager
def heartbeat(job_id: str, session: Session) -> Iterator[None]:
    """While the body runs, touch the job's updated_at every HEARTBEAT_SECONDS from a thread of its own (a
    long step still shows signs of life); it stops with the body, or with the process if that is killed."""
    stop = threading.Event()
    engine = session.get_bind()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with Session(engine) as own:
                    own.execute(update(MergeJob)
                                .where(col(MergeJob.id) == job_id, col(MergeJob.status) == JobStatus.RUNNING)
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


def claim_step(step: MergeStep, *, session: Session) -> bool:
    """pending/failed → running for this runner only (False: another runner has it or has done it)."""
    got = session.execute(update(MergeStep).where(col(MergeStep.id) == step.id,
                                                  col(MergeStep.status).in_([StepStatus.PENDING, StepStatus.FAILED]))
                          .values(status=StepStatus.RUNNING, started_at=utcnow(), error=None))
    session.execute(update(MergeJob).where(col(MergeJob.id) == step.job_id).values(updated_at=utcnow()))
    session.commit()
    session.refresh(step)
    return _rowcount(got) == 1


def step_audit(job: MergeJob, step: MergeStep, *, user: User, session: Session) -> AuditLog:
    """The audit row of this step: the one an interrupted run of it left 'started', else a new one — each
    step is audited once however often it is resumed."""
    earlier = (step.result or {}).get("audit_id")
    if earlier:
        row = session.get(AuditLog, earlier)
        if row is not None and row.result == AuditResult.STARTED:
            return row
    row = audit.start(session=session, actor=user.email, role=user.role_label, action=AuditAction.MERGE_STEP,
                      customer_id=job.duplicate_id, object_id=job.survivor_id, flow=step.kind,
                      correlation_id=job.id,
                      details={"seq": step.seq, "idempotency_key": attempt_key(step),
                               "title": step.params.get("title")})
    step.result = {**(step.result or {}), "audit_id": row.id}
    session.add(step)
    session.commit()
    return row


def never_started(job_id: str, *, session: Session) -> bool:
    return not any(st.status != StepStatus.PENDING for st in steps_of(job_id, session=session))


def latest_jobs(customer_id: str, *, session: Session, limit: int = 5) -> list[MergeJob]:
    """The newest merge jobs that involve a customer (for resuming from the page)."""
    stmt = (select(MergeJob)
            .where((col(MergeJob.survivor_id) == customer_id) | (col(MergeJob.duplicate_id) == customer_id))
            .order_by(col(MergeJob.created_at).desc()).limit(limit))
    return list(session.exec(stmt).all())


def unfinished_jobs(*, session: Session, limit: int = 20) -> list[MergeJob]:
    stmt = (select(MergeJob).where(col(MergeJob.status).in_(UNFINISHED))
            .order_by(col(MergeJob.created_at).desc()).limit(limit))
    return list(session.exec(stmt).all())
