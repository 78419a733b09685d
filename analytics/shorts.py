"""融券 structure: where the short positions sit (ETFs, CSI 300 constituents, the rest).

A rising share in ETFs and constituents points to hedging and arbitrage (对冲和套利) rather than
one-way bets. ``rqye`` (融券余额) is in 元; shares are percent numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

BUCKETS = ("etf", "hs300", "other")


def _bucket(frame: pd.DataFrame, hs300_codes: set[str]) -> pd.Series:
    codes = frame["code"].astype(str)
    is_fund = frame["is_fund"].fillna(False).astype(bool)
    in_index = codes.isin({str(c) for c in hs300_codes})
    # a fund is always "etf", even if its code were listed among constituents
    return pd.Series(
        np.where(is_fund, "etf", np.where(in_index, "hs300", "other")), index=frame.index, name="bucket"
    )


def short_structure(day: pd.DataFrame, hs300_codes: set[str]) -> dict[str, float]:
    """Shares of one day's 融券余额 by bucket.

    Buckets: ``etf`` (rows with ``is_fund`` True: ETFs and other funds), ``hs300`` (stocks whose
    ``code`` is a CSI 300 constituent, never a fund) and ``other``.
    Formula: ``share_b = sum(rqye in b) / sum(rqye) x 100``; unknown rqye counts as 0.

    Parameters
    ----------
    day : pd.DataFrame
        Columns ``code`` (str), ``rqye`` (元), ``is_fund`` (bool).
    hs300_codes : set of str
        Constituent codes in the same form as ``code``.

    Returns
    -------
    dict
        ``{"etf": %, "hs300": %, "other": %}`` summing to 100; all nan when the total is 0.
    """
    if day.empty:
        return {b: math.nan for b in BUCKETS}
    rq = day["rqye"].astype(float).fillna(0.0)
    return shares_of_sums(rq.groupby(_bucket(day, hs300_codes)).sum().to_dict())


def shares_of_sums(sums: Mapping[str, float]) -> dict[str, float]:
    """Shares of 融券余额 from its sums by bucket (元; a missing bucket counts as 0).

    Formula: ``share_b = sums[b] / sum(sums) x 100``.

    Returns
    -------
    dict
        ``{"etf": %, "hs300": %, "other": %}`` summing to 100; all nan when the total is not positive.
    """
    total = float(sum(sums.get(b, 0.0) for b in BUCKETS))
    if not total > 0:
        return {b: math.nan for b in BUCKETS}
    return {b: float(sums.get(b, 0.0)) / total * 100.0 for b in BUCKETS}


def short_structure_series(stocks: pd.DataFrame, hs300_codes: set[str]) -> pd.DataFrame:
    """:func:`short_structure` for every day of a long frame.

    Parameters
    ----------
    stocks : pd.DataFrame
        Columns ``trade_date``, ``code``, ``rqye`` (元), ``is_fund``.

    Returns
    -------
    pd.DataFrame
        Index ``trade_date`` (sorted); columns ``etf``, ``hs300``, ``other`` in percent of the
        day's total 融券余额 (nan on a day whose total is 0).
    """
    if stocks.empty:
        return pd.DataFrame(columns=list(BUCKETS), index=pd.DatetimeIndex([], name="trade_date"), dtype=float)
    frame = stocks.assign(rqye=stocks["rqye"].astype(float).fillna(0.0), bucket=_bucket(stocks, hs300_codes))
    sums = frame.groupby(["trade_date", "bucket"])["rqye"].sum().unstack("bucket")
    sums = sums.reindex(columns=list(BUCKETS)).fillna(0.0).sort_index()
    total = sums.sum(axis=1).where(lambda t: t > 0)
    out = sums.div(total, axis=0) * 100.0
    out.index = pd.DatetimeIndex(out.index, name="trade_date")
    out.columns.name = None
    return out
