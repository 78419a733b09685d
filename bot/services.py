"""What handlers share: settings, database, report service, a worker pool, throttle and chart ids."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time as _time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from telegram.ext import Application, ContextTypes

from marginbot.settings import Settings
from reports.service import ReportService
from storage import chats

T = TypeVar("T")
log = logging.getLogger(__name__)
GROUP_ANSWERS_PER_MINUTE = 20  # Telegram's limit per group
PRIVATE_ANSWERS_PER_MINUTE = 40
DETAILS_REMEMBERED = 20_000  # charts whose details message a window button can still find
FILE_IDS_REMEMBERED = 5_000  # chart file_ids kept in memory (a day's charts in both languages are ~100)
TEXTS_REMEMBERED = 20_000  # users' messages whose text an edit is compared with (a hash each)
LINKED_CHANNELS_REMEMBERED = 20_000  # discussion groups whose linked channel is known


class Throttle:
    """Sliding-window limit of events per chat, `limit` per `period` seconds: expensive commands, and
    (as further instances) the answers a group or a private chat may be sent a minute."""

    def __init__(self, limit: int, period: float = 60.0, clock: Callable[[], float] = _time.monotonic) -> None:
        self.limit, self.period, self.clock = limit, period, clock
        self.events: dict[int, deque[float]] = {}
        self.warned: dict[int, float] = {}
        self._swept = clock()

    def check(self, chat_id: int, cost: int = 1) -> float:
        """0 when `cost` more fit in the window (and are counted); otherwise seconds until they would
        (at least one: a request that can never fit, cost > limit, waits a whole period)."""
        now = self.clock()
        window = self.events.setdefault(chat_id, deque())
        while window and now - window[0] >= self.period:
            window.popleft()
        if len(window) + cost <= self.limit:
            window.extend([now] * cost)
            self._forget_idle(now)
            return 0.0
        leaving = len(window) + cost - self.limit  # entries that must leave before `cost` more fit
        if leaving > len(window):
            return self.period
        return max(1.0, self.period - (now - window[leaving - 1]))

    def _forget_idle(self, now: float) -> None:
        """Drop the chats with nothing in the window, at most once a period: every inline user and
        every chat ever seen would otherwise stay in memory for good."""
        if now - self._swept < self.period:
            return
        self._swept = now
        self.events = {chat: window for chat, window in self.events.items()
                       if window and now - window[-1] < self.period}
        self.warned = {chat: at for chat, at in self.warned.items() if now - at < self.period}

    def should_warn(self, chat_id: int) -> bool:
        """Tell a flooding chat to slow down once per period, not once per message."""
        now = self.clock()
        if now - self.warned.get(chat_id, -1e9) >= self.period:
            self.warned[chat_id] = now
            return True
        return False


@dataclass
class SharedLock:
    """A lock kept while someone holds or waits for it, and how many do: one chart's first upload
    (bot.sending), one chat's answer of several messages (Services.answering)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


K = TypeVar("K")


@contextlib.asynccontextmanager
async def holding(locks: dict[K, SharedLock], key: K) -> AsyncIterator[None]:
    """Hold the lock of `key` in `locks`, made on first use and dropped with its last holder (the
    dictionary keeps only the locks in use)."""
    shared = locks.setdefault(key, SharedLock())
    shared.users += 1
    try:
        async with shared.lock:
            yield
    finally:
        shared.users -= 1
        if shared.users == 0:
            locks.pop(key, None)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    reports: ReportService
    executor: ThreadPoolExecutor
    throttle: Throttle
    # Answers of any kind per chat and minute (bot.handlers.flood).
    group_answers: Throttle = field(default_factory=lambda: Throttle(GROUP_ANSWERS_PER_MINUTE))
    private_answers: Throttle = field(default_factory=lambda: Throttle(PRIVATE_ANSWERS_PER_MINUTE))
    # When each kind of unexpected error was last reported to the admins (bot.handlers.errors).
    error_reports: dict[str, float] = field(default_factory=dict)
    # Admin notices that reached no admin: key -> (not before, the wait after the next failure),
    # so that an admin who blocked the bot is not retried every minute (bot.pipeline._tell_admins).
    notice_retries: dict[str, tuple[datetime, timedelta]] = field(default_factory=dict)
    bot_username: str = ""
    bot_id: int = 0  # from getMe at start (bot.app.post_init)
    upload_locks: dict[str, SharedLock] = field(default_factory=dict)
    # chat -> the lock an answer of several messages holds while it goes out (answering)
    answer_locks: dict[int, SharedLock] = field(default_factory=dict)
    # Chart uploads an inline answer did not wait for (bot.handlers.inline), kept until they end.
    uploads: set[asyncio.Task[str]] = field(default_factory=set)
    file_ids: dict[str, str] = field(default_factory=dict)
    # (chat, chart message) -> the message with that report's details (remember_details).
    details_messages: dict[tuple[int, int], int] = field(default_factory=dict)
    # (chat, message) -> hash of the text last read from a user's message (read_anew).
    texts_read: dict[tuple[int, int], int] = field(default_factory=dict)
    # discussion group -> its linked channel, learnt from the channel's posts copied into the group
    # (bot.handlers.flood.gate): a message sent as that channel comes from one of its admins.
    linked_channels: dict[int, int] = field(default_factory=dict)
    # Where charts are uploaded to obtain a file_id for inline results when no chat has one yet.
    storage_chat_id: int | None = None
    # One thread for the long work of the daily job (an ingest may take minutes): never one of the
    # threads that answer the chats.
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="marginbot-ingest"))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (database, pandas, matplotlib) in the worker pool, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    async def run_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run long blocking work (an ingest) on its own thread, off the pool that answers chats."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.background, lambda: fn(*args, **kwargs))

    def _stored_key(self, key: str) -> str:
        # A file_id belongs to the bot that uploaded it: another bot (a new token) on this database
        # must not be handed it.
        return f"{self.bot_id}/{key}"

    async def file_id(self, key: str) -> str | None:
        """The file_id of the chart with cache key `key` (reports.service), once uploaded by this bot."""
        if key in self.file_ids:
            return self.file_ids[key]
        found = await self.run(chats.get_file_id, self.engine, self._stored_key(key))
        if found:
            self._keep_file_id(key, found)
        return found

    def _keep_file_id(self, key: str, file_id: str) -> None:
        # Chart keys carry the data version: old ones are never asked for again, so the oldest go
        # first (the database keeps them all).
        self.file_ids[key] = file_id
        while len(self.file_ids) > FILE_IDS_REMEMBERED:
            self.file_ids.pop(next(iter(self.file_ids)))

    async def forget_file_id(self, key: str) -> None:
        """Drop a file_id Telegram no longer accepts: the chart is uploaded again."""
        self.file_ids.pop(key, None)
        await self.run(chats.delete_file_id, self.engine, self._stored_key(key))

    def answering(self, chat_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while one answer of several messages (a chart, then its details) goes out to a chat:
        answers rendered at the same moment (a burst of commands) then arrive whole, one after the
        other, each chart followed by its own details, never interleaved."""
        return holding(self.answer_locks, chat_id)

    def remember_linked_channel(self, group_id: int, channel_id: int) -> None:
        """Bounded as the other memories (oldest forgotten first); a restart forgets them all, and
        messages sent as the channel are refused until its next post reaches the group."""
        self.linked_channels.pop(group_id, None)
        self.linked_channels[group_id] = channel_id
        while len(self.linked_channels) > LINKED_CHANNELS_REMEMBERED:
            self.linked_channels.pop(next(iter(self.linked_channels)))

    def remember_details(self, chat_id: int, chart_message_id: int, details_message_id: int) -> None:
        """The message with a report's details (its table) under the chart it belongs to: a window
        button redraws both. Bounded (oldest forgotten first); after a restart an old chart's
        details stay as they are and say which window they show."""
        self.details_messages[(chat_id, chart_message_id)] = details_message_id
        while len(self.details_messages) > DETAILS_REMEMBERED:
            self.details_messages.pop(next(iter(self.details_messages)))

    def read_anew(self, chat_id: int, message_id: int, text: str, *, edited: bool) -> bool:
        """Whether a user's message asks anew: a new message always; an edit only when it changes the
        text last read of that message. Telegram also sends an edit when a message gets its first
        reaction, or a live location moves, with the text as it was. An edit of a message not
        remembered (read before a restart, or long ago) is not answered: once rather than twice."""
        key = (chat_id, message_id)
        before = self.texts_read.pop(key, None)
        self.texts_read[key] = hash(text)  # re-inserted: the most recent last, the oldest forgotten first
        while len(self.texts_read) > TEXTS_REMEMBERED:
            self.texts_read.pop(next(iter(self.texts_read)))
        return not edited or (before is not None and before != hash(text))

    async def remember_file_id(self, key: str, file_id: str) -> None:
        """Keep a chart's file_id, in memory and in the database. Called once Telegram has taken the
        message: a database failure (a lock held by an import, a dropped connection) must not pass
        for a failed send (the daily push would send the chat its summary again), so it is logged,
        and the id stays in memory (the database learns it at the next upload after a restart)."""
        self._keep_file_id(key, file_id)
        try:
            await self.run(chats.save_file_id, self.engine, self._stored_key(key), file_id)
        except SQLAlchemyError as exc:
            log.warning("chart %s: file_id not stored (%s); kept in memory", key, getattr(exc, "orig", None) or exc)


def services_of(context: ContextTypes.DEFAULT_TYPE | Application) -> Services:  # type: ignore[type-arg]
    data = context.bot_data
    return data["services"]  # type: ignore[no-any-return]
