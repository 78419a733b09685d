"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:34:46.664092
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chart_upload',
    sa.Column('cache_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('file_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('cache_key')
    )
    op.create_table('chat',
    sa.Column('chat_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('chat_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('push_time', sa.Time(), nullable=True),
    sa.Column('subscribed', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('deactivated_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('chat_id')
    )
    op.create_table('dataset_meta',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chat_id', 'trade_date', name='uq_delivery')
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_status', ['trade_date', 'status'], unique=False)

    op.create_table('index_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('close', sa.Float(), nullable=False),
    sa.Column('amount', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('symbol', 'trade_date', name='uq_index_daily')
    )
    with op.batch_alter_table('index_daily', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_daily_trade_date'), ['trade_date'], unique=False)

    op.create_table('index_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('symbol', 'code', name='uq_index_member')
    )
    with op.batch_alter_table('index_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_member_symbol'), ['symbol'], unique=False)

    op.create_table('industry_class',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('sw_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('sw_l1_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code', 'start_date', name='uq_industry_class')
    )
    with op.batch_alter_table('industry_class', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_industry_class_code'), ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_industry_class_sw_l1_code'), ['sw_l1_code'], unique=False)

    op.create_table('industry_name',
    sa.Column('sw_l1_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('index_symbol', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.PrimaryKeyConstraint('sw_l1_code')
    )
    op.create_table('ingest_status',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'source', name='uq_ingest_status')
    )
    with op.batch_alter_table('ingest_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_status_trade_date'), ['trade_date'], unique=False)

    op.create_table('margin_summary',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('exchange', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('rzye', sa.Float(), nullable=True),
    sa.Column('rzmre', sa.Float(), nullable=True),
    sa.Column('rzche', sa.Float(), nullable=True),
    sa.Column('rzche_derived', sa.Boolean(), nullable=False),
    sa.Column('rqye', sa.Float(), nullable=True),
    sa.Column('rqyl', sa.Float(), nullable=True),
    sa.Column('rqmcl', sa.Float(), nullable=True),
    sa.Column('rqmce', sa.Float(), nullable=True),
    sa.Column('rzrqye', sa.Float(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'exchange', name='uq_margin_summary')
    )
    with op.batch_alter_table('margin_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_margin_summary_trade_date'), ['trade_date'], unique=False)

    op.create_table('sector_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('sw_l1_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('rzye', sa.Float(), nullable=False),
    sa.Column('rzmre', sa.Float(), nullable=False),
    sa.Column('rzche', sa.Float(), nullable=False),
    sa.Column('rqye', sa.Float(), nullable=False),
    sa.Column('stock_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'sw_l1_code', name='uq_sector_daily')
    )
    with op.batch_alter_table('sector_daily', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sector_daily_trade_date'), ['trade_date'], unique=False)

    op.create_table('stock_margin',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('exchange', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('is_fund', sa.Boolean(), nullable=False),
    sa.Column('rzye', sa.Float(), nullable=True),
    sa.Column('rzmre', sa.Float(), nullable=True),
    sa.Column('rzche', sa.Float(), nullable=True),
    sa.Column('rqyl', sa.Float(), nullable=True),
    sa.Column('rqmcl', sa.Float(), nullable=True),
    sa.Column('rqchl', sa.Float(), nullable=True),
    sa.Column('rqye', sa.Float(), nullable=True),
    sa.Column('rqye_estimated', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'code', name='uq_stock_margin')
    )
    with op.batch_alter_table('stock_margin', schema=None) as batch_op:
        batch_op.create_index('ix_stock_margin_code_date', ['code', 'trade_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_margin_trade_date'), ['trade_date'], unique=False)

    op.create_table('trading_day',
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('trade_date')
    )
    op.create_table('turnover',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('exchange', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('a_share_only', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('trade_date', 'exchange', name='uq_turnover')
    )
    with op.batch_alter_table('turnover', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turnover_trade_date'), ['trade_date'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('turnover', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_turnover_trade_date'))

    op.drop_table('turnover')
    op.drop_table('trading_day')
    with op.batch_alter_table('stock_margin', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stock_margin_trade_date'))
        batch_op.drop_index('ix_stock_margin_code_date')

    op.drop_table('stock_margin')
    with op.batch_alter_table('sector_daily', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sector_daily_trade_date'))

    op.drop_table('sector_daily')
    with op.batch_alter_table('margin_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_margin_summary_trade_date'))

    op.drop_table('margin_summary')
    with op.batch_alter_table('ingest_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_status_trade_date'))

    op.drop_table('ingest_status')
    op.drop_table('industry_name')
    with op.batch_alter_table('industry_class', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_industry_class_sw_l1_code'))
        batch_op.drop_index(batch_op.f('ix_industry_class_code'))

    op.drop_table('industry_class')
    with op.batch_alter_table('index_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_member_symbol'))

    op.drop_table('index_member')
    with op.batch_alter_table('index_daily', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_daily_trade_date'))

    op.drop_table('index_daily')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_status')

    op.drop_table('delivery')
    op.drop_table('dataset_meta')
    op.drop_table('chat')
    op.drop_table('chart_upload')
