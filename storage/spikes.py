"""The spike statistic of each stock's 融资余额: its 5-day % change judged against its own previous
60 (a z-score), for every stored day at once.

A plain rolling statistic of stored rows, like a sector's daily totals: storage pre-computes it into
StockSpikeDaily (storage.aggregate.rebuild_stock_spikes) so that no report scans every stock row,
and the analytics layer reads the same definition from here (data flow sources -> storage ->
analytics -> reports -> bot: storage depends on no later layer). numpy and pandas only, no database.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The spike definition shared by every place that computes or stores it: the n-day change judged
# against the stock's previous `history` changes, for stocks with at least this balance (元).
SPIKE_DAYS = 5
SPIKE_HISTORY = 60
SPIKE_MIN_BALANCE = 5e7
# Trade dates before a day that its spike z-score reads (the 5-day change of each of the 60 before).
SPIKE_DATES_BEFORE = SPIKE_DAYS + SPIKE_HISTORY
# Rows scored together by spike_arrays: small enough for their working arrays to stay in cache.
_ROWS_PER_BLOCK = 16


def spike_arrays(
    rzye: np.ndarray, days: int = SPIKE_DAYS, history: int = SPIKE_HISTORY, first: int = 0,
    min_periods: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each stock's ``days``-day % change of 融资余额 and its z-score, for every row of ``rzye`` from
    row ``first`` on, in numpy.

    With ``c[t] = (rzye[t] / rzye[t-days] - 1) x 100``: ``z[t] = (c[t] - mean(c[t-history] ..
    c[t-1])) / std(c[t-history] .. c[t-1])`` (sample std, ddof=1; the window ends the row before,
    so a jump is judged against the stock's own normal pace; unknown changes are left out).

    ``rzye`` has shape (dates, stocks), rows in date order, NaN where unknown. Row ``t`` depends on
    rows ``t - days - history .. t`` only (66 rows with the defaults), and always adds in the same
    order, so its figures do not depend on how many rows come before it: a caller may score a long
    history in pieces, each led by the previous ``days + history`` rows, and get the same numbers.

    Returns
    -------
    tuple of np.ndarray
        ``(change_pct, zscore)``, each of shape ``(dates - first, stocks)``: ``c[t]`` in percent
        and its z-score against ``c[t-history] .. c[t-1]`` (NaN where fewer than ``min_periods``,
        default ``history``, of those are known, or where they do not vary).
    """
    mp = max(history if min_periods is None else min_periods, 2)
    x = np.asarray(rzye, dtype=float)
    base = np.full_like(x, np.nan)
    if len(x) > days:
        base[days:] = x[: len(x) - days]
    base[base == 0] = np.nan
    chg = (x / base - 1.0) * 100.0
    known = ~np.isnan(chg)
    filled = np.where(known, chg, 0.0)
    weight = known.astype(float)
    z = np.full((len(x) - first, x.shape[1]), np.nan)
    # A few rows at a time, so that the working arrays stay in the CPU cache across the lags.
    for lo in range(first, len(x), _ROWS_PER_BLOCK):
        hi = min(len(x), lo + _ROWS_PER_BLOCK)
        z[lo - first : hi - first] = _zscores(chg, filled, weight, lo, hi, history, mp)
    return chg[first:], z


def _zscores(chg: np.ndarray, filled: np.ndarray, weight: np.ndarray, lo: int, hi: int, history: int,
             min_periods: int) -> np.ndarray:
    """z-scores of rows lo..hi-1 against their `history` previous changes: two passes, oldest lag first."""
    shape = (hi - lo, chg.shape[1])
    lags = [(lag, max(0, lag - lo)) for lag in range(history, 0, -1) if hi - lag > 0]  # (lag, rows without one)
    total, count = np.zeros(shape), np.zeros(shape)
    for lag, skip in lags:
        total[skip:] += filled[lo + skip - lag : hi - lag]
        count[skip:] += weight[lo + skip - lag : hi - lag]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        squares, dev = np.zeros(shape), np.empty(shape)
        for lag, skip in lags:
            d = dev[skip:]
            np.subtract(filled[lo + skip - lag : hi - lag], mean[skip:], out=d)
            d *= weight[lo + skip - lag : hi - lag]  # 0 where that change is unknown
            d *= d
            squares[skip:] += d
        sd = np.sqrt(squares / (count - 1.0))
        z = (chg[lo:hi] - mean) / np.where(sd > 0, sd, np.nan)
    z[count < min_periods] = np.nan
    return z


def spike_scores(
    wide_rzye: pd.DataFrame, days: int = SPIKE_DAYS, history: int = SPIKE_HISTORY, start: object = None,
    min_periods: int | None = None,
) -> pd.DataFrame:
    """Every stock's :func:`spike_arrays` figures on every date of ``wide_rzye`` (from ``start`` on).

    ``wide_rzye`` has index ``trade_date`` (sorted) and one column per stock code, values in 元.
    The form the stored spike table is computed in (storage.aggregate.rebuild_stock_spikes): row
    ``T`` of the result for a stock equals what ``analytics.stocks.stock_spikes`` reports for it when
    ``T`` is the last row, before its filters, exactly (both run :func:`spike_arrays`, whose sums
    run in a fixed order, so that a row's figures do not depend on the rows before its window).

    Returns
    -------
    pd.DataFrame
        Index (``trade_date``, ``code``), sorted; columns ``rzye`` (元), ``change_pct`` (percent),
        ``zscore`` (NaN without enough history). Only cells with a known ``change_pct`` are listed.
    """
    cols = ["rzye", "change_pct", "zscore"]
    x = wide_rzye.astype(float)
    first = 0 if start is None else int(x.index.searchsorted(start))
    if first >= len(x):
        index = pd.MultiIndex.from_arrays([[], []], names=["trade_date", "code"])
        return pd.DataFrame(columns=cols, index=index, dtype=float)
    chg, z = spike_arrays(x.to_numpy(), days, history, first, min_periods)
    rows, cells = np.nonzero(~np.isnan(chg))
    index = pd.MultiIndex.from_arrays(
        [x.index[first:][rows], pd.Index([str(c) for c in x.columns])[cells]], names=["trade_date", "code"]
    )
    out = pd.DataFrame(
        {"rzye": x.to_numpy()[first:][rows, cells], "change_pct": chg[rows, cells], "zscore": z[rows, cells]},
        index=index,
    )
    return out.sort_index()
