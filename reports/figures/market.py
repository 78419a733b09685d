"""The market's figures: 两融余额 (balance, pace, turning point, percentile, per exchange) and
两融交易占比 (ratio with numerator and denominator, band, crowding, deleveraging)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from analytics import balance, ratio
from reports.errors import ReportError
from reports.figures.common import (
    CROWDING_LOOKBACK,
    HISTORY_DAYS,
    MARKET_INDEX,
    PERCENTILE_MIN_DAYS,
    RATIO_MA_DAYS,
    RATIO_SIGNAL_DAYS,
    THREE_YEARS,
    Figures,
    _band,
    _base,
    _market_scope,
    _num,
    _on_trade_dates,
    _percentile_since,
    _series_records,
)
from storage import models, queries


def balance_figures(engine: Engine, day: date, days: int) -> Figures:
    """量: level, 1/5/20-day change, pace, turning point and 3-year percentile of 两融余额."""
    start = day - timedelta(days=max(HISTORY_DAYS, queries.calendar_days(days)))
    summary = queries.margin_summary(engine, start=start, end=day)
    level = summary["rzrqye"].dropna()
    if level.empty or level.index[-1].date() != day:
        # The day has margin data (resolve_date) without a 两融余额: its 融券余额 is unknown.
        if level.empty:
            raise ReportError("no_balance", date=day.isoformat())
        raise ReportError("no_balance_on", date=day.isoformat(), latest=level.index[-1].date().isoformat())
    # N-day changes, the pace and the turning point count trade dates: a date without data stays in
    # (unknown), so "5 days" is never seven. The day's change alone is from the previous stored day,
    # and says so where the data skip trade days (days_skipped).
    on_grid = _on_trade_dates(engine, level, start, day)
    # The exchanges each day sums (a bitmask): a change between days that sum different exchanges
    # (BSE's detail missing on one of them, say) is unknown, not a move of the market.
    covered = _market_scope(summary["members"])
    scope, grid_scope = covered.reindex(level.index), covered.reindex(on_grid.index)
    z = balance.pace_zscore(on_grid, scope=grid_scope)
    tp = balance.last_turning_point(on_grid.where(grid_scope == scope.iloc[-1]))
    previous = level.index[-2].date() if len(level) > 1 else None
    data = _base(engine, "balance", day)
    data.update(
        days=days,
        previous_date=previous.isoformat() if previous else None,
        days_skipped=queries.trade_days_between(engine, previous, day) if previous else 0,
        rzrqye=_num(level.iloc[-1]),
        rzye=_num(summary["rzye"].iloc[-1]),
        rqye=_num(summary["rqye"].iloc[-1]),
        change_1d=_num(balance.change(level, 1, scope)),
        change_5d=_num(balance.change(on_grid, 5, grid_scope)),
        change_20d=_num(balance.change(on_grid, 20, grid_scope)),
        change_1d_pct=_num(balance.pct_change(level, 1, scope)),
        change_5d_pct=_num(balance.pct_change(on_grid, 5, grid_scope)),
        change_20d_pct=_num(balance.pct_change(on_grid, 20, grid_scope)),
        pace_z=_num(z),
        pace_class=balance.pace_class(z),
        pace_direction=balance.direction(balance.change(level, 1, scope)),
        # how long ago, in trade dates, so that an old turn reads as old (the change kept its side since)
        turning_point={"date": tp[0].date().isoformat(), "direction": tp[1],
                       "trade_days_ago": int((on_grid.index > tp[0]).sum())} if tp else None,
        percentile_3y=_num(balance.percentile_rank(level, years=3, min_periods=PERCENTILE_MIN_DAYS)),
        percentile_extreme=balance.window_extreme(level, years=3, min_periods=PERCENTILE_MIN_DAYS),
        percentile_since=_percentile_since(level, day),
        exchanges=_exchange_rows(queries.summary_rows(engine, on_grid.index[-21].date() if len(on_grid) > 20
                                                      else start, day), day, on_grid.index),
    )
    window = level.iloc[-days - 1 :]
    # the dates with data the chart shows, where the stored history is shorter than the window (a
    # full window holds `days` changes, so `days` + 1 dates: it says nothing more)
    data["days_shown"] = min(len(window), days)
    window_scope = scope.iloc[-days - 1 :]
    daily_change = window.diff().where(window_scope == window_scope.shift(1))
    return Figures("balance", data, {"level": window, "daily_change": daily_change.iloc[1:],
                                     "turning_point": data["turning_point"]})


_EXCHANGE_FIELDS = ("rzrqye", "rzye", "rqye")


def _exchange_values(stored: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """One day's 两融余额, 融资余额 and 融券余额 per exchange stored that day (`stored`: exchange ->
    figure -> value, ALL included); where an ALL row is the market (the exchanges stored do not make
    it, see queries.margin_summary), also REST: the market less the exchanges listed, for each
    figure that all of them know."""
    listed = [e for e in models.EXCHANGES if e in stored]
    values = {e: stored[e] for e in listed}
    if listed and "ALL" in stored and not set(queries.FULL_SPLIT) <= set(listed):
        rest: dict[str, float | None] = {}
        for f in _EXCHANGE_FIELDS:
            parts = [stored["ALL"][f], *(values[e][f] for e in listed)]
            rest[f] = None if None in parts else parts[0] - sum(parts[1:])  # type: ignore[operator]
        values["REST"] = rest
    return values


def _exchange_rows(rows: pd.DataFrame, day: date, grid: pd.DatetimeIndex) -> list[dict[str, Any]]:
    """Each exchange's 两融余额 and 融资余额 on `day` with their changes, from stored summary rows
    (queries.summary_rows) that reach `day`; REST (derived) where the market comes from a market-wide
    row and the exchanges stored do not make it.

    change_1d is from the previous stored date (as the market's); change_5d and change_20d from the
    date 5 and 20 trade dates before `day` on `grid` (None where that date has no row), with their
    percentages of the earlier value: ``change_Nd_pct = change_Nd / rzrqye[T-N] x 100``.
    """
    # plain dicts: a handful of rows, read a figure at a time (pandas lookups cost 50x more here)
    by_date: dict[pd.Timestamp, dict[str, dict[str, float | None]]] = {}
    for trade_date, exchange, *figures in rows[["trade_date", "exchange", *_EXCHANGE_FIELDS]].itertuples(index=False):
        by_date.setdefault(trade_date, {})[exchange] = dict(zip(_EXCHANGE_FIELDS, map(_num, figures), strict=True))
    stored = sorted(d for d in by_date if d <= pd.Timestamp(day))[-2:]
    if not stored or stored[-1].date() != day:
        return []
    today = _exchange_values(by_date[stored[-1]])
    grid = grid[grid <= pd.Timestamp(day)]
    earlier = {1: stored[0] if len(stored) == 2 else None,
               **{n: grid[-1 - n] if len(grid) > n else None for n in (5, 20)}}
    before = {n: _exchange_values(by_date[then]) if then in by_date else {} for n, then in earlier.items()}

    def change(exchange: str, figure: str, n: int) -> float | None:
        now, then = today[exchange][figure], before[n].get(exchange, {}).get(figure)
        return None if now is None or then is None else now - then

    def pct(exchange: str, n: int) -> float | None:
        delta, then = change(exchange, "rzrqye", n), before[n].get(exchange, {}).get("rzrqye")
        return None if delta is None or not then else delta / then * 100.0

    return [
        {
            "exchange": exchange,
            **figures,
            **{f"change_{n}d": change(exchange, "rzrqye", n) for n in (1, 5, 20)},
            **{f"change_{n}d_pct": pct(exchange, n) for n in (1, 5, 20)},
            "rzye_change_1d": change(exchange, "rzye", 1),
            "derived": exchange == "REST",
        }
        for exchange, figures in today.items()
    ]


def _ratio_frame(engine: Engine, start: date, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = queries.margin_summary(engine, start=start, end=day)
    turnover = queries.turnover(engine, start=start, end=day)
    matching = ratio.matching_turnover(summary["members"], turnover[list(models.EXCHANGES)])
    frame = ratio.margin_trade_ratio(summary["rzmre"].dropna(), matching, summary["rqmce"])
    return frame, turnover


def _comparable_ratio(frame: pd.DataFrame) -> pd.Series:
    """The ratio series that the day's figure is compared with: as published (with 融券卖出额 where
    known), or, when the last day lacks 融券卖出额, financing purchases alone on every day, so that a
    day is never ranked against days whose numerator holds more."""
    if frame.empty or frame["rqmce_included"].iloc[-1]:
        return frame["ratio_pct"]
    return frame["rzmre_pct"]


def _unjudged_reason(signal: str, ratio_on_grid: pd.Series, index_on_grid: pd.Series) -> str:
    """Why an index signal is unknown on the grid's last day: no index close that day, then (for
    deleveraging, which also reads the ratio's 20-day change) a ratio history under 20 trade dates or
    no ratio 20 trade dates back, else the index's close then."""
    n = RATIO_SIGNAL_DAYS
    if pd.isna(index_on_grid.iloc[-1]):
        return "index_missing"
    if signal == "deleveraging" and len(ratio_on_grid) <= n:
        return "ratio_history"
    if signal == "deleveraging" and pd.isna(ratio_on_grid.iloc[-1 - n]):
        return "ratio_gap"
    return "index_incomplete"


def ratio_figures(engine: Engine, day: date, days: int) -> Figures:
    """两融交易占比 with numerator, denominator, 3-year percentile, crowding and deleveraging."""
    # The window and 750 trade days (3 years) before its first day for the percentile band. A crowding
    # run reaching back to where this history's thresholds begin (the run's first day must have its
    # own 3 trailing years) is read again over 3 more years, until it ends inside or the data begin:
    # no figure depends on the window asked for, and the usual day (no run) reads half as much.
    start = day - timedelta(days=HISTORY_DAYS + queries.calendar_days(days))
    while True:
        frame, turnover = _ratio_frame(engine, start, day)
        if frame.empty or frame.index[-1].date() != day:
            # The day has margin data (resolve_date): its turnover (SSE's and SZSE's) or purchases are missing.
            if frame.empty:
                raise ReportError("no_ratio", date=day.isoformat())
            raise ReportError("no_ratio_on", date=day.isoformat(), latest=frame.index[-1].date().isoformat())
        pct = _comparable_ratio(frame)
        run = ratio.crowding_run(pct, lookback=CROWDING_LOOKBACK, min_periods=250)
        data_begin_later = frame.index[0].date() > start + timedelta(days=10)
        if run < len(pct.dropna()) - CROWDING_LOOKBACK or data_begin_later:
            break
        start -= timedelta(days=HISTORY_DAYS)
    index = queries.index_close(engine, MARKET_INDEX, start, day)
    # The index's signals read its closes on the ratio's trade-date grid: a close missing on the data
    # date (or 20 trade dates before) leaves them unknown, never judged on the day before's market.
    pct_on_grid = _on_trade_dates(engine, pct, pct.index[0].date(), day)
    index_on_grid = index.reindex(pct_on_grid.index)
    crowding = ratio.crowding_warning(pct, index_on_grid, lookback=CROWDING_LOOKBACK, index_days=RATIO_SIGNAL_DAYS,
                                      min_periods=250)
    deleveraging = ratio.deleveraging(pct_on_grid, index_on_grid, days=RATIO_SIGNAL_DAYS)
    unjudged = [{"signal": name, "reason": _unjudged_reason(name, pct_on_grid, index_on_grid)}
                for name, value in (("crowding", crowding), ("deleveraging", deleveraging)) if value is None]
    last = frame.iloc[-1]
    # A run whose first day had fewer than 3 years of ratios before it was measured against a shorter
    # history (from PERCENTILE_MIN_DAYS on): the warning says "since" the data's first date, not "3 years".
    known = pct.dropna()
    crowding_since = (known.index[0].date().isoformat()
                      if run and len(known) - run < CROWDING_LOOKBACK else None)
    band = balance.rolling_quantiles(pct, window=THREE_YEARS, min_periods=PERCENTILE_MIN_DAYS)
    ma = ratio.moving_average(pct, RATIO_MA_DAYS)
    percentile = balance.percentile_rank(pct, years=3, min_periods=PERCENTILE_MIN_DAYS)
    data = _base(engine, "ratio", day)
    # The exchanges the margin figures cover whose turnover the denominator lacks: BSE where none is
    # stored (it publishes no turnover history; its purchases stay in the numerator, the share reads high).
    covered = list(models.EXCHANGES) if data["scope"] == ["ALL"] else data["scope"]
    on_day = turnover.loc[pd.Timestamp(day)]
    missing = [e for e in covered if pd.isna(on_day[e]) and (e != "BSE" or day >= models.BSE_MARGIN_START)]
    data.update(
        days=days,
        turnover_missing=missing,
        ratio_pct=_num(last["ratio_pct"]),
        numerator=_num(last["numerator"]),
        turnover=_num(last["turnover"]),
        rqmce_included=bool(last["rqmce_included"]),
        # the day lacks 融券卖出额 while its history has it: percentile, average, band and signals
        # compare financing purchases alone on every day (_comparable_ratio)
        compared_on_rzmre=bool(not last["rqmce_included"] and frame["rqmce_included"].any()),
        turnover_a_share_only=bool(turnover["a_share_only"].iloc[-1]) if not turnover.empty else False,
        ma20=_num(ma.iloc[-1]),
        percentile_3y=_num(percentile),
        percentile_extreme=balance.window_extreme(pct, years=3, min_periods=PERCENTILE_MIN_DAYS),
        # "high" / "low" against the 3 years (HIGH_PERCENTILE, LOW_PERCENTILE), None in between or unknown
        percentile_band=_band(percentile),
        percentile_since=_percentile_since(pct, day),
        crowding_days=int(run),
        crowding_since=crowding_since,
        # True / False, or None when not judged (unjudged says why)
        crowding=crowding,
        deleveraging=deleveraging,
        unjudged=unjudged,
        series=_series_records(pct.iloc[-days:], "ratio_pct"),
        days_shown=len(pct.iloc[-days:]),
    )
    shown = pct.iloc[-days:]
    # the index over the ratio's dates: counted on its own rows it would start on another day where
    # the margin data skip trade dates, or years earlier where the ratio's history begins
    index_shown = index[index.index >= shown.index[0]] if not shown.empty else index.iloc[:0]
    return Figures(
        "ratio",
        data,
        {"ratio": shown, "band": band.iloc[-days:], "ma": ma.iloc[-days:], "index": index_shown,
         "percentile_since": data["percentile_since"],
         "ratio_history": pct, "index_history": index},
    )
