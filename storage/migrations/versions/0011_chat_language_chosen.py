"""chat.language_chosen: a language picked in /settings is kept; until then a private chat follows Telegram's

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 07:00:00.000000

The language was taken from the user's Telegram language at first contact and never again: a user
whose Telegram language changed kept being answered in the old one (while the command menus, set
per language by Telegram, changed). Existing chats start as not chosen: they follow their user's
Telegram language from the next message on (a language picked in /settings before this revision is
indistinguishable from the first guess, and is replaced once if the two differ).
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat') as batch:
        batch.add_column(sa.Column('language_chosen', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('chat') as batch:
        batch.drop_column('language_chosen')
