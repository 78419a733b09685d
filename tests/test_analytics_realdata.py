"""analytics reproduces published facts from the real 2010-2018 market files (skipped without them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analytics import balance, ratio

PEAK_DAY = pd.Timestamp("2015-06-18")
PEAK_RZRQYE = 2_273_035_261_015.0


def _margin(realdata: Path) -> pd.DataFrame:
    df = pd.read_csv(realdata / "market_margin_sse_szse_2010_2018.csv", na_values="-", parse_dates=["date"])
    return df.set_index("date").rename_axis("trade_date").sort_index()


def _index(realdata: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(realdata / f"index_{name}_2010_2018.csv", parse_dates=["date"])
    return df.set_index("date").rename_axis("trade_date").sort_index()


@pytest.fixture
def margin(realdata: Path) -> pd.DataFrame:
    return _margin(realdata)


@pytest.fixture
def ratio_frame(realdata: Path, margin: pd.DataFrame) -> pd.DataFrame:
    # fallback turnover: whole-exchange index `amount` of SSE and SZSE (B shares included)
    turnover = _index(realdata, "sh000001")["amount"] + _index(realdata, "sz399001")["amount"]
    return ratio.margin_trade_ratio(margin["rzmre_yuan"], turnover)


def test_peak_balance_2015_06_18(margin: pd.DataFrame) -> None:
    rzrqye = margin["rzrqye_yuan"]
    assert rzrqye.loc[PEAK_DAY] == PEAK_RZRQYE
    up_to_peak = rzrqye.loc[:PEAK_DAY]
    assert balance.percentile_rank(up_to_peak, years=3) == 100.0
    # the next day is already below the peak
    assert balance.percentile_rank(rzrqye.loc[: pd.Timestamp("2015-06-19")], years=3) < 100.0
    # on the peak day even the trailing 3-year 90 % band lies well below it
    band = balance.rolling_quantiles(rzrqye, window=750)
    assert band.loc[PEAK_DAY, "q90"] < PEAK_RZRQYE
    # and no later day in the file comes back to it: none ranks 100 within its 3 years till 2018
    later = rzrqye.loc["2015-06-19":]
    assert later.max() < PEAK_RZRQYE


def test_2015_deleveraging_shows_as_turn_and_sharp_pace(margin: pd.DataFrame) -> None:
    rzrqye = margin["rzrqye_yuan"]
    when, direction = balance.last_turning_point(rzrqye.loc[:"2015-07-31"])
    assert direction == "down"
    assert pd.Timestamp("2015-06-19") <= when <= pd.Timestamp("2015-07-10")
    assert balance.pace_class(balance.pace_zscore(rzrqye.loc[:"2015-07-08"])) == "sharp"
    assert balance.pace_zscore(rzrqye.loc[:"2015-07-08"]) < 0


def test_yearly_mean_margin_trade_ratio(ratio_frame: pd.DataFrame) -> None:
    yearly = ratio_frame["ratio_pct"].groupby(ratio_frame.index.year).mean()
    assert yearly.loc[2014] == pytest.approx(11.5, abs=0.3)
    assert yearly.loc[2015] == pytest.approx(12.7, abs=0.3)
    assert not ratio_frame["rqmce_included"].any()


def test_balance_identity_holds(margin: pd.DataFrame) -> None:
    """rzye(T-1) + rzmre(T) - rzche(T) = rzye(T) within 0.25 % on the published figures: the identity
    storage derives a missing 融资偿还额 from (storage.plausibility.derive_rzche)."""
    rzye, rzmre, rzche = margin["rzye_yuan"], margin["rzmre_yuan"], margin["rzche_yuan"]
    gap_pct = (rzye.shift(1) + rzmre - rzche - rzye) / rzye * 100.0
    assert gap_pct.notna().sum() > 2000
    assert gap_pct.abs().max() < 0.25


def test_signals_in_the_2014_2015_cycle(realdata: Path, ratio_frame: pd.DataFrame) -> None:
    close = _index(realdata, "sh000001")["close"]
    r = ratio_frame["ratio_pct"]
    end_2014 = pd.Timestamp("2014-12-31")
    # late 2014: leverage high and rising with the index
    assert ratio.crowding_warning(r.loc[:end_2014], close.loc[:end_2014]) is True
    # 2015-07-08, the worst of the crash: both ratio and index down over 20 days
    crash = pd.Timestamp("2015-07-08")
    assert ratio.deleveraging(r.loc[:crash], close.loc[:crash]) is True
    assert ratio.crowding_warning(r.loc[:crash], close.loc[:crash]) is False
