"""Each trade date's ingestion steps: which make it complete, which are done, and the IngestStatus row
every attempt writes (one upsert, the attempt counted in SQL, a repeated failure given up)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage import models
from storage._steps import DONE, FAILED, GIVEN_UP, PENDING, SECTORS, StepOutcome
from storage.database import session_scope
from storage.sources import SSE_DEAL_DAILY_START
from storage.upstream import UpstreamProblem

# The ingest run's logger: these lines are part of its run.
log = logging.getLogger("storage.ingest")

SUMMARY_SOURCES: dict[str, str] = {"sse_summary": "SSE", "szse_summary": "SZSE", "bse_summary": "BSE"}
DETAIL_SOURCES: dict[str, str] = {"sse_detail": "SSE", "szse_detail": "SZSE", "bse_detail": "BSE"}
DAY_SOURCES: tuple[str, ...] = (*SUMMARY_SOURCES, *DETAIL_SOURCES)
# Optional per-day steps: step name -> (exchange, Turnover.source). Not required for a complete day.
TURNOVER_SOURCES: dict[str, tuple[str, str]] = {
    "sse_turnover": ("SSE", "sse_deal_daily"), "szse_turnover": ("SZSE", "szse_summary"),
}
# An optional step that failed (or stayed pending) this many times is no longer retried by itself.
OPTIONAL_MAX_ATTEMPTS = 5
# A required step of a day at least GIVE_UP_AGE trade dates older than the latest published one that
# fails on its attempt number REQUIRED_MAX_ATTEMPTS or later, its previous attempt having failed too,
# is given up (GIVEN_UP): automatic runs skip its day, so an old hole never costs each run its
# retries and backoff; a run given --start or --end retries it. The latest published day, the one
# the push waits for, is never given up: its retries go on (and the late-data warning tells the
# admins); nor are the days just before it: an upstream outage of a few days heals by itself.
REQUIRED_MAX_ATTEMPTS = 5
GIVE_UP_AGE = 10

MARGIN_START = date(2010, 3, 31)  # first day of margin trading on SSE and SZSE
BSE_MARGIN_START = models.BSE_MARGIN_START
_SOURCE_START = {"bse_summary": BSE_MARGIN_START, "bse_detail": BSE_MARGIN_START,
                 "sse_turnover": SSE_DEAL_DAILY_START}
_MESSAGE_MAX = 500


# --- status queries ----------------------------------------------------------------------------------


def required_steps(day: date) -> tuple[str, ...]:
    """The steps that make `day` complete: the per-day sources that existed then, and the sectors."""
    sources = tuple(s for s in DAY_SOURCES if day >= _SOURCE_START.get(s, MARGIN_START))
    return (*sources, SECTORS)


def optional_steps(day: date) -> tuple[str, ...]:
    """The per-day steps that improve `day` without being required: the official A-share turnover."""
    return tuple(s for s in TURNOVER_SOURCES if day >= _SOURCE_START.get(s, MARGIN_START))


def settled_steps(session: Session, days: Sequence[date]) -> dict[date, set[str]]:
    """Per day, the steps not to try again: the done ones, and optional ones out of attempts."""
    settled = done_steps(session, days)
    if not days:
        return settled
    st = models.IngestStatus
    rows = session.execute(
        select(st.trade_date, st.source).where(
            st.status != DONE, st.source.in_(tuple(TURNOVER_SOURCES)), st.attempts >= OPTIONAL_MAX_ATTEMPTS,
            st.trade_date >= min(days), st.trade_date <= max(days),
        )
    ).all()
    for day, source in rows:
        if day in settled:
            settled[day].add(source)
    return settled


def all_steps(day: date) -> tuple[str, ...]:
    return (*required_steps(day), *optional_steps(day))


def done_steps(session: Session, days: Sequence[date]) -> dict[date, set[str]]:
    if not days:
        return {}
    st = models.IngestStatus
    rows = session.execute(
        select(st.trade_date, st.source).where(
            st.status == DONE, st.trade_date >= min(days), st.trade_date <= max(days)
        )
    ).all()
    done: dict[date, set[str]] = {d: set() for d in days}
    for day, source in rows:
        if day in done:
            done[day].add(source)
    return done


def missing_steps(engine: Engine, day: date) -> list[str]:
    """The required steps of `day` not done yet, in order (empty: the day is complete)."""
    with Session(engine) as session:
        done = done_steps(session, [day])[day]
    return [step for step in required_steps(day) if step not in done]


def latest_complete_date(engine: Engine) -> date | None:
    """The latest trade date whose ingestion is complete, or None."""
    st = models.IngestStatus
    fewest = min(len(required_steps(MARGIN_START)), len(required_steps(BSE_MARGIN_START)))
    query = (
        select(st.trade_date)
        .where(st.status == DONE, st.source.in_((*DAY_SOURCES, SECTORS)))
        .group_by(st.trade_date)
        .having(func.count() >= fewest)
        .order_by(st.trade_date.desc())
    )
    with Session(engine) as session:
        for (day,) in session.execute(query):
            if set(required_steps(day)) <= done_steps(session, [day])[day]:
                return day
    return None


# --- writing -----------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _given_up_message(message: str) -> str:
    return f"given up (marginbot ingest --start/--end retries it): {message}"


def _write_status(session: Session, day: date, source: str, status: str, *, rows: int = 0, message: str = "",
                  keep_done: bool = False, may_give_up: bool = False) -> tuple[str, int] | None:
    """Upsert the IngestStatus row of (day, source) in one statement, the attempt counted in SQL
    (attempts = attempts + 1: two workers at once never lose one).

    With `keep_done`, a row already done is left as it is (the statement's WHERE): another run stored
    the step meanwhile; None is returned. With `may_give_up`, a failure whose previous attempt failed
    too and which brings the attempts to REQUIRED_MAX_ATTEMPTS is stored as GIVEN_UP. Returns the
    stored status and attempts.
    """
    table = models.IngestStatus.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    text = message[:_MESSAGE_MAX]
    stmt = insert(table).values(trade_date=day, source=source, status=status, rows=rows, attempts=1,
                                message=text, updated_at=_now())
    new_status: Any = stmt.excluded.status
    new_message: Any = stmt.excluded.message
    if may_give_up and status == FAILED:
        gives_up = and_(table.c.status.in_((FAILED, GIVEN_UP)), table.c.attempts + 1 >= REQUIRED_MAX_ATTEMPTS)
        new_status = case((gives_up, literal(GIVEN_UP)), else_=stmt.excluded.status)
        new_message = case((gives_up, literal(_given_up_message(message)[:_MESSAGE_MAX])),
                           else_=stmt.excluded.message)
    stmt = stmt.on_conflict_do_update(
        index_elements=["trade_date", "source"],
        set_={"status": new_status, "rows": stmt.excluded.rows, "attempts": table.c.attempts + 1,
              "message": new_message, "updated_at": stmt.excluded.updated_at},
        where=(table.c.status != DONE) if keep_done else None,
    ).returning(table.c.status, table.c.attempts)
    stored = session.execute(stmt).first()
    return None if stored is None else (str(stored[0]), int(stored[1]))


def set_status(session: Session, day: date, source: str, status: str, rows: int = 0, message: str = "") -> int:
    """Upsert the IngestStatus row, counting this attempt; returns the attempt number."""
    stored = _write_status(session, day, source, status, rows=rows, message=message)
    assert stored is not None  # written unconditionally
    return stored[1]


def record_problem(engine: Engine, day: date, source: str, problem: UpstreamProblem | str,
                    status: str | None = None, may_give_up: bool = False) -> StepOutcome:
    """Write only the IngestStatus row (own transaction, one conditional upsert) and log one line;
    the data stays as it was. A row done meanwhile stays done; with `may_give_up` (a required step
    of a day older than the latest published one), a repeated failure may give the step up."""
    status = status or (problem.status if isinstance(problem, UpstreamProblem) else FAILED)
    message = str(problem)
    with session_scope(engine) as session:
        stored = _write_status(session, day, source, status, message=message, keep_done=True,
                               may_give_up=may_give_up)
    if stored is None:
        # Another run (a second worker on the same database) stored this step since this run
        # looked: its data stand, and this run's failure must not mark the day incomplete again.
        log.info("%s %s: %s, but another run has stored it meanwhile: kept", source, day, message)
        return StepOutcome(source, DONE, 0, "stored by another run")
    status, attempts = stored
    if status == GIVEN_UP:
        message = _given_up_message(message)
        log.warning("%s %s given up after %d attempts: %s", source, day, attempts, message)
    elif status == PENDING:
        log.info("%s %s: %s; will ask again (pending, attempt %d)", source, day, message, attempts)
    else:
        log.warning("%s %s failed: %s (attempt %d)", source, day, message, attempts)
    return StepOutcome(source, status, 0, message)
