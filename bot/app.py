"""Wiring: build the python-telegram-bot Application, register handlers, lifecycle in post_init."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from telegram import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats, Update
from telegram.constants import ParseMode
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults

from bot.arguments import REPORT_COMMANDS
from bot.handlers import admin, chat, errors, flood, inline, membership, reports, watch
from bot.handlers.watch import WATCH_COMMANDS
from bot.pipeline import pipeline_tick
from bot.push import stop_pushes
from bot.services import Services, Throttle
from marginbot.logging_setup import RedactTokens
from marginbot.settings import TIMEZONE, Settings
from reports.i18n import LANGUAGES, pick_language, t
from reports.service import ReportService

log = logging.getLogger(__name__)
# The menu: every command a user may send but /start (Telegram's own button sends it); admins' aside.
PRIVATE_COMMANDS = (*REPORT_COMMANDS, *WATCH_COMMANDS, "subscribe", "unsubscribe", "settings", "help")
# The same menu in groups: /settings there sets the group's language and push time (admins only).
GROUP_COMMANDS = PRIVATE_COMMANDS


def commands(lang: str, names: tuple[str, ...]) -> list[BotCommand]:
    return [BotCommand(name, t(lang, f"commands.{name}")) for name in names]


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    """Command menus per scope (private, groups) and language. The menu without a language code is
    what users of every other language see: in theirs, as they are answered (pick_language: any
    language but Chinese reads English)."""
    bot = application.bot
    others = pick_language("other")
    for scope, names in ((BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS),
                         (BotCommandScopeAllGroupChats(), GROUP_COMMANDS)):
        await bot.set_my_commands(commands(others, names), scope=scope)
        for lang in LANGUAGES:
            await bot.set_my_commands(commands(lang, names), scope=scope, language_code=lang)


class MarginApplication(Application):  # type: ignore[type-arg]
    """PTB's Application, stopping the daily push first: Application.stop waits for running jobs,
    and a push of thousands of chats runs for minutes. Stopped, its sends in flight finish and are
    recorded and its unstarted claims are handed back, so the next start resumes it."""

    async def start(self) -> None:
        self.bot_data["stopping"] = False
        await super().start()

    async def stop(self) -> None:
        # Set first: a tick that is planning a push right now must not start it (the job queue
        # stops after this, and would wait for that whole push).
        self.bot_data["stopping"] = True
        await stop_pushes(self)
        await super().stop()


async def post_init(application: Application) -> None:  # type: ignore[type-arg]
    services: Services = application.bot_data["services"]
    me = await application.bot.get_me()
    services.bot_username, services.bot_id = me.username or "", me.id
    if services.storage_chat_id is None:
        settings = services.settings
        services.storage_chat_id = settings.storage_chat_id or (
            settings.admin_chat_ids[0] if settings.admin_chat_ids else None)
    if services.storage_chat_id is None:
        log.warning("no STORAGE_CHAT_ID or ADMIN_CHAT_IDS: inline mode offers only charts someone "
                    "already asked for in a chat (nowhere to upload the others)")
    if not application.bot_data.get("push_only"):
        await register_commands(application)  # the polling worker's: a push worker answers no command
    if application.job_queue is not None and application.bot_data.get("schedule", True):
        # Every minute: cheap when there is nothing to do, and a restart resumes within a minute.
        application.job_queue.run_repeating(pipeline_tick, interval=60, first=5, name="daily-pipeline")
    log.info("bot @%s ready%s", services.bot_username,
             " (push worker: no polling, no ingest)" if application.bot_data.get("push_only") else "")


async def post_shutdown(application: Application) -> None:  # type: ignore[type-arg]
    services: Services = application.bot_data["services"]
    for upload in list(services.uploads):  # inline mode's uploads for the next query: not needed now
        upload.cancel()
    services.executor.shutdown(wait=False, cancel_futures=True)
    services.background.shutdown(wait=False, cancel_futures=True)


def build_services(settings: Settings, engine: Engine) -> Services:
    return Services(
        settings=settings,
        engine=engine,
        reports=ReportService(engine),
        executor=ThreadPoolExecutor(max_workers=settings.render_workers + 2, thread_name_prefix="marginbot"),
        throttle=Throttle(settings.commands_per_minute),
        storage_chat_id=settings.storage_chat_id,
    )


def build_application(
    settings: Settings, engine: Engine, *, base_url: str | None = None, base_file_url: str | None = None,
    schedule: bool = True, rate_limit: bool = True, services: Services | None = None, push_only: bool = False,
    group_time_period: float = 60.0,
) -> Application:  # type: ignore[type-arg]
    """The bot application; `base_url` points it at a self-hosted Bot API or the local stand-in.

    `group_time_period`: the seconds over which the rate limiter lets a group have its 20 messages
    (Telegram's limit is a minute); tests shorten it where that limit is not what they check.

    `push_only` builds a push worker: no updater (one bot token has one poller: Telegram answers a
    second getUpdates with 409 Conflict), no command menus, no ingest; its pipeline only pushes, its
    claims shared with the other workers through the database (storage.deliveries)."""
    if settings.telegram_bot_token is None:
        raise ValueError("build_application needs a token (the sandbox passes its own)")
    # PTB's bot logs "Set Bot API URL: <base_url><token>" at DEBUG: redact it where the record is made,
    # so that no handler (pytest's caplog, a file or error-tracker handler) ever sees the token.
    for name in ("telegram.Bot", "telegram.ext.ExtBot"):
        bot_logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in bot_logger.filters):
            bot_logger.addFilter(RedactTokens())
    builder = (
        ApplicationBuilder()
        .application_class(MarginApplication)
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(base_url or settings.telegram_base_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=TIMEZONE))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .concurrent_updates(True)
        # httpcore's pool costs grow with its size; the push keeps SENDERS requests in flight.
        .connection_pool_size(32)
    )
    if base_file_url:
        builder = builder.base_file_url(base_file_url)
    if push_only:
        builder = builder.updater(None)
    if rate_limit:
        # Global and per-group limits; 429s are retried after their retry_after.
        builder = builder.rate_limiter(AIORateLimiter(overall_max_rate=settings.push_rate, overall_time_period=1,
                                                      group_max_rate=20, group_time_period=group_time_period,
                                                      max_retries=3))
    application = builder.build()
    application.bot_data["services"] = services or build_services(settings, engine)
    application.bot_data["schedule"] = schedule
    application.bot_data["push_only"] = push_only
    for handler in flood.handlers():  # before any other: a flooding chat's updates stop here
        application.add_handler(handler, group=-1)
    for handler in (*reports.handlers(), *chat.handlers(), *chat.channel_handlers(), *watch.handlers(),
                    *admin.handlers(), *inline.handlers(), *membership.handlers(), *chat.last_handlers()):
        application.add_handler(handler)
    for handler in chat.fallback_handlers():
        application.add_handler(handler, group=1)
    application.add_error_handler(errors.on_error)
    return application


# Edited messages too: a command corrected in place (/stokc -> /stock 600519) is answered as sent.
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY,
                   Update.INLINE_QUERY, Update.MY_CHAT_MEMBER]


async def _start(application: Application) -> None:  # type: ignore[type-arg]
    """What run_polling does before it polls: initialize, post_init, start (the job queue too)."""
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()


async def start_application(application: Application) -> None:  # type: ignore[type-arg]
    """Start polling outside run_polling (sandbox, tests, benchmarks): initialize, post_init, poll."""
    await _start(application)
    assert application.updater is not None
    await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=0.0, timeout=10)


async def serve_push_worker(application: Application, stop: asyncio.Event) -> None:  # type: ignore[type-arg]
    """Run a push worker (build_application(push_only=True)) until `stop` is set: its job queue
    pushes; nothing polls."""
    await _start(application)
    try:
        await stop.wait()
    finally:
        await stop_application(application)


def run_push_worker(application: Application) -> None:  # type: ignore[type-arg]
    """`marginbot run --push-only`: serve_push_worker until SIGINT or SIGTERM, which stop the push
    as a polling bot's stop does (the sends in flight finish, the rest is handed back)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_push_worker(application, stop)

    asyncio.run(main())


async def stop_application(application: Application) -> None:  # type: ignore[type-arg]
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)
    await application.shutdown()
