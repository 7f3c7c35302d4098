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

The package, by concern: `vocabulary` (step kinds, statuses, warning codes, errors), `facts` (one customer as
Stripe has it now, the survivor suggestion), `terms` (a subscription's terms as the copy carries them), `plan`
(blockers, steps, warnings; `plan_merge`), `jobs` (stored jobs and steps, claims, heartbeat, audit rows),
`steps` (what each step does in Stripe) and `run` (`run_job`: preflight, steps, verification).
"""

from lib.merge.facts import Facts, read_facts, suggest_survivor
from lib.merge.jobs import (
    STALE_RUNNING_SECONDS,
    abandon_job,
    attempt_key,
    create_job,
    latest_jobs,
    request_stop,
    step_key,
    steps_of,
    unfinished_jobs,
)
from lib.merge.plan import (
    MergeWarning,
    Plan,
    PlanStep,
    build_plan,
    plan_blockers,
    plan_merge,
    plan_steps,
    plan_warnings,
    with_survivor,
)
from lib.merge.run import StepHook, run_job, verify
from lib.merge.terms import describe_items, next_charge_at
from lib.merge.vocabulary import (
    UNFINISHED,
    JobStatus,
    MergeCrash,
    MergeError,
    StepKind,
    StepStatus,
    WarningCode,
)
from lib.models import MergeJob, MergeStep

__all__ = [
    "STALE_RUNNING_SECONDS", "UNFINISHED", "Facts", "JobStatus", "MergeCrash", "MergeError", "MergeJob", "MergeStep",
    "MergeWarning", "Plan", "PlanStep", "StepHook", "StepKind", "StepStatus", "WarningCode", "abandon_job",
    "attempt_key", "build_plan", "create_job", "describe_items", "latest_jobs", "next_charge_at", "plan_blockers",
    "plan_merge", "plan_steps", "plan_warnings", "read_facts", "request_stop", "run_job", "step_key", "steps_of",
    "suggest_survivor", "unfinished_jobs", "verify", "with_survivor",
]
