"""What a plausible upstream answer looks like: bounds per exchange, the identities, the detail
against the summary, and the 融资偿还额 a source omits (rzye(T-1) + rzmre(T) - rzye(T)). Money in 元."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from storage.upstream import ValidationFailed

YI = 1e8  # 亿
WAN = 1e4  # 万
# Relative tolerance of the identity 两融余额 = 融资余额 + 融券余额 (float noise, sources' own sums).
IDENTITY_RTOL = 1e-4
# The finest step each source prints its summary money in, 元: SSE whole 元; SZSE 亿元 with two
# decimals (1e6 元); BSE its *Round fields, 万元 with two decimals (100 元); Eastmoney 亿元 with two.
SUMMARY_UNIT: dict[str, float] = {"SSE": 1.0, "SZSE": 0.01 * YI, "BSE": 0.01 * WAN, "ALL": 0.01 * YI}
# Three figures each rounded by up to half a unit: rzrqye - (rzye + rqye) can be off by 1.5 units
# (SZSE 2010: 20.00 + 0.33 printed against 20.34 亿元).
ROUNDING_SLACK = 1.5
# The detail covers the current 标的 only, so its sum is close to, not equal to, the summary.
DETAIL_TOLERANCE = 0.05
# SSE answers at most about 2,000 rows per query: ask in spans of a year or less.
SSE_SPAN_DAYS = 365
# 融资余额 bounds in 元, per exchange. Wide on purpose: they catch unit slips (x1e4, x1e8), not moves.
RZYE_MAX = {"SSE": 5e13, "SZSE": 5e13, "BSE": 1e12, "ALL": 1e14}
SECURITY_RZYE_MAX = 1e12  # 元: no single security carries 1 万亿 of financing
_RZYE_MIN_MATURE = {"SSE": 1e9, "SZSE": 1e9, "BSE": 1e7, "ALL": 1e9}
# Margin trading began on 2010-03-31 with tiny balances; from 2011 every exchange held billions.
_MATURE_FROM = date(2011, 1, 1)
# 融券卖出额 (元) of one day, whole market. Valued from realdata (融券卖出量 x the lent shares' average
# price, SSE + SZSE 2010-2018) it is about 5% of 融资买入额 in the median, near parity only in late
# 2012 (about 2e9 元 a day each, at most 1.12 times), and peaks near 2.6e10 元 a day; Eastmoney sends
# 9.53 亿元 for 2024-04-11. Above twice the day's 融资买入额 (floored at 1e9 元 for the tiny first days)
# or above RQMCE_MAX it is a unit slip (万元 read as 亿元, say), not a market.
RQMCE_MAX = 5e11
RQMCE_TO_RZMRE_MAX = 2.0



def rounding_tolerance(expected: float, rtol: float, unit: float) -> float:
    """How far (元) a figure may stand from `expected`: max(rtol x |expected|, ROUNDING_SLACK x unit),
    `unit` being the step (元) the source prints its figures in. The relative part alone refuses
    small markets, whose rounding is large next to them (SZSE's 0.01 亿元 on a 20 亿元 balance)."""
    return max(rtol * abs(expected), ROUNDING_SLACK * unit)


def summary_row_problem(row: Any, scope: str, unit: float = 1.0) -> str | None:
    """Why one summary row (trade_date, rzye, rzmre[, rqye, rqyl, rqmcl, rqmce, rzrqye]; 元, 股) is
    implausible: bounds of 融资余额, signs, 融资买入额 and 融券卖出额 against what they can be,
    两融余额 = 融资余额 + 融券余额 within rounding_tolerance(rzye + rqye, IDENTITY_RTOL, unit),
    `unit` (元) being the step the source prints its money in (SUMMARY_UNIT). None when plausible."""
    day = row.trade_date
    rzye = row.rzye
    if rzye is None or np.isnan(rzye):
        return f"{scope} {day}: 融资余额 missing"
    low = _RZYE_MIN_MATURE[scope] if day >= _MATURE_FROM else 1e4
    if not low <= rzye <= RZYE_MAX[scope]:
        return f"{scope} {day}: 融资余额 {rzye:.6g} 元 is implausible (unit changed?)"
    for name in ("rzmre", "rqye", "rqyl", "rqmcl", "rqmce", "rzrqye"):
        value = getattr(row, name, None)
        if value is not None and not np.isnan(value) and value < 0:
            return f"{scope} {day}: {name} is negative ({value:.6g})"
    rzmre = row.rzmre
    if rzmre is not None and not np.isnan(rzmre) and rzmre > max(rzye, 1e9) * 2:
        return f"{scope} {day}: 融资买入额 {rzmre:.6g} 元 is implausible next to 融资余额"
    rqmce = getattr(row, "rqmce", None)
    if rqmce is not None and not np.isnan(rqmce):
        if rzmre is not None and not np.isnan(rzmre) and rqmce > max(rzmre, 1e9) * RQMCE_TO_RZMRE_MAX:
            return (f"{scope} {day}: 融券卖出额 {rqmce:.6g} 元 is implausible next to 融资买入额 {rzmre:.6g} 元 "
                    "(unit changed?)")
        if rqmce > RQMCE_MAX:
            return f"{scope} {day}: 融券卖出额 {rqmce:.6g} 元 is implausible (unit changed?)"
    rqye, rzrqye = getattr(row, "rqye", None), getattr(row, "rzrqye", None)
    if rqye is not None and rzrqye is not None and not (np.isnan(rqye) or np.isnan(rzrqye)):
        expected = rzye + rqye
        if abs(rzrqye - expected) > rounding_tolerance(expected, IDENTITY_RTOL, unit):
            return f"{scope} {day}: 两融余额 {rzrqye:.6g} != 融资余额 + 融券余额 = {expected:.6g} 元"
    return None


def check_summary(frame: pd.DataFrame, scope: str, unit: float = 1.0) -> None:
    """Raise ValidationFailed unless every row passes :func:`summary_row_problem` (`unit`: its step, 元)."""
    for row in frame.itertuples(index=False):
        problem = summary_row_problem(row, scope, unit)
        if problem:
            raise ValidationFailed(problem)


def check_codes(frame: pd.DataFrame, what: str) -> None:
    """Every security code has 6 digits and appears once."""
    bad = frame.loc[~frame["code"].str.fullmatch(r"\d{6}"), "code"]
    if not bad.empty:
        raise ValidationFailed(f"{what}: malformed security code {bad.iloc[0]!r}")
    twice = frame.loc[frame["code"].duplicated(), "code"]
    if not twice.empty:
        raise ValidationFailed(f"{what}: security {twice.iloc[0]} listed twice")


def check_detail(frame: pd.DataFrame, exchange: str) -> None:
    """Per-stock sanity: unique 6-digit codes, no negative figure, identity where 两融余额 is given."""
    check_codes(frame, f"{exchange} detail")
    biggest = frame["rzye"].max()
    if biggest > SECURITY_RZYE_MAX:
        raise ValidationFailed(f"{exchange} detail: 融资余额 {biggest:.6g} 元 for one security (unit changed?)")
    for name in ("rzye", "rzmre", "rqyl", "rqmcl", "rqye"):
        negative = frame.loc[frame[name] < 0, "code"]
        if not negative.empty:
            raise ValidationFailed(f"{exchange} detail: {name} of {negative.iloc[0]} is negative")
    if "rzrqye" in frame:
        expected = frame["rzye"].fillna(0) + frame["rqye"].fillna(0)
        off = (frame["rzrqye"] - expected).abs() > IDENTITY_RTOL * expected.abs() + 1.0
        if off.any():
            code = frame.loc[off, "code"].iloc[0]
            raise ValidationFailed(f"{exchange} detail: 两融余额 of {code} != 融资余额 + 融券余额")


def check_detail_against_summary(detail: pd.DataFrame, summary_rzye: float, exchange: str,
                                 unit: float | None = None) -> None:
    """Raise ValidationFailed when the detail's 融资余额 sum is off the summary's by more than
    rounding_tolerance(summary, DETAIL_TOLERANCE, unit): 5%, or 1.5 x the step (元) the summary is
    printed in (`unit`, default SUMMARY_UNIT[exchange]) where that is more (the first small days)."""
    total = float(detail["rzye"].sum())
    if summary_rzye <= 0:
        return
    gap = total / summary_rzye - 1
    step = SUMMARY_UNIT.get(exchange, 1.0) if unit is None else unit
    if abs(total - summary_rzye) > rounding_tolerance(summary_rzye, DETAIL_TOLERANCE, step):
        raise ValidationFailed(
            f"{exchange} detail 融资余额 sum {total / YI:.2f} 亿元 is {gap:+.1%} off the summary "
            f"{summary_rzye / YI:.2f} 亿元"
        )


def derive_rzche(rzye: float | None, rzmre: float | None, previous_rzye: float | None) -> float | None:
    """融资偿还额 (元) where a source omits it: rzye(T-1) + rzmre(T) - rzye(T); None when a term is unknown."""
    terms = (rzye, rzmre, previous_rzye)
    if any(t is None or (isinstance(t, float) and np.isnan(t)) for t in terms):
        return None
    return float(previous_rzye) + float(rzmre) - float(rzye)  # type: ignore[arg-type]


def derive_stock_rzche(rzye: float | None, rzmre: float | None, previous_rzye: float | None) -> float | None:
    """One security's 融资偿还额 (元) from its previous trade day's detail row: rzye(T-1) + rzmre(T) - rzye(T).

    A security absent from the previous day's detail (newly eligible) had no financing then: rzye(T-1)
    = 0. A negative result (a balance carried over from before it left the list) is unknown: None.
    """
    rzche = derive_rzche(rzye, rzmre, 0.0 if previous_rzye is None else previous_rzye)
    if rzche is None or rzche < -1.0:  # beyond float noise on whole 元
        return None
    return max(rzche, 0.0)



# A股成交额 bounds in 元, per exchange and day. Wide on purpose: they catch unit slips (亿元 read as 元).
TURNOVER_MIN, TURNOVER_MAX = 1e10, 5e12


def turnover_problem(amount: float, *, with_floor: bool = True) -> str | None:
    """Why one exchange's daily turnover (元) is implausible: above TURNOVER_MAX or, `with_floor`,
    under TURNOVER_MIN (a figure in 亿元 or 万元); None when it is plausible."""
    if amount > TURNOVER_MAX:
        return f"{amount:.6g} 元 is above {TURNOVER_MAX:.0e} (a unit smaller than 元?)"
    if amount < (TURNOVER_MIN if with_floor else 0.0):
        return f"{amount:.6g} 元 is below {TURNOVER_MIN:.0e} (亿元 or 万元?)"
    return None


def check_turnover(amount: float, what: str) -> float:
    if turnover_problem(amount) is not None:
        raise ValidationFailed(f"{what}: A股成交额 {amount:.6g} 元 is implausible (unit changed?)")
    return amount
