"""Logging that never shows the bot token: httpx logs request URLs, and the URL contains it."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"\d{5,12}:[A-Za-z0-9_-]{30,}")


class RedactTokens(logging.Filter):
    """Replace anything shaped like a bot token in a record with `<token>`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN.search(message):
            record.msg = _TOKEN.sub("<token>", message)
            record.args = None
        return True


def redact(text: str) -> str:
    """`text` with anything shaped like a bot token replaced by `<token>` (for what is stored or
    shown outside the logs too, such as a failed delivery's error)."""
    return _TOKEN.sub("<token>", text)


class RedactingFormatter(logging.Formatter):
    """Redact the whole formatted line: a traceback (`exc_info`) is added after the filters ran, and
    an exception's text may carry the request URL with the token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_factory_installed = False


def _install_record_factory() -> None:
    """Redact when a record is created, so every handler (and pytest's caplog) sees it clean."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)  # type: ignore[arg-type]
        RedactTokens().filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class _MigrationPreamble(logging.Filter):
    """Drop the two lines alembic logs at INFO each time it opens a migration context, whether or not
    anything is migrated ("Context impl ...", "Will assume ..."): every command checks the schema.
    What it migrates ("Running upgrade ...") still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


def setup_logging(level: str = "INFO") -> None:
    _install_record_factory()
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactTokens())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and the URL carries the token: keep it at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # The daily job runs every minute; apscheduler would log each run at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # alembic lists each plugin it sets up at INFO; the migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, _MigrationPreamble) for f in migration.filters):
        migration.addFilter(_MigrationPreamble())
