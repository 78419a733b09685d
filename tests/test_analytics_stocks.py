"""analytics.stocks and analytics.shorts on hand-built frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import shorts, stocks


def _path(daily_pct: list[float], start: float) -> list[float]:
    values = [start]
    for p in daily_pct:
        values.append(values[-1] * (1 + p / 100))
    return values


def _wide() -> pd.DataFrame:
    idx = pd.bdate_range("2024-05-06", periods=5, name="trade_date")
    return pd.DataFrame(
        {
            # daily changes 1, 2, 3 then 10: history mean 2, sd 1 -> z = 8
            "600001": _path([1, 2, 3, 10], 1e8),
            # 1, -1, 1 then 3: mean 1/3, sd 2/sqrt(3) -> z = (8/3) / (2/sqrt(3)) = 4/sqrt(3)
            "000002": _path([1, -1, 1, 3], 2e8),
            # same shape as 600001 but far below the 5e7 floor
            "300003": _path([1, 2, 3, 10], 1e6),
            # falls on the last day: not a spike
            "600004": _path([1, 2, 3, -5], 1e9),
        },
        index=idx,
    )


def test_stock_spikes_hand_computed() -> None:
    out = stocks.stock_spikes(_wide(), days=1, history=3)
    assert out.index.name == "code"
    assert list(out.columns) == ["rzye", "change_pct", "zscore"]
    assert list(out.index) == ["600001", "000002"]
    assert out.loc["600001", "change_pct"] == pytest.approx(10.0)
    assert out.loc["600001", "zscore"] == pytest.approx(8.0)
    assert out.loc["000002", "zscore"] == pytest.approx(4 / math.sqrt(3))
    assert out.loc["600001", "rzye"] == pytest.approx(1e8 * 1.01 * 1.02 * 1.03 * 1.10)
    assert list(stocks.stock_spikes(_wide(), days=1, history=3, top=1).index) == ["600001"]
    # a lower floor lets the small stock in
    small = stocks.stock_spikes(_wide(), days=1, history=3, min_balance=0)
    assert set(small.index) == {"600001", "000002", "300003"}


def test_stock_spikes_not_enough_history() -> None:
    assert stocks.stock_spikes(_wide(), days=1, history=4).empty
    assert stocks.stock_spikes(_wide().iloc[:1], days=1, history=3).empty


def test_spike_scores_hand_computed() -> None:
    wide = _wide()
    days = list(wide.index)
    out = stocks.spike_scores(wide, days=1, history=3)
    assert out.index.names == ["trade_date", "code"]
    assert list(out.columns) == ["rzye", "change_pct", "zscore"]
    assert days[0] not in out.index.get_level_values("trade_date")  # no change on the first day
    # Every stock is listed from the second day on, whatever its balance or sign (no filter).
    assert len(out) == 4 * 4
    last = out.loc[days[-1]]
    assert last.loc["600001", "zscore"] == pytest.approx(8.0)
    assert last.loc["000002", "zscore"] == pytest.approx(4 / math.sqrt(3))
    assert last.loc["300003", "zscore"] == pytest.approx(8.0)  # below the floor, still scored
    assert last.loc["600004", "change_pct"] == pytest.approx(-5.0)
    assert last.loc["600004", "zscore"] == pytest.approx(-7.0)  # (-5 - 2) / 1
    # Day 4 has only two earlier changes (1 and 2): no z-score unless two are enough.
    assert math.isnan(out.loc[(days[3], "600001"), "zscore"])
    two = stocks.spike_scores(wide, days=1, history=3, min_periods=2)
    # (3 - 1.5) / sqrt(((1 - 1.5)^2 + (2 - 1.5)^2) / 1) = 1.5 / sqrt(0.5) = 3 / sqrt(2)
    assert two.loc[(days[3], "600001"), "zscore"] == pytest.approx(3 / math.sqrt(2))
    assert two.loc[(days[3], "600001"), "change_pct"] == pytest.approx(3.0)
    # `start` scores the later rows only, with the earlier ones as history.
    tail = stocks.spike_scores(wide, days=1, history=3, start=days[-1])
    pd.testing.assert_frame_equal(tail, out.loc[[days[-1]]], check_exact=True)


def _random_wide(seed: int = 3, dates: int = 140, width: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.exp(np.cumsum(rng.normal(0, 0.02, (dates, width)), axis=0)) * rng.lognormal(18.5, 1.0, width)
    x[rng.random((dates, width)) < 0.03] = np.nan  # suspensions
    x[:40, :5] = np.nan  # late listings
    x[50:60, 7] = 0.0  # a balance of zero: no change from it
    x[:, 9] = 1e8  # a flat balance: changes never vary, no z-score
    index = pd.bdate_range("2024-01-01", periods=dates, name="trade_date")
    return pd.DataFrame(x, index=index, columns=[f"{600000 + i}" for i in range(width)])


def test_spike_scores_agree_with_stock_spikes() -> None:
    wide = _random_wide()
    scores = stocks.spike_scores(wide)
    compared = 0
    for t in range(60, len(wide)):
        expected = stocks.stock_spikes(wide.iloc[: t + 1], top=10**6)
        day = scores.loc[wide.index[t]]
        got = day[(day["rzye"] >= 5e7) & (day["change_pct"] > 0) & day["zscore"].notna()]
        assert sorted(got.index) == sorted(expected.index)
        got = got.loc[expected.index]
        assert (got["rzye"] == expected["rzye"]).all() and (got["change_pct"] == expected["change_pct"]).all()
        np.testing.assert_allclose(got["zscore"], expected["zscore"], rtol=1e-12)
        compared += len(expected)
    assert compared > 200
    assert scores.xs("600009", level="code")["zscore"].isna().all()


def test_spike_scores_in_pieces_are_bitwise_equal() -> None:
    """Each day reads its 65 previous rows only, summed in a fixed order: pieces give the same bits."""
    wide = _random_wide()
    whole = stocks.spike_scores(wide)
    for cut in (65, 90, 123):
        piece = stocks.spike_scores(wide.iloc[cut - 65 :], start=wide.index[cut])
        pd.testing.assert_frame_equal(piece, whole.loc[wide.index[cut] :], check_exact=True)


def test_stock_rank() -> None:
    day = pd.Series({"600519": 300.0, "000001": 100.0, "300750": 200.0, "688001": float("nan")})
    assert stocks.stock_rank(day, "600519") == (1, 3)
    assert stocks.stock_rank(day, "300750") == (2, 3)
    assert stocks.stock_rank(day, "000001") == (3, 3)
    with pytest.raises(KeyError):
        stocks.stock_rank(day, "688001")
    with pytest.raises(KeyError):
        stocks.stock_rank(day, "999999")
    tie = pd.Series({"a": 100.0, "b": 100.0, "c": 50.0})
    assert stocks.stock_rank(tie, "b") == (1, 3)


# --- 融券 structure ----------------------------------------------------------------------------------

def test_shares_of_sums_hand_computed() -> None:
    # 30 / (30 + 90) = 25 %, 90 / 120 = 75 %, a bucket without rows counts as 0
    assert shorts.shares_of_sums({"etf": 30.0, "other": 90.0}) == {"etf": 25.0, "hs300": 0.0, "other": 75.0}
    assert all(math.isnan(v) for v in shorts.shares_of_sums({"etf": 0.0}).values())
    assert all(math.isnan(v) for v in shorts.shares_of_sums({}).values())


def test_balance_change_ranking() -> None:
    now = pd.Series({"600001": 110.0, "000001": 130.0, "300001": 90.0, "600002": 50.0, "000002": 100.0,
                     "688001": float("nan"), "830001": 10.0})
    then = pd.Series({"600001": 100.0, "000001": 100.0, "300001": 100.0, "600002": 60.0, "000002": 100.0,
                      "688001": 5.0, "920001": 7.0})
    risers, fallers = stocks.balance_change_ranking(now, then, top=2)
    # +30 (30%), +10 (10%); 000002 unchanged is in neither; unknown or one-day-only codes are left out
    assert list(risers.index) == ["000001", "600001"]
    assert risers["change"].tolist() == [30.0, 10.0] and risers["change_pct"].tolist() == [30.0, 10.0]
    assert risers["rzye"].tolist() == [130.0, 110.0]
    assert list(fallers.index) == ["300001", "600002"]  # -10 twice: ties by code
    assert fallers["change_pct"].tolist() == [-10.0, pytest.approx(-100 / 6)]
    empty_risers, _ = stocks.balance_change_ranking(now.iloc[:0], then)
    assert empty_risers.empty


def test_hedging_rising_reads_etf_and_constituents_together() -> None:
    then = {"etf": 20.0, "hs300": 30.0, "other": 50.0}
    assert shorts.hedging_rising({"etf": 30.0, "hs300": 25.0, "other": 45.0}, then) is True  # 55 > 50
    assert shorts.hedging_rising({"etf": 30.0, "hs300": 20.0, "other": 50.0}, then) is False  # 50, not more
    assert shorts.hedging_rising({"etf": math.nan, "hs300": math.nan, "other": math.nan}, then) is False
    # a rise under the minimum asked is not a trend: 50.3 - 50 = 0.3 points
    assert shorts.hedging_rising({"etf": 30.0, "hs300": 20.3, "other": 49.7}, then, min_change_pp=0.5) is False
    assert shorts.hedging_rising({"etf": 30.0, "hs300": 20.6, "other": 49.4}, then, min_change_pp=0.5) is True


def test_a_fall_has_a_spike_zscore_too() -> None:
    """latest_spike_zscores is the statistic alone: a stock whose 5-day change is a fall has its
    (negative) z-score, z = (c[T] - mean(c[T-60..T-1])) / std(same, ddof=1), which the spike list
    (stock_spikes: rises only) leaves out."""
    days = pd.bdate_range("2024-01-02", periods=70, name="trade_date")
    level = pd.Series([1e8 * (1.0 + 0.01 * (i % 4)) for i in range(69)] + [0.9e8], index=days)
    wide = level.to_frame("600001")
    change = (level / level.shift(5) - 1) * 100
    past = change.iloc[-61:-1]
    expected = (change.iloc[-1] - past.mean()) / past.std(ddof=1)
    assert expected < -2
    assert stocks.latest_spike_zscores(wide)["600001"] == pytest.approx(expected, rel=1e-9)
    assert stocks.stock_spikes(wide, min_balance=0).empty
