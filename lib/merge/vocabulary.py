"""The merge's closed sets (step kinds, job and step statuses, warning codes) and its errors."""

from __future__ import annotations

from enum import StrEnum

RECREATE_STATUSES = ("active", "trialing")
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "paused", "incomplete")
MERGE_KEYS = ("merged_from", "merged_into", "merge_job")  # never copied between customers


class StepKind(StrEnum):
    """One step of a merge (`merge_steps.kind`), in the order a plan lists them."""

    RECREATE_SUBSCRIPTION = "recreate_subscription"  # a copy of a live subscription on the survivor
    CANCEL_OLD_SUBSCRIPTION = "cancel_old_subscription"  # the duplicate's one, now, without refund or proration
    MOVE_BALANCE = "move_balance"  # a pair of balance transactions
    COPY_TAX_ID = "copy_tax_id"
    COPY_METADATA = "copy_metadata"  # keys the survivor lacks
    MARK_DUPLICATE = "mark_duplicate"  # metadata merged_into on the duplicate (it is kept, not deleted)


class JobStatus(StrEnum):
    """A merge job's state (`merge_jobs.status`)."""

    PLANNED = "planned"
    RUNNING = "running"
    STOPPED = "stopped"  # stopped on request before a step; resumable
    FAILED = "failed"  # a step, the preflight or the verification failed; resumable
    SUCCEEDED = "succeeded"
    ABANDONED = "abandoned"


UNFINISHED = (JobStatus.PLANNED, JobStatus.RUNNING, JobStatus.STOPPED, JobStatus.FAILED)


class StepStatus(StrEnum):
    """One step's state (`merge_steps.status`)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class WarningCode(StrEnum):
    """What a merge cannot carry over but may still run with (a plan's warnings)."""

    SUBSCRIPTION_PAYMENT_METHOD = "subscription_payment_method"  # a subscription's own card cannot move
    DISCOUNT_ENDS = "discount_ends"  # ends before the next charge: the copy has none (acknowledge)
    DISCOUNT_RESTARTS = "discount_restarts"  # a limited-duration discount starts its duration again
    ALREADY_RECREATED = "already_recreated"  # an earlier merge made the copy: only the old one is canceled
    NO_PAYMENT_METHOD = "no_payment_method"  # the survivor has no usable card to charge (acknowledge)
    CARDS_STAY = "cards_stay"  # the duplicate's payment methods stay where they are


class MergeError(Exception):
    """A merge cannot be planned or run; the message says why and what to do."""


class MergeCrash(BaseException):  # a simulated kill, not an error to handle
    """Raised by a test's stop hook to simulate the process dying between two instructions."""
