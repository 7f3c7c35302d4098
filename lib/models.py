"""The cache schema: one table per Stripe resource, keyed by the Stripe id, plus bookkeeping.

This schema is a public interface (finance queries it with SQL): document every change in
docs/schema.md and regenerate the migration (`make migration`).
Times are timezone-aware UTC (SQLModel's UTCDateTime: SQLite stores them without an offset and
they come back as UTC); money in minor units.
`version_ts` is the Stripe time (epoch seconds) at which the cached state was true: an incoming
state older than it is never applied (newer wins).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, timezone-aware UTC: every datetime column takes aware values."""
    return datetime.now(UTC)


def from_ts(ts: int | float | None) -> datetime | None:
    """A Stripe epoch timestamp as aware UTC (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC)


def _json(name: str = "metadata") -> Any:
    return Field(default_factory=dict, sa_column=Column(name, JSON, nullable=False, default=dict))


# --- Stripe resources -------------------------------------------------------------------------


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        # text_pattern_ops: PostgreSQL answers the search box's prefix LIKE from the index in any collation
        Index("ix_customers_email_normalized", "email_normalized",
              postgresql_ops={"email_normalized": "text_pattern_ops"}),
        Index("ix_customers_name_search", "name_search", postgresql_ops={"name_search": "text_pattern_ops"}),
    )
    id: str = Field(primary_key=True, max_length=64)
    email: str | None = None
    email_normalized: str | None = None  # case-folded, trimmed (indexed above)
    email_canonical: str | None = Field(default=None, index=True)  # + plus-tag removed, gmail dots removed
    name: str | None = None
    name_search: str | None = None  # lower-cased, accents removed (indexed above)
    phone: str | None = None
    phone_normalized: str | None = Field(default=None, index=True)  # E.164 when parseable
    created: datetime = Field(index=True)
    currency: str | None = Field(default=None, index=True)
    balance: int = Field(default=0, sa_type=BigInteger)
    delinquent: bool = Field(default=False, index=True)
    deleted: bool = Field(default=False, index=True)
    default_payment_method_id: str | None = None
    address: dict[str, Any] = _json("address")
    metadata_: dict[str, Any] = _json()
    mrr: int = Field(default=0, sa_type=BigInteger, index=True)  # sum of its live subscriptions' mrr
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # covering index: counts and MRR per status and currency without reading the table
        Index("ix_subscriptions_status_currency_mrr", "status", "currency", "mrr"),
        # "cancels at period end", newest first: a page reads ~25 index entries instead of scanning
        Index("ix_subscriptions_cape_created", "cancel_at_period_end", "created"),
    )
    id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(index=True)
    status: str = Field(index=True)
    created: datetime = Field(index=True)
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = Field(default=False)
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    trial_end: datetime | None = Field(default=None, index=True)
    collection_method: str | None = None
    currency: str | None = Field(default=None, index=True)
    mrr: int = Field(default=0, sa_type=BigInteger)  # monthly amount in minor units
    latest_invoice_id: str | None = None
    default_payment_method_id: str | None = None
    schedule_id: str | None = None
    pause_collection: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    discounts: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=list))
    metadata_: dict[str, Any] = _json()
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


class SubscriptionItem(SQLModel, table=True):
    __tablename__ = "subscription_items"
    id: str = Field(primary_key=True, max_length=64)
    subscription_id: str = Field(index=True)
    price_id: str | None = Field(default=None, index=True)
    product_id: str | None = Field(default=None, index=True)
    product_name: str | None = None
    quantity: int = 1
    unit_amount: int | None = Field(default=None, sa_type=BigInteger)
    currency: str | None = None
    interval: str | None = None
    interval_count: int = 1
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    metadata_: dict[str, Any] = _json()


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_customer_status", "customer_id", "status"),
        # covering index for the failed-payments page: its worklist, sums per currency/code/age and the
        # weekly failed-vs-recovered chart read only this index, never the 3-million-row table
        Index("ix_invoices_status_attempt", "status", "attempt_count", "currency", "created", "amount_remaining",
              "amount_due", "amount_paid", "paid_at", "decline_code", "failure_code", "id"),
    )
    id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(index=True)
    subscription_id: str | None = Field(default=None, index=True)
    number: str | None = None
    status: str | None = Field(default=None, index=True)
    currency: str = "usd"
    amount_due: int = Field(default=0, sa_type=BigInteger)
    amount_paid: int = Field(default=0, sa_type=BigInteger)
    amount_remaining: int = Field(default=0, sa_type=BigInteger)
    total: int = Field(default=0, sa_type=BigInteger)
    attempt_count: int = 0
    attempted: bool = False
    next_payment_attempt: datetime | None = Field(default=None, index=True)
    created: datetime = Field(index=True)
    due_date: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    marked_uncollectible_at: datetime | None = None
    hosted_invoice_url: str | None = Field(default=None, sa_type=Text)
    customer_email: str | None = None
    collection_method: str | None = None
    billing_reason: str | None = None
    failure_code: str | None = None
    decline_code: str | None = Field(default=None, index=True)
    failure_message: str | None = Field(default=None, sa_type=Text)
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


class InvoiceLine(SQLModel, table=True):
    """Every line of every cached invoice (fetched in full, beyond the 10 Stripe embeds)."""

    __tablename__ = "invoice_lines"
    id: str = Field(primary_key=True, max_length=64)
    invoice_id: str = Field(index=True)
    subscription_id: str | None = Field(default=None, index=True)
    subscription_item_id: str | None = None
    price_id: str | None = Field(default=None, index=True)
    product_id: str | None = None
    description: str | None = Field(default=None, sa_type=Text)
    quantity: int | None = None
    amount: int = Field(default=0, sa_type=BigInteger)
    currency: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    proration: bool = False


class PaymentMethod(SQLModel, table=True):
    __tablename__ = "payment_methods"
    id: str = Field(primary_key=True, max_length=64)
    customer_id: str | None = Field(default=None, index=True)  # None once detached
    type: str = "card"
    card_brand: str | None = None
    card_last4: str | None = Field(default=None, index=True)
    card_exp_month: int | None = None
    card_exp_year: int | None = None
    card_fingerprint: str | None = Field(default=None, index=True)
    created: datetime | None = None
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


# --- sync bookkeeping -------------------------------------------------------------------------


class SyncState(SQLModel, table=True):
    """Where each resource's backfill and event cursor stand, committed with the page they describe."""

    __tablename__ = "sync_state"
    resource: str = Field(primary_key=True, max_length=32)
    backfill_cursor: str | None = None  # last id written by an unfinished backfill (starting_after)
    backfill_started_at: datetime | None = None
    backfill_completed_at: datetime | None = None
    event_cursor: str | None = None  # newest processed event id
    event_cursor_created: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    mode: str  # full | incremental | webhook
    status: str = "running"  # running | succeeded | failed | skipped
    counts: dict[str, Any] = _json("counts")  # objects written per resource
    requests: int = 0
    error: str | None = Field(default=None, sa_type=Text)
    host: str | None = None


class StripeEvent(SQLModel, table=True):
    """Processed event ids: an event is applied at most once, whichever way it arrives."""

    __tablename__ = "stripe_events"
    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(index=True)
    created: datetime = Field(index=True)
    object_id: str | None = Field(default=None, index=True)
    source: str = "events"  # events | webhook
    processed_at: datetime = Field(default_factory=utcnow, index=True)


class SyncLock(SQLModel, table=True):
    """SQLite's stand-in for PostgreSQL's advisory lock: one row per held lock."""

    __tablename__ = "sync_lock"
    name: str = Field(primary_key=True, max_length=32)
    holder: str
    acquired_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)


# --- the dashboard's own records --------------------------------------------------------------


class AuditLog(SQLModel, table=True):
    """Who did what, for whom, with which result; written before and after each Stripe write."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(index=True)  # the logged-in user's email
    role: str | None = None
    action: str = Field(index=True)  # portal_link | bulk_portal_links | merge_step | followup | refresh …
    customer_id: str | None = Field(default=None, index=True)
    object_id: str | None = None
    flow: str | None = None
    result: str = "started"  # started | succeeded | failed | refused
    error: str | None = Field(default=None, sa_type=Text)
    details: dict[str, Any] = _json("details")
    correlation_id: str | None = Field(default=None, index=True)


class InvoiceFollowup(SQLModel, table=True):
    """Finance's follow-up status and note per failed invoice (history goes to audit_log)."""

    __tablename__ = "invoice_followups"
    invoice_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="open", index=True)  # open | contacted | promised | resolved
    note: str = Field(default="", sa_type=Text)
    updated_by: str
    updated_at: datetime = Field(default_factory=utcnow)


class MergeJob(SQLModel, table=True):
    __tablename__ = "merge_jobs"
    id: str = Field(primary_key=True, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    created_by: str
    survivor_id: str = Field(index=True)
    duplicate_id: str = Field(index=True)
    status: str = Field(default="planned", index=True)  # planned|running|stopping|stopped|failed|succeeded
    stop_requested: bool = False
    plan: dict[str, Any] = _json("plan")
    error: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class MergeStep(SQLModel, table=True):
    __tablename__ = "merge_steps"
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(index=True)
    seq: int
    kind: str  # recreate_subscription | cancel_at_period_end | move_balance | copy_tax_id | …
    params: dict[str, Any] = _json("params")
    status: str = "pending"  # pending | running | done | failed
    idempotency_key: str
    result: dict[str, Any] = _json("result")
    error: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = None
    finished_at: datetime | None = None
