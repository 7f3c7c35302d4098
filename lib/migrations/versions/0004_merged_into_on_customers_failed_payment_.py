"""merged_into on customers, failed_payment_method_id on invoices

customers.merged_into: the customer's metadata.merged_into (written by lib/merge.py on a merged-away customer)
when it is a valid cus_ id, indexed, so a survivor's "merged from" list and the duplicates page's "drop merged
clusters" read an index instead of every row's metadata JSON. Filled here from the cached metadata (one pass
over customers); the sync keeps it from then on (lib/mapping.customer_row).

invoices.failed_payment_method_id: the card the invoice's last failed attempt charged, for "new card since the
failure". The cache never held it, so it stays NULL until an invoice is synced again (a webhook, the next
incremental sync, or `python -m lib sync --full --resource invoices` for all at once): until then those
invoices show no "new card" hint.

The downgrade also drops the v2 recovery triggers (lib.triggers.RECOVERY_TRIGGERS): a database back at 0003 gets
the first version's triggers from the code of that time, and both would count every failure twice.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 15:54:00.263357
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V2_TRIGGERS = ("trg_invoice_recovery_v2_ins", "trg_invoice_recovery_v2_del", "trg_invoice_recovery_v2_upd")


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_customers_merged_into'), ['merged_into'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_payment_method_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE customers SET merged_into = metadata->>'merged_into' "
                   "WHERE metadata->>'merged_into' ~ '^cus_[A-Za-z0-9_]{1,60}$'")
    else:
        value = "json_extract(metadata, '$.merged_into')"
        op.execute(f"UPDATE customers SET merged_into = {value} WHERE {value} GLOB 'cus_?*' "
                   f"AND {value} NOT GLOB '*[^A-Za-z0-9_]*' AND length({value}) <= 64")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in V2_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON invoices" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {name.removeprefix('trg_')}()")
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('failed_payment_method_id')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customers_merged_into'))
        batch_op.drop_column('merged_into')
