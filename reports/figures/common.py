"""What every report's figures share: the Figures holder, the windows and thresholds, the data
date and window asked, the scope, and the helpers that read percentiles and trade dates."""

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

from analytics import stocks
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
# "low": outside the 10th-90th percentile band its chart draws, so that the text never calls "low" a
# line the chart shows inside the band (the crowding warning asks more: 5 days, a rising index).
HIGH_PERCENTILE, LOW_PERCENTILE = 90.0, 10.0
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
# A sector's balance change that its members' own net buying does not explain (stocks joining or
# leaving it, or the margin list) is named from this share of its balance on: below it, rounding and
# a stock or two entering the list; a Shenwan reclassification moves several percent at once.
MEMBERSHIP_NOTE_SHARE_PCT = 1.0
MEMBERSHIP_NOTED = 3  # the sectors the note names, the largest moves first
# Dates with per-stock detail the stock report reads for its spike z-score: the day's own and the 65
# before it (stocks.SPIKE_DATES_BEFORE: the day's 5-day change against the 60 before it), counted as
# the stored spike list counts them (queries.stock_detail_dates). storage.aggregate's SPIKE_LOOKBACK
# is the 65 alone: the stock dates a day reads before it, and so the dates after a stock row whose
# figures that row changes.
SPIKE_DATES_LOADED = stocks.SPIKE_DATES_BEFORE + 1
# Trade days the sector bottoming signal reads: 20-day changes over a 5-day look-back, with room.
BOTTOMING_ROWS = 20 + 25
RATIO_MA_DAYS = 20  # the ratio's moving average (BRIEF: 20-day MA)
STABILITY_DAYS = 20  # each sector's coefficient of variation of 融资余额 over this many trade days
SHORT_SHIFT_DAYS = 20  # the 融券 structure is compared with the day this many trade dates back
# A rise of the ETFs' and CSI 300 members' share of 融券余额 over those 20 days read as "hedging and
# arbitrage": more than half a point (shares of 25% and 65% move by 0.1-0.3 points in a quiet month).
HEDGING_MIN_CHANGE_PP = 0.5


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


@queries.shared  # sectors, their bottoming and the stock report each ask
def _industry_names(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """Level-1 industry names by code: (Chinese, English)."""
    names = queries.industry_names(engine)
    return names["name_zh"].to_dict(), names["name_en"].to_dict()


# Builds (or fetches from a cache) the figures of another report: (kind, day, days) -> Figures.
SubReport = Callable[[str, date, int], Figures]


def _direct(engine: Engine) -> SubReport:
    """Another report's figures built afresh (no cache): what signals and summary read without `sub`."""
    from reports.figures import BUILDERS  # the package's table of builders, which imports this module

    return lambda kind, day, days: BUILDERS[kind](engine, day, days)
