"""watch: the securities a chat follows in its daily push

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:50:00.000000
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('watch',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chat_id', 'code', name='uq_watch')
    )
    op.create_index(op.f('ix_watch_chat_id'), 'watch', ['chat_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_watch_chat_id'), table_name='watch')
    op.drop_table('watch')
