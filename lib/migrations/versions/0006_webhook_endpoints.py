"""webhook_endpoints: the account's webhook endpoints as Stripe lists them

Every sync run lists `GET /v1/webhook_endpoints` (one request) and replaces this table's rows, so the Sync page
shows whether Stripe has an endpoint for the dashboard, enabled or disabled, and for which events — next to the
deliveries the cache has received. The signing secret is never stored. Empty until the next sync run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:23:01.316747
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_endpoints',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('enabled_events', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('api_version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('synced_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('webhook_endpoints')
