"""analytics.sectors on a 4-sector, 3-day example computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics import sectors

DATES = pd.to_datetime(["2024-03-01", "2024-03-04", "2024-03-05"])

# (sector, rzye per day, rzmre per day, rzche per day); every row satisfies
# rzye(T) = rzye(T-1) + rzmre(T) - rzche(T), and the total is 100 on every day
ROWS = {
    "A": ([30, 35, 40], [0, 8, 9], [0, 3, 4]),
    "B": ([30, 30, 30], [0, 2, 2], [0, 2, 2]),
    "C": ([20, 20, 20], [0, 1, 1], [0, 1, 1]),
    "D": ([20, 15, 10], [0, 1, 1], [0, 6, 6]),
}


def _long() -> pd.DataFrame:
    records = []
    for code, (rzye, rzmre, rzche) in ROWS.items():
        for i, day in enumerate(DATES):
            records.append(
                {
                    "trade_date": day,
                    "sw_l1_code": code,
                    "rzye": float(rzye[i]),
                    "rzmre": float(rzmre[i]),
                    "rzche": float(rzche[i]),
                }
            )
    # shuffled on purpose: the functions must not rely on the row order
    return pd.DataFrame(records).sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_pivot_balance() -> None:
    wide = sectors.pivot_balance(_long())
    assert list(wide.index) == list(DATES)
    assert wide.index.name == "trade_date"
    assert list(wide.columns) == ["A", "B", "C", "D"]
    assert list(wide.loc[DATES[2]]) == [40.0, 30.0, 20.0, 10.0]
    assert list(sectors.pivot_balance(_long(), "rzmre")["A"]) == [0.0, 8.0, 9.0]


def test_pivot_balance_sums_duplicates_and_leaves_gaps() -> None:
    df = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-04"]),
            "sw_l1_code": ["A", "A", "B"],
            "rzye": [1.0, 2.0, 5.0],
        }
    )
    wide = sectors.pivot_balance(df)
    assert wide.loc[DATES[0], "A"] == 3.0
    assert math.isnan(wide.loc[DATES[1], "A"])


def test_shares_pct() -> None:
    wide = pd.DataFrame({"X": [50.0, 0.0], "Y": [150.0, 0.0]}, index=DATES[:2])
    shares = sectors.shares_pct(wide)
    assert list(shares.iloc[0]) == [25.0, 75.0]
    assert shares.iloc[1].isna().all()  # a zero total has no shares


def test_sector_table_one_day() -> None:
    t = sectors.sector_table(_long(), days=1)
    assert t.index.name == "sw_l1_code"
    assert list(t.columns) == ["rzye", "share_pct", "change", "change_pct", "share_change_pp", "net_buy",
                               "membership_change"]
    # sorted by change: A +5, then B and C at 0 (code order), then D -5
    assert list(t.index) == ["A", "B", "C", "D"]
    a = t.loc["A"]
    assert a["rzye"] == 40.0
    assert a["share_pct"] == 40.0
    assert a["change"] == 5.0
    assert a["change_pct"] == pytest.approx(5 / 35 * 100)  # 14.29 %
    assert a["share_change_pp"] == pytest.approx(5.0)
    assert a["net_buy"] == 5.0  # 9 - 4
    d = t.loc["D"]
    assert (d["change"], d["net_buy"]) == (-5.0, -5.0)
    assert d["change_pct"] == pytest.approx(-100 / 3)


def test_sector_table_two_days() -> None:
    t = sectors.sector_table(_long(), days=2)
    assert t.loc["A", "change"] == 10.0
    assert t.loc["A", "change_pct"] == pytest.approx(100 / 3)  # 10 / 30
    assert t.loc["A", "share_change_pp"] == pytest.approx(10.0)
    assert t.loc["A", "net_buy"] == 10.0  # (8 - 3) + (9 - 4)
    assert t.loc["D", "net_buy"] == -10.0
    assert t.loc["B", "net_buy"] == 0.0


def test_membership_change_is_what_no_member_bought() -> None:
    """Same members all along: every change is net buying, membership_change 0. Then a stock with a
    balance of 12 moves from A to B on the last day (a reclassification), while A's members net buy
    5 and B's 0: A's change is 5 - 12 = -7 over that day, of which -12 came with membership, and B's
    +12 all did."""
    steady = sectors.sector_table(_long(), days=2)
    assert (steady["membership_change"] == 0.0).all()
    long = _long()
    last = long["trade_date"] == DATES[-1]
    long.loc[last & (long["sw_l1_code"] == "A"), "rzye"] = 40.0 - 12.0
    long.loc[last & (long["sw_l1_code"] == "B"), "rzye"] = 30.0 + 12.0
    moved = sectors.sector_table(long, days=1)
    assert (moved.loc["A", "change"], moved.loc["A", "net_buy"], moved.loc["A", "membership_change"]) == (-7.0, 5.0,
                                                                                                          -12.0)
    assert (moved.loc["B", "change"], moved.loc["B", "net_buy"], moved.loc["B", "membership_change"]) == (12.0, 0.0,
                                                                                                          12.0)
    assert moved.loc[["C", "D"], "membership_change"].tolist() == [0.0, 0.0]


def test_sector_table_not_enough_history() -> None:
    t = sectors.sector_table(_long(), days=3)
    assert t["change"].isna().all()
    assert t["change_pct"].isna().all()
    assert list(t["rzye"].sort_index()) == [40.0, 30.0, 20.0, 10.0]


def test_net_buying_is_unknown_where_a_day_of_it_is() -> None:
    """A sector's rzche unknown on one day of the window (a member's was): its net buying over the
    window is unknown, never a partial sum nor a figure derived from the sector's own balance (which
    would count a stock joining or leaving the sector as buying or selling)."""
    long = _long()
    last = long["trade_date"].max()
    long.loc[(long["sw_l1_code"] == "A") & (long["trade_date"] == last), "rzche"] = np.nan
    t = sectors.sector_table(long, days=2)
    assert math.isnan(t.loc["A", "net_buy"])
    assert t.loc["D", "net_buy"] == -10.0  # the others keep theirs
    assert sectors.sector_table(long.drop(columns="rzche"), days=2)["net_buy"].isna().all()


def test_net_buy_daily_is_unknown_where_one_row_of_a_cell_is() -> None:
    """Two rows for sector A on one day: rzmre/rzche 10/5 and 20/unknown. The day's net buying is
    unknown, not 10 + 20 - 5 = 25 (the second row's purchases without its repayments); B's two known
    rows sum: (4 - 1) + (6 - 2) = 7; an unknown rzmre makes the cell unknown too."""
    df = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(["2024-03-01"] * 4 + ["2024-03-04"] * 2),
            "sw_l1_code": ["A", "A", "B", "B", "A", "B"],
            "rzye": [100.0, 200.0, 50.0, 60.0, 105.0, 110.0],
            "rzmre": [10.0, 20.0, 4.0, 6.0, np.nan, 3.0],
            "rzche": [5.0, np.nan, 1.0, 2.0, 1.0, 3.0],
        }
    )
    net = sectors.net_buy_daily(df)
    assert list(net.columns) == ["A", "B"]
    assert math.isnan(net.loc[DATES[0], "A"])
    assert net.loc[DATES[0], "B"] == 7.0
    assert math.isnan(net.loc[DATES[1], "A"])  # rzmre unknown
    assert net.loc[DATES[1], "B"] == 0.0  # 3 - 3
    # the balances of the same rows sum as before
    assert sectors.pivot_balance(df).loc[DATES[0], "A"] == 300.0


def test_hhi_and_top_n_hand_computed() -> None:
    # Balances (any unit) per day: 40/30/20/10 of 100; one sector alone; four equal; a day with the
    # last sector unknown (it counts as 0 of the known total); a day with nothing known.
    wide = pd.DataFrame({"A": [8.0, 5.0, 1.0, 6.0, np.nan], "B": [6.0, 0.0, 1.0, 2.0, np.nan],
                         "C": [4.0, 0.0, 1.0, 2.0, np.nan], "D": [2.0, 0.0, 1.0, np.nan, np.nan]},
                        index=pd.date_range("2024-01-01", periods=5, name="trade_date"))
    c = sectors.concentration(wide)
    # 0.4^2 + 0.3^2 + 0.2^2 + 0.1^2 = 0.30 -> 3000; 1 -> 10000; 4 x 0.25^2 -> 2500; 0.6^2 + 2 x 0.2^2 -> 4400
    assert list(c["hhi"].iloc[:4].round(9)) == [3000.0, 10000.0, 2500.0, 4400.0]
    assert list(c["top5_share_pct"].iloc[:4].round(9)) == [100.0, 100.0, 100.0, 100.0]  # fewer than 5 sectors
    assert c.iloc[4].isna().all()
    assert list(sectors.concentration(wide, n=2)["top2_share_pct"].iloc[:4].round(9)) == [70.0, 100.0, 50.0, 80.0]


def test_concentration_per_day() -> None:
    c = sectors.concentration(sectors.pivot_balance(_long()))
    assert list(c.columns) == ["hhi", "top5_share_pct"]
    # 30/30/20/20 -> 900+900+400+400; 35/30/20/15 -> 1225+900+400+225; 40/30/20/10 -> 3000
    assert list(c["hhi"].round(6)) == [2600.0, 2750.0, 3000.0]
    c2 = sectors.concentration(sectors.pivot_balance(_long()), n=2)
    assert list(c2["top2_share_pct"].round(6)) == [60.0, 65.0, 70.0]


def test_stability_cv() -> None:
    wide = pd.DataFrame({"A": [9.0, 10.0, 11.0], "B": [5.0, 5.0, 5.0], "C": [1.0, np.nan, 1.0]}, index=DATES)
    cv = sectors.stability_cv(wide, window=3)
    # A: mean 10, sample sd 1 -> 0.1; B constant -> 0; C has a gap -> nan
    assert cv["A"] == pytest.approx(0.1)
    assert cv["B"] == 0.0
    assert math.isnan(cv["C"])
    assert sectors.stability_cv(wide, window=4).isna().all()
    # only the last `window` rows count: A's last two are 10, 11 -> sd 0.7071 / 10.5
    assert sectors.stability_cv(wide, window=2)["A"] == pytest.approx(math.sqrt(0.5) / 10.5)


def test_median_stability_cv() -> None:
    wide = pd.DataFrame({"A": [9.0, 10.0, 11.0], "B": [5.0, 5.0, 5.0], "C": [1.0, np.nan, 1.0],
                         "D": [18.0, 20.0, 22.0]}, index=DATES)
    # known CVs: A 0.1, B 0, D 0.1 (C has a gap and is left out) -> median 0.1
    assert sectors.median_stability_cv(sectors.stability_cv(wide, window=3)) == pytest.approx(0.1)
    # window 2: A sqrt(.5)/10.5, B 0, C nan, D sqrt(2)/21 = the same as A -> median of three
    assert sectors.median_stability_cv(sectors.stability_cv(wide, window=2)) == pytest.approx(math.sqrt(0.5) / 10.5)
    assert math.isnan(sectors.median_stability_cv(sectors.stability_cv(wide, window=4)))


def test_bottoming_sectors() -> None:
    idx = pd.bdate_range("2024-03-01", periods=6, name="trade_date")
    turn = [10.0, 9.0, 8.0, 8.0, 9.0, 10.0]  # 2-day change: -2, -1, +1, +2 on rows 2..5
    rzye = pd.DataFrame(
        {
            "A": turn,
            "B": turn,
            "C": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # never down: not a turn
            "D": [10.0, 9.0, 8.0, 7.0, 6.0, 5.0],  # still falling
            "E": turn,  # no sector index price
            "F": [10.0, 9.0, 8.0, 8.0, 9.0, 14.0],  # turns too, with a larger change (+5)
        },
        index=idx,
    )
    falling = [100.0, 100.0, 100.0, 100.0, 99.0, 98.0]
    px = pd.DataFrame(
        {
            "A": falling,
            "B": [100.0, 100.0, 100.0, 100.0, 101.0, 102.0],
            "C": falling,
            "D": falling,
            "F": falling,
        },
        index=idx,
    )
    assert sectors.bottoming_sectors(rzye, px, days=2, lookback=2, min_down=2) == ["F", "A"]
    # (two days down before the turn: min_down=2) with a 1-day lookback the turn must be on row 5,
    # after rows 3 and 4 down: row 4 is +1 for A and F
    assert sectors.bottoming_sectors(rzye, px, days=2, lookback=1, min_down=2) == []
    # a flat index (return exactly 0) still counts as "not yet up"
    flat = px.assign(A=100.0)
    assert "A" in sectors.bottoming_sectors(rzye, flat, days=2, lookback=2, min_down=2)
    assert sectors.bottoming_sectors(rzye.iloc[:3], px, days=2, lookback=2, min_down=2) == []
    # no sector index close on the last day: the price side is unknown, the signal not judged
    assert sectors.bottoming_sectors(rzye, px.iloc[:-1], days=2, lookback=2, min_down=2) is None
    # A's close missing on T-2 only: its return unknown, A no longer qualifies; F still does
    gap = px.copy()
    gap.loc[idx[3], "A"] = np.nan
    assert sectors.bottoming_sectors(rzye, gap, days=2, lookback=2, min_down=2) == ["F"]
    # a 1-day change that flips sign every day (-1, +1, -1, +1, -1, +1, +1) has no run on the negative
    # side: no turn, unless a single day down is run enough
    flip = pd.DataFrame({"G": [10.0, 9.0, 10.0, 9.0, 10.0, 9.0, 10.0, 11.0]},
                        index=pd.bdate_range("2024-03-01", periods=8, name="trade_date"))
    falling_g = pd.DataFrame({"G": [100.0] * 7 + [99.0]}, index=flip.index)
    assert sectors.bottoming_sectors(flip, falling_g, days=1, lookback=5, min_down=2) == []
    assert sectors.bottoming_sectors(flip, falling_g, days=1, lookback=5, min_down=1) == ["G"]


def test_concentration_with_gaps_and_empty_days() -> None:
    wide = pd.DataFrame(
        {"A": [60.0, np.nan, np.nan], "B": [40.0, 50.0, np.nan], "C": [np.nan, 50.0, np.nan]}, index=DATES
    )
    c = sectors.concentration(wide, n=1)
    # 60/40 -> 3600 + 1600; 50/50 -> 2500 + 2500; a day without data stays unknown
    assert list(c["hhi"].iloc[:2].round(6)) == [5200.0, 5000.0]
    assert list(c["top1_share_pct"].iloc[:2]) == [60.0, 50.0]
    assert c.iloc[2].isna().all()


def test_sector_table_empty_frame() -> None:
    t = sectors.sector_table(_long().iloc[:0], days=1)
    assert t.empty
    assert "net_buy" in t.columns


def test_a_day_without_detail_does_not_hide_a_turn() -> None:
    """A sector flat for 44 days, then up (its 20-day change: 0 for 24 days, then +1, +2), its index
    falling: a turn. A trade date without per-stock detail (nan for every sector) inside the run
    before the turn, or as the 20-day base, leaves it a turn: an unknown day is neither up nor down."""
    idx = pd.bdate_range("2024-01-02", periods=46, name="trade_date")
    rzye = pd.DataFrame({"A": [100.0] * 44 + [101.0, 102.0]}, index=idx)
    px = pd.DataFrame({"A": np.linspace(100.0, 95.0, 46)}, index=idx)
    assert sectors.bottoming_sectors(rzye, px) == ["A"]
    for gap in (-7, -27):
        holed = rzye.copy()
        holed.iloc[gap] = np.nan
        assert sectors.bottoming_sectors(holed, px) == ["A"], gap
