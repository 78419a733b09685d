"""Pre-aggregation of per-stock detail into SectorDaily (Shenwan level 1, point in time, funds excluded)."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage import models
from storage.database import upsert

# Dates per pass: bounds memory when rebuilding years of a 5,000-stock history.
_DATES_PER_PASS = 60


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
    stocks[money] = stocks[money].astype(float).fillna(0.0)
    grouped = stocks.groupby(["trade_date", "sw_l1_code"], sort=True)
    table = grouped[money].sum()
    table["stock_count"] = grouped.size()
    table = table.reset_index()
    table["trade_date"] = pd.to_datetime(table["trade_date"]).dt.date
    table["sw_l1_code"] = table["sw_l1_code"].astype(str)
    table["stock_count"] = table["stock_count"].astype(int)
    return table[["trade_date", "sw_l1_code", *money, "stock_count"]].to_dict("records")


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
