"""放大效应: does more margin trading go with a more volatile market?

Inputs are indexed by trade date; the ratio is a percent number, ``close`` an index level.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252


def realized_volatility(close: pd.Series, window: int = 20) -> pd.Series:
    """Annualised realized volatility of an index.

    Formula: ``vol[t] = std(ln(c[s] / c[s-1]) for s in t-window+1 .. t) x sqrt(252) x 100``
    (sample std, ddof=1).

    Returns
    -------
    pd.Series
        Percent per year, indexed like the known closes; nan until ``window`` returns exist.
    """
    c = close.dropna().astype(float)
    log_ret = np.log(c / c.shift(1))
    vol = log_ret.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR) * 100.0
    return vol.rename("realized_vol_pct")


def rolling_correlation(a: pd.Series, b: pd.Series, window: int = 60) -> pd.Series:
    """Rolling Pearson correlation of two series over their common dates.

    The two are aligned on the dates where both are known (inner join); the correlation on day
    ``t`` uses the ``window`` common dates ending at ``t``.

    Returns
    -------
    pd.Series
        Dimensionless, -1..1, on the common dates; nan until ``window`` pairs exist (and where
        either side is constant in the window).
    """
    df = pd.concat({"a": a, "b": b}, axis=1, join="inner").astype(float).dropna().sort_index()
    corr = df["a"].rolling(window, min_periods=window).corr(df["b"])
    # a constant window gives 0/0; pandas may return inf or a tiny number depending on rounding
    corr = corr.where(np.isfinite(corr))
    return corr.rename("corr")


def amplification(
    ratio_pct: pd.Series, index_close: pd.Series, vol_window: int = 20, corr_window: int = 60
) -> float:
    """放大效应: the latest rolling correlation between 两融交易占比 and index volatility.

    Formula: ``corr_{corr_window}(ratio_pct, realized_volatility(index_close, vol_window))`` on the
    last common date. Positive = leverage goes with larger swings.

    Returns
    -------
    float
        Dimensionless, -1..1; nan without ``corr_window`` common dates after the volatility warm-up.
    """
    vol = realized_volatility(index_close, window=vol_window)
    # rolling_correlation's last value, computed for the last window alone (the report needs no other)
    pairs = pd.concat({"a": ratio_pct, "b": vol}, axis=1, join="inner").astype(float).dropna().sort_index()
    if len(pairs) < corr_window:
        return math.nan
    a, b = (column[-corr_window:] for column in (pairs["a"].to_numpy(), pairs["b"].to_numpy()))
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if not denominator > 0:  # a constant window: no correlation to speak of
        return math.nan
    return float(a @ b) / denominator
