"""stock_spike_daily: pre-computed per-stock 5-day 融资余额 rises and their z-scores

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 07:00:00.000000

The table starts empty: `marginbot` fills it when stock rows are written (ingest, import, demo
seed); until a day has rows, the signals report computes that day's spikes from the stock rows.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stock_spike_daily',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('rzye', sa.Float(), nullable=False),
    sa.Column('change_pct', sa.Float(), nullable=False),
    sa.Column('zscore', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'code', name='uq_stock_spike_daily')
    )
    with op.batch_alter_table('stock_spike_daily', schema=None) as batch_op:
        batch_op.create_index('ix_stock_spike_daily_date_z', ['trade_date', 'zscore'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stock_spike_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_spike_daily_date_z')

    op.drop_table('stock_spike_daily')
