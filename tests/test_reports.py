"""Reports end to end: figures computed by hand on a small database, errors, cache, Telegram text.

Two databases:

- a SMALL hand-made one (30 trade days, round numbers) whose every figure is worked out below;
- the embedded DEMO dataset (storage.demo.seed_demo), seeded once per test session and shared with
  tests/test_charts.py and tests/test_cli.py through the helpers `demo_engine` (one engine a session,
  disposed at its end) / `demo_report` (a fresh render); this module's tests read its reports from the
  module-scoped fixture `demo_reports`.
  Seeding takes ~20 s, so the seeded file is also kept in pytest's cache folder under a key made of
  the code that builds it (storage/demo.py and the modules it runs, the migrations, numpy and pandas
  versions): later runs copy it instead.

The small database (money in 元; i = 0..29 is the trade-day position, DAYS[i]):

- SSE   rzye 1000e9 + i*1e9 (day 29 dips back to 1026e9), rqye 10e9, rzmre 50e9
- SZSE  rzye  800e9 + i*1e9,                               rqye  5e9, rzmre 40e9
- BSE   rzye   10e9,                                        rqye  0,   rzmre  1e9
  => market 两融余额 = 1825e9 + 2e9*i, except day 29: 1880e9 (day 28: 1881e9)
- ALL rows (a market-wide source) carry 融券卖出额 rqmce = 0.91e9 * (i % 5) on every day but day 28
- turnover SSE 500e9 + SZSE 400e9 + BSE 10e9 = 910e9 (A shares only)
  => ratio = (91e9 + rqmce) / 910e9 x 100 = 10 + 0.1 * (i % 5) percent; day 28: 10.0, rzmre only
- stocks: sector 270000 (电子) 600001 + 000001, each 2e9 up to day 9 then +25e6 a day (2.5e9 on day 29);
  sector 480000 (银行) 600002 + 000002, each 2e9 then -25e6 a day (1.5e9); sector 370000 (医药生物)
  600003 + 830001 at 1e9; an ETF 510300 at 100e9 (never in a sector); 000003 only on days 0..4.
  => sector balances on day 29: 5e9 / 3e9 / 2e9 (50 / 30 / 20 %), day 9: 4e9 / 4e9 / 2e9 (40 / 40 / 20 %)
"""

from __future__ import annotations

import html
import math
import re
import statistics
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session

from reports import charts, figures, fmt, securities
from reports import text as report_text
from reports.errors import ReportError
from reports.figures import KINDS
from reports.gallery import sample_stock
from reports.i18n import t
from reports.service import RenderedReport, ReportService
from storage import models, queries
from storage.aggregate import rebuild_sector_daily
from storage.database import bump_data_version, make_engine, session_scope, upgrade, upsert
from tests.demo_db import demo_db_file

# ----------------------------------------------------------------------------------------------
# The small hand-made database
# ----------------------------------------------------------------------------------------------

N = 30
DAYS: list[date] = [d.date() for d in pd.bdate_range("2024-01-02", periods=N)]
LAST = DAYS[-1]
NO_ALL_DAY = DAYS[28]  # no ALL row: 融券卖出额 unknown
SATURDAY = date(2024, 1, 6)
assert SATURDAY.weekday() == 5 and DAYS[0] < SATURDAY < LAST

SECTORS = {
    "270000": ("电子", "Electronics", "801080"),
    "480000": ("银行", "Banks", "801780"),
    "370000": ("医药生物", "Pharma & Biotech", "801150"),
}
# code -> (exchange, name, sector or None, is_fund)
STOCKS = {
    "600001": ("SSE", "样本电子甲", "270000", False),
    "000001": ("SZSE", "样本电子乙", "270000", False),
    "600002": ("SSE", "样本银行甲", "480000", False),
    "000002": ("SZSE", "样本银行乙", "480000", False),
    "600003": ("SSE", "样本医药甲", "370000", False),
    "830001": ("BSE", "样本医药乙", "370000", False),
    "510300": ("SSE", "样本300ETF", None, True),
    "000003": ("SZSE", "样本停牌股", None, False),
}
SCOPE = ["SSE", "SZSE", "BSE"]


def _exchange_rzye(exchange: str, i: int) -> float:
    if exchange == "SSE":
        return 1000e9 + (26 if i == 29 else i) * 1e9
    if exchange == "SZSE":
        return 800e9 + i * 1e9
    return 10e9


RQYE = {"SSE": 10e9, "SZSE": 5e9, "BSE": 0.0}
RZMRE = {"SSE": 50e9, "SZSE": 40e9, "BSE": 1e9}
TURNOVER = {"SSE": 500e9, "SZSE": 400e9, "BSE": 10e9}


def _stock_rzye(code: str, i: int) -> float:
    sector = STOCKS[code][2]
    if code == "510300":
        return 100e9
    if code == "000003":
        return 0.5e9
    if sector == "270000":
        return 2e9 + max(i - 9, 0) * 25e6
    if sector == "480000":
        return 2e9 - max(i - 9, 0) * 25e6
    return 1e9


def _rqmce(i: int) -> float:
    return 0.91e9 * (i % 5)


def populate(engine: Engine) -> None:
    """Write the small database described in the module docstring (one transaction, data version bumped)."""
    summary, turnover, index, stocks = [], [], [], []
    for i, day in enumerate(DAYS):
        total_rzye = 0.0
        for e in SCOPE:
            rzye = _exchange_rzye(e, i)
            prev = _exchange_rzye(e, i - 1) if i else rzye
            total_rzye += rzye
            summary.append({"trade_date": day, "exchange": e, "rzye": rzye, "rzmre": RZMRE[e],
                            "rzche": prev + RZMRE[e] - rzye, "rqye": RQYE[e], "rqmce": None,
                            "rzrqye": rzye + RQYE[e], "source": "test"})
            turnover.append({"trade_date": day, "exchange": e, "amount": TURNOVER[e], "a_share_only": True,
                             "source": "test"})
        if day != NO_ALL_DAY:
            summary.append({"trade_date": day, "exchange": "ALL", "rzye": total_rzye, "rzmre": 91e9,
                            "rzche": None, "rqye": 15e9, "rqmce": _rqmce(i), "rzrqye": total_rzye + 15e9,
                            "source": "test-market"})
        index.append({"symbol": "sh000001", "trade_date": day, "close": 3000.0 + i, "amount": None})
        for code, (exchange, name, _sector, is_fund) in STOCKS.items():
            if code == "000003" and i > 4:
                continue
            rzye = _stock_rzye(code, i)
            prev = _stock_rzye(code, i - 1) if i else rzye
            stocks.append({"trade_date": day, "code": code, "exchange": exchange, "name": name,
                           "is_fund": is_fund, "rzye": rzye, "rzmre": 1e8, "rzche": prev + 1e8 - rzye,
                           "rqyl": 1000.0, "rqmcl": 100.0,
                           "rqye": None if exchange == "SSE" else 1e7})
    classes = [{"code": code, "start_date": date(2020, 1, 1), "sw_code": sector[:2] + "0100", "sw_l1_code": sector}
               for code, (_e, _n, sector, _f) in STOCKS.items() if sector]
    names = [{"sw_l1_code": code, "name_zh": zh, "name_en": en, "index_symbol": symbol}
             for code, (zh, en, symbol) in SECTORS.items()]
    with session_scope(engine) as session:
        upsert(session, models.MarginSummary, summary)
        upsert(session, models.Turnover, turnover)
        upsert(session, models.IndexDaily, index)
        upsert(session, models.StockMargin, stocks)
        upsert(session, models.IndustryClass, classes)
        upsert(session, models.IndustryName, names)
        rebuild_sector_daily(session, DAYS)
        bump_data_version(session)


# The report services of the small databases, each owned by the fixture that made its database: added
# when the database is built, cleared and dropped when it goes (no engine, disposed or not, outlives
# its fixture here), so that zh and en (and repeated asks) share the computed figures within its life.
_SERVICES: dict[Engine, ReportService] = {}


@contextmanager
def _owned_service(engine: Engine) -> Iterator[ReportService]:
    service = _SERVICES[engine] = ReportService(engine)
    try:
        yield service
    finally:
        service.clear()
        del _SERVICES[engine]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The small database on SQLite, built once for the read-only tests of this module (one service)."""
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('small') / 'small.db'}")
    upgrade(eng)
    populate(eng)
    with _owned_service(eng):
        yield eng
    eng.dispose()


@pytest.fixture
def small_rw(engine: Engine) -> Iterator[Engine]:
    """The small database on SQLite and PostgreSQL, fresh for each test (tests may write to it), with
    a service of its own for the test."""
    populate(engine)
    with _owned_service(engine):
        yield engine


@pytest.fixture(autouse=True)
def _no_report_cached_across_a_patch(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that patches anything (monkeypatch, itself or through a fixture) finds no report of the
    module's small database cached before it, and leaves none computed under its patch behind."""
    if "monkeypatch" not in request.fixturenames:
        yield
        return
    for service in _SERVICES.values():
        service.clear()
    yield
    for service in _SERVICES.values():
        service.clear()


def service_for(engine: Engine) -> ReportService:
    """The service of a small database (`small`, `small_rw`); for any other engine a new one, kept by
    nobody."""
    return _SERVICES.get(engine) or ReportService(engine)


def data(engine: Engine, kind: str, **kw: Any) -> dict[str, Any]:
    return service_for(engine).render(kind, chart=False, **kw).data


# ----------------------------------------------------------------------------------------------
# The demo database, shared with test_charts.py and test_cli.py
# ----------------------------------------------------------------------------------------------

# The demo's trade dates (storage.demo.trade_days from 2023-01-01 to 2026-11-20): 1,015 weekdays less
# the 67 that fall in its holiday spans (counted in tests/test_demo.py).
DEMO_TRADE_DAYS = 948
_DEMO_ENGINE = pytest.StashKey[Engine]()


def demo_engine(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> Engine:
    """The engine of the seeded demo file (read only), one per test session: kept in the session's
    stash and disposed when the session ends. No report is cached with it."""
    engine = config.stash.get(_DEMO_ENGINE, None)
    if engine is None:
        engine = config.stash[_DEMO_ENGINE] = make_engine(f"sqlite:///{demo_db_file(tmp_path_factory, config)}")
        config.add_cleanup(engine.dispose)
    return engine


def _demo_render(service: ReportService, code: str, kind: str, lang: str, chart: bool) -> RenderedReport:
    if kind == "sector":  # one sector alone: /sectors 医药
        return service.render("sectors", code="医药生物", lang=lang, chart=chart)
    return service.render(kind, code=code if kind == "stock" else None, lang=lang, chart=chart)


def demo_report(engine: Engine, kind: str, lang: str) -> RenderedReport:
    """One report of the demo database (and "sector": one sector alone) WITH its chart (test_charts
    reads it), rendered afresh: nothing is cached between callers."""
    return _demo_render(ReportService(engine), sample_stock(engine), kind, lang, chart=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Engine:
    return demo_engine(tmp_path_factory, pytestconfig)


@pytest.fixture(scope="module")
def demo_reports(demo: Engine) -> Iterator[Callable[[str, str], RenderedReport]]:
    """Every report of the demo database (and "sector"), text only, rendered once for this module's
    tests that only read them (a test that patches renders its own)."""
    service, code = ReportService(demo), sample_stock(demo)
    yield lambda kind, lang: _demo_render(service, code, kind, lang, chart=False)
    service.clear()


def test_shared_reads_cut_a_span_from_a_wider_answer(demo: Engine) -> None:
    """Inside shared_reads() a read over dates is asked of the database once per (end, arguments):
    a later, narrower span is cut from the answer and equals a read of its own; a wider one, another
    end or another scope is read again; a caller changing its answer changes nobody else's."""
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    day = date(2026, 11, 20)
    narrow_alone = queries.margin_summary(demo, start=day - timedelta(days=100), end=day)
    dates_alone = queries.known_trade_dates(demo, day - timedelta(days=30), day)
    event.listen(demo, "before_cursor_execute", count)
    try:
        with queries.shared_reads():
            wide = queries.margin_summary(demo, start=day - timedelta(days=400), end=day)
            wide.loc[:, "rzye"] = 0.0  # the caller's copy
            narrow = queries.margin_summary(demo, start=day - timedelta(days=100), end=day)
            assert len(statements) == 1
            pd.testing.assert_frame_equal(narrow, narrow_alone)
            assert (len(wide), len(narrow)) == (271, 68)  # the demo's trade dates in 400 and 100 days
            queries.margin_summary(demo, start=day - timedelta(days=500), end=day)  # wider: read
            queries.margin_summary(demo, start=day - timedelta(days=100), end=day - timedelta(days=1))
            queries.margin_summary(demo, "SSE", start=day - timedelta(days=100), end=day)
            assert len(statements) == 4
            queries.known_trade_dates(demo, day - timedelta(days=400), day)
            dates = queries.known_trade_dates(demo, day - timedelta(days=30), day)
            assert len(statements) == 5
            assert dates.equals(dates_alone)
    finally:
        event.remove(demo, "before_cursor_execute", count)


# ----------------------------------------------------------------------------------------------
# Every report: base keys
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_report_names_date_scope_and_demo_flag(small: Engine, kind: str) -> None:
    d = data(small, kind, code="600001" if kind == "stock" else None)
    assert d["report"] == kind
    assert d["date"] == LAST.isoformat()
    assert d["scope"] == (["SSE"] if kind == "stock" else SCOPE)  # a stock's, the one exchange it trades on
    assert d["demo"] is False and d["origin"] == "exchanges"


@pytest.fixture
def short_history_percentiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The small database holds 30 days: let its percentiles stand on them (the product asks for a
    year, PERCENTILE_MIN_DAYS, before it calls one "of 3 years"; see the test below)."""
    monkeypatch.setattr(figures.market, "PERCENTILE_MIN_DAYS", 1)  # no report cached across it: see above
    yield


def test_changes_between_days_of_different_scope_are_unknown(small_rw: Engine) -> None:
    """The day before LAST lacks BSE's summary: its market sums SSE and SZSE only, so the day's
    change against it would count BSE's whole balance as a rise. It is unknown
    instead; the 5- and 20-day changes compare days of the same scope and stand."""
    with session_scope(small_rw) as session:
        session.execute(text("delete from margin_summary where exchange = 'BSE' and trade_date = :day"),
                        {"day": DAYS[-2]})
    service = ReportService(small_rw)
    d = service.render("balance", chart=False).data
    assert d["scope"] == SCOPE and d["rzrqye"] == pytest.approx(1880e9)
    assert d["change_1d"] is None and d["change_1d_pct"] is None and d["pace_direction"] is None
    assert d["change_5d"] == pytest.approx(1880e9 - 1873e9) and d["change_20d"] == pytest.approx(37e9)
    caption = report_text.to_plain(service.render("balance", lang="zh", chart=False).caption)
    assert caption.splitlines()[0] == "两融余额 1.88 万亿元 • 较上日 —"
    figs = service.figures("balance", code=None, on=None, days=None, version=0)
    daily = figs.series["daily_change"]
    # the two changes that touch the narrower day are not drawn; the others are
    assert daily.isna().sum() == 2 and daily.iloc[-2:].isna().all()
    assert daily.iloc[-3] == pytest.approx(2e9)


def test_before_bse_a_sum_and_a_market_wide_row_compare() -> None:
    """Before BSE had margin trading, SSE + SZSE (bits 0b011) and a market-wide row (0b111) both
    cover the whole market: their scopes compare; after it they do not."""
    days = pd.DatetimeIndex(["2022-12-08", "2022-12-09", "2022-12-12", "2022-12-13"])
    members = pd.Series([3.0, 7.0, 3.0, 7.0], index=days)
    assert list(figures.common._market_scope(members)) == [7, 7, 3, 7]


def test_no_percentile_on_less_than_a_year_of_history(small: Engine) -> None:
    for kind in ("balance", "ratio"):
        assert figures.build(small, kind, LAST, 20).data["percentile_3y"] is None
    caption, _ = report_text.render("balance", "zh", figures.build(small, "balance", LAST, 20).data)
    assert "历史不足一年，暂无近三年分位" in caption and "—%" not in caption
    caption, _ = report_text.render("ratio", "en", figures.build(small, "ratio", LAST, 20).data)
    assert "(no 3-year percentile: under a year of history, 20-day average" in caption


# ----------------------------------------------------------------------------------------------
# balance
# ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("short_history_percentiles")
def test_balance_hand_computed(small: Engine) -> None:
    d = data(small, "balance")
    assert d["rzrqye"] == pytest.approx(1880e9)
    assert d["rzye"] == pytest.approx(1026e9 + 829e9 + 10e9)
    assert d["rqye"] == pytest.approx(15e9)
    assert d["change_1d"] == pytest.approx(1880e9 - 1881e9)  # the dip on the last day
    assert d["change_5d"] == pytest.approx(1880e9 - 1873e9)  # day 24: 1825 + 48
    assert d["change_20d"] == pytest.approx(1880e9 - 1843e9)  # day 9: 1825 + 18
    assert d["change_20d_pct"] == pytest.approx(37 / 1843 * 100)
    assert d["change_1d_pct"] == pytest.approx(-1 / 1881 * 100)
    # 28 earlier days are <= 1880e9 (1825 + 2i <= 1880 for i <= 27), plus the day itself: 29 of 30
    assert d["percentile_3y"] == pytest.approx(29 / 30 * 100)
    # 250 trailing daily changes are needed for the pace; 30 days are not enough, and no sign change
    assert d["pace_z"] is None and d["pace_class"] == "unknown"
    assert d["pace_direction"] == "down"
    assert d["turning_point"] is None
    by_exchange = {e["exchange"]: e for e in d["exchanges"]}
    assert list(by_exchange) == SCOPE
    assert by_exchange["SSE"]["rzrqye"] == pytest.approx(1036e9)
    assert by_exchange["SSE"]["change_1d"] == pytest.approx(-2e9)
    assert by_exchange["SZSE"]["change_1d"] == pytest.approx(1e9)
    assert by_exchange["BSE"]["change_1d"] == pytest.approx(0.0)
    # 5 and 20 trade dates back (days 24 and 9): SSE 1034e9 and 1019e9, SZSE 829e9 and 814e9, BSE flat;
    # the exchanges' changes add up to the market's
    assert [by_exchange[e]["change_5d"] for e in SCOPE] == pytest.approx([2e9, 5e9, 0.0])
    assert [by_exchange[e]["change_20d"] for e in SCOPE] == pytest.approx([17e9, 20e9, 0.0])
    assert [by_exchange[e]["change_20d_pct"] for e in SCOPE] == pytest.approx([17 / 1019 * 100, 20 / 814 * 100, 0.0])
    assert by_exchange["SSE"]["change_1d_pct"] == pytest.approx(-2 / 1038 * 100)
    assert sum(by_exchange[e]["change_5d"] for e in SCOPE) == pytest.approx(d["change_5d"])


@pytest.mark.usefixtures("short_history_percentiles")
def test_balance_on_an_earlier_date(small: Engine) -> None:
    d = data(small, "balance", on=DAYS[20])
    assert d["date"] == DAYS[20].isoformat()
    assert d["rzrqye"] == pytest.approx(1825e9 + 40e9)
    assert d["change_20d"] == pytest.approx(40e9)
    assert d["change_20d_pct"] == pytest.approx(40 / 1825 * 100)
    assert d["percentile_3y"] == pytest.approx(100.0)


# ----------------------------------------------------------------------------------------------
# ratio
# ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("short_history_percentiles")
def test_ratio_hand_computed(small: Engine) -> None:
    d = data(small, "ratio")
    # last day: i = 29, rqmce = 0.91e9 * 4
    assert d["numerator"] == pytest.approx(91e9 + 3.64e9)
    assert d["turnover"] == pytest.approx(910e9)
    assert d["ratio_pct"] == pytest.approx((91e9 + 3.64e9) / 910e9 * 100)
    assert d["ratio_pct"] == pytest.approx(10.4)
    assert d["rqmce_included"] is True
    assert d["turnover_a_share_only"] is True and d["turnover_missing"] == []
    assert d["percentile_3y"] == pytest.approx(100.0)  # 10.4 is the highest value
    # 20-day mean over days 10..29: four cycles of 10.0..10.4, day 28 (10.3) read as 10.0
    assert d["ma20"] == pytest.approx(10 + (4 * 1.0 - 0.3) / 20)
    assert d["crowding"] is False and d["deleveraging"] is False
    # the series holds every stored day (the default window of 250 exceeds the 30 stored)
    assert len(d["series"]) == N
    assert [p["date"] for p in d["series"]] == [x.isoformat() for x in DAYS]
    for i, point in enumerate(d["series"]):
        expected = 10.0 if DAYS[i] == NO_ALL_DAY else 10 + 0.1 * (i % 5)
        assert point["ratio_pct"] == pytest.approx(expected), DAYS[i]


def test_ratio_without_beijing_turnover_says_it_reads_high(sqlite_engine: Engine) -> None:
    """BSE's margin figures are in the market but its turnover is not stored (it publishes no history):
    the denominator is SSE + SZSE, and the report says the share reads slightly high."""
    populate(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        session.execute(delete(models.Turnover).where(models.Turnover.exchange == "BSE"))
        bump_data_version(session)
    d = data(sqlite_engine, "ratio")
    assert d["turnover"] == pytest.approx(900e9) and d["turnover_missing"] == ["BSE"]
    assert d["ratio_pct"] == pytest.approx((91e9 + 3.64e9) / 900e9 * 100)
    zh, en = (report_text.render("ratio", lang, d)[1] for lang in ("zh", "en"))
    assert "北交所没有成交额数据，分母不含北交所成交额，占比略偏高。" in zh
    assert "Beijing publishes no turnover: the denominator leaves it out, so the share reads slightly high." in en


def test_ratio_window_sets_series_length(small: Engine) -> None:
    d = data(small, "ratio", days=10)
    assert d["days"] == 10
    assert len(d["series"]) == 10
    assert d["series"][0]["date"] == DAYS[20].isoformat()
    assert d["series"][-1] == {"date": LAST.isoformat(), "ratio_pct": pytest.approx(10.4)}


def test_ratio_without_short_sales_counts_financing_only(small: Engine) -> None:
    d = data(small, "ratio", on=NO_ALL_DAY)
    assert d["rqmce_included"] is False
    assert d["numerator"] == pytest.approx(91e9)  # rzmre alone
    assert d["ratio_pct"] == pytest.approx(10.0)
    caption_zh, details_zh = report_text.render("ratio", "zh", d)
    caption_en, details_en = report_text.render("ratio", "en", d)
    assert "仅融资买入额" in caption_zh and "融券卖出额未知" in details_zh
    assert "financing purchases only" in caption_en and "unknown" in details_en


@pytest.mark.usefixtures("short_history_percentiles")
def test_a_day_without_short_sales_is_compared_on_financing_purchases_alone(small: Engine) -> None:
    """Day 28 lacks 融券卖出额: its 10.00% (financing purchases alone) is not ranked against days whose
    numerator holds short sales too (10.0..10.4), where it would sit near the bottom. Every day is
    read as 91e9 / 910e9 = 10.00%: the highest (with all the others), the average 10.00%."""
    d = data(small, "ratio", on=NO_ALL_DAY)
    assert d["ratio_pct"] == pytest.approx(10.0) and d["rqmce_included"] is False
    assert d["compared_on_rzmre"] is True
    assert d["percentile_3y"] == pytest.approx(100.0)
    assert d["ma20"] == pytest.approx(10.0)
    assert {round(p["ratio_pct"], 9) for p in d["series"]} == {10.0}
    assert "分位、均值与信号均按仅融资买入额的口径与历史比较" in report_text.render("ratio", "zh", d)[1]
    assert "compare financing purchases only on every day" in report_text.render("ratio", "en", d)[1]
    # a day with short sales is compared as published
    assert data(small, "ratio", on=DAYS[27])["compared_on_rzmre"] is False


def test_index_signals_without_the_days_close_are_not_judged(small_rw: Engine) -> None:
    """The Shanghai Composite has no close on the data date: deleveraging is unknown (None), named as
    not judged, never read off the day before's close. Crowding needs the index only after 5 days
    above the threshold: with no such run it stays a known False."""
    with session_scope(small_rw) as session:
        session.execute(delete(models.IndexDaily).where(models.IndexDaily.symbol == "sh000001",
                                                         models.IndexDaily.trade_date == LAST))
        bump_data_version(session)
    d = data(small_rw, "ratio")
    assert (d["crowding"], d["deleveraging"]) == (False, None)
    assert d["unjudged"] == [{"signal": "deleveraging", "reason": "index_missing"}]
    zh, en = (report_text.to_plain(report_text.render("ratio", lang, d)[0]) for lang in ("zh", "en"))
    assert f"未判断：去杠杆（上证指数缺 {LAST.isoformat()} 收盘）。" in zh
    assert f"Not judged: deleveraging (no Shanghai Composite close for {LAST.isoformat()})." in en
    # no percentile (30 days of history): no claim of a "usual range" either
    assert d["percentile_3y"] is None and "常态区间" not in zh and "usual range" not in en
    g = data(small_rw, "signals")
    # no sector index is stored at all: bottoming is not judged either
    assert [u["signal"] for u in g["unjudged"]] == ["deleveraging", "bottoming"]
    caption = report_text.to_plain(report_text.render("signals", "zh", g)[0])
    assert (f"未判断：去杠杆（上证指数缺 {LAST.isoformat()} 收盘）；"
            f"行业见底（申万行业指数缺 {LAST.isoformat()} 收盘）。") in caption
    # the sectors report, and one sector's, say so too rather than show no bottoming sector
    sectors_text = "".join(report_text.render("sectors", "zh", data(small_rw, "sectors")))
    assert f"未判断：行业见底（申万行业指数缺 {LAST.isoformat()} 收盘）。" in sectors_text
    one = data(small_rw, "sectors", code="电子")
    assert one["bottoming"] is None
    assert f"未判断：行业见底（申万行业指数缺 {LAST.isoformat()} 收盘）。" in report_text.render("sector", "zh", one)[0]


def test_a_signal_not_judged_for_want_of_history_says_so(small: Engine) -> None:
    """Ten days into the data the index has its closes, the ratio has no 20-day change: the reason
    named is the ratio's short history, not the index."""
    d = data(small, "ratio", on=DAYS[10])
    assert d["deleveraging"] is None
    assert d["unjudged"] == [{"signal": "deleveraging", "reason": "ratio_history"}]
    zh = report_text.to_plain(report_text.render("ratio", "zh", d)[0])
    assert "未判断：去杠杆（两融交易占比不足20个交易日的历史）。" in zh


@pytest.mark.usefixtures("short_history_percentiles")
def test_ratio_percentile_on_an_earlier_day(small: Engine) -> None:
    d = data(small, "ratio", on=DAYS[27])
    assert d["ratio_pct"] == pytest.approx(10.2)
    # days 0..27: values <= 10.2 are those with i % 5 in (0, 1, 2): 18 of 28
    assert d["percentile_3y"] == pytest.approx(18 / 28 * 100)


def test_market_only_source_scope_is_all(sqlite_engine: Engine) -> None:
    """With only market-wide rows stored, the scope says so and the ALL row is the market."""
    rows = [{"trade_date": day, "exchange": "ALL", "rzye": 1e12, "rzmre": 80e9, "rqye": 1e10, "rqmce": 2e9,
             "rzrqye": 1.01e12} for day in DAYS[:5]]
    with session_scope(sqlite_engine) as session:
        upsert(session, models.MarginSummary, rows)
        upsert(session, models.Turnover, [{"trade_date": day, "exchange": exchange, "amount": amount,
                                           "a_share_only": False}
                                          for day in DAYS[:5]
                                          for exchange, amount in (("SSE", 500e9), ("SZSE", 320e9))])
        # the next day's SZSE turnover is not in yet: half the market's turnover must not make a ratio
        upsert(session, models.MarginSummary, [{**rows[0], "trade_date": DAYS[5]}])
        upsert(session, models.Turnover, [{"trade_date": DAYS[5], "exchange": "SSE", "amount": 500e9,
                                           "a_share_only": False}])
        bump_data_version(session)
    d = data(sqlite_engine, "ratio")
    assert d["date"] == DAYS[4].isoformat()  # the default date waits for the whole market's turnover
    with session_scope(sqlite_engine) as session:  # a day in the middle without SZSE's turnover
        session.execute(delete(models.Turnover).where(models.Turnover.trade_date == DAYS[2],
                                                      models.Turnover.exchange == "SZSE"))
        bump_data_version(session)
    err = _error(sqlite_engine, "ratio", on=DAYS[2])
    assert (err.kind, err.params) == ("no_ratio_on", {"date": DAYS[2].isoformat(), "latest": DAYS[1].isoformat()})
    assert data(sqlite_engine, "balance", on=DAYS[2])["rzrqye"] == 1.01e12  # the other reports are unaffected
    assert _error(sqlite_engine, "ratio", on=DAYS[5]).kind == "no_data_for_date"
    assert d["scope"] == ["ALL"]
    assert d["ratio_pct"] == pytest.approx(10.0)  # (80 + 2) / (500 + 320) bn
    assert d["rqmce_included"] is True
    assert d["turnover_a_share_only"] is False
    caption, details = report_text.render("ratio", "zh", d)
    assert "全市场" in caption and "含B股" in details


def test_exchange_breakdown_lists_the_rest_of_a_market_row(sqlite_engine: Engine) -> None:
    """SSE and BSE stored beside a market-wide row (no SZSE): the market is the ALL row, and the
    breakdown adds REST = market less the exchanges listed, with its change from the day before."""
    def rows(day: date, shift: float) -> list[dict[str, Any]]:
        return [{"trade_date": day, "exchange": e, "rzye": rzye + shift, "rzmre": 1.0, "rqye": rqye,
                 "rqmce": 2.0 if e == "ALL" else None, "rzrqye": rzye + shift + rqye}
                for e, rzye, rqye in (("ALL", 1500e9, 15e9), ("SSE", 800e9, 10e9), ("BSE", 4e9, 0.5e9))]

    with session_scope(sqlite_engine) as session:
        upsert(session, models.MarginSummary, rows(DAYS[0], 0.0) + rows(DAYS[1], 1e9))
        upsert(session, models.Turnover, [{"trade_date": d, "exchange": e, "amount": 100e9, "a_share_only": True}
                                          for d in DAYS[:2] for e in ("SSE", "SZSE")])
        bump_data_version(session)
    d = data(sqlite_engine, "balance")
    assert d["scope"] == ["ALL"] and d["rzrqye"] == 1516e9  # the ALL row of DAYS[1]
    assert [(e["exchange"], e["rzrqye"], e["rzye"], e["rqye"], e["change_1d"], e["derived"])
            for e in d["exchanges"]] == [
        ("SSE", 811e9, 801e9, 10e9, 1e9, False),
        ("BSE", 5.5e9, 5e9, 0.5e9, 1e9, False),
        ("REST", 699.5e9, 695e9, 4.5e9, -1e9, True),  # (1516 - 811 - 5.5) today, (1515 - 810 - 4.5) before
    ]
    assert ("其余（全市场减以上）：两融余额 6,995.00 亿元，较上日 -10.00 亿元"
            in report_text.render("balance", "zh", d)[1])


def test_one_exchange_without_a_market_row_is_named(sqlite_engine: Engine) -> None:
    """Only SSE stored (no market-wide row to stand in): the figures are SSE's and the scope says so."""
    rows = [{"trade_date": day, "exchange": "SSE", "rzye": 1e12 + i * 1e9, "rzmre": 50e9, "rqye": 1e10,
             "rzrqye": 1.01e12 + i * 1e9} for i, day in enumerate(DAYS[:5])]
    with session_scope(sqlite_engine) as session:
        upsert(session, models.MarginSummary, rows)
        upsert(session, models.Turnover, [{"trade_date": day, "exchange": "SSE", "amount": 500e9,
                                           "a_share_only": True} for day in DAYS[:5]])
        bump_data_version(session)
    d = data(sqlite_engine, "balance")
    assert d["scope"] == ["SSE"] and d["rzrqye"] == 1.014e12 and d["change_1d"] == 1e9
    assert [(e["exchange"], e["rzrqye"], e["change_1d"]) for e in d["exchanges"]] == [("SSE", 1.014e12, 1e9)]
    assert data(sqlite_engine, "ratio")["ratio_pct"] == pytest.approx(10.0)


# ----------------------------------------------------------------------------------------------
# sectors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hhi_change", "top5_change_pp", "trend", "zh", "en"),
    [
        (-35.0, -0.4, "balanced", "行业分布更加均衡", "spread more evenly"),
        (12.0, 0.0, "concentrating", "资金向头部行业集中", "concentrating in the largest"),
        (-35.0, 0.2, "mixed", "两项指标方向不一", "the two measures disagree"),
        (3.0, -0.5, "mixed", "两项指标方向不一", "the two measures disagree"),
        (0.5, 0.3, "flat", "集中度基本持平", "little changed"),
        (math.nan, 0.3, None, None, None),
    ],
)
def test_concentration_trend_names_disagreement(hhi_change: float, top5_change_pp: float, trend: str | None,
                                               zh: str | None, en: str | None) -> None:
    # HHI down while the top-5 share rose is no "unchanged": the two measures disagree, and the text says so
    assert figures.sectors._concentration_trend(hhi_change, top5_change_pp) == trend
    for lang, words in (("zh", zh), ("en", en)):
        env = report_text.environment(lang)
        said = env.from_string("{{ concentration_words(trend) }}").render(trend=trend)
        assert (words in said) if words else said == ""


def test_sectors_hand_computed(small: Engine) -> None:
    d = data(small, "sectors")
    assert d["days"] == 20
    # shares 50/30/20 now, 40/40/20 twenty days ago
    assert d["hhi"] == pytest.approx(50**2 + 30**2 + 20**2)  # 3800
    assert d["hhi_change"] == pytest.approx(3800 - (40**2 + 40**2 + 20**2))  # +200
    assert d["top5_share_pct"] == pytest.approx(100.0)
    assert d["top5_change_pp"] == pytest.approx(0.0)
    assert d["concentration_trend"] == "concentrating"
    assert d["total_rzye"] == pytest.approx(10e9)  # the ETF is left out
    assert d["bottoming"] is None  # no sector index closes stored: the signal is not judged
    rows = d["sectors"]
    assert [r["code"] for r in rows] == ["270000", "370000", "480000"]  # by change, largest first
    assert [r["name"] for r in rows] == ["电子", "医药生物", "银行"]
    assert [r["name_en"] for r in rows] == ["Electronics", "Pharma & Biotech", "Banks"]
    expected = {
        "270000": (5e9, 50.0, 1e9, 25.0, 10.0, 1e9),
        "370000": (2e9, 20.0, 0.0, 0.0, 0.0, 0.0),
        "480000": (3e9, 30.0, -1e9, -25.0, -10.0, -1e9),
    }
    for r in rows:
        rzye, share, change, change_pct, pp, net_buy = expected[r["code"]]
        assert r["rzye"] == pytest.approx(rzye)
        assert r["share_pct"] == pytest.approx(share)
        assert r["change"] == pytest.approx(change, abs=1e-3)
        assert r["change_pct"] == pytest.approx(change_pct, abs=1e-9)
        assert r["share_change_pp"] == pytest.approx(pp, abs=1e-9)
        # 融资净买入 over the 20 days = rzye(T) - rzye(T-20) because every row keeps the identity
        assert r["net_buy"] == pytest.approx(net_buy, abs=1e-3)
    # the headlines by 融资净买入, each on its side of zero: pharma's 0 is on neither
    assert [(r["code"], r["net_buy"]) for r in d["inflows"]] == [("270000", pytest.approx(1e9, abs=1e-3))]
    assert [(r["code"], r["net_buy"]) for r in d["outflows"]] == [("480000", pytest.approx(-1e9, abs=1e-3))]
    assert (d["net_buy_known"], d["net_buy_unknown"], d["net_buy_gap_date"]) == (True, 0, None)
    # Electronics' balance rises 50e6 a day over the last 20 days (4.05e9 .. 5e9, mean 4.525e9):
    # sample sd = 50e6 * sqrt(20 * 21 / 12); banks fall the same way (mean 3.475e9); pharma is flat.
    sd = 50e6 * math.sqrt(35)
    assert rows[0]["cv_20d_pct"] == pytest.approx(100 * sd / 4.525e9)
    assert rows[1]["cv_20d_pct"] == pytest.approx(0.0)  # a constant balance has no variation
    assert rows[2]["cv_20d_pct"] == pytest.approx(100 * sd / 3.475e9)
    stability = d["stability"]
    assert stability["median_cv_pct"] == pytest.approx(100 * sd / 4.525e9)  # the median of the three
    # 20 days before there were only 10 days of history: no CV then, so no trend
    assert stability["median_cv_change_pp"] is None and stability["steadier"] is None
    assert [s["code"] for s in stability["steadiest"]] == ["370000", "270000", "480000"]
    assert stability["least_steady"] == []  # three sectors: all of them are already named steadiest


def test_sectors_stability_trend(small: Engine) -> None:
    """Over 5 days the CV window moves from days 5..24 to days 10..29: Electronics' balance was
    4e9 for five days, then rose 50e6 a day; the median CV (Electronics') grew: money moves faster."""
    d = data(small, "sectors", days=5)
    then = [4e9] * 5 + [4e9 + k * 50e6 for k in range(1, 16)]
    cv_then = statistics.stdev(then) / statistics.mean(then)
    cv_now = 50e6 * math.sqrt(35) / 4.525e9
    assert d["stability"]["median_cv_change_pp"] == pytest.approx(100 * (cv_now - cv_then))
    assert d["stability"]["steadier"] is False
    caption = report_text.to_plain(report_text.render("sectors", "zh", d)[0])
    assert f"中位数 {100 * cv_now:.2f}%（较5日前 +{100 * (cv_now - cv_then):.2f} 个百分点），资金进出加快" in caption


def test_sectors_table_lines_up_chinese_names(small: Engine) -> None:
    """The details table is a <pre> block whose columns line up in a monospace font, where a 汉字
    takes two columns: every line has the same width and the numbers end in the same column."""
    details = report_text.render("sectors", "zh", data(small, "sectors"))[1]
    table = details.split("<pre>")[1].split("</pre>")[0]
    lines = table.splitlines()
    assert lines == [
        "行业     融资余额   占比   变化 净买入",
        "电子        50.00 50.00% +10.00 +10.00",
        "医药生物    20.00 20.00%   0.00   0.00",
        "银行        30.00 30.00% -10.00 -10.00",
    ]
    assert {fmt.display_width(line) for line in lines} == {38}
    en = report_text.render("sectors", "en", data(small, "sectors"))[1]
    assert "Pharma &amp; Biotech    2.00 20.00%   0.00       0.00" in en  # escaped after padding
    # and the command that lists the stocks behind the largest inflow, whole in <code> (a tap copies it)
    assert "看行业内个股：<code>/top 20 电子</code>" in details
    assert "A sector's stocks: <code>/top 20 Electronics</code>" in en


def test_sectors_short_window(small: Engine) -> None:
    d = data(small, "sectors", days=5)
    # 5 days earlier (day 24): 4.75e9 / 3.25e9 / 2e9 of 10e9
    assert d["hhi_change"] == pytest.approx(3800 - (47.5**2 + 32.5**2 + 20**2))
    assert [r["change"] for r in d["sectors"]] == pytest.approx([0.25e9, 0.0, -0.25e9], abs=1e-3)


def test_sector_headlines_rank_net_buying_not_a_reclassified_balance(sqlite_engine: Engine) -> None:
    """600001 (电子, +25e6 a day from day 10) is reclassified to 银行 from DAYS[25]. Over the 20 days
    to LAST (DAYS[10..29]) 电子's members bought 2 x 25e6 x 15 (days 10..24) + 25e6 x 5 (000001
    alone) = 0.875e9 while its balance fell 4e9 -> 2.5e9 (-1.5e9); 银行's repaid 2 x 25e6 x 15 +
    (25e6 - 2 x 25e6) x 5 = -0.875e9 while its balance rose 4e9 -> 5.5e9 (+1.5e9). The headlines
    name the buying; the table keeps the balance change (银行 first)."""
    populate(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        upsert(session, models.IndustryClass, [{"code": "600001", "start_date": DAYS[25], "sw_code": "480100",
                                                "sw_l1_code": "480000"}])
        rebuild_sector_daily(session, DAYS)
        bump_data_version(session)
    d = data(sqlite_engine, "sectors")
    rows = {r["code"]: r for r in d["sectors"]}
    assert [r["code"] for r in d["sectors"]] == ["480000", "370000", "270000"]  # by balance change
    assert rows["480000"]["change"] == pytest.approx(1.5e9) and rows["270000"]["change"] == pytest.approx(-1.5e9)
    assert rows["270000"]["net_buy"] == pytest.approx(0.875e9) and rows["480000"]["net_buy"] == pytest.approx(-0.875e9)
    assert [r["code"] for r in d["inflows"]] == ["270000"] and [r["code"] for r in d["outflows"]] == ["480000"]
    zh = report_text.to_plain(report_text.render("sectors", "zh", d)[0])
    en = report_text.to_plain(report_text.render("sectors", "en", d)[0])
    # a net repayment is an amount repaid: positive (-8.75 亿元 of net buying is 8.75 亿元 repaid)
    assert "融资净买入最多：电子 +8.75 亿元\n融资净偿还最多：银行 8.75 亿元\n" in zh
    assert "Largest net margin buying: Electronics +0.88 bn\nLargest net margin repayment: Banks 0.88 bn\n" in en
    push_zh = report_text.to_plain(service_for(sqlite_engine).render("summary", lang="zh", chart=False).caption)
    push_en = report_text.to_plain(service_for(sqlite_engine).render("summary", lang="en", chart=False).caption)
    assert "近20日融资净买入最多：电子 +8.75 亿元\n融资净偿还最多：银行 8.75 亿元\n" in push_zh
    assert ("20-day net margin buying: Electronics +0.88 bn\n"
            "Net repayment: Banks 0.88 bn\n") in push_en


def test_sector_headlines_say_which_net_buying_is_unknown(sqlite_engine: Engine) -> None:
    """医药生物's 融资偿还额 unknown on LAST (a member's was): it is left out of the headlines and the
    caption says one sector is; every sector's unknown that day: no headline, and the caption says
    the repayments are missing (the day has detail, so no date is named)."""
    populate(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        session.execute(text("UPDATE sector_daily SET rzche = NULL WHERE trade_date = :d AND sw_l1_code = '370000'"),
                        {"d": LAST})
        bump_data_version(session)
    d = data(sqlite_engine, "sectors")
    assert (d["net_buy_known"], d["net_buy_unknown"], d["net_buy_gap_date"]) == (True, 1, None)
    assert [r["code"] for r in d["inflows"]] == ["270000"] and [r["code"] for r in d["outflows"]] == ["480000"]
    zh, en = (report_text.to_plain(report_text.render("sectors", lang, d)[0]) for lang in ("zh", "en"))
    assert "另有 1 个行业的融资净买入未知，未参与排名。" in zh
    assert "Not ranked: 1 sector whose net margin buying is unknown." in en
    with session_scope(sqlite_engine) as session:
        session.execute(text("UPDATE sector_daily SET rzche = NULL WHERE trade_date = :d"), {"d": LAST})
        bump_data_version(session)
    d = data(sqlite_engine, "sectors")
    assert (d["net_buy_known"], d["net_buy_unknown"], d["inflows"], d["outflows"]) == (False, 0, [], [])
    zh = report_text.to_plain(report_text.render("sectors", "zh", d)[0])
    assert "近20日融资净买入未知：缺少融资偿还额数据。" in zh and "未参与排名" not in zh
    assert "The 20-day net margin buying is unknown: financing repayments are missing." in report_text.to_plain(
        report_text.render("sectors", "en", d)[0])
    push = report_text.to_plain(service_for(sqlite_engine).render("summary", lang="zh", chart=False).caption)
    assert "近20日融资净买入最多：未知\n融资净偿还最多：未知\n" in push


def test_one_sector(sqlite_engine: Engine) -> None:
    """/sectors 电子: that sector's row of the table, its rank by change, its index's return and the
    series for its chart (balance, index, daily 融资净买入)."""
    populate(sqlite_engine)
    with session_scope(sqlite_engine) as session:  # the electronics index falls 1 point a day
        upsert(session, models.IndexDaily, [{"symbol": "801080", "trade_date": day, "close": 1000.0 - i,
                                             "amount": None} for i, day in enumerate(DAYS)])
        bump_data_version(session)
    service = ReportService(sqlite_engine)
    report = service.render("sectors", code="电子", lang="zh")
    d = report.data
    assert (d["report"], d["code"], d["days"]) == ("sector", "270000", 20)
    assert d["sector"] == {"code": "270000", "name": "电子", "name_en": "Electronics"}
    # as in the table: 5e9 now, 4e9 twenty days ago, of 10e9 and 10e9 in all
    assert [d[k] for k in ("rzye", "share_pct", "change", "change_pct", "share_change_pp", "net_buy")] == \
        pytest.approx([5e9, 50.0, 1e9, 25.0, 10.0, 1e9], abs=1e-3)
    assert d["cv_20d_pct"] == pytest.approx(100 * 50e6 * math.sqrt(35) / 4.525e9)
    assert (d["rank"], d["of"], d["bottoming"]) == (1, 3, False)
    assert d["index_return_pct"] == pytest.approx((971 / 991 - 1) * 100)  # days 9 .. 29
    assert len(d["series"]) == 21 and d["series"][-1] == {"date": LAST.isoformat(), "rzye": pytest.approx(5e9)}
    caption = report_text.to_plain(report.caption)
    assert caption.startswith("电子行业融资余额 50.00 亿元（占比 50.00%）\n"
                              "近20日 +10.00 亿元（+25.00%），占比 +10.00 个百分点")
    assert "变化排名 第 1 / 3 · 行业指数近20日 -2.02%" in caption
    assert "看行业内个股：<code>/top 20 电子</code>" in report.details
    assert report.png is not None and report.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", report.png[16:24]) == (960, 660)  # 8 x 5.5 in at 120 dpi
    assert report.chart_key != service.render("sectors", lang="zh").chart_key  # the sector's own chart
    banks = service.render("sectors", code="Banks", days=5, lang="en", chart=False)
    assert (banks.data["rank"], banks.data["change"]) == (3, pytest.approx(-0.25e9))
    assert banks.data["index_return_pct"] is None  # no banks index stored
    assert report_text.to_plain(banks.caption).startswith("Banks: financing balance 3.00 bn (30.00% of the total)")
    assert _error(sqlite_engine, "sectors", code="钢铁").kind == "no_such_sector"


# ----------------------------------------------------------------------------------------------
# stock
# ----------------------------------------------------------------------------------------------


def test_stock_hand_computed(small: Engine) -> None:
    d = data(small, "stock", code="600001")
    assert (d["code"], d["name"], d["exchange"], d["is_fund"]) == ("600001", "样本电子甲", "SSE", False)
    assert d["rzye"] == pytest.approx(2.5e9)
    assert d["change_1d"] == pytest.approx(25e6)
    assert d["change_5d"] == pytest.approx(125e6)
    assert d["change_5d_pct"] == pytest.approx(125 / 2375 * 100)
    assert d["change_20d"] == pytest.approx(0.5e9)
    assert d["change_20d_pct"] == pytest.approx(25.0)
    assert d["rqye"] is None  # SSE detail has no 融券余额
    # six stocks on the day (the ETF and the stock without a row are left out); ties share the best rank
    assert (d["rank"], d["of"]) == (1, 6)
    twin = data(small, "stock", code="000001")
    assert (twin["rank"], twin["of"]) == (1, 6)
    assert data(small, "stock", code="000002")["rank"] == 3
    low = data(small, "stock", code="830001")
    assert (low["rank"], low["of"], low["exchange"]) == (5, 6, "BSE")
    # and within its Shenwan sector that day: the two electronics stocks tie; 830001 ties 600003 in pharma
    assert d["sector"] == {"code": "270000", "name": "电子", "name_en": "Electronics"}
    assert (d["sector_rank"], d["sector_of"]) == (1, 2) and (low["sector_rank"], low["sector_of"]) == (1, 2)
    assert data(small, "stock", code="600002")["sector"]["name"] == "银行"
    fund = data(small, "stock", code="510300")
    assert (fund["sector"], fund["sector_rank"], fund["sector_of"]) == (None, None, None)  # funds have none
    # its history over the window, 融资余额 by date (元)
    assert len(d["series"]) == d["days_shown"] == len(DAYS) < d["days"]  # a history shorter than the window: all of it
    assert d["series"][-1] == {"date": LAST.isoformat(), "rzye": pytest.approx(2.5e9)}
    assert d["series"][-6] == {"date": DAYS[-6].isoformat(), "rzye": pytest.approx(2.375e9)}
    caption = report_text.to_plain(report_text.render("stock", "zh", d)[0])
    assert "个股融资余额排名 第 1 / 6 · 电子行业内 第 1 / 2\n所属行业：电子（申万一级）· /sectors 电子" in caption
    assert d["rank_among"] == "stocks"


def test_stock_changes_count_trade_dates_across_a_suspension(small_rw: Engine) -> None:
    """600001 has no row five trade dates before LAST (suspended that day): no 5-day change, while
    the 20-day one stands (its base is there); had it no row the day before, no change on the day."""
    with session_scope(small_rw) as session:
        session.execute(text("DELETE FROM stock_margin WHERE code = '600001' AND trade_date IN (:a, :b)"),
                        {"a": DAYS[-6], "b": DAYS[-2]})
        bump_data_version(session)
    d = ReportService(small_rw).render("stock", code="600001", chart=False).data
    assert (d["change_1d"], d["change_5d"], d["change_5d_pct"]) == (None, None, None)
    assert d["change_20d"] == pytest.approx(0.5e9)


def test_sector_windows_count_trade_dates_across_a_day_without_detail(small_rw: Engine) -> None:
    """No per-stock detail on DAYS[-6]: a 5-day change has no base (unknown, not six days, while
    its net buying over DAYS[-5..-1] stands, and heads the caption: electronics +50e6 a day, banks
    -50e6); a 10-day change stands on DAYS[-11] (electronics +50e6 a trade day: +0.5e9, not the
    0.55e9 of eleven), and its 融资净买入 is unknown: one of its days is, and the caption names it."""
    with session_scope(small_rw) as session:
        session.execute(text("DELETE FROM sector_daily WHERE trade_date = :d"), {"d": DAYS[-6]})
        bump_data_version(session)
    service = ReportService(small_rw)
    rendered = service.render("sectors", days=5)  # the chart and text say "unknown", they do not fail
    png = rendered.png
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (960, 600)  # 8 x 5 in (the 3-sector minimum) at 120 dpi
    caption = report_text.to_plain(rendered.caption)
    assert f"近5日变化未知：{DAYS[-6].isoformat()} 没有个股明细数据。" in caption
    assert "资金向头部行业集中" not in caption  # no concentration claim on an unknown base
    # the net buying is known: 5 x 50e6 each way, pharma (0) on neither side
    assert "融资净买入最多：电子 +2.50 亿元\n融资净偿还最多：银行 2.50 亿元\n" in caption
    five = {r["code"]: r for r in rendered.data["sectors"]}
    assert [(r["change"], r["share_change_pp"]) for r in five.values()] == [(None, None)] * 3
    assert five["270000"]["net_buy"] == pytest.approx(0.25e9)  # its days (DAYS[-5..-1]) are all known
    ten = service.render("sectors", days=10, chart=False).data
    rows = {r["code"]: r for r in ten["sectors"]}
    assert rows["270000"]["change"] == pytest.approx(0.5e9) and rows["480000"]["change"] == pytest.approx(-0.5e9)
    assert rows["270000"]["net_buy"] is None
    assert (ten["net_buy_known"], ten["inflows"], ten["outflows"]) == (False, [], [])
    ten_zh = report_text.to_plain(report_text.render("sectors", "zh", ten)[0])
    ten_en = report_text.to_plain(report_text.render("sectors", "en", ten)[0])
    assert f"近10日融资净买入未知：{DAYS[-6].isoformat()} 没有个股明细数据。" in ten_zh
    assert "融资净买入最多" not in ten_zh and "近10日变化未知" not in ten_zh  # its base, DAYS[-11], is known
    assert f"The 10-day net margin buying is unknown: no per-stock detail for {DAYS[-6].isoformat()}." in ten_en
    three = {r["code"]: r for r in service.render("sectors", days=3, chart=False).data["sectors"]}
    assert three["270000"]["change"] == pytest.approx(0.15e9) and three["270000"]["net_buy"] == pytest.approx(0.15e9)


def test_signals_on_a_short_history_say_so(small: Engine) -> None:
    """30 trade days: no pace, no crowding threshold, so no "nothing unusual" either; and 10 days in,
    the 融券 structure has no 20-day shift (its base would be the first stored day, not 20 back)."""
    service = service_for(small)
    early = service.render("signals", on=DAYS[10], chart=False)
    assert early.data["partial"] is True and early.data["short_structure"]["change_pp"] is None
    assert report_text.to_plain(early.caption).splitlines()[0] == "两融信号 · 历史不足，部分信号尚无法计算"
    late = service.render("signals", lang="en", chart=False)
    # 29 days back; no CSI 300 list stored here: its share unknown, not 0
    assert late.data["short_structure"]["change_pp"] == {"etf": 0.0, "hs300": None, "other": 0.0}
    assert report_text.to_plain(late.caption).splitlines()[0] == "Margin signals · too little history for some signals"


def test_a_reclassification_is_named_where_balance_change_and_net_buying_part_ways(demo: Engine) -> None:
    """storage.demo moves six stocks between sectors in the 20 days before 2025-03-06: 传媒 gains
    +363.89 亿 with them while its members repay 74.27 亿 (the chart ranks it first by change, the
    headline names it the largest repayer), 基础化工 loses 363.19 亿. Each row's membership_change is
    change - net_buy; the reports name the largest moves, the sector's own report its part; on a day
    without moves (the last) nothing is said."""
    service = ReportService(demo)
    day = date(2025, 3, 6)
    zh = service.render("sectors", on=day, lang="zh", chart=False)
    rows = {r["name"]: r for r in zh.data["sectors"]}
    for row in rows.values():
        assert row["membership_change"] == pytest.approx(row["change"] - row["net_buy"], abs=1.0)
    assert [(m["name"], round(m["membership_change"] / 1e8, 2)) for m in zh.data["membership_moves"]] == [
        ("传媒", 363.89), ("基础化工", -363.19), ("通信", -191.32)]
    assert zh.data["membership_moves_more"] == 6  # 建筑装饰 +148.45 亿, 综合, 煤炭, 机械设备, 电力设备, 家用电器
    assert ("注：近20日有股票改换行业或进出两融标的，行业融资余额的变化含其转入转出（传媒 +363.89 亿元；"
            "基础化工 -363.19 亿元；通信 -191.32 亿元等），融资净买入不含。") in zh.caption.splitlines()
    one = service.render("sectors", code="基础化工", on=day, lang="en", chart=False)
    assert one.data["membership_notable"] is True
    assert ("Of the change, 36.32 bn left with stocks that left the sector or the margin list, not through"
            " members' repayments.") in one.caption.splitlines()
    summary = service.render("summary", on=day, lang="zh", chart=False)
    assert "注：行业余额变化含股票改换行业（传媒 +363.89 亿元；基础化工 -363.19 亿元）" in summary.caption.splitlines()
    quiet = service.render("sectors", lang="zh", chart=False)
    assert quiet.data["membership_moves"] == [] and "改换行业" not in quiet.caption
    assert not service.render("sectors", code="电子", lang="zh", chart=False).data["membership_notable"]


def test_a_stock_on_the_spike_list_is_flagged_in_its_report_and_watch_line(demo: Engine) -> None:
    """The stock report and the watch lines flag a spike by the spike list's own rule (z >= 2 on a
    5-day rise): the top stock of /signals is flagged, a stock off the list is not."""
    service = ReportService(demo)
    [top, *_] = service.render("signals", lang="zh", chart=False).data["spikes"]
    # storage.demo's first jumper into the last day: +58% in five days
    assert (top["code"], round(top["zscore"], 2), round(top["change_pct"], 1)) == ("002564", 7.34, 58.0)
    spiking = service.render("stock", code=top["code"], lang="zh", chart=False)
    assert spiking.data["spiking"] is True and spiking.data["spike_zscore"] == pytest.approx(top["zscore"])
    assert "5日增幅远超自身常态" in spiking.caption
    calm_code = next(r["code"] for r in service.render("top", lang="zh", chart=False).data["fallers"])
    calm = service.render("stock", code=calm_code, lang="zh", chart=False)
    assert calm.data["spiking"] is False and "远超自身常态" not in calm.caption
    lines = service.watch_text([top["code"], calm_code], on=None, lang="en").splitlines()
    assert lines[-2].endswith("⚠️ spike") and not lines[-1].endswith("⚠️ spike")


def test_watch_lines_read_at_once_equal_each_stock_report(demo: Engine) -> None:
    """The watch lines of many securities, read in one batch (figures.watch_figures: the push reads
    every followed security so), carry each stock report's own figures: the spike list's stocks, the
    largest fallers, funds and every 25th security, the last day and a day in the middle."""
    from reports.figures import build
    from reports.figures.stocks import watch_figures
    from storage import queries

    service = ReportService(demo)
    for day in (queries.latest_data_date(demo), queries.trade_dates(demo)[300]):
        every = sorted(queries.stocks_on(demo, day)["code"])
        signals = service.render("signals", on=day, lang="zh", chart=False).data
        fallers = service.render("top", on=day, lang="zh", chart=False).data["fallers"]
        codes = sorted({*(s["code"] for s in signals["spikes"]), *(f["code"] for f in fallers), *every[::25],
                        *[c for c in every if c.startswith("5")][:3], "999999"})
        lines = watch_figures(demo, day, codes)
        assert set(lines) == set(codes) - {"999999"}  # an unknown code has no line
        assert any(line["spiking"] for line in lines.values()) or not signals["spikes"]
        for code in codes[:: max(1, len(codes) // 40)]:
            if code == "999999":
                continue
            report = build(demo, "stock", day, None, code).data
            assert lines[code] == {key: report[key] for key in lines[code]}, code


def test_watch_lines_hand_computed(small: Engine) -> None:
    """The /watch lines on LAST: 600001 at 2.5e9, +25e6 on the day, +125e6 over 5 days on 2.375e9
    (+5.26%); 000002 at 1.5e9, -25e6, -125e6 on 1.625e9 (-7.69%); 000003 has no row after day 4: its
    line says so. Thirty days of history give no spike z-score (it needs 60): no flag. On day 4,
    000003 stood at 0.5e9, unchanged, without a row five trade dates before: no 5-day change."""
    service = service_for(small)
    codes = ["600001", "000002", "000003"]
    assert service.watch_text(codes, on=LAST, lang="zh").splitlines() == [
        f"<b>⭐ 关注</b> · 数据日期 {LAST}",
        "样本电子甲（600001）融资余额 25.00 亿元 ▲ +2,500.00 万元，近5日 +5.26%",
        "样本银行乙（000002）融资余额 15.00 亿元 ▼ -2,500.00 万元，近5日 -7.69%",
        "000003：该日无两融明细",
    ]
    assert service.watch_text(codes, on=LAST, lang="en").splitlines() == [
        f"<b>⭐ Watching</b> · data date {LAST}",
        "样本电子甲 (600001) financing 2.50 bn ▲ +25.00 mn, 5 days +5.26%",
        "样本银行乙 (000002) financing 1.50 bn ▼ -25.00 mn, 5 days -7.69%",
        "000003: no margin detail that day",
    ]
    assert service.watch_text(["000003"], on=DAYS[4], lang="zh").splitlines() == [
        f"<b>⭐ 关注</b> · 数据日期 {DAYS[4]}", "样本停牌股（000003）融资余额 5.00 亿元 • 0.00 万元，近5日 —"]
    # a list of none with detail that day still names the day
    assert service.watch_text(["000003"], on=LAST, lang="en").splitlines() == [
        f"<b>⭐ Watching</b> · data date {LAST}", "000003: no margin detail that day"]



def test_windows_count_trade_dates_missing_from_the_margin_data(small_rw: Engine) -> None:
    """Day 25 has turnover and index closes but no margin data: /top 5 compares LAST with day 24,
    five trade dates back, as /sectors 5 does, not with day 23 (five margin dates back)."""
    gap = DAYS[25]
    with session_scope(small_rw) as session:
        for model in (models.MarginSummary, models.StockMargin, models.SectorDaily):
            session.execute(delete(model).where(model.trade_date == gap))
        bump_data_version(session)
    assert queries.nth_date_before(small_rw, LAST, 5) == DAYS[24]
    top = data(small_rw, "top", days=5)
    assert top["since"] == DAYS[24].isoformat() == data(small_rw, "sectors", days=5)["base_date"]
    # 600001 (electronics) rose 25e6 a day from day 9: 5 x 25e6 since day 24
    riser = next(r for r in top["risers"] if r["code"] == "600001")
    assert riser["change"] == pytest.approx(5 * 25e6)



def test_figures_that_cannot_be_computed_are_said_to_be_unknown(small_rw: Engine) -> None:
    """A balance 15 trade dates into the data has no 20-day change: the pace line still comes, after
    a sentence that the 20-day change is unknown. A day without sector figures inside the last 20
    leaves the 20-day stability unknown, and the sectors report says so instead of dropping the line."""
    zh, en = (report_text.to_plain(report_text.render("balance", lang, data(small_rw, "balance", on=DAYS[15]))[0])
              for lang in ("zh", "en"))
    assert "近20日变化未知（20个交易日前没有可比数据）；当日余额" in zh
    assert "The 20-day change is unknown (no comparable data 20 trading days before). The day's move:" in en
    with session_scope(small_rw) as session:
        session.execute(delete(models.SectorDaily).where(models.SectorDaily.trade_date == DAYS[22]))
        bump_data_version(session)
    d = data(small_rw, "sectors")
    assert d["stability"]["median_cv_pct"] is None
    zh_caption, zh_details = report_text.render("sectors", "zh", d)
    assert "稳定性：近20个交易日的行业数据不全（历史不足或有缺失明细的日子），暂无法计算。" in zh_caption + zh_details
    en_caption, en_details = report_text.render("sectors", "en", d)
    assert "Stability: unknown (sector data incomplete over the last 20 trading days" in en_caption + en_details


def test_top_hand_computed(small: Engine) -> None:
    """Over 5 days the electronics stocks gained 5 x 25e6 each (2.375e9 -> 2.5e9), the banks lost as
    much (1.625e9 -> 1.5e9); pharma did not move (in neither list); the fund is left out, and the
    suspended 000003 has no row today."""
    d = data(small, "top")
    assert (d["days"], d["since"], d["compared"]) == (5, DAYS[24].isoformat(), 6)
    assert d["risers"] == [
        {"code": "000001", "name": "样本电子乙", "rzye": 2.5e9, "change": 0.125e9,
         "change_pct": pytest.approx(100 / 19)},
        {"code": "600001", "name": "样本电子甲", "rzye": 2.5e9, "change": 0.125e9,
         "change_pct": pytest.approx(100 / 19)},
    ]
    assert [(r["code"], r["change"], r["change_pct"]) for r in d["fallers"]] == [
        ("000002", -0.125e9, pytest.approx(-100 / 13)), ("600002", -0.125e9, pytest.approx(-100 / 13))]
    one_day = data(small, "top", days=1)
    assert one_day["since"] == DAYS[28].isoformat() and one_day["risers"][0]["change"] == 25e6
    assert data(small, "top", days=29)["since"] == DAYS[0].isoformat()
    too_long = _error(small, "top", days=30)  # 30 days stored: 29 is the longest window, and it says so
    assert (too_long.kind, too_long.params["longest"]) == ("not_enough_history", 29)
    assert too_long.message("zh").endswith("无法计算该窗口；现有数据最长支持 29 日。")
    caption, details = report_text.render("top", "zh", d)
    assert "增加最多：样本电子乙 +1.25 亿元；样本电子甲 +1.25 亿元" in caption
    assert "1. 样本银行乙（000002）-1.25 亿元（-7.69%），余额 15.00 亿元" in details


def test_top_in_one_sector(small: Engine) -> None:
    """/top 5 电子: the ranking among the stocks classed in that sector on the day; the sector named
    by its Chinese or English name (any case), part of one, its code or its index symbol."""
    service = ReportService(small)
    for name in ("电子", "electronics", "ELECTRON", "270000", "801080", " Electronics "):
        d = service.render("top", code=name, days=5, chart=False).data
        assert d["sector"] == {"code": "270000", "name": "电子", "name_en": "Electronics"}, name
        # both electronics stocks rose 25e6 a day for five days; nothing in the sector fell
        assert [(r["code"], r["change"]) for r in d["risers"]] == [("000001", 125e6), ("600001", 125e6)]
        assert d["fallers"] == [] and d["compared"] == 2
    # the sector's chart is its own (the bot reuses uploaded charts by this key)
    assert service.render("top", code="电子", days=5).chart_key != service.render("top", days=5).chart_key
    assert d["code"] == "270000"
    banks = service.render("top", code="银行", days=5, lang="en", chart=True)
    assert [(r["code"], r["change"]) for r in banks.data["fallers"]] == [("000002", -125e6), ("600002", -125e6)]
    assert banks.data["risers"] == [] and banks.png is not None and banks.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", banks.png[16:24]) == (960, 480)  # 8 x 4 in (the minimum, two rows) at 120 dpi
    assert report_text.to_plain(banks.caption).startswith("Banks · Largest 5-day financing balance changes")
    assert "2 Banks (Shenwan level 1, point in time) stocks" in report_text.to_plain(banks.details)
    err = _error(small, "top", code="钢铁")  # a level-1 name that is not among the stored industries
    assert (err.kind, err.params) == ("no_such_sector", {"query": "钢铁"})
    assert _error(small, "top", code="").kind == "no_such_sector"


def test_names_are_looked_up_once_per_data_version(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached report is a cache hit with its name too: the name is not looked up again until the
    data change."""
    populate(sqlite_engine)
    service = ReportService(sqlite_engine)
    looked_up: list[str] = []
    real = securities.sector_code
    monkeypatch.setattr(securities, "sector_code", lambda engine, text: looked_up.append(text) or real(engine, text))
    for _ in range(3):
        service.render("top", code="电子", days=5, chart=False)
    assert looked_up == ["电子"] and service.stats["hits"] == 2
    with session_scope(sqlite_engine) as session:
        bump_data_version(session)
    service.render("top", code="电子", days=5, chart=False)
    assert looked_up == ["电子", "电子"]


def test_top_in_a_sector_without_stocks_says_so(sqlite_engine: Engine) -> None:
    populate(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        upsert(session, models.IndustryName, [{"sw_l1_code": "230000", "name_zh": "钢铁", "name_en": "Steel",
                                               "index_symbol": "801040"}])
        bump_data_version(session)
    err = _error(sqlite_engine, "top", code="steel")
    assert (err.kind, err.params) == ("no_sector_stocks", {"sector": {"zh": "钢铁", "en": "Steel"},
                                                           "date": LAST.isoformat()})
    assert err.message("en").startswith("No per-stock margin detail of the Steel sector for")


def test_top_sector_names_can_be_ambiguous(demo: Engine) -> None:
    err = _error(demo, "top", code="电")
    assert (err.kind, err.param("candidates", "zh")) == ("ambiguous_sector", ["电子", "家用电器", "电力设备"])
    assert err.message("zh") == "名称含 “电” 的行业不止一个：电子、家用电器、电力设备。请写全名，例如 电子。"
    # in English, English names, and buttons labelled in English
    err = _error(demo, "top", code="elec")
    assert err.param("candidates", "en") == ["Electronics", "Telecom"]  # tel-ec-om
    assert err.param("choices", "en") == (("270000", "Electronics"), ("730000", "Telecom"))
    # many matches: eight listed, and an ellipsis
    err = _error(demo, "top", code="e")
    assert len(err.param("choices", "en")) == 8 and err.param("candidates", "en")[-1] == "…"


def test_top_without_per_stock_detail(sqlite_engine: Engine) -> None:
    rows = [{"trade_date": day, "exchange": "ALL", "rzye": 1e12, "rzmre": 80e9, "rqye": 1e10, "rzrqye": 1.01e12}
            for day in DAYS[:5]]
    with session_scope(sqlite_engine) as session:
        upsert(session, models.MarginSummary, rows)
        bump_data_version(session)
    err = _error(sqlite_engine, "top")
    assert (err.kind, err.params) == ("no_stock_detail", {"date": DAYS[4].isoformat()})


def test_a_fund_ranks_among_funds(small: Engine) -> None:
    """A fund or ETF is ranked among funds and ETFs (here the one), never among every security: its
    text, like its JSON, says which."""
    d = data(small, "stock", code="510300")
    assert d["is_fund"] is True
    assert (d["rank"], d["of"], d["rank_among"]) == (1, 1, "funds")
    assert "基金/ETF融资余额排名 第 1 / 1\n" in report_text.render("stock", "zh", d)[0]
    assert "Rank by financing balance: 1 of 1 funds/ETFs\n" in report_text.render("stock", "en", d)[0]


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def _error(engine: Engine, kind: str, **kw: Any) -> ReportError:
    with pytest.raises(ReportError) as info:
        ReportService(engine).render(kind, chart=False, **kw)
    err = info.value
    for lang in ("zh", "en"):
        message = err.message(lang)
        assert message and "\n" not in message and "{" not in message, message
    return err


def test_unknown_and_bad_codes(small: Engine) -> None:
    err = _error(small, "stock", code="999999")
    assert err.kind == "unknown_code"
    assert "999999" in err.message("zh") and "999999" in err.message("en")
    for bad in ("", " ", None):
        assert _error(small, "stock", code=bad).kind == "bad_code"
    for query in ("abc", "60051", "6005190", "%", "样本_"):  # LIKE's wildcards are plain characters
        err = _error(small, "stock", code=query)
        assert (err.kind, err.params) == ("no_such_security", {"query": query})
    assert '“abc”' in _error(small, "stock", code="abc").message("en")


def test_stock_by_name_or_code_in_other_forms(small: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """/stock takes a name, part of a name, or the code as other sites write it."""
    service = ReportService(small)

    def code_of(text: str) -> str:
        return service.render("stock", code=text, chart=False).data["code"]

    assert [code_of(t) for t in ("600001.SH", "sh600001", "SH.600001", "000001.sz", "830001.BJ")] == [
        "600001", "600001", "600001", "000001", "830001"]
    assert code_of("样本电子甲") == "600001"  # the exact name
    assert code_of("医药乙") == "830001"  # the one name that holds it
    assert code_of("300etf") == "510300"  # Latin letters in any case
    err = _error(small, "stock", code="电子")  # two names hold it: both listed, by code
    assert err.kind == "ambiguous_security"
    # how many matched, and one of them as the example code
    assert err.message("zh") == ("名称含 “电子” 的证券有 2 只：样本电子乙 (000001)、样本电子甲 (600001)。"
                                 "请改用 6 位代码，例如 000001。")
    assert err.message("en") == ('2 securities have “电子” in their name'
                                 " (样本电子乙 (000001), 样本电子甲 (600001)):"
                                 " use the 6-digit code instead, e.g. 000001.")
    # names as of the latest detail day: the suspended 000003 has no row then and is not offered
    assert len(_error(small, "stock", code="样本").params["candidates"]) == 7
    monkeypatch.setattr(securities, "MAX_CANDIDATES", 3)  # more than the list holds: an ellipsis
    assert _error(small, "stock", code="样本").params["candidates"] == [  # by name: 300 < 医 < 电 < 银; 乙 < 甲
        "样本300ETF (510300)", "样本医药乙 (830001)", "样本医药甲 (600003)", "…"]
    # more than listed: all are counted
    assert _error(small, "stock", code="样本").message("zh") == (
        "名称含 “样本” 的证券有 7 只：样本300ETF (510300)、样本医药乙 (830001)、样本医药甲 (600003)、…"
        "请改用 6 位代码，例如 510300。")


@pytest.mark.parametrize("kind", KINDS)
def test_dates_without_data(small: Engine, kind: str) -> None:
    code = "600001" if kind == "stock" else None
    cases = {
        # a weekend inside the history: the answer names the trade date just before it
        SATURDAY: ("not_a_data_day", {"date": "2024-01-06", "nearest": "2024-01-05"}),
        DAYS[0] - timedelta(days=1): ("before_first_data", {"date": "2024-01-01", "first": "2024-01-02"}),
        date(2000, 1, 3): ("before_first_data", {"date": "2000-01-03", "first": "2024-01-02"}),
        LAST + timedelta(days=3): ("no_data_for_date", {"date": (LAST + timedelta(days=3)).isoformat(),
                                                        "latest": LAST.isoformat()}),
    }
    for day, (error_kind, params) in cases.items():
        err = _error(small, kind, code=code, on=day)
        assert (err.kind, err.params) == (error_kind, params)
        for lang in ("zh", "en"):
            assert all(value in err.message(lang) for value in params.values())


def test_stock_without_a_row_on_the_day(small: Engine) -> None:
    """000003's detail stops after DAYS[4]: on the latest day it is absent, its latest day named."""
    err = _error(small, "stock", code="000003")
    assert (err.kind, err.params["before"]) == ("stock_no_row", DAYS[4].isoformat())


def test_stock_row_without_financing_balance(sqlite_engine: Engine) -> None:
    """A security listed with 融券 only (融资余额 unknown) still gets a report, without a rank."""
    populate(sqlite_engine)
    row = {"trade_date": LAST, "code": "830002", "exchange": "BSE", "name": "仅融券", "is_fund": False,
           "rzye": None, "rzmre": None, "rzche": None, "rqyl": 5.0, "rqmcl": 0.0, "rqye": 100.0}
    with session_scope(sqlite_engine) as session:
        upsert(session, models.StockMargin, [row])
        bump_data_version(session)
    for lang in ("zh", "en"):
        report = ReportService(sqlite_engine).render("stock", code="830002", lang=lang, chart=False)
        assert report.data["rzye"] is None
        assert (report.data["rank"], report.data["of"]) == (None, 6)
        assert "None" not in report.caption and "排名" not in report.caption and "Rank" not in report.caption


def _store_with_spikes(engine: Engine, days: list[Any], stocks: list[dict[str, Any]]) -> None:
    """SSE's market figures on `days` (a steady 1 万亿, turnover 5,000 亿), the `stocks` rows and the
    stored spike list of those days, as the ingest leaves them."""
    from storage.aggregate import rebuild_stock_spikes

    summary = [{"trade_date": d, "exchange": "SSE", "rzye": 1e12, "rzmre": 5e10, "rzche": 5e10, "rqye": 1e10,
                "rzrqye": 1.01e12, "source": "test"} for d in days]
    turnover = [{"trade_date": d, "exchange": "SSE", "amount": 5e11, "a_share_only": True, "source": "test"}
                for d in days]
    with session_scope(engine) as session:
        upsert(session, models.MarginSummary, summary)
        upsert(session, models.Turnover, turnover)
        upsert(session, models.StockMargin, stocks)
        rebuild_stock_spikes(session, days)
        bump_data_version(session)


def test_stock_spike_zscore_is_the_market_lists(sqlite_engine: Engine) -> None:
    """A stock's own report gives the spike z-score of the market's spike list (StockSpikeDaily),
    computed on the dates with per-stock detail: a stock that missed a day lately has no z (the 5-day changes
    across the gap are unknown, so fewer than 60 of them are), not one made of 5-row changes that
    span the gap. Hand check of the other: z = (c[T] - mean(c[T-60..T-1])) / std(same, ddof=1)."""

    days = [d.date() for d in pd.bdate_range("2024-03-01", periods=80)]
    gap = {days[70]}

    def rzye(i: int) -> float:  # 1e9 rising 1 % a day, a little faster every third day, 3 % on the last
        return 1e9 * 1.01 ** i * (1.002 if i % 3 == 0 else 1.0) * (1.03 if i == 79 else 1.0)

    stocks = [{"trade_date": d, "code": code, "exchange": "SSE", "name": name, "is_fund": False,
               "rzye": rzye(i), "rzmre": 1e7, "rzche": None, "rqyl": None, "rqmcl": None, "rqye": None}
              for i, d in enumerate(days) for code, name in (("600010", "连续"), ("600011", "停牌"))
              if not (code == "600011" and d in gap)]
    _store_with_spikes(sqlite_engine, days, stocks)

    level = pd.Series([rzye(i) for i in range(80)])
    change = (level / level.shift(5) - 1) * 100
    past = change.iloc[-61:-1]
    expected = (change.iloc[-1] - past.mean()) / past.std(ddof=1)
    service = ReportService(sqlite_engine)
    steady = service.render("stock", code="600010", chart=False).data
    assert steady["spike_zscore"] == pytest.approx(expected, rel=1e-9)
    with sqlite_engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT code, zscore FROM stock_spike_daily WHERE trade_date = :d"),
                                   {"d": days[-1].isoformat()}).all())
    assert stored["600010"] == pytest.approx(expected, rel=1e-9)
    assert stored.get("600011") is None  # a rise without a z-score: never listed as a spike
    gappy = service.render("stock", code="600011", chart=False).data
    assert gappy["spike_zscore"] is None
    assert gappy["change_5d"] == pytest.approx(rzye(79) - rzye(74))  # 5 rows back: none is in the gap


@pytest.mark.parametrize(("scale", "flagged"), [(1e9, True), (1e7, False)])
def test_a_day_without_any_stock_detail_is_skipped_by_both_spike_scores(sqlite_engine: Engine, scale: float,
                                                                          flagged: bool) -> None:
    """A trade date whose per-stock detail is missing altogether (the market summary came, the
    detail did not) is skipped by the stored spike list and by the stock's own spike z-score alike:
    both read the 5-day rises of the dates with detail, hand-computed here, and /stock has a z-score
    on the day (a hole in its grid would leave it unknown for 65 dates). Flagged as a spike by the
    list's rule: z >= 2 on a rise, of a balance of at least 5,000 万元 (a 1,000 万元 one is not). The
    changes /stock prints count trade dates, as /top does: its 5-day change is from 5 trade dates
    back, the missing day among them."""

    days = [d.date() for d in pd.bdate_range("2024-03-01", periods=80)]
    missing = days[76]  # 3 dates before the last

    def rzye(i: int) -> float:
        return scale * 1.01 ** i * (1.002 if i % 3 == 0 else 1.0) * (1.04 if i == 79 else 1.0)

    stocks = [{"trade_date": d, "code": "600010", "exchange": "SSE", "name": "连续", "is_fund": False,
               "rzye": rzye(i), "rzmre": 1e7, "rzche": None, "rqyl": None, "rqmcl": None, "rqye": None}
              for i, d in enumerate(days) if d != missing]
    _store_with_spikes(sqlite_engine, days, stocks)

    level = pd.Series([rzye(i) for i, d in enumerate(days) if d != missing])  # 79 dates with detail
    change = (level / level.shift(5) - 1) * 100
    past = change.iloc[-61:-1]
    expected = (change.iloc[-1] - past.mean()) / past.std(ddof=1)
    from analytics.stocks import spike_scores

    stored = spike_scores(pd.DataFrame({"600010": level.to_numpy()}), start=78).iloc[0]  # as stored
    report = ReportService(sqlite_engine).render("stock", code="600010", chart=False).data
    assert stored["zscore"] == pytest.approx(expected, rel=1e-9)
    assert report["spike_zscore"] == pytest.approx(expected, rel=1e-9)
    assert stored["change_pct"] == pytest.approx(change.iloc[-1], rel=1e-9)
    assert report["change_5d_pct"] == pytest.approx((rzye(79) / rzye(74) - 1) * 100, rel=1e-9)
    assert report["change_5d"] == pytest.approx(rzye(79) - rzye(74), rel=1e-9)
    top = ReportService(sqlite_engine).render("top", days=5, chart=False).data
    assert top["since"] == days[74].isoformat() and top["risers"][0]["change"] == report["change_5d"]
    assert report["spiking"] is flagged and expected > 2
    with sqlite_engine.connect() as conn:  # the stored list keeps the large one only
        listed = conn.execute(text("SELECT zscore FROM stock_spike_daily WHERE trade_date = :d"),
                              {"d": days[-1].isoformat()}).scalars().all()
    assert listed == ([pytest.approx(expected, rel=1e-9)] if flagged else [])


def test_a_fund_rising_like_a_spiking_stock_is_not_flagged(sqlite_engine: Engine) -> None:
    """The spike list holds stocks only (storage.aggregate): an ETF whose 融资余额 rises exactly as a
    flagged stock's has the same z-score in its report and watch line, and no spike flag in either."""
    days = [d.date() for d in pd.bdate_range("2024-03-01", periods=80)]

    def rzye(i: int) -> float:
        return 1e9 * 1.01 ** i * (1.002 if i % 3 == 0 else 1.0) * (1.04 if i == 79 else 1.0)

    rows = [{"trade_date": d, "code": code, "exchange": "SSE", "name": name, "is_fund": fund, "rzye": rzye(i),
             "rzmre": 1e7, "rzche": None, "rqyl": None, "rqmcl": None, "rqye": None}
            for i, d in enumerate(days) for code, name, fund in (("600010", "股票", False), ("510300", "基金", True))]
    _store_with_spikes(sqlite_engine, days, rows)
    service = ReportService(sqlite_engine)
    stock = service.render("stock", code="600010", lang="zh", chart=False)
    fund = service.render("stock", code="510300", lang="zh", chart=False)
    assert stock.data["spike_zscore"] == pytest.approx(fund.data["spike_zscore"], rel=1e-12)
    assert stock.data["spike_zscore"] > 2
    assert (stock.data["spiking"], fund.data["spiking"]) == (True, False)
    assert "远超自身常态" in stock.caption and "远超自身常态" not in fund.caption
    lines = service.watch_text(["600010", "510300"], on=None, lang="zh").splitlines()
    assert [line.endswith("⚠️ 急升") for line in lines[-2:]] == [True, False]  # in the order asked


def test_a_stock_absent_on_a_market_day_says_so(sqlite_engine: Engine) -> None:
    """A security without a row on a day that has market data (suspended, or off the list of margin
    securities that day) is told apart from a day without data: its latest day before is named; one
    whose detail starts later says from when; a code never stored is unknown; on a day without any
    security's detail (market totals only) that is what it says."""
    days = [d.date() for d in pd.bdate_range("2024-03-01", periods=11)]
    rows = [{"trade_date": d, "code": code, "exchange": "SSE", "name": code, "is_fund": False, "rzye": 1e9,
             "rzmre": 1e7, "rzche": None, "rqyl": None, "rqmcl": None, "rqye": None}
            for i, d in enumerate(days) for code in ("600010", "600020", "600040")
            if i != 9 and ((code == "600010" and i not in (6, 7)) or (code == "600020" and i >= 8)
                           or code == "600040")]
    _store_with_spikes(sqlite_engine, days, rows)
    suspended = _error(sqlite_engine, "stock", code="600010", on=days[7])
    assert (suspended.kind, suspended.params) == (
        "stock_no_row", {"code": "600010", "date": "2024-03-12", "before": "2024-03-08"})
    assert suspended.message("zh") == ("600010 在 2024-03-12 没有两融明细（当日停牌，或不在两融标的名单内）；"
                                       "它此前最近有明细的日期是 2024-03-08。")
    late = _error(sqlite_engine, "stock", code="600020", on=days[3])
    assert (late.kind, late.params) == ("stock_starts_later", {"code": "600020", "date": "2024-03-06",
                                                               "first": "2024-03-13"})
    assert late.message("en") == "600020's margin detail starts on 2024-03-13: none for 2024-03-06."
    assert _error(sqlite_engine, "stock", code="600030", on=days[3]).kind == "unknown_code"
    nothing = _error(sqlite_engine, "stock", code="600040", on=days[9])
    assert (nothing.kind, nothing.params) == ("no_stock_detail_on", {"date": "2024-03-14"})


def test_sectors_wait_for_the_days_stock_detail(sqlite_engine: Engine) -> None:
    """Summaries and turnover of a new day are stored, its per-stock detail is not yet."""
    populate(sqlite_engine)
    new_day = LAST + timedelta(days=1)
    with session_scope(sqlite_engine) as session:
        upsert(session, models.MarginSummary, [
            {"trade_date": new_day, "exchange": e, "rzye": _exchange_rzye(e, 30), "rqye": RQYE[e],
             "rzmre": RZMRE[e], "rzrqye": _exchange_rzye(e, 30) + RQYE[e]} for e in SCOPE])
        upsert(session, models.Turnover, [{"trade_date": new_day, "exchange": e, "amount": TURNOVER[e],
                                           "a_share_only": True} for e in SCOPE])
        bump_data_version(session)
    # The default date waits until the day is whole (sector figures in), for every report.
    assert data(sqlite_engine, "balance")["date"] == LAST.isoformat()
    err = _error(sqlite_engine, "sectors", on=new_day)
    assert err.kind == "no_data_for_date"
    assert err.params == {"date": new_day.isoformat(), "latest": LAST.isoformat()}
    assert data(sqlite_engine, "sectors", on=LAST)["hhi"] == pytest.approx(3800)


def test_every_missing_step_has_a_name_in_both_languages() -> None:
    """The admins' late-data message names what is missing (bot.pipeline.missing_for), in words."""
    from storage.ingest import required_steps

    keys = {*required_steps(date(2026, 11, 20)), "turnover_SSE", "turnover_SZSE"}
    names = {lang: {key: t(lang, f"steps.{key}") for key in keys} for lang in ("zh", "en")}
    assert all(name and "_" not in name for by_key in names.values() for name in by_key.values())
    assert names["zh"]["turnover_SZSE"] == "深市成交额" and names["en"]["bse_detail"] == "Beijing detail"


def test_error_messages_exist_in_both_languages() -> None:
    import string

    from reports.i18n import strings

    zh, en = strings("zh")["error"], strings("en")["error"]
    assert set(zh) == set(en)
    for key in zh:
        fields = [{f for _, f, _, _ in string.Formatter().parse(text) if f} for text in (zh[key], en[key])]
        assert fields[0] == fields[1], key


@pytest.mark.parametrize(
    ("kind", "days"),
    [("balance", 0), ("ratio", -5), ("ratio", 99999), ("balance", 2501), ("sectors", 251), ("stock", 0)],
)
def test_bad_windows(small: Engine, kind: str, days: int) -> None:
    err = _error(small, kind, code="600001" if kind == "stock" else None, days=days)
    assert err.kind == "bad_window"
    assert str(days) in err.message("zh") and str(days) in err.message("en")


def test_sector_window_longer_than_history(small: Engine) -> None:
    assert data(small, "sectors", days=29)["days"] == 29
    too_long = _error(small, "sectors", days=30)
    assert (too_long.kind, too_long.params["longest"]) == ("not_enough_history", 29)
    assert too_long.message("en").endswith("for a 30-day window: the data allow 29 days at most.")


@pytest.mark.parametrize("kind", KINDS)
def test_empty_database(sqlite_engine: Engine, kind: str) -> None:
    err = _error(sqlite_engine, kind, code="600001" if kind == "stock" else None)
    assert err.kind == "no_data"
    # a chat user gets no operator's command (the command line adds it: test_cli)
    assert "marginbot" not in err.message("zh") and "marginbot" not in err.message("en")


# ----------------------------------------------------------------------------------------------
# Both databases, the cache, and what invalidates it
# ----------------------------------------------------------------------------------------------


def test_same_figures_on_sqlite_and_postgresql(small_rw: Engine) -> None:
    service = ReportService(small_rw)
    bal = service.render("balance", chart=False).data
    rat = service.render("ratio", chart=False).data
    sec = service.render("sectors", chart=False).data
    stk = service.render("stock", code="600001", chart=False).data
    assert bal["date"] == LAST.isoformat() and bal["scope"] == SCOPE
    assert bal["rzrqye"] == pytest.approx(1880e9)
    assert bal["change_20d"] == pytest.approx(37e9)
    assert rat["ratio_pct"] == pytest.approx(10.4)
    assert service.render("ratio", on=NO_ALL_DAY, chart=False).data["rqmce_included"] is False
    assert sec["hhi"] == pytest.approx(3800)
    assert [r["code"] for r in sec["sectors"]] == ["270000", "370000", "480000"]
    assert (stk["rzye"], stk["rank"], stk["of"]) == (pytest.approx(2.5e9), 1, 6)
    for kind in ("signals", "summary"):
        assert service.render(kind, chart=False).data["date"] == LAST.isoformat()


def test_short_structure_without_a_constituent_list_does_not_invent_a_split(small_rw: Engine) -> None:
    """No CSI 300 list stored (a database built by `marginbot import`): on LAST the ETF's 2e7 of the
    5e7 known (000001, 000002 and 830001 hold 1e7 each) is 40 %, the stocks' 60 % is not split (hs300
    unknown, never 0 with "other" taking it all), and the hedging read-out, which needs the split,
    is not made."""
    with session_scope(small_rw) as session:
        session.execute(text("UPDATE stock_margin SET rqye = 2e7 WHERE code = '510300' AND trade_date = :d"),
                        {"d": LAST})
        bump_data_version(session)
    service = ReportService(small_rw)
    short = service.render("signals", chart=False).data["short_structure"]
    assert (short["etf"], short["hs300"], short["other"], short["hs300_known"]) == (
        pytest.approx(40.0), None, pytest.approx(60.0), False)
    assert short["change_pp"]["hs300"] is None and short["hedging_rising"] is False
    zh = service.render("signals", lang="zh", chart=False)
    assert "<b>融券结构</b>：ETF 40.00% · 个股 60.00%" in zh.caption + zh.details
    assert "沪深300成分股 0.00%" not in zh.caption + zh.details
    en = service.render("signals", lang="en", chart=False)
    assert "<b>Where short positions sit</b>: ETFs 40.00% · stocks 60.00%" in en.caption + en.details


def test_short_structure_hand_computed(small_rw: Engine) -> None:
    """融券 structure summed in SQL, on both databases. On LAST: 000001 (a CSI 300 member here) 1e7,
    000002 and 830001 1e7 each, the ETF 510300 2e7 (set below) => etf 40 %, hs300 20 %, other 40 %;
    the three SSE stocks hold 融券余量 without 融券余额 => 3 unknown. Twenty trade days earlier
    (DAYS[9]) the ETF's 融券余额 is unknown => etf 0, hs300 1/3, other 2/3."""
    with session_scope(small_rw) as session:
        # The ETF listed too, on purpose: a fund is always "etf".
        upsert(session, models.IndexMember, [{"symbol": "000300", "code": code, "as_of": LAST}
                                             for code in ("000001", "510300")])
        session.execute(text("UPDATE stock_margin SET rqye = 2e7 WHERE code = '510300' AND trade_date = :d"),
                        {"d": LAST})
        bump_data_version(session)
    service = ReportService(small_rw)
    short = service.render("signals", chart=False).data["short_structure"]
    assert (short["etf"], short["hs300"], short["other"]) == (pytest.approx(40.0), pytest.approx(20.0),
                                                              pytest.approx(40.0))
    assert short["missing_rqye"] == 3 and short["hs300_known"] is True
    # The only list stored took effect on LAST: the day twenty trade days earlier is sorted by it too, and
    # the report says so.
    assert (short["hs300_as_of"], short["hs300_list_from"]) == (LAST.isoformat(), LAST.isoformat())
    zh, en = (service.render("signals", lang=lang, chart=False) for lang in ("zh", "en"))
    assert f"按 {LAST.isoformat()} 起的名单计" in zh.caption + zh.details
    assert f"members as listed from {LAST.isoformat()}" in en.caption + en.details
    assert short["change_pp"]["etf"] == pytest.approx(40.0)
    assert short["change_pp"]["hs300"] == pytest.approx(20.0 - 100 / 3)
    assert short["change_pp"]["other"] == pytest.approx(40.0 - 200 / 3)
    assert short["hedging_rising"] is True
    # ETF and CSI 300 shares together: +40 + (20 - 33.33) = +26.67 points over the 20 days
    assert "ETF 与沪深300成分股合计占比近20日 +26.67 个百分点：融券以对冲和套利为主" in zh.details
    assert "Combined share of ETFs and CSI 300 members +26.67pp over 20 days: more hedging" in en.details


def test_short_structure_reads_the_index_list_in_force(small_rw: Engine) -> None:
    """Two CSI 300 lists: 000001 and 000002 from DAYS[9], 000001 alone from LAST. Twenty trade days
    before LAST (DAYS[9]) reads the first: hs300 2/3, other (830001) 1/3; LAST reads the second
    (as in test_short_structure_hand_computed): hs300 20 %. No day is sorted by a later list."""
    with session_scope(small_rw) as session:
        upsert(session, models.IndexMember, [{"symbol": "000300", "code": "000001", "as_of": LAST},
                                             {"symbol": "000300", "code": "000001", "as_of": DAYS[9]},
                                             {"symbol": "000300", "code": "000002", "as_of": DAYS[9]}])
        session.execute(text("UPDATE stock_margin SET rqye = 2e7 WHERE code = '510300' AND trade_date = :d"),
                        {"d": LAST})
        bump_data_version(session)
    report = ReportService(small_rw).render("signals", chart=False)
    short = report.data["short_structure"]
    assert short["hs300"] == pytest.approx(20.0)
    assert short["change_pp"]["hs300"] == pytest.approx(20.0 - 200 / 3)
    assert short["change_pp"]["other"] == pytest.approx(40.0 - 100 / 3)
    assert (short["hs300_as_of"], short["hs300_list_from"]) == (LAST.isoformat(), None)
    assert "名单" not in report.caption + report.details


def test_figures_asked_at_once_are_built_once(small_rw: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """/ratio in Chinese and English and the summary, asked at the same moment: each report's figures
    are built once, the ratio's among them (the summary reads it too)."""
    import threading
    import time as _time

    import reports.service as service_module

    builds: list[str] = []
    real_build = service_module.build

    def slow_build(engine: Engine, kind: str, *args: Any, **kw: Any) -> Any:
        builds.append(kind)
        _time.sleep(0.05)  # long enough for the others to arrive meanwhile
        return real_build(engine, kind, *args, **kw)

    monkeypatch.setattr(service_module, "build", slow_build)
    service = ReportService(small_rw)
    day = queries.latest_data_date(small_rw)
    start = threading.Barrier(3)

    def ask(kind: str, lang: str) -> None:
        start.wait()
        service.render(kind, on=day, days=60, lang=lang, chart=False)

    asked = (("ratio", "zh"), ("ratio", "en"), ("summary", "zh"))
    threads = [threading.Thread(target=ask, args=args) for args in asked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(builds) == sorted(["ratio", "summary", "balance", "sectors", "signals"]), builds


def test_cache_hits_and_data_version(small_rw: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import reports.service as service_module

    builds: list[str] = []
    real_build = service_module.build

    def counting_build(engine: Engine, kind: str, *args: Any, **kw: Any) -> Any:
        builds.append(kind)
        return real_build(engine, kind, *args, **kw)

    monkeypatch.setattr(service_module, "build", counting_build)
    service = ReportService(small_rw)
    first = service.render("balance", chart=False)
    assert service.stats == {"hits": 0, "misses": 1}
    second = service.render("balance", chart=False)
    assert second is first
    assert service.stats["hits"] == 1
    assert builds == ["balance"]
    # another language reuses the figures, renders new text
    en = service.render("balance", lang="en", chart=False)
    assert en is not first and en.data is first.data
    assert builds == ["balance"]

    # a write that bumps the data version invalidates every cached report
    row = {"trade_date": LAST, "exchange": "SSE", "rzye": 1027e9, "rzrqye": 1037e9}
    with session_scope(small_rw) as session:
        upsert(session, models.MarginSummary, [row])
        bump_data_version(session)
    third = service.render("balance", chart=False)
    assert third is not first
    assert builds == ["balance", "balance"]
    assert third.data["rzrqye"] == pytest.approx(1881e9)
    assert third.data["change_1d"] == pytest.approx(0.0)
    assert first.data["rzrqye"] == pytest.approx(1880e9)  # the old object is untouched


# ----------------------------------------------------------------------------------------------
# Telegram text
# ----------------------------------------------------------------------------------------------

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
                "tg-spoiler", "span", "blockquote"}


def test_render_frees_its_figure_and_restores_the_collector(small: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector is paused during a render (also while a second render runs inside it, as in
    another thread), back on afterwards, and the render's matplotlib figure, a web of reference
    cycles, is already freed when render() returns."""
    import gc
    import weakref

    import reports.service as service_module

    figures_made: list[weakref.ref[Any]] = []
    states: list[bool] = []
    real_axes_grid = charts.axes_grid

    def tracking_axes_grid(*args: Any, **kw: Any) -> Any:
        fig, axes = real_axes_grid(*args, **kw)
        figures_made.append(weakref.ref(fig))
        states.append(gc.isenabled())
        return fig, axes

    monkeypatch.setattr(charts, "axes_grid", tracking_axes_grid)
    service = ReportService(small)
    assert gc.isenabled()
    with service_module._collector_paused:  # a render already running elsewhere
        service.render("balance")
        assert not gc.isenabled()  # the other one still runs
        # nothing collects automatically now: the figure is gone because the render collected it
        assert len(figures_made) == 1 and figures_made[0]() is None
    assert gc.isenabled()
    service.render("ratio", lang="en")
    assert gc.isenabled()
    assert states == [False, False]
    assert len(figures_made) == 2 and all(ref() is None for ref in figures_made)
    gc.disable()  # a caller that turned the collector off keeps it off
    try:
        service.render("sectors")
        assert not gc.isenabled()
    finally:
        gc.enable()


class _TagChecker(HTMLParser):
    """Telegram's HTML parse mode: only its tags, properly nested, no stray markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unbalanced </{tag}>")
        else:
            self.stack.pop()


def assert_telegram_html(markup: str) -> None:
    checker = _TagChecker()
    checker.feed(markup)
    checker.close()
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack, markup)
    # only &lt; &gt; &amp; &quot; and numeric entities: Telegram knows no others
    for entity in set(re.findall(r"&[#\w]+;", markup)):
        assert entity in ("&lt;", "&gt;", "&amp;", "&quot;") or entity.startswith("&#"), entity


def _scope_labels(lang: str, scope: list[str]) -> list[str]:
    return [t(lang, f"exchange.{e}") for e in scope]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", [*KINDS, "sector"])
def test_demo_text_fits_telegram(demo_reports: Callable[[str, str], RenderedReport], kind: str, lang: str) -> None:
    report = demo_reports(kind, lang)
    d = report.data
    assert d["demo"] is True and d["origin"] == "demo"
    assert report_text.visible_length(report.caption) <= report_text.CAPTION_LIMIT
    assert report_text.visible_length(report.details) <= report_text.MESSAGE_LIMIT
    assert_telegram_html(report.caption)
    assert_telegram_html(report.details)
    plain = report_text.to_plain(report.caption)
    assert d["date"] in plain
    # the demo has all three exchanges every day, and its rankings and sectors hold stocks of each; a
    # stock's report names the one it trades on
    assert d["scope"] == ([d["exchange"]] if kind == "stock" else ["SSE", "SZSE", "BSE"])
    for label in _scope_labels(lang, d["scope"]):
        assert label in plain
    assert ("演示数据" if lang == "zh" else "DEMO DATA") in plain
    assert "None" not in plain and "nan" not in plain.lower().split()
    # Lines stay lines: the footer starts its own, and no two English sentences run together.
    footer = "<i>数据日期" if lang == "zh" else "<i>Data date"
    assert any(line.startswith(footer) for line in report.caption.splitlines()), report.caption
    if lang == "en":
        assert not re.search(r"[a-z][A-Z]", plain + "\n" + report_text.to_plain(report.details)), plain
    if lang == "en" and kind in ("balance", "ratio", "sectors", "sector"):  # others quote Chinese stock names
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in plain), plain


@pytest.mark.parametrize(("day", "side"), [(date(2025, 4, 14), "outflows"), (date(2026, 10, 15), "inflows")])
def test_no_sector_is_called_a_net_repayer_when_it_bought(demo: Engine, day: date, side: str) -> None:
    """On 2025-04-14 every sector's 20-day 融资净买入 in the demo is positive, on 2026-10-15 negative:
    the side with no sector says so, in the sectors report and in the daily push; the other side
    names the three largest by 融资净买入."""
    service = ReportService(demo)
    d = service.render("sectors", on=day, lang="zh", chart=False).data
    net = [s["net_buy"] for s in d["sectors"]]
    assert all(n > 0 for n in net) if side == "outflows" else all(n < 0 for n in net)
    assert d[side] == []
    other = d["inflows" if side == "outflows" else "outflows"]
    by_net = sorted(d["sectors"], key=lambda s: s["net_buy"], reverse=side == "outflows")
    assert [s["code"] for s in other] == [s["code"] for s in by_net][:3]
    none_zh = ("融资净偿还最多：无（没有行业融资偿还额超过买入额）" if side == "outflows"
               else "融资净买入最多：无（没有行业融资买入额超过偿还额）")
    assert none_zh in service.render("sectors", on=day, lang="zh", chart=False).caption
    push = service.render("summary", on=day, lang="en", chart=False).caption
    assert ("Net repayment: none" if side == "outflows"
            else "20-day net margin buying: none") in push


def _demo_net_buying(engine: Engine, day: date, days: int) -> pd.Series:
    """Each level-1 sector's 融资净买入 (元) over the `days` stock dates up to `day`, from the stored
    stock rows themselves: sum(rzmre - rzche) of the stocks (funds left out) classed in the sector on
    each day, point in time (the class with the latest start_date on or before it)."""
    with engine.connect() as conn:
        dates = list(conn.execute(text("SELECT DISTINCT trade_date FROM stock_margin WHERE trade_date <= :d "
                                       "ORDER BY trade_date DESC LIMIT :n"), {"d": day, "n": days}).scalars())
        rows = pd.DataFrame(conn.execute(
            select(models.StockMargin.trade_date, models.StockMargin.code, models.StockMargin.rzmre,
                   models.StockMargin.rzche).where(models.StockMargin.trade_date.in_(dates),
                                                   models.StockMargin.is_fund.is_(False))).all(),
            columns=["trade_date", "code", "rzmre", "rzche"])
        classes = pd.DataFrame(conn.execute(select(models.IndustryClass.code, models.IndustryClass.start_date,
                                                   models.IndustryClass.sw_l1_code)).all(),
                               columns=["code", "start_date", "sw_l1_code"])
    rows["trade_date"] = pd.to_datetime(rows["trade_date"])
    classes["start_date"] = pd.to_datetime(classes["start_date"])
    classed = pd.merge_asof(rows.sort_values("trade_date"), classes.sort_values("start_date"),
                            left_on="trade_date", right_on="start_date", by="code")
    return (classed["rzmre"] - classed["rzche"]).groupby(classed["sw_l1_code"]).sum()


def test_sector_headlines_are_net_buying_across_a_reclassification(demo: Engine) -> None:
    """storage.demo reclassifies stocks on 2025-02-26: over the 20 days to 2025-03-05 传媒's balance
    rose most (+289.06 亿元, stocks moved in) while its members repaid most (融资净买入 -74.83 亿元),
    and 基础化工's fell most (-301.05 亿元) while its members bought most (+62.14 亿元). The headlines
    name 融资净买入, checked against the stock rows themselves; the table keeps the balance change."""
    day = date(2025, 3, 5)
    service = ReportService(demo)
    d = service.render("sectors", on=day, lang="zh", chart=False).data
    rows = {r["code"]: r for r in d["sectors"]}
    assert [r["code"] for r in d["sectors"][:1]] == ["720000"] and d["sectors"][-1]["code"] == "220000"
    assert round(rows["720000"]["change"] / 1e8, 2) == 289.06 and round(rows["220000"]["change"] / 1e8, 2) == -301.05
    expected = _demo_net_buying(demo, day, 20)
    for r in d["sectors"]:
        assert r["net_buy"] == pytest.approx(expected[r["code"]], rel=1e-9), r["code"]
    ranked = expected.sort_values()
    assert [r["code"] for r in d["inflows"]] == list(ranked.index[::-1][:3]) == ["220000", "270000", "630000"]
    assert [r["code"] for r in d["outflows"]] == list(ranked.index[:3]) == ["720000", "490000", "370000"]
    caption = report_text.to_plain(service.render("sectors", on=day, lang="zh", chart=False).caption)
    assert "融资净买入最多：基础化工 +62.14 亿元；电子 +44.08 亿元；电力设备 +42.89 亿元\n" in caption
    assert "融资净偿还最多：传媒 74.83 亿元；非银金融 14.63 亿元；医药生物 10.96 亿元\n" in caption
    en = report_text.to_plain(service.render("sectors", on=day, lang="en", chart=False).caption)
    assert "Largest net margin buying: Basic Chemicals +6.21 bn; Electronics +4.41 bn; Power Equipment +4.29 bn\n" in en
    assert "Largest net margin repayment: Media 7.48 bn; Non-bank Finance 1.46 bn; Pharma & Biotech 1.10 bn\n" in en
    push = report_text.to_plain(service.render("summary", on=day, lang="zh", chart=False).caption)
    assert "近20日融资净买入最多：基础化工 +62.14 亿元；电子 +44.08 亿元；电力设备 +42.89 亿元\n" in push
    assert "融资净偿还最多：传媒 74.83 亿元；非银金融 14.63 亿元；医药生物 10.96 亿元\n" in push


def test_demo_bottoming_sector_in_sectors_and_signals(demo_reports: Callable[[str, str], RenderedReport]) -> None:
    """The demo data make 医药生物 (370000) bottom out (tests/test_demo.py checks the raw rule); both
    reports that show the signal name it, with its names, and agree."""
    sectors_list = demo_reports("sectors", "zh").data["bottoming"]
    signals_list = demo_reports("signals", "zh").data["bottoming"]
    assert {"code": "370000", "name": "医药生物", "name_en": "Pharma & Biotech"} in sectors_list
    assert signals_list == sectors_list
    # the signals point to the sector's own report, which shows the same signal
    assert "见底行业详情：<code>/sectors 医药生物</code>" in demo_reports("signals", "zh").details
    assert ("Bottoming sectors in detail: <code>/sectors Pharma &amp; Biotech</code>"
            in demo_reports("signals", "en").details)
    assert demo_reports("sector", "zh").data["bottoming"] is True


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_small_text_names_date_scope_and_no_demo_mark(small: Engine, kind: str, lang: str) -> None:
    report = service_for(small).render(kind, code="600001" if kind == "stock" else None, lang=lang, chart=False)
    assert_telegram_html(report.caption)
    plain = report_text.to_plain(report.caption)
    assert LAST.isoformat() in plain
    footer = plain.splitlines()[-1]
    scope = ["SSE"] if kind == "stock" else SCOPE  # 600001 trades in Shanghai alone
    assert all(label in footer for label in _scope_labels(lang, scope))
    assert not any(label in footer for label in _scope_labels(lang, [e for e in SCOPE if e not in scope]))
    assert "演示数据" not in plain and "DEMO DATA" not in plain


def test_small_text_figures(small: Engine) -> None:
    service = service_for(small)
    zh = report_text.to_plain(service.render("balance", lang="zh", chart=False).caption)
    en = report_text.to_plain(service.render("balance", lang="en", chart=False).caption)
    assert "1.88 万亿元" in zh and "较上日 -10.00 亿元（-0.05%）" in zh and "近20日增加 370.00 亿元（+2.01%）" in zh
    assert "CNY 1.88 trn" in en and "-1.00 bn (-0.05%) on the day" in en and "Up 37.00 bn (+2.01%) over 20 days" in en
    ratio_zh = report_text.to_plain(service.render("ratio", lang="zh", chart=False).caption)
    assert "10.40%" in ratio_zh and "946.40 亿元" in ratio_zh and "9,100.00 亿元" in ratio_zh
    sectors_en = service.render("sectors", lang="en", chart=False)
    assert "Pharma &amp; Biotech" in sectors_en.caption + sectors_en.details
    assert "HHI 3,800" in report_text.to_plain(sectors_en.caption)


def test_stock_name_is_escaped(sqlite_engine: Engine) -> None:
    populate(sqlite_engine)
    evil = "<b>x</b>&"
    row = {"trade_date": LAST, "code": "600009", "exchange": "SSE", "name": evil, "is_fund": False,
           "rzye": 1e9, "rzmre": 1e8, "rzche": 1e8, "rqyl": 0.0, "rqmcl": 0.0, "rqye": None}
    with session_scope(sqlite_engine) as session:
        upsert(session, models.StockMargin, [row])
        bump_data_version(session)
    for lang in ("zh", "en"):
        report = ReportService(sqlite_engine).render("stock", code="600009", lang=lang, chart=False)
        assert report.data["name"] == evil
        assert "&lt;b&gt;x&lt;/b&gt;&amp;" in report.caption
        assert evil not in report.caption
        assert_telegram_html(report.caption)
        assert evil in report.text_plain()  # decoded again for the terminal


def test_numbers_that_round_to_zero_show_no_sign() -> None:
    """-0.004 pp prints as 0.00pp: no "-0.00" and no "+0.00", in text and on charts alike."""
    assert fmt.pp(-0.004) == fmt.pp(0.004) == "0.00pp"
    assert (fmt.pp(0.35), fmt.pp(-0.12), fmt.pp(-0.005)) == ("+0.35pp", "-0.12pp", "-0.01pp")
    assert fmt.pct(-0.001, signed=True) == "0.00%" and fmt.pct(1.234, signed=True) == "+1.23%"
    assert fmt.money(-4e5, "zh", signed=True) == "0.00 亿元"  # 40 万元 rounds to 0.00 亿元
    assert fmt.money(-1.5e9, "en") == "-1.50 bn" and fmt.money(2.5e10, "zh", signed=True) == "+250.00 亿元"
    assert fmt.number(-0.2, 0, signed=True) == "0" and fmt.number(12345.678) == "12,345.68"
    assert (fmt.headline_money(2.3312e12, "zh") == "2.33 万亿元"
            and fmt.headline_money(7.6443e11, "en") == "CNY 0.76 trn")
    # 2010-04-01, the first days of margin trading: 0.00 万亿 would say nothing
    assert fmt.headline_money(1.4e7, "zh") == "0.14 亿元" and fmt.headline_money(6.5e10, "en") == "CNY 65.00 bn"


def test_each_figure_of_a_security_reads_in_its_own_unit() -> None:
    """A stock's figure: 亿元 / bn from 1 亿元 / 1 bn up, 万元 / mn below, figure by figure, as exchange
    and broker pages print them (a list in one unit would print its small figures as 0.00); unknown
    figures "—". The arrow follows the figure as printed: +40 万元 is up, a change under 50 元 (0.00
    万元) is neither."""
    assert fmt.security_money(-5.91561e7, "zh", signed=True) == "-5,915.61 万元"
    assert fmt.security_money(1.18e8, "zh", signed=True) == "+1.18 亿元"
    assert fmt.security_money(1e8, "zh") == "1.00 亿元"  # exactly 1 亿元
    assert fmt.security_money(99_999_999.0, "zh") == "10,000.00 万元"  # under 1 亿元, rounded as printed
    assert fmt.security_money(5e8, "en") == "500.00 mn"  # 5 亿元 is 0.5 bn: millions in English
    assert fmt.security_money(8.6346e8, "en", signed=True) == "+863.46 mn"
    assert fmt.security_money(2.31e9, "en", signed=True) == "+2.31 bn"
    assert fmt.security_money(None, "zh", True) == fmt.money(None, "zh", True) == "—"
    assert fmt.security_money(float("nan"), "zh", True) == "—"
    assert fmt.security_arrow(4e5, "zh") == "▲" and fmt.security_arrow(-4e5, "zh") == "▼"
    assert fmt.security_money(40.0, "zh", True) == "0.00 万元" and fmt.security_arrow(40.0, "zh") == "•"


def _ranked(code: str, name: str, rzye: float, change: float, change_pct: float) -> dict[str, Any]:
    return {"code": code, "name": name, "rzye": rzye, "change": change, "change_pct": change_pct}


def test_a_rankings_small_changes_never_print_as_zero(small: Engine) -> None:
    """The audit's /top 20 电子: rises of 1.25 亿元 (balances 25 亿元) beside a fall of 53.12 万元 on a
    balance of 5,000 万元: each figure in its own unit, so the fall reads -53.12 万元 (not -0.01 亿元 or
    0.00 bn) and its balance 5,000.00 万元 (not 0.50 亿元), in the caption as in the list."""
    d = dict(data(small, "top"))
    d["fallers"] = [_ranked("000002", "样本银行乙", 5e7, -531_200.0, -1.05)]
    caption, details = (report_text.to_plain(part) for part in report_text.render("top", "zh", d))
    assert "增加最多：样本电子乙 +1.25 亿元；样本电子甲 +1.25 亿元\n减少最多：样本银行乙 -53.12 万元\n" in caption
    assert "1. 样本电子乙（000001）+1.25 亿元（+5.26%），余额 25.00 亿元" in details
    assert "1. 样本银行乙（000002）-53.12 万元（-1.05%），余额 5,000.00 万元" in details
    caption, details = (report_text.to_plain(part) for part in report_text.render("top", "en", d))
    assert ("Biggest increases: 样本电子乙 +125.00 mn; 样本电子甲 +125.00 mn\n"
            "Biggest decreases: 样本银行乙 -0.53 mn\n") in caption
    assert "1. 样本银行乙 (000002) -0.53 mn (-1.05%), balance 50.00 mn" in details
    assert "1. 样本电子乙 (000001) +125.00 mn (+5.26%), balance 2.50 bn" in details


def test_a_stock_report_prints_each_figure_in_its_unit(small: Engine) -> None:
    """600001 on LAST: 2.5e9, +25e6 on the day, +125e6 over 5 days (on 2.375e9: +5.26%), +500e6 over
    20 (on 2e9: +25.00%), 1e8 bought. A stock whose figures are all under 1 亿元 reads in 万元 / mn."""
    d = dict(data(small, "stock", code="600001"))
    lines = report_text.to_plain(report_text.render("stock", "zh", d)[0]).splitlines()
    assert lines[:3] == ["样本电子甲（600001）融资余额 25.00 亿元 ▲ 较上日 +2,500.00 万元",
                         "近5日 +1.25 亿元（+5.26%）· 近20日 +5.00 亿元（+25.00%）",
                         "融资买入额 1.00 亿元 · 融券余量 1,000 股"]
    d.update(rzye=6e7, change_1d=-3e5, change_5d=4e5, change_5d_pct=0.67, change_20d=1.2e6, change_20d_pct=2.04,
             rzmre=5e6, rqye=2e5, rqye_estimated=False)
    lines = report_text.to_plain(report_text.render("stock", "zh", d)[0]).splitlines()
    assert lines[:3] == ["样本电子甲（600001）融资余额 6,000.00 万元 ▼ 较上日 -30.00 万元",
                         "近5日 +40.00 万元（+0.67%）· 近20日 +120.00 万元（+2.04%）",
                         "融资买入额 500.00 万元 · 融券余量 1,000 股 · 融券余额 20.00 万元"]
    lines = report_text.to_plain(report_text.render("stock", "en", d)[0]).splitlines()
    assert lines[:3] == ["样本电子甲 (600001) financing balance 60.00 mn ▼ -0.30 mn on the day",
                         "5 days +0.40 mn (+0.67%) · 20 days +1.20 mn (+2.04%)",
                         "Financing purchases 5.00 mn · shares lent 1,000 · securities-lending balance 0.20 mn"]


def test_a_report_of_some_securities_names_their_exchanges(small_rw: Engine) -> None:
    """BRIEF: every report names its scope. A stock's is the exchange it trades on (600001 Shanghai,
    000001 Shenzhen, 830001 Beijing), not the market's three; a ranking's, the exchanges of the stocks
    it ranks: 电子 holds 600001 and 000001, 医药生物 600003 and 830001. The sector reports, read from
    the pre-aggregated sector table (never from per-stock rows), keep the market's."""
    service = service_for(small_rw)
    scope = {c: service.render("stock", code=c, chart=False).data["scope"] for c in ("600001", "000001", "830001")}
    assert scope == {"600001": ["SSE"], "000001": ["SZSE"], "830001": ["BSE"]}
    assert data(small_rw, "top", code="电子")["scope"] == ["SSE", "SZSE"]
    assert data(small_rw, "top", code="医药生物")["scope"] == ["SSE", "BSE"]
    assert data(small_rw, "sectors", code="电子")["scope"] == SCOPE
    assert data(small_rw, "top")["scope"] == data(small_rw, "sectors")["scope"] == SCOPE
    footer = report_text.to_plain(service.render("stock", code="830001", lang="zh", chart=False).caption)
    assert footer.splitlines()[-1] == f"数据日期 {LAST} · 图表区间 60 日（有数据 30 日） · 范围 北交所"
    with session_scope(small_rw) as session:
        session.execute(delete(models.StockMargin).where(models.StockMargin.trade_date == LAST,
                                                         models.StockMargin.exchange == "BSE"))
        rebuild_sector_daily(session, [LAST])
        bump_data_version(session)
    assert data(small_rw, "top")["scope"] == ["SSE", "SZSE"]  # without Beijing's detail on the day
    assert data(small_rw, "balance")["scope"] == SCOPE


def test_arrows_follow_the_figure_as_printed() -> None:
    """A change that prints 0.00 is neither up nor down; a stock's change is judged in 万元 / mn."""
    assert fmt.money_arrow(4e5, "zh") == "•" and fmt.money_arrow(-6e5, "zh") == "▼"  # -0.01 亿元
    assert fmt.money_arrow(4e6, "en") == "•" and fmt.money_arrow(6e6, "en") == "▲"  # 0.01 bn
    assert fmt.security_arrow(4e5, "zh") == "▲" and fmt.security_arrow(40.0, "zh") == "•"  # 40.00 / 0.00 万元
    assert fmt.money_arrow(None, "zh") == fmt.money_arrow(float("nan"), "en") == "•"


@pytest.mark.parametrize(("pace_class", "direction", "zh", "en"), [
    ("steady", "up", "节奏平稳", "steady pace"),
    ("faster", "down", "下降加快", "falling fast"),
    ("sharp", "up", "急剧增长", "rising very fast"),
    ("sharp", None, "急剧变化", "moving very fast"),
    ("unknown", None, "节奏未知", "pace unknown"),
])
def test_the_pace_says_which_way(pace_class: str, direction: str | None, zh: str, en: str) -> None:
    assert fmt.pace(pace_class, direction, "zh") == zh and fmt.pace(pace_class, direction, "en") == en


def test_colours_follow_the_reader() -> None:
    red, green = "#d62728", "#2ca02c"
    assert fmt.up_down_colors("zh") == (red, green)  # 红涨绿跌
    assert fmt.up_down_colors("en") == (green, red)
    assert charts._bar_colors([1.0, 0.0, -1.0], "zh") == [red, red, green]
    assert charts._bar_colors([1.0, -1.0], "en") == [green, red]


def test_html_escape_helper_agrees_with_jinja() -> None:
    # the templates rely on Jinja2 autoescape; visible_length must count the decoded text
    caption = html.escape("<b>x</b>&", quote=False)
    assert report_text.visible_length(f"<b>{caption}</b>") == len("<b>x</b>&")


def test_session_row_count_of_demo(demo: Engine) -> None:
    """The shared demo database is the seeded one (guards the cached copy)."""
    with Session(demo) as session:
        days = session.execute(text("select count(distinct trade_date) from margin_summary")).scalar()
        stocks = session.execute(text("select count(distinct code) from stock_margin")).scalar()
        demo_flag = session.execute(text("select value from dataset_meta where key = 'demo'")).scalar()
    # storage.demo's calendar: 1,015 weekdays from 2023-01-02 to 2026-11-20, less 67 weekday holidays
    # (2023: 18, 2024: 17, 2025: 16, 2026: 16; see tests/test_demo.py)
    assert days == DEMO_TRADE_DAYS
    assert stocks == 540  # storage.demo's universe, ETFs included: 511,920 stock rows = 540 x 948
    assert demo_flag == "true"


def test_watch_lines_go_under_a_caption_only_whole() -> None:
    """The watch list goes under the push's caption when all of it fits in 1,024 visible characters
    (tags do not count); otherwise not at all (the push sends it as a message of its own)."""
    block = "<b>⭐ 关注</b>\n" + "\n".join(f"样本{i}（{600000 + i}）融资余额 {'9' * 40}" for i in range(10))
    room = report_text.CAPTION_LIMIT - report_text.visible_length(block) - 2  # the blank line between
    caption = "<b>两融雷达</b>\n" + "x" * (room - len("两融雷达\n"))
    assert report_text.caption_with(caption, block) == f"{caption}\n\n{block}"
    assert report_text.caption_with(caption + "x", block) is None


def test_summary_names_why_it_has_no_sectors_early_in_the_history(demo: Engine) -> None:
    """Ten trade days into the demo history there is per-stock detail, but not the 20 days a sector
    shift needs: the summary says that, not that the detail is missing."""
    ms = models.MarginSummary
    with Session(demo) as session:
        tenth = session.execute(
            select(ms.trade_date).distinct().order_by(ms.trade_date).offset(9).limit(1)).scalar_one()
    service = ReportService(demo)
    for lang, line in (("zh", "行业：个股明细不足20个交易日，暂无行业变化。"),
                       ("en", "Sectors: fewer than 20 trading days of per-stock detail:"
                              " sector changes not available yet.")):
        report = service.render("summary", on=tenth, lang=lang, chart=False)
        assert report.data["sectors"] is None and report.data["sectors_missing"] == "not_enough_history"
        assert line in report.caption.splitlines()


def test_a_caption_too_long_gives_its_last_lines_to_the_details(
        demo_reports: Callable[[str, str], RenderedReport]) -> None:
    """Many warnings and every sector bottoming at once (never seen in the data, but names come from
    imports): the English signals caption would pass 1,024 characters. Its lines above the footer move,
    whole, to the top of the details, plain lines before warnings; the headline and the footer stay."""
    from storage.industries import industry_name_rows

    d = dict(demo_reports("signals", "en").data)
    d.update(crowding=True, crowding_days=12, deleveraging=False, amplification_corr=0.62, pace_class="sharp",
             warnings=["pace_sharp", "crowding", "amplification", "spikes"],
             bottoming=[{"code": r["sw_l1_code"], "name": r["name_zh"], "name_en": r["name_en"]}
                        for r in industry_name_rows()])
    caption, details = report_text.render("signals", "en", d)
    lines = caption.splitlines()
    assert report_text.visible_length(caption) <= report_text.CAPTION_LIMIT
    assert lines[0].startswith("<b>Margin signals</b>") and lines[-1].startswith("<i>Data date")
    assert lines[-2].startswith("💡 Money ahead of price (a sector bottoming signal): Agriculture")
    assert "Financing spikes" not in caption
    # moved, whole, to the top: the plain line first (amplification, not flagged: amplifying is False),
    # then the last warning
    assert details.splitlines()[0].startswith("Amplification: 60-day correlation")
    assert details.splitlines()[1].startswith("⚠️ Financing spikes in 29 stocks ")
    assert details.splitlines()[2] == ""
    assert all(r["name_en"] in report_text.to_plain(caption) for r in industry_name_rows())
    assert_telegram_html(caption)
    assert_telegram_html(details)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_crowding_in_signals_carries_the_ratio_notes(
        demo_reports: Callable[[str, str], RenderedReport], lang: str) -> None:
    """The ratio in the crowding line is marked "*" where it leaves out 融券卖出额 or BSE's turnover,
    and the 口径 says why, as /ratio does."""
    d = dict(demo_reports("signals", lang).data)
    d.update(crowding=True, crowding_days=6, rqmce_included=False, turnover_missing=["BSE"])
    caption, details = report_text.render("signals", lang, d)
    crowding = next(line for line in caption.splitlines() if line.startswith("⚠️"))
    assert re.search(r"\d\.\d\d%\*[,，]", crowding), crowding
    notes = {"zh": ["* 该日融券卖出额未知", "* 北交所没有成交额数据，占比略偏高"],
             "en": ["* Short-sale value unknown", "* Beijing publishes no turnover"]}[lang]
    assert all(note in details for note in notes)
    d.update(crowding=False)
    assert notes[0] not in report_text.render("signals", lang, d)[1]


def test_a_caption_too_long_keeps_its_notes_and_gives_lines_in_order() -> None:
    """The 口径 notes (<i> lines) qualify a figure marked in the caption: they stay while any other
    line can go, and warnings while any plain line can; the lines that go keep their order at the
    top of the details."""
    headline, footer = "<b>Headline</b>", "<i>Data date 2026-11-20</i>"
    body = [f"line {n} " + "x" * 190 for n in range(1, 7)]  # 6 x 197 characters
    note = "<i>* short-sale value unknown: purchases only</i>"
    caption, details = report_text.fit_telegram("\n".join([headline, *body, note, footer]), "the details")
    assert caption.splitlines() == [headline, *body[:4], note, footer]
    assert report_text.visible_length(caption) <= report_text.CAPTION_LIMIT
    assert details.splitlines() == [body[4], body[5], "", "the details"]
    # notes go too, last, where the other lines alone cannot make room
    notes = [f"<i>note {n} " + "y" * 300 + "</i>" for n in range(1, 5)]
    caption, details = report_text.fit_telegram("\n".join([headline, "figures", *notes, footer]), "")
    assert caption.splitlines() == [headline, *notes[:3], footer]
    assert details.splitlines() == ["figures", notes[3]]
    # a note on a figure marked "*" follows that figure's line; an unmarked note stays
    marked, other = "<i>* without short sales</i>", "<i>turnover: index amounts</i>"
    caption, details = report_text.fit_telegram(
        "\n".join([headline, *body, "share 8.97%*", marked, other, footer]), "")
    assert caption.splitlines() == [headline, *body[:4], other, footer]
    assert details.splitlines() == [body[4], body[5], "share 8.97%*", marked]
    # a warning or a signal (⚠️, 💡: what the read-out is for) stays while a plain line above it can go
    warning, signal = "⚠️ spikes " + "z" * 190, "💡 bottoming " + "b" * 190
    caption, details = report_text.fit_telegram("\n".join([headline, *body[:4], warning, signal, footer]), "")
    assert caption.splitlines() == [headline, *body[:2], warning, signal, footer]
    assert details.splitlines() == [body[2], body[3]]


@pytest.mark.parametrize("kind", ["balance", "ratio", "stock"])
def test_a_window_longer_than_the_history_says_how_much_it_shows(demo: Engine, kind: str) -> None:
    """2,500 trade days asked of a demo history of 948 (2023-01-02 .. 2026-11-20): the chart shows what
    there is, and the footer says so (the dates with data: 948); a window the history covers says
    nothing more."""
    service = ReportService(demo)
    code = sample_stock(demo) if kind == "stock" else None
    if code is not None:  # the sample stock has a row on every demo trade date
        with Session(demo) as session:
            rows = session.execute(text("select count(*) from stock_margin where code = :code"),
                                   {"code": code}).scalar()
        assert rows == DEMO_TRADE_DAYS
    long = service.render(kind, code=code, days=2500, lang="zh", chart=False)
    shown = long.data["days_shown"]
    assert shown == DEMO_TRADE_DAYS
    assert f"图表区间 2500 日（有数据 {shown} 日）" in long.caption
    short = service.render(kind, code=code, days=20, lang="en", chart=False)
    assert short.data["days_shown"] == 20 and "with data" not in short.caption


def test_identical_renders_at_once_render_once(small: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four threads ask for the same uncached report at once: one builds it, the others wait for it
    and get the same object; the lock of a key lives only while the key is being rendered."""
    import threading

    from reports import service as service_module

    service = ReportService(small)  # a service of its own: nothing cached yet
    built: list[str] = []
    release = threading.Event()
    real_build = service_module.build

    def build(*args: Any, **kwargs: Any) -> Any:
        built.append(args[1])
        assert release.wait(10)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(service_module, "build", build)
    results: list[RenderedReport] = []
    threads = [threading.Thread(target=lambda: results.append(service.render("balance", chart=False)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    def held() -> list[int]:
        return sorted(entry[1] for entry in service._key_locks.values())

    for _ in range(1000):  # until all four hold or wait for the one key's lock (and one builds its figures)
        if held() == [1, 4]:
            break
        threading.Event().wait(0.01)
    assert held() == [1, 4]
    release.set()
    for thread in threads:
        thread.join(10)
    assert built == ["balance"] and len(results) == 4 and all(r is results[0] for r in results)
    assert service._key_locks == {}


@pytest.mark.parametrize(("percentile", "band"), [(19.0, None), (10.0, "low"), (3.0, "low"), (50.0, None),
                                                  (85.0, None), (90.0, "high"), (float("nan"), None)])
def test_the_ratio_reads_high_or_low_only_outside_the_band_its_chart_draws(percentile: float,
                                                                           band: str | None) -> None:
    """The ratio chart shades the 10th-90th percentile band: a 19th percentile, inside it, is not
    "running low" in the text."""
    from reports.figures.common import _band

    assert _band(percentile) == band


@pytest.mark.parametrize(("extreme", "zh", "en"), [
    ("lowest", "余额处于近三年最低", "The balance stands at the lowest over the past 3 years"),
    ("highest", "余额处于近三年最高", "The balance stands at the highest over the past 3 years"),
    (None, "余额处于近三年 95% 分位", "The balance stands at the 95th percentile over the past 3 years")])
def test_a_percentile_at_the_end_of_its_span_says_highest_or_lowest(
        demo_reports: Callable[[str, str], RenderedReport], extreme: str | None, zh: str, en: str) -> None:
    """A 3-year low is "近三年最低", not "0% 分位" (1 of 750 rounds to 0): the reports say which end."""
    for lang, line in (("zh", zh), ("en", en)):
        data = dict(demo_reports("balance", lang).data, percentile_extreme=extreme)
        assert line in report_text.to_plain(report_text.render("balance", lang, data)[0]), lang


def test_a_top5_change_that_prints_as_zero_contradicts_nothing() -> None:
    """HHI down 3 points with the top-5 share +0.001 points (printed +0.00): more balanced, not "the
    two measures disagree" beside a change of 0.00; +0.01 does disagree."""
    from reports.figures.sectors import _concentration_trend

    assert _concentration_trend(-3.0, 0.001) == "balanced"
    assert _concentration_trend(-3.0, 0.01) == "mixed"
    assert _concentration_trend(3.0, -0.004) == "concentrating"
