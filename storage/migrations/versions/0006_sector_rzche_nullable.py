"""sector_daily.rzche may be unknown

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 14:20:00.000000

A sector's 融资偿还额 is unknown on a day where one of its members' is (the exchange omits it and
the member's previous day is not stored); it was stored as a sum that counted the unknown as 0,
which overstated the sector's 融资净买入 by that member's purchases.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sector_daily') as batch:
        batch.alter_column('rzche', existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE sector_daily SET rzche = 0 WHERE rzche IS NULL")
    with op.batch_alter_table('sector_daily') as batch:
        batch.alter_column('rzche', existing_type=sa.Float(), nullable=False)
