"""chat.push_thread_id: the forum topic a group's daily push goes to

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:10:00.000000

A forum supergroup subscribed from one of its topics gets its push there, not in General. Empty
(NULL) for every chat subscribed before, and for chats without topics.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat') as batch:
        batch.add_column(sa.Column('push_thread_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat') as batch:
        batch.drop_column('push_thread_id')
