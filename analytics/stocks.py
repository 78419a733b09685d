"""Per-stock read-outs: sharp rises of 融资余额 and a stock's rank.

``wide_rzye`` has index ``trade_date`` (sorted) and one column per stock code, values in 元.
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


def stock_spikes(
    wide_rzye: pd.DataFrame,
    days: int = SPIKE_DAYS,
    history: int = SPIKE_HISTORY,
    top: int = 10,
    min_balance: float = SPIKE_MIN_BALANCE,
    min_periods: int | None = None,
) -> pd.DataFrame:
    """Stocks whose 融资余额 rose unusually fast (警惕情绪推动的高风险交易).

    With ``c[t] = (rzye[t] / rzye[t-days] - 1) x 100`` (the ``days``-day % change):
    ``zscore = (c[T] - mean(c[T-history] .. c[T-1])) / std(c[T-history] .. c[T-1])`` (sample
    std, ddof=1; the history window ends the day before ``T``, so today's jump is judged against
    the stock's own normal pace).

    Kept: stocks with ``rzye[T] >= min_balance`` (元) and ``c[T] > 0`` and a finite z-score, which
    needs at least ``min_periods`` (default ``history``) known changes in the history window.

    Returns
    -------
    pd.DataFrame
        Index ``code``; columns ``rzye`` (元), ``change_pct`` (percent), ``zscore``
        (dimensionless); sorted by ``zscore`` descending, at most ``top`` rows.
    """
    mp = history if min_periods is None else min_periods
    x = wide_rzye.astype(float)
    base = x.shift(days)
    chg = (x / base.where(base != 0) - 1.0) * 100.0
    cols = ["rzye", "change_pct", "zscore"]
    if len(x) < 2:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="code"), dtype=float)
    past = chg.iloc[-1 - history : -1]
    enough = past.notna().sum() >= max(mp, 2)
    sd = past.std(ddof=1)
    z = (chg.iloc[-1] - past.mean()) / sd.where(sd > 0)
    out = pd.DataFrame({"rzye": x.iloc[-1], "change_pct": chg.iloc[-1], "zscore": z.where(enough)})
    out = out[(out["rzye"] >= min_balance) & (out["change_pct"] > 0) & out["zscore"].notna()]
    out.index = pd.Index([str(c) for c in out.index], name="code")
    out = out.sort_index().sort_values("zscore", ascending=False, kind="mergesort")
    return out.head(top)


def spike_arrays(
    rzye: np.ndarray, days: int = SPIKE_DAYS, history: int = SPIKE_HISTORY, first: int = 0,
    min_periods: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The figures of :func:`stock_spikes` for every row of ``rzye`` from row ``first`` on, in numpy.

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
    wide_rzye: pd.DataFrame, days: int = 5, history: int = 60, start: object = None,
    min_periods: int | None = None,
) -> pd.DataFrame:
    """Every stock's :func:`stock_spikes` figures on every date of ``wide_rzye`` (from ``start`` on).

    The vectorised form behind the stored spike table: row ``T`` of the result for a stock equals
    what ``stock_spikes`` reports for it when ``T`` is the last row, before its filters (rzye and
    change_pct exactly; zscore up to rounding in the last bits, as the sums here run in a fixed
    order, oldest first: see :func:`spike_arrays`).

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


def stock_rank(rzye_on_day: pd.Series, code: str) -> tuple[int, int]:
    """Rank of one stock by 融资余额 on one day.

    ``rzye_on_day`` is indexed by stock code (元). Rank 1 = the largest balance; ties share the
    best rank. Stocks with an unknown balance are left out of both numbers.

    Returns
    -------
    tuple of int
        ``(rank, number_of_stocks)``.

    Raises
    ------
    KeyError
        When ``code`` has no known balance that day.
    """
    s = rzye_on_day.dropna().astype(float)
    s.index = [str(c) for c in s.index]
    if code not in s.index:
        raise KeyError(code)
    rank = int((s > s[code]).sum()) + 1
    return rank, len(s)


def balance_change_ranking(
    rzye_now: pd.Series, rzye_then: pd.Series, top: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stocks whose 融资余额 rose most and fell most between two days.

    Formula: ``change = rzye_now - rzye_then`` (元), which over N trade days is the sum of the
    stocks' daily 融资净买入 (融资买入额 - 融资偿还额); ``change_pct = change / rzye_then x 100``.
    Only stocks with a known balance on both days are compared.

    Parameters
    ----------
    rzye_now, rzye_then : pd.Series
        融资余额 (元) by stock code, on the later and the earlier day.
    top : int
        How many stocks each list holds at most.

    Returns
    -------
    tuple of pd.DataFrame
        ``(risers, fallers)``, index code, columns rzye (now), change, change_pct: risers by change
        descending, fallers by change ascending, ties by code; no zero change in either.
    """
    both = pd.concat({"rzye": rzye_now, "then": rzye_then}, axis=1, join="inner").astype(float).dropna()
    both["change"] = both["rzye"] - both["then"]
    both["change_pct"] = (both["change"] / both["then"].where(both["then"] > 0)) * 100
    both.index = both.index.astype(str)
    both = both.drop(columns="then").rename_axis("code").reset_index()
    risers = both[both["change"] > 0].sort_values(["change", "code"], ascending=[False, True]).head(top)
    fallers = both[both["change"] < 0].sort_values(["change", "code"], ascending=[True, True]).head(top)
    return risers.set_index("code"), fallers.set_index("code")
