"""What storage.ingest and storage.history share: the outcome of a step and of a run, the rows written
only where they changed, and the stored trading calendar. It imports neither, so both can import it."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from storage import models
from storage.database import upsert

DONE, PENDING, FAILED = "done", "pending", "failed"
# A required step that kept failing on a day other than the newest (storage.ingest.REQUIRED_MAX_ATTEMPTS):
# not done (its day is not complete), skipped by automatic runs, retried by a run given --start/--end.
GIVEN_UP = "given_up"
SECTORS = "sector_daily"  # the per-day step that builds a day's sector figures from its whole detail
# What a malformed answer can raise in the checks after akshare returned: a failure of that source.
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)


def sector_days_ready(session: Session, days: Sequence[date]) -> list[date]:
    """Of `days`, those whose sector figures may be (re)built: days ingestion built them for (its
    sectors step done) and days it never saw (imported or demo data), not a day whose detail is still
    coming in: its partial sectors would make the reports take it for a whole day."""
    if not days:
        return []
    st = models.IngestStatus
    tracked, built = set(), set()
    for day, source, status in session.execute(select(st.trade_date, st.source, st.status).where(
            st.trade_date >= min(days), st.trade_date <= max(days))):
        tracked.add(day)
        if source == SECTORS and status == DONE:
            built.add(day)
    return [day for day in days if day not in tracked or day in built]


# --- results -----------------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    """What one (day, source) or history step ended with: done, pending or failed, rows written, reason."""

    source: str
    status: str
    rows: int = 0
    message: str = ""


@dataclass
class DayResult:
    """The outcome of every step tried on one trade date, and whether the day is complete now."""

    day: date
    steps: list[StepOutcome] = field(default_factory=list)
    complete: bool = False

    @property
    def status(self) -> str:
        if self.complete:
            return DONE
        return FAILED if any(s.status in (FAILED, GIVEN_UP) for s in self.steps) else PENDING

    def line(self) -> str:
        parts = ", ".join(f"{s.source} {s.status}" + (f" ({s.message})" if s.message else "") for s in self.steps)
        return f"{self.day}: {self.status}" + (f": {parts}" if parts else "")


@dataclass
class IngestResult:
    """Everything one run did: per-day results, history steps, and notes (a clipped end date, ...)."""

    days: list[DayResult] = field(default_factory=list)
    history: list[StepOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fatal: str = ""
    skipped: list[date] = field(default_factory=list)  # days with a given-up step, not tried by this run

    @property
    def ok(self) -> bool:
        """False when anything failed (pending days are fine: they come later)."""
        return not self.fatal and all(d.status != FAILED for d in self.days) and all(
            h.status != FAILED for h in self.history
        )

    def count(self, status: str) -> int:
        return sum(1 for d in self.days if d.status == status)

    def summary(self) -> str:
        """One line: the span, days done / pending / failed, history steps."""
        if self.fatal:
            return f"ingest failed: {self.fatal}"
        span = f"{self.days[0].day}..{self.days[-1].day}" if self.days else "nothing to fetch"
        hist_failed = sum(1 for h in self.history if h.status == FAILED)
        line = (
            f"ingest {span}: {self.count(DONE)} days done, {self.count(PENDING)} pending, "
            f"{self.count(FAILED)} failed; history {len(self.history) - hist_failed} ok, {hist_failed} failed"
        )
        given_up = [d.day for d in self.days if any(s.status == GIVEN_UP for s in d.steps)]
        if given_up:
            line += f"; given up now: {', '.join(map(str, given_up))}"
        if self.skipped:
            line += (f"; {len(self.skipped)} given-up days skipped ({self.skipped[0]}..{self.skipped[-1]}: "
                     "marginbot ingest --start/--end retries them)")
        return line

    def details(self) -> list[str]:
        """One line per day and per history step, for a verbose report."""
        lines = [d.line() for d in self.days]
        lines += [f"history {h.source}: {h.status}" + (f" ({h.message})" if h.message else "") for h in self.history]
        return lines + self.notes


# --- rows --------------------------------------------------------------------------------------------


def clean(value: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, so that both dialects bind the value."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


def records(frame: pd.DataFrame, columns: Iterable[str], **constant: Any) -> list[dict[str, Any]]:
    cols = list(columns)
    out = []
    for values in frame[cols].itertuples(index=False, name=None):
        row = {c: clean(v) for c, v in zip(cols, values, strict=True)}
        row.update(constant)
        out.append(row)
    return out


def _same(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return False
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, float) and isinstance(before, float):
            if not math.isclose(value, before, rel_tol=1e-12, abs_tol=1e-9):
                return False
        elif value != before:
            return False
    return True


def upsert_changed(session: Session, model: type[SQLModel], rows: list[dict[str, Any]], keys: tuple[str, ...],
                   where: Any = None, protect: Callable[[dict[str, Any]], bool] | None = None,
                   keep_known: bool = False,
                   merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
                   ) -> list[dict[str, Any]]:
    """Upsert only the rows that are new or differ from the stored ones (`where` narrows the comparison).

    Rows whose stored version satisfies `protect` are left alone. With `keep_known`, a figure the new
    row lacks (None) keeps its stored value: a later answer missing a figure never erases one.
    `merge(stored, new)` makes the row to write where one is stored (a writer whose figures depend
    on each other). Returns the rows written.
    """
    if not rows:
        return []
    table = model.__table__  # type: ignore[attr-defined]
    columns = [table.c[c] for c in rows[0]]
    query = select(*columns)
    if where is not None:
        query = query.where(where)
    existing = {tuple(r[k] for k in keys): dict(r) for r in session.execute(query).mappings()}
    changed = []
    for row in rows:
        old = existing.get(tuple(row[k] for k in keys))
        if old is not None and protect is not None and protect(old):
            continue
        if old is not None and keep_known:
            row = {k: old[k] if v is None and old.get(k) is not None else v for k, v in row.items()}
        if old is not None and merge is not None:
            row = merge(old, row)
        if not _same(old, row):
            changed.append(row)
    upsert(session, model, changed)
    return changed


# --- the calendar ------------------------------------------------------------------------------------


def stored_calendar(engine: Engine) -> list[date]:
    with Session(engine) as session:
        return list(session.execute(
            select(models.TradingDay.trade_date).order_by(models.TradingDay.trade_date)).scalars())


def previous_trade_day(calendar: Sequence[date], day: date) -> date | None:
    """The trade date before `day` in the sorted calendar, or None."""
    position = bisect_left(calendar, day)
    return calendar[position - 1] if position else None
