"""Schema, upserts and metadata on SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlmodel import Session

from storage import models
from storage.database import bump_data_version, data_version, get_meta, is_empty, session_scope, upsert


def test_schema_has_every_table(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    for table in ["margin_summary", "stock_margin", "turnover", "index_daily", "industry_class",
                  "industry_name", "sector_daily", "market_daily", "trading_day", "ingest_status", "dataset_meta",
                  "chat", "delivery", "chart_upload", "alembic_version"]:
        assert table in names


def test_migrations_match_the_models(engine: Engine) -> None:
    """The schema the migrations build is the one the sqlmodel models describe (alembic's autogenerate
    comparison finds nothing to add, drop or alter), on SQLite and on PostgreSQL."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_upsert_updates_by_natural_key(engine: Engine) -> None:
    day = date(2024, 4, 11)
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": day, "exchange": "SZSE", "rzye": 707767000000.0}])
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": day, "exchange": "SZSE", "rzye": 707768000000.0}])
    with Session(engine) as s:
        rows = s.execute(select(models.MarginSummary)).scalars().all()
    assert len(rows) == 1 and rows[0].rzye == 707768000000.0
    assert not is_empty(engine)


def test_stock_rows_get_ids_and_chunked_upsert(engine: Engine) -> None:
    rows = [{"trade_date": date(2024, 1, 2), "code": f"{600000 + i}", "exchange": "SSE", "rzye": float(i)}
            for i in range(1000)]
    with session_scope(engine) as s:
        assert upsert(s, models.StockMargin, rows) == 1000
        upsert(s, models.StockMargin, rows[:10])
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(models.StockMargin)).scalar() == 1000


def test_data_version_bumps(engine: Engine) -> None:
    assert data_version(engine) == 0
    with session_scope(engine) as s:
        bump_data_version(s)
        bump_data_version(s)
    assert data_version(engine) == 2


def at_once(target: Callable[[], None], threads: int) -> list[BaseException]:
    """Run `target` in `threads` threads at once; the errors they raised (none: [])."""
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - returned, asserted by the caller
            errors.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    return errors


def test_writers_committing_at_once_each_get_their_own_data_version(engine: Engine) -> None:
    """Eight writers bump in transactions that overlap: eight versions, none handed out twice (a
    repeated version would leave a report cached under it stale)."""
    import threading

    with session_scope(engine) as s:
        assert get_meta(s, "data_version") is None
        assert bump_data_version(s) == 1
        assert get_meta(s, "data_version") == "1"
    got: list[int] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        with session_scope(engine) as s:
            barrier.wait()
            got.append(bump_data_version(s))

    assert at_once(write, 8) == [] and sorted(got) == list(range(2, 10))
    assert data_version(engine) == 9


def _market(engine: Engine) -> dict[date, tuple[Any, ...]]:
    md = models.MarketDaily
    columns = [md.rzye, md.rqye, md.rqmce, md.rzrqye, md.exchanges, md.members]
    with Session(engine) as s:
        return {r[0]: tuple(r[1:]) for r in s.execute(select(md.trade_date, *columns).order_by(md.trade_date))}


def test_market_daily_follows_every_write_to_margin_summary(engine: Engine) -> None:
    """Triggers keep one market row per date: the exchanges' sum where they include SSE and SZSE (or
    no ALL row stands by) and know 两融余额, else the ALL row; 融券卖出额 always the ALL row's; NULL
    where a summed row lacks a figure and no ALL row stands in. Inserts, upserts, deletes and a
    moved date all reach it, on both databases."""
    from sqlalchemy import delete, update

    d1, d2, d3, d4 = date(2024, 4, 8), date(2024, 4, 9), date(2024, 4, 10), date(2024, 4, 11)
    row = {"rzye": None, "rzmre": None, "rzche": None, "rqye": None, "rqyl": None, "rqmcl": None, "rqmce": None,
           "rzrqye": None}

    def summary(day: date, exchange: str, rzye: float, rqye: float | None,
                rqmce: float | None = None) -> dict[str, Any]:
        return {**row, "trade_date": day, "exchange": exchange, "rzye": rzye, "rqye": rqye, "rqmce": rqmce,
                "rzrqye": None if rqye is None else rzye + rqye}

    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [
            summary(d1, "SSE", 800.0, 10.0), summary(d1, "SZSE", 700.0, 5.0), summary(d1, "BSE", 4.0, 0.5),
            summary(d1, "ALL", 1503.0, 15.0, rqmce=9.0),
            summary(d2, "SSE", 810.0, None), summary(d2, "ALL", 1520.0, 16.0, rqmce=8.0),  # SSE alone: ALL stands
            summary(d3, "SSE", 820.0, 11.0),  # SSE alone, no ALL: the partial sum stands, scope names it
        ])
    assert _market(engine) == {
        d1: (1504.0, 15.5, 9.0, 1519.5, 3, 7),
        d2: (1520.0, 16.0, 8.0, 1536.0, 0, 7),
        d3: (820.0, 11.0, None, 831.0, 1, 1),
    }
    with session_scope(engine) as s:  # an upsert that changes a figure, and one that makes a figure unknown
        upsert(s, models.MarginSummary, [summary(d1, "SSE", 801.0, 10.0), summary(d1, "BSE", 4.0, None)])
    # 融券余额 (and so 两融余额) not known for every exchange: the ALL row, whole (migration 0007)
    assert _market(engine)[d1] == (1503.0, 15.0, 9.0, 1518.0, 0, 7)
    with session_scope(engine) as s:  # unknown without an ALL row to stand in: unknown
        upsert(s, models.MarginSummary, [summary(d3, "SZSE", 700.0, None)])
    assert _market(engine)[d3] == (1520.0, None, None, None, 2, 3)
    with session_scope(engine) as s:
        s.execute(delete(models.MarginSummary).where(models.MarginSummary.trade_date == d3,
                                                     models.MarginSummary.exchange == "SZSE"))
    with session_scope(engine) as s:
        s.execute(delete(models.MarginSummary).where(models.MarginSummary.exchange == "SZSE"))
        s.execute(update(models.MarginSummary).where(models.MarginSummary.trade_date == d3).values(trade_date=d4))
    assert _market(engine) == {
        d1: (1503.0, 15.0, 9.0, 1518.0, 0, 7),  # SSE and BSE without SZSE: the ALL row again
        d2: (1520.0, 16.0, 8.0, 1536.0, 0, 7),
        d4: (820.0, 11.0, None, 831.0, 1, 1),
    }
    with session_scope(engine) as s:
        s.execute(delete(models.MarginSummary).where(models.MarginSummary.trade_date == d2))
    assert set(_market(engine)) == {d1, d4}


def test_market_daily_backfilled_by_the_migration(engine: Engine) -> None:
    """Rows stored before migration 0003 get their market rows when it runs."""
    from alembic import command
    from alembic.config import Config

    from storage.database import MIGRATIONS_DIR, upgrade

    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [
            {"trade_date": date(2024, 4, 8), "exchange": e, "rzye": v, "rqye": 1.0, "rzrqye": v + 1.0}
            for e, v in (("SSE", 800.0), ("SZSE", 700.0))])
    before = _market(engine)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert "market_daily" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert _market(engine) == before == {date(2024, 4, 8): (1500.0, 2.0, None, 1502.0, 2, 3)}


@pytest.mark.parametrize("engine", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_market_daily_concurrent_writers_of_one_date(engine: Engine) -> None:
    """PostgreSQL: two transactions write the same date's exchanges at once (two workers ingesting):
    the second waits for the first on an advisory lock of that date, then computes the market from
    both rows; neither fails. (SQLite has one writer at a time.)"""
    import threading
    import time

    from sqlalchemy import text

    day = date(2024, 4, 8)
    first = engine.connect()
    first.begin()
    first.execute(models.MarginSummary.__table__.insert().values(trade_date=day, exchange="SSE", rzye=800.0))
    errors: list[BaseException] = []
    events: list[str] = []
    pid: list[int] = []
    started = threading.Event()

    def second() -> None:
        try:
            with engine.begin() as conn:
                pid.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                started.set()
                conn.execute(models.MarginSummary.__table__.insert().values(
                    trade_date=day, exchange="SZSE", rzye=700.0))
                events.append("second wrote")
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert started.wait(10) and pid, errors
        # the second writer's backend waits on the lock of that date: key (7301, days since 1970-01-01)
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = :pid "
                       "AND classid = 7301 AND objid = :key")
        key = (day - date(1970, 1, 1)).days
        deadline = time.monotonic() + 10
        with engine.connect() as watcher:
            while watcher.execute(waiting, {"pid": pid[0], "key": key}).scalar_one() != 1:
                assert time.monotonic() < deadline, "the second writer never waited on the date's lock"
                assert thread.is_alive() and events == [], (events, errors)  # it may not get past the lock
                time.sleep(0.02)
        assert thread.is_alive() and events == []
        events.append("first committed")
        first.commit()
    finally:
        first.close()
        thread.join(10)
    assert not thread.is_alive() and errors == []
    assert events == ["first committed", "second wrote"]
    assert _market(engine)[day][0] == 1500.0


def test_securities_named(engine: Engine) -> None:
    """Names as of the latest detail day (on or before the day asked), Latin letters in any case,
    LIKE's wildcards taken literally, the exact name first."""
    from storage.queries import securities_named

    old, new = date(2024, 4, 8), date(2024, 4, 9)

    def row(day: date, code: str, name: str) -> dict:
        return {"trade_date": day, "code": code, "exchange": "SSE", "name": name, "is_fund": code.startswith("51"),
                "rzye": 1e9}

    rows = [row(old, "600001", "*ST样本"), row(new, "600001", "样本科技"),  # renamed on the new day
            row(new, "600002", "样本"), row(new, "510300", "沪深300ETF"), row(new, "600003", "100%_样本"),
            row(old, "600004", "旧样本")]  # no row on the new day
    with session_scope(engine) as session:
        upsert(session, models.StockMargin, rows)
    assert securities_named(engine, "样本", None, 10) == [
        ("600002", "样本"), ("600001", "样本科技"), ("600003", "100%_样本")]  # exact first, then by code
    assert securities_named(engine, "样本", None, 2) == [("600002", "样本"), ("600001", "样本科技")]
    assert securities_named(engine, "300etf", None, 10) == [("510300", "沪深300ETF")]
    assert securities_named(engine, "%_", None, 10) == [("600003", "100%_样本")]
    assert securities_named(engine, "_", None, 10) == [("600003", "100%_样本")]
    assert securities_named(engine, "ST", None, 10) == []  # the old name is gone
    assert securities_named(engine, "ST", old, 10) == [("600001", "*ST样本")]  # but it was the name then
    assert securities_named(engine, "旧样本", old, 10) == [("600004", "旧样本")]
    assert securities_named(engine, "样本", date(2024, 4, 1), 10) == []  # no detail on or before that day


def test_stock_detail_dates_skip_a_day_without_detail_and_a_funds_only_day(engine: Engine) -> None:
    """The latest dates with stock detail up to the day asked, ascending: a date holding funds alone
    is not one, nor a date after the day asked; fewer where the detail begins later."""
    from storage.queries import stock_detail_dates

    def row(day: date, code: str) -> dict:
        return {"trade_date": day, "code": code, "exchange": "SSE", "name": code, "is_fund": code.startswith("51"),
                "rzye": 1e9}

    stock_days = [date(2024, 4, 1), date(2024, 4, 2), date(2024, 4, 5), date(2024, 4, 8), date(2024, 4, 10)]
    rows = [row(d, code) for d in stock_days for code in ("600001", "510300")] + [row(date(2024, 4, 9), "510300")]
    with session_scope(engine) as session:
        upsert(session, models.StockMargin, rows)
    assert stock_detail_dates(engine, date(2024, 4, 9), 3) == [date(2024, 4, 2), date(2024, 4, 5), date(2024, 4, 8)]
    assert stock_detail_dates(engine, date(2024, 4, 10), 1) == [date(2024, 4, 10)]
    assert stock_detail_dates(engine, date(2024, 4, 10), 9) == stock_days
    assert stock_detail_dates(engine, date(2024, 3, 29), 5) == []


def _alembic(engine: Engine, command_name: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from storage.database import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, command_name)(cfg, revision)


def _revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_two_upgrades_at_once_both_end_at_head(engine: Engine) -> None:
    """The bot and a push worker start together on an empty database: one upgrades, the other waits
    for it and then finds nothing to do; neither fails (they once raced to create the same tables)."""
    import threading

    from storage.database import upgrade

    _alembic(engine, "downgrade", "base")
    assert "margin_summary" not in inspect(engine).get_table_names()
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        upgrade(engine)

    assert at_once(run, 2) == []
    assert _revision(engine) == "0011" and "stock_margin" in inspect(engine).get_table_names()


def test_a_failed_sqlite_upgrade_leaves_nothing_half_done(sqlite_engine: Engine) -> None:
    """A step that fails (here: the version stamp refused by a trigger) rolls the whole upgrade back
    on SQLite too, batch copies included: the next upgrade starts from where the database was."""
    from sqlalchemy import text

    from storage.database import DatabaseUnavailable, upgrade

    _alembic(sqlite_engine, "downgrade", "0005")
    tables_before = sorted(inspect(sqlite_engine).get_table_names())
    with sqlite_engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE UPDATE ON alembic_version "
                          "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    with pytest.raises(Exception, match="refused") as failed:
        upgrade(sqlite_engine)
    assert not isinstance(failed.value, DatabaseUnavailable) or "refused" in str(failed.value)
    assert _revision(sqlite_engine) == "0005"
    assert sorted(inspect(sqlite_engine).get_table_names()) == tables_before  # no _alembic_tmp_ table left
    with sqlite_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse"))
    upgrade(sqlite_engine)
    assert _revision(sqlite_engine) == "0011"


@pytest.mark.parametrize(("url", "said"), [
    ("nonsense", "DATABASE_URL is not a database address (dialect://user:password@host:port/database)"),
    ("postgresql://u:pw-SECRET@h:notaport/db",
     "DATABASE_URL is not a usable database address: its port (after host:) is not a number"),
    ("postgresql://someone:SECRET/db",  # no "@host": the password sits where the port would
     "DATABASE_URL is not a usable database address: its port (after host:) is not a number"),
    ("mysql://u:pw-SECRET@h/db",  # a dialect without its driver installed
     "DATABASE_URL mysql://u:***@h/db is not a usable database address: No module named 'MySQLdb'"),
])
def test_make_engine_refuses_a_malformed_address_without_its_password(url: str, said: str) -> None:
    from storage.database import DatabaseUnavailable, make_engine

    with pytest.raises(DatabaseUnavailable) as refused:
        make_engine(url)
    assert str(refused.value) == said


def test_shown_addresses_and_driver_messages_hide_the_password() -> None:
    from storage.database import hide_password, shown_url

    url = "postgresql+psycopg://someone:pw-SECRET@db.example:5432/margin"
    assert shown_url(url) == "postgresql+psycopg://someone:***@db.example:5432/margin"
    assert shown_url("postgresql://someone:SECRET/db") == "DATABASE_URL"  # does not parse: nothing of it shown
    assert hide_password('password "pw-SECRET" refused', url) == 'password "***" refused'
    assert hide_password("no such host", "sqlite:///var/x.db") == "no such host"
