from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lib import merge
from lib.config import get_settings
from tests.merge.invariants import Snapshot, assert_unchanged, snapshot


@pytest.fixture(autouse=True)
def _fast_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox is local: lift the request budget so the kill-and-resume matrix stays quick."""
    monkeypatch.setenv("STRIPE_REQUESTS_PER_SECOND", "2000")
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def merge_invariants(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every merge a test runs in-process is checked: before the first job for a duplicate is stored, Stripe's
    and the cache's MRR per currency and each live subscription's next charge are noted; whenever a run of a
    job for it succeeds, they must be unchanged (tests/merge/invariants.py). Yields the checked job ids."""
    if "sandbox" not in request.fixturenames or "session" not in request.fixturenames:
        yield []
        return
    sb = request.getfixturevalue("sandbox")
    before: dict[str, Snapshot] = {}
    checked: list[str] = []
    real_create, real_run = merge.create_job, merge.run_job

    def create_job(plan: merge.Plan, *, session: Any, **kw: Any) -> merge.MergeJob:
        if plan.duplicate_id not in before and not plan.blocked:
            before[plan.duplicate_id] = snapshot(sb, session, plan.duplicate_id)
        return real_create(plan, session=session, **kw)

    def run_job(job_id: str, *, session: Any, **kw: Any) -> merge.MergeJob:
        job = real_run(job_id, session=session, **kw)
        if job.status == "succeeded" and job.duplicate_id in before and job.id not in checked:
            # A discount ending before the next charge cannot be carried with its end date: the plan says so
            # (acknowledged warning discount_ends) and MRR may change; the charges may not.
            same_mrr = "discount_ends" not in (job.plan.get("acknowledged") or [])
            assert_unchanged(sb, session, before[job.duplicate_id], job.survivor_id, mrr=same_mrr)
            checked.append(job.id)
        return job

    monkeypatch.setattr(merge, "create_job", create_job)
    monkeypatch.setattr(merge, "run_job", run_job)
    yield checked
