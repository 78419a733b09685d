"""The sectors' figures (质): each Shenwan level-1 sector's 融资余额, share, N-day change and net
buying, concentration (HHI, top 5) with its trend, stability, one sector alone, and bottoming."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from analytics import balance, sectors
from reports.errors import ReportError, not_enough_history
from reports.figures.common import (
    BOTTOMING_ROWS,
    HEADLINE_SECTORS,
    HHI_MIN_CHANGE,
    MEMBERSHIP_NOTE_SHARE_PCT,
    MEMBERSHIP_NOTED,
    STABILITY_DAYS,
    STABILITY_MIN_CHANGE_PP,
    Figures,
    SubReport,
    _base,
    _direct,
    _industry_names,
    _num,
    _series_records,
)
from storage import queries


def _concentration_trend(hhi_change: float, top5_change_pp: float) -> str | None:
    """Which way sector concentration moved: "balanced" (HHI down by at least HHI_MIN_CHANGE, the
    top-5 share not up: 行业分布更加均衡), "concentrating" (the mirror), "mixed" (the two measures
    moved apart), "flat" (HHI moved less than HHI_MIN_CHANGE), None when either day is unknown. A
    top-5 change that prints as 0.00 points contradicts nothing."""
    if math.isnan(hhi_change) or math.isnan(top5_change_pp):
        return None
    top5_change_pp = round(top5_change_pp, 2)
    if hhi_change <= -HHI_MIN_CHANGE:
        return "balanced" if top5_change_pp <= 0 else "mixed"
    if hhi_change >= HHI_MIN_CHANGE:
        return "concentrating" if top5_change_pp >= 0 else "mixed"
    return "flat"


def sectors_figures(engine: Engine, day: date, days: int) -> Figures:
    """质: per-sector balance, share and N-day shifts, HHI / top-5 share and their trend, stability."""
    start = queries.nth_date_before(engine, day, days + 25)
    long = queries.sector_daily(engine, start, day)
    if long.empty or long["trade_date"].max().date() != day:
        # Sector figures come from per-stock detail: none stored for this day (market-only history).
        latest = queries.latest_sector_date(engine, day)
        if latest is None:
            raise ReportError("no_sector_data", date=day.isoformat())
        raise ReportError("no_sector_data_on", date=day.isoformat(), latest=latest.isoformat())
    # Windows count trade dates: a date without per-stock detail is an unknown day in the window
    # (its changes and net buying unknown), never a window stretched by one day.
    grid = queries.known_trade_dates(engine, long["trade_date"].min().date(), day)
    wide = sectors.pivot_balance(long)
    wide = wide.reindex(grid.union(wide.index))
    if len(wide) <= days:  # `start` was then the first stored date: the whole history is here
        raise not_enough_history(day, days, longest=len(wide) - 1)
    table = sectors.sector_table(long, days, grid)
    conc = sectors.concentration(wide)
    cv = sectors.stability_cv(wide, STABILITY_DAYS)
    names_zh, names_en = _industry_names(engine)
    data = _base(engine, "sectors", day)
    hhi_now, hhi_then = conc["hhi"].iloc[-1], conc["hhi"].iloc[-days - 1]
    top_now, top_then = conc["top5_share_pct"].iloc[-1], conc["top5_share_pct"].iloc[-days - 1]
    cv_of = cv.to_dict()
    # The window's trade dates without per-stock detail: each leaves every sector's N-day 融资净买入
    # unknown (sectors.sector_table); the latest is named.
    in_window = wide.iloc[-days:]
    detail_gaps = in_window.index[in_window.isna().all(axis=1)]
    # None where the day T-days has no detail: no claim either way
    trend = _concentration_trend(hhi_now - hhi_then, top_now - top_then)
    rows = []
    for code, row in table.to_dict("index").items():  # plain dicts: a Series per row costs 30x more
        rows.append(
            {
                "code": code,
                "name": names_zh.get(code, code),
                "name_en": names_en.get(code, code),
                "rzye": _num(row["rzye"]),
                "share_pct": _num(row["share_pct"]),
                "change": _num(row["change"]),
                "change_pct": _num(row["change_pct"]),
                "share_change_pp": _num(row["share_change_pp"]),
                "net_buy": _num(row["net_buy"]),
                "membership_change": _num(row["membership_change"]),
                "cv_20d_pct": _num(cv_of.get(code, math.nan) * 100.0),
            }
        )
    net_known = [r for r in rows if r["net_buy"] is not None]
    data.update(
        days=days,
        stability=_stability(wide, cv, days, names_zh, names_en),
        hhi=_num(hhi_now),
        hhi_change=_num(hhi_now - hhi_then),
        top5_share_pct=_num(top_now),
        top5_change_pp=_num(top_now - top_then),
        concentration_trend=trend,
        base_date=wide.index[-days - 1].date().isoformat(),
        base_known=any(r["change"] is not None for r in rows),
        net_buy_known=bool(net_known),
        # sectors left out of the headline ranking for an unknown 融资净买入 (said in the text)
        net_buy_unknown=len(rows) - len(net_known) if net_known else 0,
        net_buy_gap_date=detail_gaps[-1].date().isoformat() if len(detail_gaps) else None,
        total_rzye=_num(wide.iloc[-1].sum()),
        bottoming=_bottoming(engine, day),
        # Money bought on margin, not the balance change: a reclassification moves stocks' balances
        # between sectors (a sector's balance jumps with no buying), while 融资净买入 sums each member's
        # own purchases less repayments. The largest net buyers and net repayers, each on its side
        # of zero (on a day every sector bought, no repayer), ties in the table's order.
        inflows=sorted((r for r in net_known if r["net_buy"] > 0), key=lambda r: -r["net_buy"])[:HEADLINE_SECTORS],
        outflows=sorted((r for r in net_known if r["net_buy"] < 0), key=lambda r: r["net_buy"])[:HEADLINE_SECTORS],
        # Where stocks changed sector (or the margin list) in the window, a sector's balance change and
        # its net buying part ways (the chart ranks the one, the headline the other): named, so that
        # the two do not read as a contradiction.
        membership_moves=_membership_moves(rows),
        membership_moves_more=max(0, sum(membership_notable(r["membership_change"], r["rzye"]) for r in rows)
                                  - MEMBERSHIP_NOTED),
        sectors=rows,
    )
    return Figures("sectors", data, {"table": rows, "concentration": conc.iloc[-days - 1 :]})


def membership_notable(change: float | None, rzye: float | None) -> bool:
    """Whether a sector's membership_change (元) is worth naming: at least MEMBERSHIP_NOTE_SHARE_PCT
    of its balance (元)."""
    return change is not None and bool(rzye) and abs(change) >= abs(rzye) * MEMBERSHIP_NOTE_SHARE_PCT / 100.0


def _membership_moves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sectors whose balance change holds a notable membership_change, the largest first (at
    most MEMBERSHIP_NOTED): code, names, membership_change (元)."""
    moved = [r for r in rows if membership_notable(r["membership_change"], r["rzye"])]
    moved.sort(key=lambda r: -abs(r["membership_change"]))
    return [{key: r[key] for key in ("code", "name", "name_en", "membership_change")}
            for r in moved[:MEMBERSHIP_NOTED]]


def _stability(wide: pd.DataFrame, cv: pd.Series, days: int, names_zh: dict[str, str],
               names_en: dict[str, str]) -> dict[str, Any]:
    """The 20-day stability read-out: the median sector CV now and its change over the window
    (percent and points; None where the history is too short), and the steadiest and least steady
    sectors (up to three each, by CV)."""
    now = sectors.median_stability_cv(cv)
    then = sectors.median_stability_cv(sectors.stability_cv(wide.iloc[:-days], STABILITY_DAYS))
    ranked = list(cv.dropna().sort_values(kind="stable").index)
    named = [{"code": c, "name": names_zh.get(c, c), "name_en": names_en.get(c, c)} for c in ranked]
    change = now - then
    return {
        "median_cv_pct": _num(now * 100.0),
        "median_cv_change_pp": _num(change * 100.0),
        # a change under STABILITY_MIN_CHANGE_PP is noise, not a trend either way
        "steadier": None if math.isnan(change) or abs(change) * 100.0 < STABILITY_MIN_CHANGE_PP else bool(change < 0),
        "steadiest": named[:3],
        "least_steady": named[max(3, len(named) - 3):][::-1],  # never one already named steadiest
    }


def sector_figures(engine: Engine, day: date, days: int, code: str, sub: SubReport | None = None) -> Figures:
    """One level-1 sector (`code`, e.g. 270000): its row of the sectors report (balance, share, N-day
    change, share points, 融资净买入, 20-day CV), its rank by change, whether it is bottoming, its
    index's N-day return, and the series of its balance, index close and daily 融资净买入."""
    sub = sub or _direct(engine)
    table = sub("sectors", day, days).data  # the whole table, cached for /sectors itself
    rows = {r["code"]: (rank, r) for rank, r in enumerate(table["sectors"], start=1)}
    if code not in rows:
        names_zh, names_en = _industry_names(engine)
        raise ReportError("no_sector_stocks", sector={"zh": names_zh.get(code, code), "en": names_en.get(code, code)},
                          date=day.isoformat())
    rank, row = rows[code]
    start = queries.nth_date_before(engine, day, days)
    long = queries.sector_daily(engine, start, day)
    mine = long[long["sw_l1_code"] == code].set_index("trade_date").sort_index()
    balance_series = mine["rzye"].astype(float)
    net_buy = sectors.net_buy_daily(long)[code].iloc[1:]
    closes = queries.sector_index_closes(engine, start, day)
    index = closes[code].dropna() if code in closes.columns else pd.Series(dtype=float)
    # the index's return over the window: from its close on the window's first day (or none)
    index_return = (balance.pct_change(index, len(index) - 1)
                    if len(index) > 1 and index.index[0].date() <= start else None)
    data = _base(engine, "sector", day)
    data.update(
        days=days,
        code=code,
        sector={"code": code, "name": row["name"], "name_en": row["name_en"]},
        **{key: row[key] for key in ("rzye", "share_pct", "change", "change_pct", "share_change_pp", "net_buy",
                                     "membership_change", "cv_20d_pct")},
        membership_notable=membership_notable(row["membership_change"], row["rzye"]),
        rank=rank,
        of=len(table["sectors"]),
        # None where the sector indexes have no close on the day (not judged, and said so)
        bottoming=None if table["bottoming"] is None else any(b["code"] == code for b in table["bottoming"]),
        index_return_pct=_num(index_return),
        series=_series_records(balance_series, "rzye"),
    )
    return Figures("sector", data, {"rzye": balance_series, "index": index, "net_buy": net_buy})


@queries.shared  # the summary asks twice: for its sectors and for its signals
def _bottoming(engine: Engine, day: date) -> list[dict[str, str]] | None:
    """Sectors whose financing turned up before their index did (analytics.sectors.bottoming_sectors,
    20-day changes, 5-day look-back), largest turn first: code and names. [] without the day's
    per-stock detail (the reports say so already); None when the sector indexes have no close on the
    day (not judged, and said so)."""
    start = queries.nth_date_before(engine, day, BOTTOMING_ROWS)
    long = queries.sector_daily(engine, start, day)
    if long.empty or long["trade_date"].max().date() != day:
        return []
    index_wide = queries.sector_index_closes(engine, start, day)
    names_zh, names_en = _industry_names(engine)
    wide = sectors.pivot_balance(long)  # on the trade-date grid: 20 days are 20 trade dates
    wide = wide.reindex(queries.known_trade_dates(engine, wide.index[0].date(), day).union(wide.index))
    codes = sectors.bottoming_sectors(wide, index_wide)
    if codes is None:
        return None
    return [{"code": c, "name": names_zh.get(c, c), "name_en": names_en.get(c, c)} for c in codes]
