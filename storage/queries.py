"""Read-only queries that hand the analytics layer pandas frames (money in 元, index = trade_date)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session

from storage import models
from storage.models import EXCHANGES

MARKET = "MARKET"
SUMMARY_COLUMNS = ["rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl", "rqmce", "rzrqye"]


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:  # type: ignore[type-arg]
    # Column-wise construction: building from Row objects one by one is 10x slower in pandas.
    data = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    frame = pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in zip(columns, data, strict=True)})
    for name in columns:
        if name not in ("trade_date",) and len(frame) and isinstance(frame[name].iloc[0], float | int | bool):
            frame[name] = pd.to_numeric(frame[name]) if not isinstance(frame[name].iloc[0], bool) else frame[name].astype(bool)
    if "trade_date" in frame:
        frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    return frame


def _between(query: Select, column: Any, start: date | None, end: date | None) -> Select:  # type: ignore[type-arg]
    """Restrict `query` to start <= column <= end (either bound optional)."""
    if start:
        query = query.where(column >= start)
    if end:
        query = query.where(column <= end)
    return query


def summary_rows(engine: Engine, start: date | None = None, end: date | None = None,
                 exchange: str | None = None) -> pd.DataFrame:
    """Stored summary rows as they are (one per date and exchange, ALL included): trade_date, exchange,
    SUMMARY_COLUMNS; only `exchange` when given."""
    ms = models.MarginSummary
    query = _between(select(ms.trade_date, ms.exchange, *[getattr(ms, c) for c in SUMMARY_COLUMNS]),
                     ms.trade_date, start, end)
    if exchange is not None:
        query = query.where(ms.exchange == exchange)
    with Session(engine) as session:
        rows = session.execute(query.order_by(ms.trade_date, ms.exchange)).all()
    return _frame(rows, ["trade_date", "exchange", *SUMMARY_COLUMNS])


def margin_summary(engine: Engine, scope: str = MARKET, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Daily margin totals for one exchange or the market, index trade_date, columns SUMMARY_COLUMNS.

    Market = sum of SSE, SZSE and BSE on dates that have per-exchange rows; on dates with only an
    ALL row (market-only sources) that row is the market. 融券卖出额 (rqmce) is known only from
    market-wide sources, so the market takes it from the ALL row. Column `exchanges` counts the
    exchanges summed (0 = the ALL row stood in).
    """
    frame = summary_rows(engine, start, end, None if scope == MARKET else scope)
    if scope != MARKET:
        out = frame.drop(columns="exchange").set_index("trade_date").astype(float)
        out["exchanges"] = 1
        return out
    if frame.empty:
        return pd.DataFrame(columns=[*SUMMARY_COLUMNS, "exchanges"], index=pd.DatetimeIndex([], name="trade_date"))
    per_exchange = frame[frame["exchange"].isin(EXCHANGES)]
    whole = frame[frame["exchange"] == "ALL"].drop(columns="exchange").set_index("trade_date").astype(float)
    summed = per_exchange.groupby("trade_date")[SUMMARY_COLUMNS].sum(min_count=1)
    summed["exchanges"] = per_exchange.groupby("trade_date").size()
    # A sum over exchanges is only known where every summed exchange knew the figure.
    missing = per_exchange[SUMMARY_COLUMNS].isna().groupby(per_exchange["trade_date"]).any()
    summed[SUMMARY_COLUMNS] = summed[SUMMARY_COLUMNS].mask(missing)
    summed["rqmce"] = whole["rqmce"].reindex(summed.index)
    only_whole = whole.loc[~whole.index.isin(summed.index)].copy()
    only_whole["exchanges"] = 0
    out = pd.concat([summed, only_whole]).sort_index()
    out.index.name = "trade_date"
    return out.astype(float)


def turnover(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Market turnover per day (元): columns amount, a_share_only (every exchange A-share only), exchanges."""
    t = models.Turnover
    query = select(t.trade_date, t.exchange, t.amount, t.a_share_only)
    query = _between(query, t.trade_date, start, end)
    with Session(engine) as session:
        rows = session.execute(query).all()
    frame = _frame(rows, ["trade_date", "exchange", "amount", "a_share_only"])
    if frame.empty:
        return pd.DataFrame(columns=["amount", "a_share_only", "exchanges"], index=pd.DatetimeIndex([], name="trade_date"))
    grouped = frame.groupby("trade_date")
    out = pd.DataFrame(
        {
            "amount": grouped["amount"].sum().astype(float),
            "a_share_only": grouped["a_share_only"].all().astype(bool),
            "exchanges": grouped.size(),
        }
    )
    return out.sort_index()


def index_close(engine: Engine, symbol: str, start: date | None = None, end: date | None = None) -> pd.Series:
    """Daily closes of one index (sh000001, sz399001, sh000300, SW 801xxx), index trade_date."""
    i = models.IndexDaily
    query = select(i.trade_date, i.close).where(i.symbol == symbol)
    query = _between(query, i.trade_date, start, end)
    with Session(engine) as session:
        rows = session.execute(query.order_by(i.trade_date)).all()
    frame = _frame(rows, ["trade_date", "close"])
    return frame.set_index("trade_date")["close"].astype(float).rename(symbol)


def sector_index_closes(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Wide frame of Shenwan level-1 index closes: index trade_date, columns sw_l1_code."""
    i, n = models.IndexDaily, models.IndustryName
    query = select(i.trade_date, n.sw_l1_code, i.close).join(n, n.index_symbol == i.symbol)
    query = _between(query, i.trade_date, start, end)
    with Session(engine) as session:
        rows = session.execute(query).all()
    frame = _frame(rows, ["trade_date", "sw_l1_code", "close"])
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="trade_date"))
    return frame.pivot(index="trade_date", columns="sw_l1_code", values="close").sort_index()


def sector_daily(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Long frame of pre-aggregated sector figures: trade_date, sw_l1_code, rzye, rzmre, rzche, rqye."""
    s = models.SectorDaily
    query = select(s.trade_date, s.sw_l1_code, s.rzye, s.rzmre, s.rzche, s.rqye)
    query = _between(query, s.trade_date, start, end)
    with Session(engine) as session:
        rows = session.execute(query.order_by(s.trade_date, s.sw_l1_code)).all()
    return _frame(rows, ["trade_date", "sw_l1_code", "rzye", "rzmre", "rzche", "rqye"])


def industry_names(engine: Engine) -> pd.DataFrame:
    """Level-1 industries: index sw_l1_code, columns name_zh, name_en, index_symbol."""
    n = models.IndustryName
    with Session(engine) as session:
        rows = session.execute(select(n.sw_l1_code, n.name_zh, n.name_en, n.index_symbol)).all()
    return _frame(rows, ["sw_l1_code", "name_zh", "name_en", "index_symbol"]).set_index("sw_l1_code")


def stock_history(engine: Engine, code: str, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """One security's margin detail, index trade_date; empty when the code is unknown."""
    sm = models.StockMargin
    query = select(
        sm.trade_date, sm.name, sm.exchange, sm.is_fund, sm.rzye, sm.rzmre, sm.rzche, sm.rqyl, sm.rqmcl, sm.rqye
    ).where(sm.code == code)
    query = _between(query, sm.trade_date, start, end)
    with Session(engine) as session:
        rows = session.execute(query.order_by(sm.trade_date)).all()
    cols = ["trade_date", "name", "exchange", "is_fund", "rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqye"]
    return _frame(rows, cols).set_index("trade_date")


def stocks_on(engine: Engine, day: date) -> pd.DataFrame:
    """Every security's detail on one day: columns code, name, is_fund, rzye, rqye, rqyl."""
    sm = models.StockMargin
    query = select(sm.code, sm.name, sm.is_fund, sm.rzye, sm.rqye, sm.rqyl).where(sm.trade_date == day)
    with Session(engine) as session:
        rows = session.execute(query).all()
    frame = _frame(rows, ["code", "name", "is_fund", "rzye", "rqye", "rqyl"])
    money = ["rzye", "rqye", "rqyl"]
    frame[money] = frame[money].astype(float)  # None (unknown) becomes NaN
    return frame


def stock_balances(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """Wide 融资余额 of every non-fund stock: index trade_date, columns code (for spike detection)."""
    sm = models.StockMargin
    query = select(sm.trade_date, sm.code, sm.rzye).where(
        sm.trade_date >= start, sm.trade_date <= end, sm.is_fund.is_(False)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
    frame = _frame(rows, ["trade_date", "code", "rzye"])
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="trade_date"))
    return frame.pivot(index="trade_date", columns="code", values="rzye").sort_index().astype(float)


def stored_spikes(engine: Engine, day: date, min_z: float, top: int) -> pd.DataFrame | None:
    """The day's pre-computed spikes (StockSpikeDaily) with zscore >= min_z, the `top` largest first
    (ties by code): index code, columns rzye, change_pct, zscore. None when nothing is stored for the day."""
    sp = models.StockSpikeDaily
    query = (
        select(sp.code, sp.rzye, sp.change_pct, sp.zscore)
        .where(sp.trade_date == day, sp.zscore >= min_z)
        .order_by(sp.zscore.desc(), sp.code)
        .limit(top)
    )
    with Session(engine) as session:
        rows = session.execute(query).all()
        if not rows and session.execute(select(sp.id).where(sp.trade_date == day).limit(1)).first() is None:
            return None
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["code", "rzye", "change_pct", "zscore"])
    return frame.set_index("code").astype(float)


def has_stock_rows(engine: Engine, day: date) -> bool:
    """True when per-security detail is stored for `day`."""
    sm = models.StockMargin
    with Session(engine) as session:
        return session.execute(select(sm.id).where(sm.trade_date == day).limit(1)).first() is not None


def stock_names(engine: Engine, codes: list[str], day: date) -> dict[str, str]:
    sm = models.StockMargin
    with Session(engine) as session:
        rows = session.execute(select(sm.code, sm.name).where(sm.trade_date == day, sm.code.in_(codes))).all()
    return {code: name for code, name in rows}


def trade_dates(engine: Engine, start: date | None = None, end: date | None = None) -> list[date]:
    """Trade dates that have margin data, ascending."""
    ms = models.MarginSummary
    query = select(ms.trade_date).distinct()
    query = _between(query, ms.trade_date, start, end)
    with Session(engine) as session:
        return sorted(r[0] for r in session.execute(query).all())


def latest_data_date(engine: Engine) -> date | None:
    """The default date of every report: the latest trade date with margin data and turnover, and
    with sector figures too once any are stored (so a day whose per-stock detail is still missing
    is not shown half done)."""
    ms, t, sd = models.MarginSummary, models.Turnover, models.SectorDaily
    with Session(engine) as session:
        margin = session.execute(select(func.max(ms.trade_date))).scalar()
        turn = session.execute(select(func.max(t.trade_date))).scalar()
        sectors = session.execute(select(func.max(sd.trade_date))).scalar()
    if margin is None:
        return None
    candidates = [d for d in (margin, turn, sectors) if d is not None]
    return min(candidates)


def last_trading_day_before(engine: Engine, day: date) -> date | None:
    """The latest day of the stored exchange calendar strictly before `day`."""
    with Session(engine) as session:
        return session.execute(
            select(func.max(models.TradingDay.trade_date)).where(models.TradingDay.trade_date < day)
        ).scalar()


def nth_date_before(engine: Engine, day: date, n: int) -> date:
    """The trade date n trade days before `day` (or the first stored date)."""
    ms = models.MarginSummary
    with Session(engine) as session:
        rows = session.execute(
            select(ms.trade_date).distinct().where(ms.trade_date <= day).order_by(ms.trade_date.desc()).limit(n + 1)
        ).all()
    return rows[-1][0] if rows else day


def index_members(engine: Engine, symbol: str) -> set[str]:
    """Stored constituents of an index (e.g. 000300 for CSI 300); empty when never fetched."""
    im = models.IndexMember
    with Session(engine) as session:
        return {r[0] for r in session.execute(select(im.code).where(im.symbol == symbol)).all()}
