"""invoice_recovery_daily: failed and recovered invoice amounts per UTC day, currency and kind

Derived state for the failed-payments page's weekly "failed vs recovered" chart (lib/queries.recovery), which
summed ~120,000 index entries per view at 3M invoices (50-65 ms). The table is created empty here: the triggers
on `invoices` that keep it exact, and its first fill from a GROUP BY over `invoices`, come from
lib.models.ensure_derived_state, which lib.db.migrate runs right after the migrations (same transaction).
The downgrade drops those triggers first: they would otherwise write into a table that no longer exists.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:02:10
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = ("trg_invoice_recovery_daily_ins", "trg_invoice_recovery_daily_del", "trg_invoice_recovery_daily_upd")


def upgrade() -> None:
    op.create_table('invoice_recovery_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('invoices', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'currency', 'kind')
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON invoices" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {name.removeprefix('trg_')}()")
    op.drop_table('invoice_recovery_daily')
