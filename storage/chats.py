"""Chats, subscriptions, watch lists and uploaded chart ids: the bot's state in the database.

The daily push's delivery records live in storage.deliveries; what a chat's changes do to them (an
unsubscribed chat's unsent pushes dropped, a migrated group's moved) is done here, with the change.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import models
from storage.database import session_scope, upsert
from storage.models import DeliveryStatus

# Telegram's chat ids have at most 52 significant bits: ids from 2**52 on are never a real chat's,
# and the local sandbox invents its chats there (still exact as JavaScript numbers, below 2**53).
LOCAL_CHAT_ID_FLOOR = 2**52


def local_chat_ids(column: Any) -> Any:
    """SQL condition: the chat is one of the local sandbox's invented chats (|id| >= LOCAL_CHAT_ID_FLOOR)."""
    return or_(column >= LOCAL_CHAT_ID_FLOOR, column <= -LOCAL_CHAT_ID_FLOOR)


def _now() -> datetime:
    return datetime.now(UTC)


def get_chat(engine: Engine, chat_id: int) -> models.Chat | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(models.Chat, chat_id)


def ensure_chat(engine: Engine, chat_id: int, chat_type: str, title: str, language: str,
                follow_language: bool = False) -> models.Chat:
    """The stored chat, created with `language` on first contact; type and title kept current.
    `follow_language` (a private chat whose user's Telegram language is known): `language` replaces
    the stored one unless a language was picked in /settings (set_language)."""
    try:
        return _ensure_chat(engine, chat_id, chat_type, title, language, follow_language)
    except IntegrityError:
        # A first contact handled concurrently (several updates of a new chat at once) created it: it exists now.
        return _ensure_chat(engine, chat_id, chat_type, title, language, follow_language)


def _ensure_chat(engine: Engine, chat_id: int, chat_type: str, title: str, language: str,
                 follow_language: bool) -> models.Chat:
    with session_scope(engine) as session:
        chat = session.get(models.Chat, chat_id)
        if chat is None:
            chat = models.Chat(chat_id=chat_id, chat_type=chat_type, title=title[:128], language=language)
            session.add(chat)
        elif chat.chat_type != chat_type or chat.title != title[:128] or not chat.active:
            chat.chat_type, chat.title, chat.active = chat_type, title[:128], True
            chat.deactivated_reason = ""
            chat.updated_at = _now()
        if follow_language and not chat.language_chosen and chat.language != language:
            chat.language, chat.updated_at = language, _now()
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
        if not subscribed:  # a push planned and not yet sent is not sent after /unsubscribe
            _drop_unsent(session, chat_id)
        return bool(result.rowcount)


def clear_push_thread(engine: Engine, chat_id: int) -> None:
    """The push's topic is gone (deleted): the chat's push goes to General from now on."""
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id)
                        .values(push_thread_id=None, updated_at=_now()))


def set_language(engine: Engine, chat_id: int, language: str) -> None:
    """The language picked in /settings: kept from now on (language_chosen), whatever Telegram's."""
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id)
                        .values(language=language, language_chosen=True, updated_at=_now()))


def set_push_time(engine: Engine, chat_id: int, push_time: time | None) -> None:
    """The chat's push time (None: the default). A push planned for the old time and not yet sent
    is planned again at the new one."""
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id)
                        .values(push_time=push_time, updated_at=_now()))
        _drop_unsent(session, chat_id)


def _drop_unsent(session: Session, chat_id: int) -> None:
    """Forget the chat's planned deliveries not yet started (pending, or claimed and waiting in a
    worker's queue, whose worker then finds it gone and skips it): the chat no longer wants them, or
    wants them at another time. Planning adds one again where the chat is due."""
    session.execute(delete(models.Delivery).where(
        models.Delivery.chat_id == chat_id,
        models.Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.CLAIMED))))


def deactivate(engine: Engine, chat_id: int, reason: str, unsubscribe: bool = False) -> None:
    """The bot was blocked or removed: stop pushing to this chat (its planned deliveries dropped),
    keep its settings; `unsubscribe` too (a group that removed the bot must subscribe again)."""
    values: dict[str, object] = {"active": False, "deactivated_reason": reason[:200], "updated_at": _now()}
    if unsubscribe:
        values["subscribed"] = False
    with session_scope(engine) as session:
        session.execute(update(models.Chat).where(models.Chat.chat_id == chat_id).values(**values))
        _drop_unsent(session, chat_id)


def refused(engine: Engine, chat_id: int, reason: str) -> None:
    """The bot was blocked or removed (a 403, or its own membership ending): deactivate the chat; a
    group or channel (negative ids, as Telegram numbers them) is unsubscribed too, so that whoever
    adds the bot back (in a group any member may) does not turn the push on again, while a user who
    unblocks it keeps their subscription."""
    deactivate(engine, chat_id, reason, unsubscribe=chat_id < 0)


# The record a migrated group's new id gets for a date its old id was sent, or is being sent: planning
# passes over it, so the supergroup (which shows the old group's history) is not sent the day again.
SENT_BEFORE_MIGRATION = "sent to the group before it became a supergroup"


def migrate(engine: Engine, old_chat_id: int, new_chat_id: int, sending: int | None = None) -> None:
    """A group became a supergroup: move its settings, subscription, watch list and pending deliveries
    to the new id.

    Deliveries sent or unconfirmed stay with the old id, and so does one being sent right now by a
    worker (that send may still arrive); for each, the new id gets a skipped record, so that the date is
    not planned and sent again. `sending` is the delivery whose send the caller just saw refused as
    migrated: it moves and is sent anew, replacing such a record. Migrating again (the update and a
    refused send both tell) only moves what is left.
    """
    try:
        _migrate(engine, old_chat_id, new_chat_id, sending)
    except IntegrityError:  # a concurrent migration of the same group (the update and a refused send) came first
        _migrate(engine, old_chat_id, new_chat_id, sending)


def _migrate(engine: Engine, old_chat_id: int, new_chat_id: int, sending: int | None) -> None:
    with session_scope(engine) as session:
        old = session.get(models.Chat, old_chat_id)
        if old is None:
            return
        new = session.get(models.Chat, new_chat_id)
        if new is None:
            new = models.Chat(chat_id=new_chat_id, chat_type="supergroup", title=old.title, language=old.language)
            session.add(new)
        if old.active or old.subscribed:  # not yet moved: settings made in the new chat since are kept
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
        _move_deliveries(session, old_chat_id, new_chat_id, sending)


def _move_deliveries(session: Session, old_chat_id: int, new_chat_id: int, sending: int | None) -> None:
    delivery = models.Delivery
    theirs = {row.trade_date: row for row in session.execute(
        select(delivery).where(delivery.chat_id == new_chat_id)).scalars()}
    rows = session.execute(select(delivery).where(delivery.chat_id == old_chat_id)).scalars().all()
    newest = max((row.trade_date for row in rows), default=None)  # the only date a push may still plan
    for row in rows:
        stays = row.status in (DeliveryStatus.SENT, DeliveryStatus.UNCONFIRMED) or (
            row.status == DeliveryStatus.SENDING and row.id != sending)
        existing = theirs.get(row.trade_date)
        if stays:
            if existing is None and row.trade_date == newest:
                theirs[row.trade_date] = delivery(chat_id=new_chat_id, trade_date=row.trade_date,
                                                  status=DeliveryStatus.SKIPPED, error=SENT_BEFORE_MIGRATION)
                session.add(theirs[row.trade_date])
            continue
        if row.status == DeliveryStatus.SKIPPED:
            continue
        if existing is not None and existing.error == SENT_BEFORE_MIGRATION and row.id == sending:
            session.delete(existing)  # the send it stood for was refused: this delivery takes its place
            session.flush()
            existing = None
        if existing is not None:
            row.status, row.error = DeliveryStatus.SKIPPED, f"migrated to {new_chat_id}"
        else:
            row.chat_id, row.status, row.claimed_by, row.not_before = (
                new_chat_id, DeliveryStatus.PENDING, "", None)
            theirs[row.trade_date] = row


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


# Watch lists change in the one process that answers commands (the polling bot; push workers only
# read them): one change at a time, so that two /watch at once cannot both pass the MAX_WATCHES check,
# nor meet on SQLite as a write over a stale snapshot (an error where an answer was due).
_watch_lock = threading.Lock()


def watch(engine: Engine, chat_id: int, code: str) -> str:
    """Follow `code` in the chat's push: "added", "already" (followed before) or "full" (MAX_WATCHES)."""
    try:
        with _watch_lock, session_scope(engine) as session:
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


def forget_notice(engine: Engine, key: str) -> None:
    """Release a one-time notice claimed with first_notice that reached no one: the next claim wins again."""
    with session_scope(engine) as session:
        session.execute(delete(models.DatasetMeta).where(models.DatasetMeta.key == f"notice:{key}"[:32]))


# --- uploaded charts ----------------------------------------------------------------------------


def get_file_id(engine: Engine, cache_key: str) -> str | None:
    with Session(engine) as session:
        row = session.get(models.ChartUpload, cache_key)
        return row.file_id if row else None


# A chart's key carries the data version, so an upload is asked for only while its data are the
# latest: kept this long, then deleted as the next ones are stored (the table holds two weeks' worth).
FILE_ID_KEEP = timedelta(days=14)


def save_file_id(engine: Engine, cache_key: str, file_id: str) -> None:
    with session_scope(engine) as session:
        upsert(session, models.ChartUpload, [{"cache_key": cache_key, "file_id": file_id, "created_at": _now()}])
        session.execute(delete(models.ChartUpload).where(models.ChartUpload.created_at < _now() - FILE_ID_KEEP))


def delete_file_id(engine: Engine, cache_key: str) -> None:
    with session_scope(engine) as session:
        session.execute(delete(models.ChartUpload).where(models.ChartUpload.cache_key == cache_key))
