"""Figures of each report: load frames from storage, compute with analytics, return JSON-ready data.

A `Figures` holds `data` (what `--json` prints: money in 元, percentages as percent numbers) and
`series` (frames the charts draw). Nothing here is language-specific.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import amplification, balance, ratio, sectors, shorts, stocks
from reports.errors import ReportError
from storage import models, queries
from storage.industries import exchange_of

KINDS = ("balance", "ratio", "sectors", "signals", "summary", "stock", "top")
DEFAULT_DAYS = {"balance": 60, "ratio": 250, "sectors": 20, "signals": 60, "summary": 60, "stock": 60, "top": 5}
MIN_DAYS, MAX_DAYS = 1, 2500
SECTOR_MAX_DAYS = 250  # sector shifts are read over at most a year of trade days
SECTOR_KINDS = ("top", "sectors")  # the reports that take a sector: its stocks, or that sector alone
# Calendar days loaded before the window: 3 trailing years for percentiles, plus the 250-day pace.
HISTORY_DAYS = 3 * 366 + 30
THREE_YEARS = 750  # trade days in the 3 years the ratio's percentile band and crowding threshold read
CROWDING_LOOKBACK = THREE_YEARS  # trade days of the crowding threshold (analytics.ratio's lookback)
# Fewest trade dates a "percentile of 3 years" stands on: under a year, it would rank today among a
# few weeks and call any rise "the highest in three years".
PERCENTILE_MIN_DAYS = 250
MARKET_INDEX = "sh000001"
RATIO_SIGNAL_DAYS = 20  # the index's and the ratio's change the deleveraging signal reads (analytics.ratio)
HS300 = "000300"
CODE_RE = re.compile(r"^\d{6}$", re.ASCII)
# A 60-day correlation of the ratio with index volatility above this: leverage amplifies the swings
# (a moderate positive link; below it the two move together too loosely to say so).
AMPLIFYING_CORR = 0.5
# The ratio's 3-year percentile at or above HIGH_PERCENTILE reads "high", at or below LOW_PERCENTILE
# "low": its outer fifths (the crowding warning asks more: 90th percentile, 5 days, a rising index).
HIGH_PERCENTILE, LOW_PERCENTILE = 80.0, 20.0
# Smallest shifts read as a trend: an HHI change under 1 point prints as 0, and a change of the
# median CV under 0.05 percentage points is day-to-day noise.
HHI_MIN_CHANGE = 1.0
STABILITY_MIN_CHANGE_PP = 0.05
# A 5-day financing rise this many standard deviations above the stock's norm counts as a spike.
SPIKE_Z = 2.0
SPIKE_TOP = 10  # spikes the signals report lists at most (its chart draws every one)
# Of those, named in the signals caption; the text counts the rest, which only its chart names (另有 5 只见图).
SPIKES_NAMED = 5
# Spikes the daily push's dashboard draws, and of those named in its caption, which must also hold the
# balance, the ratio, the sectors and a chat's watch lines within Telegram's 1,024 characters.
SUMMARY_SPIKES_CHARTED = 6
SUMMARY_SPIKES_NAMED = 3
TOP_COUNT = 10  # stocks in each list of the ranking (risers, fallers)
HEADLINE_SECTORS = 3  # sectors named as the largest net buyers and net repayers (融资净买入)
# Trade dates before the day that the stock report loads for the spike z-score: the 65 it reads
# (stocks.SPIKE_DATES_BEFORE: the day's 5-day change against the 60 before it) and one more. The
# dates are counted on the trade-date grid (queries.nth_date_before) but the z-score runs on the
# margin data's dates alone: the spare date keeps one trade date without margin data from leaving
# the z-score a change short (the stored spike list skips such a date too). storage.aggregate's
# SPIKE_LOOKBACK is the 65 alone: the stock dates a day reads before it, and so the dates after a
# stock row whose figures that row changes.
SPIKE_DATES_LOADED = stocks.SPIKE_DATES_BEFORE + 1
# Trade days the sector bottoming signal reads: 20-day changes over a 5-day look-back, with room.
BOTTOMING_ROWS = 20 + 25
RATIO_MA_DAYS = 20  # the ratio's moving average (BRIEF: 20-day MA)
STABILITY_DAYS = 20  # each sector's coefficient of variation of 融资余额 over this many trade days
SHORT_SHIFT_DAYS = 20  # the 融券 structure is compared with the day this many trade dates back


@dataclass
class Figures:
    kind: str
    data: dict[str, Any]
    series: dict[str, Any] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN and None become None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def resolve_date(engine: Engine, on: date | None) -> date:
    """The report date: the given trade date if it has data, else the latest; ReportError otherwise."""
    latest = queries.latest_data_date(engine)
    if latest is None:
        raise ReportError("no_data")
    if on is None:
        return latest
    if on > latest:
        raise ReportError("no_data_for_date", date=on.isoformat(), latest=latest.isoformat())
    first, before = queries.data_date_bounds(engine, on)
    if before is None:  # nothing on or before `on` (data exist, so `first` is a date)
        raise ReportError("before_first_data", date=on.isoformat(), first=(first or latest).isoformat())
    if before != on:  # a weekend, a holiday or a gap: point at the trade date just before
        raise ReportError("not_a_data_day", date=on.isoformat(), nearest=before.isoformat())
    return on


def window_limit(kind: str) -> int:
    """The longest window (trade days) a report takes: a year for the sector shifts, else MAX_DAYS."""
    return SECTOR_MAX_DAYS if kind == "sectors" else MAX_DAYS


def resolve_days(kind: str, days: int | None) -> int:
    """The window asked, or the report's DEFAULT_DAYS; ReportError bad_window outside MIN_DAYS..window_limit."""
    if days is None:
        return DEFAULT_DAYS[kind]
    limit = window_limit(kind)
    if not MIN_DAYS <= days <= limit:
        raise ReportError("bad_window", days=days, min=MIN_DAYS, max=limit)
    return days


def _base(engine: Engine, kind: str, day: date) -> dict[str, Any]:
    """What every report carries: kind, data date, scope (the exchanges whose summary makes the day's
    market; a report of some securities only, a stock or a ranking, names theirs instead),
    where the figures come from ("demo", "import" when any of the day's summary came from a CSV, else
    "exchanges"), and whether the date is the latest with data (the reports' default: a follow-up
    command the report suggests, /top 20 银行, then needs no date; for another day it carries the
    report's)."""
    demo = queries.demo_data(engine)
    origin = "demo" if demo else "import" if queries.imported_on(engine, day) else "exchanges"
    return {"report": kind, "date": day.isoformat(), "scope": queries.scope_on(engine, day), "demo": demo,
            "origin": origin, "latest": day == queries.latest_data_date(engine)}


def _exchanges_of(codes: Iterable[str]) -> list[str]:
    """The exchanges the securities `codes` trade on (storage.industries.exchange_of), in
    models.EXCHANGES order: the scope of figures made of those securities' own rows."""
    held = {exchange_of(code) for code in codes}
    return [e for e in models.EXCHANGES if e in held]


def _calendar_days(trade_days: int) -> int:
    """Calendar days that hold at least `trade_days` trade dates (about 245 in 365), with room."""
    return int(trade_days * 1.5) + 10


def _concentration_trend(hhi_change: float, top5_change_pp: float) -> str | None:
    """Which way sector concentration moved: "balanced" (HHI down by at least HHI_MIN_CHANGE, the
    top-5 share not up: 行业分布更加均衡), "concentrating" (the mirror), "mixed" (the two measures
    moved apart), "flat" (HHI moved less than HHI_MIN_CHANGE), None when either day is unknown."""
    if math.isnan(hhi_change) or math.isnan(top5_change_pp):
        return None
    if hhi_change <= -HHI_MIN_CHANGE:
        return "balanced" if top5_change_pp <= 0 else "mixed"
    if hhi_change >= HHI_MIN_CHANGE:
        return "concentrating" if top5_change_pp >= 0 else "mixed"
    return "flat"


def _band(percentile: float) -> str | None:
    """"high" at or above HIGH_PERCENTILE, "low" at or below LOW_PERCENTILE, else None (nan: None)."""
    if math.isnan(percentile):
        return None
    return "high" if percentile >= HIGH_PERCENTILE else "low" if percentile <= LOW_PERCENTILE else None


def _series_records(series: pd.Series, name: str) -> list[dict[str, Any]]:
    return [{"date": ts.date().isoformat(), name: _num(v)} for ts, v in series.items()]


def _percentile_since(series: pd.Series, day: date) -> str | None:
    """Where the stored history is shorter than the 3 years the percentiles look back on, its first
    date (the reports then say "since" it, not "of 3 years"); None for a full 3 years."""
    known = series.dropna()
    if known.empty:
        return None
    first = known.index[0].date()
    return first.isoformat() if first > day - timedelta(days=3 * 365 + 10) else None


def _on_trade_dates(engine: Engine, series: pd.Series, start: date, day: date) -> pd.Series:
    """`series` with a row for every known trade date from `start` to `day` (nan where it has none)."""
    return series.reindex(queries.known_trade_dates(engine, start, day).union(series.index))


def _market_scope(members: pd.Series) -> pd.Series:
    """What each day's market figure covers, as a bitmask of exchanges (queries.margin_summary's
    `members`), with BSE counted in before BSE had margin trading (models.BSE_MARGIN_START): then an
    SSE + SZSE sum and a market-wide row both cover the whole market, and compare."""
    bse = 1 << models.EXCHANGES.index("BSE")
    early = members.index < pd.Timestamp(models.BSE_MARGIN_START)
    whole = members.fillna(0).astype("int64")
    return pd.Series(np.where(early, whole | bse, whole), index=members.index).where(members.notna())


def balance_figures(engine: Engine, day: date, days: int) -> Figures:
    """量: level, 1/5/20-day change, pace, turning point and 3-year percentile of 两融余额."""
    start = day - timedelta(days=max(HISTORY_DAYS, _calendar_days(days)))
    summary = queries.margin_summary(engine, start=start, end=day)
    level = summary["rzrqye"].dropna()
    if level.empty or level.index[-1].date() != day:
        # The day has margin data (resolve_date) without a 两融余额: its 融券余额 is unknown.
        if level.empty:
            raise ReportError("no_balance", date=day.isoformat())
        raise ReportError("no_balance_on", date=day.isoformat(), latest=level.index[-1].date().isoformat())
    # N-day changes, the pace and the turning point count trade dates: a date without data stays in
    # (unknown), so "5 days" is never seven. The day's change alone is from the previous stored day,
    # and says so where the data skip trade days (days_skipped).
    on_grid = _on_trade_dates(engine, level, start, day)
    # The exchanges each day sums (a bitmask): a change between days that sum different exchanges
    # (BSE's detail missing on one of them, say) is unknown, not a move of the market.
    covered = _market_scope(summary["members"])
    scope, grid_scope = covered.reindex(level.index), covered.reindex(on_grid.index)
    z = balance.pace_zscore(on_grid, scope=grid_scope)
    tp = balance.last_turning_point(on_grid.where(grid_scope == scope.iloc[-1]))
    previous = level.index[-2].date() if len(level) > 1 else None
    data = _base(engine, "balance", day)
    data.update(
        days=days,
        previous_date=previous.isoformat() if previous else None,
        days_skipped=queries.trade_days_between(engine, previous, day) if previous else 0,
        rzrqye=_num(level.iloc[-1]),
        rzye=_num(summary["rzye"].iloc[-1]),
        rqye=_num(summary["rqye"].iloc[-1]),
        change_1d=_num(balance.change(level, 1, scope)),
        change_5d=_num(balance.change(on_grid, 5, grid_scope)),
        change_20d=_num(balance.change(on_grid, 20, grid_scope)),
        change_1d_pct=_num(balance.pct_change(level, 1, scope)),
        change_5d_pct=_num(balance.pct_change(on_grid, 5, grid_scope)),
        change_20d_pct=_num(balance.pct_change(on_grid, 20, grid_scope)),
        pace_z=_num(z),
        pace_class=balance.pace_class(z),
        pace_direction=balance.direction(balance.change(level, 1, scope)),
        # how long ago, in trade dates, so that an old turn reads as old (the change kept its side since)
        turning_point={"date": tp[0].date().isoformat(), "direction": tp[1],
                       "trade_days_ago": int((on_grid.index > tp[0]).sum())} if tp else None,
        percentile_3y=_num(balance.percentile_rank(level, years=3, min_periods=PERCENTILE_MIN_DAYS)),
        percentile_since=_percentile_since(level, day),
        exchanges=_exchange_rows(queries.summary_rows(engine, on_grid.index[-21].date() if len(on_grid) > 20
                                                      else start, day), day, on_grid.index),
    )
    window = level.iloc[-days - 1 :]
    # the dates with data the chart shows, where the stored history is shorter than the window (a
    # full window holds `days` changes, so `days` + 1 dates: it says nothing more)
    data["days_shown"] = min(len(window), days)
    window_scope = scope.iloc[-days - 1 :]
    daily_change = window.diff().where(window_scope == window_scope.shift(1))
    return Figures("balance", data, {"level": window, "daily_change": daily_change.iloc[1:],
                                     "turning_point": data["turning_point"]})


_EXCHANGE_FIELDS = ("rzrqye", "rzye", "rqye")


def _exchange_values(stored: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """One day's 两融余额, 融资余额 and 融券余额 per exchange stored that day (`stored`: exchange ->
    figure -> value, ALL included); where an ALL row is the market (the exchanges stored do not make
    it, see queries.margin_summary), also REST: the market less the exchanges listed, for each
    figure that all of them know."""
    listed = [e for e in models.EXCHANGES if e in stored]
    values = {e: stored[e] for e in listed}
    if listed and "ALL" in stored and not set(queries.FULL_SPLIT) <= set(listed):
        rest: dict[str, float | None] = {}
        for f in _EXCHANGE_FIELDS:
            parts = [stored["ALL"][f], *(values[e][f] for e in listed)]
            rest[f] = None if None in parts else parts[0] - sum(parts[1:])  # type: ignore[operator]
        values["REST"] = rest
    return values


def _exchange_rows(rows: pd.DataFrame, day: date, grid: pd.DatetimeIndex) -> list[dict[str, Any]]:
    """Each exchange's 两融余额 and 融资余额 on `day` with their changes, from stored summary rows
    (queries.summary_rows) that reach `day`; REST (derived) where the market comes from a market-wide
    row and the exchanges stored do not make it.

    change_1d is from the previous stored date (as the market's); change_5d and change_20d from the
    date 5 and 20 trade dates before `day` on `grid` (None where that date has no row), with their
    percentages of the earlier value: ``change_Nd_pct = change_Nd / rzrqye[T-N] x 100``.
    """
    # plain dicts: a handful of rows, read a figure at a time (pandas lookups cost 50x more here)
    by_date: dict[pd.Timestamp, dict[str, dict[str, float | None]]] = {}
    for trade_date, exchange, *figures in rows[["trade_date", "exchange", *_EXCHANGE_FIELDS]].itertuples(index=False):
        by_date.setdefault(trade_date, {})[exchange] = dict(zip(_EXCHANGE_FIELDS, map(_num, figures), strict=True))
    stored = sorted(d for d in by_date if d <= pd.Timestamp(day))[-2:]
    if not stored or stored[-1].date() != day:
        return []
    today = _exchange_values(by_date[stored[-1]])
    grid = grid[grid <= pd.Timestamp(day)]
    earlier = {1: stored[0] if len(stored) == 2 else None,
               **{n: grid[-1 - n] if len(grid) > n else None for n in (5, 20)}}
    before = {n: _exchange_values(by_date[then]) if then in by_date else {} for n, then in earlier.items()}

    def change(exchange: str, figure: str, n: int) -> float | None:
        now, then = today[exchange][figure], before[n].get(exchange, {}).get(figure)
        return None if now is None or then is None else now - then

    def pct(exchange: str, n: int) -> float | None:
        delta, then = change(exchange, "rzrqye", n), before[n].get(exchange, {}).get("rzrqye")
        return None if delta is None or not then else delta / then * 100.0

    return [
        {
            "exchange": exchange,
            **figures,
            **{f"change_{n}d": change(exchange, "rzrqye", n) for n in (1, 5, 20)},
            **{f"change_{n}d_pct": pct(exchange, n) for n in (1, 5, 20)},
            "rzye_change_1d": change(exchange, "rzye", 1),
            "derived": exchange == "REST",
        }
        for exchange, figures in today.items()
    ]


def _ratio_frame(engine: Engine, start: date, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = queries.margin_summary(engine, start=start, end=day)
    turnover = queries.turnover(engine, start=start, end=day)
    matching = ratio.matching_turnover(summary["members"], turnover[list(models.EXCHANGES)])
    frame = ratio.margin_trade_ratio(summary["rzmre"].dropna(), matching, summary["rqmce"])
    return frame, turnover


def _comparable_ratio(frame: pd.DataFrame) -> pd.Series:
    """The ratio series that the day's figure is compared with: as published (with 融券卖出额 where
    known), or, when the last day lacks 融券卖出额, financing purchases alone on every day, so that a
    day is never ranked against days whose numerator holds more."""
    if frame.empty or frame["rqmce_included"].iloc[-1]:
        return frame["ratio_pct"]
    return frame["rzmre_pct"]


def _unjudged_reason(signal: str, ratio_on_grid: pd.Series, index_on_grid: pd.Series) -> str:
    """Why an index signal is unknown on the grid's last day: no index close that day, then (for
    deleveraging, which also reads the ratio's 20-day change) a ratio history under 20 trade dates or
    no ratio 20 trade dates back, else the index's close then."""
    n = RATIO_SIGNAL_DAYS
    if pd.isna(index_on_grid.iloc[-1]):
        return "index_missing"
    if signal == "deleveraging" and len(ratio_on_grid) <= n:
        return "ratio_history"
    if signal == "deleveraging" and pd.isna(ratio_on_grid.iloc[-1 - n]):
        return "ratio_gap"
    return "index_incomplete"


def ratio_figures(engine: Engine, day: date, days: int) -> Figures:
    """两融交易占比 with numerator, denominator, 3-year percentile, crowding and deleveraging."""
    # The window and 750 trade days (3 years) before its first day for the percentile band. A crowding
    # run reaching back to where this history's thresholds begin (the run's first day must have its
    # own 3 trailing years) is read again over 3 more years, until it ends inside or the data begin:
    # no figure depends on the window asked for, and the usual day (no run) reads half as much.
    start = day - timedelta(days=HISTORY_DAYS + _calendar_days(days))
    while True:
        frame, turnover = _ratio_frame(engine, start, day)
        if frame.empty or frame.index[-1].date() != day:
            # The day has margin data (resolve_date): its turnover (SSE's and SZSE's) or purchases are missing.
            if frame.empty:
                raise ReportError("no_ratio", date=day.isoformat())
            raise ReportError("no_ratio_on", date=day.isoformat(), latest=frame.index[-1].date().isoformat())
        pct = _comparable_ratio(frame)
        run = ratio.crowding_run(pct, lookback=CROWDING_LOOKBACK, min_periods=250)
        data_begin_later = frame.index[0].date() > start + timedelta(days=10)
        if run < len(pct.dropna()) - CROWDING_LOOKBACK or data_begin_later:
            break
        start -= timedelta(days=HISTORY_DAYS)
    index = queries.index_close(engine, MARKET_INDEX, start, day)
    # The index's signals read its closes on the ratio's trade-date grid: a close missing on the data
    # date (or 20 trade dates before) leaves them unknown, never judged on the day before's market.
    pct_on_grid = _on_trade_dates(engine, pct, pct.index[0].date(), day)
    index_on_grid = index.reindex(pct_on_grid.index)
    crowding = ratio.crowding_warning(pct, index_on_grid, lookback=CROWDING_LOOKBACK, index_days=RATIO_SIGNAL_DAYS,
                                      min_periods=250)
    deleveraging = ratio.deleveraging(pct_on_grid, index_on_grid, days=RATIO_SIGNAL_DAYS)
    unjudged = [{"signal": name, "reason": _unjudged_reason(name, pct_on_grid, index_on_grid)}
                for name, value in (("crowding", crowding), ("deleveraging", deleveraging)) if value is None]
    last = frame.iloc[-1]
    # A run whose first day had fewer than 3 years of ratios before it was measured against a shorter
    # history (from PERCENTILE_MIN_DAYS on): the warning says "since" the data's first date, not "3 years".
    known = pct.dropna()
    crowding_since = (known.index[0].date().isoformat()
                      if run and len(known) - run < CROWDING_LOOKBACK else None)
    band = balance.rolling_quantiles(pct, window=THREE_YEARS, min_periods=PERCENTILE_MIN_DAYS)
    ma = ratio.moving_average(pct, RATIO_MA_DAYS)
    percentile = balance.percentile_rank(pct, years=3, min_periods=PERCENTILE_MIN_DAYS)
    data = _base(engine, "ratio", day)
    # The exchanges the margin figures cover whose turnover the denominator lacks: BSE where none is
    # stored (it publishes no turnover history; its purchases stay in the numerator, the share reads high).
    covered = list(models.EXCHANGES) if data["scope"] == ["ALL"] else data["scope"]
    on_day = turnover.loc[pd.Timestamp(day)]
    missing = [e for e in covered if pd.isna(on_day[e]) and (e != "BSE" or day >= models.BSE_MARGIN_START)]
    data.update(
        days=days,
        turnover_missing=missing,
        ratio_pct=_num(last["ratio_pct"]),
        numerator=_num(last["numerator"]),
        turnover=_num(last["turnover"]),
        rqmce_included=bool(last["rqmce_included"]),
        # the day lacks 融券卖出额 while its history has it: percentile, average, band and signals
        # compare financing purchases alone on every day (_comparable_ratio)
        compared_on_rzmre=bool(not last["rqmce_included"] and frame["rqmce_included"].any()),
        turnover_a_share_only=bool(turnover["a_share_only"].iloc[-1]) if not turnover.empty else False,
        ma20=_num(ma.iloc[-1]),
        percentile_3y=_num(percentile),
        # "high" / "low" against the 3 years (HIGH_PERCENTILE, LOW_PERCENTILE), None in between or unknown
        percentile_band=_band(percentile),
        percentile_since=_percentile_since(pct, day),
        crowding_days=int(run),
        crowding_since=crowding_since,
        # True / False, or None when not judged (unjudged says why)
        crowding=crowding,
        deleveraging=deleveraging,
        unjudged=unjudged,
        series=_series_records(pct.iloc[-days:], "ratio_pct"),
        days_shown=len(pct.iloc[-days:]),
    )
    shown = pct.iloc[-days:]
    # the index over the ratio's dates: counted on its own rows it would start on another day where
    # the margin data skip trade dates, or years earlier where the ratio's history begins
    index_shown = index[index.index >= shown.index[0]] if not shown.empty else index.iloc[:0]
    return Figures(
        "ratio",
        data,
        {"ratio": shown, "band": band.iloc[-days:], "ma": ma.iloc[-days:], "index": index_shown,
         "percentile_since": data["percentile_since"],
         "ratio_history": pct, "index_history": index},
    )


def sectors_figures(engine: Engine, day: date, days: int) -> Figures:
    """质: per-sector balance, share and N-day shifts, HHI / top-5 share and their trend, stability."""
    start = queries.nth_date_before(engine, day, days + 25)
    long = queries.sector_daily(engine, start, day)
    if long.empty or long["trade_date"].max().date() != day:
        # Sector figures come from per-stock detail: none stored for this day (market-only history).
        latest = queries.latest_sector_date(engine, day)
        if latest is None:
            raise ReportError("no_sector_data", date=day.isoformat())
        raise ReportError("no_sector_data_on", date=day.isoformat(), latest=latest.isoformat())
    # Windows count trade dates: a date without per-stock detail is an unknown day in the window
    # (its changes and net buying unknown), never a window stretched by one day.
    grid = queries.known_trade_dates(engine, long["trade_date"].min().date(), day)
    wide = sectors.pivot_balance(long)
    wide = wide.reindex(grid.union(wide.index))
    if len(wide) <= days:
        raise ReportError("not_enough_history", date=day.isoformat(), days=days)
    table = sectors.sector_table(long, days, grid)
    conc = sectors.concentration(wide)
    cv = sectors.stability_cv(wide, STABILITY_DAYS)
    names_zh, names_en = _industry_names(engine)
    data = _base(engine, "sectors", day)
    hhi_now, hhi_then = conc["hhi"].iloc[-1], conc["hhi"].iloc[-days - 1]
    top_now, top_then = conc["top5_share_pct"].iloc[-1], conc["top5_share_pct"].iloc[-days - 1]
    cv_of = cv.to_dict()
    # The window's trade dates without per-stock detail: each leaves every sector's N-day 融资净买入
    # unknown (sectors.sector_table); the latest is named.
    in_window = wide.iloc[-days:]
    detail_gaps = in_window.index[in_window.isna().all(axis=1)]
    # None where the day T-days has no detail: no claim either way
    trend = _concentration_trend(hhi_now - hhi_then, top_now - top_then)
    rows = []
    for code, row in table.to_dict("index").items():  # plain dicts: a Series per row costs 30x more
        rows.append(
            {
                "code": code,
                "name": names_zh.get(code, code),
                "name_en": names_en.get(code, code),
                "rzye": _num(row["rzye"]),
                "share_pct": _num(row["share_pct"]),
                "change": _num(row["change"]),
                "change_pct": _num(row["change_pct"]),
                "share_change_pp": _num(row["share_change_pp"]),
                "net_buy": _num(row["net_buy"]),
                "cv_20d_pct": _num(cv_of.get(code, math.nan) * 100.0),
            }
        )
    net_known = [r for r in rows if r["net_buy"] is not None]
    data.update(
        days=days,
        stability=_stability(wide, cv, days, names_zh, names_en),
        hhi=_num(hhi_now),
        hhi_change=_num(hhi_now - hhi_then),
        top5_share_pct=_num(top_now),
        top5_change_pp=_num(top_now - top_then),
        concentration_trend=trend,
        base_date=wide.index[-days - 1].date().isoformat(),
        base_known=any(r["change"] is not None for r in rows),
        net_buy_known=bool(net_known),
        # sectors left out of the headline ranking for an unknown 融资净买入 (said in the text)
        net_buy_unknown=len(rows) - len(net_known) if net_known else 0,
        net_buy_gap_date=detail_gaps[-1].date().isoformat() if len(detail_gaps) else None,
        total_rzye=_num(wide.iloc[-1].sum()),
        bottoming=_bottoming(engine, day),
        # Money bought on margin, not the balance change: a reclassification moves stocks' balances
        # between sectors (a sector's balance jumps with no buying), while 融资净买入 sums each member's
        # own purchases less repayments. The largest net buyers and net repayers, each on its side
        # of zero (on a day every sector bought, no repayer), ties in the table's order.
        inflows=sorted((r for r in net_known if r["net_buy"] > 0), key=lambda r: -r["net_buy"])[:HEADLINE_SECTORS],
        outflows=sorted((r for r in net_known if r["net_buy"] < 0), key=lambda r: r["net_buy"])[:HEADLINE_SECTORS],
        sectors=rows,
    )
    return Figures("sectors", data, {"table": rows, "concentration": conc.iloc[-days - 1 :]})


def _stability(wide: pd.DataFrame, cv: pd.Series, days: int, names_zh: dict[str, str],
               names_en: dict[str, str]) -> dict[str, Any]:
    """The 20-day stability read-out: the median sector CV now and its change over the window
    (percent and points; None where the history is too short), and the steadiest and least steady
    sectors (up to three each, by CV)."""
    now = sectors.median_stability_cv(cv)
    then = sectors.median_stability_cv(sectors.stability_cv(wide.iloc[:-days], STABILITY_DAYS))
    ranked = list(cv.dropna().sort_values(kind="stable").index)
    named = [{"code": c, "name": names_zh.get(c, c), "name_en": names_en.get(c, c)} for c in ranked]
    change = now - then
    return {
        "median_cv_pct": _num(now * 100.0),
        "median_cv_change_pp": _num(change * 100.0),
        # a change under STABILITY_MIN_CHANGE_PP is noise, not a trend either way
        "steadier": None if math.isnan(change) or abs(change) * 100.0 < STABILITY_MIN_CHANGE_PP else bool(change < 0),
        "steadiest": named[:3],
        "least_steady": named[max(3, len(named) - 3):][::-1],  # never one already named steadiest
    }


def sector_figures(engine: Engine, day: date, days: int, code: str, sub: SubReport | None = None) -> Figures:
    """One level-1 sector (`code`, e.g. 270000): its row of the sectors report (balance, share, N-day
    change, share points, 融资净买入, 20-day CV), its rank by change, whether it is bottoming, its
    index's N-day return, and the series of its balance, index close and daily 融资净买入."""
    sub = sub or _direct(engine)
    table = sub("sectors", day, days).data  # the whole table, cached for /sectors itself
    rows = {r["code"]: (rank, r) for rank, r in enumerate(table["sectors"], start=1)}
    if code not in rows:
        names_zh, names_en = _industry_names(engine)
        raise ReportError("no_sector_stocks", sector={"zh": names_zh.get(code, code), "en": names_en.get(code, code)},
                          date=day.isoformat())
    rank, row = rows[code]
    start = queries.nth_date_before(engine, day, days)
    long = queries.sector_daily(engine, start, day)
    mine = long[long["sw_l1_code"] == code].set_index("trade_date").sort_index()
    balance_series = mine["rzye"].astype(float)
    net_buy = sectors.net_buy_daily(long)[code].iloc[1:]
    closes = queries.sector_index_closes(engine, start, day)
    index = closes[code].dropna() if code in closes.columns else pd.Series(dtype=float)
    # the index's return over the window: from its close on the window's first day (or none)
    index_return = (balance.pct_change(index, len(index) - 1)
                    if len(index) > 1 and index.index[0].date() <= start else None)
    data = _base(engine, "sector", day)
    data.update(
        days=days,
        code=code,
        sector={"code": code, "name": row["name"], "name_en": row["name_en"]},
        **{key: row[key] for key in ("rzye", "share_pct", "change", "change_pct", "share_change_pp", "net_buy",
                                     "cv_20d_pct")},
        rank=rank,
        of=len(table["sectors"]),
        # None where the sector indexes have no close on the day (not judged, and said so)
        bottoming=None if table["bottoming"] is None else any(b["code"] == code for b in table["bottoming"]),
        index_return_pct=_num(index_return),
        series=_series_records(balance_series, "rzye"),
    )
    return Figures("sector", data, {"rzye": balance_series, "index": index, "net_buy": net_buy})


@queries.shared  # the summary asks twice: for its sectors and for its signals
def _bottoming(engine: Engine, day: date) -> list[dict[str, str]] | None:
    """Sectors whose financing turned up before their index did (analytics.sectors.bottoming_sectors,
    20-day changes, 5-day look-back), largest turn first: code and names. [] without the day's
    per-stock detail (the reports say so already); None when the sector indexes have no close on the
    day (not judged, and said so)."""
    start = queries.nth_date_before(engine, day, BOTTOMING_ROWS)
    long = queries.sector_daily(engine, start, day)
    if long.empty or long["trade_date"].max().date() != day:
        return []
    index_wide = queries.sector_index_closes(engine, start, day)
    names_zh, names_en = _industry_names(engine)
    wide = sectors.pivot_balance(long)  # on the trade-date grid: 20 days are 20 trade dates
    wide = wide.reindex(queries.known_trade_dates(engine, wide.index[0].date(), day).union(wide.index))
    codes = sectors.bottoming_sectors(wide, index_wide)
    if codes is None:
        return None
    return [{"code": c, "name": names_zh.get(c, c), "name_en": names_en.get(c, c)} for c in codes]


@queries.shared  # sectors, their bottoming and the stock report each ask
def _industry_names(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """Level-1 industry names by code: (Chinese, English)."""
    names = queries.industry_names(engine)
    return names["name_zh"].to_dict(), names["name_en"].to_dict()


# Builds (or fetches from a cache) the figures of another report: (kind, day, days) -> Figures.
SubReport = Callable[[str, date, int], Figures]


def _direct(engine: Engine) -> SubReport:
    return lambda kind, day, days: BUILDERS[kind](engine, day, days)


def signals_figures(engine: Engine, day: date, days: int, sub: SubReport | None = None) -> Figures:
    """Signals: pace, turning point, crowding / deleveraging, amplification, sector bottoming, spikes,
    融券 structure."""
    sub = sub or _direct(engine)
    # The ratio first: it reads the longest history, which the balance's is then cut from (queries.shared_span).
    rat = sub("ratio", day, max(days, 60))
    bal = sub("balance", day, days).data
    spikes = _spikes(engine, day)
    names = queries.stock_names(engine, list(spikes.index), day)
    # The ratio report loaded three years of the ratio and the index: reuse them.
    ratio_history, index = rat.series["ratio_history"], rat.series["index_history"]
    amp = amplification.amplification(ratio_history, index) if len(index) > 80 else float("nan")
    short = _short_structure(engine, day)
    bottoming = _bottoming(engine, day)
    unjudged = list(rat.data["unjudged"])
    if bottoming is None:
        unjudged.append({"signal": "bottoming", "reason": "sector_index_missing"})
    warnings = []
    if bal["pace_class"] == "sharp":
        warnings.append("pace_sharp")
    if rat.data["crowding"]:
        warnings.append("crowding")
    if rat.data["deleveraging"]:
        warnings.append("deleveraging")
    amplifying = not math.isnan(amp) and amp > AMPLIFYING_CORR
    if amplifying:
        warnings.append("amplification")
    if len(spikes):
        warnings.append("spikes")
    data = _base(engine, "signals", day)
    data.update(
        days=days,
        pace_z=bal["pace_z"],
        pace_class=bal["pace_class"],
        pace_direction=bal["pace_direction"],
        turning_point=bal["turning_point"],
        ratio_pct=rat.data["ratio_pct"],
        # the ratio's own 口径 notes: where 融券卖出额 or a turnover is not in it
        rqmce_included=rat.data["rqmce_included"],
        turnover_a_share_only=rat.data["turnover_a_share_only"],
        turnover_missing=rat.data["turnover_missing"],
        percentile_since=rat.data["percentile_since"],
        crowding=rat.data["crowding"],
        crowding_days=rat.data["crowding_days"],
        crowding_since=rat.data["crowding_since"],
        deleveraging=rat.data["deleveraging"],
        days_shown=bal["days_shown"],  # the chart's dates with data, where the history is shorter
        amplification_corr=_num(amp),
        amplifying=amplifying,
        # under a year of history (no 3-year percentile: PERCENTILE_MIN_DAYS) the pace and the
        # crowding threshold cannot be computed: "nothing unusual" would claim more than the data show
        partial=bal["percentile_3y"] is None,
        bottoming=bottoming,  # all signals needs of the sectors report
        unjudged=unjudged,  # signals whose inputs are missing on the day, with why
        spikes=[
            {"code": code, "name": names.get(code, code), "rzye": _num(r["rzye"]),
             "change_pct": _num(r["change_pct"]), "zscore": _num(r["zscore"])}
            for code, r in spikes.iterrows()
        ],
        # the spikes the caption names; the rest of the list only the chart names, and the text counts them
        spikes_named=min(len(spikes), SPIKES_NAMED),
        short_structure=short,
        spike_z=SPIKE_Z,
        spike_min_balance=stocks.SPIKE_MIN_BALANCE,
        stock_detail=queries.has_stock_rows(engine, day),  # spikes and structure need it
        # False where no stock has a spike z-score yet (too short a history of per-stock detail): an
        # empty list then says nothing about spikes
        spikes_scored=_spikes_scored(engine, day, spikes),
        warnings=warnings,
        # what the caption flags, one line each (⚠️ a warning, 💡 a sector bottoming), and its header
        # counts ("3 项提示"): a count of the warnings alone left a flagged line uncounted
        flagged=warnings + ["bottoming"] * bool(bottoming),
    )
    # the ratio was read over at least 60 days (its signals need them); the chart shows the window asked
    return Figures("signals", data, {"spikes": data["spikes"], "ratio": rat.series["ratio"].iloc[-days:],
                                     "band": rat.series["band"].iloc[-days:],
                                     "percentile_since": data["percentile_since"]})


def _spikes(engine: Engine, day: date) -> pd.DataFrame:
    """The day's spikes (z-score >= SPIKE_Z, at most SPIKE_TOP, largest first): index code, columns rzye,
    change_pct, zscore. Read from the pre-computed StockSpikeDaily with one indexed query."""
    stored = queries.stored_spikes(engine, day, SPIKE_Z, SPIKE_TOP)
    if stored is not None:
        return stored
    if not queries.has_stock_rows(engine, day):
        return pd.DataFrame(columns=["rzye", "change_pct", "zscore"], index=pd.Index([], name="code"), dtype=float)
    # Fallback, only while nothing is stored for the day but its stock rows are (a database migrated
    # to revision 0002 keeps its older days without spike rows, or a writer that skipped
    # storage.aggregate.rebuild_stock_spikes): the same figures computed from 71 days of stock rows,
    # the slow way (~2.5 s for 5,000 stocks).
    wide = queries.stock_balances(engine, queries.nth_date_before(engine, day, 70), day)
    if len(wide) <= 10:
        return pd.DataFrame(columns=["rzye", "change_pct", "zscore"], index=pd.Index([], name="code"), dtype=float)
    spikes = stocks.stock_spikes(wide, top=SPIKE_TOP)
    return spikes[spikes["zscore"] >= SPIKE_Z]


def _spikes_scored(engine: Engine, day: date, spikes: pd.DataFrame) -> bool:
    """Whether any stock has a spike z-score on `day`: each needs the 5-day changes of the 60 stock
    dates before it (stocks.SPIKE_DATES_BEFORE), which the first 65 dates of per-stock detail lack."""
    if len(spikes):
        return True
    stored = queries.stored_spikes(engine, day, -1e300, 1)  # any stored candidate with a z-score
    if stored is not None:
        return len(stored) > 0
    # nothing stored for the day (see _spikes): the dates the z-score would read, on the trade-date grid
    first = queries.nth_date_before(engine, day, stocks.SPIKE_DATES_BEFORE)
    return (len(queries.trade_date_grid(engine, first, day)) > stocks.SPIKE_DATES_BEFORE
            and queries.has_stock_rows(engine, first))


def _short_structure(engine: Engine, day: date) -> dict[str, Any] | None:
    """Where 融券余额 sits (ETF / CSI 300 / other), today and 20 days ago; None without stock detail."""
    then_day = queries.nth_date_before(engine, day, SHORT_SHIFT_DAYS)
    sums = queries.short_sums(engine, [day, then_day], HS300)
    today, earlier = sums[day], sums[then_day]
    if sum(today.sums.values()) <= 0:
        return None
    now = shorts.shares_of_sums(today.sums)
    # The 20-day change compares like with like: a day 20 trade dates back (not the first stored day
    # of a shorter history), both days with SSE's lending valued at the close or both without it (SSE
    # counting 0), never one of each (a shift that is only SSE coming in).
    comparable = (earlier.rows > 0 and queries.trade_days_between(engine, then_day, day) >= SHORT_SHIFT_DAYS - 1
                  and (today.estimated > 0) == (earlier.estimated > 0))
    then = shorts.shares_of_sums(earlier.sums) if comparable else None
    out: dict[str, Any] = {k: _num(v) for k, v in now.items()}
    out["hs300_known"] = today.members_as_of is not None
    out["hs300_as_of"] = today.members_as_of.isoformat() if today.members_as_of else None
    # A day older than every stored list is sorted by the oldest list, a later one: said in the report.
    sides = [(today, day), (earlier, then_day)] if then else [(today, day)]
    later = [side.members_as_of for side, when in sides if side.members_as_of and side.members_as_of > when]
    out["hs300_list_from"] = later[0].isoformat() if later else None
    # SSE detail has no per-stock 融券余额; without a close to value 融券余量 such rows count as 0.
    out["missing_rqye"] = today.missing
    out["estimated_rqye"] = today.estimated  # SSE's 融券余量 valued at the day's close (storage.ingest)
    out["change_pp"] = {k: _num(now[k] - then[k]) for k in now} if then else None
    out["hedging_rising"] = shorts.hedging_rising(now, then) if then else False
    return out


def stock_figures(engine: Engine, day: date, days: int, code: str | None) -> Figures:
    """One security: balance history, 5/20-day change, rank by 融资余额, spike z-score."""
    if not code or not CODE_RE.match(code):
        raise ReportError("bad_code", code=code or "")
    # the window and the dates the spike z-score reads (SPIKE_DATES_LOADED), not the stock's whole history
    start = queries.nth_date_before(engine, day, max(days, SPIKE_DATES_LOADED))
    history = queries.stock_history(engine, code, start=start, end=day)
    if history.empty or history.index[-1].date() != day:
        latest = queries.last_stock_date(engine, code)
        if latest is None:
            raise ReportError("unknown_code", code=code)
        raise ReportError("no_data_for_date", date=day.isoformat(), latest=min(latest, day).isoformat())
    level = history["rzye"].astype(float)
    is_fund = bool(history["is_fund"].iloc[-1])
    # A fund or ETF ranks among funds and ETFs, a stock among stocks: what an investor compares it
    # with (an ETF's rank among every security mixes two markets, and reads as a rank among its peers).
    balances = queries.financing_balances_on(engine, day, stocks_only=True)
    if is_fund:
        every = queries.financing_balances_on(engine, day, stocks_only=False)
        balances = every[~every.index.isin(balances.index)]
    if pd.isna(balances.get(code)):  # a row without 融资余额: no rank (stock_rank would raise KeyError)
        rank, count = None, int(balances.notna().sum())
    else:
        rank, count = stocks.stock_rank(balances, code)
    # Its Shenwan level-1 sector that day and its rank there (what /sectors and /top N sector show)
    sector_code = None if is_fund else queries.sector_of(engine, code, day)
    sector, sector_rank, sector_count = None, None, None
    if sector_code is not None:
        names_zh, names_en = _industry_names(engine)
        sector = {"code": sector_code, "name": names_zh.get(sector_code, sector_code),
                  "name_en": names_en.get(sector_code, sector_code)}
        if rank is not None:
            peers = balances[balances.index.isin(queries.sector_members(engine, sector_code, day))]
            sector_rank, sector_count = stocks.stock_rank(peers, code)
    last = history.iloc[-1]
    window = history.iloc[-days - 1 :]
    days_shown = min(len(window), days)  # dates with data, where the history is shorter (as the balance's)
    # Changes and the spike z-score on the trade-date grid, as the market's spike list has it
    # (storage.aggregate): a 5-day change spans 5 trade dates, never 5 rows across a suspension, and
    # the day a stock resumes trading has no change "on the day".
    on_grid = level.reindex(pd.DatetimeIndex(queries.trade_dates(engine, start, day)))
    spike_frame = stocks.stock_spikes(on_grid.to_frame(code), top=1, min_balance=0)
    z = float(spike_frame["zscore"].iloc[0]) if len(spike_frame) else float("nan")
    rise_5d_pct = balance.pct_change(on_grid, 5)
    data = _base(engine, "stock", day)
    data.update(
        days=days,
        days_shown=days_shown,
        # the one exchange the security trades on: its figures are its own rows, not the market's
        scope=[str(last["exchange"])],
        code=code,
        name=str(last["name"]),
        exchange=str(last["exchange"]),
        is_fund=bool(last["is_fund"]),
        rzye=_num(last["rzye"]),
        rzmre=_num(last["rzmre"]),
        rzche=_num(last["rzche"]),
        rqyl=_num(last["rqyl"]),
        rqye=_num(last["rqye"]),
        rqye_estimated=bool(last["rqye_estimated"]),
        change_1d=_num(balance.change(on_grid, 1)),
        change_5d=_num(balance.change(on_grid, 5)),
        change_5d_pct=_num(rise_5d_pct),
        change_20d=_num(balance.change(on_grid, 20)),
        change_20d_pct=_num(balance.pct_change(on_grid, 20)),
        rank=rank,
        of=count,
        rank_among="funds" if is_fund else "stocks",  # rank of `of` funds and ETFs, or of `of` stocks
        sector=sector,
        sector_rank=sector_rank,
        sector_of=sector_count,
        spike_zscore=_num(z),
        # the market's spike list's rule (SPIKE_Z), on a rise: the stock and watch lines flag it
        spiking=bool(z >= SPIKE_Z and rise_5d_pct > 0),
        series=_series_records(window["rzye"], "rzye"),
    )
    return Figures("stock", data, {"history": window})


def top_figures(engine: Engine, day: date, days: int, sector: str | None = None) -> Figures:
    """The stocks whose 融资余额 rose and fell most over `days` trade days (funds excluded; the change
    is the stocks' 融资净买入 over those days), each list TOP_COUNT long; with `sector` (a level-1
    code), among the stocks classed in it on `day`: what drove the sector's shift."""
    now = queries.financing_balances_on(engine, day, stocks_only=True)
    if now.empty:
        raise ReportError("no_stock_detail", date=day.isoformat())
    since = queries.nth_date_before(engine, day, days)
    if len(queries.trade_date_grid(engine, since, day)) <= days:
        raise ReportError("not_enough_history", date=day.isoformat(), days=days)
    then = queries.financing_balances_on(engine, since, stocks_only=True)
    if then.empty:  # the window's first day has no per-stock detail
        raise ReportError("no_stock_detail", date=since.isoformat())
    named = None
    if sector is not None:
        members = queries.sector_members(engine, sector, day)
        now, then = now[now.index.isin(members)], then[then.index.isin(members)]
        names_zh, names_en = _industry_names(engine)
        named = {"code": sector, "name": names_zh.get(sector, sector), "name_en": names_en.get(sector, sector)}
        if now.empty:
            raise ReportError("no_sector_stocks", sector={"zh": named["name"], "en": named["name_en"]},
                              date=day.isoformat())
    if then.empty:  # none of the sector's stocks had detail then
        raise ReportError("not_enough_history", date=day.isoformat(), days=days)
    risers, fallers = stocks.balance_change_ranking(now, then, TOP_COUNT)
    names = queries.stock_names(engine, [*risers.index, *fallers.index], day)

    def listed(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"code": code, "name": names.get(code, code), "rzye": _num(row["rzye"]), "change": _num(row["change"]),
                 "change_pct": _num(row["change_pct"])} for code, row in frame.to_dict("index").items()]

    compared = now.dropna().index.intersection(then.dropna().index)
    data = _base(engine, "top", day)
    data.update(
        days=days,
        scope=_exchanges_of(compared),  # the exchanges of the stocks ranked (a sector's may be fewer)
        code=sector,  # as the stock report's code: the window buttons and the chart's file_id key carry it
        sector=named,
        since=since.isoformat(),
        compared=int(compared.size),
        risers=listed(risers),
        fallers=listed(fallers),
    )
    return Figures("top", data, {"risers": data["risers"], "fallers": data["fallers"]})


def summary_figures(engine: Engine, day: date, days: int, sub: SubReport | None = None) -> Figures:
    """The daily push: balance, ratio, top sector shifts and warnings in one read-out."""
    sub = sub or _direct(engine)
    rat = sub("ratio", day, days)  # first, as in signals_figures: the balance's history is cut from the ratio's
    bal = sub("balance", day, days)
    try:
        sec: Figures | None = sub("sectors", day, min(20, days))
    except ReportError as exc:  # a day without per-stock detail: the read-out goes without its sectors
        if exc.kind not in ("no_sector_data", "no_sector_data_on", "not_enough_history"):
            raise
        sec, sectors_missing = None, exc.kind
    else:
        sectors_missing = None
    sig = sub("signals", day, days)
    data = _base(engine, "summary", day)
    # The dashboard draws the first spikes of the signals' list and the caption names the first of
    # those, counting the rest ("另有 3 只见图"): the caption never says less than the chart shows.
    spikes_charted = min(len(sig.data["spikes"]), SUMMARY_SPIKES_CHARTED)
    data.update(days=days, balance=bal.data, ratio=rat.data, sectors=sec.data if sec else None, signals=sig.data,
                sectors_missing=sectors_missing, spikes_charted=spikes_charted,
                spikes_named=min(spikes_charted, SUMMARY_SPIKES_NAMED))
    series = {"balance": bal.series, "ratio": rat.series, "sectors": sec.series if sec else None,
              "signals": sig.series}
    return Figures("summary", data, series)


BUILDERS: dict[str, Callable[..., Figures]] = {
    "balance": balance_figures,
    "ratio": ratio_figures,
    "sectors": sectors_figures,
    "signals": signals_figures,
    "summary": summary_figures,
    "top": top_figures,
}


def build(
    engine: Engine, kind: str, day: date | None, days: int | None, code: str | None = None,
    sub: SubReport | None = None,
) -> Figures:
    """Figures of one report for `day` (default: latest data date) over a window of `days` trade days.

    `sub` lets summary and signals reuse cached figures of the reports they are made of.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}")
    window = resolve_days(kind, days)
    if kind == "stock" and (not code or not CODE_RE.match(code)):
        raise ReportError("bad_code", code=code or "")
    with queries.shared_reads():  # sub-reports built through `sub` share the reads of this one
        on = resolve_date(engine, day)
        if kind == "stock":
            return stock_figures(engine, on, window, code)
        if kind == "top":
            return top_figures(engine, on, window, code)
        if kind == "sectors" and code is not None:  # one sector of the table
            return sector_figures(engine, on, window, code, sub)
        if kind in ("signals", "summary"):
            return BUILDERS[kind](engine, on, window, sub)
        return BUILDERS[kind](engine, on, window)
