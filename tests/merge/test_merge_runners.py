"""One runner per merge: Resume takes a job over only once the other runner's heartbeat is stale, and every
step is audited once — also when a runner that froze comes back after a takeover."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from lib import merge
from lib.models import AuditLog, MergeJob
from tests.merge.world import ADMIN, assert_end_state, make_world, runner_died_long_ago
from tests.utils.sandbox import SandboxServer


class Paused:
    """A runner in another thread (its own session), held inside step `seq` until released."""

    def __init__(self, engine: Engine, job_id: str, seq: int) -> None:
        self.inside, self.release = threading.Event(), threading.Event()
        self.outcome: list[object] = []

        def hook(when: str, step: merge.MergeStep) -> None:
            if step.seq == seq and when == "before_call":
                self.inside.set()
                assert self.release.wait(60)

        def run() -> None:
            with Session(engine, expire_on_commit=False) as own:
                try:
                    self.outcome.append(merge.run_job(job_id, user=ADMIN, session=own, hook=hook).status)
                except merge.MergeError as err:
                    self.outcome.append(err)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.inside.wait(60), "the first runner never reached its step"

    def finish(self) -> object:
        self.release.set()
        self.thread.join(60)
        return self.outcome[0]


def _job(sandbox: SandboxServer, session: Session) -> tuple[object, MergeJob]:
    w = make_world(sandbox)
    plan = merge.plan_merge((w.duplicate, w.survivor), survivor_id=w.survivor)
    return w, merge.create_job(plan, user=ADMIN, session=session, confirm_text=w.survivor)


def _step_rows(session: Session, job_id: str) -> list[AuditLog]:
    session.expire_all()
    return list(session.exec(select(AuditLog).where(AuditLog.correlation_id == job_id,
                                                    AuditLog.action == "merge_step")).all())


def test_resume_while_the_other_runner_is_alive_is_refused(sandbox: SandboxServer, session: Session,
                                                           db: Engine) -> None:
    w, job = _job(sandbox, session)
    first = Paused(db, job.id, seq=4)
    with pytest.raises(merge.MergeError, match="running in another session"):
        merge.run_job(job.id, user=ADMIN, session=session, takeover=True)  # "Resume (the other session …)"
    assert first.finish() == "succeeded"
    session.expire_all()
    assert_end_state(sandbox, w, session.get(MergeJob, job.id), session)
    assert len(_step_rows(session, job.id)) == len(merge.steps_of(job.id, session=session))


def test_a_long_step_keeps_its_job_alive_with_a_heartbeat(sandbox: SandboxServer, session: Session, db: Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge.jobs, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(merge.jobs, "STALE_RUNNING_SECONDS", 1)
    w, job = _job(sandbox, session)
    first = Paused(db, job.id, seq=2)
    time.sleep(2.5)  # the behaviour under test: time passes beyond the staleness limit inside one step
    with pytest.raises(merge.MergeError, match="running in another session"):
        merge.run_job(job.id, user=ADMIN, session=session, takeover=True)
    assert first.finish() == "succeeded"


def test_a_frozen_runner_that_wakes_after_a_takeover_stops_and_nothing_is_done_twice(
        sandbox: SandboxServer, session: Session, db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge.jobs, "HEARTBEAT_SECONDS", 3600)  # frozen: no beat while it hangs
    w, job = _job(sandbox, session)
    first = Paused(db, job.id, seq=4)
    runner_died_long_ago(session, job.id)
    taken: Callable[[], MergeJob] = lambda: merge.run_job(job.id, user=ADMIN, session=session,  # noqa: E731
                                                          takeover=True)
    assert taken().status == "succeeded"
    outcome = first.finish()
    assert isinstance(outcome, merge.MergeError)
    assert "took this merge over" in str(outcome)
    session.expire_all()
    assert_end_state(sandbox, w, session.get(MergeJob, job.id), session)
    rows = _step_rows(session, job.id)
    assert sorted(r.details["seq"] for r in rows) == [st.seq for st in merge.steps_of(job.id, session=session)]
    creates = [r for r in sandbox.requests() if r["method"] == "POST" and r["path"] == "/v1/subscriptions"
               and r["status"] == 200 and r["idempotency_key"] and job.id in r["idempotency_key"]]
    assert len({r["idempotency_key"] for r in creates}) == 2  # two subscriptions recreated, each once
