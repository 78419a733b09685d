"""Ingestion through akshare's own parsing code, fed recorded answers in the upstream wire formats.

`responses` stands in for the network: every answer is built per request from one consistent
sample market (tests/upstream_payloads.py); a request that matches nothing fails the test. The
trading calendar (a JS runtime upstream) is stubbed at the akshare function. Each test runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs

import akshare
import pandas as pd
import pytest
import requests
import responses
from sqlalchemy import Engine, func, select, text, update
from sqlmodel import Session

from marginbot.settings import Settings, load_settings
from storage import history, ingest, ingest_status, models, queries
from storage.database import data_version, get_meta, session_scope, set_meta
from storage.industries import is_fund_code
from storage.ingest import latest_complete_date, missing_steps, run_ingest
from storage.plausibility import check_detail_against_summary
from storage.sources import Sources
from storage.sources import csi300_members as fetch_csi300
from storage.sources import market_account_history as fetch_account_history
from storage.sources import sse_detail as fetch_sse_detail
from storage.sources import sse_summary as fetch_sse_summary
from storage.sources import szse_summary as fetch_szse_summary
from storage.upstream import CallPolicy, NotPublished, UpstreamError, ValidationFailed, upstream_timeout
from tests import upstream_payloads as up

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

SSE_URL = "https://query.sse.com.cn/marketdata/tradedata/queryMargin.do"
SZSE_SUMMARY_URL = "https://www.szse.cn/api/report/ShowReport/data"
SZSE_DETAIL_URL = "https://www.szse.cn/api/report/ShowReport"
BSE_SUMMARY_URL = "https://www.bse.cn/rzrqjyyexxController/summaryInfoResult.do"
BSE_DETAIL_URL = "https://www.bse.cn/rzrqjyyexxController/detailInfoResult.do"
EM_DATACENTER_URL = "https://datacenter-web.eastmoney.com/api/data/v1/get"
EM_KLINE_URL = "https://push2his.eastmoney.com/api/qt/stock/kline/get"
SW_INDEX_URL = "https://www.swsresearch.com/institute-sw/api/index_publish/trend/"
SW_CLASS_URL = "https://www.swsresearch.com/swindex/pdf/SwClass2021/StockClassifyUse_stock.xls"
SSE_DEAL_URL = "https://query.sse.com.cn/commonQuery.do"
SZSE_OVERVIEW_URL = "http://www.szse.cn/api/report/ShowReport"  # akshare asks over http, the detail over https
CSI300_URL = "https://oss-ch.csindex.com.cn/static/html/csindex/public/uploads/file/autofile/cons/000300cons.xls"
A_SHARE_QUOTES_URL = "https://82.push2.eastmoney.com/api/qt/clist/get"
FUND_QUOTES_URL = "https://push2delay.eastmoney.com/api/qt/clist/get"

D0, D1, D2 = date(2024, 4, 9), date(2024, 4, 10), date(2024, 4, 11)
TODAY = date(2024, 4, 12)  # D2 is published on the morning of the next day
DATA_TABLES = ("margin_summary", "stock_margin", "turnover", "index_daily", "industry_class", "industry_name",
               "sector_daily", "trading_day", "index_member", "dataset_meta")
CSI300_AS_OF = date(2023, 12, 11)  # the file's date: the day after the December review took effect
Reply = tuple[int, dict[str, str], str | bytes]


# --- the sample market -------------------------------------------------------------------------------


def sample_market() -> dict[tuple[str, date], up.ExchangeDay]:
    """Three days of SSE, SZSE (2024-04-11 is SZSE's own doc sample) and BSE, balances that chain."""
    m: dict[tuple[str, date], up.ExchangeDay] = {}
    rzye = 795_123_456_789
    for day, rzmre, rzche, rqye, rqyl, rqmcl in [
        (D0, 39_876_001_234, 39_500_000_000, 9_512_345_678, 1_301_234_567, 48_765_432),
        (D1, 40_112_345_678, 39_876_543_210, 9_498_765_432, 1_299_876_543, 51_234_567),
        (D2, 41_234_567_890, 42_345_678_901, 9_476_543_210, 1_297_654_321, 49_876_543),
    ]:
        rzye = rzye if day == D0 else rzye + rzmre - rzche
        m["SSE", day] = up.exchange_day("SSE", day, rzye, rzmre, rzche, rqye, rqyl, rqmcl)
    # SZSE in whole 亿 hundredths, as published: 7,068.12 亿元 is 706,812,000,000 元.
    for day, rzye, rzmre, rqye, rqyl, rqmcl in [
        (D0, 706_055_000_000, 30_512_000_000, 15_880_000_000, 2_461_000_000, 30_000_000),
        (D1, 706_812_000_000, 31_845_000_000, 15_802_000_000, 2_451_000_000, 31_000_000),
        (D2, 707_767_000_000, 32_108_000_000, 15_730_000_000, 2_434_000_000, 28_000_000),
    ]:
        m["SZSE", day] = up.exchange_day("SZSE", day, rzye, rzmre, 0, rqye, rqyl, rqmcl)
    for day, rzye, rzmre, rqye, rqyl, rqmcl in [
        (D0, 5_478_000_000, 201_000_000, 118_000, 14_800, 1_900),
        (D1, 5_501_000_000, 210_000_000, 120_000, 15_000, 2_000),
        (D2, 5_534_000_000, 235_000_000, 130_000, 16_000, 2_500),
    ]:
        m["BSE", day] = up.exchange_day("BSE", day, rzye, rzmre, 0, rqye, rqyl, rqmcl)
    return m


def szse_summary_of(d: up.ExchangeDay) -> up.SzseSummary:
    return up.SzseSummary(up.yi(d.rzmre), up.yi(d.rzye), up.yi(d.rqmcl), up.yi(d.rqyl), up.yi(d.rqye),
                          up.yi(d.rzrqye))


def bse_summary_of(d: up.ExchangeDay) -> up.BseSummary:
    return up.BseSummary(d.rzmre / 1e4, d.rzye / 1e4, d.rqmcl / 1e4, d.rqyl / 1e4, d.rqye / 1e4)


def sse_summary_of(d: up.ExchangeDay) -> up.SseSummary:
    return up.SseSummary(d.day, d.rzye, d.rzmre, d.rzche, d.rqyl, d.rqye, d.rqmcl)


ACCOUNT = [up.AccountDay(D0, 15_086.57, 254.10, 706.01, 9.88), up.AccountDay(D1, 15_101.25, 253.21, 722.05, 10.12),
           up.AccountDay(D2, 15_090.82, 252.37, 736.78, 9.53)]
INDEX_BARS = {
    "sh000001": [up.Bar(D0, 3044.20, 3048.54, 3059.11, 3037.62, 342_156_789, 356_712_345_678.0),
                 up.Bar(D1, 3046.32, 3027.34, 3050.12, 3023.07, 331_254_321, 341_056_789_012.0),
                 up.Bar(D2, 3027.06, 3034.25, 3049.51, 3018.04, 318_765_432, 328_912_345_678.0)],
    "sz399001": [up.Bar(D0, 9369.01, 9344.11, 9412.58, 9311.40, 402_345_678, 509_876_543_210.0),
                 up.Bar(D1, 9340.21, 9244.66, 9359.87, 9231.53, 391_234_567, 488_123_456_789.0),
                 up.Bar(D2, 9240.77, 9276.37, 9318.26, 9201.39, 377_654_321, 467_345_678_901.0)],
}


# Official turnover: SSE in 亿元 per product; SZSE's 主板A股 and 创业板A股 in 元 with cents.
SSE_DEALS = {D0: up.SseDeal(D0, 3012.45, 1.02, 412.33, 0.05), D1: up.SseDeal(D1, 2987.61, 0.98, 398.07),
             D2: up.SseDeal(D2, 2876.54, 0.91, 387.29, 0.12)}
SZSE_BOARDS = {D0: (301_234_567_890.12, 195_678_901_234.56), D1: (289_012_345_678.90, 188_765_432_109.87),
               D2: (276_543_210_987.65, 181_234_567_890.12)}
# What is stored: SSE (主板A + 科创板) x 1e8, SZSE 主板A股 + 创业板A股.
SSE_A_SHARES = {D1: 338_568_000_000.0, D2: 326_383_000_000.0}
SZSE_A_SHARES = {D1: 477_777_777_788.77, D2: 457_777_778_877.77}


def sw_bars(symbol: str) -> list[up.Bar]:
    base = 1000 + int(symbol[-3:]) * 3.1
    return [up.Bar(day, base, base + i * 4.5, base + 20, base - 20, 1_234_567, 9_876_543_210.0)
            for i, day in enumerate((D0, D1, D2))]


def calendar_days() -> list[date]:
    days, day = [], date(2023, 4, 3)
    while day <= date(2024, 6, 28):
        if day.weekday() < 5 and day not in (date(2024, 4, 4), date(2024, 4, 5)):
            days.append(day)
        day += timedelta(days=1)
    return days


# --- the fake upstream -------------------------------------------------------------------------------


class FakeUpstream:
    """Answers every upstream URL from the sample market; `override[(source, day)]` replaces one answer."""

    def __init__(self, rsps: responses.RequestsMock, market: dict[tuple[str, date], up.ExchangeDay]) -> None:
        self.market = market
        self.override: dict[tuple[str, date | None], Callable[[], Reply]] = {}
        self.csi300: tuple[list[up.Constituent], date | None] = (up.csi300_members(), CSI300_AS_OF)
        self.asked: list[tuple[str, date | None]] = []
        self.calendar_calls = 0
        # No network: every answer (`down`), or the calendar's, raises this instead.
        self.down: Exception | None = None
        self.calendar_down: Exception | None = None
        # What Eastmoney's quotes hold when asked (TODAY): "preopen" (D2's closes in 最新价, D1's in
        # 昨收), "session" (live prices, D2's closes in 昨收) or "later" (a later day's: neither is D2's).
        self.quote_time = "preopen"
        for method, url, callback, content_type in [
            (responses.GET, SSE_URL, self._sse, JSON),
            (responses.GET, SZSE_SUMMARY_URL, self._szse_summary, JSON),
            (responses.GET, SZSE_DETAIL_URL, self._szse_detail, XLSX),
            (responses.GET, BSE_SUMMARY_URL, self._bse_summary, JSONP),
            (responses.POST, BSE_DETAIL_URL, self._bse_detail, JSONP),
            (responses.GET, EM_DATACENTER_URL, self._account, JSON),
            (responses.GET, EM_KLINE_URL, self._kline, JSON),
            (responses.GET, SW_INDEX_URL, self._sw_index, JSON),
            (responses.GET, SW_CLASS_URL, self._sw_class, "application/vnd.ms-excel"),
            (responses.GET, CSI300_URL, self._csi300, "application/vnd.ms-excel"),
            (responses.GET, SSE_DEAL_URL, self._sse_deal, JSON),
            (responses.GET, SZSE_OVERVIEW_URL, self._szse_overview, XLSX),
            (responses.GET, A_SHARE_QUOTES_URL, self._a_share_quotes, JSON),
            (responses.GET, FUND_QUOTES_URL, self._fund_quotes, JSON),
        ]:
            rsps.add_callback(method, url, callback=callback, content_type=content_type)

    def calendar(self) -> pd.DataFrame:
        self.calendar_calls += 1
        if self.calendar_down is not None:
            raise self.calendar_down
        return pd.DataFrame({"trade_date": calendar_days()})

    def _answer(self, source: str, day: date | None, build: Callable[[], Reply]) -> Reply:
        self.asked.append((source, day))
        if self.down is not None:
            raise self.down
        if (source, day) in self.override:
            return self.override[(source, day)]()
        return build()

    def sse_summary_rows(self, begin: date, end: date) -> list[up.SseSummary]:
        return [sse_summary_of(d) for (ex, day), d in self.market.items() if ex == "SSE" and begin <= day <= end]

    def _sse(self, request: Any) -> Reply:
        p = request.params
        if p.get("tabType") == "mxtype":
            day = _ymd(p["detailsDate"])
            d = self.market.get(("SSE", day))
            return self._answer("sse_detail", day, lambda: (200, {}, up.sse_detail_json(day, d.detail if d else [])))
        begin, end = _ymd(p["beginDate"]), _ymd(p["endDate"])
        return self._answer("sse_summary", end,
                            lambda: (200, {}, up.sse_summary_json(self.sse_summary_rows(begin, end))))

    def _szse_summary(self, request: Any) -> Reply:
        day = date.fromisoformat(request.params["txtDate"])
        d = self.market.get(("SZSE", day))
        return self._answer("szse_summary", day,
                            lambda: (200, {}, up.szse_summary_json(day, szse_summary_of(d) if d else None)))

    def _szse_detail(self, request: Any) -> Reply:
        day = date.fromisoformat(request.params["txtDate"])
        d = self.market.get(("SZSE", day))
        return self._answer("szse_detail", day, lambda: (200, {}, up.szse_detail_xlsx(d.detail if d else [])))

    def _bse_summary(self, request: Any) -> Reply:
        day = date.fromisoformat(request.params["transDate"])
        d = self.market.get(("BSE", day))
        return self._answer("bse_summary", day,
                            lambda: (200, {}, up.bse_summary_jsonp(day, bse_summary_of(d) if d else None)))

    def _bse_detail(self, request: Any) -> Reply:
        form = parse_qs(request.body)
        day, page = date.fromisoformat(form["transDate"][0]), int(form["page"][0])
        d = self.market.get(("BSE", day))
        rows = d.detail if d else []
        size = 5  # several pages: akshare follows totalPages
        pages = max(1, -(-len(rows) // size))
        chunk = rows[page * size:(page + 1) * size]
        return self._answer("bse_detail", day, lambda: (200, {}, up.bse_detail_jsonp(day, chunk, page, pages)))

    def _sse_deal(self, request: Any) -> Reply:
        day = date.fromisoformat(request.params["SEARCH_DATE"])
        return self._answer("sse_turnover", day, lambda: (200, {}, up.sse_deal_daily_json(SSE_DEALS.get(day))))

    def _szse_overview(self, request: Any) -> Reply:
        day = date.fromisoformat(request.params["txtQueryDate"])
        rows = up.szse_overview_rows(*SZSE_BOARDS[day]) if day in SZSE_BOARDS else []
        return self._answer("szse_turnover", day, lambda: (200, {}, up.szse_overview_xlsx(rows)))

    def _account(self, request: Any) -> Reply:
        page = int(request.params["pageNumber"])
        size = 2  # several pages: akshare reads `pages` first, then every page
        rows = sorted(ACCOUNT, key=lambda r: r.day, reverse=True)
        pages = -(-len(rows) // size)
        return self._answer("em_account", None,
                            lambda: (200, {}, up.eastmoney_account_json(rows[(page - 1) * size:page * size], pages)))

    def _kline(self, request: Any) -> Reply:
        secid = request.params["secid"]
        symbol = {"1.000001": "sh000001", "0.399001": "sz399001"}[secid]
        name = {"sh000001": "上证指数", "sz399001": "深证成指"}[symbol]
        return self._answer(f"index_{symbol}", None, lambda: (
            200, {}, up.em_kline_json(symbol[2:], int(secid[0]), name, INDEX_BARS[symbol])))

    def _sw_index(self, request: Any) -> Reply:
        symbol = request.params["swindexcode"]
        return self._answer("sw_index", None, lambda: (200, {}, up.sw_index_json(symbol, sw_bars(symbol))))

    def _sw_class(self, request: Any) -> Reply:
        return self._answer("sw_class", None, lambda: (200, {}, up.sw_class_xls(up.sw_classes())))

    def closes(self, day: date) -> dict[str, float]:
        """Each security's close on `day`: for SZSE the one its detail implies (融券余额 / 融券余量,
        as SZSE values lending); for SSE within 2% of its summary's 融券余额 / 融券余量, so that the
        lending valued at them adds up to the summary's; for BSE a price of its own."""
        out: dict[str, float] = {}
        sse = self.market["SSE", day]
        for exchange in ("SSE", "SZSE", "BSE"):
            for i, r in enumerate(self.market[exchange, day].detail):
                if exchange == "SZSE":
                    out[r.code] = r.rqye / r.rqyl  # type: ignore[union-attr]
                elif exchange == "SSE":
                    out[r.code] = round(sse.rqye / sse.rqyl * (1 + 0.02 * (i % 3 - 1)), 2)
                else:
                    out[r.code] = round(3 + i * 1.37 + day.day * 0.01, 2)
        return out

    def quotes(self) -> list[up.Quote]:
        d2, d1 = self.closes(D2), self.closes(D1)
        last, prev = {"preopen": (d2, d1), "session": ({c: v * 1.013 for c, v in d2.items()}, d2),
                      "later": ({c: v * 1.02 for c, v in d2.items()}, {c: v * 1.011 for c, v in d2.items()})
                      }[self.quote_time]
        return [up.Quote(code, f"样本{code}", round(last[code], 4), round(prev[code], 4)) for code in sorted(d2)]

    def _a_share_quotes(self, request: Any) -> Reply:
        rows = [q for q in self.quotes() if not is_fund_code(q.code)]
        return self._answer("stock_quotes", None, lambda: (200, {}, up.em_quote_list_json(rows, up.A_SHARE_FIELDS, D2)))

    def _fund_quotes(self, request: Any) -> Reply:
        rows = [q for q in self.quotes() if is_fund_code(q.code)]
        return self._answer("fund_quotes", None, lambda: (200, {}, up.em_quote_list_json(rows, up.FUND_FIELDS, D2)))

    def _csi300(self, request: Any) -> Reply:
        return self._answer("csi300", None, lambda: (200, {}, up.csindex_cons_xls(*self.csi300)))


JSON = "application/json;charset=UTF-8"
JSONP = "text/javascript;charset=UTF-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _ymd(text_: str) -> date:
    return date(int(text_[:4]), int(text_[4:6]), int(text_[6:]))


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """`responses` in front of every request; one that matches no registered answer fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        stray = [str(c.request.url) for c in mock.calls
                 if isinstance(c.response, requests.ConnectionError) and "Connection refused by Responses" in str(
                     c.response)]
        assert not stray, f"unregistered requests: {stray}"


@pytest.fixture
def fake(rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    upstream = FakeUpstream(rsps, sample_market())
    monkeypatch.setattr(akshare, "tool_trade_date_hist_sina", upstream.calendar)
    return upstream


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return load_settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", upstream_timeout_seconds=7.5,
                         upstream_retries=2)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fetchers(settings: Settings, sleeps: list[float]) -> Sources:
    return Sources.from_settings(settings, sleep=sleeps.append)


def ingest_run(engine: Engine, settings: Settings, fetchers: Sources, **kwargs: Any) -> ingest.IngestResult:
    kwargs.setdefault("today", TODAY)
    return run_ingest(engine, settings, progress=False, fetchers=fetchers, **kwargs)


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every data table (ids included), in a comparable form."""
    out = {}
    with engine.connect() as conn:
        for table in DATA_TABLES:
            out[table] = sorted(repr(sorted(dict(r).items()))
                                for r in conn.execute(text(f"SELECT * FROM {table}")).mappings())
    return out


def pingan_estimated(session: Session) -> bool:
    return stock_row(session, D2, "000001").rqye_estimated


def summary_row(session: Session, day: date, exchange: str) -> models.MarginSummary:
    ms = models.MarginSummary
    return session.execute(select(ms).where(ms.trade_date == day, ms.exchange == exchange)).scalar_one()


def stock_row(session: Session, day: date, code: str) -> models.StockMargin:
    sm = models.StockMargin
    return session.execute(select(sm).where(sm.trade_date == day, sm.code == code)).scalar_one()


def status_of(engine: Engine, day: date, source: str) -> models.IngestStatus:
    st = models.IngestStatus
    with Session(engine) as session:
        return session.execute(select(st).where(st.trade_date == day, st.source == source)).scalar_one()


# --- single sources ----------------------------------------------------------------------------------


def test_sse_summary_parses_the_real_2023_04_19_row_and_derives_rzche(rsps: responses.RequestsMock) -> None:
    # The real row of 2023-04-19; 04-18's balance follows from rzye(T-1) = rzye - rzmre + rzche.
    real = up.SseSummary(date(2023, 4, 19), 805_311_386_298, 44_363_451_113, 43_960_611_127, 6_653_688_732,
                         63_492_538_974, 639_965_435)
    before = up.SseSummary(date(2023, 4, 18), 805_311_386_298 - 44_363_451_113 + 43_960_611_127, 43_100_000_000,
                           42_800_000_000, 6_650_000_000, 63_400_000_000, 612_345_678)
    rsps.add(responses.GET, SSE_URL, body=up.sse_summary_json([real, before]))
    frame = fetch_sse_summary(date(2023, 4, 18), date(2023, 4, 19), policy=CallPolicy(timeout=4.0, retries=0))
    row = frame[frame["trade_date"] == date(2023, 4, 19)].iloc[0]
    assert row["rzye"] == 805_311_386_298
    assert row["rzmre"] == 44_363_451_113
    assert row["rqye"] == 63_492_538_974  # SSE's rqylje is the 融券余额 in 元
    assert row["rqyl"] == 6_653_688_732 and row["rqmcl"] == 639_965_435
    assert row["rzrqye"] == 805_311_386_298 + 63_492_538_974
    assert row["rzche"] == 43_960_611_127 and bool(row["rzche_derived"])
    assert list(frame["trade_date"]) == [date(2023, 4, 18), date(2023, 4, 19)]  # oldest first
    first = frame.iloc[0]
    assert pd.isna(first["rzche"]) and not first["rzche_derived"]  # no 04-17 to derive from
    request = rsps.calls[0].request
    assert request.params["beginDate"] == "20230418" and request.params["endDate"] == "20230419"
    assert request.req_kwargs["timeout"] == 4.0  # the project's timeout reached the socket layer


def test_szse_summary_converts_yi_to_yuan(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, SZSE_SUMMARY_URL, body=up.szse_summary_json(
        D2, up.SzseSummary("321.08", "7,077.67", "0.28", "24.34", "157.3", "7,234.97")))
    row = fetch_szse_summary(D2, policy=CallPolicy(retries=0)).iloc[0]
    assert row["rzye"] == 707_767_000_000 and row["rzmre"] == 32_108_000_000
    assert row["rqye"] == 15_730_000_000 and row["rzrqye"] == 723_497_000_000
    assert row["rqyl"] == 2_434_000_000 and row["rqmcl"] == 28_000_000
    assert rsps.calls[0].request.params["txtDate"] == "2024-04-11"


def test_szse_summary_of_an_unpublished_day_is_not_published(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, SZSE_SUMMARY_URL, body=up.szse_summary_json(TODAY, None))
    with pytest.raises(NotPublished):  # akshare raises a column-length mismatch on the empty answer
        fetch_szse_summary(TODAY, policy=CallPolicy(retries=3, sleep=pytest.fail))


def test_sse_detail_estimates_rqye_only_where_a_close_is_known(rsps: responses.RequestsMock) -> None:
    d = sample_market()["SSE", D2]
    rsps.add(responses.GET, SSE_URL, body=up.sse_detail_json(D2, d.detail), content_type=JSON)
    frame = fetch_sse_detail(D2, closes={"600519": 1650.0}, policy=CallPolicy(retries=0)).set_index("code")
    assert frame.loc["600519", "rqye"] == d.detail[0].rqyl * 1650.0 and frame.loc["600519", "rqye_estimated"]
    assert pd.isna(frame.loc["601318", "rqye"]) and not frame.loc["601318", "rqye_estimated"]
    assert frame.loc["510300", "is_fund"] and frame.loc["600519", "name"] == "贵州茅台"
    assert rsps.calls[0].request.params["detailsDate"] == "20240411"


def test_an_answer_in_the_wrong_unit_is_refused(rsps: responses.RequestsMock) -> None:
    in_yuan = [replace(r, fin_balance=r.fin_balance * 1e8, loan_balance=r.loan_balance * 1e8) for r in ACCOUNT]
    rsps.add(responses.GET, EM_DATACENTER_URL, body=up.eastmoney_account_json(in_yuan), content_type=JSON)
    with pytest.raises(ValidationFailed, match="unit changed"):
        fetch_account_history(policy=CallPolicy(retries=0))


@pytest.mark.parametrize(("fin_buy", "loan_sell", "said"), [
    # 融券卖出额 sent in 万元 (95,300 万元 = 9.53 亿元) while the rest is in 亿元
    (736.78, 95_300.0, "ALL 2024-04-11: 融券卖出额 9.53e+12 元 is implausible next to 融资买入额 7.3678e+10 元"),
    (None, 6_000.0, "ALL 2024-04-11: 融券卖出额 6e+11 元 is implausible (unit changed?)"),  # no 融资买入额 to compare
    (736.78, -9.53, "ALL 2024-04-11: rqmce is negative"),
])
def test_an_implausible_rqmce_refuses_the_account_history(fin_buy: float | None, loan_sell: float, said: str,
                                                          rsps: responses.RequestsMock) -> None:
    rows = [*ACCOUNT[:2], replace(ACCOUNT[2], fin_buy=fin_buy, loan_sell=loan_sell)]
    rsps.add(responses.GET, EM_DATACENTER_URL, body=up.eastmoney_account_json(rows), content_type=JSON)
    with pytest.raises(ValidationFailed, match=re.escape(said)):
        fetch_account_history(policy=CallPolicy(retries=0))


def test_short_sales_near_financing_purchases_are_plausible(rsps: responses.RequestsMock) -> None:
    """Late 2012 saw days of 融券卖出额 about equal to 融资买入额 (some 20 亿元 each): accepted, in 元."""
    day = up.AccountDay(date(2012, 11, 29), 740.12, 48.31, 20.25, 22.74)
    rsps.add(responses.GET, EM_DATACENTER_URL, body=up.eastmoney_account_json([day]), content_type=JSON)
    row = fetch_account_history(policy=CallPolicy(retries=0)).iloc[0]
    assert (row["rzmre"], row["rqmce"]) == (2_025_000_000, 2_274_000_000)


def test_a_detail_row_whose_rzye_is_not_a_number_refuses_the_answer(rsps: responses.RequestsMock) -> None:
    """SSE, SZSE and BSE publish a number (0 where nothing is lent) for every security's 融资余额: an
    empty cell is an answer in a format not known, refused whole rather than stored with a NULL."""
    d = sample_market()["SSE", D2]
    rows = [d.detail[0], replace(d.detail[1], rzye=""), *d.detail[2:]]  # type: ignore[arg-type]
    rsps.add(responses.GET, SSE_URL, body=up.sse_detail_json(D2, rows), content_type=JSON)
    with pytest.raises(UpstreamError, match=r"^SSE detail: 融资余额 of 601318 is not a number$"):
        fetch_sse_detail(D2, policy=CallPolicy(retries=0))


def test_upstream_timeout_is_set_only_inside_the_context(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, "https://example.invalid/x", body="ok")
    with upstream_timeout(3.5):
        requests.get("https://example.invalid/x")
        requests.get("https://example.invalid/x", timeout=60)  # akshare's own timeout is overridden
    requests.get("https://example.invalid/x")
    assert [c.request.req_kwargs["timeout"] for c in rsps.calls] == [3.5, 3.5, None]


# --- end to end --------------------------------------------------------------------------------------


def test_full_days_are_ingested_with_values_in_yuan_and_shares(engine: Engine, fake: FakeUpstream,
                                                              settings: Settings, fetchers: Sources) -> None:
    result = ingest_run(engine, settings, fetchers, start=D1)
    assert result.ok, result.details()
    assert [d.day for d in result.days] == [D1, D2] and all(d.complete for d in result.days)
    assert result.summary().startswith("ingest 2024-04-10..2024-04-11: 2 days done, 0 pending, 0 failed")
    assert missing_steps(engine, D2) == [] and latest_complete_date(engine) == D2
    assert result.notes == []  # among others: Eastmoney's market-wide figures agree with the exchanges'
    m = sample_market()
    with Session(engine) as s:
        szse = summary_row(s, D2, "SZSE")  # 7,077.67 亿元 etc., SZSE's own doc sample
        assert (szse.rzye, szse.rzmre, szse.rqye, szse.rzrqye) == (707_767_000_000, 32_108_000_000, 15_730_000_000,
                                                                   723_497_000_000)
        assert (szse.rqyl, szse.rqmcl) == (2_434_000_000, 28_000_000)  # 24.34 亿股, 0.28 亿股
        assert szse.rzche == 706_812_000_000 + 32_108_000_000 - 707_767_000_000 and szse.rzche_derived
        sse = summary_row(s, D2, "SSE")
        assert (sse.rzye, sse.rzmre, sse.rqye) == (m["SSE", D2].rzye, 41_234_567_890, 9_476_543_210)
        assert sse.rzche == 42_345_678_901 and sse.rzche_derived  # from D1's row of the same answer
        assert sse.rzrqye == m["SSE", D2].rzye + 9_476_543_210 and sse.source == "sse"
        bse = summary_row(s, D2, "BSE")  # 553,400 万元 -> 元, 1.6 万股 -> 股
        assert (bse.rzye, bse.rzmre, bse.rqye, bse.rqyl, bse.rqmcl) == (5_534_000_000, 235_000_000, 130_000,
                                                                        16_000, 2_500)
        assert bse.rzche == 5_501_000_000 + 235_000_000 - 5_534_000_000
        whole = summary_row(s, D2, "ALL")  # Eastmoney, 亿元 -> 元
        assert whole.rzye == 1_509_082_000_000 and whole.rqmce == 953_000_000 and whole.rzmre == 73_678_000_000
        assert whole.rzrqye == 1_509_082_000_000 + 25_237_000_000 and whole.source == "eastmoney"

        moutai = stock_row(s, D2, "600519")
        first_sse = m["SSE", D2].detail[0]
        assert (moutai.rzye, moutai.rzmre, moutai.rzche, moutai.rqyl) == (
            first_sse.rzye, first_sse.rzmre, first_sse.rzche, first_sse.rqyl)
        # SSE publishes no per-stock 融券余额: 融券余量 x D2's close, from quotes asked before the open
        assert moutai.rqye == round(first_sse.rqyl * fake.closes(D2)["600519"], 2) and moutai.rqye_estimated
        assert not pingan_estimated(s)  # SZSE's is published, never estimated
        assert moutai.name == "贵州茅台" and moutai.exchange == "SSE" and not moutai.is_fund
        assert stock_row(s, D2, "510300").is_fund and stock_row(s, D2, "159919").is_fund
        pingan = stock_row(s, D2, "000001")  # from text cells with thousands separators
        first_szse = m["SZSE", D2].detail[0]
        assert (pingan.rzye, pingan.rzmre, pingan.rqye, pingan.rqyl) == (
            first_szse.rzye, first_szse.rzmre, first_szse.rqye, first_szse.rqyl)
        assert pingan.rzche == m["SZSE", D1].detail[0].rzye + first_szse.rzmre - first_szse.rzye
        assert stock_row(s, D2, "000858").name == "五粮液"  # SZSE pads names with &nbsp;
        assert stock_row(s, D2, "870105").exchange == "BSE"  # from the second page of BSE's detail
        counts = dict(s.execute(select(models.StockMargin.exchange, func.count()).where(
            models.StockMargin.trade_date == D2).group_by(models.StockMargin.exchange)).all())
        assert counts == {"SSE": 30, "SZSE": 30, "BSE": 10}

        sectors = s.execute(select(models.SectorDaily).where(models.SectorDaily.trade_date == D2)).scalars().all()
        stocks = s.execute(select(models.StockMargin).where(models.StockMargin.trade_date == D2,
                                                            ~models.StockMargin.is_fund)).scalars().all()
        assert sum(x.rzye for x in sectors) == pytest.approx(sum(x.rzye for x in stocks), rel=1e-12)
        assert sum(x.stock_count for x in sectors) == len(stocks) == 66
        assert "340000" in {x.sw_l1_code for x in sectors}

        classes = s.execute(select(models.IndustryClass).where(models.IndustryClass.code == "600519")).scalars().all()
        assert {(c.start_date, c.sw_code, c.sw_l1_code) for c in classes} == {
            (date(2014, 2, 21), "340501", "340000"), (date(2021, 7, 30), "340501", "340000")}
        assert s.execute(select(func.count()).select_from(models.IndustryName)).scalar() == 31 + 1  # and 采掘
        turnover = s.execute(select(models.Turnover).where(models.Turnover.trade_date == D2)).scalars().all()
        assert {(t.exchange, t.amount, t.a_share_only, t.source) for t in turnover} == {
            ("SSE", 326_383_000_000.0, True, "sse_deal_daily"), ("SZSE", 457_777_778_877.77, True, "szse_summary")}
        sh = s.execute(select(models.IndexDaily).where(models.IndexDaily.symbol == "sh000001",
                                                       models.IndexDaily.trade_date == D2)).scalar_one()
        assert (sh.close, sh.amount) == (3034.25, 328_912_345_678.0)
        sw = s.execute(select(models.IndexDaily).where(models.IndexDaily.symbol == "801010")).scalars().all()
        assert len(sw) == 3 and {x.amount for x in sw} == {None}
        assert s.execute(select(func.count()).select_from(models.TradingDay)).scalar() == len(calendar_days())
        statuses = s.execute(select(models.IngestStatus.status).where(models.IngestStatus.trade_date == D2)).scalars()
        assert sorted(statuses) == ["done"] * 9  # six sources, the sectors and two official turnovers


@pytest.fixture
def few_sectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three sector indexes instead of 31: the full set is covered end to end; this keeps the file fast."""
    monkeypatch.setattr(history, "SW_L1_2021", history.SW_L1_2021[:3])


def test_a_market_wide_figure_that_disagrees_is_reported_not_refused(
    engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Eastmoney's 融资余额 for D2 5% above the exchanges' sum: the run stores everything, keeps the
    exchanges' sum as the market, and names the disagreement (a note and a warning)."""
    off = up.AccountDay(D2, 15_090.82 * 1.05, 252.37, 736.78, 9.53)
    monkeypatch.setattr(sys.modules[__name__], "ACCOUNT", [*ACCOUNT[:2], off])
    result = ingest_run(engine, settings, fetchers, start=D1)
    assert result.ok and all(d.complete for d in result.days)
    [note] = result.notes
    assert note == "cross-check 2024-04-11: rzye of the exchanges 1,507.55 bn vs market-wide (ALL) 1,584.54 bn (-4.86%)"
    assert note in [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    with Session(engine) as s:
        market = s.get(models.MarketDaily, D2)
        assert market is not None and market.exchanges == 3 and market.rzye == pytest.approx(1_507.55e9, rel=1e-5)


def test_a_later_eastmoney_answer_never_erases_a_figure_nor_overwrites_an_import(
    engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later morning's Eastmoney history sends null 融券余额 and 融券卖出额 for D1, stored already:
    D1 keeps them (and the ratio its 融券卖出额) while a revised 融资买入额 is taken. D0's market row,
    imported from the user's CSV since, is left as imported although Eastmoney says otherwise."""
    assert ingest_run(engine, settings, fetchers, start=D1).ok
    imported = {"rzye": 1_500_000_000_000.0, "rzmre": 70_000_000_000.0, "rqye": 25_000_000_000.0,
                "rqmce": None, "rzrqye": 1_525_000_000_000.0, "source": "csv"}
    with session_scope(engine) as s:
        row = summary_row(s, D0, "ALL")
        for key, value in imported.items():
            setattr(row, key, value)
    with Session(engine) as s:
        d1 = summary_row(s, D1, "ALL")
        kept = (d1.rzye, d1.rqye, d1.rqmce, d1.rzrqye)
    assert kept == (1_510_125_000_000, 25_321_000_000, 1_012_000_000, 1_510_125_000_000 + 25_321_000_000)

    d5 = date(2024, 4, 12)
    later = [up.AccountDay(D0, 15_000.00, 250.00, 700.00, 9.00),
             up.AccountDay(D1, 15_101.25, None, 722.50, None),  # nulls, and a revised 融资买入额
             ACCOUNT[2], up.AccountDay(d5, 15_120.40, 251.02, 741.12, None)]
    monkeypatch.setattr(sys.modules[__name__], "ACCOUNT", later)
    ingest_run(engine, settings, fetchers, start=D1, today=date(2024, 4, 15))

    with Session(engine) as s:
        d1 = summary_row(s, D1, "ALL")
        assert (d1.rzye, d1.rqye, d1.rqmce, d1.rzrqye) == kept and d1.rzmre == 72_250_000_000
        market = s.get(models.MarketDaily, D1)
        assert market is not None and market.rqmce == 1_012_000_000  # the ratio's 融券卖出额 is still there
        d0 = summary_row(s, D0, "ALL")
        assert {key: getattr(d0, key) for key in imported} == imported
        new = summary_row(s, d5, "ALL")
        assert new.rzye == 1_512_040_000_000 and new.rqmce is None and new.source == "eastmoney"


def test_a_second_run_changes_nothing(engine: Engine, fake: FakeUpstream, settings: Settings,
                                      fetchers: Sources, few_sectors: None) -> None:
    assert ingest_run(engine, settings, fetchers, start=D1).ok
    before, version = snapshot(engine), data_version(engine)
    asked = len(fake.asked)
    again = ingest_run(engine, settings, fetchers, start=D1)
    assert again.ok and again.days == []
    assert snapshot(engine) == before and data_version(engine) == version
    assert fake.asked[asked:] == []  # complete days and current histories are not asked again
    assert fake.calendar_calls == 1  # the stored calendar covers the span

    # A later morning: every history is asked again and answers the same; 2024-04-12 is not out yet.
    asked = len(fake.asked)
    later = ingest_run(engine, settings, fetchers, start=D1, today=date(2024, 4, 15))
    assert {"index_sh000001", "index_sz399001", "em_account", "sw_class", "csi300", "sw_index"} <= {
        a[0] for a in fake.asked[asked:]}
    assert [(d.day, d.status) for d in later.days] == [(date(2024, 4, 12), "pending")] and later.ok
    after = snapshot(engine)
    after["dataset_meta"] = [r for r in after["dataset_meta"] if "_checked" not in r]
    before["dataset_meta"] = [r for r in before["dataset_meta"] if "_checked" not in r]
    assert after == before and data_version(engine) == version


def test_default_backfill_and_resume_after_a_stop(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                  fetchers: Sources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "DEFAULT_BACKFILL_DAYS", 3)
    fake.override["szse_detail", D2] = lambda: (200, {}, up.szse_detail_xlsx([]))  # not yet: header only
    first = ingest_run(engine, settings, fetchers, end=date(2024, 4, 30), history=False)
    assert [d.day for d in first.days] == [D0, D1, D2]
    assert [d.status for d in first.days] == ["done", "done", "pending"] and first.ok
    assert "stopped at 2024-04-11" in first.notes[0]
    assert latest_complete_date(engine) == D1 and missing_steps(engine, D2) != []
    assert status_of(engine, D2, "szse_detail").status == "pending"
    with Session(engine) as s:  # D0 has no D-1 in SSE's answer: no 融资偿还额 rather than a wrong one
        assert summary_row(s, D0, "SSE").rzche is None

    del fake.override["szse_detail", D2]
    asked = len(fake.asked)
    second = ingest_run(engine, settings, fetchers, history=False)
    assert [d.day for d in second.days] == [D2] and second.days[0].complete
    per_day = [a for a in fake.asked[asked:] if a[0] in ingest_status.DAY_SOURCES]
    assert per_day == [("szse_detail", D2)]  # only what was missing
    assert [s.source for s in second.days[0].steps] == ["szse_detail", "sector_daily"]
    assert latest_complete_date(engine) == D2


# --- failures ----------------------------------------------------------------------------------------


def _raise(exc: Exception) -> Callable[[], Reply]:
    def answer() -> Reply:
        raise exc

    return answer


def _pending(fake: FakeUpstream, source: str) -> Callable[[], Reply]:
    """The answer of a day not published yet, in each source's own form."""
    return {
        "sse_summary": lambda: (200, {}, up.sse_summary_json(fake.sse_summary_rows(D1, D1))),
        "sse_detail": lambda: (200, {}, up.sse_detail_json(D2, [])),
        "szse_summary": lambda: (200, {}, up.szse_summary_json(D2, None)),
        "szse_detail": lambda: (200, {}, up.szse_detail_xlsx([])),
        "bse_summary": lambda: (200, {}, up.bse_summary_jsonp(D2, None)),
        "bse_detail": lambda: (200, {}, up.bse_detail_jsonp(D2, [])),
    }[source]


def _implausible(fake: FakeUpstream) -> Reply:
    rows = fake.sse_summary_rows(D1, D2)
    rows = [replace(r, rzrqjyzl=r.rzye + 2 * r.rqylje) if r.day == D2 else r for r in rows]
    return 200, {}, up.sse_summary_json(rows)


def _missing_key() -> Reply:
    good = up.szse_summary_json(D2, szse_summary_of(sample_market()["SZSE", D2]))
    return 200, {}, good.replace('"data"', '"rows"', 1)


def _detail_short(fake: FakeUpstream) -> Reply:
    d = fake.market["SZSE", D2]
    shrunk = [replace(r, rzye=int(r.rzye * 0.8)) for r in d.detail]
    return 200, {}, up.szse_detail_xlsx(shrunk)


def _detail_dash(fake: FakeUpstream) -> Reply:
    """SZSE's detail with a dash for one security's 融资余额 (akshare makes it NaN): the rest adds up."""
    return 200, {}, up.szse_detail_xlsx(fake.market["SZSE", D2].detail, cells={"000858": {"融资余额(元)": "-"}})


FAILURES: dict[str, tuple[str, str, Callable[[FakeUpstream], Callable[[], Reply]], str]] = {
    # kind: (source, status, the failing answer, what the log line says)
    "unpublished": ("sse_detail", "pending", lambda f: _pending(f, "sse_detail"), "not published yet"),
    "html_for_xlsx": ("szse_detail", "failed", lambda f: lambda: (200, {"Content-Type": "text/html"},
                                                                  up.HTML_ERROR_PAGE), "not an xlsx"),
    "read_timeout": ("bse_summary", "failed", lambda f: _raise(requests.exceptions.ReadTimeout("read timed out")),
                     "timed out (no answer within 7.5 s) (after 3 attempts)"),
    "connect_timeout": ("bse_detail", "failed",
                        lambda f: _raise(requests.exceptions.ConnectTimeout("connect timed out")),
                        "timed out (no answer within 7.5 s) (after 3 attempts)"),
    "missing_key": ("szse_summary", "failed", lambda f: _missing_key, "lacks the key 'data'"),
    "implausible": ("sse_summary", "failed", lambda f: lambda: _implausible(f), "两融余额"),
    "detail_off_summary": ("szse_detail", "failed", lambda f: lambda: _detail_short(f), "off the summary"),
    "detail_cell_not_a_number": ("szse_detail", "failed", lambda f: lambda: _detail_dash(f),
                                 "SZSE detail: 融资余额 of 000858 is not a number"),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failure_leaves_the_stored_data_exactly_as_it_was(kind: str, engine: Engine, fake: FakeUpstream,
                                                            settings: Settings, fetchers: Sources,
                                                            sleeps: list[float],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    source, status, failing, said = FAILURES[kind]
    # First run: everything of D2 is stored but `source`, which is not published yet.
    fake.override[source, D2] = _pending(fake, source)
    first = ingest_run(engine, settings, fetchers, start=D2, history=False)
    assert [d.status for d in first.days] == ["pending"]
    before, version = snapshot(engine), data_version(engine)
    assert before["stock_margin"] and before["margin_summary"]  # earlier good data is there

    fake.override[source, D2] = failing(fake)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="storage.ingest")
    second = ingest_run(engine, settings, fetchers, start=D2, history=False)

    assert snapshot(engine) == before and data_version(engine) == version
    row = status_of(engine, D2, source)
    assert (row.status, row.attempts) == (status, 2) and said in row.message
    assert second.ok is (status == "pending")
    assert second.days[0].status == status and missing_steps(engine, D2) != []
    assert latest_complete_date(engine) is None
    lines = [r for r in caplog.records if r.name == "storage.ingest" and f"{source} {D2}" in r.getMessage()]
    assert len(lines) == 1 and said in lines[0].getMessage() and lines[0].exc_info is None
    if "timeout" in kind:
        assert sleeps == [2.0, 4.0]  # upstream_retries=2: two pauses, doubling
        tried = [a for a in fake.asked if a == (source, D2)]
        assert len(tried) == 1 + 3  # first run once, then three attempts


def test_history_failures_are_reported_and_the_days_still_ingested(engine: Engine, fake: FakeUpstream,
                                                                   settings: Settings, fetchers: Sources,
                                                                   few_sectors: None,
                                                                   rsps: responses.RequestsMock,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    rsps.replace(responses.GET, SW_CLASS_URL, body=up.HTML_ERROR_PAGE)
    caplog.set_level(logging.INFO, logger="storage.ingest")
    result = ingest_run(engine, settings, fetchers, start=D2)
    assert not result.ok and result.days[0].complete
    failed = [h for h in result.history if h.status == "failed"]
    assert [h.source for h in failed] == ["sw_class"] and "not an Excel workbook" in failed[0].message
    assert "history 7 ok, 1 failed" in result.summary()
    assert any("sw_class history failed" in r.getMessage() for r in caplog.records)


# --- official A-share turnover -----------------------------------------------------------------------


def test_sse_turnover_adds_main_board_a_and_star_market_in_yuan(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, SSE_DEAL_URL, body=up.sse_deal_daily_json(SSE_DEALS[D2]), content_type=JSON)
    amount = Sources(CallPolicy(timeout=4.0, retries=0)).sse_turnover(D2)
    assert amount == 326_383_000_000.0  # (2876.54 + 387.29) 亿元: B shares (0.91) and 回购 (0.12) left out
    params = rsps.calls[0].request.params
    assert params["SEARCH_DATE"] == "2024-04-11" and params["sqlId"] == "COMMON_SSE_SJ_GPSJ_CJGK_MRGK_C"
    assert rsps.calls[0].request.req_kwargs["timeout"] == 4.0


def test_szse_turnover_sums_the_a_share_rows_only(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, SZSE_OVERVIEW_URL, body=up.szse_overview_xlsx(up.szse_overview_rows(*SZSE_BOARDS[D2])))
    sources = Sources(CallPolicy(retries=0))
    assert sources.szse_turnover(D2) == 457_777_778_877.77  # not 股票 (B shares in it), funds or bonds
    assert rsps.calls[0].request.params["txtQueryDate"] == "2024-04-11"
    # Before 2021-04-06 the 中小板 was a board of its own, and A shares too.
    rsps.replace(responses.GET, SZSE_OVERVIEW_URL, body=up.szse_overview_xlsx(up.szse_overview_rows(
        97_759_501_234.56, 162_345_678_901.23, 86_268_160.00, sme=201_352_612_345.67)))
    assert sources.szse_turnover(date(2020, 6, 19)) == 461_457_792_481.46


@pytest.mark.parametrize(("url", "body", "source", "problem", "said"), [
    (SSE_DEAL_URL, up.sse_deal_daily_json(None), "sse", NotPublished, "no deal statistics"),
    (SSE_DEAL_URL, up.sse_deal_daily_json(up.SseDeal(D2, 2.87654e11, 9.1e7, 3.8729e10)), "sse", ValidationFailed,
     "unit changed"),  # 元 where 亿元 is due
    (SZSE_OVERVIEW_URL, up.szse_overview_xlsx([]), "szse", NotPublished, "no overview"),
    (SZSE_OVERVIEW_URL, up.szse_overview_xlsx(up.szse_overview_rows(2765.43, 1812.35)), "szse", ValidationFailed,
     "unit changed"),  # 亿元 where 元 is due
    (SZSE_OVERVIEW_URL, up.szse_overview_xlsx([r for r in up.szse_overview_rows(*SZSE_BOARDS[D2])
                                                if r.name != "创业板A股"]),
     "szse", UpstreamError, "0 rows of 创业板A股"),
])
def test_turnover_answers_that_are_not_usable_are_refused(url: str, body: str | bytes, source: str,
                                                          problem: type[Exception], said: str,
                                                          rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, url, body=body)
    sources = Sources(CallPolicy(retries=0))
    fetch = sources.sse_turnover if source == "sse" else sources.szse_turnover
    with pytest.raises(problem, match=said):
        fetch(D2)


def test_official_turnover_is_optional_and_sse_s_starts_on_2021_12_27() -> None:
    assert ingest_status.optional_steps(date(2021, 12, 24)) == ("szse_turnover",)
    assert ingest_status.optional_steps(date(2021, 12, 27)) == ("sse_turnover", "szse_turnover")
    assert not set(ingest_status.required_steps(D2)) & set(ingest_status.TURNOVER_SOURCES)


def test_a_failure_after_another_run_stored_the_step_keeps_it_done(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    """Two workers on one database: one stores D2's SSE detail while the other's attempt times out.
    The late failure is logged, and the step stays done: the day stays complete, nothing is fetched again."""
    assert ingest_run(engine, settings, fetchers, start=D1).ok
    before = status_of(engine, D2, "sse_detail")
    outcome = ingest_status.record_problem(engine, D2, "sse_detail", "timed out (no answer within 7.5 s)", "failed")
    after = status_of(engine, D2, "sse_detail")
    assert (outcome.status, outcome.message) == ("done", "stored by another run")
    assert (after.status, after.attempts, after.rows) == ("done", before.attempts, before.rows)
    assert missing_steps(engine, D2) == []


def turnover_rows(engine: Engine) -> dict[tuple[date, str], tuple[float, bool, str]]:
    tv = models.Turnover
    with Session(engine) as s:
        return {(t.trade_date, t.exchange): (t.amount, t.a_share_only, t.source)
                for t in s.execute(select(tv)).scalars()}


def test_official_turnover_replaces_the_index_fallback_and_a_refresh_keeps_it(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    result = ingest_run(engine, settings, fetchers, start=D1)
    assert result.ok, result.details()
    assert [s.source for s in result.days[0].steps][-2:] == ["sse_turnover", "szse_turnover"]
    rows = turnover_rows(engine)
    assert rows[D0, "SSE"] == (356_712_345_678.0, False, "index_amount")  # not ingested: the fallback stays
    assert rows[D0, "SZSE"] == (509_876_543_210.0, False, "index_amount")
    for day in (D1, D2):
        assert rows[day, "SSE"] == (SSE_A_SHARES[day], True, "sse_deal_daily")
        assert rows[day, "SZSE"] == (SZSE_A_SHARES[day], True, "szse_summary")
    assert status_of(engine, D2, "sse_turnover").status == "done"

    # The user imports their own SZSE figure for D0: authoritative, it is kept by every refresh.
    with session_scope(engine) as session:
        session.execute(update(models.Turnover).where(models.Turnover.trade_date == D0,
                                                      models.Turnover.exchange == "SZSE")
                        .values(amount=500e9, a_share_only=False, source="csv"))
    # A later morning: the index history is asked again and its amounts moved; only the fallback follows.
    for symbol, market, name in (("sh000001", 1, "上证指数"), ("sz399001", 0, "深证成指")):
        moved = [replace(b, amount=b.amount + 1e9) for b in INDEX_BARS[symbol]]
        fake.override[f"index_{symbol}", None] = (
            lambda symbol=symbol, market=market, name=name, moved=moved:
            (200, {}, up.em_kline_json(symbol[2:], market, name, moved)))
    later = ingest_run(engine, settings, fetchers, start=D1, today=date(2024, 4, 15))
    # rows written: the three bars (D0..D2) whose amounts moved, and D0's fallback turnover; D1's and D2's
    # official turnover is kept
    assert later.ok and history_step(later, "index_sh000001").rows == len(INDEX_BARS["sh000001"]) + 1 == 4
    after = turnover_rows(engine)
    assert after[D0, "SSE"] == (357_712_345_678.0, False, "index_amount")
    assert after[D0, "SZSE"] == (500e9, False, "csv")
    assert {k: v for k, v in after.items() if k[0] in (D1, D2)} == {k: v for k, v in rows.items() if k[0] in (D1, D2)}


def _turnover_html() -> Reply:
    return 200, {"Content-Type": "text/html"}, up.HTML_ERROR_PAGE


TURNOVER_FAILURES: dict[str, tuple[str, str, Callable[[], Reply], str]] = {
    # kind: (source, status, the failing answer, what the status says)
    "sse_unpublished": ("sse_turnover", "pending", lambda: (200, {}, up.sse_deal_daily_json(None)),
                        "no deal statistics"),
    "szse_unpublished": ("szse_turnover", "pending", lambda: (200, {}, up.szse_overview_xlsx([])), "no overview"),
    "szse_last_day_again": ("szse_turnover", "pending", lambda: (200, {}, up.szse_overview_xlsx(
        up.szse_overview_rows(*SZSE_BOARDS[D1]))), "repeats 2024-04-10's figure"),
    "sse_html": ("sse_turnover", "failed", _turnover_html, "not valid JSON"),
    "szse_html": ("szse_turnover", "failed", _turnover_html, "not an xlsx"),
    "sse_timeout": ("sse_turnover", "failed", _raise(requests.exceptions.ReadTimeout("read timed out")),
                    "timed out (no answer within 7.5 s) (after 3 attempts)"),
}


@pytest.mark.parametrize("kind", list(TURNOVER_FAILURES))
def test_a_turnover_failure_keeps_the_stored_turnover_and_the_day_complete(
        kind: str, engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
        sleeps: list[float]) -> None:
    source, status, failing, said = TURNOVER_FAILURES[kind]
    exchange = ingest_status.TURNOVER_SOURCES[source][0]
    fake.override[source, D2] = failing
    first = ingest_run(engine, settings, fetchers, start=D1)

    assert first.ok, first.details()  # a complete day; the push is not held back
    assert [d.status for d in first.days] == ["done", "done"]
    assert missing_steps(engine, D2) == [] and latest_complete_date(engine) == D2
    fallback = {"SSE": 328_912_345_678.0, "SZSE": 467_345_678_901.0}[exchange]  # the index amounts of D2
    rows = turnover_rows(engine)
    assert rows[D2, exchange] == (fallback, False, "index_amount")  # unchanged: the index fallback
    other = "SZSE" if exchange == "SSE" else "SSE"
    assert rows[D2, other][1] and rows[D1, exchange][1]  # the other official figures are stored
    row = status_of(engine, D2, source)
    assert (row.status, row.attempts) == (status, 1) and said in row.message
    (step,) = [s for s in first.days[1].steps if s.source == source]
    assert step.status == status
    if "timeout" in kind:
        assert sleeps == [2.0, 4.0]

    # The next run asks again for that step alone, and the official figure replaces the fallback.
    del fake.override[source, D2]
    asked = len(fake.asked)
    second = ingest_run(engine, settings, fetchers, history=False)
    assert [d.day for d in second.days] == [D2] and [s.source for s in second.days[0].steps] == [source]
    assert fake.asked[asked:] == [(source, D2)]
    expected = SSE_A_SHARES[D2] if exchange == "SSE" else SZSE_A_SHARES[D2]
    assert turnover_rows(engine)[D2, exchange] == (expected, True, {"SSE": "sse_deal_daily",
                                                                   "SZSE": "szse_summary"}[exchange])
    assert (status_of(engine, D2, source).status, status_of(engine, D2, source).attempts) == ("done", 2)


def test_a_turnover_step_out_of_attempts_is_no_longer_retried(engine: Engine, fake: FakeUpstream,
                                                              settings: Settings, fetchers: Sources,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_status, "OPTIONAL_MAX_ATTEMPTS", 2)
    fake.override["szse_turnover", D2] = _turnover_html
    ingest_run(engine, settings, fetchers, start=D2, history=False)
    ingest_run(engine, settings, fetchers, history=False)
    assert status_of(engine, D2, "szse_turnover").attempts == 2
    asked = len(fake.asked)
    third = ingest_run(engine, settings, fetchers, history=False)
    assert third.days == [] and fake.asked[asked:] == []


# --- CSI 300 constituents ----------------------------------------------------------------------------


def members_of(engine: Engine) -> dict[str, date]:
    """The latest stored CSI 300 list: code -> the date it took effect."""
    im = models.IndexMember
    with Session(engine) as session:
        latest = session.execute(select(func.max(im.as_of)).where(im.symbol == "000300")).scalar()
        return {code: as_of for code, as_of in session.execute(
            select(im.code, im.as_of).where(im.symbol == "000300", im.as_of == latest))}


def index_lists(engine: Engine) -> dict[date, int]:
    """Every stored CSI 300 list: the date it took effect -> its size."""
    im = models.IndexMember
    with Session(engine) as session:
        return dict(session.execute(
            select(im.as_of, func.count()).where(im.symbol == "000300").group_by(im.as_of)).all())


def history_step(result: ingest.IngestResult, source: str) -> ingest.StepOutcome:
    (step,) = [h for h in result.history if h.source == source]
    return step


def test_csi300_members_are_read_from_the_csindex_xls(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, CSI300_URL, body=up.csindex_cons_xls(up.csi300_members(), CSI300_AS_OF),
             content_type="application/vnd.ms-excel")
    frame = fetch_csi300(policy=CallPolicy(retries=0))
    assert len(frame) == 300 and frame["code"].is_unique
    assert set(frame["as_of"]) == {CSI300_AS_OF}  # the file's 日期, "20231211"
    by_code = frame.set_index("code")
    assert by_code.loc["000001", "name"] == "平安银行"  # text cells: leading zeros kept
    assert by_code.loc["600519", "name"] == "贵州茅台" and "510300" not in by_code.index
    assert rsps.calls[0].request.url == CSI300_URL


@pytest.mark.parametrize(("members", "symbol", "said"), [
    (up.csi300_members(250), "000300", "250 rows, expected 280..320"),
    (up.csi300_members(299) + up.csi300_members(1), "000300", "600519 listed twice"),
    (up.csi300_members(299) + [up.Constituent("60051A", "坏代码")], "000300", "malformed security code '60051A'"),
    (up.csi300_members(), "000905", "answer is for index 000905"),
], ids=["too_few", "duplicate", "malformed_code", "other_index"])
def test_an_implausible_csi300_file_is_refused(members: list[up.Constituent], symbol: str, said: str,
                                               rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, CSI300_URL, body=up.csindex_cons_xls(members, CSI300_AS_OF, symbol=symbol))
    with pytest.raises(ValidationFailed, match=said):
        fetch_csi300(policy=CallPolicy(retries=3, sleep=pytest.fail))  # validation failures are not retried


def test_csi300_members_are_stored_with_the_file_date_and_read_once_a_day(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    first = ingest_run(engine, settings, fetchers, start=D2)
    assert first.ok, first.details()
    members = members_of(engine)
    assert len(members) == 300 and set(members.values()) == {CSI300_AS_OF}
    assert {"600519", "000001", "300750", "688981"} <= members.keys() and "510300" not in members
    step = history_step(first, "csi300")
    assert (step.status, step.rows) == ("done", 300)

    # The same day: the file is not asked for again.
    asked, version = len(fake.asked), data_version(engine)
    again = ingest_run(engine, settings, fetchers, start=D2)
    assert again.ok and ("csi300", None) not in fake.asked[asked:]
    assert history_step(again, "csi300").message == "up to date"
    assert members_of(engine) == members and data_version(engine) == version

    # A later morning, after a review: five members swapped, a new date; the new list is kept beside
    # the old one, which older days go on reading.
    fake.csi300 = (up.csi300_members(salt=5), date(2024, 6, 17))
    later = ingest_run(engine, settings, fetchers, start=D2, today=date(2024, 4, 15))
    assert later.ok and fake.asked.count(("csi300", None)) == 2
    replaced = members_of(engine)
    assert len(replaced) == 300 and set(replaced.values()) == {date(2024, 6, 17)}
    assert {"603000", "603004"} <= replaced.keys() and len(members.keys() - replaced.keys()) == 5
    assert index_lists(engine) == {CSI300_AS_OF: 300, date(2024, 6, 17): 300}
    assert data_version(engine) > version  # reports keyed on the data version see the new set
    # Each day reads the list in force on it; a day older than every list, the oldest known.
    days = [date(2024, 6, 14), date(2024, 6, 17), date(2020, 1, 2)]
    as_of = {day: sums.members_as_of for day, sums in queries.short_sums(engine, days, "000300").items()}
    assert as_of == {date(2024, 6, 14): CSI300_AS_OF, date(2024, 6, 17): date(2024, 6, 17),
                     date(2020, 1, 2): CSI300_AS_OF}

    # The next day the same list comes with a newer file date: nothing is written.
    fake.csi300 = (up.csi300_members(salt=5), date(2024, 6, 18))
    version = data_version(engine)
    assert ingest_run(engine, settings, fetchers, start=D2, today=date(2024, 4, 16)).ok
    assert index_lists(engine) == {CSI300_AS_OF: 300, date(2024, 6, 17): 300} and data_version(engine) == version


def test_csi300_members_of_a_file_without_a_date_are_as_of_the_fetch_day(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    fake.csi300 = (up.csi300_members(), None)
    assert ingest_run(engine, settings, fetchers, start=D2).ok
    members = members_of(engine)
    assert len(members) == 300 and set(members.values()) == {TODAY}


def test_an_html_page_for_the_csi300_file_keeps_the_stored_members(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
        sleeps: list[float], caplog: pytest.LogCaptureFixture) -> None:
    assert ingest_run(engine, settings, fetchers, start=D2).ok
    before, version = members_of(engine), data_version(engine)
    later = date(2024, 4, 15)
    fake.override["csi300", None] = lambda: (200, {"Content-Type": "text/html"}, up.HTML_ERROR_PAGE)
    caplog.set_level(logging.INFO, logger="storage.ingest")
    asked = len(fake.asked)

    result = ingest_run(engine, settings, fetchers, start=D2, today=later)

    assert members_of(engine) == before and data_version(engine) == version
    assert not result.ok and [h.source for h in result.history if h.status == "failed"] == ["csi300"]
    message = history_step(result, "csi300").message
    assert "not an Excel workbook" in message and "(after 3 attempts)" in message
    assert "the stored members (300) are kept" in message
    assert fake.asked[asked:].count(("csi300", None)) == 3 and sleeps == [2.0, 4.0]
    lines = [r for r in caplog.records if r.name == "storage.ingest" and "csi300" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and lines[0].exc_info is None
    assert lines[0].getMessage().startswith("csi300 history failed: answer is not an Excel workbook")
    with Session(engine) as session:  # not marked as read today: the next run asks again
        assert get_meta(session, "csi300_checked") == TODAY.isoformat()

    del fake.override["csi300", None]
    fake.csi300 = (up.csi300_members(salt=3), later)
    retried = ingest_run(engine, settings, fetchers, start=D2, today=later)
    assert retried.ok and history_step(retried, "csi300").rows == 300
    assert set(members_of(engine).values()) == {later} and len(members_of(engine).keys() - before.keys()) == 3


# --- demo data ---------------------------------------------------------------------------------------

DEMO_DAY = date(2024, 3, 1)
DEMO_END = date(2026, 11, 20)


def rows_of(engine: Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(repr(sorted(dict(r).items())) for r in conn.execute(text(f"SELECT * FROM {table}")).mappings())


def seed_hand_demo(engine: Engine) -> None:
    """A few demo rows in every market table, a cached chart, a chat with a delivery, and the demo flag.

    The once-a-day marks say the class and constituent files were read today: demo data came after.
    """
    with session_scope(engine) as session:
        session.add_all([
            models.MarginSummary(trade_date=DEMO_DAY, exchange="ALL", rzye=1.8e12, rqye=1e10, rzrqye=1.81e12,
                                 source="demo"),
            models.MarginSummary(trade_date=D2, exchange="SSE", rzye=9.9e11, source="demo"),  # a real day's key
            models.StockMargin(trade_date=DEMO_DAY, code="600999", exchange="SSE", rzye=5e9),
            models.Turnover(trade_date=DEMO_DAY, exchange="SSE", amount=4e11, source="demo"),
            models.IndexDaily(symbol="sh000001", trade_date=DEMO_DAY, close=3100.0, amount=4e11),
            models.IndustryClass(code="600999", start_date=date(2021, 7, 30), sw_code="490101",
                                 sw_l1_code="490000"),
            models.SectorDaily(trade_date=DEMO_DAY, sw_l1_code="490000", rzye=5e9, stock_count=1),
            models.TradingDay(trade_date=DEMO_END),
            models.IngestStatus(trade_date=DEMO_DAY, source="sse_summary", status="done"),
            models.IndexMember(symbol="000300", code="600999", as_of=DEMO_END),
            models.ChartUpload(cache_key="balance|zh|v7", file_id="demo-file-id"),
            models.Chat(chat_id=4242, chat_type="group", title="两融群", subscribed=True),
            models.Delivery(chat_id=4242, trade_date=DEMO_END, status=models.DeliveryStatus.SENT, message_id=17),
        ])
        set_meta(session, "demo", "true")
        set_meta(session, "sw_class_checked", TODAY.isoformat())
        set_meta(session, "csi300_checked", TODAY.isoformat())


def test_the_first_real_ingest_replaces_the_demo_data(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                      fetchers: Sources, few_sectors: None) -> None:
    seed_hand_demo(engine)
    chats, deliveries = rows_of(engine, "chat"), rows_of(engine, "delivery")

    result = ingest_run(engine, settings, fetchers, start=D2)

    assert result.ok, result.details()
    assert "demo data removed: real data replaces it" in result.notes
    with Session(engine) as s:
        assert get_meta(s, "demo") == "false"
        assert s.execute(select(func.count()).where(models.MarginSummary.source == "demo")).scalar() == 0
        assert summary_row(s, D2, "SSE").source == "sse"  # the real row, not the demo one under its key
        for model in (models.MarginSummary, models.StockMargin, models.Turnover, models.IndexDaily,
                      models.SectorDaily, models.IngestStatus):
            assert s.execute(select(func.count()).select_from(model).where(
                model.trade_date == DEMO_DAY)).scalar() == 0, model.__name__
        assert s.execute(select(func.count()).where(models.StockMargin.code == "600999")).scalar() == 0
        assert s.execute(select(func.count()).where(models.IndustryClass.code == "600999")).scalar() == 0
        assert s.execute(select(func.count()).where(models.IndustryClass.code == "600519")).scalar() == 2
        assert s.execute(select(func.count()).select_from(models.ChartUpload)).scalar() == 0
        days = set(s.execute(select(models.TradingDay.trade_date)).scalars())
        assert days == set(calendar_days())  # the demo calendar (to 2026-11-20) is gone
    assert missing_steps(engine, D2) == [] and latest_complete_date(engine) == D2
    members = members_of(engine)  # the real constituents, not the demo's
    assert "600999" not in members and len(members) == 300 and set(members.values()) == {CSI300_AS_OF}
    # The once-a-day marks went with the demo rows: both files were read in this very run.
    assert {("sw_class", None), ("csi300", None)} <= set(fake.asked)
    assert rows_of(engine, "chat") == chats and rows_of(engine, "delivery") == deliveries

    # Only the first real run drops anything.
    before = snapshot(engine)
    again = ingest_run(engine, settings, fetchers, start=D2)
    assert again.ok and not again.notes and snapshot(engine) == before


def demo_snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table the demo data or an ingest touch (the data tables, market_daily,
    ingest state, chart uploads, chats and deliveries)."""
    return {table: rows_of(engine, table) for table in (
        *DATA_TABLES, "market_daily", "stock_spike_daily", "ingest_status", "chart_upload", "chat", "delivery")}


NO_NETWORK: dict[str, tuple[Exception | None, Exception | None, str]] = {
    # kind: (what every answer raises, what the calendar raises, the run's outcome as logged)
    "timeouts": (requests.exceptions.ConnectTimeout("connect timed out"), None,
                 "demo data kept: no exchange answered with margin data for 2024-01-17..2024-04-11 ("
                 "bse_summary: timed out (no answer within 7.5 s) (after 3 attempts); "
                 "sse_summary: timed out (no answer within 7.5 s) (after 3 attempts); "
                 "szse_summary: timed out (no answer within 7.5 s) (after 3 attempts))"),
    "calendar_too": (requests.exceptions.ConnectionError("Name or service not known"),
                     requests.exceptions.ConnectionError("Name or service not known"),
                     "ingest stopped: no trading calendar (its refresh failed): the demo data is kept"),
}


@pytest.mark.parametrize("kind", list(NO_NETWORK))
def test_an_ingest_that_fetches_nothing_keeps_the_demo_data(kind: str, engine: Engine, fake: FakeUpstream,
                                                           settings: Settings, fetchers: Sources,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """No network (the bot's first tick with a token but no upstream access): nothing is written,
    the demo rows, the demo flag and the data version stay, one line says why. Once the exchanges
    answer, the next run replaces the demo data."""
    seed_hand_demo(engine)
    before, version = demo_snapshot(engine), data_version(engine)
    fake.down, fake.calendar_down, said = NO_NETWORK[kind]
    caplog.set_level(logging.INFO, logger="storage.ingest")

    result = ingest_run(engine, settings, fetchers)  # the default backfill: the last 60 trade dates

    assert demo_snapshot(engine) == before and data_version(engine) == version
    with Session(engine) as s:
        assert get_meta(s, "demo") == "true"
    assert not result.ok
    lines = [r.getMessage() for r in caplog.records if r.name == "storage.ingest" and r.levelno >= logging.WARNING]
    assert said in lines, lines
    if kind == "timeouts":
        assert said.removeprefix("ingest stopped: ") in result.notes
        backfill = [d for d in calendar_days() if d <= D2][-60:]  # 2024-01-17..2024-04-11
        assert [d.day for d in result.days] == backfill and {d.status for d in result.days} == {"failed"}
        assert result.days[-1].line().startswith("2024-04-11: failed: sse_summary failed (timed out")
        assert fake.calendar_calls == 1  # the demo's own calendar (to 2026-11-20) is never used
        # Nothing but the summaries was asked: no history source, no detail, no turnover.
        assert {a[0] for a in fake.asked} == {"sse_summary", "szse_summary", "bse_summary"}
    else:
        assert result.fatal == said.removeprefix("ingest stopped: ") and fake.asked == []

    fake.down = fake.calendar_down = None
    again = ingest_run(engine, settings, fetchers, start=D2)
    assert again.ok and "demo data removed: real data replaces it" in again.notes
    with Session(engine) as s:
        assert get_meta(s, "demo") == "false" and summary_row(s, D2, "SSE").source == "sse"


def test_an_unpublished_answer_keeps_the_demo_data_and_is_no_failure(
    engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, caplog: pytest.LogCaptureFixture,
) -> None:
    """Every exchange answers that D2 is not out yet: the demo data stay, the day is pending, the run is ok."""
    seed_hand_demo(engine)
    before = demo_snapshot(engine)
    for source in ("sse_summary", "szse_summary", "bse_summary"):  # SSE's answer holds D1 alone
        fake.override[source, D2] = _pending(fake, source)
    caplog.set_level(logging.INFO, logger="storage.ingest")
    result = ingest_run(engine, settings, fetchers, start=D2)
    assert result.ok and [(d.day, d.status) for d in result.days] == [(D2, "pending")]
    assert demo_snapshot(engine) == before
    assert any(r.getMessage().startswith("demo data kept: no exchange answered with margin data for "
                                         "2024-04-11..2024-04-11") for r in caplog.records)


def test_real_answers_replace_the_demo_data_in_one_go(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                     fetchers: Sources, few_sectors: None) -> None:
    """A demo database and an SSE that answers: the demo rows and flag are gone, the real rows are
    stored, and SSE's answer that decided it is asked once, not again for the day's own step. The
    demo's calendar, which reaches past today, is replaced by upstream's."""
    seed_hand_demo(engine)
    result = ingest_run(engine, settings, fetchers, start=D1)
    assert result.ok and all(d.complete for d in result.days)
    assert result.notes[0] == "demo data removed: real data replaces it"
    assert [a for a in fake.asked if a[0] == "sse_summary"] == [("sse_summary", D2)]
    assert fake.calendar_calls == 1
    with Session(engine) as s:
        assert get_meta(s, "demo") == "false"
        sources = set(s.execute(select(models.MarginSummary.source)).scalars())
        assert sources == {"sse", "szse", "bse", "eastmoney"}
        assert set(s.execute(select(models.TradingDay.trade_date)).scalars()) == set(calendar_days())
        assert s.execute(select(func.count()).select_from(models.StockMargin)).scalar() == 2 * 70
        assert s.execute(select(func.count()).where(models.StockMargin.code == "600999")).scalar() == 0


def test_an_sse_outage_does_not_keep_the_demo_data_when_szse_answers(
    engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
) -> None:
    """SSE down, SZSE's summary plausible: that is real data, so the demo data go; SZSE's answer is
    not asked twice, and SSE's day is recorded as failed."""
    seed_hand_demo(engine)
    fake.override["sse_summary", D2] = _raise(requests.exceptions.ReadTimeout("read timed out"))
    result = ingest_run(engine, settings, fetchers, start=D2)
    assert "demo data removed: real data replaces it" in result.notes
    assert [a for a in fake.asked if a[0] == "szse_summary"] == [("szse_summary", D2)]
    assert status_of(engine, D2, "sse_summary").status == "failed"
    with Session(engine) as s:
        assert get_meta(s, "demo") == "false"
        assert summary_row(s, D2, "SZSE").source == "szse"
        assert s.execute(select(func.count()).where(models.MarginSummary.source == "demo")).scalar() == 0


# --- partial, late and repeated answers ----------------------------------------------------------------


def test_a_bar_of_the_running_session_is_never_stored(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                      fetchers: Sources, few_sectors: None) -> None:
    """A run during D2's session sees Eastmoney's partial D2 bar: it is left out, and the next
    morning's run stores D2's final bar (and its amount as the turnover fallback)."""
    for symbol, market, name in (("sh000001", 1, "上证指数"), ("sz399001", 0, "深证成指")):
        bars = INDEX_BARS[symbol]
        partial = [*bars[:2], replace(bars[2], close=bars[2].close - 50, amount=90_000_000_000.0)]
        fake.override[f"index_{symbol}", None] = (
            lambda symbol=symbol, market=market, name=name, partial=partial:
            (200, {}, up.em_kline_json(symbol[2:], market, name, partial)))
    during = ingest_run(engine, settings, fetchers, start=D1, today=D2)
    assert [d.day for d in during.days] == [D1]
    with Session(engine) as s:
        stored = set(s.execute(select(models.IndexDaily.trade_date).where(
            models.IndexDaily.symbol == "sh000001")).scalars())
        assert stored == {D0, D1}
    fake.override = {}
    fake.override["sse_turnover", D2] = _turnover_html  # the fallback amount is what the ratio divides by
    ingest_run(engine, settings, fetchers, start=D1)
    with Session(engine) as s:
        sh = s.execute(select(models.IndexDaily).where(models.IndexDaily.symbol == "sh000001",
                                                       models.IndexDaily.trade_date == D2)).scalar_one()
        assert (sh.close, sh.amount) == (3034.25, 328_912_345_678.0)
        tv = s.execute(select(models.Turnover).where(models.Turnover.trade_date == D2,
                                                     models.Turnover.exchange == "SSE")).scalar_one()
        assert (tv.amount, tv.source) == (328_912_345_678.0, "index_amount")


def test_an_implausible_sse_row_refuses_its_own_day_only(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                         fetchers: Sources, few_sectors: None) -> None:
    """SSE is asked for D0..D2 in one call. A broken identity on D0 (only the base of D1's 融资偿还额)
    leaves D1 and D2 complete, D1 without rzche; the same on D1 refuses D1 alone."""
    def broken(day: date) -> Callable[[], Reply]:
        def reply() -> Reply:
            rows = [replace(r, rzrqjyzl=r.rzye + 2 * r.rqylje) if r.day == day else r
                    for r in fake.sse_summary_rows(D0, D2)]
            return 200, {}, up.sse_summary_json(rows)
        return reply

    fake.override["sse_summary", D2] = broken(D0)
    result = ingest_run(engine, settings, fetchers, start=D1, history=False)
    assert [d.complete for d in result.days] == [True, True]
    with Session(engine) as s:
        assert summary_row(s, D1, "SSE").rzche is None  # its base was refused
        assert summary_row(s, D2, "SSE").rzche == 42_345_678_901

    with session_scope(engine) as s:
        s.execute(models.IngestStatus.__table__.delete())
        s.execute(models.MarginSummary.__table__.delete().where(models.MarginSummary.exchange == "SSE"))
    fake.override["sse_summary", D2] = broken(D1)
    result = ingest_run(engine, settings, fetchers, start=D1, history=False)
    assert [d.status for d in result.days] == ["failed", "done"]
    row = status_of(engine, D1, "sse_summary")
    assert row.status == "failed" and "SSE 2024-04-10: 两融余额" in row.message
    with Session(engine) as s:
        assert summary_row(s, D2, "SSE").rzche is None  # D1, its base, was refused


def test_rzche_is_derived_when_the_previous_day_arrives_late(engine: Engine, fake: FakeUpstream,
                                                             settings: Settings, fetchers: Sources,
                                                             few_sectors: None) -> None:
    """SZSE's D1 fails and D2 is stored without 融资偿还额 (SZSE omits it); when D1 lands, D2's is
    derived from it, per exchange and per stock, and D2's sectors are rebuilt with it."""
    fake.override["szse_summary", D1] = _turnover_html
    fake.override["szse_detail", D1] = _turnover_html
    ingest_run(engine, settings, fetchers, start=D1)  # with the Shenwan classes: D2 gets its sectors
    ic, sd = models.IndustryClass, models.SectorDaily
    with Session(engine) as s:
        assert summary_row(s, D2, "SZSE").rzche is None and stock_row(s, D2, "000001").rzche is None
        (code,) = set(s.execute(select(ic.sw_l1_code).where(ic.code == "000001")).scalars())
        sector = s.execute(select(sd).where(sd.trade_date == D2, sd.sw_l1_code == code)).scalar_one()
        assert sector.rzche is None  # a member's is unknown: the sector's is too, never a sum counting it as 0
    del fake.override["szse_summary", D1], fake.override["szse_detail", D1]
    result = ingest_run(engine, settings, fetchers, history=False)
    assert [d.day for d in result.days] == [D1] and result.days[0].complete
    m = sample_market()
    with Session(engine) as s:
        szse = summary_row(s, D2, "SZSE")
        assert szse.rzche == 706_812_000_000 + 32_108_000_000 - 707_767_000_000 and szse.rzche_derived
        before, now = m["SZSE", D1].detail[0], m["SZSE", D2].detail[0]
        assert stock_row(s, D2, "000001").rzche == before.rzye + now.rzmre - now.rzye
        members = s.execute(select(models.StockMargin).where(
            models.StockMargin.trade_date == D2,
            models.StockMargin.code.in_(select(ic.code).where(ic.sw_l1_code == code)))).scalars().all()
        sector = s.execute(select(sd).where(sd.trade_date == D2, sd.sw_l1_code == code)).scalar_one()
        assert len(members) == sector.stock_count == 2
        assert sector.rzche == pytest.approx(sum(x.rzche for x in members), rel=1e-12)


def test_a_detail_waits_for_its_summary_and_is_checked_against_it(engine: Engine, fake: FakeUpstream,
                                                                   settings: Settings, fetchers: Sources,
                                                                   few_sectors: None) -> None:
    """SZSE's summary not yet out: the detail is not even asked for. When the summary comes, a
    detail 20% short of it is refused as it would have been in the other order."""
    fake.override["szse_summary", D2] = _pending(fake, "szse_summary")
    fake.override["szse_detail", D2] = lambda: _detail_short(fake)
    first = ingest_run(engine, settings, fetchers, start=D2, history=False)
    row = status_of(engine, D2, "szse_detail")
    assert (row.status, row.message) == ("pending", "SZSE's detail for 2024-04-11 waits for its summary")
    assert ("szse_detail", D2) not in fake.asked and first.days[0].status == "pending"
    del fake.override["szse_summary", D2]
    second = ingest_run(engine, settings, fetchers, start=D2, history=False)
    row = status_of(engine, D2, "szse_detail")
    assert row.status == "failed" and "off the summary" in row.message and not second.days[0].complete
    with Session(engine) as s:
        assert s.execute(select(func.count()).where(models.StockMargin.exchange == "SZSE")).scalar() == 0


def test_an_answer_repeating_the_day_before_is_not_yet_published(engine: Engine, fake: FakeUpstream,
                                                                  settings: Settings, fetchers: Sources,
                                                                  few_sectors: None) -> None:
    """SZSE's and BSE's answers carry no date: one equal to D1's, asked for D2, is D1 served again."""
    m = sample_market()
    fake.override["szse_summary", D2] = lambda: (200, {}, up.szse_summary_json(D2, szse_summary_of(m["SZSE", D1])))
    fake.override["bse_detail", D2] = lambda: (200, {}, up.bse_detail_jsonp(D2, m["BSE", D1].detail))
    first = ingest_run(engine, settings, fetchers, start=D1, history=False)
    assert [d.status for d in first.days] == ["done", "pending"]
    assert "repeats 2024-04-10's: not published yet" in status_of(engine, D2, "szse_summary").message
    bse = status_of(engine, D2, "bse_detail")
    assert (bse.status == "pending"
            and bse.message == "BSE's detail for 2024-04-11 repeats 2024-04-10's: not published yet")
    with Session(engine) as s:
        assert s.execute(select(func.count()).where(models.MarginSummary.trade_date == D2,
                                                    models.MarginSummary.exchange == "SZSE")).scalar() == 0
    fake.override = {}
    second = ingest_run(engine, settings, fetchers, history=False)
    assert second.ok and missing_steps(engine, D2) == []
    with Session(engine) as s:
        assert summary_row(s, D2, "SZSE").rzye == 707_767_000_000


def test_a_dripping_server_is_given_up_at_the_deadline() -> None:
    """Each byte comes within the socket timeout (every 0.05 s, the timeout is 0.5 s), the whole answer
    (100 bytes, 5 s) never within the 0.2 s deadline: the deadline, not the socket timeout, ends it."""
    import socket
    import threading

    from storage.upstream import call

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            while not stop.wait(0.05):
                conn.sendall(b"x")

    threading.Thread(target=drip, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"
    try:
        with pytest.raises(UpstreamError, match=r"^no complete answer within 0\.2 s$"):
            call("drip", lambda: requests.get(url).text, CallPolicy(timeout=0.5, deadline=0.2, retries=0))
    finally:
        stop.set()
        server.close()


# --- SSE's 融券余额, valued at the day's closes -----------------------------------------------------------


def sse_lending(engine: Engine, day: date) -> dict[str, tuple[float | None, bool]]:
    sm = models.StockMargin
    with Session(engine) as s:
        return {code: (rqye, estimated) for code, rqye, estimated in s.execute(
            select(sm.code, sm.rqye, sm.rqye_estimated).where(sm.trade_date == day, sm.exchange == "SSE"))}


def test_quotes_asked_during_the_session_value_lending_at_yesterdays_close(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    """Asked once the next session runs, 最新价 is live and 昨收 holds D2's closes: 昨收 is used, for
    stocks and ETFs alike; the sectors of D2 carry the estimate."""
    fake.quote_time = "session"
    result = ingest_run(engine, settings, fetchers, start=D2)
    assert result.ok, result.details()
    closes, m = fake.closes(D2), sample_market()
    lending = sse_lending(engine, D2)
    for row in m["SSE", D2].detail:
        assert lending[row.code] == (round(row.rqyl * closes[row.code], 2), True), row.code
    assert lending["510300"][1]  # an ETF, from the fund list
    with Session(engine) as s:
        sectors = s.execute(select(func.sum(models.SectorDaily.rqye))
                            .where(models.SectorDaily.trade_date == D2)).scalar()
        stocks = s.execute(select(func.sum(models.StockMargin.rqye)).where(
            models.StockMargin.trade_date == D2, ~models.StockMargin.is_fund,
            models.StockMargin.exchange != "BSE")).scalar()
        bse = s.execute(select(func.sum(models.StockMargin.rqye)).where(
            models.StockMargin.trade_date == D2, models.StockMargin.exchange == "BSE")).scalar()
    assert sectors == pytest.approx(stocks + bse, rel=1e-9)
    # the reports say where a figure is estimated
    from reports.service import ReportService

    service = ReportService(engine)
    stock = service.render("stock", code="600519", on=D2, lang="zh", chart=False)
    assert stock.data["rqye_estimated"] and "（按收盘价估算）" in stock.caption
    signals = service.render("signals", on=D2, lang="en", chart=False)
    structure = signals.data["short_structure"]
    assert (structure["estimated_rqye"], structure["missing_rqye"]) == (len(lending), 0)
    assert (f"The securities-lending balance of {len(lending)} SSE securities is estimated as shares lent x close"
            in signals.text_plain())


def test_quotes_of_a_later_day_are_refused_and_not_asked_again_that_day(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    fake.quote_time = "later"
    result = ingest_run(engine, settings, fetchers, start=D2)
    step = history_step(result, "sse_rqye")
    assert step.status == "failed" and "neither 最新价 nor 昨收 holds the closes of 2024-04-11" in step.message
    assert result.days[0].complete  # the day itself is complete: the estimate is an addition
    assert all(rqye is None and not estimated for rqye, estimated in sse_lending(engine, D2).values())
    asked = fake.asked.count(("stock_quotes", None))
    again = ingest_run(engine, settings, fetchers, start=D2)
    assert history_step(again, "sse_rqye").message == "up to date" and fake.asked.count(("stock_quotes", None)) == asked


def test_closes_that_do_not_add_up_to_the_summary_are_refused(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The quotes agree with SZSE's closes, yet SSE's lending valued at them is 3x its summary's: a unit
    or a code mix-up somewhere; nothing is written."""
    real = fake.closes
    monkeypatch.setattr(fake, "closes", lambda day: {c: v * (3 if c.startswith("6") or c.startswith("5") else 1)
                                                     for c, v in real(day).items()})
    result = ingest_run(engine, settings, fetchers, start=D2)
    step = history_step(result, "sse_rqye")
    assert step.status == "failed" and "off its summary's" in step.message
    assert all(rqye is None for rqye, _ in sse_lending(engine, D2).values())
    asked = fake.asked.count(("stock_quotes", None))
    ingest_run(engine, settings, fetchers, start=D2)  # not asked again the same day
    assert fake.asked.count(("stock_quotes", None)) == asked


def test_the_short_structure_shift_compares_like_with_like(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    """D0..D2 stored, SSE's lending valued for D2 only (the quotes are of the morning after D2): the
    shares of D2 count SSE, D0's could not, so no 20-day shift is shown rather than a false one."""
    from reports.service import ReportService

    result = ingest_run(engine, settings, fetchers, start=D0)
    assert result.ok, result.details()
    assert not any(estimated for _, estimated in sse_lending(engine, D0).values())
    report = ReportService(engine).render("signals", on=D2, lang="zh", chart=False)
    structure = report.data["short_structure"]
    # every SSE security of D2's detail is valued: the 6 named ones (2 of them ETFs) and the 24 fillers
    assert len(sample_market()["SSE", D2].detail) == len(sse_lending(engine, D2)) == 30
    assert structure["estimated_rqye"] == 30 and structure["missing_rqye"] == 0
    assert structure["change_pp"] is None and not structure["hedging_rising"]
    shown = report.text_plain()
    assert "融券结构：ETF" in shown and "20日变化" not in shown


def test_lending_valued_on_its_own_after_an_ingest_without_it(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None) -> None:
    """The bot ingests without the valuation (its push does not wait for the quotes), then values
    the day's lending on its own; asked again, nothing is fetched."""
    result = ingest_run(engine, settings, fetchers, start=D2, lending=False)
    assert result.ok and all(h.source != "sse_rqye" for h in result.history)
    assert all(rqye is None for rqye, _ in sse_lending(engine, D2).values())
    step = history.estimate_sse_lending(engine, settings, today=TODAY, fetchers=fetchers)
    assert (step.status, step.rows) == ("done", len(sse_lending(engine, D2)))
    assert all(estimated for _, estimated in sse_lending(engine, D2).values())
    asked = len(fake.asked)
    again = history.estimate_sse_lending(engine, settings, today=TODAY, fetchers=fetchers)
    assert (again.status, again.message) == ("done", "up to date") and len(fake.asked) == asked


def test_an_attempt_past_its_deadline_asks_no_more_and_is_not_retried(rsps: responses.RequestsMock) -> None:
    """A paginated call (as akshare's Eastmoney lists are) slower than its deadline: given up once,
    not retried, and its abandoned thread makes no request after the deadline.

    The first page is held until the deadline has passed, so the deadline is crossed on purpose."""
    import threading

    from storage.upstream import DeadlinePassed, call

    release = threading.Event()

    def held_page(request: Any) -> Reply:
        release.wait(10)
        return 200, {}, "{}"

    rsps.add_callback(responses.GET, "https://example.invalid/page", callback=held_page)

    def pages() -> list[str]:
        return [requests.get("https://example.invalid/page", params={"pn": n}).text for n in range(1, 30)]

    with pytest.raises(DeadlinePassed, match="no complete answer within 0.2 s"):
        call("pages", pages, CallPolicy(timeout=5.0, deadline=0.2, retries=3, sleep=pytest.fail))
    [worker] = [t for t in threading.enumerate() if t.name == "upstream-pages"]
    release.set()  # the page in flight at the deadline ends; the next one is never asked
    worker.join(10)
    assert not worker.is_alive()
    assert len(rsps.calls) == 1


# --- rounding of small markets -----------------------------------------------------------------------


def test_szse_s_own_rounding_passes_on_a_small_market_day(rsps: responses.RequestsMock) -> None:
    """SZSE prints each figure in 亿元 to two decimals, so 20.00 + 0.33 can be printed beside 20.34 (each
    rounded on its own): 0.01 亿元 off, within 1.5 x SZSE's 0.01 亿元 (1e4 x 20.33 亿 would allow only
    0.002). A row 0.05 亿元 off is no rounding: refused."""
    day = date(2010, 6, 1)
    rsps.add(responses.GET, SZSE_SUMMARY_URL, body=up.szse_summary_json(
        day, up.SzseSummary("1.52", "20.00", "0.01", "0.05", "0.33", "20.34")))
    row = fetch_szse_summary(day, policy=CallPolicy(retries=0)).iloc[0]
    assert (row["rzye"], row["rqye"], row["rzrqye"], row["rzmre"]) == (2_000_000_000, 33_000_000, 2_034_000_000,
                                                                       152_000_000)
    rsps.replace(responses.GET, SZSE_SUMMARY_URL, body=up.szse_summary_json(
        day, up.SzseSummary("1.52", "20.00", "0.01", "0.05", "0.33", "20.38")))
    with pytest.raises(ValidationFailed, match=re.escape(
            "SZSE 2010-06-01: 两融余额 2.038e+09 != 融资余额 + 融券余额 = 2.033e+09 元")):
        fetch_szse_summary(day, policy=CallPolicy(retries=0))


def test_a_small_summary_gives_its_detail_the_summary_s_rounding(rsps: responses.RequestsMock) -> None:
    """SZSE's first days: a summary of 0.02 亿元 (printed to 0.01 亿元) against a detail summing to
    2,400,000 元 is 20% off but within 1.5 x 0.01 亿元: accepted; a detail of 4,000,000 元 is not."""
    day = date(2010, 4, 1)
    rows = [up.ExchangeDetail("000001", "平安银行", 900_000, 1_500_000, 1_000, 2_000, 30_000),
            up.ExchangeDetail("000002", "万  科Ａ", 300_000, 900_000, 1_100, 2_100, 31_000)]
    rsps.add(responses.GET, SZSE_DETAIL_URL, body=up.szse_detail_xlsx(rows))
    detail = Sources(CallPolicy(retries=0)).szse_detail(day)
    assert detail["rzye"].sum() == 2_400_000
    check_detail_against_summary(detail, 2_000_000.0, "SZSE")
    more = [rows[0], replace(rows[1], rzye=2_500_000)]
    rsps.replace(responses.GET, SZSE_DETAIL_URL, body=up.szse_detail_xlsx(more))
    with pytest.raises(ValidationFailed, match=r"SZSE detail 融资余额 sum 0.04 亿元 is \+100.0% off the summary 0.02"):
        check_detail_against_summary(Sources(CallPolicy(retries=0)).szse_detail(day), 2_000_000.0, "SZSE")
    with pytest.raises(ValidationFailed):  # SSE prints whole 元: its own 20% gap is no rounding
        check_detail_against_summary(detail, 2_000_000.0, "SSE")


# --- an old hole never holds up the latest day -------------------------------------------------------

OLD_BEFORE, OLD = date(2019, 6, 3), date(2019, 6, 4)


def old_hole(engine: Engine, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar reaching back to 2019, SSE's rows of two 2019 days, and 2019-06-04 left with its SSE
    summary failed once (every other step of that day stored): a hole years behind the latest days."""
    days = [OLD_BEFORE, OLD, *calendar_days()]
    monkeypatch.setattr(akshare, "tool_trade_date_hist_sina", lambda: pd.DataFrame({"trade_date": days}))
    fake.market["SSE", OLD_BEFORE] = up.exchange_day("SSE", OLD_BEFORE, 590_000_000_000, 30_000_000_000,
                                                     29_500_000_000, 5_000_000_000, 1_000_000_000, 40_000_000)
    fake.market["SSE", OLD] = up.exchange_day("SSE", OLD, 591_000_000_000, 30_000_000_000, 29_000_000_000,
                                              5_100_000_000, 1_010_000_000, 41_000_000)
    with session_scope(engine) as s:
        for source in ("szse_summary", "sse_detail", "szse_detail", "szse_turnover"):
            s.add(models.IngestStatus(trade_date=OLD, source=source, status="done", attempts=1))
        s.add(models.IngestStatus(trade_date=OLD, source="sse_summary", status="failed", attempts=1,
                                  message="timed out"))


def test_an_old_hole_never_delays_the_latest_day_and_is_given_up(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
        monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    """A 2019 hole whose SSE span times out: the latest day is asked for on its own, first, and is
    complete in the same run. After REQUIRED_MAX_ATTEMPTS failures (the last two in a row) the 2019
    step is given up: not complete, shown as such, no longer asked by runs of their own; a run given
    --start/--end asks it again."""
    monkeypatch.setattr(ingest_status, "REQUIRED_MAX_ATTEMPTS", 3)
    old_hole(engine, fake, monkeypatch)
    assert ingest_run(engine, settings, fetchers, start=D1, end=D1, history=False).ok  # D1 complete
    fake.override["sse_summary", OLD] = _raise(requests.exceptions.ConnectionError("connection reset by peer"))

    asked = len(fake.asked)
    first = ingest_run(engine, settings, fetchers, history=False)
    assert [(d.day, d.status) for d in first.days] == [(OLD, "failed"), (D2, "done")]
    assert missing_steps(engine, D2) == [] and latest_complete_date(engine) == D2
    per_day = [a for a in fake.asked[asked:] if a[0] in ingest_status.DAY_SOURCES]
    # D2 first, its SSE summary asked on its own (D1..D2); then the 2019 span, three attempts
    assert per_day[0] == ("sse_summary", D2) and per_day[-3:] == [("sse_summary", OLD)] * 3
    assert ("sse_summary", OLD) not in per_day[:-3]
    row = status_of(engine, OLD, "sse_summary")
    assert (row.status, row.attempts) == ("failed", 2) and "connection failed" in row.message

    second = ingest_run(engine, settings, fetchers, history=False)
    [step] = [s for s in second.days[0].steps if s.source == "sse_summary"]
    assert step.status == "given_up" and step.message.startswith("given up (marginbot ingest --start/--end")
    assert second.days[0].status == "failed" and not second.ok
    assert "given up now: 2019-06-04" in second.summary()
    row = status_of(engine, OLD, "sse_summary")
    assert (row.status, row.attempts) == ("given_up", 3) and "connection failed" in row.message
    # not complete: the reports and the push read it as missing, the status shows it with the failures
    assert missing_steps(engine, OLD) == ["sse_summary", "sector_daily"]
    from storage.status import read_status

    [shown] = [d for d in read_status(engine, days=10).recent_ingest if d.trade_date == OLD]
    assert [(source, message.startswith("given up")) for source, message in shown.failed] == [("sse_summary", True)]

    asked = len(fake.asked)
    third = ingest_run(engine, settings, fetchers, history=False, today=date(2024, 4, 15))
    assert ("sse_summary", OLD) not in fake.asked[asked:]  # skipped; the new day 2024-04-12 is worked
    assert [d.day for d in third.days] == [date(2024, 4, 12)] and third.skipped == [OLD]
    assert "1 given-up days skipped (2019-06-04..2019-06-04" in third.summary()

    del fake.override["sse_summary", OLD]
    backfill = ingest_run(engine, settings, fetchers, start=OLD, end=OLD, history=False)
    assert [(d.day, d.status) for d in backfill.days] == [(OLD, "done")] and backfill.ok
    assert missing_steps(engine, OLD) == [] and status_of(engine, OLD, "sse_summary").attempts == 4
    with Session(engine) as s:
        sse = summary_row(s, OLD, "SSE")
        assert (sse.rzye, sse.rzche, sse.rzche_derived) == (591_000_000_000, 29_000_000_000, True)


def test_the_latest_published_day_is_never_given_up(engine: Engine, fake: FakeUpstream, settings: Settings,
                                                     fetchers: Sources, monkeypatch: pytest.MonkeyPatch) -> None:
    """The day the push waits for keeps being asked however often it fails (the late-data warning
    tells the admins); it may be given up only once later days are published (GIVE_UP_AGE of them:
    here 1; by default an outage of a few days is waited out, see the next test)."""
    monkeypatch.setattr(ingest_status, "REQUIRED_MAX_ATTEMPTS", 2)
    monkeypatch.setattr(ingest, "GIVE_UP_AGE", 1)
    fake.override["szse_detail", D2] = lambda: (200, {"Content-Type": "text/html"}, up.HTML_ERROR_PAGE)
    for _ in range(3):
        ingest_run(engine, settings, fetchers, start=D2, history=False)
    row = status_of(engine, D2, "szse_detail")
    assert (row.status, row.attempts) == ("failed", 3)
    later = ingest_run(engine, settings, fetchers, start=D2, end=D2, history=False, today=date(2024, 4, 15))
    assert later.days[0].steps[0].status == "given_up"  # 2024-04-12 is out: D2 is no longer the latest


def test_a_day_is_given_up_only_once_it_is_old() -> None:
    """By default a failing day is kept (retried by every run) until it is GIVE_UP_AGE (10) trade
    dates behind the latest published day: a week's outage upstream heals without a backfill."""
    calendar = calendar_days()
    newest = calendar[-1]
    fetcher = ingest._DayFetcher.__new__(ingest._DayFetcher)
    fetcher.calendar, fetcher.newest = calendar, newest
    assert ingest.GIVE_UP_AGE == 10
    assert not fetcher.may_give_up(calendar[-10], "szse_detail")  # 9 trade dates back
    assert fetcher.may_give_up(calendar[-11], "szse_detail")  # 10 back
    assert not fetcher.may_give_up(calendar[-11], "szse_turnover")  # optional steps have their own rule
    assert not fetcher.may_give_up(newest, "sse_summary")


def test_sse_is_asked_per_span_of_missing_days() -> None:
    """Consecutive missing days are one request (from the trade date before the first); a gap starts
    another; a run longer than a request covers is cut from its newest day back. Newest first."""
    calendar = calendar_days()
    spans = ingest._sse_spans(calendar, [date(2023, 6, 1), date(2023, 6, 2), D1, D2])
    assert spans == [[D1, D2], [date(2023, 6, 1), date(2023, 6, 2)]]
    whole = [d for d in calendar if d <= D2]
    cut = ingest._sse_spans(calendar, whole)
    assert [s[-1] for s in cut] == [D2, cut[1][-1]] and cut[0][0] > date(2023, 4, 11)
    assert sum(cut, []) == sorted(whole, key=lambda d: (d < cut[0][0], d))  # every day once
    for span in cut:
        assert (span[-1] - (ingest.previous_trade_day(calendar, span[0]) or span[0])).days < 365


# --- ingestion status writes -------------------------------------------------------------------------


def test_status_writes_of_workers_at_once_count_every_attempt_and_never_undo_done(engine: Engine) -> None:
    """Each failure record is one conditional upsert (attempts + 1 in SQL, not where done): workers
    writing at once lose no attempt, and one that stores the step meanwhile keeps it done."""
    import threading

    def fail(source: str, times: int) -> None:
        for _ in range(times):
            ingest_status.record_problem(engine, D2, source, "timed out (no answer within 7.5 s)", "failed")

    threads = [threading.Thread(target=fail, args=("sse_detail", 5)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = status_of(engine, D2, "sse_detail")
    assert (row.status, row.attempts) == ("failed", 30)

    def store() -> None:
        with session_scope(engine) as s:
            ingest_status.set_status(s, D2, "szse_detail", "done", rows=30)

    threads = [threading.Thread(target=fail, args=("szse_detail", 5)) for _ in range(4)]
    threads.insert(2, threading.Thread(target=store))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = status_of(engine, D2, "szse_detail")
    assert row.status == "done" and row.rows == 30 and 1 <= row.attempts <= 21
    before = row.attempts
    assert ingest_status.record_problem(engine, D2, "szse_detail", "late failure", "failed").status == "done"
    assert status_of(engine, D2, "szse_detail").attempts == before


# --- derived repayment after a corrected day ---------------------------------------------------------


def test_an_import_correcting_an_ingested_day_makes_the_next_day_s_derived_repayment_again(
        engine: Engine, fake: FakeUpstream, settings: Settings, fetchers: Sources, few_sectors: None,
        tmp_path: Any) -> None:
    """SZSE omits 融资偿还额: the ingest derives D2's from D1's balance and marks it derived. A file
    correcting D1's balance (per stock, and SZSE's total) makes D2's again, and D2's sector; SSE's
    published per-stock figure is left as published."""
    from storage.importer import import_file

    assert ingest_run(engine, settings, fetchers, start=D1).ok
    m = sample_market()
    pingan1, pingan2 = m["SZSE", D1].detail[0], m["SZSE", D2].detail[0]
    with Session(engine) as s:
        row = stock_row(s, D2, "000001")
        assert row.rzche == pingan1.rzye + pingan2.rzmre - pingan2.rzye and row.rzche_derived
        moutai = stock_row(s, D2, "600519")
        assert moutai.rzche == m["SSE", D2].detail[0].rzche and not moutai.rzche_derived
    corrected = pingan1.rzye + 20_000_000
    stocks = tmp_path / "stocks.csv"
    stocks.write_text("date,code,name,rzye,rzmre,rzche,rqyl,rqmcl,rqchl,rqye\n"
                      f"{D1},000001,平安银行,{corrected},,,,,,\n{D1},600519,贵州茅台,1,,,,,,\n", encoding="utf-8")
    import_file(engine, "stocks", stocks)
    margin = tmp_path / "margin.csv"
    margin.write_text("date,exchange,rzye,rzmre,rzche,rqye,rqyl,rqmcl,rqmce,rzrqye\n"
                      f"{D1},SZSE,706912000000,,,,,,,\n", encoding="utf-8")
    import_file(engine, "margin", margin)
    ic, sd = models.IndustryClass, models.SectorDaily
    with Session(engine) as s:
        row = stock_row(s, D2, "000001")
        assert row.rzche == corrected + pingan2.rzmre - pingan2.rzye and row.rzche_derived
        assert stock_row(s, D2, "600519").rzche == m["SSE", D2].detail[0].rzche  # published: kept
        (code,) = set(s.execute(select(ic.sw_l1_code).where(ic.code == "000001")).scalars())
        members = s.execute(select(models.StockMargin).where(
            models.StockMargin.trade_date == D2,
            models.StockMargin.code.in_(select(ic.code).where(ic.sw_l1_code == code)))).scalars().all()
        sector = s.execute(select(sd).where(sd.trade_date == D2, sd.sw_l1_code == code)).scalar_one()
        assert sector.rzche == pytest.approx(sum(x.rzche for x in members), rel=1e-12)
        szse = summary_row(s, D2, "SZSE")
        assert szse.rzche == 706_912_000_000 + 32_108_000_000 - 707_767_000_000 and szse.rzche_derived
