"""email_domain on customers, for search by company

customers.email_domain: what follows the last '@' of the customer's email, case-folded, spaces and dots trimmed
from its ends (lib.normalize.email_domain), indexed with (created, id, deleted) so the search box's "@acme.com" is
one index range in the default order and its count reads only that company's index entries. Filled here from
`email_normalized` (already case-folded) in one UPDATE per database, in SQL that mirrors the Python rule; the
sync keeps it from then on (lib/mapping.customer_row).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:18:39.486295
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What follows the last '@': PostgreSQL by a regular expression; SQLite (no regex) by trimming every character
# that is not '@' off the end, which leaves the text up to and including the last '@'.
AFTER_AT = {
    "postgresql": "substring(email_normalized from '@([^@]*)$')",
    "sqlite": "substr(email_normalized, length(rtrim(email_normalized, replace(email_normalized, '@', ''))) + 1)",
}
TRIMMED = {
    "postgresql": "NULLIF(trim(both ' .' from {after}), '')",
    "sqlite": "NULLIF(trim({after}, ' .'), '')",
}


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_domain', sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    dialect = op.get_bind().dialect.name
    domain = TRIMMED[dialect].format(after=AFTER_AT[dialect])
    op.execute(f"UPDATE customers SET email_domain = {domain} "  # noqa: S608 — constants only
               "WHERE email_normalized LIKE '%@%'")
    # the index after the fill: one sorted build instead of a million index updates
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_email_domain', ['email_domain', 'created', 'id', 'deleted'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_email_domain')
        batch_op.drop_column('email_domain')
