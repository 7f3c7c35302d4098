"""The cache schema: one table per Stripe resource, keyed by the Stripe id, plus bookkeeping.

This schema is a public interface (finance queries it with SQL): document every change in
docs/schema.md and add an Alembic migration after the newest one in lib/migrations/versions (databases in use
are at 0001 or later, so 0001 is never regenerated any more).
Times are timezone-aware UTC (SQLModel's UTCDateTime: SQLite stores them without an offset and
they come back as UTC); money in minor units.
`version_ts` is the Stripe time (epoch seconds) at which the cached state was true: an incoming
state older than it is never applied (newer wins).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

# The triggers that keep subscription_totals and invoice_recovery_daily exact are in lib/triggers.py;
# re-exported so that `from lib.models import ensure_derived_state` keeps working.
from lib.triggers import (  # noqa: F401
    RECOVERY_TRIGGERS,
    TOTALS_TRIGGERS,
    drop_derived_state,
    ensure_derived_state,
    rebuild_invoice_recovery_sql,
)

# Subscriptions whose mrr counts as MRR everywhere: customers.mrr, the overview and the subscriptions page
# (docs/schema.md). Trials are not revenue yet; past-due ones still are until dunning ends.
MRR_STATUSES = ("active", "past_due")


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
        # one currency sorted by MRR (ties by id): a page reads ~25 entries instead of sorting 50,000 rows; also
        # the currency list (a loose index scan of its leading column)
        Index("ix_customers_currency_mrr", "currency", "mrr", "id"),
        # one currency, newest first (the default sort): ~25 entries again. A plain `currency` index made SQLite
        # sort 200,000 rows of a common currency (70 ms)
        Index("ix_customers_currency_created", "currency", "created", "id"),
        # "delinquent only", newest first. Partial: only delinquent customers have entries, so the sync rarely
        # writes it. Its WHERE is the term each database's query renders (SQLite uses a partial index only
        # then); the flag leads anyway so both planners see the equality they saw on the old full index;
        # `deleted` lets the capped count of non-deleted ones read the index alone.
        # search by company (an email domain): one index range, newest first like the default sort; with
        # `deleted`, the count of a company's customers reads only its entries (no table row)
        Index("ix_customers_email_domain", "email_domain", "created", "id", "deleted"),
        Index("ix_customers_delinquent_created", "delinquent", "created", "id", "deleted",
              postgresql_where=text("delinquent"), sqlite_where=text("delinquent = 1")),
    )
    id: str = Field(primary_key=True, max_length=64)
    email: str | None = None
    email_normalized: str | None = None  # case-folded, trimmed (indexed above)
    email_canonical: str | None = Field(default=None, index=True)  # + plus-tag removed, gmail dots removed
    email_domain: str | None = None  # after the last '@', case-folded (lib.normalize.email_domain; indexed above)
    name: str | None = None
    name_search: str | None = None  # lower-cased, accents removed (indexed above)
    phone: str | None = None
    phone_normalized: str | None = Field(default=None, index=True)  # E.164 when parseable
    created: datetime = Field(index=True)
    currency: str | None = None  # indexed by (currency, mrr, id) and (currency, created, id) above
    balance: int = Field(default=0, sa_type=BigInteger)
    delinquent: bool = False  # partial index above
    deleted: bool = False  # no index: 99% are not deleted, so it never narrows a query
    default_payment_method_id: str | None = None
    address: dict[str, Any] = _json("address")
    metadata_: dict[str, Any] = _json()
    # metadata.merged_into when it is a valid cus_ id: merged away into that customer (lib/merge/); indexed so
    # a survivor's "merged from" list is one index range
    merged_into: str | None = Field(default=None, index=True, max_length=64)
    mrr: int = Field(default=0, sa_type=BigInteger, index=True)  # sum of its live subscriptions' mrr
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # one status and currency (counts, MRR sums, and the page's status + currency filter: SQLite reads
        # these entries instead of every row of the status); with the next one, the status filters' index
        Index("ix_subscriptions_status_currency_mrr", "status", "currency", "mrr"),
        # "cancels at period end", newest first: a page reads ~25 index entries instead of scanning. Partial,
        # like the next one: only subscriptions that cancel at period end have entries (WHERE as each database's
        # query renders it; the flag leads so both planners see the equality they saw on the old full index)
        Index("ix_subscriptions_canceling_created", "cancel_at_period_end", "created", "id",
              postgresql_where=text("cancel_at_period_end"), sqlite_where=text("cancel_at_period_end = 1")),
        # the same with a currency: the page's ids and its capped count come from the index alone. Currency
        # first: PostgreSQL drops the flag from the index condition (the WHERE implies it), so a leading flag
        # would leave it scanning every currency's entries
        Index("ix_subscriptions_canceling_currency_created", "currency", "cancel_at_period_end", "created", "id",
              postgresql_where=text("cancel_at_period_end"), sqlite_where=text("cancel_at_period_end = 1")),
        # "trial ending within N days": status + trial_end range, created/id so the matches' ids come from the
        # index; also the status filters (leading column: no separate status index)
        Index("ix_subscriptions_status_trial_end", "status", "trial_end", "created", "id"),
    )
    id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(index=True)  # the customer's subscriptions; the sync's mrr sum per customer
    status: str  # status-led indexes above
    created: datetime = Field(index=True)
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = Field(default=False)
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    trial_end: datetime | None = None
    collection_method: str | None = None
    currency: str | None = None
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


class SubscriptionTotal(SQLModel, table=True):
    """Count and MRR of subscriptions per (status, currency): derived state for the headline sums.

    Kept exact by database triggers on `subscriptions` (`ensure_derived_state`), in the same transaction
    as every insert, update and delete, whoever writes (sync, refresh, tests). Summing 730,000 rows per
    page view took 60-130 ms; this table has a few dozen rows. `currency` is '' when the subscription has
    none (a key column cannot be NULL). Rows may hold zero subscriptions; readers skip those.
    """

    __tablename__ = "subscription_totals"
    status: str = Field(primary_key=True, max_length=32)
    currency: str = Field(primary_key=True, max_length=16)
    subscriptions: int = Field(default=0, sa_type=BigInteger)
    mrr: int = Field(default=0, sa_type=BigInteger)


class InvoiceRecoveryDaily(SQLModel, table=True):
    """Failed and recovered invoice amounts per UTC day and currency: derived state for the weekly chart.

    Kept exact by database triggers on `invoices` (`ensure_derived_state`), in the same transaction as every
    write, whoever writes. Summing ~120,000 index entries per view took 50-65 ms at 3M invoices; a year of
    one currency here is ~730 rows. kind 'failed': an invoice with a failed attempt (still open or
    uncollectible after one or more attempts, or paid after more than one), by the UTC day it was created,
    amount_due. kind 'recovered': paid after more than one attempt, by the UTC day of paid_at, amount_paid.
    kind 'recovered_cohort': the same paid invoices' amount_paid by the UTC day they were created (their failure's
    cohort): the recovery rate of a month of failures is its recovered_cohort ÷ failed (docs/schema.md).
    `day` is a date ('YYYY-MM-DD' text on SQLite, the first 10 characters of the stored UTC datetime). Rows
    may hold zero invoices; readers skip those.
    """

    __tablename__ = "invoice_recovery_daily"
    day: date = Field(primary_key=True)
    currency: str = Field(primary_key=True, max_length=16)
    kind: str = Field(primary_key=True, max_length=16)  # failed | recovered | recovered_cohort
    invoices: int = Field(default=0, sa_type=BigInteger)
    amount: int = Field(default=0, sa_type=BigInteger)  # minor units of `currency`


_UNPAID = "status IN ('open', 'uncollectible')"  # the failed worklist's statuses (lib/queries/failed._failed_base)


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"
    __table_args__ = (
        # a customer's invoices (its leading column), and their open ones
        Index("ix_invoices_customer_status", "customer_id", "status"),
        # covering index for the failed-payments page: its worklist (in every sort: next_payment_attempt is
        # here for "next retry"), sums per currency/code/age and the weekly failed-vs-recovered chart read
        # only this index, never the 3-million-row table. Its leading `status` serves every status filter.
        Index("ix_invoices_status_attempt", "status", "attempt_count", "currency", "created", "amount_remaining",
              "amount_due", "amount_paid", "paid_at", "decline_code", "failure_code", "id", "next_payment_attempt"),
        # the failed worklist by date: PostgreSQL reads ~25 entries backwards (0.2 ms; sorting the covering index's
        # 75,000 failed entries takes 25). Partial: only unpaid invoices have entries, and a prepared (generic)
        # plan, which cannot prove the predicate, never picks it for a date range over all invoices (a full
        # `created` index drew the age filter's capped count into reading 128,000 rows: 90 ms). SQLite does not
        # match `status IN (?, ?)` to it and sorts the covering index's entries instead (3 ms).
        Index("ix_invoices_unpaid_created", "created", "id",
              postgresql_where=text(_UNPAID), sqlite_where=text(_UNPAID)),
    )
    id: str = Field(primary_key=True, max_length=64)
    customer_id: str  # indexed by ix_invoices_customer_status
    subscription_id: str | None = None
    number: str | None = None
    status: str | None = None  # indexed by ix_invoices_status_attempt
    currency: str = "usd"
    amount_due: int = Field(default=0, sa_type=BigInteger)
    amount_paid: int = Field(default=0, sa_type=BigInteger)
    amount_remaining: int = Field(default=0, sa_type=BigInteger)
    total: int = Field(default=0, sa_type=BigInteger)
    attempt_count: int = 0
    attempted: bool = False
    next_payment_attempt: datetime | None = None
    created: datetime  # the failed worklist's date sort: ix_invoices_unpaid_created
    due_date: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    marked_uncollectible_at: datetime | None = None
    hosted_invoice_url: str | None = Field(default=None, sa_type=Text)
    customer_email: str | None = None
    collection_method: str | None = None
    billing_reason: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    failure_message: str | None = Field(default=None, sa_type=Text)
    # the card the last failed attempt charged (its payment intent's last_payment_error.payment_method); a
    # different default card now means a retry would charge another card ("new card since the failure")
    failed_payment_method_id: str | None = None
    livemode: bool = False
    version_ts: int = Field(default=0, sa_type=BigInteger)
    synced_at: datetime = Field(default_factory=utcnow)


class InvoiceLine(SQLModel, table=True):
    """Every line of every cached invoice (fetched in full, beyond the 10 Stripe embeds)."""

    __tablename__ = "invoice_lines"
    id: str = Field(primary_key=True, max_length=64)
    invoice_id: str = Field(index=True)  # the sync replaces an invoice's lines
    subscription_id: str | None = None
    subscription_item_id: str | None = None
    price_id: str | None = None
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


class WebhookEndpoint(SQLModel, table=True):
    """The account's webhook endpoints as Stripe last listed them (every sync run replaces the set): what the
    Sync page shows next to the deliveries received. The signing secret is never stored."""

    __tablename__ = "webhook_endpoints"
    id: str = Field(primary_key=True, max_length=64)
    url: str = Field(sa_type=Text)
    status: str = Field(max_length=16)  # enabled | disabled
    enabled_events: list[str] = Field(default_factory=list, sa_column=Column("enabled_events", JSON,
                                                                               nullable=False, default=list))
    description: str | None = Field(default=None, sa_type=Text)
    api_version: str | None = Field(default=None, max_length=32)
    created: datetime | None = None
    synced_at: datetime = Field(default_factory=utcnow)


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
    action: str = Field(index=True)  # a lib.audit.AuditAction: portal_link, merge_step, followup, export_…
    customer_id: str | None = Field(default=None, index=True)
    object_id: str | None = None
    flow: str | None = None
    result: str = "started"  # a lib.audit.AuditResult: started | succeeded | failed | refused
    error: str | None = Field(default=None, sa_type=Text)
    details: dict[str, Any] = _json("details")
    correlation_id: str | None = Field(default=None, index=True)


class InvoiceFollowup(SQLModel, table=True):
    """Finance's follow-up status and note per failed invoice (history goes to audit_log)."""

    __tablename__ = "invoice_followups"
    invoice_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="open", index=True)  # a lib.followups.FollowupStatus
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
    status: str = Field(default="planned", index=True)  # a lib.merge.JobStatus
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
    kind: str  # a lib.merge.StepKind
    params: dict[str, Any] = _json("params")
    status: str = "pending"  # a lib.merge.StepStatus: pending | running | done | failed
    idempotency_key: str
    result: dict[str, Any] = _json("result")
    error: str | None = Field(default=None, sa_type=Text)
    started_at: datetime | None = None
    finished_at: datetime | None = None


# --- optional, PostgreSQL-only search index ---------------------------------------------------------

NAME_TRGM_INDEX = "ix_customers_name_trgm"


def ensure_optional_indexes(connection: Any) -> bool:
    """Create the trigram index for name substring search on PostgreSQL when the server allows it.

    Not part of the Alembic migration because it depends on the `pg_trgm` extension, which a managed
    PostgreSQL may not offer or may not let this role create. Run after each migration (idempotent); on
    failure the search still works, reading every name instead. Returns whether the index exists.
    SQLite has no trigram b-tree; there the name index is small enough to scan.
    """
    from sqlalchemy import text

    if connection.dialect.name != "postgresql":
        return False
    exists = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"),
                                {"name": NAME_TRGM_INDEX}).scalar()
    if exists:
        return True
    try:
        with connection.begin_nested():
            # in `public`, not the cache's schema: dropping one cache's schema must not drop the extension
            # (and with it every other schema's trigram index)
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
            ext_schema = connection.execute(text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_trgm'")).scalar_one()
            opclass = f'"{ext_schema}".gin_trgm_ops'
            connection.execute(text(f"CREATE INDEX IF NOT EXISTS {NAME_TRGM_INDEX} ON customers "
                                    f"USING gin (name_search {opclass})"))
    except Exception:  # noqa: BLE001 — not available or not permitted: the search falls back to a scan
        return False
    return True

