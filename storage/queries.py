"""Read-only queries that hand the analytics layer pandas frames (money in 元, index = trade_date).

Reads go through Core connections: the ORM's row processing would double the cost of the long
reads (three years of totals) without giving anything a frame needs.
"""

from __future__ import annotations

import bisect
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Select, and_, case, false, func, literal, or_, select, union
from sqlalchemy.orm import Session, aliased

from storage import database, models
from storage.models import EXCHANGES

MARKET = "MARKET"
# Per-exchange rows make the market only where they hold these two (BSE is under 1% of it).
FULL_SPLIT = ("SSE", "SZSE")
ALL_MEMBERS = (1 << len(EXCHANGES)) - 1  # `members` of a day whose figures cover every exchange
SUMMARY_COLUMNS = ["rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl", "rqmce", "rzrqye"]
_Read = TypeVar("_Read", bound=Callable[..., Any])
_answers: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("marginbot_shared_reads", default=None)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Inside the block, a read asked again with the same arguments is answered from its first answer.

    A report and the reports it is made of (summary: balance, ratio, sectors, signals) ask for the
    same three years of totals several times; one block per report build loads them once. Blocks
    nest (the outermost one holds the answers) and are per thread, as context variables are.
    """
    if _answers.get() is not None:
        yield
        return
    token = _answers.set({})
    try:
        yield
    finally:
        _answers.reset(token)


def shared(read: _Read) -> _Read:
    """Memoise `read` inside shared_reads(); frames, sets and lists are handed out as copies, so that
    a caller that changes its answer cannot change the next caller's. Also for reads composed
    elsewhere (reports.figures) from the reads here."""

    @functools.wraps(read)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        answers = _answers.get()
        if answers is None:
            return read(*args, **kwargs)
        key = (read.__name__, args, tuple(sorted(kwargs.items())))
        if key not in answers:
            answers[key] = read(*args, **kwargs)
        found = answers[key]
        return found.copy() if isinstance(found, pd.DataFrame | pd.Series | set | list) else found

    return wrapper  # type: ignore[return-value]


def shared_span(read: _Read) -> _Read:
    """`shared`, for a read of the dates from `start` to `end` whose answer is indexed by trade date
    (a frame, a series, a DatetimeIndex): inside shared_reads() it is also cut from an answer of the
    same read, same `end` and other arguments, over a span starting no later. A summary's balance
    (three years) is then cut from its ratio's (three years and the window) instead of read again;
    rows are selected by date alone, so the cut equals the read."""
    signature = inspect.signature(read)

    @functools.wraps(read)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        answers = _answers.get()
        if answers is None:
            return read(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        start = bound.arguments["start"]
        rest = tuple((name, value) for name, value in bound.arguments.items() if name != "start")
        key = (read.__name__, rest, start)
        if key not in answers:
            wider = [since for name, other, since in answers if name == read.__name__ and other == rest
                     and (since is None or (start is not None and since <= start))]
            if wider:
                found = answers[(read.__name__, rest, max(wider, key=lambda d: (d is not None, d)))]  # the nearest
                index = found if isinstance(found, pd.DatetimeIndex) else found.index
                answers[key] = found[index >= pd.Timestamp(start)] if start is not None else found
            else:
                answers[key] = read(*args, **kwargs)
        found = answers[key]
        return found.copy() if isinstance(found, pd.DataFrame | pd.Series) else found

    return wrapper  # type: ignore[return-value]


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:  # type: ignore[type-arg]
    """A frame from result rows, built column by column (row by row is 10x slower in pandas): numbers
    as float (None -> NaN; whole numbers stay int when none is missing), flags as bool, trade_date as
    datetime64, anything else as object."""
    data = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pd.DataFrame({name: _column(name, values) for name, values in zip(columns, data, strict=True)})


def _column(name: str, values: tuple[Any, ...]) -> Any:
    if name == "trade_date":  # ISO text (SQLite through _driver_rows) or dates; in seconds either way
        if values and isinstance(values[0], str):
            return np.array(values, dtype="datetime64[s]")  # numpy reads ISO dates 10x faster than pandas
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601").dt.as_unit("s")
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return np.array(values, dtype=bool)  # None -> False
    if isinstance(sample, int) and None not in values:
        return np.array(values, dtype=np.int64)
    if isinstance(sample, int | float):
        return np.array(values, dtype=float)  # None -> NaN
    return pd.Series(values, dtype=object)


def _driver_rows(conn: Connection, query: Select) -> list[tuple[Any, ...]]:  # type: ignore[type-arg]
    """The rows of `query` as the driver returns them, for the long reads of numbers by date.

    SQLAlchemy's Row objects and per-value type processing cost more than SQLite's own reading of
    these rows; the frames here convert whole columns instead (_column), and read dates in either
    form the drivers give them (ISO text from SQLite, date objects from psycopg).
    """
    return conn.execute(query).cursor.fetchall()


def _between(query: Select, column: Any, start: date | None, end: date | None) -> Select:  # type: ignore[type-arg]
    """Restrict `query` to start <= column <= end (either bound optional)."""
    if start:
        query = query.where(column >= start)
    if end:
        query = query.where(column <= end)
    return query


@shared
def summary_rows(engine: Engine, start: date | None = None, end: date | None = None,
                 exchange: str | None = None) -> pd.DataFrame:
    """Stored summary rows as they are (one per date and exchange, ALL included): trade_date, exchange,
    SUMMARY_COLUMNS; only `exchange` when given."""
    ms = models.MarginSummary
    query = _between(select(ms.trade_date, ms.exchange, *[getattr(ms, c) for c in SUMMARY_COLUMNS]),
                     ms.trade_date, start, end)
    if exchange is not None:
        query = query.where(ms.exchange == exchange)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query.order_by(ms.trade_date, ms.exchange))
    return _frame(rows, ["trade_date", "exchange", *SUMMARY_COLUMNS])


@shared_span
def margin_summary(engine: Engine, scope: str = MARKET, start: date | None = None,
                   end: date | None = None) -> pd.DataFrame:
    """Daily margin totals for one exchange or the market, index trade_date, columns SUMMARY_COLUMNS.

    Market = sum of SSE, SZSE and BSE on dates whose per-exchange rows cover both SSE and SZSE
    (FULL_SPLIT); on other dates an ALL row (a market-wide source) is the market, and the partial
    per-exchange rows are a breakdown of it (an SSE-only history beside a two-market table must not
    halve the market). With neither, the partial sum stands, and the report's scope names it.
    融券卖出额 (rqmce) is known only from market-wide sources, so a sum takes it from the ALL row.
    Column `exchanges` counts the exchanges summed (0 = the ALL row stood in); `members` names the
    exchanges the day's figures include as a bitmask, bit k for EXCHANGES[k] (all bits where the
    ALL row stood in), so that a ratio divides by the same exchanges' turnover.
    """
    if scope != MARKET:
        out = summary_rows(engine, start, end, scope).drop(columns="exchange").set_index("trade_date").astype(float)
        out["exchanges"] = 1
        out["members"] = ALL_MEMBERS if scope == "ALL" else 1 << EXCHANGES.index(scope)
        return out
    md = models.MarketDaily  # kept by triggers (migration 0003): the rule above, one row per date
    query = _between(select(md.trade_date, *[getattr(md, c) for c in (*SUMMARY_COLUMNS, "exchanges", "members")]),
                     md.trade_date, start, end)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query.order_by(md.trade_date))
    out = _frame(rows, ["trade_date", *SUMMARY_COLUMNS, "exchanges", "members"]).set_index("trade_date")
    return out.astype(float)


@shared
def turnover(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Turnover per day (元): columns amount (all stored exchanges), a_share_only (every exchange
    A-share only), exchanges (how many are stored), and one column per exchange (NaN: not stored)."""
    t = models.Turnover
    query = _between(select(t.trade_date, t.exchange, t.amount, t.a_share_only), t.trade_date, start, end)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query.order_by(t.trade_date))
    if not rows:
        return pd.DataFrame(columns=["amount", "a_share_only", "exchanges", *EXCHANGES],
                            index=pd.DatetimeIndex([], name="trade_date"))
    # The stored rows laid out on a (day, exchange) grid: cheaper than summing per exchange in SQL.
    days, exchanges, amounts, a_share_only = (np.asarray(column, dtype=object) for column in zip(*rows, strict=True))
    first = np.ones(len(days), dtype=bool)
    first[1:] = days[1:] != days[:-1]
    day_of_row = np.cumsum(first) - 1
    grid = np.full((int(first.sum()), len(EXCHANGES)), np.nan)
    grid[day_of_row, [EXCHANGES.index(e) for e in exchanges]] = amounts.astype(float)
    not_a_only = np.bincount(day_of_row, weights=(~a_share_only.astype(bool)).astype(float))
    out = pd.DataFrame(grid, columns=list(EXCHANGES), index=_column("trade_date", tuple(days[first])))
    out.index.name = "trade_date"
    out.insert(0, "amount", np.nansum(grid, axis=1))
    out.insert(1, "a_share_only", not_a_only == 0)
    out.insert(2, "exchanges", np.bincount(day_of_row))
    return out


@shared
def index_close(engine: Engine, symbol: str, start: date | None = None, end: date | None = None) -> pd.Series:
    """Daily closes of one index (sh000001, sz399001, sh000300, SW 801xxx), index trade_date."""
    i = models.IndexDaily
    query = select(i.trade_date, i.close).where(i.symbol == symbol)
    query = _between(query, i.trade_date, start, end)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query.order_by(i.trade_date))
    frame = _frame(rows, ["trade_date", "close"])
    return frame.set_index("trade_date")["close"].astype(float).rename(symbol)


@shared
def sector_index_closes(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Wide frame of Shenwan level-1 index closes: index trade_date, columns sw_l1_code."""
    i, n = models.IndexDaily, models.IndustryName
    query = select(i.trade_date, n.sw_l1_code, i.close).join(n, n.index_symbol == i.symbol)
    query = _between(query, i.trade_date, start, end)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query)
    frame = _frame(rows, ["trade_date", "sw_l1_code", "close"])
    if frame.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="trade_date"))
    # one close per (symbol, date): placed on a grid directly, a third of what DataFrame.pivot costs
    date_pos, dates = pd.factorize(frame["trade_date"], sort=True)
    code_pos, codes = pd.factorize(frame["sw_l1_code"], sort=True)
    grid = np.full((len(dates), len(codes)), np.nan)
    grid[date_pos, code_pos] = frame["close"].to_numpy(dtype=float)
    return pd.DataFrame(grid, index=pd.DatetimeIndex(dates, name="trade_date"),
                        columns=pd.Index(codes, name="sw_l1_code"))


@shared
def sector_daily(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Long frame of pre-aggregated sector figures: trade_date, sw_l1_code, rzye, rzmre, rzche, rqye."""
    s = models.SectorDaily
    query = select(s.trade_date, s.sw_l1_code, s.rzye, s.rzmre, s.rzche, s.rqye)
    query = _between(query, s.trade_date, start, end)
    with engine.connect() as conn:
        rows = _driver_rows(conn, query.order_by(s.trade_date, s.sw_l1_code))
    return _frame(rows, ["trade_date", "sw_l1_code", "rzye", "rzmre", "rzche", "rqye"])


@shared
def industry_names(engine: Engine) -> pd.DataFrame:
    """Level-1 industries: index sw_l1_code, columns name_zh, name_en, index_symbol."""
    n = models.IndustryName
    with engine.connect() as conn:
        rows = conn.execute(select(n.sw_l1_code, n.name_zh, n.name_en, n.index_symbol)).all()
    return _frame(rows, ["sw_l1_code", "name_zh", "name_en", "index_symbol"]).set_index("sw_l1_code")


def sector_of(engine: Engine, code: str, day: date) -> str | None:
    """The level-1 sector of one stock on `day` (its class with the latest start_date on or before
    `day`); None when it has none (funds, or never classed)."""
    ic = models.IndustryClass
    query = (select(ic.sw_l1_code).where(ic.code == code, ic.start_date <= day)
             .order_by(ic.start_date.desc()).limit(1))
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def sector_members(engine: Engine, sw_l1_code: str, day: date) -> set[str]:
    """The stocks classed in level-1 sector `sw_l1_code` on `day`, point in time: each stock's class
    is its row with the latest start_date on or before `day`."""
    ic = models.IndustryClass
    latest = (select(ic.code, func.max(ic.start_date).label("start_date")).where(ic.start_date <= day)
              .group_by(ic.code).subquery())
    query = select(ic.code).join(latest, and_(ic.code == latest.c.code, ic.start_date == latest.c.start_date)).where(
        ic.sw_l1_code == sw_l1_code)
    with engine.connect() as conn:
        return {code for (code,) in conn.execute(query).all()}


def stock_history(engine: Engine, code: str, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """One security's margin detail, index trade_date; empty when the code is unknown."""
    sm = models.StockMargin
    query = select(
        sm.trade_date, sm.name, sm.exchange, sm.is_fund, sm.rzye, sm.rzmre, sm.rzche, sm.rqyl, sm.rqmcl, sm.rqye,
        sm.rqye_estimated,
    ).where(sm.code == code)
    query = _between(query, sm.trade_date, start, end)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(sm.trade_date)).all()
    cols = ["trade_date", "name", "exchange", "is_fund", "rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqye",
            "rqye_estimated"]
    return _frame(rows, cols).set_index("trade_date")


@shared
def stocks_on(engine: Engine, day: date) -> pd.DataFrame:
    """Every security's detail on one day: columns code, name, is_fund, rzye, rqye, rqyl."""
    sm = models.StockMargin
    query = select(sm.code, sm.name, sm.is_fund, sm.rzye, sm.rqye, sm.rqyl).where(sm.trade_date == day)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = _frame(rows, ["code", "name", "is_fund", "rzye", "rqye", "rqyl"])
    money = ["rzye", "rqye", "rqyl"]
    frame[money] = frame[money].astype(float)  # None (unknown) becomes NaN
    return frame


def financing_balances_on(engine: Engine, day: date, stocks_only: bool) -> pd.Series:
    """融资余额 (元) of every stock, or every security with funds, on one day: index code."""
    sm = models.StockMargin
    query = select(sm.code, sm.rzye).where(sm.trade_date == day)
    if stocks_only:
        query = query.where(sm.is_fund.is_(False))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.Series([r[1] for r in rows], index=pd.Index([r[0] for r in rows], name="code"), dtype=float,
                     name="rzye")


def securities_rzye(engine: Engine, codes: Sequence[str], start: date, end: date) -> pd.DataFrame:
    """The rows of several securities from `start` to `end`: columns trade_date, code, name, is_fund,
    rzye (元), in date order; a few hundred codes per query."""
    sm = models.StockMargin
    wanted = sorted(set(codes))
    rows: list[tuple[Any, ...]] = []
    with engine.connect() as conn:
        for at in range(0, len(wanted), 500):
            query = select(sm.trade_date, sm.code, sm.name, sm.is_fund, sm.rzye).where(
                sm.code.in_(wanted[at : at + 500]), sm.trade_date >= start, sm.trade_date <= end)
            rows += conn.execute(query).all()
    rows.sort(key=lambda row: (row[0], row[1]))
    frame = _frame(rows, ["trade_date", "code", "name", "is_fund", "rzye"])
    frame["rzye"] = frame["rzye"].astype(float)
    return frame


def last_stock_date(engine: Engine, code: str, on_or_before: date | None = None) -> date | None:
    """The latest day with detail for one security (on or before `on_or_before` when given); None
    when there is none."""
    sm = models.StockMargin
    query = select(func.max(sm.trade_date)).where(sm.code == code)
    if on_or_before is not None:
        query = query.where(sm.trade_date <= on_or_before)
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def first_stock_date(engine: Engine, code: str) -> date | None:
    """The first day with detail for one security; None when the code was never stored."""
    sm = models.StockMargin
    with engine.connect() as conn:
        return conn.execute(select(func.min(sm.trade_date)).where(sm.code == code)).scalar()


def stock_balances(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """Wide 融资余额 of every non-fund stock: index trade_date, columns code (for spike detection)."""
    with engine.connect() as conn:
        return stock_balances_in(conn, start, end)


def stock_balances_in(conn: Connection, start: date, end: date) -> pd.DataFrame:
    """stock_balances through an open connection (a writer's, in its transaction: storage.aggregate)."""
    sm = models.StockMargin
    query = select(sm.trade_date, sm.code, sm.rzye).where(
        sm.trade_date >= start, sm.trade_date <= end, sm.is_fund.is_(False)
    )
    frame = _frame(_driver_rows(conn, query), ["trade_date", "code", "rzye"])
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
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        if not rows and conn.execute(select(sp.id).where(sp.trade_date == day).limit(1)).first() is None:
            return None
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["code", "rzye", "change_pct", "zscore"])
    return frame.set_index("code").astype(float)


@shared
def stock_detail_dates(engine: Engine, day: date, count: int) -> list[date]:
    """The `count` latest dates up to `day` with per-stock detail of stocks (funds aside), ascending;
    fewer where the detail begins later. The dates the stored spike list is computed on
    (storage.aggregate.rebuild_stock_spikes): a day whose detail is missing is skipped there, not a hole.

    One index seek per date (a recursive query: each step the latest date before the last found):
    a DISTINCT over the dates would read every stock row of the span, 5,000 a day.
    """
    sm = models.StockMargin

    def latest(before: Any, strict: bool) -> Any:
        bound = sm.trade_date < before if strict else sm.trade_date <= before
        return select(func.max(sm.trade_date)).where(bound, sm.is_fund.is_(False)).scalar_subquery()

    found = select(latest(day, strict=False).label("day"), literal(1).label("n")).cte("found", recursive=True)
    found = found.union_all(
        select(latest(found.c.day, strict=True), found.c.n + 1).where(found.c.day.is_not(None), found.c.n < count))
    with engine.connect() as conn:
        days = [d for (d,) in conn.execute(select(found.c.day).where(found.c.day.is_not(None))).all()]
    return sorted(d if isinstance(d, date) else date.fromisoformat(d) for d in days)


def count_stored_spikes(engine: Engine, day: date, min_z: float) -> int:
    """How many of the day's pre-computed spike candidates (StockSpikeDaily) have zscore >= min_z. The
    table keeps storage.aggregate.SPIKE_KEEP candidates a day: a count of all of them may stand for more."""
    sp = models.StockSpikeDaily
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(sp.trade_date == day, sp.zscore >= min_z)).scalar() or 0)


def has_stock_rows(engine: Engine, day: date) -> bool:
    """True when per-security detail is stored for `day`."""
    sm = models.StockMargin
    with engine.connect() as conn:
        return conn.execute(select(sm.id).where(sm.trade_date == day).limit(1)).first() is not None


def stock_names(engine: Engine, codes: list[str], day: date) -> dict[str, str]:
    sm = models.StockMargin
    with engine.connect() as conn:
        rows = conn.execute(select(sm.code, sm.name).where(sm.trade_date == day, sm.code.in_(codes))).all()
    return {code: name for code, name in rows}


def securities_named(engine: Engine, fragment: str, day: date | None, limit: int) -> list[tuple[str, str]]:
    """Securities whose name on the latest detail day on or before `day` (None: the latest of all)
    contains `fragment` (Latin letters in any case): up to `limit` (code, name), the exact name
    first, then the names that begin with it, each group by name (演示ETF01 before 演示ETF11), then by code."""
    sm = models.StockMargin
    latest = select(func.max(sm.trade_date))
    if day is not None:
        latest = latest.where(sm.trade_date <= day)
    pattern = "%" + fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = select(sm.code, sm.name).where(sm.trade_date == latest.scalar_subquery(),
                                           sm.name.ilike(pattern, escape="\\"))
    with engine.connect() as conn:
        found = [(str(code), str(name)) for code, name in conn.execute(query).all()]
    wanted = fragment.lower()

    def rank(item: tuple[str, str]) -> tuple[int, str, str]:
        name = item[1].lower()
        return (0 if name == wanted else 1 if name.startswith(wanted) else 2), item[1], item[0]

    # Sorted here, not in SQL: PostgreSQL's collation would order Chinese names unlike SQLite's bytes.
    return sorted(found, key=rank)[:limit]


@shared
def trade_dates(engine: Engine, start: date | None = None, end: date | None = None) -> list[date]:
    """Trade dates that have margin data, ascending."""
    ms = models.MarginSummary
    query = select(ms.trade_date).distinct()
    query = _between(query, ms.trade_date, start, end)
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(query).all())


@shared
def summary_rows_on(engine: Engine, day: date) -> list[tuple[str, str]]:
    """(exchange, source) of each margin summary row stored for `day`."""
    ms = models.MarginSummary
    with engine.connect() as conn:
        return [(e, s) for e, s in conn.execute(select(ms.exchange, ms.source).where(ms.trade_date == day)).all()]


@shared
def scope_on(engine: Engine, day: date) -> list[str]:
    """Exchanges whose summary makes the market on `day`, as market_daily's triggers decided (see
    models.MarketDaily): the exchanges summed, or ["ALL"] when a market-wide row stands in."""
    md = models.MarketDaily
    with engine.connect() as conn:
        row = conn.execute(select(md.exchanges, md.members).where(md.trade_date == day)).first()
    if row is None:
        return []
    exchanges, members = row
    if not exchanges:
        return ["ALL"]
    return [e for bit, e in enumerate(EXCHANGES) if members & (1 << bit)]


# Whether the stored data are the embedded demo set; shared like the reads above.
demo_data = shared(database.is_demo)


@shared
def imported_on(engine: Engine, day: date) -> bool:
    """True when any of the day's margin summary rows came from a CSV import (`marginbot import`)."""
    return any(source == "csv" for _, source in summary_rows_on(engine, day))  # storage.importer.SOURCE


@shared
def latest_data_date(engine: Engine) -> date | None:
    """The default date of every report: the latest trade date with margin data and turnover (of SSE
    and SZSE both, once any day has both: half a market's turnover would double the ratio), and with
    sector figures too once any are stored (so a day whose per-stock detail is still missing is not
    shown half done)."""
    ms, t, sd = models.MarginSummary, models.Turnover, models.SectorDaily
    both = (select(t.trade_date).where(t.exchange.in_(FULL_SPLIT)).group_by(t.trade_date)
            .having(func.count() == len(FULL_SPLIT)).order_by(t.trade_date.desc()).limit(1))
    with engine.connect() as conn:
        margin = conn.execute(select(func.max(ms.trade_date))).scalar()
        turn = conn.execute(both).scalar() or conn.execute(select(func.max(t.trade_date))).scalar()
        sectors = conn.execute(select(func.max(sd.trade_date))).scalar()
    if margin is None:
        return None
    candidates = [d for d in (margin, turn, sectors) if d is not None]
    return min(candidates)


@shared  # every report of a summary resolves its date
def data_date_bounds(engine: Engine, day: date) -> tuple[date | None, date | None]:
    """The first trade date with margin data, and the latest one on or before `day` (None: none)."""
    ms = models.MarginSummary
    with engine.connect() as conn:
        first = conn.execute(select(func.min(ms.trade_date))).scalar()
        before = conn.execute(select(func.max(ms.trade_date)).where(ms.trade_date <= day)).scalar()
    return first, before


CROSS_CHECKED = ("rzye", "rzmre")  # the figures every market-wide source carries
CROSS_CHECK_TOLERANCE = 0.01  # relative; rounding (亿元) and BSE's inclusion stay far below it


def market_disagreements(engine: Engine, start: date | None = None, end: date | None = None,
                         tolerance: float = CROSS_CHECK_TOLERANCE) -> list[tuple[date, str, float, float]]:
    """Dates where the exchanges' sum (SSE and SZSE at least, whichever of them makes the market)
    and a market-wide ALL row differ by more than `tolerance` relative to the ALL row, for 融资余额
    or 融资买入额: (date, figure, exchanges' sum 元, ALL 元), by date."""
    ms = models.MarginSummary
    whole = aliased(ms)
    members = func.sum(case((ms.exchange == "SSE", 1), (ms.exchange == "SZSE", 2), else_=4))
    sums = [c for f in CROSS_CHECKED for c in (func.sum(getattr(ms, f)), func.count(getattr(ms, f)))]
    exchanges = _between(select(ms.trade_date, members, func.count(), *sums).where(ms.exchange.in_(EXCHANGES)),
                         ms.trade_date, start, end).group_by(ms.trade_date).subquery()
    query = (select(exchanges, *[getattr(whole, f) for f in CROSS_CHECKED])
             .join(whole, and_(whole.trade_date == exchanges.c.trade_date, whole.exchange == "ALL")))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(exchanges.c.trade_date)).all()
    found = []
    for day, member_bits, count, *values in rows:
        if int(member_bits) & 3 != 3:
            continue  # SSE or SZSE missing: not the market's sum
        for k, figure in enumerate(CROSS_CHECKED):
            summed, known, market = values[2 * k], values[2 * k + 1], values[2 * len(CROSS_CHECKED) + k]
            if known == count and market and abs(summed - market) > tolerance * abs(market):
                found.append((day, figure, float(summed), float(market)))
    return found


def turnover_exchanges(engine: Engine, day: date) -> set[str]:
    """The exchanges whose turnover is stored for `day`."""
    t = models.Turnover
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(t.exchange).where(t.trade_date == day)).all()}


def latest_sector_date(engine: Engine, day: date) -> date | None:
    """The latest trade date on or before `day` with sector figures (None: none stored)."""
    sd = models.SectorDaily
    with engine.connect() as conn:
        return conn.execute(select(func.max(sd.trade_date)).where(sd.trade_date <= day)).scalar()


# The market indexes whose closes tell trade dates (the Shenwan sector indexes share their dates).
CALENDAR_INDEXES = ("sh000001", "sz399001")


@shared_span
def known_trade_dates(engine: Engine, start: date, end: date) -> pd.DatetimeIndex:
    """Trade dates from `start` to `end` that the exchange calendar, the turnover or the market
    indexes' closes know of, ascending: with a series' own dates, the grid that changes over N trade
    days are counted on, so that a day missing from one series is not skipped."""
    index = models.IndexDaily
    known = union(
        *(select(m.trade_date.label("d")).where(m.trade_date >= start, m.trade_date <= end)
          for m in (models.TradingDay, models.Turnover)),
        select(index.trade_date.label("d")).where(index.symbol.in_(CALENDAR_INDEXES), index.trade_date >= start,
                                                  index.trade_date <= end),
    ).subquery()
    with engine.connect() as conn:
        rows = _driver_rows(conn, select(known.c.d).order_by(known.c.d))
    return pd.DatetimeIndex(_column("trade_date", tuple(r[0] for r in rows)))


def trade_days_between(engine: Engine, first: date, last: date) -> int:
    """Trade dates strictly between `first` and `last` that known_trade_dates knows of (the exchange
    calendar, the turnover, the market indexes' closes): the days a change from `first` to `last`
    spans unseen. Inside shared_reads() it is cut from a wider read of those dates (a report's)."""
    if last <= first:
        return 0
    known = known_trade_dates(engine, first, last)
    return int(((known > pd.Timestamp(first)) & (known < pd.Timestamp(last))).sum())


def last_trading_day_before(engine: Engine, day: date) -> date | None:
    """The latest day of the stored exchange calendar strictly before `day`."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(models.TradingDay.trade_date)).where(models.TradingDay.trade_date < day)
        ).scalar()


def is_trading_day(engine: Engine, day: date) -> bool | None:
    """Whether `day` is in the stored exchange calendar; None where the calendar does not reach it."""
    calendar = models.TradingDay
    with engine.connect() as conn:
        last = conn.execute(select(func.max(calendar.trade_date))).scalar()
        if last is None or last < day:
            return None
        return conn.execute(select(calendar.trade_date).where(calendar.trade_date == day)).first() is not None


def trade_date_grid(engine: Engine, start: date, end: date) -> pd.DatetimeIndex:
    """Every trade date from `start` to `end` that the data know of: the margin data's dates with
    known_trade_dates' (the calendar, turnover, index closes), ascending."""
    return known_trade_dates(engine, start, end).union(pd.DatetimeIndex(trade_dates(engine, start, end)))


def calendar_days(trade_days: int) -> int:
    """Calendar days that hold at least `trade_days` trade dates (about 245 in 365), with room for a
    long holiday: the span to read for a window of trade dates."""
    return int(trade_days * 1.5) + 30


@shared
def nth_date_before(engine: Engine, day: date, n: int) -> date:
    """The date n trade dates before `day`, counted on the grid changes are counted on: the margin
    data's dates with known_trade_dates (the calendar, turnover, index closes), so that a day missing
    from the margin data is counted, not skipped; the first of them when there are fewer than n."""
    # this span holds n of them but after a long gap in the data
    for start in (day - timedelta(days=calendar_days(n)), date(1990, 1, 1)):
        grid = trade_date_grid(engine, start, day)
        if len(grid) > n:
            return grid[-1 - n].date()
    return grid[0].date() if len(grid) else day


def latest_index_list(session: Session, symbol: str) -> tuple[date, set[str]] | None:
    """The latest stored constituent list of an index: (the date it took effect, its codes)."""
    im = models.IndexMember
    as_of = session.execute(select(func.max(im.as_of)).where(im.symbol == symbol)).scalar()
    if as_of is None:
        return None
    return as_of, set(session.execute(select(im.code).where(im.symbol == symbol, im.as_of == as_of)).scalars())


def index_list_dates(engine: Engine, symbol: str) -> list[date]:
    """The dates of the stored constituent lists of an index, ascending."""
    im = models.IndexMember
    with engine.connect() as conn:
        return sorted(conn.execute(select(im.as_of).distinct().where(im.symbol == symbol)).scalars())


@dataclass(frozen=True)
class ShortSums:
    """One day's 融券余额 by where it sits (元, by bucket), with the counts a report qualifies it by."""

    sums: dict[str, float]
    rows: int  # stock rows that day
    missing: int  # rows whose 融券余额 is unknown though 融券余量 > 0
    estimated: int  # rows whose 融券余额 is SSE's 融券余量 valued at the close
    members_as_of: date | None  # the date of the index list used; None: no list stored


def short_sums(engine: Engine, days: Sequence[date], index_symbol: str) -> dict[date, ShortSums]:
    """Each of `days`' 融券余额 summed in SQL, in one query, by where it sits: ``etf`` (funds),
    ``hs300`` (stocks in the constituent list of `index_symbol` that applies to that day, see
    _list_in_force; its date is `members_as_of`), ``other``; unknown 融券余额 counts as 0. A day without
    stock rows has no sums."""
    sm, im = models.StockMargin, models.IndexMember
    lists = index_list_dates(engine, index_symbol)
    applies = {day: _list_in_force(lists, day) for day in days}
    by_list: dict[date, list[date]] = {}
    for day, as_of in applies.items():
        if as_of is not None:
            by_list.setdefault(as_of, []).append(day)
    # One row per day, its buckets as conditional sums: grouped by the indexed date alone, SQLite reads
    # the rows in index order (no sort), three times faster than grouping by a bucket expression.
    member = or_(false(), *(and_(sm.trade_date.in_(on), sm.code.in_(select(im.code).where(im.symbol == index_symbol,
                                                                                          im.as_of == as_of)))
                            for as_of, on in by_list.items()))
    query = select(
        sm.trade_date,
        func.sum(case((sm.is_fund.is_(True), sm.rqye), else_=0.0)),
        func.sum(case((and_(sm.is_fund.is_(False), member), sm.rqye), else_=0.0)) if by_list else literal(0.0),
        func.sum(func.coalesce(sm.rqye, 0.0)),
        func.count(),
        func.sum(case((and_(sm.rqye.is_(None), sm.rqyl > 0), 1), else_=0)),
        func.sum(case((sm.rqye_estimated.is_(True), 1), else_=0)),
    ).where(sm.trade_date.in_(list(applies))).group_by(sm.trade_date)
    with engine.connect() as conn:
        found = {r[0]: r[1:] for r in conn.execute(query).all()}
    out = {}
    for day, as_of in applies.items():
        if day not in found:
            out[day] = ShortSums(sums={}, rows=0, missing=0, estimated=0, members_as_of=as_of)
            continue
        etf, hs300, total, rows, missing, estimated = found[day]
        etf, hs300, total = float(etf or 0.0), float(hs300 or 0.0), float(total or 0.0)
        sums = {"etf": etf, "other": total - etf - hs300} | ({"hs300": hs300} if as_of is not None else {})
        out[day] = ShortSums(sums=sums, rows=int(rows), missing=int(missing or 0), estimated=int(estimated or 0),
                             members_as_of=as_of)
    return out


def _list_in_force(lists: list[date], day: date) -> date | None:
    """Of the list dates (ascending), the one that applies to `day`: the latest taking effect on or
    before it, else (a day older than every list) the oldest, the nearest known; None without lists."""
    if not lists:
        return None
    at = bisect.bisect_right(lists, day)
    return lists[at - 1] if at else lists[0]
