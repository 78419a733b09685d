"""delivery.not_before: a failed send is retried after a backoff, not at once

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 17:00:00.000000

Retrying at once spent every attempt of a delivery within seconds of a short outage; now a retry
waits until not_before (growing delays, or the retry_after of a 429).
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.add_column(sa.Column('not_before', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.drop_column('not_before')
