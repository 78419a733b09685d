"""两融交易占比: the share of margin trading in A-share turnover, and signals built on it.

Money inputs are in 元, indexed by trade date; the ratio is a percent number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analytics.balance import change, pct_change

REQUIRED_TURNOVER = ("SSE", "SZSE")


def matching_turnover(members: pd.Series, by_exchange: pd.DataFrame) -> pd.Series:
    """Per day, the turnover of the exchanges that the day's margin figures cover, 元.

    Formula: ``sum of by_exchange.iloc[:, k] over the bits k set in members``. SSE and SZSE turnover
    are required where covered (NaN otherwise: half a market's turnover under the whole market's
    purchases would double the ratio); BSE's is added where stored (it publishes no turnover
    history, and it is 1-2% of A-share turnover).

    Parameters
    ----------
    members : pd.Series
        Per trade date, a bitmask of the exchanges covered: bit k for column k of `by_exchange`
        (queries.margin_summary's ``members``).
    by_exchange : pd.DataFrame
        Turnover per trade date, one column per exchange (named), NaN where not stored.
    """
    amount = by_exchange.reindex(members.index).to_numpy(dtype=float)
    bits = np.arange(by_exchange.shape[1])
    wanted = ((members.to_numpy(dtype=np.int64)[:, None] >> bits) & 1).astype(bool)
    required = np.array([e in REQUIRED_TURNOVER for e in by_exchange.columns])
    total = np.where(wanted, np.nan_to_num(amount), 0.0).sum(axis=1)
    total[(wanted & required & np.isnan(amount)).any(axis=1)] = np.nan
    return pd.Series(total, index=members.index)


def margin_trade_ratio(rzmre: pd.Series, turnover: pd.Series, rqmce: pd.Series | None = None) -> pd.DataFrame:
    """两融交易占比 per day.

    Formula: ``ratio_pct = (rzmre + rqmce) / turnover x 100``; on days where 融券卖出额 (rqmce) is
    unknown (no series, or NaN that day) the numerator is rzmre alone and ``rqmce_included`` is
    False, so the report can say so.

    Parameters
    ----------
    rzmre : pd.Series
        融资买入额, 元.
    turnover : pd.Series
        A-share turnover of the same exchanges, 元.
    rqmce : pd.Series, optional
        融券卖出额, 元.

    Returns
    -------
    pd.DataFrame
        Index ``trade_date`` (days with both rzmre and a positive turnover; days without turnover
        are dropped); columns ``numerator`` (元), ``turnover`` (元), ``ratio_pct`` (percent),
        ``rqmce_included`` (bool) and ``rzmre_pct`` (``rzmre / turnover x 100``, percent: the ratio
        without 融券卖出额 on every day, to compare a day that lacks it with its history).
    """
    df = pd.concat({"rzmre": rzmre, "turnover": turnover}, axis=1, join="inner").astype(float)
    df = df[df["rzmre"].notna() & (df["turnover"] > 0)].sort_index()
    rq = pd.Series(np.nan, index=df.index) if rqmce is None else rqmce.astype(float).reindex(df.index)
    included = rq.notna()
    numerator = df["rzmre"] + rq.fillna(0.0)
    out = pd.DataFrame(
        {
            "numerator": numerator,
            "turnover": df["turnover"],
            "ratio_pct": numerator / df["turnover"] * 100.0,
            "rqmce_included": included.astype(bool),
            "rzmre_pct": df["rzmre"] / df["turnover"] * 100.0,
        },
        index=df.index,
    )
    out.index = pd.DatetimeIndex(out.index, name="trade_date")
    return out


def moving_average(series: pd.Series, window: int, min_periods: int | None = None) -> pd.Series:
    """Trailing simple moving average.

    Formula: ``MA[t] = mean(x[t-window+1] .. x[t])``, in the series' unit; nan until ``min_periods``
    (default ``window``) known values are available.
    """
    mp = window if min_periods is None else min_periods
    return series.astype(float).rolling(window, min_periods=mp).mean()


def trailing_quantile(
    series: pd.Series, quantile: float = 0.9, lookback: int = 750, min_periods: int | None = None
) -> pd.Series:
    """The ``quantile`` of the previous ``lookback`` rows, excluding the day itself.

    Formula: ``Q[t] = quantile(x[t-lookback] .. x[t-1])`` (linear interpolation).

    Returns
    -------
    pd.Series
        In the series' unit; nan until ``min_periods`` (default ``lookback``) earlier values exist.
    """
    mp = lookback if min_periods is None else min_periods
    x = series.dropna().astype(float)
    return x.rolling(lookback, min_periods=mp).quantile(quantile).shift(1)


def crowding_run(
    ratio_pct: pd.Series, quantile: float = 0.9, lookback: int = 750, min_periods: int | None = None
) -> int:
    """Consecutive days, up to the last one, on which the ratio stood above its trailing quantile.

    Day ``t`` counts when ``ratio[t] > Q[t]`` with ``Q`` from :func:`trailing_quantile` (the
    ``lookback`` days ending the day before ``t``). Days before ``min_periods`` (default
    ``lookback``) of history have no threshold and never count.

    Returns
    -------
    int
        Number of trade dates (0 when the last day is not above, or without enough history).
    """
    x = ratio_pct.dropna().astype(float)
    q = trailing_quantile(x, quantile=quantile, lookback=lookback, min_periods=min_periods)
    above = (x > q).to_numpy()
    # count the trailing block of True values
    n = 0
    for flag in above[::-1]:
        if not flag:
            break
        n += 1
    return n


def crowding_warning(
    ratio_pct: pd.Series,
    index_close: pd.Series,
    quantile: float = 0.9,
    lookback: int = 750,
    min_days: int = 5,
    index_days: int = 20,
    min_periods: int | None = None,
) -> bool | None:
    """Crowding warning: the ratio is persistently high while the index rises.

    True when ``crowding_run(ratio_pct, quantile, lookback) >= min_days`` and the index's
    ``index_days``-day return ``close[T] / close[T-index_days] - 1`` is > 0; False when the run is
    shorter or the return is <= 0; None when the run is long enough but the return is unknown (the
    index has no close on ``T`` or ``T-index_days``: ``index_close`` is on the ratio's trade-date
    grid, nan where unknown).
    """
    run = crowding_run(ratio_pct, quantile=quantile, lookback=lookback, min_periods=min_periods)
    if run < min_days:
        return False
    ret = pct_change(index_close, index_days)
    if math.isnan(ret):
        return None
    return bool(ret > 0)


def deleveraging(ratio_pct: pd.Series, index_close: pd.Series, days: int = 20) -> bool | None:
    """Deleveraging (去杠杆): the ratio and the index both fell over ``days`` days.

    True when ``ratio[T] - ratio[T-days] < 0`` (percentage points) and
    ``close[T] / close[T-days] - 1 < 0``; None when either change is unknown (too short a history,
    or a day without data: both series on one trade-date grid, nan where unknown), else False.
    """
    d_ratio = change(ratio_pct, days)
    ret = pct_change(index_close, days)
    if math.isnan(d_ratio) or math.isnan(ret):
        return None
    return bool(d_ratio < 0 and ret < 0)
