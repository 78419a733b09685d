"""`marginbot run`: the bot against Telegram with a token (`--push-only`: a push worker beside it),
or the local sandbox chat page without one."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from marginbot.settings import Settings
from storage.database import make_engine, upgrade

log = logging.getLogger(__name__)


def run(settings: Settings, push_only: bool = False) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    if push_only:
        return _run_push_worker(settings, engine)
    if settings.telegram_bot_token is None:
        from sandbox.app import run_sandbox

        log.info("no TELEGRAM_BOT_TOKEN: starting the local sandbox (stand-in Bot API + chat page)")
        return run_sandbox(settings, engine)
    from storage import chats
    from storage.database import is_empty

    # The local chat page's invented chats must never receive the real bot's daily push.
    if chats.forget_local(engine):
        log.info("removed the local sandbox's chats from the database")

    if is_empty(engine):
        from storage.demo import ensure_seeded

        # Something to show until the first real ingest succeeds (it replaces the demo data).
        ensure_seeded(engine)
        log.warning("no margin data stored yet: serving demo data until the daily job ingests real data")
    from bot.app import ALLOWED_UPDATES, build_application

    application = build_application(settings, engine)
    application.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)
    return 0


def _run_push_worker(settings: Settings, engine: Engine) -> int:
    """A worker that only pushes, beside the one `marginbot run` that polls and ingests, on the same
    PostgreSQL database: the daily push's deliveries are claimed with row locks, so the workers
    share it and no chat gets it twice. Each sends at its own PUSH_RATE."""
    assert settings.telegram_bot_token is not None  # the command line refuses a push worker without one
    from bot.app import build_application, run_push_worker

    run_push_worker(build_application(settings, engine, push_only=True))
    return 0
