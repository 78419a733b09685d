"""Try the bot without a token: the real bot against the local stand-in Bot API, and a chat page.

``marginbot run`` without ``TELEGRAM_BOT_TOKEN`` calls :func:`run_sandbox`: it seeds the demo data
when the database is empty, starts :class:`~sandbox.botapi.BotApiServer` on 127.0.0.1 with a
freshly generated token, builds the real application (``bot.app.build_application``, jobs
scheduled) pointed at it, and serves a chat page on the same port. The page is only a window: what
it shows comes from the stand-in's record of the chats; a message typed on the page is injected as
a Telegram update, a tapped button as a callback query, and every answer is the bot's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import sys
import threading
import webbrowser
from dataclasses import dataclass, field
from datetime import time

from pydantic import SecretStr
from sqlalchemy import Engine, delete
from telegram.ext import Application

from bot.app import build_application, build_services, start_application, stop_application
from bot.services import Services
from marginbot.settings import Settings
from sandbox.botapi import BotApiServer
from sandbox.page import (
    BOT_NAME,
    BOT_USERNAME,
    GROUP_ID,
    HOST,
    STORAGE_CHANNEL_ID,
    YOU_ID,
    ChatPage,
)
from storage import models
from storage.chats import local_chat_ids
from storage.database import session_scope

log = logging.getLogger(__name__)

# A newcomer tries every report within a minute or two: the default allowance (12) would drop some.
# Groups keep Telegram's own 20 messages a minute (bot.handlers.flood), a sandbox or not.
SANDBOX_COMMANDS_PER_MINUTE = 60



def _generate_token() -> str:
    """A fresh token shaped like BotFather's: the page never sees it, so only the bot can call the API."""
    return f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(32)}"


class _MemoryFileIds(Services):
    """Chart file_ids kept in memory only.

    The stand-in's file_ids mean nothing to Telegram and die with the stand-in, so they must not
    reach the database's chart cache (a real run on the same database would send them), and ids
    stored by a real run must not be sent to the stand-in.
    """

    async def file_id(self, key: str) -> str | None:
        return self.file_ids.get(key)

    async def remember_file_id(self, key: str, file_id: str) -> None:
        self.file_ids[key] = file_id


def _sandbox_services(settings: Settings, engine: Engine) -> Services:
    base = build_services(settings, engine)
    return _MemoryFileIds(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})


def forget_local_deliveries(engine: Engine) -> int:
    """Delete the deliveries of the sandbox's own chats (ids from LOCAL_CHAT_ID_FLOOR on); returns rows.

    The stand-in's chats live in memory and start empty, but the database remembers what an earlier
    run pushed to them: the demo's one trade date would never be pushed to them again. Real chats'
    deliveries are left alone.
    """
    with session_scope(engine) as session:
        result = session.execute(delete(models.Delivery).where(local_chat_ids(models.Delivery.chat_id)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass
class Sandbox:
    """A running sandbox: the stand-in server (which also serves the page) and the real bot."""

    url: str
    server: BotApiServer = field(repr=False)
    application: Application = field(repr=False)  # type: ignore[type-arg]  # its repr shows the token
    page: ChatPage = field(repr=False)

    async def stop(self) -> None:
        """Stop polling and the bot's jobs, then the server (and with it the page's long polls)."""
        try:
            await stop_application(self.application)
        except Exception:
            log.exception("sandbox: error while stopping the bot")
        finally:
            await self.server.stop()


def sandbox_settings(settings: Settings, token: str) -> tuple[Settings, Settings]:
    """Settings of the sandboxed bot: (for build_application, for the bot's services).

    The application gets the generated token. The services keep ``telegram_bot_token`` unset, as
    the user configured it: with no token the daily job never tries to ingest from the exchanges
    (demo data, offline). "You" is the admin chat (error reports land in your private chat), charts
    for inline results are uploaded to a hidden channel, the default push time is 00:00 (what
    /settings shows; "Run daily push now" ignores push times anyway), and a chat may ask for
    :data:`SANDBOX_COMMANDS_PER_MINUTE` reports a minute (more when configured higher).
    """
    common = {
        "admin_chat_ids": [YOU_ID],
        "storage_chat_id": STORAGE_CHANNEL_ID,
        "push_time": time(0, 0),
        "commands_per_minute": max(settings.commands_per_minute, SANDBOX_COMMANDS_PER_MINUTE),
    }
    for_services = settings.model_copy(update={**common, "telegram_bot_token": None})
    for_application = settings.model_copy(update={**common, "telegram_bot_token": SecretStr(token)})
    return for_application, for_services


async def start_sandbox(
    settings: Settings, engine: Engine, port: int | None = None, *, seed: bool = True
) -> Sandbox:
    """Start the stand-in and the page, seed the demo data if the database is empty, start the real bot.

    Runs on the caller's event loop; ``port`` defaults to ``settings.sandbox_port`` (0: a free
    port). Raises OSError when the port is taken, before any seeding (which takes a while).
    """
    token = _generate_token()
    server = BotApiServer(
        token,
        host=HOST,
        port=settings.sandbox_port if port is None else port,
        bot_username=BOT_USERNAME,
        bot_first_name=BOT_NAME,
    )
    page = ChatPage(server, settings.default_language)
    page.install()
    await server.start()  # binds the port first: a taken port is told at once
    try:
        if seed:
            from storage.demo import ensure_seeded

            if await asyncio.to_thread(ensure_seeded, engine):
                log.info("sandbox: demo data seeded")
        # The stand-in's chats start empty on every run: what an earlier run pushed to them is
        # forgotten, or the demo's trade date could never be pushed again.
        forgotten = await asyncio.to_thread(forget_local_deliveries, engine)
        if forgotten:
            log.info("sandbox: forgot %d deliveries of an earlier run's chats", forgotten)
        for_application, for_services = sandbox_settings(settings, token)
        application = build_application(
            for_application,
            engine,
            base_url=server.base_url,
            base_file_url=server.base_file_url,
            schedule=True,
            services=_sandbox_services(for_services, engine),
        )
        # The push reaches the page's chats only (never a real subscriber stored in the same
        # database), and only when the page asks for it: the scheduled job renders, never pushes.
        application.bot_data.update(local_only=True, auto_push=False)
        page.application = application
        await start_application(application)
    except BaseException:
        await server.stop()
        raise
    # The bot is added to the group by "You", as in Telegram; the bot records the chat.
    server.inject_my_chat_member(GROUP_ID, "left", "member", from_user=YOU_ID)
    return Sandbox(f"http://{HOST}:{server.port}/", server, application, page)


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser(url: str) -> None:
    try:
        webbrowser.open(url)
    except Exception as exc:  # never fatal: the URL is printed
        log.info("sandbox: could not open a browser: %s", exc)


async def _serve(settings: Settings, engine: Engine) -> int:
    from storage.database import is_empty

    if await asyncio.to_thread(is_empty, engine):
        print("No margin data yet: generating the demo data set (takes a little while) ...", flush=True)
    try:
        sandbox = await start_sandbox(settings, engine)
    except OSError as exc:
        print(
            f"marginbot sandbox: cannot listen on {HOST}:{settings.sandbox_port} ({exc.strerror or exc}); "
            "set SANDBOX_PORT to a free port",
            file=sys.stderr,
            flush=True,
        )
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    print(
        f"marginbot sandbox: the real bot against a local stand-in of Telegram, with demo data.\n"
        f"  Chat page: {sandbox.url}\n  Press Ctrl-C to stop.",
        flush=True,
    )
    if settings.sandbox_open_browser and _has_display():
        # A daemon thread: a browser launcher that blocks must delay neither serving nor exiting.
        threading.Thread(target=_open_browser, args=(sandbox.url,), name="open-browser", daemon=True).start()
    try:
        await stop.wait()
    finally:
        for sig in handled:  # a second Ctrl-C interrupts a stop that hangs
            loop.remove_signal_handler(sig)
        print("marginbot sandbox: stopping ...", flush=True)
        await sandbox.stop()
    print("marginbot sandbox: stopped.", flush=True)
    return 0


def run_sandbox(settings: Settings, engine: Engine) -> int:
    """``marginbot run`` without a token: serve until Ctrl-C or SIGTERM; the exit status."""
    try:
        return asyncio.run(_serve(settings, engine))
    except KeyboardInterrupt:  # where signal handlers cannot be installed (Windows)
        return 0
