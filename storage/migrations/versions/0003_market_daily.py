"""market_daily: the market's daily margin totals, kept by triggers on margin_summary

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 10:40:00.000000

Every report reads three years of market totals; summing the exchanges' rows at each read was the
largest query of a report. The rule (storage.models.MarketDaily) lives in one SELECT below, used by
the backfill and by the triggers: after any insert, update or delete of a margin_summary row, the
market row of its date is computed again. On PostgreSQL a transaction-scoped advisory lock per date
serialises writers of the same date, so that each computes from the rows the other committed.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# 融券卖出额 (rqmce) is not among them: the market always takes the ALL row's.
SUMMED = ("rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl", "rzrqye")
COLUMNS = (*SUMMED, "rqmce", "exchanges", "members")
LOCK_CLASS = 7301  # first key of the advisory locks: "market_daily"


def market_select(cond: str) -> str:
    """The market rows of the dates of margin_summary rows matching `cond` (no WITH: SQLite triggers
    do not take one). Per-exchange rows make the market where they include SSE (bit 1) and SZSE
    (bit 2), or where there is no ALL row; otherwise the ALL row does."""
    sums = ", ".join(f"CASE WHEN count({c}) = count(*) THEN sum({c}) END AS {c}" for c in SUMMED)
    split = "(s.n IS NOT NULL AND ((s.members & 3) = 3 OR a.trade_date IS NULL))"
    picks = ", ".join(f"CASE WHEN {split} THEN s.{c} ELSE a.{c} END" for c in SUMMED)
    return (
        f"SELECT d.trade_date, {picks}, a.rqmce, "
        f"CASE WHEN {split} THEN s.n ELSE 0 END, CASE WHEN {split} THEN s.members ELSE 7 END "
        f"FROM (SELECT DISTINCT trade_date FROM margin_summary WHERE {cond}) d "
        f"LEFT JOIN (SELECT trade_date, count(*) AS n, "
        f"sum(CASE exchange WHEN 'SSE' THEN 1 WHEN 'SZSE' THEN 2 ELSE 4 END) AS members, {sums} "
        f"FROM margin_summary WHERE exchange IN ('SSE', 'SZSE', 'BSE') AND {cond} GROUP BY trade_date) s "
        f"ON s.trade_date = d.trade_date "
        f"LEFT JOIN (SELECT * FROM margin_summary WHERE exchange = 'ALL' AND {cond}) a "
        f"ON a.trade_date = d.trade_date"
    )


def refresh(day: str) -> str:
    """Statements that compute the market row of date expression `day` again."""
    return (f"DELETE FROM market_daily WHERE trade_date = {day}; "
            f"INSERT INTO market_daily (trade_date, {', '.join(COLUMNS)}) {market_select(f'trade_date = {day}')};")


def upgrade() -> None:
    op.create_table('market_daily',
    sa.Column('trade_date', sa.Date(), nullable=False),
    *[sa.Column(c, sa.Float(), nullable=True) for c in (*SUMMED, "rqmce")],
    sa.Column('exchanges', sa.Integer(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('trade_date')
    )
    op.execute(f"INSERT INTO market_daily (trade_date, {', '.join(COLUMNS)}) {market_select('1 = 1')}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION market_daily_refresh(p_day date) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p_day - DATE '1970-01-01');
                {refresh('p_day')}
            END $$""")
        op.execute("""
            CREATE FUNCTION market_daily_on_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN PERFORM market_daily_refresh(OLD.trade_date); END IF;
                IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.trade_date <> OLD.trade_date) THEN
                    PERFORM market_daily_refresh(NEW.trade_date);
                END IF;
                RETURN NULL;
            END $$""")
        op.execute("CREATE TRIGGER market_daily_sync AFTER INSERT OR UPDATE OR DELETE ON margin_summary "
                   "FOR EACH ROW EXECUTE FUNCTION market_daily_on_change()")
        return
    op.execute("CREATE TRIGGER market_daily_insert AFTER INSERT ON margin_summary BEGIN "
               f"{refresh('NEW.trade_date')} END")
    op.execute("CREATE TRIGGER market_daily_update AFTER UPDATE ON margin_summary BEGIN "
               f"{refresh('OLD.trade_date')} {refresh('NEW.trade_date')} END")
    op.execute("CREATE TRIGGER market_daily_delete AFTER DELETE ON margin_summary BEGIN "
               f"{refresh('OLD.trade_date')} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER market_daily_sync ON margin_summary")
        op.execute("DROP FUNCTION market_daily_on_change()")
        op.execute("DROP FUNCTION market_daily_refresh(date)")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER market_daily_{name}")
    op.drop_table('market_daily')
