"""Securities' figures: one security's report (history, rank, spike), the ranking of the largest
risers and fallers, the market's spikes and the 融券 structure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, NoReturn

import pandas as pd
from sqlalchemy import Engine

from analytics import balance, shorts, stocks
from reports.errors import ReportError, not_enough_history
from reports.figures.common import (
    CODE_RE,
    HEDGING_MIN_CHANGE_PP,
    HS300,
    SHORT_SHIFT_DAYS,
    SPIKE_DATES_LOADED,
    SPIKE_TOP,
    SPIKE_Z,
    TOP_COUNT,
    Figures,
    _base,
    _exchanges_of,
    _industry_names,
    _num,
    _series_records,
)
from storage import queries


def _spikes(engine: Engine, day: date) -> pd.DataFrame:
    """The day's spikes (z-score >= SPIKE_Z, at most SPIKE_TOP, largest first): index code, columns rzye,
    change_pct, zscore. Read from the pre-computed StockSpikeDaily with one indexed query."""
    stored = queries.stored_spikes(engine, day, SPIKE_Z, SPIKE_TOP)
    if stored is not None:
        return stored
    if not queries.has_stock_rows(engine, day):
        return pd.DataFrame(columns=["rzye", "change_pct", "zscore"], index=pd.Index([], name="code"), dtype=float)
    # Fallback, only while nothing is stored for the day but its stock rows are (a database migrated
    # to revision 0002 keeps its older days without spike rows, or a writer that skipped
    # storage.aggregate.rebuild_stock_spikes): the same figures computed from 71 days of stock rows,
    # the slow way (~2.5 s for 5,000 stocks).
    wide = queries.stock_balances(engine, queries.nth_date_before(engine, day, 70), day)
    if len(wide) <= 10:
        return pd.DataFrame(columns=["rzye", "change_pct", "zscore"], index=pd.Index([], name="code"), dtype=float)
    spikes = stocks.stock_spikes(wide, top=SPIKE_TOP)
    return spikes[spikes["zscore"] >= SPIKE_Z]


def _spikes_scored(engine: Engine, day: date, spikes: pd.DataFrame) -> bool:
    """Whether any stock has a spike z-score on `day`: each needs the 5-day changes of the 60 stock
    dates before it (stocks.SPIKE_DATES_BEFORE), which the first 65 dates of per-stock detail lack."""
    if len(spikes):
        return True
    stored = queries.stored_spikes(engine, day, -1e300, 1)  # any stored candidate with a z-score
    if stored is not None:
        return len(stored) > 0
    # nothing stored for the day (see _spikes): whether the dates the z-score reads are there
    return len(queries.stock_detail_dates(engine, day, SPIKE_DATES_LOADED)) == SPIKE_DATES_LOADED


def _short_structure(engine: Engine, day: date) -> dict[str, Any] | None:
    """Where 融券余额 sits (ETF / CSI 300 / other), today and 20 days ago; None without stock detail."""
    then_day = queries.nth_date_before(engine, day, SHORT_SHIFT_DAYS)
    sums = queries.short_sums(engine, [day, then_day], HS300)
    today, earlier = sums[day], sums[then_day]
    if sum(today.sums.values()) <= 0:
        return None
    now = shorts.shares_of_sums(today.sums)
    # The 20-day change compares like with like: a day 20 trade dates back (not the first stored day
    # of a shorter history), both days with SSE's lending valued at the close or both without it (SSE
    # counting 0), never one of each (a shift that is only SSE coming in).
    comparable = (earlier.rows > 0 and queries.trade_days_between(engine, then_day, day) >= SHORT_SHIFT_DAYS - 1
                  and (today.estimated > 0) == (earlier.estimated > 0))
    then = shorts.shares_of_sums(earlier.sums) if comparable else None
    out: dict[str, Any] = {k: _num(v) for k, v in now.items()}
    out["hs300_known"] = today.members_as_of is not None
    if not out["hs300_known"]:  # no constituent list stored: the stocks' share is not split, and says so
        out["hs300"] = None
    out["hs300_as_of"] = today.members_as_of.isoformat() if today.members_as_of else None
    # A day older than every stored list is sorted by the oldest list, a later one: said in the report.
    sides = [(today, day), (earlier, then_day)] if then else [(today, day)]
    later = [side.members_as_of for side, when in sides if side.members_as_of and side.members_as_of > when]
    out["hs300_list_from"] = later[0].isoformat() if later else None
    # SSE detail has no per-stock 融券余额; without a close to value 融券余量 such rows count as 0.
    out["missing_rqye"] = today.missing
    out["estimated_rqye"] = today.estimated  # SSE's 融券余量 valued at the day's close (storage.ingest)
    out["change_pp"] = {k: _num(now[k] - then[k]) if k != "hs300" or out["hs300_known"] else None
                        for k in now} if then else None
    # without the list the hedging read-out (ETFs and constituents together) cannot be made
    out["hedging_rising"] = (shorts.hedging_rising(now, then, HEDGING_MIN_CHANGE_PP)
                             if then and out["hs300_known"] else False)
    return out


def _spiking(zscore: float, rise_5d_pct: float, rzye: float | None, is_fund: bool) -> bool:
    """The market's spike list's rule, which the stock report and the watch lines flag: a stock (the
    list leaves funds and ETFs out) with a 5-day rise of z >= SPIKE_Z, of a financing balance of at
    least stocks.SPIKE_MIN_BALANCE (元). A fund's z-score is shown, never flagged."""
    return bool(not is_fund and zscore >= SPIKE_Z and rise_5d_pct > 0 and rzye is not None
                and rzye >= stocks.SPIKE_MIN_BALANCE)


def _no_row(engine: Engine, code: str, day: date, history: pd.DataFrame) -> NoReturn:
    """Why one security has no detail on `day`, a date with market data: no security has any that
    day (no_stock_detail_on), it was never stored (unknown_code), stored only from a later date
    (stock_starts_later), or absent that day (suspended, or off the exchange's list of margin
    securities then: stock_no_row, with its latest day before)."""
    if not queries.has_stock_rows(engine, day):  # no security has detail that day: not this one's doing
        raise ReportError("no_stock_detail_on", date=day.isoformat())
    before = history.index[-1].date() if not history.empty else queries.last_stock_date(engine, code, day)
    if before is not None:
        raise ReportError("stock_no_row", code=code, date=day.isoformat(), before=before.isoformat())
    first = queries.first_stock_date(engine, code)
    if first is None:
        raise ReportError("unknown_code", code=code)
    raise ReportError("stock_starts_later", code=code, date=day.isoformat(), first=first.isoformat())


def stock_figures(engine: Engine, day: date, days: int, code: str | None) -> Figures:
    """One security: balance history, 5/20-day change, rank by 融资余额, spike z-score."""
    if not code or not CODE_RE.match(code):
        raise ReportError("bad_code", code=code or "")
    # The stock's spike z-score counts the dates with per-stock detail, as the market's spike list
    # does (storage.aggregate): a day whose detail is missing is skipped by both, so that /signals and
    # /stock never give one stock two z-scores; its changes count trade dates (below). Loaded: those
    # dates and the window.
    detail_dates = queries.stock_detail_dates(engine, day, SPIKE_DATES_LOADED)
    start = min(queries.nth_date_before(engine, day, days), detail_dates[0] if detail_dates else day)
    history = queries.stock_history(engine, code, start=start, end=day)
    if history.empty or history.index[-1].date() != day:
        _no_row(engine, code, day, history)
    level = history["rzye"].astype(float)
    is_fund = bool(history["is_fund"].iloc[-1])
    # A fund or ETF ranks among funds and ETFs, a stock among stocks: what an investor compares it
    # with (an ETF's rank among every security mixes two markets, and reads as a rank among its peers).
    balances = queries.financing_balances_on(engine, day, stocks_only=True)
    if is_fund:
        every = queries.financing_balances_on(engine, day, stocks_only=False)
        balances = every[~every.index.isin(balances.index)]
    if pd.isna(balances.get(code)):  # a row without 融资余额: no rank (stock_rank would raise KeyError)
        rank, count = None, int(balances.notna().sum())
    else:
        rank, count = stocks.stock_rank(balances, code)
    # Its Shenwan level-1 sector that day and its rank there (what /sectors and /top N sector show)
    sector_code = None if is_fund else queries.sector_of(engine, code, day)
    sector, sector_rank, sector_count = None, None, None
    if sector_code is not None:
        names_zh, names_en = _industry_names(engine)
        sector = {"code": sector_code, "name": names_zh.get(sector_code, sector_code),
                  "name_en": names_en.get(sector_code, sector_code)}
        if rank is not None:
            peers = balances[balances.index.isin(queries.sector_members(engine, sector_code, day))]
            sector_rank, sector_count = stocks.stock_rank(peers, code)
    last = history.iloc[-1]
    window = history.iloc[-days - 1 :]
    days_shown = min(len(window), days)  # dates with data, where the history is shorter (as the balance's)
    # The spike z-score on the dates with detail (above), as the market's list computes it; where the
    # stock has none of those it is suspended, and its changes across the suspension are unknown.
    on_grid = level.reindex(pd.DatetimeIndex(detail_dates))
    z = float(stocks.latest_spike_zscores(on_grid.to_frame(code)).iloc[0])
    rise_5d_pct = balance.pct_change(on_grid, 5)
    # The changes it reports count trade dates, as /top and the market's do: a day without any
    # per-stock detail is a day of the window (the change across it unknown where it is the base),
    # never skipped, so that a 5-day change is the same 5 days in every report.
    on_days = level.reindex(queries.trade_date_grid(engine, start, day))
    data = _base(engine, "stock", day)
    data.update(
        days=days,
        days_shown=days_shown,
        # the one exchange the security trades on: its figures are its own rows, not the market's
        scope=[str(last["exchange"])],
        code=code,
        name=str(last["name"]),
        exchange=str(last["exchange"]),
        is_fund=bool(last["is_fund"]),
        rzye=_num(last["rzye"]),
        rzmre=_num(last["rzmre"]),
        rzche=_num(last["rzche"]),
        rqyl=_num(last["rqyl"]),
        rqye=_num(last["rqye"]),
        rqye_estimated=bool(last["rqye_estimated"]),
        change_1d=_num(balance.change(on_days, 1)),
        change_5d=_num(balance.change(on_days, 5)),
        change_5d_pct=_num(balance.pct_change(on_days, 5)),
        change_20d=_num(balance.change(on_days, 20)),
        change_20d_pct=_num(balance.pct_change(on_days, 20)),
        rank=rank,
        of=count,
        rank_among="funds" if is_fund else "stocks",  # rank of `of` funds and ETFs, or of `of` stocks
        sector=sector,
        sector_rank=sector_rank,
        sector_of=sector_count,
        spike_zscore=_num(z),
        spiking=_spiking(z, rise_5d_pct, last["rzye"], is_fund),
        series=_series_records(window["rzye"], "rzye"),
    )
    return Figures("stock", data, {"history": window})


def watch_figures(engine: Engine, day: date, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The figures of a watch-list line (bot /watch, the daily push) of each of `codes` that has detail
    on `day`, for many securities at once: one read of their rows over the dates the spike z-score
    reads, where a stock report each would read its ranks and sector too. Each as stock_figures
    computes it: date, code, name, rzye, change_1d, change_5d_pct, spike_zscore, spiking. Codes
    without detail on `day` are left out."""
    wanted = sorted(set(codes))
    detail_dates = queries.stock_detail_dates(engine, day, SPIKE_DATES_LOADED)
    if not wanted or not detail_dates or detail_dates[-1] != day:
        return {}
    rows = queries.securities_rzye(engine, wanted, detail_dates[0], day)
    on_day = rows[rows["trade_date"] == pd.Timestamp(day)].set_index("code")
    if on_day.empty:
        return {}
    wide = rows.pivot(index="trade_date", columns="code", values="rzye")
    on_grid = wide.reindex(index=pd.DatetimeIndex(detail_dates), columns=list(on_day.index))
    on_days = wide.reindex(index=queries.trade_date_grid(engine, detail_dates[0], day), columns=list(on_day.index))
    zscores = stocks.latest_spike_zscores(on_grid)
    out = {}
    for code in on_grid.columns:  # as stock_figures: the spike on detail dates, changes on trade dates
        z = float(zscores[code])
        rise_5d_pct = balance.pct_change(on_grid[code], 5)
        level = on_days[code]
        out[code] = {"date": day.isoformat(), "code": code, "name": str(on_day.at[code, "name"]),
                     "rzye": _num(level.iloc[-1]), "change_1d": _num(balance.change(level, 1)),
                     "change_5d_pct": _num(balance.pct_change(level, 5)), "spike_zscore": _num(z),
                     "spiking": _spiking(z, rise_5d_pct, level.iloc[-1], bool(on_day.at[code, "is_fund"]))}
    return out


def top_figures(engine: Engine, day: date, days: int, sector: str | None = None) -> Figures:
    """The stocks whose 融资余额 rose and fell most over `days` trade days (funds excluded; the change
    is the stocks' 融资净买入 over those days), each list TOP_COUNT long; with `sector` (a level-1
    code), among the stocks classed in it on `day`: what drove the sector's shift."""
    now = queries.financing_balances_on(engine, day, stocks_only=True)
    if now.empty:
        raise ReportError("no_stock_detail", date=day.isoformat())
    since = queries.nth_date_before(engine, day, days)
    grid = queries.trade_date_grid(engine, since, day)
    if len(grid) <= days:  # the grid then reaches back to the first stored date
        raise not_enough_history(day, days, longest=len(grid) - 1)
    then = queries.financing_balances_on(engine, since, stocks_only=True)
    if then.empty:  # the window's first day has no per-stock detail
        raise ReportError("no_stock_detail", date=since.isoformat())
    named = None
    if sector is not None:
        members = queries.sector_members(engine, sector, day)
        now, then = now[now.index.isin(members)], then[then.index.isin(members)]
        names_zh, names_en = _industry_names(engine)
        named = {"code": sector, "name": names_zh.get(sector, sector), "name_en": names_en.get(sector, sector)}
        for on, members_there in ((day, now), (since, then)):  # none of its stocks with detail then
            if members_there.empty:
                raise ReportError("no_sector_stocks", sector={"zh": named["name"], "en": named["name_en"]},
                                  date=on.isoformat())
    risers, fallers = stocks.balance_change_ranking(now, then, TOP_COUNT)
    names = queries.stock_names(engine, [*risers.index, *fallers.index], day)

    def listed(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"code": code, "name": names.get(code, code), "rzye": _num(row["rzye"]), "change": _num(row["change"]),
                 "change_pct": _num(row["change_pct"])} for code, row in frame.to_dict("index").items()]

    compared = now.dropna().index.intersection(then.dropna().index)
    data = _base(engine, "top", day)
    data.update(
        days=days,
        scope=_exchanges_of(compared),  # the exchanges of the stocks ranked (a sector's may be fewer)
        code=sector,  # as the stock report's code: the window buttons and the chart's file_id key carry it
        sector=named,
        since=since.isoformat(),
        compared=int(compared.size),
        risers=listed(risers),
        fallers=listed(fallers),
    )
    return Figures("top", data, {"risers": data["risers"], "fallers": data["fallers"]})
