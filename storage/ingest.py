"""Ingestion: fetch margin data from the exchanges (through storage.sources) and store it.

Per trade date T there are six per-day sources (SSE, SZSE, BSE summary and detail) and one derived step
(the day's SectorDaily). Each (day, source) is written in one transaction together with its IngestStatus
row and a data_version bump; a failure writes nothing but its IngestStatus row (pending = not published
yet, failed = error, given_up = a required step of an older day that kept failing: see
storage.ingest_status.REQUIRED_MAX_ATTEMPTS), so the stored data stays as it was. A day is complete when
all of its required steps are done (a given-up step is not). Two more per-day steps are optional: the
official A-share turnover of SSE (stock_sse_deal_daily, from 2021-12-27) and SZSE (stock_szse_summary).
They replace the index-amount fallback row of their (day, exchange) by an a_share_only one; their
failure is recorded (pending or failed) and retried in later runs, but never keeps a day from being
complete.
History sources (storage.history: index turnover, Eastmoney market history, Shenwan classes and
sector index closes) are refreshed once per run where the stored rows are behind, and only written
where they differ from what is stored, so a second run changes nothing. Files without a trade date
to compare (the Shenwan classes, the CSI 300 constituents) are read at most once a day.
The trading calendar is refreshed when it does not cover the span.
Demo data are replaced by real data in one transaction, and only once an exchange has answered with
real margin data: a run whose sources all fail leaves the demo data (and everything else) as it was.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from storage import models
from storage._steps import (
    DONE,
    FAILED,
    GIVEN_UP,
    PARSE_ERRORS,
    PENDING,
    SECTORS,
    DayResult,
    IngestResult,
    StepOutcome,
    clean,
    previous_trade_day,
    records,
    stored_calendar,
    upsert_changed,
)
from storage.database import bump_data_version, is_demo, session_scope, upsert
from storage.history import CHECKED_KEYS, HISTORY_STEPS, history_step, refresh_history
from storage.ingest_status import (
    DAY_SOURCES,
    DETAIL_SOURCES,
    GIVE_UP_AGE,
    MARGIN_START,
    SUMMARY_SOURCES,
    TURNOVER_SOURCES,
    all_steps,
    done_steps,
    latest_complete_date,
    missing_steps,
    optional_steps,
    record_problem,
    required_steps,
    set_status,
    settled_steps,
)
from storage.lending import value_sse_lending
from storage.plausibility import SSE_SPAN_DAYS, check_detail_against_summary, derive_rzche, derive_stock_rzche
from storage.sources import Sources
from storage.upstream import NotPublished, UpstreamError, UpstreamProblem, ValidationFailed

if TYPE_CHECKING:
    from marginbot.settings import Settings

log = logging.getLogger("storage.ingest")

DEFAULT_BACKFILL_DAYS = 60
_NAME_MAX = 32


def _as_problem(exc: BaseException) -> UpstreamProblem:
    """What a source raised, as the problem ingestion records (a parse error: an unexpected answer)."""
    if isinstance(exc, UpstreamProblem):
        return exc
    return UpstreamError(f"unexpected answer ({type(exc).__name__}: {exc})")


# --- the calendar ------------------------------------------------------------------------------------


def _fetch_calendar(sources: Sources, result: IngestResult) -> list[date] | None:
    """Upstream's trading calendar, or None (the failure logged and recorded in `result`)."""
    try:
        return sources.trade_calendar()
    except UpstreamProblem as exc:
        log.warning("calendar refresh failed: %s", exc)
        result.history.append(StepOutcome("calendar", FAILED, 0, str(exc)))
        return None


def _ensure_calendar(engine: Engine, sources: Sources, today: date, start: date | None,
                     result: IngestResult) -> list[date]:
    """The stored trading calendar, refreshed from upstream when it does not reach `today` (or `start`)."""
    stored = stored_calendar(engine)
    covered = bool(stored) and stored[-1] >= today and (start is None or stored[0] <= start)
    if covered:
        return stored
    days = _fetch_calendar(sources, result)
    if days is None:
        return stored
    with session_scope(engine) as session:
        written = upsert_changed(session, models.TradingDay, [{"trade_date": d} for d in days], ("trade_date",))
        if written:
            bump_data_version(session)
    result.history.append(StepOutcome("calendar", DONE, len(written)))
    return stored_calendar(engine)


# --- choosing the days -------------------------------------------------------------------------------


def _days_from_scratch(calendar: Sequence[date], start: date | None, stop: date) -> list[date]:
    """The trade dates to fetch where nothing is stored: from `start` on, else the last DEFAULT_BACKFILL_DAYS."""
    trade_days = [d for d in calendar if MARGIN_START <= d <= stop]
    if start is not None:
        return [d for d in trade_days if d >= start]
    return trade_days[-DEFAULT_BACKFILL_DAYS:]


def _given_up_days(session: Session, days: Sequence[date]) -> set[date]:
    """Of `days`, those with a step given up."""
    if not days:
        return set()
    st = models.IngestStatus
    return set(session.execute(select(st.trade_date).where(
        st.status == GIVEN_UP, st.trade_date >= min(days), st.trade_date <= max(days)).distinct()).scalars())


def _days_to_fetch(engine: Engine, calendar: Sequence[date], start: date | None, stop: date,
                   retry_given_up: bool = False) -> tuple[list[date], list[date]]:
    """Trade dates in need of work, oldest first (see run_ingest for the rule), and the days left out
    because a step of theirs was given up (none with `retry_given_up`: a span named by the user)."""
    last = None if start is not None else latest_complete_date(engine)
    if last is None:
        candidates = _days_from_scratch(calendar, start, stop)
    else:
        st = models.IngestStatus
        with Session(engine) as session:
            holes = set(session.execute(
                select(st.trade_date).where(st.status != DONE, st.trade_date <= stop).distinct()
            ).scalars())
        candidates = [d for d in calendar if MARGIN_START <= d <= stop and (d > last or d in holes)]
    if not candidates:
        return [], []
    with Session(engine) as session:
        settled = settled_steps(session, candidates)
        given_up = set() if retry_given_up else _given_up_days(session, candidates)
    days = [d for d in candidates if not set(all_steps(d)) <= settled[d]]
    return [d for d in days if d not in given_up], [d for d in days if d in given_up]


def _in_order(days: Sequence[date], calendar: Sequence[date], newest: date) -> list[date]:
    """The order the days are worked in: first the run of consecutive trade dates in `days` that ends
    at the latest published day `newest` (the push waits for it), oldest first, then the rest oldest
    first. A hole further back thus never holds the latest days up. Within the run the day before
    goes first: SZSE's and BSE's answers carry no date, and an unpublished day is told from one that
    repeats the stored day before (so are the details and the official turnover)."""
    wanted = set(days)
    at = bisect_right(calendar, newest) - 1
    run: list[date] = []
    while at >= 0 and calendar[at] in wanted:
        run.append(calendar[at])
        at -= 1
    run.reverse()
    recent = set(run)
    return run + [d for d in sorted(days) if d not in recent]


# --- per-day sources ---------------------------------------------------------------------------------


def _stored_summary(session: Session, day: date | None, exchange: str) -> models.MarginSummary | None:
    if day is None:
        return None
    ms = models.MarginSummary
    return session.execute(select(ms).where(ms.trade_date == day, ms.exchange == exchange)).scalars().first()


def _summary_rows(frame: pd.DataFrame, exchange: str) -> list[dict[str, Any]]:
    return records(
        frame, ["trade_date", "rzye", "rzmre", "rzche", "rzche_derived", "rqye", "rqyl", "rqmcl", "rzrqye"],
        exchange=exchange, rqmce=None, source=exchange.lower(),
    )


def _repeats(stored: models.MarginSummary, row: dict[str, Any]) -> bool:
    """True when a summary row equals the stored one in every published figure."""
    return all(getattr(stored, k) == row[k] for k in ("rzye", "rzmre", "rqye", "rqyl", "rqmcl"))


def _detail_repeats(session: Session, previous_day: date, exchange: str, frame: pd.DataFrame) -> bool:
    """True when a detail answer has the stored previous day's row count and 融资余额 and 融资买入额 sums:
    consecutive trade days never share all three."""
    sm = models.StockMargin
    count, rzye, rzmre = session.execute(
        select(func.count(), func.sum(sm.rzye), func.sum(sm.rzmre))
        .where(sm.trade_date == previous_day, sm.exchange == exchange)
    ).one()
    if not count or count != len(frame):
        return False
    return all(stored is not None and math.isclose(float(stored), float(frame[k].sum()), rel_tol=1e-9)
               for stored, k in ((rzye, "rzye"), (rzmre, "rzmre")))


def _sse_spans(calendar: Sequence[date], days: Sequence[date]) -> list[list[date]]:
    """The days SSE's summary is asked for, grouped into requests, newest first: runs of consecutive
    trade dates (a hole years back is asked apart from the latest days, and its failure stays its
    own), each cut from its newest day back into spans one request covers (from the trade date
    before a span's first day, its 融资偿还额's base, SSE_SPAN_DAYS calendar days at most)."""
    position = {d: i for i, d in enumerate(calendar)}
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day in position and runs[-1][-1] in position and position[day] == position[runs[-1][-1]] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    spans: list[list[date]] = []
    for run in runs:
        end = len(run)
        while end > 0:
            start = end - 1
            while start > 0 and (run[end - 1] - (previous_trade_day(calendar, run[start - 1]) or run[start - 1])
                                 ).days < SSE_SPAN_DAYS:
                start -= 1
            spans.append(run[start:end])
            end = start
    return sorted(spans, key=lambda span: span[-1], reverse=True)


class _DayFetcher:
    """Fetches and checks one (day, source) into rows; the SSE summary is asked once per span of
    missing days (_sse_spans), so that a failing old span fails its own days only.

    `newest` is the latest published day: the only one whose required steps are never given up."""

    def __init__(self, engine: Engine, sources: Sources, calendar: Sequence[date], days: Sequence[date],
                 done: dict[date, set[str]], newest: date | None = None) -> None:
        self.engine = engine
        self.sources = sources
        self.calendar = calendar
        self.newest = newest
        sse_days = [d for d in sorted(days) if "sse_summary" not in done[d]]
        self._sse_days = sse_days
        self._sse_spans = _sse_spans(calendar, sse_days)
        self._sse_span_of = {d: i for i, span in enumerate(self._sse_spans) for d in span}
        self._sse: dict[int, pd.DataFrame | UpstreamProblem] = {}
        # SZSE's and BSE's summaries asked before the run's first write (first_real_answer): not twice.
        self._answers: dict[tuple[str, date], pd.DataFrame | UpstreamProblem] = {}

    def serves(self, days: Sequence[date], done: dict[date, set[str]]) -> bool:
        """True when this fetcher was made for these days and done steps (its answers can be reused)."""
        return self._sse_days == [d for d in sorted(days) if "sse_summary" not in done[d]]

    def may_give_up(self, day: date, source: str) -> bool:
        """Whether a failure of `source` on `day` may give it up: a required step of a day at least
        GIVE_UP_AGE trade dates before the latest published one."""
        if source in TURNOVER_SOURCES or self.newest is None or day >= self.newest:
            return False
        return bisect_right(self.calendar, self.newest) - bisect_right(self.calendar, day) >= GIVE_UP_AGE

    def _single_summary(self, day: date, source: str) -> pd.DataFrame:
        """SZSE's or BSE's summary of `day`, asked once per run (a failure too is kept)."""
        if (source, day) not in self._answers:
            fetch = self.sources.szse_summary if source == "szse_summary" else self.sources.bse_summary
            try:
                self._answers[source, day] = fetch(day)
            except UpstreamProblem as exc:
                self._answers[source, day] = exc
        answer = self._answers[source, day]
        if isinstance(answer, UpstreamProblem):
            raise answer
        return answer

    def first_real_answer(self) -> dict[date, list[StepOutcome]] | None:
        """Whether an exchange answers with a plausible summary of one of the days, asked without
        reading or writing the database (it holds the demo data): SSE's answer for every day, then
        SZSE's and BSE's of the last day. None when one did; else, per day, what each answered.
        The answers are kept for the run's own steps."""
        days = self._sse_days
        outcomes: dict[date, list[StepOutcome]] = {d: [] for d in days}
        for span in self._sse_spans:
            try:
                frame = self._sse_frame(span[-1])
            except (UpstreamProblem, *PARSE_ERRORS) as exc:
                problem = _as_problem(exc)
                for day in span:
                    outcomes[day].append(StepOutcome("sse_summary", problem.status, 0, str(problem)))
                continue
            for day in span:
                rows = frame[frame["trade_date"] == day]
                if rows.empty:
                    outcomes[day].append(
                        StepOutcome("sse_summary", PENDING, 0, f"SSE's answer has no row for {day} yet"))
                elif isinstance(rows["problem"].iloc[0], str):
                    outcomes[day].append(StepOutcome("sse_summary", FAILED, 0, rows["problem"].iloc[0]))
                else:
                    return None
        last = days[-1]
        for source in ("szse_summary", "bse_summary"):
            if source not in required_steps(last):
                continue
            try:
                self._single_summary(last, source)
            except (UpstreamProblem, *PARSE_ERRORS) as exc:
                problem = _as_problem(exc)
                outcomes[last].append(StepOutcome(source, problem.status, 0, str(problem)))
            else:
                return None
        return outcomes

    def _sse_frame(self, day: date) -> pd.DataFrame:
        """SSE's answer for the span holding `day`, asked once per run (a failure too is kept)."""
        index = self._sse_span_of[day]
        if index not in self._sse:
            span = self._sse_spans[index]
            first = previous_trade_day(self.calendar, span[0]) or span[0]
            try:
                self._sse[index] = self.sources.sse_summary(first, span[-1])
            except UpstreamProblem as exc:
                self._sse[index] = exc
        answer = self._sse[index]
        if isinstance(answer, UpstreamProblem):
            raise answer
        return answer

    def summary(self, day: date, source: str) -> list[dict[str, Any]]:
        exchange = SUMMARY_SOURCES[source]
        previous_day = previous_trade_day(self.calendar, day)
        previous_rzye: float | None = None
        if source == "sse_summary":
            frame = self._sse_frame(day)
            rows = frame[frame["trade_date"] == day]
            if rows.empty:
                raise NotPublished(f"SSE's answer has no row for {day} yet")
            problem = rows["problem"].iloc[0]
            if isinstance(problem, str):
                raise ValidationFailed(problem)
            out = _summary_rows(rows, exchange)
            before = frame.loc[(frame["trade_date"] == previous_day) & frame["problem"].isna(), "rzye"]
            previous_rzye = clean(before.iloc[0]) if len(before) else None
        else:
            out = _summary_rows(self._single_summary(day, source), exchange)
        with Session(self.engine) as session:
            stored = _stored_summary(session, previous_day, exchange)
        if stored is not None and source != "sse_summary" and _repeats(stored, out[0]):
            # SZSE's and BSE's answers carry no date: one identical to the day before, to the 元 and
            # the 股, is the exchange serving its last published day for one it has not published.
            raise NotPublished(f"{exchange}'s summary for {day} repeats {previous_day}'s: not published yet")
        if previous_rzye is None:
            previous_rzye = stored.rzye if stored is not None else None
        # Derived from the previous trade date itself, never from whatever row happens to precede.
        row = out[0]
        row["rzche"] = derive_rzche(row["rzye"], row["rzmre"], previous_rzye)
        row["rzche_derived"] = row["rzche"] is not None
        return out

    def detail(self, day: date, source: str) -> list[dict[str, Any]]:
        exchange = DETAIL_SOURCES[source]
        with Session(self.engine) as session:
            summary = _stored_summary(session, day, exchange)
        # The detail is checked against the day's summary, so it waits for it: stored first, it
        # would never be checked.
        if summary is None or summary.rzye is None:
            raise NotPublished(f"{exchange}'s detail for {day} waits for its summary")
        fetch = {"sse_detail": self.sources.sse_detail, "szse_detail": self.sources.szse_detail,
                 "bse_detail": self.sources.bse_detail}[source]
        frame = fetch(day)
        check_detail_against_summary(frame, summary.rzye, exchange)
        previous_day = previous_trade_day(self.calendar, day)
        with Session(self.engine) as session:
            if previous_day is not None and _detail_repeats(session, previous_day, exchange, frame):
                raise NotPublished(f"{exchange}'s detail for {day} repeats {previous_day}'s: not published yet")
            previous: dict[str, float | None] | None = None
            if frame["rzche"].isna().all() and previous_day is not None and source in done_steps(
                    session, [previous_day])[previous_day]:
                sm = models.StockMargin
                previous = {code: rzye for code, rzye in session.execute(
                    select(sm.code, sm.rzye).where(sm.trade_date == previous_day, sm.exchange == exchange)
                )}
        rows = records(frame, ["code", "name", "exchange", "is_fund", "rzye", "rzmre", "rzche", "rqyl", "rqmcl",
                               "rqchl", "rqye", "rqye_estimated"], trade_date=day)
        for row in rows:
            row["name"] = str(row["name"] or "")[:_NAME_MAX]
            row["is_fund"] = bool(row["is_fund"])
            row["rqye_estimated"] = bool(row["rqye_estimated"])
            row["rzche_derived"] = False
            if row["rzche"] is None and previous is not None:
                # The exchange omits it per stock; the definition holds there as for the totals.
                row["rzche"] = derive_stock_rzche(row["rzye"], row["rzmre"], previous.get(row["code"]))
                # marked, so that a later change of the previous day's balance makes it again
                row["rzche_derived"] = row["rzche"] is not None
        return rows


def _next_trade_day(calendar: Sequence[date], day: date) -> date | None:
    """The trade date after `day` in the sorted calendar, or None."""
    position = bisect_right(calendar, day)
    return calendar[position] if position < len(calendar) else None


def _complete_next_summary(session: Session, row: dict[str, Any], next_day: date) -> None:
    """Derive the next day's 融资偿还额, rzye(T) + rzmre(T+1) - rzye(T+1), from this day's balance where
    the next day came first (rzye(T+1) could not be matched with a rzye(T) not stored yet), or again
    where it was derived (from a balance of this day stored before, an import's, say)."""
    stored = _stored_summary(session, next_day, row["exchange"])
    if stored is None or (stored.rzche is not None and not stored.rzche_derived):
        return
    stored.rzche = derive_rzche(stored.rzye, stored.rzmre, row["rzye"])
    stored.rzche_derived = stored.rzche is not None


def _complete_next_detail(session: Session, rows: list[dict[str, Any]], next_day: date, exchange: str) -> int:
    """The same per security: the next day's rows without 融资偿还额, or with a derived one, get it
    from this day's 融资余额 (derive_stock_rzche). Returns the rows whose figure changed."""
    sm = models.StockMargin
    balance = {r["code"]: r["rzye"] for r in rows}
    completed = 0
    for stored in session.execute(select(sm).where(
            sm.trade_date == next_day, sm.exchange == exchange, models.stock_rzche_derivable())).scalars():
        rzche = derive_stock_rzche(stored.rzye, stored.rzmre, balance.get(stored.code))
        if rzche is None and stored.rzche is None:
            continue
        if rzche != stored.rzche:
            stored.rzche, stored.rzche_derived = rzche, rzche is not None
            completed += 1
    return completed


def _store(engine: Engine, day: date, source: str, model: type[SQLModel], rows: list[dict[str, Any]],
           message: str = "", next_day: date | None = None) -> StepOutcome:
    """Rows, the done status and the version bump in one transaction; with `next_day`, that day's
    融资偿还额 left unknown for want of this day's balance, or derived from an earlier one, is derived
    (again) in the same transaction (and its sectors rebuilt)."""
    with session_scope(engine) as session:
        upsert(session, model, rows)
        if next_day is not None and model is models.MarginSummary:
            _complete_next_summary(session, rows[0], next_day)
        elif next_day is not None and rows and _complete_next_detail(session, rows, next_day, rows[0]["exchange"]):
            session.flush()
            if SECTORS in done_steps(session, [next_day])[next_day]:
                from storage.aggregate import rebuild_sector_daily

                rebuild_sector_daily(session, [next_day])
        set_status(session, day, source, DONE, rows=len(rows), message=message)
        bump_data_version(session)
    log.debug("%s %s: %d rows stored", source, day, len(rows))
    return StepOutcome(source, DONE, len(rows))


def _ingest_step(engine: Engine, fetcher: _DayFetcher, day: date, source: str) -> StepOutcome:
    next_day = _next_trade_day(fetcher.calendar, day)
    try:
        if source in TURNOVER_SOURCES:
            return _store_turnover(engine, fetcher, day, source)
        if source in SUMMARY_SOURCES:
            rows = fetcher.summary(day, source)
            derived = rows[0]["rzche_derived"]
            return _store(engine, day, source, models.MarginSummary, rows,
                          "融资偿还额 derived" if derived else "", next_day=next_day)
        rows = fetcher.detail(day, source)
        return _store(engine, day, source, models.StockMargin, rows, next_day=next_day)
    except UpstreamProblem as exc:
        return record_problem(engine, day, source, exc, may_give_up=fetcher.may_give_up(day, source))
    except SQLAlchemyError as exc:
        return record_problem(engine, day, source, f"database error: {type(exc).__name__}: {str(exc)[:200]}",
                               may_give_up=fetcher.may_give_up(day, source))
    except PARSE_ERRORS as exc:
        return record_problem(engine, day, source, UpstreamError(f"unexpected answer ({type(exc).__name__}: {exc})"),
                               may_give_up=fetcher.may_give_up(day, source))


def _store_turnover(engine: Engine, fetcher: _DayFetcher, day: date, source: str) -> StepOutcome:
    """The official A-share turnover of one (day, exchange), replacing whatever row is stored for it.

    An answer that repeats, to the 元, the official figure stored for the previous trade date is an
    exchange serving its last published day for one it has not published yet: NotPublished.
    """
    exchange, origin = TURNOVER_SOURCES[source]
    fetch = fetcher.sources.sse_turnover if source == "sse_turnover" else fetcher.sources.szse_turnover
    amount = float(fetch(day))
    previous_day = previous_trade_day(fetcher.calendar, day)
    tv = models.Turnover
    with session_scope(engine) as session:
        if previous_day is not None:
            before = session.execute(select(tv.amount).where(
                tv.trade_date == previous_day, tv.exchange == exchange, tv.source == origin)).scalar()
            if before is not None and before == amount:
                raise NotPublished(f"{exchange}'s answer for {day} repeats {previous_day}'s figure: not published yet")
        upsert(session, tv, [{"trade_date": day, "exchange": exchange, "amount": amount, "a_share_only": True,
                              "source": origin}])
        set_status(session, day, source, DONE, rows=1)
        bump_data_version(session)
    log.debug("%s %s: A股成交额 %.2f 亿元 stored", source, day, amount / 1e8)
    return StepOutcome(source, DONE, 1)


def _rebuild_sectors(engine: Engine, day: date, may_give_up: bool = False) -> StepOutcome:
    try:
        from storage.aggregate import rebuild_sector_daily, rebuild_stock_spikes, spike_dates_after_write

        with session_scope(engine) as session:
            count = rebuild_sector_daily(session, [day])
            # The day alone when days arrive in order; a day filled in late also moves the 65 after it.
            rebuild_stock_spikes(session, spike_dates_after_write(session, [day]))
            set_status(session, day, SECTORS, DONE, rows=count)
            bump_data_version(session)
        return StepOutcome(SECTORS, DONE, count)
    except (ImportError, SQLAlchemyError, *PARSE_ERRORS) as exc:
        return record_problem(engine, day, SECTORS, f"sector rebuild failed: {type(exc).__name__}: {exc}",
                               status=FAILED, may_give_up=may_give_up)


# --- the run -----------------------------------------------------------------------------------------


def drop_demo_data(session: Session) -> bool:
    """Real data never mixes with demo data: in a database holding the demo data, delete its market
    data (storage.demo.MARKET_TABLES), the chart uploads (they show demo figures) and the once-a-day
    marks of the deleted tables, and mark the data real; chats and deliveries stay. Runs in the
    caller's transaction (the first real ingest's, an import's). The demo flag is claimed by one
    conditional UPDATE (demo true -> false) whose row count decides: of two writers replacing at
    once, on PostgreSQL and on SQLite alike (the second's UPDATE waits for the first's commit, then
    matches nothing), the second deletes nothing the first stored. It must be the transaction's first
    statement (SQLite: a transaction that has read already cannot wait for the write lock). True when
    demo data were deleted."""
    from storage.demo import MARKET_TABLES

    meta = models.DatasetMeta
    claimed = session.execute(update(meta).where(meta.key == "demo", meta.value == "true").values(value="false")
                              .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for model in MARKET_TABLES:
        session.execute(delete(model))
    session.execute(delete(models.ChartUpload))
    session.execute(delete(meta).where(meta.key.in_(CHECKED_KEYS)))
    return True


def _replace_demo_data(engine: Engine, calendar: Sequence[date]) -> bool:
    """Real data never mixes with demo data: in one transaction, the demo market data are deleted and
    upstream's trading calendar stored in place of the demo's. True when demo data were deleted.

    Chart uploads go too (they show demo figures), and so do the once-a-day marks of the deleted
    tables, so that this very run reads the class and constituent files. Chats and deliveries stay.
    """
    with session_scope(engine) as session:
        dropped = drop_demo_data(session)
        written = upsert_changed(session, models.TradingDay, [{"trade_date": d} for d in calendar], ("trade_date",))
        if dropped or written:
            bump_data_version(session)
    return dropped


def _leave_demo(engine: Engine, fetcher: _DayFetcher, days: Sequence[date], calendar: Sequence[date],
                result: IngestResult) -> bool:
    """On a database holding the demo data: replace it by real data only once an exchange has
    answered with some (a plausible summary of one of `days`), so that a run whose sources all fail
    keeps the demo data and writes nothing. True when the run goes on with the demo data gone."""
    if not days:
        result.notes.append("demo data kept: no trade date to fetch")
        log.warning("%s", result.notes[-1])
        return False
    outcomes = fetcher.first_real_answer()
    if outcomes is not None:
        for day in days:
            day_result = DayResult(day, outcomes.get(day, []))
            if day_result.steps:
                result.days.append(day_result)
        reasons = {f"{s.source}: {s.message}" for steps in outcomes.values() for s in steps if s.status == FAILED}
        if not reasons:
            reasons = {f"{s.source}: {s.message}" for steps in outcomes.values() for s in steps}
        shown = sorted(reasons)
        more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
        note = (f"demo data kept: no exchange answered with margin data for {days[0]}..{days[-1]} "
                f"({'; '.join(shown[:3])}{more})")
        result.notes.append(note)
        log.warning("%s", note)
        return False
    if _replace_demo_data(engine, calendar):
        result.notes.append("demo data removed: real data replaces it")
        log.warning("demo data removed: real data replaces it")
    result.history.append(StepOutcome("calendar", DONE, len(calendar)))
    return True


def run_ingest(engine: Engine, settings: Settings, start: date | None = None, end: date | None = None,
               progress: bool = True, today: date | None = None, fetchers: Sources | None = None,
               history: bool = True, lending: bool = True) -> IngestResult:
    """Fetch and store every trade date that is not complete yet, up to the latest published one.

    The latest published day is the last trade date before `today` (Asia/Shanghai): day T appears on
    the morning of T+1. Without `start`, the days after the latest complete day are fetched, with any
    earlier day left pending or failed; on an empty database the last DEFAULT_BACKFILL_DAYS trade
    dates. With `start`, every incomplete trade date from `start` on. `end` caps the span. The run of
    consecutive days in need of work that ends at the latest published day is worked first (oldest
    first: see _in_order), then older holes; SSE's summary is asked per span of missing days
    (_sse_spans): an old hole never delays or fails the day the push waits for. A day with a step
    given up (REQUIRED_MAX_ATTEMPTS) is skipped unless `start` or `end` is given (a span the user
    names is tried whole); the skipped days are in the result's `skipped`. History
    sources are refreshed once per run unless `history` is False; one whose stored rows already reach
    the latest published day is not asked again (the Shenwan classes and CSI 300 constituents: once a day).
    `fetchers` replaces the upstream calls (tests: instant sleep). With `history` and `lending`, SSE's
    融券余额 of the latest published day is then valued at its closes (estimate_sse_lending; the bot
    does that after its daily push, which does not need it).

    On a database holding the demo data, upstream's calendar is fetched and the days are chosen as on
    an empty database; the demo data are replaced (in the transaction storing that calendar) only once
    an exchange has answered with a plausible summary of one of them. Until then nothing is written:
    a run whose sources all fail keeps the demo data as they were (and says so in its notes).
    """
    from marginbot.settings import TIMEZONE

    sources = fetchers or Sources.from_settings(settings)
    today = today or datetime.now(TIMEZONE).date()
    result = IngestResult()
    # Demo data are replaced only together with real data: until then nothing is written, the
    # demo's invented calendar is not used, and no failure is recorded beside the demo rows.
    demo = is_demo(engine)
    if demo:
        calendar = _fetch_calendar(sources, result) or []
    else:
        calendar = _ensure_calendar(engine, sources, today, start, result)
    published = [d for d in calendar if d < today]
    if not published:
        result.fatal = ("no trading calendar (its refresh failed): the demo data is kept" if demo
                        else "no trading calendar (its refresh failed and none is stored)")
        log.error("ingest stopped: %s", result.fatal)
        return result
    stop = published[-1]
    if end is not None:
        if end > stop:
            result.notes.append(f"end {end} is not published yet: stopped at {stop}")
        stop = min(stop, end)
    newest = published[-1]
    fetcher: _DayFetcher | None = None
    if demo:
        days = _days_from_scratch(calendar, start, stop)
        fetcher = _DayFetcher(engine, sources, calendar, days, {d: set() for d in days}, newest)
        if not _leave_demo(engine, fetcher, days, calendar, result):
            return result
    days, result.skipped = _days_to_fetch(engine, calendar, start, stop,
                                          retry_given_up=start is not None or end is not None)
    with Session(engine) as session:
        done = done_steps(session, days)
        settled = settled_steps(session, days)
    if fetcher is None or not fetcher.serves(days, done):
        fetcher = _DayFetcher(engine, sources, calendar, days, done, newest)
    steps = sum(len(set(all_steps(d)) - settled[d]) for d in days)
    bar = _progress_bar(progress, (len(HISTORY_STEPS) if history else 0) + steps)
    try:
        if history:
            refresh_history(engine, sources, result, bar, newest, today)
        for day in _in_order(days, calendar, newest):
            result.days.append(_ingest_day(engine, fetcher, day, done[day], settled[day], bar))
        result.days.sort(key=lambda d: d.day)  # reported in date order, whatever order they were worked in
        if history:
            if lending:  # once the day's details are in: they tell which day the quotes describe
                history_step(result, "sse_rqye",
                             lambda: value_sse_lending(engine, sources, newest, today))
            bar.update(1)
    finally:
        bar.close()
    for line in result.notes:
        log.info("%s", line)
    if days:  # the exchanges' rows against a market-wide source: worth a look, never a refusal
        from storage.checks import cross_check_notes

        for line in cross_check_notes(engine, days[0], days[-1]):
            log.warning("%s", line)
            result.notes.append(line)
    return result


def _ingest_day(engine: Engine, fetcher: _DayFetcher, day: date, done: set[str], settled: set[str],
                bar: Any) -> DayResult:
    """Every step of `day` not done yet, in order: summaries, details, the sectors, then the optional
    official turnover (its failure leaves the day complete)."""
    result = DayResult(day)
    for source in all_steps(day):
        if source in done or source in settled:
            continue
        bar.set_postfix_str(f"{day} {source}", refresh=False)
        if source != SECTORS:
            outcome = _ingest_step(engine, fetcher, day, source)
        elif set(required_steps(day)) - {SECTORS} <= done:
            outcome = _rebuild_sectors(engine, day, fetcher.may_give_up(day, SECTORS))
        else:
            outcome = StepOutcome(SECTORS, PENDING, 0, "waits for the day's sources")
        if outcome.status == DONE:
            done.add(source)
        result.steps.append(outcome)
        bar.update(1)
    result.complete = set(required_steps(day)) <= done
    return result


def _progress_bar(progress: bool, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not progress, desc="ingest", unit="step", leave=False)


__all__ = [
    "DAY_SOURCES", "DEFAULT_BACKFILL_DAYS", "DayResult", "TURNOVER_SOURCES", "optional_steps", "IngestResult",
    "NotPublished", "SECTORS", "StepOutcome", "UpstreamError", "ValidationFailed",
    "latest_complete_date", "missing_steps", "required_steps", "run_ingest",
]
