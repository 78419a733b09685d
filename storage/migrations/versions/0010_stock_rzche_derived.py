"""stock_margin.rzche_derived: which per-stock 融资偿还额 were derived

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 10:00:00.000000

A stock's 融资偿还额 that its exchange omits (SZSE, BSE, an import's empty cell) is derived as
rzye(T-1) + rzmre(T) - rzye(T). Only a derived one is made again when day T-1's balance changes
(a corrected import): without the mark, the next day kept a figure derived from the old balance.

A nullable column added without a default: constant time on SQLite and PostgreSQL, and no rewrite of
the table (12 million rows over ten years). Rows stored before have NULL, "not known": SZSE and BSE
publish no per-stock 融资偿还额, so the readers take theirs as derived
(models.stock_rzche_derivable); an SSE row's figure came from the exchange (one that an earlier
import derived from an empty cell is taken as given too, and stays as it is).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN, not batch mode: batch would copy the whole table on SQLite
    op.add_column('stock_margin', sa.Column('rzche_derived', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stock_margin') as batch:
        batch.drop_column('rzche_derived')
