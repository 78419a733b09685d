"""stock_margin.rzche_derived: which per-stock 融资偿还额 were derived

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 10:00:00.000000

A stock's 融资偿还额 that its exchange omits (SZSE, BSE, an import's empty cell) is derived as
rzye(T-1) + rzmre(T) - rzye(T). Only a derived one is made again when day T-1's balance changes
(a corrected import): without the mark, the next day kept a figure derived from the old balance.
Rows stored before: SZSE and BSE publish no per-stock 融资偿还额, so every one stored for them was
derived (an imported file that gave one for them is taken as derived too: the identity remakes it).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stock_margin') as batch:
        batch.add_column(sa.Column('rzche_derived', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE stock_margin SET rzche_derived = :yes WHERE exchange IN ('SZSE', 'BSE') "
                       "AND rzche IS NOT NULL").bindparams(yes=True))


def downgrade() -> None:
    with op.batch_alter_table('stock_margin') as batch:
        batch.drop_column('rzche_derived')
