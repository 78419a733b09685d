"""Chats, subscriptions, daily deliveries and uploaded chart ids: the bot's state in the database.

Deliveries are claimed with row locks (PostgreSQL: FOR UPDATE SKIP LOCKED) so several workers can
share one database and a chat is never sent the same trade date twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import models
from storage.database import session_scope, upsert

log = logging.getLogger(__name__)
# Telegram's chat ids have at most 52 significant bits: ids from 2**52 on are never a real chat's,
# and the local sandbox invents its chats there (still exact as JavaScript numbers, below 2**53).
LOCAL_CHAT_ID_FLOOR = 2**52


def _now() -> datetime:
    return datetime.now(UTC)


def get_chat(engine: Engine, chat_id: int) -> models.Chat | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(models.Chat, chat_id)


def ensure_chat(engine: Engine, chat_id: int, chat_type: str, title: str, language: str) -> models.Chat:
    """The stored chat, created with `language` on first contact; type and title kept current."""
    try:
        return _ensure_chat(engine, chat_id, chat_type, title, language)
    except IntegrityError:
        # A first contact handled concurrently (several updates of a new chat at once) created it: it exists now.
        return _ensure_chat(engine, chat_id, chat_type, title, language)


def _ensure_chat(engine: Engine, chat_id: int, chat_type: str, title: str, language: str) -> models.Chat:
    with session_scope(engine) as session:
        chat = session.get(models.Chat, chat_id)
        if chat is None:
            chat = models.Chat(chat_id=chat_id, chat_type=chat_type, title=title[:128], language=language)
            session.add(chat)
        elif chat.chat_type != chat_type or chat.title != title[:128] or not chat.active:
            chat.chat_type, chat.title, chat.active = chat_type, title[:128], True
            chat.deactivated_reason = ""
            chat.updated_at = _now()
        session.flush()
        return chat


def set_subscribed(engine: Engine, chat_id: int, subscribed: bool, thread_id: int | None = None) -> bool:
    """Set the subscription, and where a subscribing forum's push goes (`thread_id`: the topic it
    subscribed from; None: the chat, or General); returns True when either changed."""
    ch = models.Chat
    differs = or_(ch.subscribed.is_not(subscribed), ch.active.is_(False))
    values: dict[str, object] = {"subscribed": subscribed, "active": True, "updated_at": _now()}
    if subscribed:
        differs = or_(differs, ch.push_thread_id.is_distinct_from(thread_id))
        values["push_thread_id"] = thread_id
    # One conditional UPDATE, not a read then a write: of two /subscribe handled at once, one changes
    # the row and the other finds nothing left to change (and answers "already subscribed").
    with session_scope(engine) as session:
        result = session.execute(update(ch).where(ch.chat_id == chat_id, differs).values(**values))
        return bool(result.rowcount)


def clear_push_thread(engine: Engine, chat_id: int) -> None:
    """The push's topic is gone (deleted): the chat's push goes to General from now on."""
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id)
                        .values(push_thread_id=None, updated_at=_now()))


def set_language(engine: Engine, chat_id: int, language: str) -> None:
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id).values(language=language, updated_at=_now()))


def set_push_time(engine: Engine, chat_id: int, push_time: time | None) -> None:
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id).values(push_time=push_time, updated_at=_now()))


def deactivate(engine: Engine, chat_id: int, reason: str) -> None:
    """The bot was blocked or removed: stop pushing to this chat, keep its settings."""
    with session_scope(engine) as session:
        session.execute(
            update(models.Chat).where(models.Chat.chat_id == chat_id)
            .values(active=False, deactivated_reason=reason[:200], updated_at=_now())
        )


def migrate(engine: Engine, old_chat_id: int, new_chat_id: int) -> None:
    """A group became a supergroup: move its settings, subscription, watch list and pending deliveries
    to the new id."""
    with session_scope(engine) as session:
        old = session.get(models.Chat, old_chat_id)
        if old is None:
            return
        new = session.get(models.Chat, new_chat_id)
        if new is None:
            new = models.Chat(chat_id=new_chat_id, chat_type="supergroup", title=old.title, language=old.language)
            session.add(new)
        new.subscribed = new.subscribed or old.subscribed
        new.push_time, new.language, new.active = old.push_time, old.language, True
        old.subscribed, old.active, old.deactivated_reason = False, False, f"migrated to {new_chat_id}"
        session.flush()
        kept = set(session.execute(select(models.Watch.code).where(models.Watch.chat_id == new_chat_id)).scalars())
        for followed in session.execute(select(models.Watch).where(models.Watch.chat_id == old_chat_id)).scalars():
            if followed.code in kept:
                session.delete(followed)
            else:
                followed.chat_id = new_chat_id
        moved = session.execute(
            select(models.Delivery).where(models.Delivery.chat_id == old_chat_id,
                                          models.Delivery.status.not_in(("sent", "unconfirmed")))
        ).scalars().all()
        for delivery in moved:
            exists = session.execute(
                select(models.Delivery.id).where(
                    models.Delivery.chat_id == new_chat_id, models.Delivery.trade_date == delivery.trade_date
                )
            ).first()
            if exists:
                delivery.status, delivery.error = "skipped", f"migrated to {new_chat_id}"
            else:
                delivery.chat_id, delivery.status, delivery.claimed_by, delivery.not_before = (
                    new_chat_id, "pending", "", None)


def forget(engine: Engine, chat_ids: list[int]) -> int:
    """Delete chats, their deliveries and watch lists; returns how many chats."""
    with session_scope(engine) as session:
        session.execute(delete(models.Delivery).where(models.Delivery.chat_id.in_(chat_ids)))
        session.execute(delete(models.Watch).where(models.Watch.chat_id.in_(chat_ids)))
        result = session.execute(delete(models.Chat).where(models.Chat.chat_id.in_(chat_ids)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def forget_local(engine: Engine) -> int:
    """Delete the local sandbox's invented chats (ids from LOCAL_CHAT_ID_FLOOR on), with their
    deliveries and watch lists, before a real bot runs on the database; returns how many chats."""
    with session_scope(engine) as session:
        local = session.execute(select(models.Chat.chat_id).where(local_chat_ids(models.Chat.chat_id))).scalars().all()
    return forget(engine, list(local)) if local else 0


def subscriber_count(engine: Engine, local_only: bool = False) -> int:
    """Active subscribed chats (`local_only`: of the local sandbox only)."""
    query = select(func.count()).select_from(models.Chat).where(models.Chat.subscribed, models.Chat.active)
    if local_only:
        query = query.where(local_chat_ids(models.Chat.chat_id))
    with Session(engine) as session:
        return int(session.execute(query).scalar() or 0)


# --- watch lists ------------------------------------------------------------------------------

MAX_WATCHES = 10  # securities one chat may follow: their lines must fit under the push's caption


def watch(engine: Engine, chat_id: int, code: str) -> str:
    """Follow `code` in the chat's push: "added", "already" (followed before) or "full" (MAX_WATCHES)."""
    try:
        with session_scope(engine) as session:
            followed = session.execute(select(models.Watch.code).where(models.Watch.chat_id == chat_id)).scalars().all()
            if code in followed:
                return "already"
            if len(followed) >= MAX_WATCHES:
                return "full"
            session.add(models.Watch(chat_id=chat_id, code=code))
    except IntegrityError:  # the same /watch handled twice at once: the other one added it
        return "already"
    return "added"


def unwatch(engine: Engine, chat_id: int, code: str) -> bool:
    """Stop following `code`; False when it was not followed."""
    with session_scope(engine) as session:
        result = session.execute(
            delete(models.Watch).where(models.Watch.chat_id == chat_id, models.Watch.code == code))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def watches(engine: Engine, chat_ids: list[int]) -> dict[int, list[str]]:
    """The codes each chat follows, in the order it added them (chats following none are absent)."""
    out: dict[int, list[str]] = {}
    with Session(engine) as session:
        rows = session.execute(
            select(models.Watch.chat_id, models.Watch.code).where(models.Watch.chat_id.in_(chat_ids))
            .order_by(models.Watch.chat_id, models.Watch.id)
        ).all()
    for chat_id, code in rows:
        out.setdefault(int(chat_id), []).append(str(code))
    return out


def first_notice(engine: Engine, key: str) -> bool:
    """True for the first claim of a one-time notice (`key`, e.g. the admins' late-data warning of a
    date), False for every later one: across restarts, and across workers sharing the database (the
    second insert of the same key fails on the primary key)."""
    try:
        with session_scope(engine) as session:
            session.add(models.DatasetMeta(key=f"notice:{key}"[:32], value=_now().isoformat()))
        return True
    except IntegrityError:
        return False


# --- deliveries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    chat_id: int
    language: str
    attempts: int
    thread_id: int | None = None  # the forum topic the chat's push goes to
    watches: tuple[str, ...] = ()  # the securities the chat follows, in its order


def plan_deliveries(engine: Engine, trade_date: date, local_now: time, default_time: time,
                    local_only: bool = False) -> int:
    """Create a pending delivery of `trade_date` for each active subscriber whose push time has come.

    A chat without its own time uses `default_time`. Existing rows are left alone (unique key), so
    planning again after a restart adds only chats that became due. `local_only` plans the local
    sandbox's chats only. Returns rows added.
    """
    chat = models.Chat
    query = select(chat.chat_id).where(
        chat.subscribed,
        chat.active,
        or_(chat.push_time.is_(None), chat.push_time <= local_now) if local_now >= default_time
        else and_(chat.push_time.is_not(None), chat.push_time <= local_now),
    )
    if local_only:
        query = query.where(local_chat_ids(chat.chat_id))
    with session_scope(engine) as session:
        due = session.execute(query).scalars().all()
        if not due:
            return 0
        before = session.execute(
            select(func.count()).select_from(models.Delivery).where(models.Delivery.trade_date == trade_date)
        ).scalar()
        rows = [{"chat_id": cid, "trade_date": trade_date, "status": "pending"} for cid in due]
        _insert_ignore(session, rows)
        after = session.execute(
            select(func.count()).select_from(models.Delivery).where(models.Delivery.trade_date == trade_date)
        ).scalar()
        return int(after or 0) - int(before or 0)


def _insert_ignore(session: Session, rows: list[dict[str, object]]) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = models.Delivery.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), 500):
        stmt = insert(table).values(rows[start : start + 500]).on_conflict_do_nothing(
            index_elements=["chat_id", "trade_date"]
        )
        session.execute(stmt)


LEASE = timedelta(minutes=2)  # a claim not renewed for this long belongs to a worker that died


def local_chat_ids(column: Any) -> Any:
    """SQL condition: the chat is one of the local sandbox's invented chats (|id| >= LOCAL_CHAT_ID_FLOOR)."""
    return or_(column >= LOCAL_CHAT_ID_FLOOR, column <= -LOCAL_CHAT_ID_FLOOR)


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
            delivery.trade_date == trade_date, delivery.status == "sending", delivery.claimed_at < stale
        ).values(status="unconfirmed", updated_at=now,
                 error="the worker stopped during the send: it may have arrived, so it is not sent again")
        if session.execute(lost).rowcount:  # type: ignore[attr-defined]
            log.warning("push of %s: sends of a stopped worker recorded as unconfirmed", trade_date)
        due = select(delivery.id).where(
            delivery.trade_date == trade_date,
            or_(and_(delivery.status == "pending", or_(delivery.not_before.is_(None), delivery.not_before <= now)),
                and_(delivery.status == "claimed", delivery.claimed_at < stale)),
        )
        if local_only:
            due = due.where(local_chat_ids(delivery.chat_id))
        # PostgreSQL: rows another worker is claiming right now are skipped, not waited for
        due = due.order_by(delivery.id).limit(limit).with_for_update(skip_locked=True)
        rows = session.execute(
            update(delivery).where(delivery.id.in_(due.scalar_subquery()))
            .values(status="claimed", claimed_by=worker, claimed_at=now, updated_at=now)
            .returning(delivery.id, delivery.chat_id, delivery.attempts)
        ).all()
        if not rows:
            return []
        where = {chat_id: (language, thread) for chat_id, language, thread in session.execute(
            select(models.Chat.chat_id, models.Chat.language, models.Chat.push_thread_id)
            .where(models.Chat.chat_id.in_([r[1] for r in rows]))
        ).all()}
    followed = watches(engine, [int(r[1]) for r in rows])
    claims = []
    for delivery_id, chat_id, attempts in sorted(rows):
        language, thread = where.get(chat_id, ("zh", None))
        claims.append(Claim(int(delivery_id), int(chat_id), language, int(attempts), thread,
                            tuple(followed.get(int(chat_id), ()))))
    return claims


def start(engine: Engine, delivery_id: int, worker: str) -> bool:
    """Mark a claimed delivery as being sent (one more attempt, lease renewed); False when `worker` no
    longer holds it (its lease ran out and another worker took it over): then it must not send."""
    now = _now()
    with session_scope(engine) as session:
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.id == delivery_id, models.Delivery.claimed_by == worker,
                   models.Delivery.status == "claimed")
            .values(status="sending", attempts=models.Delivery.attempts + 1, claimed_at=now, updated_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def renew(engine: Engine, trade_date: date, worker: str) -> int:
    """Renew the lease of everything `worker` holds (its heartbeat); returns how many rows."""
    now = _now()
    with session_scope(engine) as session:
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.trade_date == trade_date, models.Delivery.claimed_by == worker,
                   models.Delivery.status.in_(("claimed", "sending")))
            .values(claimed_at=now)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def finish(engine: Engine, delivery_id: int, worker: str, status: str, *, message_id: int | None = None,
           error: str = "", retry_at: datetime | None = None, refund_attempt: bool = False) -> bool:
    """Record the outcome of `worker`'s send: sent, failed (final), unconfirmed (final: it may have
    arrived) or pending (retry at `retry_at`; `refund_attempt` when the failure was not the send's,
    e.g. a 429 asking to wait). False when the worker no longer held the delivery."""
    values: dict[str, Any] = {"status": status, "message_id": message_id, "error": error[:500], "updated_at": _now()}
    if status == "pending":
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
                   models.Delivery.status == "claimed")
            .values(status="pending", claimed_by="", updated_at=_now())
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def next_retry(engine: Engine, trade_date: date, local_only: bool = False) -> datetime | None:
    """When the earliest waiting retry of `trade_date` falls due (None: no retry waits)."""
    delivery = models.Delivery
    query = select(func.min(delivery.not_before)).where(
        delivery.trade_date == trade_date, delivery.status == "pending", delivery.not_before.is_not(None))
    if local_only:
        query = query.where(local_chat_ids(delivery.chat_id))
    with Session(engine) as session:
        value = session.execute(query).scalar()
    if value is not None and value.tzinfo is None:  # SQLite keeps UTC without its offset
        value = value.replace(tzinfo=UTC)
    return value


def expire_before(engine: Engine, trade_date: date) -> int:
    """Deliveries of earlier trade dates still unsent when `trade_date` is pushed are given up and
    recorded as failed (a newer summary has replaced them). Returns how many."""
    with session_scope(engine) as session:
        session.execute(
            update(models.Delivery)
            .where(models.Delivery.trade_date < trade_date, models.Delivery.status == "sending")
            .values(status="unconfirmed", claimed_by="", updated_at=_now(),
                    error="the worker stopped during the send: it may have arrived, so it is not sent again")
        )
        result = session.execute(
            update(models.Delivery)
            .where(models.Delivery.trade_date < trade_date, models.Delivery.status.in_(("pending", "claimed")))
            .values(status="failed", claimed_by="", updated_at=_now(),
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




# --- uploaded charts ----------------------------------------------------------------------------


def get_file_id(engine: Engine, cache_key: str) -> str | None:
    with Session(engine) as session:
        row = session.get(models.ChartUpload, cache_key)
        return row.file_id if row else None


def save_file_id(engine: Engine, cache_key: str, file_id: str) -> None:
    with session_scope(engine) as session:
        upsert(session, models.ChartUpload, [{"cache_key": cache_key, "file_id": file_id, "created_at": _now()}])


def delete_file_id(engine: Engine, cache_key: str) -> None:
    with session_scope(engine) as session:
        session.execute(delete(models.ChartUpload).where(models.ChartUpload.cache_key == cache_key))
