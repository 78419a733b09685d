"""storage.aggregate's spike table (StockSpikeDaily) on a small hand-made history, SQLite and PostgreSQL.

The history (money in 元; i = 0..79 is the trade-day position, DAYS[i]; balances rounded to whole 元):

- 600001 from 1e9, daily change 0.2 + 0.3 sin(i) percent, then +3 % a day over the last five days: a spike
- 000001 from 2e9, daily change 0.05 + 0.6 sin(0.9 i) percent (rising on some days, falling on others)
- 600003 from 6e8, daily change 0.1 + 0.5 cos(0.7 i) percent, suspended (no rows) on days 40..44
- 600002 listed on day 20 at 3e8, +0.5 % a day: rising, but never 60 known 5-day changes (zscore NULL)
- 300001 at 1e7 (below the 5e7 floor) and the ETF 510300 (a fund), both rising: never stored

Expected figures come from analytics.stocks.stock_spikes on the same frame built here, and for the
spike of 600001 on the last day from the definition itself, with the statistics module.
"""

from __future__ import annotations

import math
import shutil
import statistics
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from analytics import stocks
from reports import figures
from storage import ingest, models
from storage.aggregate import SPIKE_KEEP, rebuild_stock_spikes, spike_dates_after_write
from storage.database import make_engine, session_scope, upsert
from storage.importer import import_file
from tests.demo_db import demo_db_file

N = 80
DAYS: list[date] = [d.date() for d in pd.bdate_range("2024-01-02", periods=N)]
NAMES = {"600001": "样本甲", "000001": "样本乙", "600003": "样本丙", "600002": "样本新股", "300001": "样本小盘",
         "510300": "样本ETF"}


def _path(start: float, pct: list[float]) -> list[float]:
    out = [start]
    for p in pct[1:]:
        out.append(out[-1] * (1 + p / 100))
    return [float(round(v)) for v in out]


def balances() -> pd.DataFrame:
    """Wide 融资余额 of every security: index trade_date, columns code; NaN where no row is stored."""
    spike = [3.0 if i >= N - 5 else 0.2 + 0.3 * math.sin(i) for i in range(N)]
    cols = {
        "600001": _path(1e9, spike),
        "000001": _path(2e9, [0.05 + 0.6 * math.sin(0.9 * i) for i in range(N)]),
        "600003": _path(6e8, [0.1 + 0.5 * math.cos(0.7 * i) for i in range(N)]),
        "600002": [math.nan] * 20 + _path(3e8, [0.5] * (N - 20)),
        "300001": _path(1e7, [1.0] * N),
        "510300": _path(5e9, [1.0] * N),
    }
    wide = pd.DataFrame(cols, index=pd.DatetimeIndex(pd.to_datetime(DAYS), name="trade_date"))
    wide.iloc[40:45, wide.columns.get_loc("600003")] = math.nan
    return wide


def populate(engine: Engine, rebuild: bool = True) -> pd.DataFrame:
    wide = balances()
    rows = [
        {"trade_date": ts.date(), "code": code, "exchange": "SSE" if code[0] in "56" else "SZSE",
         "name": NAMES[code], "is_fund": code == "510300", "rzye": value}
        for ts, row in wide.iterrows() for code, value in row.items() if not math.isnan(value)
    ]
    summary = [{"trade_date": d, "exchange": "SSE", "rzye": 1e12, "source": "test"} for d in DAYS]
    with session_scope(engine) as session:
        upsert(session, models.StockMargin, rows)
        upsert(session, models.MarginSummary, summary)
        if rebuild:
            assert rebuild_stock_spikes(session, DAYS) == stored_count(session)
    return wide


def stored_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(models.StockSpikeDaily)).scalar()


def stored(engine: Engine, day: date | None = None) -> pd.DataFrame:
    sp = models.StockSpikeDaily
    query = select(sp.trade_date, sp.code, sp.rzye, sp.change_pct, sp.zscore)
    if day is not None:
        query = query.where(sp.trade_date == day)
    with Session(engine) as session:
        rows = session.execute(query.order_by(sp.trade_date, sp.code)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["trade_date", "code", "rzye", "change_pct", "zscore"])
    return frame.astype({"rzye": float, "change_pct": float, "zscore": float})


def test_rebuild_matches_stock_spikes(engine: Engine) -> None:
    wide = populate(engine)
    table = stored(engine)
    assert not table.empty
    assert set(table["code"]) == {"600001", "000001", "600003", "600002"}  # no small stock, no fund
    assert (table["rzye"] >= 5e7).all() and (table["change_pct"] > 0).all()
    # Rising but without 60 known changes before the day: stored, with a NULL z-score.
    new = table[table["code"] == "600002"]
    assert len(new) == N - 25 and new["zscore"].isna().all()
    with Session(engine) as session:
        nulls = session.execute(select(func.count()).select_from(models.StockSpikeDaily).where(
            models.StockSpikeDaily.zscore.is_(None))).scalar()
    assert nulls == table["zscore"].isna().sum()  # NULL, not NaN (PostgreSQL stores NaN as a number)

    stock_wide = wide.drop(columns="510300")
    compared = 0
    for t in range(N):
        day = DAYS[t]
        expected = stocks.stock_spikes(stock_wide.iloc[: t + 1], top=100)
        got = table[(table["trade_date"] == day) & table["zscore"].notna()].set_index("code")
        assert sorted(got.index) == sorted(expected.index), day
        got = got.loc[expected.index]
        assert list(got["rzye"]) == list(expected["rzye"])
        assert list(got["change_pct"]) == list(expected["change_pct"])
        np.testing.assert_allclose(got["zscore"], expected["zscore"], rtol=1e-12)
        compared += len(expected)
    assert compared >= 15

    # The spike of the last day, from the definition: the 5-day change against the 60 before it.
    x = list(wide["600001"])
    change = [(x[i] / x[i - 5] - 1) * 100 for i in range(5, N)]  # change[k] is day k + 5
    past = change[-61:-1]
    z = (change[-1] - statistics.mean(past)) / statistics.stdev(past)
    last = table[(table["trade_date"] == DAYS[-1])].set_index("code")
    assert last.loc["600001", "change_pct"] == pytest.approx((1.03**5 - 1) * 100, rel=1e-6)
    assert last.loc["600001", "change_pct"] == pytest.approx(change[-1], rel=1e-12)
    assert last.loc["600001", "zscore"] == pytest.approx(z, rel=1e-9)
    assert z > 5  # a spike indeed


def test_partial_rebuild_gives_the_same_bits(engine: Engine) -> None:
    populate(engine)
    full = stored(engine)
    some = [DAYS[30], DAYS[70], DAYS[-2], DAYS[-1], date(2024, 1, 6)]  # a Saturday: no stock rows
    with session_scope(engine) as session:
        session.execute(delete(models.StockSpikeDaily))
        rebuild_stock_spikes(session, some)
    again = stored(engine)
    assert set(again["trade_date"]) == set(some[:4])
    pd.testing.assert_frame_equal(again, full[full["trade_date"].isin(some)].reset_index(drop=True), check_exact=True)
    # Rebuilding replaces rows: a row for a stock that no longer qualifies goes.
    with session_scope(engine) as session:
        upsert(session, models.StockSpikeDaily, [{"trade_date": DAYS[-1], "code": "300001", "rzye": 1.0,
                                                  "change_pct": 1.0, "zscore": 9.0}])
        rebuild_stock_spikes(session, [DAYS[-1]])
    pd.testing.assert_frame_equal(stored(engine, DAYS[-1]),
                                  full[full["trade_date"] == DAYS[-1]].reset_index(drop=True), check_exact=True)


def test_dates_a_write_changes(engine: Engine) -> None:
    populate(engine, rebuild=False)
    with Session(engine) as session:
        assert spike_dates_after_write(session, []) == []
        assert spike_dates_after_write(session, [DAYS[-1]]) == [DAYS[-1]]  # ingest of the newest day
        assert spike_dates_after_write(session, [DAYS[10]]) == DAYS[10:76]  # the day and 65 after it
        assert spike_dates_after_write(session, [DAYS[2], DAYS[5]]) == DAYS[2:71]
        assert spike_dates_after_write(session, [DAYS[70], DAYS[72]]) == DAYS[70:]


def test_import_of_a_past_day_moves_the_days_after_it(engine: Engine, tmp_path: Path) -> None:
    wide = populate(engine)
    before = stored(engine)
    day = DAYS[70]
    value = wide.loc[pd.Timestamp(day), "600001"] * 1.2
    csv = tmp_path / "stocks.csv"
    csv.write_text("date,code,name,rzye,rzmre,rzche,rqyl,rqmcl,rqchl,rqye\n"
                   f"{day.isoformat()},600001,{NAMES['600001']},{value:.0f},,,,,,\n", encoding="utf-8")
    assert import_file(engine, "stocks", csv)[0] == 1
    imported = stored(engine)
    with session_scope(engine) as session:
        session.execute(delete(models.StockSpikeDaily))
        rebuild_stock_spikes(session, DAYS)
    pd.testing.assert_frame_equal(imported, stored(engine), check_exact=True)  # as a rebuild of everything
    moved = set(imported.merge(before, how="outer", indicator=True).query("_merge != 'both'")["trade_date"])
    assert sorted(moved) == DAYS[70:]  # the day and the (here: all nine) stored days after it


def test_ingest_step_stores_the_day(engine: Engine) -> None:
    populate(engine, rebuild=False)
    with session_scope(engine) as session:
        rebuild_stock_spikes(session, DAYS[:-1])
    outcome = ingest._rebuild_sectors(engine, DAYS[-1])  # the day's derived step, after its sources
    assert outcome.status == ingest.DONE
    last = stored(engine, DAYS[-1])
    assert "600001" in set(last["code"]) and last.set_index("code").loc["600001", "zscore"] > 5


@pytest.fixture
def demo_copy(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Engine:
    path = tmp_path / "demo.db"
    shutil.copyfile(demo_db_file(tmp_path_factory, request.config), path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def test_signals_read_the_table_and_fall_back_to_stock_rows(demo_copy: Engine) -> None:
    engine = demo_copy
    with Session(engine) as session:
        day = session.execute(select(func.max(models.StockMargin.trade_date))).scalar()
        assert session.execute(select(func.count()).select_from(models.StockSpikeDaily).where(
            models.StockSpikeDaily.trade_date == day)).scalar() == SPIKE_KEEP  # the demo seed fills the table
    from_table = figures.signals_figures(engine, day, 60).data["spikes"]
    # the list is full (SPIKE_TOP), led by the three stocks storage.demo makes jump into the last day
    assert len(from_table) == figures.SPIKE_TOP == 10 and all(s["zscore"] >= figures.SPIKE_Z for s in from_table)
    assert [s["code"] for s in from_table[:3]] == ["002564", "000775", "688164"]
    assert all(s["zscore"] > 6 for s in from_table[:3]) and from_table[3]["zscore"] < 5
    assert [s["zscore"] for s in from_table] == sorted((s["zscore"] for s in from_table), reverse=True)
    with session_scope(engine) as session:
        session.execute(delete(models.StockSpikeDaily).where(models.StockSpikeDaily.trade_date == day))
    computed = figures.signals_figures(engine, day, 60).data["spikes"]  # the fallback: from the stock rows
    assert [(s["code"], s["name"]) for s in computed] == [(s["code"], s["name"]) for s in from_table]
    for new, old in zip(from_table, computed, strict=True):
        assert set(new) == {"code", "name", "rzye", "change_pct", "zscore"}
        assert new["rzye"] == old["rzye"] and new["change_pct"] == old["change_pct"]
        assert new["zscore"] == pytest.approx(old["zscore"], rel=1e-12)


def test_a_sector_with_a_member_of_unknown_rzche_has_unknown_rzche() -> None:
    """Sector 480000: one member with 融资偿还额, one without (its previous day not stored): the sum
    would count the unknown as 0 and take its whole 融资买入额 as net buying, so the sector's is NULL.
    Sector 490000: every member known, summed."""
    from storage.aggregate import sector_rows

    day = date(2024, 4, 11)
    stocks_ = pd.DataFrame({
        "trade_date": [day] * 4, "code": ["600000", "000001", "600030", "000776"], "is_fund": [False] * 4,
        "rzye": [4e10, 3e10, 2e10, 1e10], "rzmre": [5e8, 6e8, 7e8, 0.0], "rzche": [4e8, None, 5e8, 1e8],
        "rqye": [1e6, 2e6, 3e6, 4e6],
    })
    classes = pd.DataFrame({"code": ["600000", "000001", "600030", "000776"], "start_date": [date(2021, 7, 30)] * 4,
                            "sw_l1_code": ["480000", "480000", "490000", "490000"]})
    rows = {r["sw_l1_code"]: r for r in sector_rows(stocks_, classes)}
    assert rows["480000"]["rzche"] is None and rows["480000"]["rzmre"] == 11e8 and rows["480000"]["rzye"] == 7e10
    assert rows["490000"]["rzche"] == 6e8 and rows["490000"]["stock_count"] == 2


def test_sector_figures_wait_for_a_whole_day(engine: Engine) -> None:
    """Sector figures are (re)built for days the ingest finished (its sectors step done) and days it
    never saw (imported), never for a day whose detail is still coming in (SSE's in, BSE's pending):
    a rebuild after a reclassification or SSE's lending valuation must not make that day look whole."""
    from storage._steps import SECTORS, sector_days_ready
    from storage.database import session_scope

    whole, coming_in, imported = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
    with session_scope(engine) as session:
        session.add_all([
            models.IngestStatus(trade_date=whole, source="sse_detail", status="done"),
            models.IngestStatus(trade_date=whole, source=SECTORS, status="done"),
            models.IngestStatus(trade_date=coming_in, source="sse_detail", status="done"),
            models.IngestStatus(trade_date=coming_in, source="bse_detail", status="pending"),
        ])
    with Session(engine) as session:
        assert sector_days_ready(session, [whole, coming_in, imported]) == [whole, imported]
        assert sector_days_ready(session, []) == []
