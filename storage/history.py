"""The whole-history refresh steps of an ingest run: the sources read once per run rather than per
trade day (index turnover, Eastmoney's market history, Shenwan classes and sector indexes, the CSI 300
constituents, SSE's valued 融券余额), each written only where it differs from what is stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from storage import models, queries
from storage._steps import (
    DONE,
    FAILED,
    PARSE_ERRORS,
    IngestResult,
    StepOutcome,
    previous_trade_day,
    records,
    sector_days_ready,
    stored_calendar,
    upsert_changed,
)
from storage.database import bump_data_version, get_meta, is_demo, session_scope, set_meta, upsert
from storage.industries import SW_L1_2021, industry_name_rows
from storage.lending import LENDING_TRIED, value_sse_lending
from storage.sources import CSI300, Sources
from storage.upstream import UpstreamError, UpstreamProblem

if TYPE_CHECKING:
    from marginbot.settings import Settings

# The ingest run's logger: these steps are part of its run, and their lines are read as its lines.
log = logging.getLogger("storage.ingest")

HISTORY_START = date(2010, 1, 1)  # index histories are kept from the year margin trading began
INDEX_TURNOVER = {"sh000001": "SSE", "sz399001": "SZSE"}
HISTORY_STEPS = ("index_sh000001", "index_sz399001", "em_account", "sw_class", "csi300", "sw_index", "sse_rqye")
_CLASSES_CHECKED = "sw_class_checked"  # DatasetMeta key: the day the Shenwan class file was last read
_CSI300_CHECKED = "csi300_checked"  # DatasetMeta key: the day the CSI 300 constituents were last read
# Freshness marks of tables the demo data fill: they go with the demo rows.
CHECKED_KEYS = (_CLASSES_CHECKED, _CSI300_CHECKED, LENDING_TRIED)
# MarginSummary.source of rows imported from the user's CSV (storage.importer.SOURCE): never overwritten.
CSV_SOURCE = "csv"


def _covers(engine: Engine, model: type[SQLModel], where: Any, latest: date) -> bool:
    """True when the stored rows matching `where` already reach the latest published trade date."""
    column = model.__table__.c.trade_date  # type: ignore[attr-defined]
    with Session(engine) as session:
        stored = session.execute(select(func.max(column)).where(where)).scalar()
    return stored is not None and stored >= latest


def history_step(result: IngestResult, name: str, work: Callable[[], int | None]) -> None:
    """Run one history refresh; `work` returns the rows written, or None when the stored data was current."""
    try:
        written = work()
    except (UpstreamProblem, *PARSE_ERRORS) as exc:
        log.warning("%s history failed: %s", name, exc)
        result.history.append(StepOutcome(name, FAILED, 0, str(exc)))
        return
    except SQLAlchemyError as exc:
        log.warning("%s history failed: database error: %s", name, type(exc).__name__)
        result.history.append(StepOutcome(name, FAILED, 0, f"database error: {type(exc).__name__}"))
        return
    if written is None:
        result.history.append(StepOutcome(name, DONE, 0, "up to date"))
    else:
        result.history.append(StepOutcome(name, DONE, written))


def _published_bars(frame: pd.DataFrame, latest: date) -> pd.DataFrame:
    """Bars from HISTORY_START to `latest` (the last published trade date): a bar dated after it is
    the running session's, partial until the close, and would never be asked for again."""
    return frame[(frame["trade_date"] >= HISTORY_START) & (frame["trade_date"] <= latest)]


def _store_index(engine: Engine, sources: Sources, symbol: str, latest: date) -> int | None:
    if _covers(engine, models.IndexDaily, models.IndexDaily.symbol == symbol, latest):
        return None
    frame = _published_bars(sources.index_history(symbol), latest)
    exchange = INDEX_TURNOVER[symbol]
    index_rows = records(frame, ["trade_date", "close", "amount"], symbol=symbol)
    turnover_rows = records(frame.dropna(subset=["amount"]), ["trade_date", "amount"], exchange=exchange,
                            a_share_only=False, source="index_amount")
    with session_scope(engine) as session:
        written = upsert_changed(session, models.IndexDaily, index_rows, ("symbol", "trade_date"),
                                 where=models.IndexDaily.symbol == symbol)
        # An A-share-only figure from an official source is better than this fallback, and a figure the
        # user imported is authoritative: keep both.
        written += upsert_changed(session, models.Turnover, turnover_rows, ("trade_date", "exchange"),
                                  where=models.Turnover.exchange == exchange,
                                  protect=lambda old: bool(old.get("a_share_only")) or old.get("source") == CSV_SOURCE)
        if written:
            bump_data_version(session)
    return len(written)


def _store_market_history(engine: Engine, sources: Sources, latest: date) -> int | None:
    if _covers(engine, models.MarginSummary, models.MarginSummary.exchange == "ALL", latest):
        return None
    frame = sources.market_account_history()
    rows = records(frame, ["trade_date", "rzye", "rqye", "rzmre", "rqmce", "rzrqye"], exchange="ALL",
                   source="eastmoney")
    with session_scope(engine) as session:
        # A figure Eastmoney leaves out (null) for a day keeps the stored one, and a day imported from
        # the user's CSV stays as imported: that import is authoritative.
        written = upsert_changed(session, models.MarginSummary, rows, ("trade_date", "exchange"),
                                 where=models.MarginSummary.exchange == "ALL",
                                 protect=lambda old: old.get("source") == CSV_SOURCE, keep_known=True)
        if written:
            bump_data_version(session)
    return len(written)


def _store_classification(engine: Engine, sources: Sources, today: date) -> int | None:
    # The file has no date to compare: it is read at most once a day.
    with Session(engine) as session:
        if get_meta(session, _CLASSES_CHECKED) == today.isoformat():
            return None
    frame = sources.sw_classification()
    rows = records(frame, ["code", "start_date", "sw_code", "sw_l1_code"])
    names = industry_name_rows()
    with session_scope(engine) as session:
        written = upsert_changed(session, models.IndustryClass, rows, ("code", "start_date"))
        named = upsert_changed(session, models.IndustryName, names, ("sw_l1_code",))
        if written:
            # A class that changed from a date on moves the sectors of every stored day since then.
            since = min(r["start_date"] for r in written)
            sm = models.StockMargin
            days = list(session.execute(select(sm.trade_date).where(sm.trade_date >= since).distinct()).scalars())
            days = sector_days_ready(session, sorted(days))  # a day still coming in gets them when it is whole
            if days:
                from storage.aggregate import rebuild_sector_daily

                rebuild_sector_daily(session, sorted(days))
        if written or named:
            bump_data_version(session)
        set_meta(session, _CLASSES_CHECKED, today.isoformat())
    return len(written) + len(named)


def _store_csi300(engine: Engine, sources: Sources, today: date) -> int | None:
    """Keep csindex's current CSI 300 file beside the lists stored before, read at most once a day.

    A list that differs from the latest stored one is stored under the file's date (else the day of
    the fetch): the list in force from then on, while older days keep theirs. An unchanged list is
    not written again; a file re-issued under the latest list's date replaces that list.
    """
    im = models.IndexMember
    with Session(engine) as session:
        if get_meta(session, _CSI300_CHECKED) == today.isoformat():
            return None
        latest = queries.latest_index_list(session, CSI300)
    try:
        frame = sources.csi300_members()
    except UpstreamProblem as exc:
        raise type(exc)(f"{exc}; the stored members ({len(latest[1]) if latest else 0}) are kept") from exc
    codes = set(frame["code"])
    file_date = frame["as_of"].iloc[0] if len(frame) else None
    as_of = file_date if file_date is not None else today
    if latest is not None and as_of < latest[0]:
        as_of = today  # a file dated before the stored list: it is what is in force now
    changed = latest is None or codes != latest[1]
    with session_scope(engine) as session:
        if changed:
            session.execute(delete(im).where(im.symbol == CSI300, im.as_of == as_of))
            upsert(session, im, [{"symbol": CSI300, "code": code, "as_of": as_of} for code in sorted(codes)])
            bump_data_version(session)
        set_meta(session, _CSI300_CHECKED, today.isoformat())
    if changed:
        log.info("CSI 300 constituents: %d members in force from %s", len(codes), as_of)
    return len(codes) if changed else 0


def _store_sector_indexes(engine: Engine, sources: Sources, latest: date) -> int | None:
    total, failures, asked = 0, [], 0
    for industry in SW_L1_2021:
        symbol = industry.index_symbol
        if _covers(engine, models.IndexDaily, models.IndexDaily.symbol == symbol, latest):
            continue
        asked += 1
        try:
            frame = sources.sw_index_history(symbol)
        except UpstreamProblem as exc:
            failures.append(f"{symbol}: {exc}")
            continue
        frame = _published_bars(frame, latest)
        rows = records(frame, ["trade_date", "close"], symbol=symbol, amount=None)
        with session_scope(engine) as session:
            written = upsert_changed(session, models.IndexDaily, rows, ("symbol", "trade_date"),
                                     where=models.IndexDaily.symbol == symbol)
            if written:
                bump_data_version(session)
        total += len(written)
    if failures:
        raise UpstreamError(f"{len(failures)} of {asked} sector indexes failed; first: {failures[0]}")
    return total if asked else None


def estimate_sse_lending(engine: Engine, settings: Settings, today: date | None = None,
                         fetchers: Sources | None = None) -> StepOutcome:
    """The "sse_rqye" step of run_ingest on its own, for the last trade date before `today`
    (Asia/Shanghai); cheap when that day is valued already or its quotes were refused today."""
    from marginbot.settings import TIMEZONE

    today = today or datetime.now(TIMEZONE).date()
    if is_demo(engine):  # the demo's calendar and rows are invented: real quotes have nothing to value
        return StepOutcome("sse_rqye", DONE, 0, "demo data: nothing to value")
    latest = previous_trade_day(stored_calendar(engine), today)
    result = IngestResult()
    if latest is not None:
        history_step(result, "sse_rqye",
                     lambda: value_sse_lending(engine, fetchers or Sources.from_settings(settings), latest, today))
    return result.history[0] if result.history else StepOutcome("sse_rqye", DONE, 0, "no trading calendar")


def refresh_history(engine: Engine, sources: Sources, result: IngestResult, bar: Any, latest: date,
                    today: date) -> None:
    """Each history source once, skipped where the stored rows already reach `latest` (the last published day)."""
    for symbol in INDEX_TURNOVER:
        history_step(result, f"index_{symbol}",
                     lambda symbol=symbol: _store_index(engine, sources, symbol, latest))
        bar.update(1)
    history_step(result, "em_account", lambda: _store_market_history(engine, sources, latest))
    bar.update(1)
    history_step(result, "sw_class", lambda: _store_classification(engine, sources, today))
    bar.update(1)
    history_step(result, "csi300", lambda: _store_csi300(engine, sources, today))
    bar.update(1)
    history_step(result, "sw_index", lambda: _store_sector_indexes(engine, sources, latest))
    bar.update(1)
