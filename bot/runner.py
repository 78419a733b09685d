"""`marginbot run`: the bot against Telegram with a token, or the local sandbox chat page without one."""

from __future__ import annotations

import logging

from marginbot.settings import Settings
from storage.database import make_engine, upgrade

log = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    if settings.telegram_bot_token is None:
        from sandbox.app import run_sandbox

        log.info("no TELEGRAM_BOT_TOKEN: starting the local sandbox (stand-in Bot API + chat page)")
        return run_sandbox(settings, engine)
    from storage.database import is_empty

    if is_empty(engine):
        log.warning("the database holds no margin data yet: the daily job will ingest it from the exchanges")
    from bot.app import ALLOWED_UPDATES, build_application

    application = build_application(settings, engine)
    application.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)
    return 0



