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


def latest_correlation(a: pd.Series, b: pd.Series, window: int = 60) -> float:
    """Pearson correlation of two series over their last ``window`` common dates.

    The two are aligned on the dates where both are known (inner join), so a date missing on either
    side is skipped, not a gap in the window. Formula, over those ``window`` pairs:
    ``r = sum((a - mean a)(b - mean b)) / sqrt(sum((a - mean a)^2) x sum((b - mean b)^2))``.
    Only the last window is computed: the report reads no other.

    Returns
    -------
    float
        Dimensionless, -1..1; nan with fewer than ``window`` common dates or when either side is
        constant over them.
    """
    pairs = pd.concat({"a": a, "b": b}, axis=1, join="inner").astype(float).dropna().sort_index()
    if len(pairs) < window:
        return math.nan
    x, y = (column[-window:] for column in (pairs["a"].to_numpy(), pairs["b"].to_numpy()))
    # A constant side has no correlation to speak of. Tested on the values themselves: centred, a
    # constant such as 9.3 can leave rounding residue whose tiny squares would pass for variation.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    if not denominator > 0:  # underflow of a minute variation
        return math.nan
    return float(x @ y) / denominator


def amplification(
    ratio_pct: pd.Series, index_close: pd.Series, vol_window: int = 20, corr_window: int = 60
) -> float:
    """放大效应: the latest correlation between 两融交易占比 and index volatility.

    Formula: :func:`latest_correlation` of ``ratio_pct`` and
    ``realized_volatility(index_close, vol_window)`` over their last ``corr_window`` common dates.
    Positive = leverage goes with larger swings.

    Returns
    -------
    float
        Dimensionless, -1..1; nan without ``corr_window`` common dates after the volatility warm-up.
    """
    vol = realized_volatility(index_close, window=vol_window)
    return latest_correlation(ratio_pct, vol, window=corr_window)
