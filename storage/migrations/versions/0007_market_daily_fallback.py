"""market_daily: exchanges that do not know the day's 两融余额 leave the market to the ALL row

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 15:10:00.000000

The exchanges' rows made the market wherever they included SSE and SZSE, even where one of them
lacked 融券余额, and so 两融余额, while a market-wide (ALL) row gave both: SSE and SZSE imported
with 融资 only turned the market's 两融余额 unknown. Now the exchanges make the market where they
include SSE and SZSE and know its 两融余额, or the ALL row does not either (or no ALL row exists);
otherwise the ALL row, all of it (taking the missing figures alone from it would mix scopes: its
融券余额 counts BSE, say).
The rule stays in one SELECT (as in 0003), used by the triggers (replaced here) and to compute every
stored date again.
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SUMMED = ("rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl", "rzrqye")
COLUMNS = (*SUMMED, "rqmce", "exchanges", "members")
LOCK_CLASS = 7301  # as in 0003


def market_select(cond: str, fallback: bool) -> str:
    """0003's rule; with `fallback`, the exchanges' rows make the market only where they know its
    两融余额 or the ALL row does not either (or no ALL row exists)."""
    sums = ", ".join(f"CASE WHEN count({c}) = count(*) THEN sum({c}) END AS {c}" for c in SUMMED)
    whole = ("((s.members & 3) = 3 AND (s.rzrqye IS NOT NULL OR a.rzrqye IS NULL))" if fallback
             else "(s.members & 3) = 3")
    split = f"(s.n IS NOT NULL AND ({whole} OR a.trade_date IS NULL))"
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


def refresh(day: str, fallback: bool) -> str:
    return (f"DELETE FROM market_daily WHERE trade_date = {day}; "
            f"INSERT INTO market_daily (trade_date, {', '.join(COLUMNS)}) "
            f"{market_select(f'trade_date = {day}', fallback)};")


def _install(fallback: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # the trigger function (0003) calls this one: replacing it is enough
        op.execute(f"""
            CREATE OR REPLACE FUNCTION market_daily_refresh(p_day date) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p_day - DATE '1970-01-01');
                {refresh('p_day', fallback)}
            END $$""")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER market_daily_{name}")
        op.execute(f"CREATE TRIGGER market_daily_insert AFTER INSERT ON margin_summary BEGIN "
                   f"{refresh('NEW.trade_date', fallback)} END")
        op.execute("CREATE TRIGGER market_daily_update AFTER UPDATE ON margin_summary BEGIN "
                   f"{refresh('OLD.trade_date', fallback)} {refresh('NEW.trade_date', fallback)} END")
        op.execute(f"CREATE TRIGGER market_daily_delete AFTER DELETE ON margin_summary BEGIN "
                   f"{refresh('OLD.trade_date', fallback)} END")
    op.execute("DELETE FROM market_daily")
    op.execute(f"INSERT INTO market_daily (trade_date, {', '.join(COLUMNS)}) {market_select('1 = 1', fallback)}")


def upgrade() -> None:
    _install(fallback=True)


def downgrade() -> None:
    _install(fallback=False)
