"""Pre-aggregation of per-stock detail: SectorDaily (Shenwan level 1, point in time, funds excluded)
and StockSpikeDaily (each stock's 5-day 融资余额 rise and its z-score, funds excluded).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage import models, queries
from storage.database import upsert
from storage.spikes import SPIKE_DATES_BEFORE, SPIKE_DAYS, SPIKE_HISTORY, SPIKE_MIN_BALANCE, spike_scores

# Dates per pass: bounds memory when rebuilding years of a 5,000-stock history.
_DATES_PER_PASS = 60

# The spike statistic is storage.spikes' (the analytics layer reads the same definition); the rows
# worth storing are the stocks with at least SPIKE_MIN_BALANCE whose balance rose (the signals report
# lists those).
# Candidates stored per day, highest z-score first: far more than a report shows (10, z >= 2), and a
# day with any candidate always has rows, which tells "computed, nothing unusual" from "not computed".
SPIKE_KEEP = 30
# A stock row of day D changes the figures of D and of the SPIKE_LOOKBACK stock dates after it.
SPIKE_LOOKBACK = SPIKE_DATES_BEFORE
# Calendar days of stock rows loaded at a time (about 30 trade days: ~150,000 rows of 5,000 stocks).
_SPIKE_LOAD_DAYS = 45
# Targets further apart than this (calendar days) are swept separately: reloading the 65 dates of
# history before the next one is cheaper than reading every date in between.
_SPIKE_GAP_DAYS = 100


def classify(stocks: pd.DataFrame, classes: pd.DataFrame) -> pd.Series:
    """Level-1 code of each (code, trade_date) row: the class with the latest start_date <= trade_date.

    `stocks` has columns code, trade_date; `classes` has code, start_date, sw_l1_code.
    Rows with no class in force get NaN.
    """
    if stocks.empty or classes.empty:
        return pd.Series(pd.NA, index=stocks.index, dtype="object")
    left = stocks[["code", "trade_date"]].copy()
    left["trade_date"] = pd.to_datetime(left["trade_date"])
    left["_row"] = range(len(left))
    right = classes[["code", "start_date", "sw_l1_code"]].copy()
    right["start_date"] = pd.to_datetime(right["start_date"])
    merged = pd.merge_asof(
        left.sort_values("trade_date"),
        right.sort_values("start_date"),
        left_on="trade_date",
        right_on="start_date",
        by="code",
        direction="backward",
    ).sort_values("_row")
    return pd.Series(merged["sw_l1_code"].to_numpy(), index=stocks.index, dtype="object")


def sector_rows(stocks: pd.DataFrame, classes: pd.DataFrame) -> list[dict[str, object]]:
    """SectorDaily rows from stock rows (columns trade_date, code, is_fund, rzye, rzmre, rzche, rqye)."""
    stocks = stocks[~stocks["is_fund"].astype(bool)].copy()
    if stocks.empty:
        return []
    stocks["sw_l1_code"] = classify(stocks, classes)
    stocks = stocks.dropna(subset=["sw_l1_code"])
    money = ["rzye", "rzmre", "rzche", "rqye"]
    stocks[money] = stocks[money].astype(float)
    # One member's unknown 融资偿还额 makes the sector's unknown (the reports derive it from the
    # sector's balance): counted as 0 it would add that member's whole 融资买入额 to the net buying.
    stocks["rzche_unknown"] = stocks["rzche"].isna()
    grouped = stocks.groupby(["trade_date", "sw_l1_code"], sort=True)
    table = grouped[money].sum()
    table.loc[grouped["rzche_unknown"].any(), "rzche"] = np.nan
    table["stock_count"] = grouped.size()
    table = table.reset_index()
    table["trade_date"] = pd.to_datetime(table["trade_date"]).dt.date
    table["sw_l1_code"] = table["sw_l1_code"].astype(str)
    table["stock_count"] = table["stock_count"].astype(int)
    records = table[["trade_date", "sw_l1_code", *money, "stock_count"]].to_dict("records")
    for record in records:  # NULL, not NaN (PostgreSQL would store NaN as a number)
        if record["rzche"] != record["rzche"]:
            record["rzche"] = None
    return records


def load_classes(session: Session) -> pd.DataFrame:
    rows = session.execute(
        select(models.IndustryClass.code, models.IndustryClass.start_date, models.IndustryClass.sw_l1_code)
    ).all()
    return pd.DataFrame(list(map(tuple, rows)), columns=["code", "start_date", "sw_l1_code"])


def rebuild_sector_daily(session: Session, dates: list[date]) -> int:
    """Recompute SectorDaily for `dates` from StockMargin and IndustryClass, in the caller's transaction.

    Returns the number of sector rows written. Sectors with no stock on a date are removed.
    """
    if not dates:
        return 0
    classes = load_classes(session)
    written = 0
    unique = sorted(set(dates))
    sm = models.StockMargin
    for start in range(0, len(unique), _DATES_PER_PASS):
        chunk = unique[start : start + _DATES_PER_PASS]
        rows = session.execute(
            select(sm.trade_date, sm.code, sm.is_fund, sm.rzye, sm.rzmre, sm.rzche, sm.rqye).where(
                sm.trade_date.in_(chunk)
            )
        ).all()
        stocks = pd.DataFrame(list(map(tuple, rows)),
                              columns=["trade_date", "code", "is_fund", "rzye", "rzmre", "rzche", "rqye"])
        session.execute(delete(models.SectorDaily).where(models.SectorDaily.trade_date.in_(chunk)))
        if stocks.empty:
            continue
        out = sector_rows(stocks, classes)
        written += upsert(session, models.SectorDaily, out)
    return written


# --- per-stock spike figures -------------------------------------------------------------------------


def _distinct_stock_dates(session: Session, *conditions: Any, descending: bool = False,
                          limit: int | None = None, stocks_only: bool = False) -> list[date]:
    sm = models.StockMargin
    query = select(sm.trade_date).distinct().where(*conditions)
    if stocks_only:
        query = query.where(sm.is_fund.is_(False))
    query = query.order_by(sm.trade_date.desc() if descending else sm.trade_date)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def spike_dates_after_write(session: Session, written: Iterable[date]) -> list[date]:
    """The dates whose spike figures change when stock rows of `written` dates are stored.

    Each written date and the SPIKE_LOOKBACK stored stock dates after it: for the newest day of an
    ingest that is the day alone; for an import of a historic range, the range and the 65 dates
    after it.
    """
    days = sorted(set(written))
    if not days:
        return []
    sm = models.StockMargin
    later = _distinct_stock_dates(session, sm.trade_date > days[0], sm.trade_date <= days[-1])
    later += _distinct_stock_dates(session, sm.trade_date > days[-1], limit=SPIKE_LOOKBACK)
    out = set(days)
    for day in days:
        at = bisect_right(later, day)
        out.update(later[at : at + SPIKE_LOOKBACK])
    return sorted(out)


def _runs(days: list[date]) -> Iterator[list[date]]:
    """Sorted dates split where two neighbours lie more than _SPIKE_GAP_DAYS apart."""
    run: list[date] = []
    for day in days:
        if run and (day - run[-1]).days > _SPIKE_GAP_DAYS:
            yield run
            run = []
        run.append(day)
    if run:
        yield run


def spike_rows(scores: pd.DataFrame, days: Iterable[date] | None = None) -> list[dict[str, object]]:
    """StockSpikeDaily rows from `storage.spikes.spike_scores` output: per day the SPIKE_KEEP
    candidates (rzye >= SPIKE_MIN_BALANCE, change_pct > 0) with the highest z-score, of `days` only
    when given. Candidates without a z-score (too little history) are kept only to fill a day that has
    fewer scored ones; NaN z-scores become NULL."""
    keep = (scores["rzye"] >= SPIKE_MIN_BALANCE) & (scores["change_pct"] > 0)
    stamps = scores.index.get_level_values("trade_date")
    if days is not None:
        keep &= stamps.isin(pd.to_datetime(list(days)))
    kept = scores[keep]
    order = kept.assign(_z=kept["zscore"].fillna(-np.inf)).sort_values("_z", ascending=False, kind="mergesort")
    kept = order.groupby(level="trade_date", sort=False).head(SPIKE_KEEP).drop(columns="_z").sort_index()
    z = kept["zscore"].to_numpy(dtype=float)
    columns = {
        "trade_date": kept.index.get_level_values("trade_date").date.tolist(),
        "code": [str(c) for c in kept.index.get_level_values("code")],
        "rzye": kept["rzye"].to_numpy(dtype=float).tolist(),
        "change_pct": kept["change_pct"].to_numpy(dtype=float).tolist(),
        "zscore": np.where(np.isnan(z), None, z).tolist(),
    }
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def rebuild_stock_spikes(session: Session, dates: list[date]) -> int:
    """Recompute StockSpikeDaily for `dates` from StockMargin, in the caller's transaction.

    Figures as storage.spikes.spike_scores defines them, over the stored stock dates (a day reads
    itself and the 65 stock dates before it). Only rows with rzye >= 5e7 元 and a rise are stored.
    Memory stays bounded: stock rows are read about 30 trade days at a time, keeping the last 65.
    Returns the number of rows written. A stock row changes the figures of the 65 stock dates after
    it too: pass `spike_dates_after_write(session, written)` when rows were written for `written`.
    Industry classes play no part: a class change rebuilds SectorDaily only.
    """
    unique = sorted(set(dates))
    if not unique:
        return 0
    spikes = models.StockSpikeDaily
    for start in range(0, len(unique), 500):
        session.execute(delete(spikes).where(spikes.trade_date.in_(unique[start : start + 500])))
    sm = models.StockMargin
    written = 0
    for run in _runs(unique):
        before = _distinct_stock_dates(session, sm.trade_date < run[0], descending=True, limit=SPIKE_LOOKBACK,
                                       stocks_only=True)
        wanted = set(run)
        buffer = pd.DataFrame()
        lo = before[-1] if before else run[0]
        while lo <= run[-1]:
            hi = min(run[-1], lo + timedelta(days=_SPIKE_LOAD_DAYS - 1))
            new = queries.stock_balances_in(session.connection(), lo, hi)
            lo = hi + timedelta(days=1)
            if new.empty:
                continue
            buffer = pd.concat([buffer, new]) if len(buffer) else new
            if wanted.intersection(new.index.date):
                scores = spike_scores(buffer, SPIKE_DAYS, SPIKE_HISTORY, start=new.index[0])
                written += upsert(session, spikes, spike_rows(scores, wanted))
            # What follows reads the last 65 dates only; stocks without a balance there are dropped.
            buffer = buffer.iloc[-SPIKE_LOOKBACK:].dropna(axis=1, how="all")
    return written
