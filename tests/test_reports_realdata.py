"""Reports over the real 2010-2018 market files reproduce published facts (skipped without realdata).

The market file becomes exchange "ALL" rows (a market-wide source: no per-exchange split, no
融券卖出额), the SSE-only file (2014-08 .. 2016-04) SSE rows beside them, as a user who imports both
gets; the two index `amount` columns become SSE and SZSE turnover (whole exchange, B shares
included: the documented fallback), and 上证指数 closes become index sh000001. No per-stock detail.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from reports.errors import ReportError
from reports.service import ReportService
from storage import models
from storage.database import bump_data_version, make_engine, session_scope, upgrade, upsert
from tests.conftest import REALDATA

PEAK_DAY = date(2015, 6, 18)
PEAK_RZRQYE = 2_273_035_261_015
# The whole files: 2015 with its trailing 3 years (percentiles) and the 3 years before a long
# crowding run, and 2018's missing days.
SPAN = ("2010-01-01", "2018-12-31")


def _value(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:

    if not REALDATA.is_dir():
        pytest.skip(f"realdata not found at {REALDATA}")
    margin = _span(pd.read_csv(REALDATA / "market_margin_sse_szse_2010_2018.csv", na_values="-",
                               parse_dates=["date"]))
    summary = [
        {
            "trade_date": r.date.date(),
            "exchange": "ALL",
            "rzye": _value(r.rzye_yuan),
            "rzmre": _value(r.rzmre_yuan),
            "rzche": _value(r.rzche_yuan),
            "rqye": _value(r.rqye_yuan),
            "rqyl": _value(r.rqyl_shares),
            "rqmcl": _value(r.rqmcl_shares),
            "rqmce": None,
            "rzrqye": _value(r.rzrqye_yuan),
            "source": "realdata",
        }
        for r in margin.itertuples()
    ]
    sse = pd.read_csv(REALDATA / "sse_margin_2014_2016.csv", dtype={"opDate": str})
    summary += [
        {"trade_date": pd.Timestamp(r.opDate).date(), "exchange": "SSE", "rzye": float(r.rzye),
         "rzmre": float(r.rzmre), "rzche": None, "rqye": None, "rqyl": float(r.rqyl), "rqmcl": float(r.rqmcl),
         "rqmce": None, "rzrqye": None, "source": "realdata-sse"}
        for r in sse.itertuples()
    ]
    turnover: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for symbol, exchange in (("sh000001", "SSE"), ("sz399001", "SZSE")):
        frame = _span(pd.read_csv(_index_file(REALDATA, symbol), parse_dates=["date"]))
        for r in frame.itertuples():
            turnover.append({"trade_date": r.date.date(), "exchange": exchange, "amount": float(r.amount),
                             "a_share_only": False, "source": "index_amount"})
            index.append({"symbol": symbol, "trade_date": r.date.date(), "close": float(r.close),
                          "amount": float(r.amount)})
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('real') / 'real.db'}")
    upgrade(eng)
    with session_scope(eng) as session:
        upsert(session, models.MarginSummary, summary)
        upsert(session, models.Turnover, turnover)
        upsert(session, models.IndexDaily, index)
        bump_data_version(session)
    yield eng
    eng.dispose()


def _span(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["date"] >= SPAN[0]) & (frame["date"] <= SPAN[1])]


def _index_file(folder: Path, symbol: str) -> Path:
    return folder / f"index_{symbol}_2010_2018.csv"


def test_ratio_2015_mean(real: Engine) -> None:
    d = ReportService(real).render("ratio", on=date(2015, 12, 31), days=250, chart=False).data
    assert d["date"] == "2015-12-31"
    assert d["scope"] == ["ALL"]
    assert d["demo"] is False
    assert len(d["series"]) == 250
    assert d["series"][-1]["date"] == "2015-12-31"
    # no 融券卖出额 in the file: the numerator is 融资买入额 alone, and the report says so
    assert d["rqmce_included"] is False
    assert d["turnover_a_share_only"] is False
    assert d["turnover_missing"] == []  # no Beijing exchange in 2015: nothing is missing
    in_2015 = [p["ratio_pct"] for p in d["series"] if p["date"].startswith("2015")]
    assert len(in_2015) == 244  # every 2015 trade date
    assert sum(in_2015) / len(in_2015) == pytest.approx(12.7, abs=0.3)


def test_balance_at_the_2015_peak(real: Engine) -> None:
    service = ReportService(real)
    d = service.render("balance", on=PEAK_DAY, chart=False).data
    assert d["date"] == "2015-06-18"
    assert d["rzrqye"] == PEAK_RZRQYE
    assert d["percentile_3y"] == 100.0
    after = service.render("balance", on=date(2015, 6, 19), chart=False).data
    # the market file's 融资融券余额: 2,265,975,075,829 (2015-06-19) - 2,273,035,261,015 (2015-06-18)
    assert after["change_1d"] == -7_060_185_186
    assert after["percentile_3y"] < 100.0
    caption = service.render("balance", on=PEAK_DAY, lang="zh", chart=False).caption
    assert "2.27 万亿元" in caption and "全市场" in caption
    # the run-up: the 20-day change last turned positive in June 2014 and stayed positive for a year;
    # the caption says how long ago that was, counted in the file's trade dates

    dates = pd.read_csv(REALDATA / "market_margin_sse_szse_2010_2018.csv", usecols=["date"])["date"]
    ago = int(((dates > "2014-06-16") & (dates <= "2015-06-18")).sum())
    assert d["turning_point"] == {"date": "2014-06-16", "direction": "up", "trade_days_ago": ago}
    assert f"拐点：2014-06-16 近20日变化由减转增（{ago} 个交易日前）" in caption


def test_sse_history_beside_the_market_table(real: Engine) -> None:
    """With SSE's own history beside the two-market table, the market stays the table's, and the
    exchange breakdown shows SSE and the rest (README: SZSE = total - SSE, 490.2 and 53.8 bn)."""
    service = ReportService(real)
    d = service.render("balance", on=date(2015, 11, 23), chart=False).data
    assert d["scope"] == ["ALL"] and d["rzye"] == pytest.approx(1215.1e9, abs=0.05e9)
    sse, rest = d["exchanges"]
    assert (sse["exchange"], sse["derived"], rest["exchange"], rest["derived"]) == ("SSE", False, "REST", True)
    assert sse["rzye"] / 1e9 == pytest.approx(724.9, abs=0.05)
    assert rest["rzye"] / 1e9 == pytest.approx(490.15, abs=0.005)  # 1215.092 - 724.944
    assert sse["rzrqye"] is None and rest["rzrqye"] is None  # SSE's file has no 融券余额
    # the day's change of each: today's balance less the previous trade date's
    # sse_margin_2014_2016.csv rzye: 724,944,067,772 (2015-11-23) - 727,483,864,902 (2015-11-20); the rest is
    # the market file's rzye less SSE's: (1,215,091,902,051 - 724,944,067,772) - (1,218,924,378,985 - 727,483,864,902)
    assert sse["rzye_change_1d"] == -2_539_797_130
    assert rest["rzye_change_1d"] == -1_292_679_804
    details = service.render("balance", on=date(2015, 11, 23), lang="zh", chart=False).details
    assert "沪市：融资余额 7,249.44 亿元" in details and "其余（全市场减以上）：融资余额 4,901.48 亿元" in details
    ratio = service.render("ratio", on=date(2015, 11, 23), chart=False).data
    assert ratio["numerator"] == pytest.approx(d_rzmre(real, date(2015, 11, 23)))


def d_rzmre(engine: Engine, day: date) -> float:
    """The two-market table's 融资买入额 on `day` (the market's, not SSE's)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    ms = models.MarginSummary
    with Session(engine) as session:
        return session.execute(select(ms.rzmre).where(ms.trade_date == day, ms.exchange == "ALL")).scalar_one()


def test_summary_without_per_stock_detail(real: Engine) -> None:
    """A market-only history has no sectors: the sectors report says why, the daily summary goes
    without them (text and chart), and the signals chart notes the missing detail."""
    service = ReportService(real)
    with pytest.raises(ReportError) as info:
        service.render("sectors", on=PEAK_DAY, chart=False)
    assert (info.value.kind, info.value.params) == ("no_sector_data", {"date": "2015-06-18"})
    for lang, line in (("zh", "行业：该日没有个股两融明细，无法计算。"),
                       ("en", "Sectors: no per-stock margin detail for this day.")):
        report = service.render("summary", on=PEAK_DAY, lang=lang)
        assert report.data["sectors"] is None and report.data["signals"]["stock_detail"] is False
        assert line in report.caption.splitlines()
        assert report.png is not None and report.png.startswith(b"\x89PNG")


def test_crowding_run_does_not_depend_on_the_window(real: Engine) -> None:
    """On 2015-03-24 the share had stood above its trailing 750-day 90th percentile for 253 trade
    days (since 2014-03): counted the same whatever window the chart shows."""
    service = ReportService(real)
    runs = {days: service.render("ratio", on=date(2015, 3, 24), days=days, chart=False).data["crowding_days"]
            for days in (20, 250, 1000)}
    assert runs == {20: 253, 250: 253, 1000: 253}


def test_a_crowding_run_begun_on_a_short_history_says_since_when(real: Engine) -> None:
    """On 2013-05-08 the share had stood above its trailing 90th percentile for 165 trade days, a run
    begun in 2012 when fewer than 750 days (3 years) lay behind it: the warning says "since" the
    data's first date, not "3 years". 2015-03-24's run of 253 began with 3 full years behind it."""
    service = ReportService(real)
    early = service.render("ratio", on=date(2013, 5, 8), lang="zh", chart=False)
    assert (early.data["crowding"], early.data["crowding_days"], early.data["crowding_since"]) == (
        True, 165, "2010-03-31")
    assert "占比已连续 165 日高于自 2010-03-31 以来 90% 分位" in early.caption
    signals = service.render("signals", on=date(2013, 5, 8), lang="en", chart=False)
    assert "percentile since 2010-03-31" in signals.caption
    later = service.render("ratio", on=date(2015, 3, 24), lang="en", chart=False)
    assert later.data["crowding_since"] is None and "Above its 90th percentile over the past 3 years" in later.caption


def test_a_long_balance_window_is_drawn_whole(real: Engine) -> None:
    from reports import figures

    level = figures.build(real, "balance", date(2016, 3, 31), 1200).series["level"]
    assert len(level) == 1201 and level.index[-1] == pd.Timestamp("2016-03-31")  # the window and its base day


def test_a_day_without_lending_balance_has_no_margin_balance(real: Engine) -> None:
    """A day whose row gives 融资余额 alone: the balance report says so and names the last day with a
    两融余额, never showing that day's figures under this date."""
    extra = date(2019, 1, 2)
    ms = models.MarginSummary
    with session_scope(real) as session:
        upsert(session, ms, [{"trade_date": extra, "exchange": "ALL", "rzye": 8.7e11, "rzmre": 3.0e10,
                              "source": "realdata"}])
        upsert(session, models.Turnover, [{"trade_date": extra, "exchange": e, "amount": 3e11, "a_share_only": False,
                                           "source": "index_amount"} for e in ("SSE", "SZSE")])
        bump_data_version(session)
    try:
        with pytest.raises(ReportError) as info:
            ReportService(real).render("balance", on=extra, chart=False)
        assert (info.value.kind, info.value.params) == ("no_balance_on", {"date": "2019-01-02", "latest": "2018-12-21"})
    finally:
        with session_scope(real) as session:
            for model in (ms, models.Turnover):
                session.execute(model.__table__.delete().where(model.trade_date == extra))
            bump_data_version(session)


def test_exchange_rows_without_lending_balance_keep_the_markets(real: Engine) -> None:
    """SZSE's rows added as the table less SSE (融资 only, as a user splitting the two-market table
    would): SSE and SZSE do not know the market's 两融余额, so the table stays the market and the
    balance report reads as before (2015-11-23: 1.22 万亿, +1,942.36 亿 over 20 days, checked
    against the raw file), with the two exchanges as its breakdown."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    ms = models.MarginSummary
    service = ReportService(real)
    before = service.render("balance", on=date(2015, 11, 23), chart=False).data
    with Session(real) as session:
        rows = session.execute(select(ms.trade_date, ms.exchange, ms.rzye, ms.rzmre).where(
            ms.trade_date >= date(2015, 9, 1), ms.trade_date <= date(2015, 11, 23),
            ms.exchange.in_(("SSE", "ALL")))).all()
    by_day: dict[date, dict[str, tuple[float, float]]] = {}
    for day, exchange, rzye, rzmre in rows:
        by_day.setdefault(day, {})[exchange] = (rzye, rzmre)
    szse = [{"trade_date": day, "exchange": "SZSE", "rzye": v["ALL"][0] - v["SSE"][0],
             "rzmre": v["ALL"][1] - v["SSE"][1], "source": "csv"}
            for day, v in by_day.items() if {"ALL", "SSE"} <= set(v)]
    assert len(szse) > 40
    with session_scope(real) as session:
        upsert(session, ms, szse)
        bump_data_version(session)
    try:
        after = ReportService(real).render("balance", on=date(2015, 11, 23), chart=False).data
        assert after["scope"] == ["ALL"]
        assert [e["exchange"] for e in after["exchanges"]] == ["SSE", "SZSE"]
        assert after["rzrqye"] == before["rzrqye"] and after["rzrqye"] / 1e12 == pytest.approx(1.22, abs=0.005)
        assert after["change_20d"] == pytest.approx(before["change_20d"]) == pytest.approx(1942.36e8, abs=0.01e8)
    finally:
        with session_scope(real) as session:
            session.execute(ms.__table__.delete().where(ms.exchange == "SZSE"))
            bump_data_version(session)


def test_a_change_across_missing_days_names_its_base(real: Engine) -> None:
    """2018-12-18 and -19 are missing from the market file (the index files have them): the change
    of 2018-12-20 is from 2018-12-17, and the report says so instead of "较上日"."""
    report = ReportService(real).render("balance", on=date(2018, 12, 20), lang="zh", chart=False)
    assert (report.data["previous_date"], report.data["days_skipped"]) == ("2018-12-17", 2)
    assert "较 2018-12-17（其间缺 2 个交易日的数据）" in report.caption
    normal = ReportService(real).render("balance", on=date(2018, 12, 21), lang="en", chart=False)
    assert (normal.data["previous_date"], normal.data["days_skipped"]) == ("2018-12-20", 0)
    assert "on the day" in normal.caption


def test_changes_over_n_days_count_trade_dates_across_missing_days(real: Engine) -> None:
    """On 2018-12-21 the 5-day change is from 2018-12-14, five trade dates back on the index files'
    calendar (2018-12-18 and -19 are missing from the market file but are trade dates), not from the
    fifth stored row (2018-12-12, seven trade days back); the 20-day one from 2018-11-23. On
    2018-12-20 the pace has no 1-day change to judge (its previous trade date has no data)."""
    service = ReportService(real)
    d = service.render("balance", on=date(2018, 12, 21), lang="zh", chart=False).data
    frame = pd.read_csv(REALDATA / "market_margin_sse_szse_2010_2018.csv", na_values="-",
                        index_col="date", parse_dates=["date"])["rzrqye_yuan"]
    t = frame[pd.Timestamp("2018-12-21")]
    assert d["change_5d"] == pytest.approx(t - frame[pd.Timestamp("2018-12-14")])
    assert d["change_20d"] == pytest.approx(t - frame[pd.Timestamp("2018-11-23")])
    assert d["change_5d"] == pytest.approx(-20.95e8, abs=0.01e8)
    assert d["change_20d"] == pytest.approx(-120.50e8, abs=0.01e8)
    before = service.render("balance", on=date(2018, 12, 20), lang="zh", chart=False).data
    assert before["pace_z"] is None and before["pace_class"] == "unknown"


def test_signals_without_per_stock_detail_say_what_they_could_not_compute(real: Engine) -> None:
    service = ReportService(real)
    zh = service.render("signals", on=date(2015, 6, 18), lang="zh", chart=False)
    assert zh.data["stock_detail"] is False
    # From the raw files on 2015-06-18: the ratio (10.76%) is far below its trailing 90th percentile
    # (15.44%): no crowding; the index rose 5.7% over 20 days: no deleveraging; the day's balance change is
    # 0.64 of its 250-day daily standard deviation: steady; the 60-day correlation of the ratio with the
    # index's 20-day volatility is -0.89: no amplification. Nothing to warn of, and the caption says so.
    assert zh.data["warnings"] == []
    assert (zh.data["crowding"], zh.data["deleveraging"], zh.data["pace_class"], zh.data["amplifying"]) == (
        False, False, "steady", False)
    assert zh.data["pace_z"] == pytest.approx(0.644, abs=0.001)
    assert zh.data["amplification_corr"] == pytest.approx(-0.888, abs=0.001)
    assert "市场层面无异常" in zh.caption and "项提示" not in zh.caption
    assert "该日无个股两融明细：个股急升、行业见底与融券结构无法计算。" in zh.caption
    en = service.render("signals", on=date(2015, 6, 18), lang="en", chart=False)
    assert "No per-stock margin detail that day" in en.caption


def test_percentiles_say_how_far_back_they_look(real: Engine) -> None:
    """Five years of history behind 2015-06-18: "of 3 years"; 2011-06-30 has 15 months of it:
    the percentile ranks among them, and says since when."""
    service = ReportService(real)
    full = service.render("ratio", on=date(2015, 6, 18), lang="zh", chart=False)
    assert full.data["percentile_since"] is None and "（近三年 " in full.caption
    short = service.render("balance", on=date(2011, 6, 30), lang="en", chart=False)
    assert short.data["percentile_since"] == "2010-03-31"
    # margin trading was growing: its record then, said as such (not "the 100th percentile")
    assert short.data["percentile_extreme"] == "highest" and short.data["percentile_3y"] == 100.0
    assert "stands at <b>the highest since 2010-03-31</b>" in short.caption


def test_an_early_balance_is_drawn_in_the_unit_its_headline_uses(real: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """In mid-2010 the market's balance was under 0.1 万亿: the headline is in 亿元, and so is the chart's
    axis (in 万亿 its ticks would read 0.0000 .. 0.0014)."""
    from matplotlib.axes import Axes

    labels: list[str] = []
    real_set = Axes.set_ylabel

    def record(self: Axes, label: str, *args: Any, **kwargs: Any) -> Any:
        labels.append(label)
        return real_set(self, label, *args, **kwargs)

    monkeypatch.setattr(Axes, "set_ylabel", record)
    report = ReportService(real).render("balance", on=date(2010, 6, 30), lang="zh", chart=True)
    assert "亿元" in report.caption.splitlines()[0] and "万亿" not in report.caption.splitlines()[0]
    assert labels[0] == "两融余额（亿元）"


def test_the_index_amount_is_never_called_a_share_turnover(real: Engine) -> None:
    """The realdata turnover is the exchanges' index amount (B shares included): the ratio's caption and
    the daily push name it so, not "A股成交额"."""
    service = ReportService(real)
    ratio = service.render("ratio", on=date(2015, 5, 28), lang="zh", chart=False)
    assert ratio.data["turnover_a_share_only"] is False
    assert "成交额（交易所指数口径，含B股） 23,629.36 亿元" in ratio.caption and "A股成交额" not in ratio.caption
    push = service.render("summary", on=date(2015, 6, 18), lang="en", chart=False)
    assert "Turnover is the exchange index amount (B shares included)" in push.caption


def test_the_ratio_charts_index_covers_the_ratios_dates(real: Engine) -> None:
    """2018-12-18 and -19 have index closes but no margin data: the last 5 ratios run from 12-13 to
    12-21, and the index drawn beside them over the same dates (7 closes), not over its own last 5;
    in 2010 the index (kept from January) starts with the ratio (2010-03-31), not months before it."""
    service = ReportService(real)
    late = service.figures("ratio", code=None, on=date(2018, 12, 21), days=5, version=0).series
    assert [ts.date().isoformat() for ts in late["ratio"].index] == [
        "2018-12-13", "2018-12-14", "2018-12-17", "2018-12-20", "2018-12-21"]
    assert late["index"].index[0] == late["ratio"].index[0] and len(late["index"]) == 7
    early = service.figures("ratio", code=None, on=date(2010, 6, 1), days=250, version=0).series
    assert early["index"].index[0] == early["ratio"].index[0] == pd.Timestamp("2010-03-31")


def test_the_signals_chart_shows_the_window_asked(real: Engine) -> None:
    """The signals read the ratio over at least 60 days (its warnings need them) but draw the window
    asked: 5 days drawn for /signals 5, as the footer says."""
    figs = ReportService(real).figures("signals", code=None, on=date(2015, 6, 18), days=5, version=0)
    assert len(figs.series["ratio"]) == len(figs.series["band"]) == 5 and figs.data["days"] == 5


def test_the_daily_summary_carries_the_amplification_warning(real: Engine) -> None:
    """On 2013-11-18 the 60-day correlation of the ratio with the index's 20-day volatility is 0.65,
    above AMPLIFYING_CORR (0.5), and nothing else warns: the push's summary says so, as /signals does."""
    service = ReportService(real)
    day = date(2013, 11, 18)
    signals = service.render("signals", on=day, lang="zh", chart=False)
    assert signals.data["warnings"] == ["amplification"]
    assert signals.data["amplification_corr"] == pytest.approx(0.6456, abs=0.0001)
    zh = service.render("summary", on=day, lang="zh", chart=False)
    assert "⚠️ 放大效应：两融交易占比与指数波动率的60日相关系数 0.65，杠杆正在放大波动" in zh.caption.splitlines()
    en = service.render("summary", on=day, lang="en", chart=False)
    assert ("⚠️ Amplification: 60-day correlation of the margin share of turnover with index volatility 0.65,"
            " leverage is amplifying swings") in en.caption.splitlines()
    quiet = service.render("summary", on=PEAK_DAY, lang="zh", chart=False)  # -0.89 on the 2015 peak
    assert "放大效应" not in quiet.caption


def test_a_percentile_just_under_the_top_never_reads_as_the_top(real: Engine) -> None:
    """On 2013-11-18 the ratio ranks at 99.86 of its history since 2010-03-31, not its highest: the
    text says the 99th percentile (100, rounded, would read as the top, which only the highest is)."""
    service = ReportService(real)
    zh = service.render("ratio", on=date(2013, 11, 18), lang="zh", chart=False)
    assert zh.data["percentile_3y"] == pytest.approx(99.86, abs=0.01) and zh.data["percentile_extreme"] is None
    assert "99% 分位" in zh.caption and "100% 分位" not in zh.caption
    en = service.render("summary", on=date(2013, 11, 18), lang="en", chart=False)
    assert "the 99th percentile" in en.caption and "100th" not in en.caption
