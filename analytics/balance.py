"""量 (quantity): level, change, pace, turning points and percentile of a balance series.

Inputs are ``pd.Series`` of money in 元 indexed by a sorted ``DatetimeIndex`` of trade dates
(``trade_date``), usually 两融余额 (rzrqye) or 融资余额 (rzye). Nothing is dropped before rows are
counted: :func:`change`, :func:`pct_change`, :func:`daily_pct_changes` and :func:`turning_points`
look back ``days`` rows as given, NaN rows included, and a change with an unknown (NaN) end is NaN,
never stretched to the nearest known row. Given one row per trade date (NaN where a date is
unknown), "``days`` rows earlier" is ``days`` trade dates earlier; given only the known rows, it is
the ``days``-th known row before. Where NaN is skipped, the function says so: :func:`pace_zscore`
takes the last ``window`` known daily changes, :func:`percentile_rank` ranks among the known values,
and :func:`rolling_quantiles` counts known values toward ``min_periods``.
Percentages are percent numbers (12.5 means 12.5%).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PACE_STEADY = "steady"
PACE_FASTER = "faster"
PACE_SHARP = "sharp"
PACE_UNKNOWN = "unknown"

UP = "up"
DOWN = "down"


def _known(series: pd.Series) -> pd.Series:
    return series.dropna().astype(float)


def _scope_differs(scope: pd.Series | None, last: int, first: int) -> bool:
    return scope is not None and scope.iloc[last] != scope.iloc[first]


def change(series: pd.Series, days: int, scope: pd.Series | None = None) -> float:
    """Change of the last value over ``days`` rows.

    Formula: ``x[T] - x[T - days]``, where ``T`` is the last row.

    Parameters
    ----------
    series : pd.Series
        Values (e.g. 元) with one row per trade date, nan on a trade date without data: a change
        then spans exactly ``days`` trade dates, and is nan when either end is unknown.
    days : int
        Number of rows (trade dates) to look back; ``days >= 1``.
    scope : pd.Series, optional
        What each row's value covers (e.g. a bitmask of the exchanges summed), aligned with
        ``series``: a change between rows of different scope is nan, not a move of the market.

    Returns
    -------
    float
        The change in the series' unit (元 for a balance); nan with fewer than ``days + 1`` rows.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if len(series) <= days or _scope_differs(scope, -1, -1 - days):
        return math.nan
    return float(series.iloc[-1]) - float(series.iloc[-1 - days])


def pct_change(series: pd.Series, days: int, scope: pd.Series | None = None) -> float:
    """Percentage change of the last value over ``days`` rows.

    Formula: ``(x[T] - x[T - days]) / x[T - days] x 100``, rows and ``scope`` as in :func:`change`.

    Returns
    -------
    float
        Percent; nan with fewer than ``days + 1`` rows, when either end is unknown, when the ends
        differ in scope or when ``x[T - days]`` is 0.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if len(series) <= days or _scope_differs(scope, -1, -1 - days):
        return math.nan
    base = float(series.iloc[-1 - days])
    if base == 0:
        return math.nan
    return (float(series.iloc[-1]) - base) / base * 100.0


def daily_pct_changes(series: pd.Series, scope: pd.Series | None = None) -> pd.Series:
    """Daily percentage changes.

    Formula: ``r[t] = (x[t] - x[t-1]) / x[t-1] x 100``, with ``t-1`` the previous row: one row per
    trade date (nan where unknown), so that no change spans a trade date without data.

    Parameters
    ----------
    scope : pd.Series, optional
        What each row's value covers, aligned with ``series`` (see :func:`change`): ``r[t]`` is nan
        where ``scope[t] != scope[t-1]``.

    Returns
    -------
    pd.Series
        Percent, indexed like ``series``; the first row is dropped; nan where either day is unknown.
    """
    x = series.astype(float)
    prev = x.shift(1).replace(0.0, np.nan)
    r = (x - prev) / prev * 100.0
    if scope is not None:
        r = r.where(scope.to_numpy() == scope.shift(1).to_numpy())
    return r.iloc[1:]


def pace_zscore(series: pd.Series, window: int = 250, min_periods: int | None = None,
                scope: pd.Series | None = None) -> float:
    """Pace of today's move: today's % change in units of its trailing daily volatility.

    Formula: ``z = r[T] / std(K)``, with ``r`` the daily % changes (:func:`daily_pct_changes`),
    ``K`` the last ``window`` KNOWN values of ``r[t]`` for ``t < T`` (unknown changes are skipped,
    so with gaps ``K`` reaches back more than ``window`` rows) and ``std`` the sample standard
    deviation (ddof=1). ``K`` ends the day BEFORE ``T``, so today's move does not dilute its own
    yardstick. The mean is not subtracted: the question is how large today's move is, not how
    unusual relative to a drift.

    Parameters
    ----------
    series : pd.Series
        Balance in 元, one row per trade date (nan where unknown).
    window : int
        Number of trailing known daily changes for the standard deviation (default 250, about one
        year).
    min_periods : int, optional
        Fewest trailing known daily changes accepted; defaults to ``window``.
    scope : pd.Series, optional
        What each row's value covers (see :func:`daily_pct_changes`): a change across a change of
        scope is left out.

    Returns
    -------
    float
        Dimensionless z-score, signed like today's change; nan without enough history or when the
        trailing standard deviation is 0.
    """
    need = window if min_periods is None else min_periods
    r = daily_pct_changes(series, scope)
    if r.empty or math.isnan(r.iloc[-1]):
        return math.nan  # no change today (today or the trade day before is unknown)
    trailing = r.iloc[:-1].dropna().iloc[-window:]
    if len(trailing) < max(need, 2):
        return math.nan
    sd = float(trailing.std(ddof=1))
    if not sd > 0:
        return math.nan
    return float(r.iloc[-1]) / sd


def pace_class(z: float) -> str:
    """Classify a pace z-score (平稳 / 加快 / 急剧).

    ``"steady"`` if ``|z| < 1``, ``"faster"`` if ``1 <= |z| <= 2``, ``"sharp"`` if ``|z| > 2``,
    ``"unknown"`` for nan. The direction is the sign of ``z``.
    """
    if z is None or math.isnan(z):
        return PACE_UNKNOWN
    a = abs(z)
    if a < 1:
        return PACE_STEADY
    if a <= 2:
        return PACE_FASTER
    return PACE_SHARP


def direction(delta: float) -> str | None:
    """The side of a change: ``"up"`` for ``delta >= 0``, ``"down"`` below; None when unknown (nan)."""
    if delta is None or math.isnan(delta):
        return None
    return "up" if delta >= 0 else "down"


def turning_points(series: pd.Series, days: int = 20, min_run: int = 10) -> pd.DataFrame:
    """Turning points of the ``days``-day change (由减转增 / 由增转减).

    Let ``d[t] = x[t] - x[t - days]``. Each day has a side: positive when ``d > 0``, negative when
    ``d < 0``; a day with ``d == 0`` or unknown keeps the previous side (the sign has not crossed yet). Day
    ``t`` is a turning point when its side differs from day ``t-1``'s and day ``t-1`` ended a run
    of at least ``min_run`` known days on that side: an unknown day keeps the side but does not count
    toward the run (nobody saw it on that side). ``"up"`` = 由减转增 (negative to
    positive), ``"down"`` = 由增转减.

    Returns
    -------
    pd.DataFrame
        Index ``trade_date`` (the first day on the new side); columns ``direction`` ("up"/"down"),
        ``change`` (``d`` on that day, in the series' unit) and ``prior_run`` (length of the run on
        the other side, in trade dates). Empty when there is none.
    """
    if days < 1 or min_run < 1:
        raise ValueError("days and min_run must be >= 1")
    # in numpy: the reports ask for this on every balance, over three years of rows
    x = series.to_numpy(dtype=float)  # one row per trade date
    n = len(x)
    d = np.full(n, np.nan)
    if n > days:
        d[days:] = x[days:] - x[:-days]
    sign = np.sign(d)
    sign[sign == 0] = np.nan
    position = np.arange(n)
    # the side carried forward over unknown and zero days (d[0] is always unknown: nan before any side)
    side = sign[np.maximum.accumulate(np.where(np.isnan(sign), 0, position))] if n else sign

    # run length of the current side: the known days (zero ones included) since its block of equal sides began
    starts = np.ones(n, dtype=bool)
    starts[1:] = side[1:] != side[:-1]  # nan != nan: every day before the first side starts a block
    block_start = np.maximum.accumulate(np.where(starts, position, 0))
    known_so_far = np.cumsum(~np.isnan(d))
    known_before_block = np.where(block_start > 0, known_so_far[np.maximum(block_start - 1, 0)], 0)
    run = (known_so_far - known_before_block).astype(float)
    run[np.isnan(side)] = np.nan

    prev_side = np.concatenate(([np.nan], side[:-1])) if n else side
    prev_run = np.concatenate(([np.nan], run[:-1])) if n else run
    with np.errstate(invalid="ignore"):  # comparisons with nan are False, as wanted
        flip = ~np.isnan(side) & ~np.isnan(prev_side) & (side != prev_side) & (prev_run >= min_run)

    return pd.DataFrame(
        {
            "direction": np.where(side[flip] > 0, UP, DOWN),
            "change": d[flip],
            "prior_run": prev_run[flip].astype(int),
        },
        index=pd.DatetimeIndex(series.index[flip], name="trade_date"),
    )


def last_turning_point(
    series: pd.Series, days: int = 20, min_run: int = 10
) -> tuple[pd.Timestamp, str] | None:
    """The most recent turning point of :func:`turning_points` as ``(trade_date, direction)``, or None."""
    tp = turning_points(series, days=days, min_run=min_run)
    if tp.empty:
        return None
    return pd.Timestamp(tp.index[-1]), str(tp["direction"].iloc[-1])


def percentile_rank(series: pd.Series, years: int = 3, min_periods: int = 1) -> float:
    """Where the last value stands within the trailing ``years`` calendar years.

    Formula: ``count(x[t] <= x[T]) / count(x[t]) x 100`` over the known values with
    ``T - years < t <= T`` (calendar years, the last date included, the date exactly ``years``
    earlier excluded).

    Parameters
    ----------
    series : pd.Series
        Values indexed by trade date.
    years : int
        Length of the trailing window in calendar years.
    min_periods : int
        Fewest values in the window to give an answer (default 1).

    Returns
    -------
    float
        Percent, 0..100 (100 = the highest in the window); nan when the window holds fewer than
        ``min_periods`` values.
    """
    x = _known(series)
    if x.empty:
        return math.nan
    last_date = x.index[-1]
    start = last_date - pd.DateOffset(years=years)
    w = x[x.index > start]
    if len(w) < max(min_periods, 1):
        return math.nan
    return float((w <= x.iloc[-1]).sum()) / len(w) * 100.0


def window_extreme(series: pd.Series, years: int = 3, min_periods: int = 1) -> str | None:
    """Whether the last value is the highest or the lowest within the trailing ``years`` calendar
    years (the window of :func:`percentile_rank`): "highest" where ``x[T] >= max(x[t])``, "lowest"
    where ``x[T] <= min(x[t])`` (a tie counts), else None; None too with fewer than ``min_periods``
    values. A percentile of 100 is the highest, but one of 0.13 (1 of 750) prints as "0": this says
    which it is."""
    x = _known(series)
    if x.empty:
        return None
    w = x[x.index > x.index[-1] - pd.DateOffset(years=years)]
    if len(w) < max(min_periods, 2):
        return None
    last = x.iloc[-1]
    return "highest" if last >= w.max() else "lowest" if last <= w.min() else None


def quantile_label(q: float) -> str:
    """Column label for quantile ``q``: 0.1 -> "q10", 0.5 -> "q50", 0.025 -> "q2.5"."""
    return f"q{round(q * 100, 6):g}"


def rolling_quantiles(
    series: pd.Series,
    window: int,
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
    min_periods: int | None = None,
) -> pd.DataFrame:
    """Trailing rolling quantiles (a percentile band for a chart).

    Formula: ``Q_q[t]`` = the ``q`` quantile (linear interpolation) of ``x[t-window+1] .. x[t]``
    (the day itself included).

    Parameters
    ----------
    series : pd.Series
        Values indexed by trade date.
    window : int
        Rows in each window.
    quantiles : tuple of float
        Quantiles in 0..1.
    min_periods : int, optional
        Fewest known values per window; defaults to ``window`` (nan before that).

    Returns
    -------
    pd.DataFrame
        Same index as ``series``; one column per quantile named like "q10", "q50", "q90", in the
        series' unit.
    """
    mp = window if min_periods is None else min_periods
    x = series.astype(float)
    roll = x.rolling(window, min_periods=mp)
    out = pd.DataFrame({quantile_label(q): roll.quantile(q) for q in quantiles}, index=x.index)
    out.index.name = "trade_date"
    return out

