"""Per-stock read-outs: sharp rises of 融资余额 and a stock's rank.

``wide_rzye`` has index ``trade_date`` (sorted) and one column per stock code, values in 元.
"""

from __future__ import annotations

import pandas as pd

# The spike definition (5-day change, 60 before it, 5e7 元 minimum) and its computation are the
# statistic storage pre-computes: read from storage.spikes (numpy only, no database), so that the
# two never drift apart.
from storage.spikes import (  # noqa: F401 (re-exported: reports.figures and the tests read them here)
    SPIKE_DATES_BEFORE,
    SPIKE_DAYS,
    SPIKE_HISTORY,
    SPIKE_MIN_BALANCE,
    spike_arrays,
    spike_scores,
)


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
    x = wide_rzye.astype(float)
    cols = ["rzye", "change_pct", "zscore"]
    if len(x) < 2:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="code"), dtype=float)
    # the last row of the stored statistic's own computation: the two agree to the last bit
    change, z = spike_arrays(x.to_numpy(), days, history, first=len(x) - 1, min_periods=min_periods)
    out = pd.DataFrame({"rzye": x.iloc[-1], "change_pct": change[0], "zscore": z[0]}, index=x.columns)
    out = out[(out["rzye"] >= min_balance) & (out["change_pct"] > 0) & out["zscore"].notna()]
    out.index = pd.Index([str(c) for c in out.index], name="code")
    out = out.sort_index().sort_values("zscore", ascending=False, kind="mergesort")
    return out.head(top)


def latest_spike_zscores(wide_rzye: pd.DataFrame, days: int = SPIKE_DAYS, history: int = SPIKE_HISTORY) -> pd.Series:
    """Each stock's spike z-score on the last row of ``wide_rzye`` (see :func:`stock_spikes` for the
    formula), whatever the direction of its change and its balance: the statistic alone, for one
    security's report, where a fall has a z-score too (negative). nan without enough history.

    Returns
    -------
    pd.Series
        Index ``code`` (as the columns of ``wide_rzye``), dimensionless.
    """
    x = wide_rzye.astype(float)
    if len(x) < 2:
        return pd.Series(float("nan"), index=x.columns, dtype=float)
    _change, z = spike_arrays(x.to_numpy(), days, history, first=len(x) - 1)
    return pd.Series(z[0], index=x.columns, dtype=float)


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
