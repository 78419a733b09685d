"""index_member keeps every list of an index's constituents, each under the date it took effect

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 15:30:00.000000

One current set made every past day's 融券 structure use today's CSI 300: a stock that joined the
index later counted as a constituent before it joined. Now each fetched list that differs from the
last one is kept beside it (natural key symbol, as_of, code), and a day reads the list in force.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The single stored set, where its date is unknown, stands for every day (as it did).
    op.execute("UPDATE index_member SET as_of = '1990-01-01' WHERE as_of IS NULL")
    with op.batch_alter_table('index_member') as batch:
        batch.alter_column('as_of', existing_type=sa.Date(), nullable=False)
        batch.drop_constraint('uq_index_member', type_='unique')
        batch.create_unique_constraint('uq_index_member', ['symbol', 'as_of', 'code'])


def downgrade() -> None:
    # Only the latest list of each index survives, as the older schema held one set.
    op.execute("DELETE FROM index_member WHERE as_of < "
               "(SELECT max(m.as_of) FROM index_member m WHERE m.symbol = index_member.symbol)")
    with op.batch_alter_table('index_member') as batch:
        batch.drop_constraint('uq_index_member', type_='unique')
        batch.create_unique_constraint('uq_index_member', ['symbol', 'code'])
        batch.alter_column('as_of', existing_type=sa.Date(), nullable=True)
