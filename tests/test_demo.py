"""The embedded demo dataset: magnitudes, identities, the story the reports tell, determinism, safety."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlmodel import Session

from storage import models
from storage.database import data_version, is_demo, make_engine, session_scope, upgrade, upsert
from storage.demo import DEFAULT_END, _bulk_load, build_demo, ensure_seeded, seed_demo, trade_days
from storage.industries import SW_L1_2021


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One SQLite database seeded with the default demo."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}")
    upgrade(engine)
    assert seed_demo(engine) is True
    yield engine
    engine.dispose()


def frame(engine: Engine, model: type, *columns: str, where: str = "") -> pd.DataFrame:
    """Columns of a table through the driver (fast for the 380k stock rows); trade_date parsed."""
    sql = f"SELECT {', '.join(columns)} FROM {model.__table__.name} {where}"
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # plain tuples, no Row objects: 10x faster
        try:
            cursor.execute(sql)
            out = pd.DataFrame(cursor.fetchall(), columns=list(columns))
        finally:
            cursor.close()
    if "trade_date" in out:
        out["trade_date"] = pd.to_datetime(out["trade_date"])
    return out


def market(engine: Engine) -> pd.DataFrame:
    """Per day: market 两融余额 (sum of exchanges), ALL row, turnover and 两融交易占比 (fraction)."""
    ms = frame(engine, models.MarginSummary, "trade_date", "exchange", "rzye", "rzmre", "rqye", "rzrqye", "rqmce")
    per_exchange = ms[ms.exchange != "ALL"].groupby("trade_date")[["rzye", "rzmre", "rqye", "rzrqye"]].sum()
    whole = ms[ms.exchange == "ALL"].set_index("trade_date")
    turnover = frame(engine, models.Turnover, "trade_date", "amount").groupby("trade_date").amount.sum()
    out = per_exchange.join(whole[["rqmce", "rzrqye"]].rename(columns={"rzrqye": "all_rzrqye"}))
    out["turnover"] = turnover
    out["ratio"] = (out.rzmre + out.rqmce) / out.turnover
    return out.sort_index()


def test_seeding_is_marked(seeded: Engine) -> None:
    engine = seeded
    assert is_demo(engine) and data_version(engine) >= 1  # the force test re-seeds the same data


def test_calendar_universe_and_sectors(seeded: Engine) -> None:
    engine = seeded
    with Session(engine) as s:
        days = sorted(s.execute(select(models.TradingDay.trade_date)).scalars())
        margin_days = s.execute(select(func.count(func.distinct(models.MarginSummary.trade_date)))).scalar()
        last = s.execute(select(models.StockMargin).where(models.StockMargin.trade_date == days[-1])).scalars().all()
        sectors = s.execute(select(models.SectorDaily).where(models.SectorDaily.trade_date == days[-1])).scalars().all()
        names = s.execute(select(models.IndustryName)).scalars().all()
        classes = s.execute(select(models.IndustryClass.code, func.count()).group_by(models.IndustryClass.code)).all()
        symbols = dict(s.execute(
            select(models.IndexDaily.symbol, func.count()).group_by(models.IndexDaily.symbol)).all())
    assert days[-1] == DEFAULT_END and days[-1] - days[0] >= timedelta(days=730)
    # The calendar counted by hand: weekdays from 2023-01-02 (the first of the year three years before
    # 2026) to 2026-11-20, less the weekdays in the demo's holiday spans, year by year: New Year (1 Jan),
    # Qingming (4-6 Apr), Labour Day (1-5 May), National Day (1-7 Oct) and the Spring Festival span.
    weekdays = len(pd.bdate_range("2023-01-01", DEFAULT_END))
    closed = {2023: 0 + 3 + 5 + 5 + 5,  # 1 Jan a Sunday; Spring Festival 23-27 Jan
              2024: 1 + 2 + 3 + 5 + 6,  # 6 Apr a Saturday, 4-5 May a weekend; 9-16 Feb
              2025: 1 + 1 + 3 + 5 + 6,  # 5-6 Apr, 3-4 May a weekend; 28 Jan - 4 Feb
              2026: 1 + 1 + 3 + 5 + 6}  # 4-5 Apr, 2-3 May a weekend; 16-23 Feb
    assert weekdays == 1015 and sum(closed.values()) == 67
    assert days[0] == date(2023, 1, 2) and len(days) == weekdays - sum(closed.values()) == 948
    assert margin_days == len(days)
    assert all(d.weekday() < 5 for d in days)
    assert date(2025, 10, 1) not in days and date(2025, 1, 29) not in days  # National Day, Spring Festival

    stocks = [r for r in last if not r.is_fund]
    funds = [r for r in last if r.is_fund]
    assert len(stocks) >= 500 and 15 <= len(funds) <= 25
    prefixes = {r.code[:3] for r in stocks} | {r.code[:2] for r in stocks}
    assert {"600", "688", "000", "300", "92"} <= prefixes and any(r.code[0] == "8" for r in stocks)
    assert {r.code[:3] for r in funds} == {"510", "159"}
    assert {r.exchange for r in last} == {"SSE", "SZSE", "BSE"}
    assert all(r.name.startswith("演示") for r in last)
    assert "600519" in {r.code for r in stocks}  # the example of /help and of every code error works

    assert len(names) == 31 + 1 and {s.sw_l1_code for s in sectors} == {i.sw_l1_code for i in SW_L1_2021}
    assert sum(s.stock_count for s in sectors) == len(stocks)  # ETFs are left out of sectors
    assert sum(1 for _, n in classes if n > 1) >= 3  # some stocks switch industry midway
    assert {"sh000001", "sz399001", "sh000300"} | {i.index_symbol for i in SW_L1_2021} == set(symbols)
    assert set(symbols.values()) == {len(days)}


def test_magnitudes(seeded: Engine) -> None:
    engine = seeded
    m = market(engine)
    assert m.rzrqye.between(1.5e12, 2.5e12).all()
    assert m.ratio.between(0.06, 0.13).all()
    assert m.turnover.between(4e11, 4e12).all()
    assert (m.rqmce > 0).all() and (m.rqye < 0.01 * m.rzye).all()
    assert np.allclose(m.all_rzrqye, m.rzrqye, rtol=0, atol=1.0)  # ALL = sum of the exchanges
    with Session(engine) as s:
        flags = set(s.execute(select(models.Turnover.a_share_only, models.Turnover.source).distinct()).all())
    assert flags == {(True, "demo")}


def test_identities(seeded: Engine) -> None:
    engine = seeded
    ms = frame(engine, models.MarginSummary, "trade_date", "exchange", "rzye", "rzmre", "rzche", "rqye", "rzrqye")
    for _, g in ms.groupby("exchange"):
        g = g.sort_values("trade_date")
        gap = g.rzye.shift() + g.rzmre - g.rzche - g.rzye
        assert gap.iloc[1:].abs().max() <= 1.0
        assert (g.rzrqye - g.rzye - g.rqye).abs().max() <= 1.0
    sm = frame(engine, models.StockMargin, "trade_date", "code", "exchange", "rzye", "rzmre", "rzche", "rqyl",
               "rqmcl", "rqchl", "rqye").sort_values(["code", "trade_date"])
    assert (sm[["rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqchl", "rqye"]] >= 0).all().all()
    by_code = sm.groupby("code")
    assert (by_code.rzye.shift() + sm.rzmre - sm.rzche - sm.rzye).abs().max() <= 1.0
    assert (by_code.rqyl.shift() + sm.rqmcl - sm.rqchl - sm.rqyl).abs().max() <= 1.0
    detail = sm.groupby(["trade_date", "exchange"]).rzye.sum()
    summary = ms[ms.exchange != "ALL"].set_index(["trade_date", "exchange"]).rzye
    factor = summary / detail.reindex(summary.index)
    assert factor.between(1.004, 1.015).all()  # the summary is the detail sum times ~1.01


def test_story_for_the_reports(seeded: Engine) -> None:
    """Signals the reports look for are present on the last day or in the history."""
    engine = seeded
    m = market(engine)
    close = frame(engine, models.IndexDaily, "trade_date", "symbol", "close").pivot(
        index="trade_date", columns="symbol", values="close")
    idx20 = close / close.shift(20) - 1

    # turning point: the 20-day change of 两融余额 changes sign in the last months, after >= 10 days
    sign = np.sign(m.rzrqye.diff(20).dropna())
    runs = (sign != sign.shift()).cumsum()
    lengths = sign.groupby(runs).transform("size")
    starts = sign.index[(sign != sign.shift()) & (lengths.shift().fillna(0) >= 10)]
    assert any(d >= m.index[-90] for d in starts[1:])

    # crowding: the ratio above its trailing 90th percentile for 5+ days while the index rose;
    # deleveraging: ratio and index both falling over 20 days
    q90 = m.ratio.expanding(min_periods=120).quantile(0.9).shift()
    crowd = ((m.ratio > q90) & (idx20["sh000001"] > 0)).astype(int)
    assert crowd.groupby((crowd == 0).cumsum()).sum().max() >= 5
    delever = (m.ratio.diff(20) < 0) & (idx20["sh000001"] < 0)
    assert delever.sum() >= 10

    # sector rotation over 60 days, and 医药生物 bottoming: its 20-day balance change just turned
    # positive while its index's 20-day return is still negative
    sd = frame(engine, models.SectorDaily, "trade_date", "sw_l1_code", "rzye").pivot(
        index="trade_date", columns="sw_l1_code", values="rzye")
    share = sd.div(sd.sum(axis=1), axis=0) * 100
    moved = share.iloc[-1] - share.iloc[-61]
    assert (moved >= 0.5).sum() >= 3 and (moved <= -0.3).sum() >= 3
    d20 = sd["370000"].diff(20)
    assert d20.iloc[-1] > 0 and (d20.iloc[-6:-1] <= 0).any()
    assert idx20["801150"].iloc[-1] < 0

    # spikes: stocks whose 融资余额 rose 30%+ in five days at the end
    recent = f"WHERE trade_date >= '{m.index[-6].date().isoformat()}'"
    wide = frame(engine, models.StockMargin, "trade_date", "code", "rzye", where=recent).pivot(
        index="trade_date", columns="code", values="rzye")
    jump = wide.iloc[-1] / wide.iloc[-6] - 1
    assert ((jump >= 0.30) & (wide.iloc[-1] >= 5e7)).sum() >= 3


def test_deterministic(seeded: Engine) -> None:
    engine = seeded
    first, again, other = build_demo(), build_demo(), build_demo(seed=7)
    for key in ("rzye", "rzmre", "rqye"):
        assert sum(first.stock_columns[key]) == sum(again.stock_columns[key])
    assert first.stock_columns == again.stock_columns
    assert first.rows == again.rows
    assert sum(other.stock_columns["rzye"]) != sum(first.stock_columns["rzye"])
    with Session(engine) as s:
        stored = s.execute(select(func.sum(models.StockMargin.rzye), func.sum(models.StockMargin.rqyl),
                                  func.count())).one()
    assert stored == (sum(first.stock_columns["rzye"]), sum(first.stock_columns["rqyl"]), first.stock_count)


def test_calendar_skips_weekends_and_holidays() -> None:
    days = trade_days(date(2026, 9, 28), date(2026, 10, 12))
    assert days == [date(2026, 9, 28), date(2026, 9, 29), date(2026, 9, 30), date(2026, 10, 8),
                    date(2026, 10, 9), date(2026, 10, 12)]


def test_seed_does_nothing_when_data_exist(engine: Engine) -> None:
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": date(2024, 4, 11), "exchange": "SSE", "rzye": 8e11}])
    assert seed_demo(engine) is False
    assert ensure_seeded(engine) is False
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(models.MarginSummary)).scalar() == 1
        assert s.execute(select(func.count()).select_from(models.StockMargin)).scalar() == 0
    assert data_version(engine) == 0 and not is_demo(engine)


def test_bulk_load_round_trip_keeps_indexes(engine: Engine) -> None:
    """The driver-level loader (COPY / executemany without indexes) stores exactly what it is given."""
    index_names = {i["name"] for i in inspect(engine).get_indexes("stock_margin")}
    columns = {
        "trade_date": [date(2024, 1, 2), date(2024, 1, 2), date(2024, 1, 3)],
        "code": ["600000", "510300", "600000"],
        "exchange": ["SSE", "SSE", "SSE"],
        "name": ["演示股份0001", "演示ETF01", "演示股份0001"],
        "is_fund": [False, True, False],
        "rzye": [1.5e9, 2e8, 1.6e9],
        "rqyl": [None, 1000.0, 200.0],
        "rqye_estimated": [False, False, False],
    }
    with session_scope(engine) as s:
        upsert(s, models.TradingDay, [{"trade_date": date(2024, 1, 2)}])  # opens the transaction first
        _bulk_load(s, models.StockMargin, columns)
    with Session(engine) as s:
        rows = s.execute(select(models.StockMargin).order_by(models.StockMargin.trade_date,
                                                             models.StockMargin.code)).scalars().all()
    assert [(r.trade_date, r.code, r.is_fund, r.rzye, r.rqyl) for r in rows] == [
        (date(2024, 1, 2), "510300", True, 2e8, 1000.0),
        (date(2024, 1, 2), "600000", False, 1.5e9, None),
        (date(2024, 1, 3), "600000", False, 1.6e9, 200.0),
    ]
    assert {i["name"] for i in inspect(engine).get_indexes("stock_margin")} == index_names


def test_force_rolls_back_on_failure_then_replaces(seeded: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs on the shared database and leaves it as it found it (same seed: same data)."""
    engine = seeded
    before = frame(engine, models.MarginSummary, "trade_date", "exchange", "rzye").sort_values(
        ["trade_date", "exchange"], ignore_index=True)
    version = data_version(engine)
    with session_scope(engine) as s:
        upsert(s, models.MarginSummary, [{"trade_date": date(2020, 1, 2), "exchange": "SSE", "rzye": 8e11,
                                          "source": "csv"}])
        s.merge(models.Chat(chat_id=42, title="群"))
    indexes = {i["name"] for i in inspect(engine).get_indexes("stock_margin")}
    assert seed_demo(engine) is False  # not empty: no force, nothing done

    import storage.aggregate

    def broken(session: Session, dates: list[date]) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(storage.aggregate, "rebuild_sector_daily", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        seed_demo(engine, force=True)
    with Session(engine) as s:
        assert s.get(models.Chat, 42) is not None
        csv_rows = s.execute(select(func.count()).select_from(models.MarginSummary)
                             .where(models.MarginSummary.source == "csv")).scalar()
    assert csv_rows == 1  # rolled back: the forced delete did not happen
    assert {i["name"] for i in inspect(engine).get_indexes("stock_margin")} == indexes
    assert data_version(engine) == version

    monkeypatch.undo()
    assert seed_demo(engine, force=True) is True
    after = frame(engine, models.MarginSummary, "trade_date", "exchange", "rzye").sort_values(
        ["trade_date", "exchange"], ignore_index=True)
    pd.testing.assert_frame_equal(after, before)  # the csv row is gone, the demo is back as it was
    with Session(engine) as s:
        assert s.get(models.Chat, 42) is not None  # chats survive a forced re-seed
    assert {i["name"] for i in inspect(engine).get_indexes("stock_margin")} == indexes
    assert is_demo(engine) and data_version(engine) == version + 1
