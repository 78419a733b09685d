"""The operator's view of the stored state: what data is in, how the recent days' ingestion went,
who is subscribed and how the recent pushes went (`marginbot status`, the admins' /status)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage import models, queries
from storage.database import data_version, is_demo
from storage.ingest_status import latest_complete_date

# Tables whose span of trade dates the status lists, by the name it shows.
SPANS: dict[str, type] = {
    "margin": models.MarginSummary,
    "stocks": models.StockMargin,
    "sectors": models.SectorDaily,
    "turnover": models.Turnover,
    "index": models.IndexDaily,
}


@dataclass
class DayIngest:
    """One trade date's ingestion steps by state; failed ones (given-up ones too, their message
    starting "given up") with their last message."""

    trade_date: date
    done: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Status:
    demo: bool
    data_version: int
    latest_data_date: date | None  # the reports' default day
    latest_complete: date | None  # the latest day whose ingestion is complete (None: never ingested)
    spans: dict[str, tuple[date, date] | None]  # first and last trade date stored, per table
    recent_ingest: list[DayIngest]  # newest first
    subscribers: dict[str, int]  # active subscriptions by chat type (private, group, supergroup, channel)
    recent_pushes: list[tuple[date, dict[str, int]]]  # newest first: deliveries by status


def read_status(engine: Engine, days: int = 5) -> Status:
    """The status with the ingestion of the last `days` ingested trade dates and their pushes."""
    with Session(engine) as session:
        spans: dict[str, tuple[date, date] | None] = {}
        for name, table in SPANS.items():
            # Two queries: SQLite reads min() or max() off the index only when it is a query's one aggregate
            # (together they scan all 12 million rows of a 10-year stock table: 0.75 s instead of 1 ms).
            first = session.execute(select(func.min(table.trade_date))).scalar()
            last = session.execute(select(func.max(table.trade_date))).scalar()
            spans[name] = (first, last) if first is not None else None

        st = models.IngestStatus
        ingest_days = session.execute(
            select(st.trade_date).distinct().order_by(st.trade_date.desc()).limit(days)
        ).scalars().all()
        by_day: dict[date, DayIngest] = {d: DayIngest(d) for d in ingest_days}
        rows = session.execute(
            select(st.trade_date, st.source, st.status, st.message).where(st.trade_date.in_(ingest_days))
            .order_by(st.source)
        ).all()
        for day, source, state, message in rows:
            entry = by_day[day]
            if state == "done":
                entry.done.append(source)
            elif state in ("failed", "given_up"):  # a given-up step's message says so and how to retry it
                entry.failed.append((source, message))
            else:
                entry.pending.append(source)

        chat = models.Chat
        subscribers = dict(session.execute(
            select(chat.chat_type, func.count()).where(chat.subscribed, chat.active).group_by(chat.chat_type)
        ).all())

        dl = models.Delivery
        push_days = session.execute(
            select(dl.trade_date).distinct().order_by(dl.trade_date.desc()).limit(3)
        ).scalars().all()
        pushes: dict[date, dict[str, int]] = defaultdict(dict)
        for day, state, count in session.execute(
            select(dl.trade_date, dl.status, func.count()).where(dl.trade_date.in_(push_days))
            .group_by(dl.trade_date, dl.status)
        ).all():
            pushes[day][state] = int(count)

    return Status(
        demo=is_demo(engine),
        data_version=data_version(engine),
        latest_data_date=queries.latest_data_date(engine),
        latest_complete=latest_complete_date(engine),
        spans=spans,
        recent_ingest=[by_day[d] for d in ingest_days],
        subscribers={str(k): int(v) for k, v in subscribers.items()},
        recent_pushes=[(d, dict(sorted(pushes[d].items()))) for d in push_days],
    )
