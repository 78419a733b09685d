"""The daily push's delivery records: one row per (chat, trade date), claimed by workers with leases.

Its status (models.DeliveryStatus) goes pending -> claimed -> sending -> sent | failed | unconfirmed:

- pending: due to be sent: planned for a subscriber whose push time has come, handed back unstarted by
  a stopping worker, moved to a migrated group's new id, or waiting for a retry (not_before: the
  backoff after a failed attempt, or a 429's retry_after).
- claimed: a worker holds it under a lease (claimed_by, claimed_at renewed by its heartbeat) and has
  not started to send; a claim whose lease ran out (its worker died) is taken over by another worker.
- sending: the worker started the send (one more attempt). A send whose lease ran out may have reached
  the chat: it becomes unconfirmed, never sent again.
- sent: Telegram accepted the message (message_id recorded). Final.
- failed: given up: the bot was blocked or removed (the chat is deactivated), the last of
  bot.push.MAX_ATTEMPTS failed, an unexpected error, or a later trade date's push came first. Final
  for this chat id (a group's migration, below, gives it another chance under its new id).
- unconfirmed: the send's answer never came (a read timeout, a dropped connection, a worker that
  stopped mid-send): it may have arrived, so it is not repeated. Final.

A failed attempt that may be retried goes back to pending. A group that becomes a supergroup
(storage.chats.migrate) takes its deliveries not sent nor unconfirmed to its new id as pending, failed
ones included (the new chat is a new chance); one its new id already has is left behind as skipped.
A date sent to the old id, or being sent to it, gets a skipped record under the new id, so that it is
not planned for the supergroup again (which shows the old group's messages).

Deliveries are claimed with row locks (PostgreSQL: FOR UPDATE SKIP LOCKED) so several workers can
share one database and a chat is never sent the same trade date twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from storage import chats, models
from storage.database import session_scope
from storage.models import DeliveryStatus

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    chat_id: int
    language: str  # as the claim was made (logs, tests); the push sends in start()'s, the chat's then
    attempts: int
    thread_id: int | None = None  # the forum topic the chat's push goes to
    watches: tuple[str, ...] = ()  # the securities the chat follows, in its order


def plan_deliveries(engine: Engine, trade_date: date, local_now: time, default_time: time,
                    local_only: bool = False) -> int:
    """Create a pending delivery of `trade_date` for each active subscriber whose push time has come.

    A chat without its own time uses `default_time`. Only chats without a delivery of the date are
    inserted: this runs every minute once the day is complete, and re-inserting every subscriber to
    have the unique key discard them would write N rows a minute (and, on PostgreSQL, use up a serial
    id per discarded row). The key still settles a race between workers. `local_only` plans the local
    sandbox's chats only. Returns rows added.
    """
    chat, delivery = models.Chat, models.Delivery
    query = select(chat.chat_id).where(
        chat.subscribed,
        chat.active,
        or_(chat.push_time.is_(None), chat.push_time <= local_now) if local_now >= default_time
        else and_(chat.push_time.is_not(None), chat.push_time <= local_now),
        ~exists().where(delivery.chat_id == chat.chat_id, delivery.trade_date == trade_date),
    )
    if local_only:
        query = query.where(chats.local_chat_ids(chat.chat_id))
    with session_scope(engine) as session:
        due = session.execute(query).scalars().all()
        if not due:
            return 0
        rows = [{"chat_id": cid, "trade_date": trade_date, "status": DeliveryStatus.PENDING} for cid in due]
        return _insert_ignore(session, rows)


def _insert_ignore(session: Session, rows: list[dict[str, object]]) -> int:
    """Insert deliveries, those whose (chat, trade date) exists already left out; returns rows inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = models.Delivery.__table__  # type: ignore[attr-defined]
    added = 0
    for start in range(0, len(rows), 500):
        stmt = insert(table).values(rows[start : start + 500]).on_conflict_do_nothing(
            index_elements=["chat_id", "trade_date"]
        ).returning(table.c.id)
        added += len(session.execute(stmt).all())
    return added


LEASE = timedelta(minutes=2)  # a claim not renewed for this long belongs to a worker that died
DEFAULT_LANGUAGE = "zh"  # of a delivery whose chat row is gone


def claim(engine: Engine, trade_date: date, worker: str, limit: int, lease: timedelta = LEASE,
          local_only: bool = False) -> list[Claim]:
    """Atomically take up to `limit` deliveries of `trade_date` for `worker`: pending ones that are due
    (not_before passed) and claims whose lease expired before a send started (their worker died).

    A send that started under a lease that expired (status sending) may have reached the chat: it is
    recorded as unconfirmed, never sent again. `local_only` limits the claim to the sandbox's chats.
    """
    delivery = models.Delivery
    now = _now()
    stale = now - lease
    with session_scope(engine) as session:
        lost = update(delivery).where(
            delivery.trade_date == trade_date, delivery.status == DeliveryStatus.SENDING,
            delivery.claimed_at < stale,
        ).values(status=DeliveryStatus.UNCONFIRMED, updated_at=now,
                 error="the worker stopped during the send: it may have arrived, so it is not sent again")
        if session.execute(lost).rowcount:  # type: ignore[attr-defined]
            log.warning("push of %s: sends of a stopped worker recorded as unconfirmed", trade_date)
        due = select(delivery.id).where(
            delivery.trade_date == trade_date,
            or_(and_(delivery.status == DeliveryStatus.PENDING,
                     or_(delivery.not_before.is_(None), delivery.not_before <= now)),
                and_(delivery.status == DeliveryStatus.CLAIMED, delivery.claimed_at < stale)),
        )
        if local_only:
            due = due.where(chats.local_chat_ids(delivery.chat_id))
        # PostgreSQL: rows another worker is claiming right now are skipped, not waited for
        due = due.order_by(delivery.id).limit(limit).with_for_update(skip_locked=True)
        rows = session.execute(
            update(delivery).where(delivery.id.in_(due.scalar_subquery()))
            .values(status=DeliveryStatus.CLAIMED, claimed_by=worker, claimed_at=now, updated_at=now)
            .returning(delivery.id, delivery.chat_id, delivery.attempts)
        ).all()
        if not rows:
            return []
        where = {chat_id: (language, thread) for chat_id, language, thread in session.execute(
            select(models.Chat.chat_id, models.Chat.language, models.Chat.push_thread_id)
            .where(models.Chat.chat_id.in_([r[1] for r in rows]))
        ).all()}
    followed = chats.watches(engine, [int(r[1]) for r in rows])
    claims = []
    for delivery_id, chat_id, attempts in sorted(rows):
        language, thread = where.get(chat_id, (DEFAULT_LANGUAGE, None))
        claims.append(Claim(int(delivery_id), int(chat_id), language, int(attempts), thread,
                            tuple(followed.get(int(chat_id), ()))))
    return claims


def start(engine: Engine, delivery_id: int, worker: str) -> str | None:
    """Mark a claimed delivery as being sent (one more attempt, lease renewed) and return the chat's
    language as it is now (a /settings change since the claim counts); None when `worker` no longer
    holds it (its lease ran out and another worker took it over, or the chat dropped it): then it
    must not send."""
    now = _now()
    delivery = models.Delivery
    with session_scope(engine) as session:
        started = session.execute(
            update(delivery)
            .where(delivery.id == delivery_id, delivery.claimed_by == worker,
                   delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.SENDING, attempts=delivery.attempts + 1, claimed_at=now, updated_at=now)
            .returning(delivery.chat_id)
        ).scalar()
        if started is None:
            return None
        language = session.execute(select(models.Chat.language).where(models.Chat.chat_id == started)).scalar()
        return language or DEFAULT_LANGUAGE


def renew(engine: Engine, trade_date: date, worker: str) -> int:
    """Renew the lease of everything `worker` holds (its heartbeat); returns how many rows."""
    now = _now()
    with session_scope(engine) as session:
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.trade_date == trade_date, models.Delivery.claimed_by == worker,
                   models.Delivery.status.in_((DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)))
            .values(claimed_at=now)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def finish(engine: Engine, delivery_id: int, worker: str, status: str, *, message_id: int | None = None,
           error: str = "", retry_at: datetime | None = None, refund_attempt: bool = False) -> bool:
    """Record the outcome of `worker`'s send: sent, failed (final), unconfirmed (final: it may have
    arrived) or pending (retry at `retry_at`; `refund_attempt` when the failure was not the send's,
    e.g. a 429 asking to wait). False when the worker no longer held the delivery."""
    values: dict[str, Any] = {"status": status, "message_id": message_id, "error": error[:500], "updated_at": _now()}
    if status == DeliveryStatus.PENDING:
        values |= {"claimed_by": "", "not_before": retry_at}
        if refund_attempt:
            values["attempts"] = models.Delivery.attempts - 1
    with session_scope(engine) as session:
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.id == delivery_id, models.Delivery.claimed_by == worker)
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_unstarted(engine: Engine, trade_date: date, worker: str) -> int:
    """Hand back every delivery `worker` holds but has not started to send (a stopping worker, after
    its sends finished). Catches claims whose result never reached the worker (stopped while
    claiming) as well as claims still waiting in its queue. Returns how many were released.
    """
    with session_scope(engine) as session:
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.trade_date == trade_date, models.Delivery.claimed_by == worker,
                   models.Delivery.status == DeliveryStatus.CLAIMED)
            .values(status=DeliveryStatus.PENDING, claimed_by="", updated_at=_now())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def has_unsent(engine: Engine, trade_date: date) -> bool:
    """Whether any delivery of `trade_date` is still to be sent (pending, or claimed and not started)."""
    delivery = models.Delivery
    with Session(engine) as session:
        return session.execute(select(delivery.id).where(
            delivery.trade_date == trade_date,
            delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.CLAIMED))).limit(1)).first() is not None


def next_retry(engine: Engine, trade_date: date, local_only: bool = False) -> datetime | None:
    """When the earliest waiting retry of `trade_date` falls due (None: no retry waits)."""
    delivery = models.Delivery
    query = select(func.min(delivery.not_before)).where(
        delivery.trade_date == trade_date, delivery.status == DeliveryStatus.PENDING,
        delivery.not_before.is_not(None))
    if local_only:
        query = query.where(chats.local_chat_ids(delivery.chat_id))
    with Session(engine) as session:
        value = session.execute(query).scalar()
    if value is not None and value.tzinfo is None:  # SQLite keeps UTC without its offset
        value = value.replace(tzinfo=UTC)
    return value


def expire_before(engine: Engine, trade_date: date, local_only: bool = False) -> int:
    """Deliveries of earlier trade dates still unsent when `trade_date` is pushed are given up and
    recorded as failed (a newer summary has replaced them). `local_only`: the sandbox's chats only
    (its push must not touch a real bot's on a shared database). Returns how many."""
    delivery = models.Delivery
    earlier = delivery.trade_date < trade_date
    if local_only:
        earlier = and_(earlier, chats.local_chat_ids(delivery.chat_id))
    with session_scope(engine) as session:
        # A send in flight keeps its worker: if that worker (another process) is alive, its finish()
        # still records what Telegram answered; if it died, unconfirmed stands.
        session.execute(
            update(models.Delivery)
            .where(earlier, models.Delivery.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.UNCONFIRMED, updated_at=_now(),
                    error="the worker stopped during the send: it may have arrived, so it is not sent again")
        )
        result = session.execute(
            update(models.Delivery)
            .where(earlier, models.Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.CLAIMED)))
            .values(status=DeliveryStatus.FAILED, claimed_by="", updated_at=_now(),
                    error=f"not delivered before the push of {trade_date.isoformat()}")
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delivery_counts(engine: Engine, trade_date: date) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(models.Delivery.status, func.count()).where(models.Delivery.trade_date == trade_date)
            .group_by(models.Delivery.status)
        ).all()
    return {status: int(count) for status, count in rows}
