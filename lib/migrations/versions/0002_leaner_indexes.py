"""leaner indexes: drop those no query needs or that lead another index; partial ones for rare flags

Every secondary index costs the sync about 1 µs per written row on PostgreSQL. Which query uses each index that
stays, and why the others could go, is in docs/schema.md. Dropped:
- leading prefixes of another index: subscriptions.status (status, trial_end, created, id and
  status, currency, mrr), invoices.customer_id (customer_id, status), invoices.status (status_attempt);
- no query needs them: customers.deleted (99% of rows pass its only filter), subscriptions.trial_end (the
  trial filter reads (status, trial_end, …)), subscriptions.currency (the currency list now comes from
  subscription_totals), invoices.subscription_id, invoices.decline_code (the page filters on
  coalesce(decline_code, failure_code), from status_attempt), invoices.next_payment_attempt (appended to
  status_attempt instead), invoice_lines.subscription_id and price_id (only the sync reads lines, by invoice).
Replaced:
- customers.currency by (currency, created, id): the currency filter in the default sort;
- customers.delinquent and the two cancel-at-period-end indexes by partial indexes that only flagged rows
  enter (each WHERE is the term the queries render on that database, so SQLite uses them too);
- invoices.created by (created, id) WHERE status IN ('open', 'uncollectible'): the failed worklist's date sort
  (a full one lured PostgreSQL's prepared plans for date ranges into reading every invoice in the range);
- ix_invoices_status_attempt rebuilt with next_payment_attempt last ("next retry" sort from the index alone).

The subscription_totals triggers are not Alembic's: lib.models.ensure_derived_state (run after every
migration) swaps PostgreSQL's row-level ones for statement-level ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 03:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_ATTEMPT = ["status", "attempt_count", "currency", "created", "amount_remaining", "amount_due", "amount_paid",
                  "paid_at", "decline_code", "failure_code", "id"]
UNPAID = "status IN ('open', 'uncollectible')"
# (table, index, columns) as 0001 created them
DROPPED = (
    ("customers", "ix_customers_currency", ["currency"]),
    ("customers", "ix_customers_deleted", ["deleted"]),
    ("customers", "ix_customers_delinquent", ["delinquent"]),
    ("subscriptions", "ix_subscriptions_status", ["status"]),
    ("subscriptions", "ix_subscriptions_trial_end", ["trial_end"]),
    ("subscriptions", "ix_subscriptions_currency", ["currency"]),
    ("subscriptions", "ix_subscriptions_cape_created", ["cancel_at_period_end", "created"]),
    ("subscriptions", "ix_subscriptions_cape_currency_created", ["cancel_at_period_end", "currency", "created", "id"]),
    ("invoices", "ix_invoices_customer_id", ["customer_id"]),
    ("invoices", "ix_invoices_status", ["status"]),
    ("invoices", "ix_invoices_subscription_id", ["subscription_id"]),
    ("invoices", "ix_invoices_next_payment_attempt", ["next_payment_attempt"]),
    ("invoices", "ix_invoices_decline_code", ["decline_code"]),
    ("invoices", "ix_invoices_created", ["created"]),
    ("invoices", "ix_invoices_status_attempt", STATUS_ATTEMPT),
    ("invoice_lines", "ix_invoice_lines_subscription_id", ["subscription_id"]),
    ("invoice_lines", "ix_invoice_lines_price_id", ["price_id"]),
)
# (table, index, columns, PostgreSQL WHERE, SQLite WHERE); no WHERE: a full index
CREATED = (
    ("customers", "ix_customers_currency_created", ["currency", "created", "id"], None, None),
    ("customers", "ix_customers_delinquent_created", ["delinquent", "created", "id", "deleted"],
     "delinquent", "delinquent = 1"),
    ("subscriptions", "ix_subscriptions_canceling_created", ["cancel_at_period_end", "created", "id"],
     "cancel_at_period_end", "cancel_at_period_end = 1"),
    ("subscriptions", "ix_subscriptions_canceling_currency_created",
     ["currency", "cancel_at_period_end", "created", "id"], "cancel_at_period_end", "cancel_at_period_end = 1"),
    ("invoices", "ix_invoices_status_attempt", [*STATUS_ATTEMPT, "next_payment_attempt"], None, None),
    ("invoices", "ix_invoices_unpaid_created", ["created", "id"], UNPAID, UNPAID),
)


def _refresh_sqlite_statistics() -> None:
    """SQLite's planner uses statistics only where an ANALYZE stored them (sqlite_stat1). A database that has
    them gets them again, in full, for the tables whose indexes changed: the new indexes would otherwise be
    weighed with defaults against measured ones, and sampled figures (analysis_limit) mislead it (an index
    "smaller" than its table gets scanned for an unrelated sort). About 2 s for 5 million rows."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":  # PostgreSQL: CREATE INDEX records the index's size; columns are analyzed
        return
    if bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is None:
        return
    limit = bind.execute(sa.text("PRAGMA analysis_limit")).scalar()
    op.execute("PRAGMA analysis_limit = 0")
    for table in ("customers", "subscriptions", "invoices", "invoice_lines"):
        op.execute(f'ANALYZE "{table}"')
    op.execute(f"PRAGMA analysis_limit = {int(limit or 0)}")


def upgrade() -> None:
    for table, name, _columns in DROPPED:
        op.drop_index(name, table_name=table)
    for table, name, columns, pg_where, sqlite_where in CREATED:
        where = {} if pg_where is None else {"postgresql_where": sa.text(pg_where),
                                             "sqlite_where": sa.text(sqlite_where)}
        op.create_index(name, table, columns, unique=False, **where)
    _refresh_sqlite_statistics()


def downgrade() -> None:
    for table, name, *_ in CREATED:
        op.drop_index(name, table_name=table)
    for table, name, columns in DROPPED:
        op.create_index(name, table, columns, unique=False)
    _refresh_sqlite_statistics()
