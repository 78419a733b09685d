"""Upstream sources: every akshare call ingestion makes, one fetch function per call.

Each public fetch function calls one akshare function through storage.upstream.call (timeout,
deadline, retries) and returns a pandas frame whose columns are named as in storage.models, with
money in 元 and quantities in 股, checked by storage.plausibility. Units are converted on the way in:
SZSE's summary arrives in 亿元 / 亿股, BSE's summary in 万元 / 万股, Eastmoney's market history in 亿元.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from storage.industries import is_fund_code, level1_code
from storage.plausibility import (
    SSE_SPAN_DAYS,
    SUMMARY_UNIT,
    WAN,
    YI,
    check_codes,
    check_detail,
    check_summary,
    check_turnover,
    summary_row_problem,
)
from storage.upstream import CallPolicy, NotPublished, UpstreamError, ValidationFailed, call

if TYPE_CHECKING:
    from marginbot.settings import Settings

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["trade_date", "rzye", "rzmre", "rzche", "rzche_derived", "rqye", "rqyl", "rqmcl", "rzrqye"]
DETAIL_COLUMNS = [
    "code", "name", "exchange", "is_fund", "rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqchl", "rqye",
    "rqye_estimated",
]


def _ak() -> Any:
    """akshare, imported on first use (it takes seconds to import)."""
    import akshare

    return akshare


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


# --- validation --------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UpstreamError(f"{what}: answer lacks columns {', '.join(missing)}")


def _numbers(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)


# --- exchange summaries ------------------------------------------------------------------------------


def sse_summary(start: date, end: date, *, previous_rzye: float | None = None,
                policy: CallPolicy | None = None) -> pd.DataFrame:
    """SSE daily totals for trade dates in [start, end], oldest first (元, 股): SUMMARY_COLUMNS.

    akshare's output has no 融资偿还额 (SSE's JSON has one, but akshare drops it by position): it is
    derived from the previous row of the same answer (rows are consecutive trade days), or from
    `previous_rzye` for the first row, and marked rzche_derived. Asks in spans of SSE_SPAN_DAYS.
    Column `problem` says why a row is implausible (None for a plausible row): the caller refuses
    that day alone.
    """
    policy = policy or CallPolicy()
    parts = []
    span_start = start
    while span_start <= end:
        span_end = min(end, span_start + timedelta(days=SSE_SPAN_DAYS - 1))
        a, b = _ymd(span_start), _ymd(span_end)
        # An empty span (holidays, or not published yet) is no failure: the other spans may hold rows.
        with suppress(NotPublished):
            parts.append(call("sse_summary", lambda a=a, b=b: _ak().stock_margin_sse(start_date=a, end_date=b), policy))
        span_start = span_end + timedelta(days=1)
    parts = [p for p in parts if not p.empty]
    if not parts:
        raise NotPublished(f"SSE has no summary for {start}..{end} yet")
    raw = pd.concat(parts, ignore_index=True)
    _require_columns(raw, ["信用交易日期", "融资余额", "融资买入额", "融券余量", "融券余量金额", "融券卖出量",
                           "融资融券余额"], "SSE summary")
    frame = pd.DataFrame({
        "trade_date": pd.to_datetime(raw["信用交易日期"].astype(str), format="%Y%m%d", errors="coerce").dt.date,
        "rzye": raw["融资余额"], "rzmre": raw["融资买入额"], "rqye": raw["融券余量金额"],
        "rqyl": raw["融券余量"], "rqmcl": raw["融券卖出量"], "rzrqye": raw["融资融券余额"],
    })
    if frame["trade_date"].isna().any():
        raise UpstreamError("SSE summary: answer has a malformed 信用交易日期")
    outside = frame[(frame["trade_date"] < start) | (frame["trade_date"] > end)]
    if not outside.empty:
        raise ValidationFailed(f"SSE summary: asked {start}..{end}, answer holds {outside['trade_date'].iloc[0]}")
    frame = frame.drop_duplicates("trade_date").sort_values("trade_date", ignore_index=True)
    _numbers(frame, ["rzye", "rzmre", "rqye", "rqyl", "rqmcl", "rzrqye"])
    previous = frame["rzye"].shift(1)
    if previous_rzye is not None and len(frame):
        previous.iloc[0] = previous_rzye
    frame["rzche"] = previous + frame["rzmre"] - frame["rzye"]
    frame["rzche_derived"] = frame["rzche"].notna()
    # Judged row by row: one implausible day in a span of many must not refuse the others.
    frame["problem"] = [summary_row_problem(row, "SSE") for row in frame.itertuples(index=False)]
    return frame[[*SUMMARY_COLUMNS, "problem"]]


def _single_day_summary(raw: pd.DataFrame, day: date, scale_money: float, scale_shares: float,
                        exchange: str, unit: float) -> pd.DataFrame:
    """One exchange's summary row in 元 and 股 (money x scale_money, quantities x scale_shares),
    checked with the rounding of its printed figures (`unit`, 元)."""
    if raw.empty:
        raise NotPublished(f"{exchange} has no summary for {day} yet")
    _require_columns(raw, ["融资买入额", "融资余额", "融券卖出量", "融券余量", "融券余额", "融资融券余额"],
                     f"{exchange} summary")
    if len(raw) != 1:
        raise ValidationFailed(f"{exchange} summary: expected one row for {day}, got {len(raw)}")
    frame = pd.DataFrame({
        "trade_date": [day],
        "rzye": raw["融资余额"].to_numpy(), "rzmre": raw["融资买入额"].to_numpy(),
        "rqye": raw["融券余额"].to_numpy(), "rqyl": raw["融券余量"].to_numpy(),
        "rqmcl": raw["融券卖出量"].to_numpy(), "rzrqye": raw["融资融券余额"].to_numpy(),
    })
    _numbers(frame, ["rzye", "rzmre", "rqye", "rqyl", "rqmcl", "rzrqye"])
    if frame[["rzye", "rzrqye"]].isna().any(axis=None):
        raise UpstreamError(f"{exchange} summary: 融资余额 or 两融余额 is not a number")
    # Whole 元 and 股: the published figures are far coarser, and this removes float noise (7077.67 x 1e8).
    for column in ("rzye", "rzmre", "rqye", "rzrqye"):
        frame[column] = (frame[column] * scale_money).round(0)
    for column in ("rqyl", "rqmcl"):
        frame[column] = (frame[column] * scale_shares).round(0)
    frame["rzche"] = np.nan
    frame["rzche_derived"] = False
    check_summary(frame, exchange, unit)
    return frame[SUMMARY_COLUMNS]


def szse_summary(day: date, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """SZSE totals of one day, one row (元, 股; SZSE sends 亿元 and 亿股). 融资偿还额 is left NaN.

    SZSE's answer carries no date in akshare's output, so the date cannot be checked here.
    """
    raw = call("szse_summary", lambda: _ak().stock_margin_szse(date=_ymd(day)), policy or CallPolicy())
    return _single_day_summary(raw, day, YI, YI, "SZSE", SUMMARY_UNIT["SZSE"])


def bse_summary(day: date, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """BSE totals of one day, one row (元, 股; BSE sends 万元 and 万股). 融资偿还额 is left NaN."""
    raw = call("bse_summary", lambda: _ak().stock_margin_bse(date=_ymd(day)), policy or CallPolicy())
    return _single_day_summary(raw, day, WAN, WAN, "BSE", SUMMARY_UNIT["BSE"])


# --- per-stock detail --------------------------------------------------------------------------------


def _codes(series: pd.Series) -> pd.Series:
    text = series.astype(str).str.strip().str.replace(r"\.0$", "", regex=True)
    return text.where(~text.str.fullmatch(r"\d{1,5}"), text.str.zfill(6))


def _detail_frame(raw: pd.DataFrame, exchange: str, mapping: Mapping[str, str]) -> pd.DataFrame:
    _require_columns(raw, list(mapping), f"{exchange} detail")
    frame = raw[list(mapping)].rename(columns=dict(mapping)).reset_index(drop=True)
    frame["code"] = _codes(frame["code"])
    frame["name"] = frame["name"].fillna("").astype(str).str.replace("&nbsp;", "").str.strip()
    for column in ("rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqchl", "rqye", "rzrqye"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        elif column != "rzrqye":
            frame[column] = np.nan
    if frame["rzye"].isna().all():
        raise UpstreamError(f"{exchange} detail: 融资余额 is not a number in any row")
    # The exchanges publish every listed security's 融资余额 as a number (0 where it has none): one
    # that is not (a blank, a dash: akshare has made it NaN) is an answer in a format not known, and
    # a row kept with it would be stored with no balance and leave the day's sum short.
    blank = frame.loc[frame["rzye"].isna(), "code"]
    if not blank.empty:
        more = f" (and {len(blank) - 1} more)" if len(blank) > 1 else ""
        raise UpstreamError(f"{exchange} detail: 融资余额 of {blank.iloc[0]} is not a number{more}")
    frame["exchange"] = exchange
    frame["is_fund"] = frame["code"].map(is_fund_code).astype(bool)
    frame["rqye_estimated"] = False
    check_detail(frame, exchange)
    return frame


def sse_detail(day: date, *, closes: Mapping[str, float] | None = None,
               policy: CallPolicy | None = None) -> pd.DataFrame:
    """SSE per-security detail of one day (元, 股): DETAIL_COLUMNS.

    SSE publishes no per-stock 融券余额: it is estimated as 融券余量 x close for the codes in `closes`
    (rqye_estimated True) and left NaN elsewhere (rqye_estimated False). Funds and ETFs are marked.
    """
    raw = call("sse_detail", lambda: _ak().stock_margin_detail_sse(date=_ymd(day)), policy or CallPolicy())
    if raw.empty:
        raise NotPublished(f"SSE has no detail for {day} yet")
    _require_columns(raw, ["信用交易日期"], "SSE detail")
    dates = set(raw["信用交易日期"].astype(str))
    if dates != {_ymd(day)}:
        raise ValidationFailed(f"SSE detail: asked {day}, answer is for {', '.join(sorted(dates))}")
    frame = _detail_frame(raw, "SSE", {
        "标的证券代码": "code", "标的证券简称": "name", "融资余额": "rzye", "融资买入额": "rzmre",
        "融资偿还额": "rzche", "融券余量": "rqyl", "融券卖出量": "rqmcl", "融券偿还量": "rqchl",
    })
    if closes:
        price = frame["code"].map(closes).astype(float)
        known = price.notna() & frame["rqyl"].notna()
        frame.loc[known, "rqye"] = frame.loc[known, "rqyl"] * price[known]
        frame.loc[known, "rqye_estimated"] = True
    return frame[DETAIL_COLUMNS]


_EXCHANGE_DETAIL = {
    "证券代码": "code", "证券简称": "name", "融资买入额": "rzmre", "融资余额": "rzye", "融券卖出量": "rqmcl",
    "融券余量": "rqyl", "融券余额": "rqye", "融资融券余额": "rzrqye",
}


def szse_detail(day: date, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """SZSE per-security detail of one day (元, 股; from an xlsx whose numbers are text with commas).

    No 融资偿还额 or 融券偿还量 per stock (NaN). The xlsx carries no date to check against `day`.
    """
    raw = call("szse_detail", lambda: _ak().stock_margin_detail_szse(date=_ymd(day)), policy or CallPolicy())
    if raw.empty:
        raise NotPublished(f"SZSE has no detail for {day} yet")
    return _detail_frame(raw, "SZSE", _EXCHANGE_DETAIL)[DETAIL_COLUMNS]


def bse_detail(day: date, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """BSE per-security detail of one day (元, 股). No 融资偿还额 or 融券偿还量 per stock (NaN)."""
    raw = call("bse_detail", lambda: _ak().stock_margin_detail_bse(date=_ymd(day)), policy or CallPolicy())
    if raw.empty:
        raise NotPublished(f"BSE has no detail for {day} yet")
    return _detail_frame(raw, "BSE", _EXCHANGE_DETAIL)[DETAIL_COLUMNS]


# --- histories ---------------------------------------------------------------------------------------


def market_account_history(*, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Eastmoney's whole-market history, oldest first: trade_date, rzye, rqye, rzmre, rqmce, rzrqye (元).

    Eastmoney sends 亿元; it is the one source of 融券卖出额 (rqmce) in 元.
    """
    raw = call("em_account", lambda: _ak().stock_margin_account_info(), policy or CallPolicy())
    if raw.empty:
        raise UpstreamError("Eastmoney account history: empty answer")
    _require_columns(raw, ["日期", "融资余额", "融券余额", "融资买入额", "融券卖出额"], "Eastmoney account history")
    frame = pd.DataFrame({
        "trade_date": pd.to_datetime(raw["日期"], errors="coerce").dt.date,
        "rzye": raw["融资余额"], "rqye": raw["融券余额"], "rzmre": raw["融资买入额"], "rqmce": raw["融券卖出额"],
    })
    _numbers(frame, ["rzye", "rqye", "rzmre", "rqmce"])
    frame = frame.dropna(subset=["trade_date", "rzye"])
    if frame.empty:
        raise UpstreamError("Eastmoney account history: no row with a date and 融资余额")
    if frame["trade_date"].duplicated().any():
        raise ValidationFailed("Eastmoney account history: a date appears twice")
    for column in ("rzye", "rqye", "rzmre", "rqmce"):
        frame[column] = (frame[column] * YI).round(0)
    frame["rzrqye"] = frame["rzye"] + frame["rqye"]  # unknown where 融券余额 is unknown
    frame = frame.sort_values("trade_date", ignore_index=True)
    check_summary(frame.assign(rqyl=np.nan, rqmcl=np.nan), "ALL", SUMMARY_UNIT["ALL"])
    return frame[["trade_date", "rzye", "rqye", "rzmre", "rqmce", "rzrqye"]]


def index_history(symbol: str, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Daily bars of an exchange index ("sh000001", "sz399001"): trade_date, close, amount (元).

    The `amount` is the whole exchange's turnover (B shares included): the fallback for A股成交额.
    """
    raw = call(f"index_{symbol}", lambda: _ak().stock_zh_index_daily_em(symbol=symbol), policy or CallPolicy())
    if raw.empty:
        raise UpstreamError(f"index {symbol}: empty answer")
    _require_columns(raw, ["date", "close", "amount"], f"index {symbol}")
    frame = pd.DataFrame({
        "trade_date": pd.to_datetime(raw["date"], errors="coerce").dt.date,
        "close": raw["close"], "amount": raw["amount"],
    })
    _numbers(frame, ["close", "amount"])
    frame = frame.dropna(subset=["trade_date", "close"]).drop_duplicates("trade_date")
    frame = frame.sort_values("trade_date", ignore_index=True)
    if frame.empty or (frame["close"] <= 0).any() or (frame["amount"] < 0).any():
        raise ValidationFailed(f"index {symbol}: missing, zero or negative closes or amounts")
    recent = frame["amount"].tail(20).max()
    if not 1e9 <= recent <= 5e13:
        raise ValidationFailed(f"index {symbol}: daily amount {recent:.6g} 元 is implausible (unit changed?)")
    return frame


# --- quotes ------------------------------------------------------------------------------------------


def quotes(*, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Eastmoney's quotes of every A share and exchange-traded fund as they stand now: code, last
    (最新价) and prev_close (昨收), 元 per share; NaN where a security has none (suspended).

    The answer names no trade date: which day's closes it holds depends on the hour it is asked
    (see storage.ingest for how that day is told). Used to value SSE's 融券余量, which SSE publishes
    without a 融券余额.
    """
    policy = policy or CallPolicy()
    parts = []
    for name, fetch in (("stock_quotes", lambda: _ak().stock_zh_a_spot_em()),
                        ("fund_quotes", lambda: _ak().fund_etf_spot_em())):
        raw = call(name, fetch, policy)
        if raw.empty:
            raise UpstreamError(f"{name}: empty answer")
        _require_columns(raw, ["代码", "最新价", "昨收"], name)
        parts.append(pd.DataFrame({"code": _codes(raw["代码"]), "last": raw["最新价"], "prev_close": raw["昨收"]}))
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("code", ignore_index=True)
    _numbers(frame, ["last", "prev_close"])
    check_codes(frame, "quotes")
    for column in ("last", "prev_close"):  # a new listing's 昨收 may be 0: no price, not a bad answer
        frame.loc[frame[column] <= 0, column] = np.nan
    return frame


# --- official A-share turnover ------------------------------------------------------------------------
# SSE's per-day deal statistics (stock_sse_deal_daily) answer from this day on.
SSE_DEAL_DAILY_START = date(2021, 12, 27)
# SZSE's 证券类别 rows that are A shares: 中小板 until it merged into the main board on 2021-04-06.
SZSE_A_SHARE_ROWS = ("主板A股", "中小板", "创业板A股")
_SZSE_REQUIRED_ROWS = ("主板A股", "创业板A股")
_EMPTY_RESULT = re.compile(r"Length mismatch: Expected axis has 1 elements")


def sse_turnover(day: date, *, policy: CallPolicy | None = None) -> float:
    """SSE's A-share turnover of one day in 元: 主板A + 科创板 of stock_sse_deal_daily (SSE sends 亿元).

    B shares and 股票回购 are left out. SSE answers an empty `result` for a day it has not published
    (akshare then raises a column-length mismatch): NotPublished. akshare drops the answer's 报告日期,
    so the date cannot be checked here.
    """
    def fetch() -> pd.DataFrame:
        try:
            return _ak().stock_sse_deal_daily(date=_ymd(day))
        except ValueError as exc:
            if _EMPTY_RESULT.search(str(exc)):
                raise NotPublished(f"SSE has no deal statistics for {day} yet") from exc
            raise

    raw = call("sse_turnover", fetch, policy or CallPolicy())
    what = f"SSE deal statistics {day}"
    _require_columns(raw, ["单日情况", "主板A", "科创板"], what)
    rows = raw[raw["单日情况"].astype(str) == "成交金额"]
    if len(rows) != 1:
        raise UpstreamError(f"{what}: {len(rows)} rows of 成交金额, expected one")
    main, star = (pd.to_numeric(rows[c], errors="coerce").astype(float).iloc[0] for c in ("主板A", "科创板"))
    if np.isnan(main) and np.isnan(star):
        raise NotPublished(f"SSE has no 成交金额 for {day} yet")
    if np.isnan(main) or np.isnan(star):
        raise UpstreamError(f"{what}: 成交金额 of 主板A or 科创板 is not a number")
    if main < 0 or star < 0:
        raise ValidationFailed(f"{what}: negative 成交金额")
    if main + star == 0:
        raise NotPublished(f"SSE shows no 成交金额 for {day} yet")
    # Whole 元: SSE prints 亿元 with two decimals, and this removes float noise (3012.45 x 1e8).
    return check_turnover(float(round((main + star) * YI)), what)


def szse_turnover(day: date, *, policy: CallPolicy | None = None) -> float:
    """SZSE's A-share turnover of one day in 元: the 主板A股 and 创业板A股 rows (and 中小板 while it existed).

    From stock_szse_summary (an xlsx of 证券类别 rows, 成交金额 in 元); B shares, funds and bonds are left
    out. The workbook carries no date to check against `day`. A workbook without rows: NotPublished.
    """
    raw = call("szse_turnover", lambda: _ak().stock_szse_summary(date=_ymd(day)), policy or CallPolicy())
    what = f"SZSE overview {day}"
    _require_columns(raw, ["证券类别", "成交金额"], what)
    if raw.empty:
        raise NotPublished(f"SZSE has no overview for {day} yet")
    category = raw["证券类别"].astype(str).str.strip()
    amount = pd.to_numeric(raw["成交金额"], errors="coerce").astype(float)
    picked = raw[category.isin(SZSE_A_SHARE_ROWS)]
    names = list(category[picked.index])
    for name in _SZSE_REQUIRED_ROWS:
        if names.count(name) != 1:
            raise UpstreamError(f"{what}: {names.count(name)} rows of {name}, expected one")
    if names.count("中小板") > 1:
        raise UpstreamError(f"{what}: several rows of 中小板")
    values = amount[picked.index]
    if values.isna().any():
        raise UpstreamError(f"{what}: 成交金额 of an A-share row is not a number")
    if (values < 0).any():
        raise ValidationFailed(f"{what}: negative 成交金额")
    total = float(values.sum())
    if total == 0:
        raise NotPublished(f"SZSE shows no 成交金额 for {day} yet")
    stocks = amount[category == "股票"]
    if len(stocks) == 1 and not np.isnan(stocks.iloc[0]) and total > stocks.iloc[0] * (1 + 1e-9) + 1:
        raise ValidationFailed(f"{what}: A-share 成交金额 {total:.6g} exceeds the 股票 total {stocks.iloc[0]:.6g}")
    return check_turnover(round(total, 2), what)


def sw_classification(*, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Shenwan's point-in-time classification: code, start_date, sw_code, sw_l1_code (several rows a stock).

    Rows with a malformed code or date are dropped; the answer fails when most rows are malformed.
    """
    raw = call("sw_class", lambda: _ak().stock_industry_clf_hist_sw(), policy or CallPolicy())
    _require_columns(raw, ["symbol", "start_date", "industry_code"], "Shenwan classification")
    frame = pd.DataFrame({
        "code": _codes(raw["symbol"]),
        "start_date": raw["start_date"],
        "sw_code": _codes(raw["industry_code"]),
    })
    good = frame["code"].str.fullmatch(r"\d{6}") & frame["sw_code"].str.fullmatch(r"\d{6}") & frame[
        "start_date"].notna()
    if len(frame) == 0 or good.mean() < 0.9:
        raise ValidationFailed(f"Shenwan classification: {int((~good).sum())} of {len(frame)} rows malformed")
    frame = frame[good].drop_duplicates(["code", "start_date"], keep="last").reset_index(drop=True)
    frame["sw_l1_code"] = frame["sw_code"].map(level1_code)
    return frame


def sw_index_history(symbol: str, *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Daily closes of one Shenwan index (e.g. "801010"): trade_date, close."""
    raw = call(f"sw_index_{symbol}", lambda: _ak().index_hist_sw(symbol=symbol, period="day"),
               policy or CallPolicy())
    if raw.empty:
        raise UpstreamError(f"Shenwan index {symbol}: empty answer")
    _require_columns(raw, ["代码", "日期", "收盘"], f"Shenwan index {symbol}")
    codes = set(raw["代码"].astype(str))
    if codes != {symbol}:
        raise ValidationFailed(f"Shenwan index: asked {symbol}, answer is for {', '.join(sorted(codes))}")
    frame = pd.DataFrame({"trade_date": raw["日期"], "close": raw["收盘"]})
    _numbers(frame, ["close"])
    frame = frame.dropna().drop_duplicates("trade_date").sort_values("trade_date", ignore_index=True)
    if frame.empty or (frame["close"] <= 0).any():
        raise ValidationFailed(f"Shenwan index {symbol}: missing or non-positive closes")
    return frame


CSI300 = "000300"
# CSI 300 has 300 constituents; a file far from that is a truncated or wrong answer, not a review.
CSI300_SIZE = (280, 320)


def index_constituents(symbol: str, size: tuple[int, int], *, policy: CallPolicy | None = None) -> pd.DataFrame:
    """Current constituents of a CSI index from csindex's `{symbol}cons.xls`: code, name, as_of.

    `as_of` is the file's 日期 (a date, or None where the file leaves it empty). The answer fails
    validation unless it is for `symbol`, holds between size[0] and size[1] rows, every code has six
    digits and none appears twice, and it carries at most one date.
    """
    raw = call(f"index_cons_{symbol}", lambda: _ak().index_stock_cons_csindex(symbol=symbol), policy or CallPolicy())
    what = f"index {symbol} constituents"
    _require_columns(raw, ["日期", "指数代码", "成分券代码", "成分券名称"], what)
    indexes = {str(c).strip() for c in raw["指数代码"].dropna()}
    if indexes != {symbol}:
        raise ValidationFailed(f"{what}: answer is for index {', '.join(sorted(indexes)) or 'none'}")
    frame = pd.DataFrame({"code": _codes(raw["成分券代码"]),
                          "name": raw["成分券名称"].fillna("").astype(str).str.strip()})
    low, high = size
    if not low <= len(frame) <= high:
        raise ValidationFailed(f"{what}: {len(frame)} rows, expected {low}..{high}")
    check_codes(frame, what)
    dates = {d for d in raw["日期"] if not pd.isna(d)}
    if len(dates) > 1:
        raise ValidationFailed(f"{what}: several dates in one file ({', '.join(sorted(map(str, dates)))})")
    frame["as_of"] = dates.pop() if dates else None
    return frame.reset_index(drop=True)


def csi300_members(*, policy: CallPolicy | None = None) -> pd.DataFrame:
    """The CSI 300 (000300) constituents: code, name, as_of (see index_constituents)."""
    return index_constituents(CSI300, CSI300_SIZE, policy=policy)


def trade_calendar(*, policy: CallPolicy | None = None) -> list[date]:
    """Every SSE/SZSE trading day Sina knows (history and the rest of the current year), sorted."""
    raw = call("calendar", lambda: _ak().tool_trade_date_hist_sina(), policy or CallPolicy())
    _require_columns(raw, ["trade_date"], "trading calendar")
    days = sorted({d for d in pd.to_datetime(raw["trade_date"], errors="coerce").dt.date if pd.notna(d)})
    if len(days) < 250:
        raise ValidationFailed(f"trading calendar: only {len(days)} days")
    return days


class Sources:
    """The fetchers ingestion uses, bound to one CallPolicy; tests pass one whose `sleep` is instant."""

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy()

    @classmethod
    def from_settings(cls, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> Sources:
        return cls(CallPolicy.from_settings(settings, sleep=sleep))

    def sse_summary(self, start: date, end: date, previous_rzye: float | None = None) -> pd.DataFrame:
        return sse_summary(start, end, previous_rzye=previous_rzye, policy=self.policy)

    def szse_summary(self, day: date) -> pd.DataFrame:
        return szse_summary(day, policy=self.policy)

    def bse_summary(self, day: date) -> pd.DataFrame:
        return bse_summary(day, policy=self.policy)

    def sse_detail(self, day: date, closes: Mapping[str, float] | None = None) -> pd.DataFrame:
        return sse_detail(day, closes=closes, policy=self.policy)

    def szse_detail(self, day: date) -> pd.DataFrame:
        return szse_detail(day, policy=self.policy)

    def bse_detail(self, day: date) -> pd.DataFrame:
        return bse_detail(day, policy=self.policy)

    def sse_turnover(self, day: date) -> float:
        return sse_turnover(day, policy=self.policy)

    def szse_turnover(self, day: date) -> float:
        return szse_turnover(day, policy=self.policy)

    def market_account_history(self) -> pd.DataFrame:
        return market_account_history(policy=self.policy)

    def index_history(self, symbol: str) -> pd.DataFrame:
        return index_history(symbol, policy=self.policy)

    def sw_classification(self) -> pd.DataFrame:
        return sw_classification(policy=self.policy)

    def sw_index_history(self, symbol: str) -> pd.DataFrame:
        return sw_index_history(symbol, policy=self.policy)

    def csi300_members(self) -> pd.DataFrame:
        return csi300_members(policy=self.policy)

    def quotes(self) -> pd.DataFrame:
        return quotes(policy=self.policy)

    def trade_calendar(self) -> list[date]:
        return trade_calendar(policy=self.policy)
