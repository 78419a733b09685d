"""analytics.balance on hand-built series with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import balance


def _series(values: list[float], start: str = "2024-01-02") -> pd.Series:
    idx = pd.bdate_range(start, periods=len(values), name="trade_date")
    return pd.Series(values, index=idx, dtype=float)


# --- change / pct_change -------------------------------------------------------------------------


def test_change_and_pct_change() -> None:
    s = _series([100, 110, 99, 120])
    assert balance.change(s, 1) == 21.0
    assert balance.change(s, 3) == 20.0
    # (120 - 110) / 110 x 100
    assert balance.pct_change(s, 2) == pytest.approx(9.090909090909)
    assert balance.pct_change(s, 3) == pytest.approx(20.0)


def test_change_not_enough_history_is_nan() -> None:
    s = _series([100, 110, 99, 120])
    assert math.isnan(balance.change(s, 4))
    assert math.isnan(balance.pct_change(s, 4))
    assert math.isnan(balance.change(_series([]), 1))


def test_change_counts_trade_dates_even_unknown_ones_and_zero_base() -> None:
    """A row per trade date: a day without data (nan) is not skipped, so a 1-day change never spans
    two trade days; a change whose either end is unknown is unknown."""
    s = _series([100, np.nan, 110])
    assert math.isnan(balance.change(s, 1)) and math.isnan(balance.pct_change(s, 1))
    assert balance.change(s, 2) == 10.0 and balance.pct_change(s, 2) == pytest.approx(10.0)
    assert math.isnan(balance.pct_change(_series([0, 5]), 1))
    with pytest.raises(ValueError):
        balance.change(s, 0)


def test_daily_pct_changes() -> None:
    r = balance.daily_pct_changes(_series([100, 110, 99]))
    assert list(r.round(9)) == [10.0, -10.0]
    gap = balance.daily_pct_changes(_series([100, np.nan, 110, 121]))
    assert gap.isna().tolist() == [True, True, False] and gap.iloc[2] == pytest.approx(10.0)


# --- pace --------------------------------------------------------------------------------------------


def _from_daily_pct(pcts: list[float], start: float = 100.0) -> pd.Series:
    values = [start]
    for p in pcts:
        values.append(values[-1] * (1 + p / 100))
    return _series(values)


def test_pace_zscore_hand_computed() -> None:
    # trailing daily changes +1, -1, +1, -1: mean 0, sample var 4/3, sd 2/sqrt(3); today +3
    s = _from_daily_pct([1, -1, 1, -1, 3])
    assert balance.pace_zscore(s, window=4) == pytest.approx(3 * math.sqrt(3) / 2)
    # the window is the 4 days BEFORE today, so extra older history changes nothing
    s_longer = _from_daily_pct([50, 1, -1, 1, -1, 3])
    assert balance.pace_zscore(s_longer, window=4) == pytest.approx(3 * math.sqrt(3) / 2)


def test_pace_zscore_negative_and_not_enough_history() -> None:
    s = _from_daily_pct([1, -1, 1, -1, -3])
    assert balance.pace_zscore(s, window=4) == pytest.approx(-3 * math.sqrt(3) / 2)
    short = _from_daily_pct([1, -1, 1, -3])  # only 3 trailing changes for a 4-day window
    assert math.isnan(balance.pace_zscore(short, window=4))
    # min_periods relaxes it: trailing +1, -1, +1 has sd sqrt(4/3)
    assert balance.pace_zscore(short, window=4, min_periods=3) == pytest.approx(-3 / math.sqrt(4 / 3))


def test_pace_after_a_day_without_data_is_unknown_and_gaps_leave_the_yardstick() -> None:
    """Today right after a trade date without data: no 1-day change, no pace. Earlier gaps only
    take their two changes out of the trailing window (what is left still counts)."""
    s = _from_daily_pct([1, -1, 1, -1, 3])
    gapped_today = pd.concat([s.iloc[:-1], pd.Series([np.nan, s.iloc[-1]])], ignore_index=True)
    assert math.isnan(balance.pace_zscore(gapped_today, window=4, min_periods=2))
    earlier = _from_daily_pct([1, -1, 1, -1, 1, -1, 3])
    holed = earlier.copy()
    holed.iloc[1] = np.nan  # the changes into and out of day 1 are unknown: +1, -1, +1, -1 trail today's +3
    assert balance.pace_zscore(holed, window=4) == pytest.approx(3 * math.sqrt(3) / 2)


def test_changes_across_a_change_of_scope_are_unknown() -> None:
    """scope: what each value sums (bit masks of exchanges). A change between values of different
    scope is nan; the pace's yardstick leaves out the one daily change that spans the switch."""
    s = _from_daily_pct([50, 1, -1, 1, -1, 3])
    scope = pd.Series([3, 7, 7, 7, 7, 7, 7], index=s.index)  # BSE joins on day 1
    assert balance.change(s, 5, scope) == pytest.approx(s.iloc[-1] - s.iloc[1])
    assert math.isnan(balance.change(s, 6, scope)) and math.isnan(balance.pct_change(s, 6, scope))
    assert balance.pct_change(s, 1, scope) == pytest.approx(3.0)
    r = balance.daily_pct_changes(s, scope)
    assert math.isnan(r.iloc[0]) and list(r.iloc[1:]) == pytest.approx([1, -1, 1, -1, 3])
    # without the +50% switch day the yardstick is +1, -1, +1, -1: as in the hand-computed case above
    assert balance.pace_zscore(s, window=5, min_periods=4, scope=scope) == pytest.approx(3 * math.sqrt(3) / 2)
    assert balance.pace_zscore(s, window=5, min_periods=4) < 1  # the switch day would swamp it


def test_pace_zscore_flat_history_is_nan() -> None:
    assert math.isnan(balance.pace_zscore(_series([5.0] * 10), window=5))


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        (0.0, "steady"),
        (0.5, "steady"),
        (-0.99, "steady"),
        (1.0, "faster"),
        (-1.5, "faster"),
        (2.0, "faster"),
        (-2.0, "faster"),
        (2.01, "sharp"),
        (-3.0, "sharp"),
        (float("nan"), "unknown"),
    ],
)
def test_pace_class(z: float, expected: str) -> None:
    assert balance.pace_class(z) == expected


# --- turning points -----------------------------------------------------------------------------------


def test_turning_points_small_hand_example() -> None:
    # 2-day change by row: 2..5 -> -2, 6 -> 0 (6 - 6, still on the negative side), 7..9 -> +2,
    # 10 -> 0 (8 - 8, still positive), 11 -> -2
    s = _series([10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 8, 7])
    tp = balance.turning_points(s, days=2, min_run=3)
    assert list(tp.index) == [s.index[7], s.index[11]]
    assert list(tp["direction"]) == ["up", "down"]
    assert list(tp["change"]) == [2.0, -2.0]
    assert list(tp["prior_run"]) == [5, 4]
    assert tp.index.name == "trade_date"
    # the positive run before the "down" flip was only 4 days long
    tp5 = balance.turning_points(s, days=2, min_run=5)
    assert list(tp5["direction"]) == ["up"]
    assert balance.last_turning_point(s, days=2, min_run=3) == (s.index[11], "down")


def test_turning_points_default_20_days_known_flip() -> None:
    # falls 1/day for 40 days (x39 = 61), then rises 2/day
    values = [100.0 - t for t in range(40)] + [61.0 + 2 * (t - 39) for t in range(40, 60)]
    s = _series(values)
    # t=45: x45 - x25 = 73 - 75 = -2; t=46: 75 - 74 = +1  -> 由减转增 on row 46
    tp = balance.turning_points(s)
    assert len(tp) == 1
    assert tp.index[0] == s.index[46]
    assert tp["direction"].iloc[0] == "up"
    assert tp["change"].iloc[0] == 1.0
    assert tp["prior_run"].iloc[0] == 26  # rows 20..45
    assert balance.last_turning_point(s) == (s.index[46], "up")


def test_turning_points_none() -> None:
    s = _series([float(v) for v in range(1, 40)])
    assert balance.turning_points(s).empty
    assert balance.last_turning_point(s) is None
    assert balance.last_turning_point(_series([1.0, 2.0])) is None


def _turning_points_by_rule(values: list[float], days: int, min_run: int) -> list[tuple[int, str, int]]:
    """The docstring's rule, day by day: (row, direction, prior run) of each turning point."""
    out, side, run = [], None, 0
    for t in range(len(values)):
        d = values[t] - values[t - days] if t >= days else math.nan
        new = side if math.isnan(d) or d == 0 else (1 if d > 0 else -1)
        if new is not None and side is not None and new != side and run >= min_run:
            out.append((t, "up" if new > 0 else "down", run))
        known = 0 if math.isnan(d) else 1  # an unknown day keeps the side but is not counted
        run = run + known if new == side and new is not None else (known if new is not None else 0)
        side = new
    return out


def test_turning_points_follow_the_rule_with_gaps_and_flat_days() -> None:
    """Random walks with unknown days, flat stretches and short runs, checked against the rule
    applied one day at a time."""
    rng = np.random.default_rng(5)
    for trial in range(40):
        steps = rng.choice([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0], size=120) + (0.3 if trial % 2 else -0.3)
        values = list(np.round(1000 + np.cumsum(steps)))
        for hole in rng.choice(120, size=6, replace=False):
            values[hole] = math.nan
        s = _series(values)
        days, min_run = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        tp = balance.turning_points(s, days=days, min_run=min_run)
        got = [(s.index.get_loc(day), direction, run) for day, direction, run
               in zip(tp.index, tp["direction"], tp["prior_run"], strict=True)]
        assert got == _turning_points_by_rule(values, days, min_run), (trial, days, min_run)


def test_a_run_counts_only_the_days_seen_on_its_side() -> None:
    # 1-day change: +1 on rows 1..3, unknown on rows 4..12 (rows 4..11 missing), -1 on row 13:
    # three days seen on the positive side, not 11
    values = [10.0, 11.0, 12.0, 13.0] + [math.nan] * 8 + [14.0, 13.0]
    s = _series(values)
    assert balance.turning_points(s, days=1, min_run=10).empty
    tp = balance.turning_points(s, days=1, min_run=3)
    assert list(tp.index) == [s.index[13]]
    assert list(tp["prior_run"]) == [3]


# --- percentile --------------------------------------------------------------------------------------


def test_percentile_rank_known_answer() -> None:
    idx = pd.DatetimeIndex(
        ["2020-01-02", "2021-06-01", "2022-01-03", "2022-06-01", "2023-01-02"], name="trade_date"
    )
    s = pd.Series([1000.0, 5.0, 3.0, 8.0, 4.0], index=idx)
    # 3 years back from 2023-01-02 is 2020-01-02, which is excluded: window 5, 3, 8, 4; <= 4: 3, 4
    assert balance.percentile_rank(s, years=3) == 50.0
    # 4 years: 1000, 5, 3, 8, 4 -> 2 of 5
    assert balance.percentile_rank(s, years=4) == 40.0
    # ending 2022-06-01 the window starts after 2019-06-01: 1000, 5, 3, 8; <= 8: three of four
    assert balance.percentile_rank(s.iloc[:4], years=3) == 75.0
    assert balance.percentile_rank(s.iloc[1:4], years=3) == 100.0  # 8 is the highest of 5, 3, 8
    assert math.isnan(balance.percentile_rank(s, years=3, min_periods=10))
    assert math.isnan(balance.percentile_rank(s.iloc[:0]))


def test_percentile_rank_lowest_counts_itself() -> None:
    s = _series([5.0, 4.0, 3.0, 2.0])
    assert balance.percentile_rank(s) == 25.0


# --- rolling quantiles -------------------------------------------------------------------------------


def test_rolling_quantiles_band() -> None:
    s = _series([1.0, 2.0, 3.0, 4.0, 5.0])
    q = balance.rolling_quantiles(s, window=3)
    assert list(q.columns) == ["q10", "q50", "q90"]
    assert q.iloc[:2].isna().all().all()
    # window 1, 2, 3: linear interpolation at positions 0.2, 1.0, 1.8
    assert list(q.iloc[2].round(9)) == [1.2, 2.0, 2.8]
    assert list(q.iloc[3].round(9)) == [2.2, 3.0, 3.8]
    q1 = balance.rolling_quantiles(s, window=3, quantiles=(0.25,), min_periods=1)
    assert list(q1.columns) == ["q25"]
    assert q1.iloc[0, 0] == 1.0
    assert balance.quantile_label(0.025) == "q2.5"


def test_direction_of_a_change() -> None:
    assert [balance.direction(v) for v in (1.5, 0.0, -2.0, math.nan)] == ["up", "up", "down", None]


def test_window_extreme_says_highest_lowest_or_neither() -> None:
    """Over the trailing 3 calendar years: the last value at (or tied with) the window's max is
    "highest", at its min "lowest"; values older than 3 years do not count."""
    days = pd.to_datetime(["2020-01-02", "2023-06-01", "2024-01-02", "2025-01-02", "2026-01-02"])
    assert balance.window_extreme(pd.Series([9.0, 5.0, 6.0, 7.0, 4.0], index=days)) == "lowest"
    assert balance.window_extreme(pd.Series([99.0, 5.0, 6.0, 7.0, 7.0], index=days)) == "highest"  # 99 is too old
    assert balance.window_extreme(pd.Series([1.0, 5.0, 6.0, 7.0, 6.5], index=days)) is None
    assert balance.window_extreme(pd.Series([1.0, 5.0, 6.0, 7.0, 6.5], index=days), min_periods=5) is None
    assert balance.window_extreme(pd.Series([4.0], index=days[:1])) is None  # one value: neither
