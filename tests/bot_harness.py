"""End-to-end harness: the real bot Application (bot.app) polling the stand-in Bot API over HTTP.

    async with BotHarness.running(engine, reports=shared_service, commands_per_minute=5) as h:
        h.server.add_user(1001, "Li", language_code="zh-hans")
        await h.write(1001, 1001, "/ratio 250")      # returns once the bot has handled the update
        [photo] = h.photos(1001)

`write`, `press`, `inline` and `inject` return only after every handler group of the application
(and the error handler) has finished with that update: a marker handler in the last group records
each update id. So a test can assert "no answer" as firmly as "this answer", without sleeps.

Seeding the demo data takes ~20 s: `demo_template` seeds one SQLite file per session (kept in
pytest's cache under a key of the code that builds it) and tests copy it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from telegram import Update
from telegram.ext import Application, ContextTypes, TypeHandler

from bot.app import build_application, start_application, stop_application
from bot.services import Services, Throttle
from marginbot.settings import Settings, load_settings
from reports.service import ReportService
from sandbox.botapi import ApiCall, BotApiServer, StoredMessage
from storage.database import make_engine

# Shaped like a real token (the settings validator insists); the secret part is searched in logs.
TOKEN = "123456789:E2E_secret-TOKEN_for-marginbot_tests_0123456789"
SECRET = TOKEN.split(":", 1)[1]
BOT_USERNAME = "marginbot_test_bot"
DATA_DATE = date(2026, 11, 20)
TIMEOUT = 10.0
MARKER_GROUP = 1_000_000  # after every handler group of the bot
# The rate limiter's period for a group's 20 messages (production: 60 s, Telegram's minute). The
# 21st message of a group would wait 3 s: the tests, which check the bot's own per-group allowance
# (bot.services.GROUP_ANSWERS_PER_MINUTE, on its own clock), wait 50 ms instead.
GROUP_TIME_PERIOD = 1.0

_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# The seeded demo database, once per session
# ------------------------------------------------------------------------------------------------


def copy_database(template: Path, target: Path) -> Engine:
    shutil.copyfile(template, target)
    return make_engine(f"sqlite:///{target}")


# ------------------------------------------------------------------------------------------------
# Logs: everything at DEBUG, searched for the token
# ------------------------------------------------------------------------------------------------


class RecordAll(logging.Handler):
    """Keeps every record (and its fully formatted text, traceback included) as first seen."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self._formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        try:
            self.texts.append(self._formatter.format(record) + f" args={record.args!r}")
        except Exception as exc:  # a broken record is still a record: keep what we can
            self.texts.append(f"{record.msg!r} {record.args!r} ({exc})")


def leaks(texts: Iterable[str], secret: str = SECRET) -> list[str]:
    return [t for t in texts if secret in t]


# ------------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------------


class BotHarness:
    """A stand-in server plus the real bot application on one database."""

    def __init__(self, server: BotApiServer, engine: Engine, settings: Settings,
                 reports: ReportService | None, group_time_period: float = GROUP_TIME_PERIOD) -> None:
        self.server, self.engine, self.settings, self.reports = server, engine, settings, reports
        self.group_time_period = group_time_period
        self.app: Application | None = None  # type: ignore[type-arg]
        # The chats' allowances (bot.services.Throttle) read this clock, not the host's: a slow host
        # must not move a test's "slow down, N seconds" on, nor empty a window mid-test.
        self.allowance_now = 0.0
        self.handled: set[int] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -------------------------------------------------------------- lifecycle

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, engine: Engine, *, reports: ReportService | None = None,
                      server: BotApiServer | None = None, group_time_period: float = GROUP_TIME_PERIOD,
                      **overrides: Any) -> AsyncIterator[BotHarness]:
        settings = make_settings(**overrides)
        own_server = server is None
        srv = server or BotApiServer(TOKEN, bot_username=BOT_USERNAME)
        if own_server:
            await srv.start()
        harness = cls(srv, engine, settings, reports, group_time_period)
        try:
            await harness.start_bot()
            yield harness
        finally:
            await harness.stop_bot()
            if own_server:
                await srv.stop()

    def build(self) -> Application:  # type: ignore[type-arg]
        """A new Application (as a restarted worker would build it) with the done-marker handler."""
        app = build_application(self.settings, self.engine, base_url=self.server.base_url,
                                base_file_url=self.server.base_file_url, schedule=False,
                                group_time_period=self.group_time_period)
        services = self.services_of(app)
        for name in ("throttle", "group_answers", "private_answers"):
            real: Throttle = getattr(services, name)
            setattr(services, name, Throttle(real.limit, real.period, clock=lambda: self.allowance_now))
        if self.reports is not None:
            # The demo data are identical in every copy: share rendered reports between tests.
            services.reports = self.reports
        app.add_handler(TypeHandler(Update, self._mark_handled), group=MARKER_GROUP)
        # An update the bot drops before its handlers (the flood gate) never reaches the marker:
        # marked once processing ends, whatever ended it.
        process = app.process_update

        async def process_and_mark(update: object) -> None:
            try:
                await process(update)
            finally:
                if isinstance(update, Update):
                    self._mark(update.update_id)

        app.process_update = process_and_mark  # type: ignore[method-assign]
        return app

    async def start_bot(self) -> Application:  # type: ignore[type-arg]
        self.app = self.build()
        await start_application(self.app)
        await self.until(lambda: self.server.is_polling)
        return self.app

    async def stop_bot(self) -> None:
        app, self.app = self.app, None
        if app is not None:
            await stop_application(app)

    async def restart_bot(self) -> Application:  # type: ignore[type-arg]
        await self.stop_bot()
        return await self.start_bot()

    @staticmethod
    def services_of(app: Application) -> Services:  # type: ignore[type-arg]
        return app.bot_data["services"]  # type: ignore[no-any-return]

    @property
    def services(self) -> Services:
        assert self.app is not None
        return self.services_of(self.app)

    # -------------------------------------------------------------- updates in, handled

    async def _mark_handled(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._mark(update.update_id)

    def _mark(self, update_id_done: int) -> None:
        self.handled.add(update_id_done)
        for update_id, waiter in list(self._waiters):
            if update_id in self.handled and not waiter.done():
                waiter.set_result(None)

    async def handled_by_bot(self, update_id: int, timeout: float = TIMEOUT) -> None:
        if update_id in self.handled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (update_id, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"the bot did not finish update {update_id} within {timeout} s") from None
        finally:
            self._waiters.remove(entry)

    def _last_update_id(self) -> int:
        return int(self.server.pending_updates()[-1]["update_id"])

    async def inject(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a server inject_* method and wait until the bot has handled every update it produced."""
        before = {u["update_id"] for u in self.server.pending_updates()}
        result = fn(*args, **kwargs)
        new = [u["update_id"] for u in self.server.pending_updates() if u["update_id"] not in before]
        for update_id in new:
            await self.handled_by_bot(update_id)
        return result

    async def write(self, chat_id: int, user: int | dict[str, Any], text: str) -> dict[str, Any]:
        """User `user` writes `text` in chat `chat_id`; returns once the bot has answered (or ignored it)."""
        return await self.inject(self.server.inject_message, chat_id, user, text)  # type: ignore[no-any-return]

    def inject_many(self, chat_id: int, user: int, texts: Iterable[str]) -> list[int]:
        """Several messages injected at once, without waiting: their update ids, for `all_handled`."""
        ids = []
        for text_ in texts:
            self.server.inject_message(chat_id, user, text_)
            ids.append(self._last_update_id())  # no await in between: the bot cannot have fetched it
        return ids

    async def all_handled(self, update_ids: Iterable[int], timeout: float = TIMEOUT) -> None:
        """Until the bot has finished every one of `update_ids` (answered, ignored or dropped)."""
        for update_id in update_ids:
            await self.handled_by_bot(update_id, timeout)

    async def write_many(self, chat_id: int, user: int, texts: list[str]) -> None:
        """Several messages injected at once (the bot handles them concurrently); waits for all."""
        await self.all_handled(self.inject_many(chat_id, user, texts))

    async def press(self, chat_id: int, user: int, message_id: int, data: str) -> str:
        """User taps an inline button; returns the callback query id."""
        return await self.inject(self.server.inject_callback, chat_id, user, message_id, data)  # type: ignore[no-any-return]

    async def inline(self, user: int, query: str) -> str:
        return await self.inject(self.server.inject_inline_query, user, query)  # type: ignore[no-any-return]

    # -------------------------------------------------------------- what the bot did

    def bot_messages(self, chat_id: int) -> list[StoredMessage]:
        return self.server.sent_messages(chat_id)

    def photos(self, chat_id: int) -> list[StoredMessage]:
        return [m for m in self.server.sent_messages(chat_id) if m.photo]

    def texts(self, chat_id: int) -> list[str]:
        """The bot's text messages in a chat as sent (HTML markup included)."""
        return [m.text for m in self.server.sent_messages(chat_id) if m.text is not None]

    def ok_calls(self, method: str, chat_id: int | None = None) -> list[ApiCall]:
        return [c for c in self.server.calls_for(method, chat_id) if c.ok]

    async def until(self, condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
        await until(condition, timeout)


async def until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Until `condition()` is true (checked every 10 ms), at most `timeout` seconds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def make_settings(**overrides: Any) -> Settings:
    """Test settings: the test token, every subscriber due at once (push time 00:00), no .env."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "database_url": "sqlite:///unused-by-the-harness.db",
        "push_time": "00:00",
        "default_language": "zh",
        "commands_per_minute": 100,
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)
