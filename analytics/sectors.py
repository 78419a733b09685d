"""质 (quality): how financing balance is spread over Shenwan level-1 sectors.

``sector_daily`` is a LONG frame with columns ``trade_date`` (datetime64), ``sw_l1_code`` (str) and
``rzye``, ``rzmre``, ``rzche`` in 元. A "wide" frame has index ``trade_date`` and one column per
``sw_l1_code``. Shares are percent numbers (sum 100 across sectors on a day).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pivot_balance(sector_daily: pd.DataFrame, column: str = "rzye") -> pd.DataFrame:
    """Long to wide: index ``trade_date`` (sorted), one column per ``sw_l1_code`` (sorted).

    Several rows for one (date, sector) are summed, rows with nan left out; a sector without a
    known row on a day is nan.
    Values in the unit of ``column`` (元 for balances and flows).
    """
    return _pivot(sector_daily, [column])[column]


def _pivot(sector_daily: pd.DataFrame, columns: list[str],
           unknown_if_any: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """pivot_balance of several columns with one factorisation of dates and sectors.

    Rows with nan are left out of a cell's sum, except in the columns of ``unknown_if_any``: there
    one unknown row makes the cell unknown (a flow summed without one member is understated).

    Summed with numpy.bincount into a (date, sector) grid: a groupby and unstack give the same frame
    at five times the cost, and a sector report pivots several times.
    """
    date_pos, dates = pd.factorize(sector_daily["trade_date"], sort=True)
    sector_pos, codes = pd.factorize(sector_daily["sw_l1_code"], sort=True)
    cell = date_pos * len(codes) + sector_pos
    size = len(dates) * len(codes)
    index = pd.DatetimeIndex(dates, name="trade_date")
    out = {}
    for column in columns:
        values = sector_daily[column].to_numpy(dtype=float)
        known = ~np.isnan(values)
        sums = np.bincount(cell[known], weights=values[known], minlength=size)
        counts = np.bincount(cell[known], minlength=size)
        if column in unknown_if_any:
            counts = np.where(np.bincount(cell[~known], minlength=size) > 0, 0, counts)
        grid = np.where(counts > 0, sums, np.nan).reshape(len(dates), len(codes))
        out[column] = pd.DataFrame(grid, index=index, columns=pd.Index(codes, name="sw_l1_code"))
    return out


def shares_pct(wide: pd.DataFrame) -> pd.DataFrame:
    """Each column's share of the row total.

    Formula: ``share[t, s] = x[t, s] / sum_s x[t, s] x 100`` (nan cells ignored in the total).

    Returns
    -------
    pd.DataFrame
        Percent, same shape as ``wide``; a row whose total is 0 or missing is nan.
    """
    total = wide.sum(axis=1, min_count=1).replace(0.0, np.nan)
    return wide.div(total, axis=0) * 100.0


def net_buy_daily(sector_daily: pd.DataFrame) -> pd.DataFrame:
    """Wide daily 融资净买入 per sector (元).

    Formula: ``sum(rzmre[T]) - sum(rzche[T])`` over the sector's rows of day ``T`` (its members, or
    the pre-aggregated sector row; storage derives each member's rzche where its source omits it);
    nan where one of those rows has rzmre or rzche unknown (nan), or the frame has no rzche column:
    a partial sum would understate the flow silently. Never derived from the sector's own balance: a
    stock joining or leaving the sector, or a member missing a day, would then count as buying or
    selling.
    """
    flows = ["rzmre", "rzche"] if "rzche" in sector_daily.columns else ["rzmre"]
    wide = _pivot(sector_daily, flows, unknown_if_any=("rzmre", "rzche"))
    rzmre = wide["rzmre"]
    return rzmre - wide["rzche"] if "rzche" in wide else rzmre * np.nan


def sector_table(sector_daily: pd.DataFrame, days: int, dates: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Per-sector read-out for the LAST date in the frame.

    Columns (``T`` = last date, ``T-days`` = ``days`` rows earlier in the frame's dates, or in
    ``dates`` when given: the trade dates to count on, so that a date without rows is an unknown
    day inside the window, not a window one day longer):

    - ``rzye``: 融资余额 on ``T``, 元
    - ``share_pct``: ``rzye / total x 100``, percent
    - ``change``: ``rzye[T] - rzye[T-days]``, 元
    - ``change_pct``: ``change / rzye[T-days] x 100``, percent
    - ``share_change_pp``: ``share_pct[T] - share_pct[T-days]``, percentage points
    - ``net_buy``: ``sum(rzmre - rzche)`` over the last ``days`` days (``T-days+1 .. T``), 元; nan
      when a day of them is unknown (a partial sum would understate it silently)
    - ``membership_change``: ``change - net_buy``, 元: the part of the change no member bought or
      repaid, i.e. the balances of stocks that joined (+) or left (-) the sector (a Shenwan
      reclassification) or the list of margin securities; 0 while the members stay the same, since
      each stock's ``rzye[t] = rzye[t-1] + rzmre[t] - rzche[t]``

    Change columns are nan when the frame has fewer than ``days + 1`` dates (or the sector had no
    balance then).

    Returns
    -------
    pd.DataFrame
        Index ``sw_l1_code``, sorted by ``change`` descending (nan last).
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    wide = pivot_balance(sector_daily, "rzye")
    if wide.empty:
        columns = ["rzye", "share_pct", "change", "change_pct", "share_change_pp", "net_buy", "membership_change"]
        return pd.DataFrame(columns=columns, index=pd.Index([], name="sw_l1_code"), dtype=float)
    net = net_buy_daily(sector_daily)
    if dates is not None:
        grid = dates[dates <= wide.index[-1]].union(wide.index)
        wide, net = wide.reindex(grid), net.reindex(grid)
    shares = shares_pct(wide)
    last = wide.iloc[-1]
    if len(wide) > days:
        before = wide.iloc[-1 - days]
        share_before = shares.iloc[-1 - days]
    else:
        before = pd.Series(np.nan, index=wide.columns)
        share_before = pd.Series(np.nan, index=wide.columns)
    chg = last - before
    net_buy = net.iloc[-days:].sum(min_count=days) if len(net) >= days else pd.Series(np.nan, index=wide.columns)
    table = pd.DataFrame(
        {
            "rzye": last,
            "share_pct": shares.iloc[-1],
            "change": chg,
            "change_pct": chg / before.replace(0.0, np.nan) * 100.0,
            "share_change_pp": shares.iloc[-1] - share_before,
            "net_buy": net_buy,
            "membership_change": chg - net_buy,
        }
    )
    table = table[table["rzye"].notna()]
    table.index.name = "sw_l1_code"
    # stable sort; the code breaks ties so the order is deterministic
    table = table.sort_index().sort_values("change", ascending=False, kind="mergesort", na_position="last")
    return table


def concentration(wide: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """Concentration of the balance over sectors, per day.

    Formulas, with ``share_s`` the sector's share of the day's total in percent (:func:`shares_pct`;
    a missing share counts as 0):
    ``HHI = sum_s (share_s / 100)^2 x 10000`` (10000 = one sector holds everything, 10000 / N = N
    equal sectors) and ``top{n}_share = sum of the n largest share_s`` (percent).

    Returns
    -------
    pd.DataFrame
        Index ``trade_date``; columns ``hhi`` (0..10000) and ``top{n}_share_pct`` (percent;
        ``top5_share_pct`` by default); nan on a day with no known share.
        A falling trend means a more balanced spread (行业分布更加均衡).
    """
    shares = shares_pct(wide).astype(float)
    known = shares.notna().any(axis=1)
    values = shares.fillna(0.0).to_numpy()
    # descending sort per row; a missing share counts as 0, which never enters a top-n sum
    top = -np.sort(-values, axis=1)[:, :n].sum(axis=1) if values.size else np.zeros(len(shares))
    out = pd.DataFrame(
        {
            "hhi": ((shares / 100.0) ** 2).sum(axis=1) * 10000.0,
            f"top{n}_share_pct": top,
        },
        index=shares.index,
    ).where(known)
    out.index.name = "trade_date"
    return out


def stability_cv(wide: pd.DataFrame, window: int = 20) -> pd.Series:
    """Coefficient of variation of each sector's balance over the last ``window`` days.

    Formula: ``CV_s = std(x[T-window+1 .. T, s]) / mean(...)`` (sample std, ddof=1).

    Returns
    -------
    pd.Series
        A plain ratio (0.012 = 1.2%), indexed by ``sw_l1_code``; low = stable, patient money
        (持仓周期拉长). Nan for a sector without ``window`` known values in the window, or for all
        sectors when the frame is shorter than ``window``.
    """
    tail = wide.iloc[-window:].astype(float)
    if len(tail) < window:
        return pd.Series(np.nan, index=wide.columns, name="cv")
    ok = tail.notna().sum() >= window
    mean = tail.mean().replace(0.0, np.nan)
    cv = (tail.std(ddof=1) / mean).where(ok)
    cv.name = "cv"
    cv.index.name = "sw_l1_code"
    return cv


def median_stability_cv(cv: pd.Series) -> float:
    """The typical sector's stability: the median over sectors of their `stability_cv`.

    Formula: ``median_s CV_s`` over the sectors with a known CV (a plain ratio, 0.012 = 1.2%).
    Falling over time = balances steadier across sectors, holding periods lengthening (持仓周期拉长);
    rising = money moving in and out faster. Nan when no sector has a known CV.
    """
    return float(cv.median())


def bottoming_sectors(
    wide_rzye: pd.DataFrame, wide_index_close: pd.DataFrame, days: int = 20, lookback: int = 5,
    min_down: int = 10,
) -> list[str] | None:
    """Sectors where financing money turns before the price does (money ahead of price).

    A sector qualifies when, with ``d[t] = rzye[t] - rzye[t-days]``:

    - ``d`` turned positive within the last ``lookback`` days and stayed so: ``d > 0`` on the turn
      and on ``T``, and no day in between ``<= 0``,
    - after at least ``min_down`` days on the other side: no day ``> 0`` among the ``min_down``
      days before the turn, and at least half of them known ``<= 0`` (as the balance's turning point:
      a change that flips sign every other day is noise, not a turn; a day without per-stock detail,
      unknown for every sector, interrupts nothing), and
    - its sector index's ``days``-day return ``close[T] / close[T-days] - 1`` is still <= 0.

    Rows are trade dates (``wide_rzye``'s grid, nan where unknown); the closes are read on the same
    rows, so a sector whose close on ``T`` or ``T-days`` is unknown never qualifies.

    Returns
    -------
    list of str or None
        ``sw_l1_code`` values, largest ``d[T]`` first; None when no sector index has a close on ``T``
        (the price side is unknown: the signal cannot be judged, which is not "no sector").
    """
    x = wide_rzye.astype(float)
    px = wide_index_close.astype(float).reindex(index=x.index)
    if x.empty or px.iloc[-1].isna().all():
        return None
    if len(x) < days + 2:
        return []
    d = x - x.shift(days)
    now = d.iloc[-1]
    up, down = (d > 0).to_numpy(), (d <= 0).to_numpy()  # unknown (nan) is neither
    turned = pd.Series(False, index=x.columns)
    for k in range(1, lookback + 1):  # the turn k rows back: up from there to T, down the min_down before
        if k + min_down > len(d):
            break
        before = slice(-k - min_down, -k)
        turned |= (up[-k] & up[-1] & ~down[-k:].any(axis=0) & ~up[before].any(axis=0)
                   & (down[before].sum(axis=0) * 2 >= min_down))
    ret = (px.iloc[-1] / px.iloc[-1 - days] - 1.0).reindex(x.columns)
    hit = turned & (ret <= 0)
    chosen = now[hit].sort_index().sort_values(ascending=False, kind="mergesort")
    return [str(c) for c in chosen.index]
