"""analytics.ratio and analytics.amplification on hand-built series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import amplification, ratio


def _series(values: list[float], start: str = "2024-01-02") -> pd.Series:
    idx = pd.bdate_range(start, periods=len(values), name="trade_date")
    return pd.Series(values, index=idx, dtype=float)


# --- margin_trade_ratio ----------------------------------------------------------------------------


def test_margin_trade_ratio_drops_days_without_turnover_and_flags_rqmce() -> None:
    rzmre = _series([10.0, 20.0, 30.0, 40.0, 50.0])
    d = rzmre.index
    turnover = pd.Series([100.0, 0.0, 200.0, 400.0], index=d[:4])  # d[1] zero, d[4] missing
    rqmce = pd.Series([5.0, np.nan], index=[d[0], d[2]])  # known on d[0] only
    out = ratio.margin_trade_ratio(rzmre, turnover, rqmce)
    assert list(out.index) == [d[0], d[2], d[3]]
    assert out.index.name == "trade_date"
    assert list(out.columns) == ["numerator", "turnover", "ratio_pct", "rqmce_included", "rzmre_pct"]
    # (10 + 5) / 100; 30 / 200; 40 / 400
    assert list(out["numerator"]) == [15.0, 30.0, 40.0]
    assert list(out["ratio_pct"]) == [15.0, 15.0, 10.0]
    assert list(out["rqmce_included"]) == [True, False, False]
    assert out["rqmce_included"].dtype == bool
    # without 融券卖出额 on every day: 10 / 100; 30 / 200; 40 / 400
    assert list(out["rzmre_pct"]) == [10.0, 15.0, 10.0]


def test_margin_trade_ratio_without_rqmce() -> None:
    out = ratio.margin_trade_ratio(_series([12.0, 3.0]), _series([100.0, 50.0]))
    assert list(out["numerator"]) == [12.0, 3.0]
    assert list(out["ratio_pct"]) == [12.0, 6.0]
    assert not out["rqmce_included"].any()


def test_matching_turnover_divides_by_the_exchanges_covered() -> None:
    d = pd.bdate_range("2024-01-02", periods=5, name="trade_date")
    members = pd.Series([0b111, 0b011, 0b111, 0b001, 0b111], index=d)  # bit k: column k (SSE, SZSE, BSE)
    by_exchange = pd.DataFrame(
        {"SSE": [500.0, 500.0, 500.0, 500.0, 500.0],
         "SZSE": [400.0, 400.0, 400.0, 400.0, np.nan],  # d[4]: SZSE not stored yet
         "BSE": [10.0, 10.0, np.nan, 10.0, 10.0]},  # d[2]: BSE unknown (no source): left out
        index=d)
    out = ratio.matching_turnover(members, by_exchange)
    # all three; BSE not covered; BSE covered but unknown; SSE alone; SZSE missing -> no turnover
    assert out.iloc[:4].tolist() == [910.0, 900.0, 900.0, 500.0]
    assert math.isnan(out.iloc[4])
    assert math.isnan(ratio.matching_turnover(members.iloc[:1], by_exchange.assign(SZSE=np.nan)).iloc[0])


def test_moving_average() -> None:
    ma = ratio.moving_average(_series([1.0, 2.0, 3.0, 4.0]), 2)
    assert math.isnan(ma.iloc[0])
    assert list(ma.iloc[1:]) == [1.5, 2.5, 3.5]
    assert ratio.moving_average(_series([1.0, 2.0]), 3, min_periods=1).iloc[1] == 1.5


# --- crowding ------------------------------------------------------------------------------------------

# lookback 4, median: t4 median(1,2,3,4)=2.5 < 5; t5 3.5 < 6; t6 4.5 > 1; t7 median(1,4,5,6)=4.5 < 7;
# t8 median(1,5,6,7)=5.5 < 8
RATIO = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 7.0, 8.0]


def test_trailing_quantile_excludes_the_day_itself() -> None:
    q = ratio.trailing_quantile(_series(RATIO), quantile=0.5, lookback=4)
    assert q.iloc[:4].isna().all()
    assert list(q.iloc[4:]) == [2.5, 3.5, 4.5, 4.5, 5.5]


def test_crowding_run() -> None:
    s = _series(RATIO)
    assert ratio.crowding_run(s, quantile=0.5, lookback=4) == 2
    assert ratio.crowding_run(s.iloc[:6], quantile=0.5, lookback=4) == 2
    assert ratio.crowding_run(s.iloc[:7], quantile=0.5, lookback=4) == 0
    assert ratio.crowding_run(s.iloc[:4], quantile=0.5, lookback=4) == 0  # no threshold yet


def test_crowding_warning() -> None:
    s = _series(RATIO)
    rising = _series([100.0 + i for i in range(len(RATIO))])
    falling = _series([100.0 - i for i in range(len(RATIO))])
    kw = {"quantile": 0.5, "lookback": 4, "index_days": 2}
    assert ratio.crowding_warning(s, rising, min_days=2, **kw) is True
    assert ratio.crowding_warning(s, falling, min_days=2, **kw) is False
    assert ratio.crowding_warning(s, rising, min_days=3, **kw) is False
    assert ratio.crowding_warning(s, rising.iloc[:2], min_days=2, **kw) is None  # index too short: unknown
    # no close on the last day: the return is unknown, and so is the warning; a short run needs no index
    stale = rising.copy()
    stale.iloc[-1] = float("nan")
    assert ratio.crowding_warning(s, stale, min_days=2, **kw) is None
    assert ratio.crowding_warning(s, stale, min_days=3, **kw) is False


def test_deleveraging() -> None:
    r = _series([10.0, 11.0, 9.0])
    assert ratio.deleveraging(r, _series([100.0, 101.0, 99.0]), days=2) is True
    assert ratio.deleveraging(r, _series([100.0, 99.0, 101.0]), days=2) is False
    assert ratio.deleveraging(_series([10.0, 11.0, 12.0]), _series([100.0, 99.0, 98.0]), days=2) is False
    assert ratio.deleveraging(r, _series([100.0, 99.0, 98.0]), days=5) is None  # not enough history
    assert ratio.deleveraging(r, _series([100.0, 99.0, float("nan")]), days=2) is None  # no close on T


# --- amplification ---------------------------------------------------------------------------------


def test_realized_volatility_hand_computed() -> None:
    # log returns +0.01, -0.01, +0.01: any 2-day window has sample sd 0.02 / sqrt(2)
    close = _series([100.0, 100.0 * math.exp(0.01), 100.0, 100.0 * math.exp(0.01)])
    vol = amplification.realized_volatility(close, window=2)
    assert vol.iloc[:2].isna().all()
    expected = 0.02 / math.sqrt(2) * math.sqrt(252) * 100  # about 22.45 % a year
    assert vol.iloc[2] == pytest.approx(expected)
    assert vol.iloc[3] == pytest.approx(expected)


def test_latest_correlation_aligns_dates() -> None:
    a = _series([1.0, 2.0, 3.0, 4.0, 5.0])
    b = pd.Series([2.0, 4.0, 6.0, 8.0], index=a.index[[0, 1, 3, 4]])  # no value on a.index[2]
    # common dates pair a = 1, 2, 4 with b = 2, 4, 6 (the first three) and a = 2, 4, 5 with b = 4, 6, 8
    # (the last three). First three: deviations (-4/3, -1/3, 5/3) and (-2, 0, 2), covariance sum 6,
    # squares 42/9 and 8 -> r = 6 / sqrt(42/9 x 8) = 18 / sqrt(336)
    assert amplification.latest_correlation(a.iloc[:4], b.iloc[:3], window=3) == pytest.approx(18 / math.sqrt(336))
    # last three: deviations (-5/3, 1/3, 4/3) and (-2, 0, 2): sum 6, squares 42/9 and 8 -> the same r
    assert amplification.latest_correlation(a, b, window=3) == pytest.approx(18 / math.sqrt(336))
    assert math.isnan(amplification.latest_correlation(a, b, window=5))  # four common dates only
    assert amplification.latest_correlation(a, -a, window=3) == pytest.approx(-1.0)
    assert math.isnan(amplification.latest_correlation(a, a * 0 + 1, window=3))
    # a constant 9.3 centres to rounding residue, not to 0: still no correlation
    assert math.isnan(amplification.latest_correlation(a * 0 + 9.3, a, window=5))


def test_amplification_sign_and_short_history() -> None:
    rng = np.random.default_rng(7)
    close = _series(list(3000 * np.exp(np.cumsum(rng.normal(0, 0.015, 120)))))
    vol = amplification.realized_volatility(close, window=20)
    assert amplification.amplification(vol * 0.5 + 3, close) == pytest.approx(1.0)
    assert amplification.amplification(-vol, close) == pytest.approx(-1.0)
    # 40 closes -> 20 volatility values, fewer than the 60-day correlation window
    assert math.isnan(amplification.amplification(vol, close.iloc[:40]))
    assert math.isnan(amplification.amplification(vol * 0 + 9.5, close))  # a flat ratio: no correlation


def test_amplification_is_the_latest_correlation_with_days_missing() -> None:
    """Three years of history, with days missing on either side: amplification is the correlation of
    the ratio with realized_volatility over their last 60 common dates, not nan for the gaps."""
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2022-01-03", periods=760)
    close = pd.Series(3000 * np.exp(np.cumsum(rng.normal(0, 0.012, len(dates)))), index=dates)
    ratio_pct = pd.Series(9 + rng.normal(0, 0.8, len(dates)), index=dates)
    close.iloc[[700, 731, 745]] = np.nan  # index closes missing
    ratio_pct = ratio_pct.drop(dates[[702, 733, 750, 759]])  # margin days missing, the last one too
    common = pd.concat([ratio_pct, amplification.realized_volatility(close)], axis=1, join="inner").dropna()
    assert len(common) > 600
    # numpy's own Pearson correlation of the last 60 pairs, an independent computation
    whole = float(np.corrcoef(common.iloc[-60:, 0], common.iloc[-60:, 1])[0, 1])
    assert amplification.amplification(ratio_pct, close) == pytest.approx(whole, abs=1e-12)
    assert not math.isnan(whole)
