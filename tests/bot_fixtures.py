"""Fixtures and helpers shared by the end-to-end bot tests (test_bot_e2e, test_bot_edges,
test_pipeline_edges, test_push_worker): the people and chats of the demo, the seeded database,
the session's rendered reports, the product's logging checked for the token, and recorded sleeps.

A test module imports the fixtures under the names pytest finds them by (`debug_logs` is autouse):

    from tests.bot_fixtures import debug_logs as debug_logs
    from tests.bot_fixtures import demo_db as demo_db

Each module importing a session-scoped fixture gets its own instance of it, so what the session
shares (the seeded file, the report cache) is kept outside them: tests.demo_db for the file, the
pytest config's stash for the ReportService.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from telegram.ext import Application

from marginbot.logging_setup import setup_logging
from reports.gallery import sample_stock
from reports.service import RenderedReport, ReportService
from storage import chats, models
from storage.database import make_engine, session_scope
from tests.bot_harness import DATA_DATE, SECRET, BotHarness, RecordAll, copy_database, leaks
from tests.demo_db import demo_db_file

ZH_USER = 1001  # Telegram language_code zh-hans
EN_USER = 1002  # language_code en
MEMBER = 1003
ADMIN = 1004
CREATOR = 1005
GROUP = -4001
ADMIN_CHAT = 7001  # settings.admin_chat_ids
STORAGE_CHAT = -1009001  # settings.storage_chat_id: where inline charts are uploaded once


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

_REPORTS = pytest.StashKey[ReportService]()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    return demo_db_file(tmp_path_factory, pytestconfig)  # seeded (or copied from the cache) once a session


@pytest.fixture(scope="session")
def shared_reports(template_db: Path, pytestconfig: pytest.Config) -> ReportService:
    """One report cache for the session and every module, over the (read-only) template: every
    copy holds the same data, so each report is rendered once."""
    stash = pytestconfig.stash
    if _REPORTS not in stash:
        engine = make_engine(f"sqlite:///{template_db}")
        stash[_REPORTS] = ReportService(engine)
        pytestconfig.add_cleanup(engine.dispose)
    return stash[_REPORTS]


@pytest.fixture(scope="session")
def stock_code(shared_reports: ReportService) -> str:
    code = sample_stock(shared_reports.engine)
    assert code is not None
    return code


@pytest.fixture
def demo_db(template_db: Path, tmp_path: Path) -> Iterator[Engine]:
    engine = copy_database(template_db, tmp_path / "bot.db")
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[RecordAll]:
    """The product's logging at DEBUG for the whole test; afterwards no record may carry the token.

    A record logged as the test ends must reach the recorder: it was capturing, at DEBUG, all along
    (the checks are not passed by a recorder that was taken off or a level that was raised)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in ("httpx", "httpcore")})
    setup_logging("DEBUG")
    recorder = RecordAll()
    root.handlers.insert(0, recorder)  # first: sees every record before any handler filter touches it
    caplog.set_level(logging.DEBUG)
    yield recorder
    logging.getLogger(__name__).debug("debug_logs: the test has ended")
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    assert recorder.records and recorder.records[-1].getMessage() == "debug_logs: the test has ended", (
        "logging was not captured")
    assert leaks(recorder.texts) == []
    assert [r for r in caplog.records if SECRET in r.getMessage()] == []
    assert SECRET not in caplog.text


# ------------------------------------------------------------------------------------------------
# The bot, its people, what it should say
# ------------------------------------------------------------------------------------------------


def running(engine: Engine, reports: ReportService, **settings: object) -> AbstractAsyncContextManager[BotHarness]:
    """BotHarness.running with the test admins and storage chat (settings and `group_time_period`)."""
    settings.setdefault("admin_chat_ids", [ADMIN_CHAT])
    settings.setdefault("storage_chat_id", STORAGE_CHAT)
    return BotHarness.running(engine, reports=reports, **settings)  # type: ignore[arg-type]


def add_people(h: BotHarness) -> None:
    s = h.server
    s.add_user(ZH_USER, "李雷", username="lilei", language_code="zh-hans")
    s.add_user(EN_USER, "Alice", username="alice", language_code="en")
    s.add_chat(ZH_USER)
    s.add_chat(EN_USER)
    s.add_user(MEMBER, "Member", language_code="zh-hans")
    s.add_user(ADMIN, "Admin", language_code="zh-hans")
    s.add_user(CREATOR, "Creator", language_code="zh-hans")
    s.add_chat(GROUP, "group", title="两融讨论", members=[MEMBER], admins=[ADMIN], creator=CREATOR)


def expected(reports: ReportService, kind: str, lang: str = "zh", **kw: object) -> RenderedReport:
    return reports.render(kind, lang=lang, chart=False, **kw)  # type: ignore[arg-type]


def buttons(markup: dict | None) -> list[tuple[str, str]]:
    assert markup is not None
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def stored_chat(engine: Engine, chat_id: int) -> models.Chat:
    chat = chats.get_chat(engine, chat_id)
    assert chat is not None, chat_id
    return chat


# ------------------------------------------------------------------------------------------------
# The daily push and the minute job
# ------------------------------------------------------------------------------------------------


def delivery_rows(engine: Engine, day: date = DATA_DATE) -> dict[int, models.Delivery]:
    with Session(engine) as session:
        rows = session.execute(select(models.Delivery).where(models.Delivery.trade_date == day)).scalars().all()
    return {row.chat_id: row for row in rows}


def subscribe_directly(engine: Engine, chat_ids: list[int], lang_of: Callable[[int], str] = lambda cid: "zh") -> None:
    for cid in chat_ids:
        chats.ensure_chat(engine, cid, "private" if cid > 0 else "group", f"chat {cid}", lang_of(cid))
        assert chats.set_subscribed(engine, cid, True)


def subscribed_with_ten_watches(engine: Engine, chat_id: int = EN_USER) -> list[str]:
    """`chat_id` subscribed (in English) and following the ten securities of the largest margin
    balance: their lines do not fit under the summary's caption and follow in a message of their own."""
    subscribe_directly(engine, [chat_id], lambda cid: "en")
    with engine.connect() as conn:
        codes = [r[0] for r in conn.execute(text(
            "SELECT code FROM stock_margin WHERE trade_date = :d AND is_fund = false ORDER BY rzye DESC LIMIT 10"),
            {"d": DATA_DATE})]
    for code in codes:
        assert chats.watch(engine, chat_id, code) == "added"
    return codes


async def held_push(h: BotHarness, chat_ids: list[int]) -> None:
    """The stand-in knows `chat_ids`, the day's summaries are uploaded (every send of a push goes by
    file_id) and the answers to sendPhoto are held: a push started now has every sender busy at once."""
    for cid in chat_ids:
        h.server.add_chat(cid)
    await upload_summaries(h)
    h.server.hold_answers("sendPhoto")


async def upload_summaries(h: BotHarness) -> None:
    """The day's summary charts uploaded (to the storage chat) before a push: every send of the push
    goes by file_id, none waits on another's upload, so all the senders are busy at once."""
    from bot.sending import upload_chart

    services = h.services
    for lang in ("zh", "en"):
        report = await services.run(services.reports.render, "summary", on=DATA_DATE, lang=lang)
        await upload_chart(h.app.bot, services, STORAGE_CHAT, report)  # type: ignore[union-attr]


async def tick(app: Application) -> None:  # type: ignore[type-arg]
    """One run of the minute job (bot.pipeline.pipeline_tick), with the context the job queue gives it."""
    import bot.pipeline

    await bot.pipeline.pipeline_tick(SimpleNamespace(application=app, bot_data=app.bot_data, bot=app.bot))  # type: ignore[arg-type]


def _clock_class(clock: dict[str, datetime]) -> type[datetime]:
    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return clock["now"] if tz is None else clock["now"].astimezone(tz)  # type: ignore[arg-type]

    return Clock


def live_clock(monkeypatch: pytest.MonkeyPatch, engine: Engine, start: datetime,
               calendar_ahead: bool = True) -> dict[str, datetime]:
    """The clock bot.pipeline and bot.push read, set by the test through the dict returned ("now");
    the demo data taken for real data (a live bot never pushes demo data), and (`calendar_ahead`) the
    stored calendar reaching the year's end, as the exchanges' does (one that ends before today has
    run out, and the pipeline fetches it again): the weekdays after `start`'s day, which the test
    may add itself."""
    import bot.pipeline
    import bot.push
    from storage.database import set_meta
    from storage.demo import open_weekdays

    clock = {"now": start}
    monkeypatch.setattr(bot.pipeline, "datetime", _clock_class(clock))
    monkeypatch.setattr(bot.push, "datetime", _clock_class(clock))
    with session_scope(engine) as session:
        set_meta(session, "demo", "false")
        if calendar_ahead:
            ahead = open_weekdays(start.date() + timedelta(days=1), date(start.year, 12, 31), lambda year: [])
            session.add_all(models.TradingDay(trade_date=day) for day in ahead)
    return clock


# ------------------------------------------------------------------------------------------------
# Waits recorded, not waited
# ------------------------------------------------------------------------------------------------


class Sleeps:
    """`asyncio` as one module sees it, its sleeps recorded instead of waited: each delay is kept in
    `delays` (and handed to `advance`: a test clock moves on by it) and the call returns at once.
    A delay of `real_from` seconds or more is slept for real (the push's lease heartbeat, every
    30 s: a test's push is over long before it beats)."""

    def __init__(self, advance: Callable[[float], None] | None = None, real_from: float = float("inf")) -> None:
        self.delays: list[float] = []
        self._advance, self._real_from = advance, real_from

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        if delay >= self._real_from:
            return await asyncio.sleep(delay, result)
        self.delays.append(delay)
        if self._advance is not None:
            self._advance(delay)
        await asyncio.sleep(0)  # still a point where other tasks run
        return result


def limiter_sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """The waits of PTB's AIORateLimiter after a 429 (retry_after + 0.1 s, up to max_retries times),
    recorded and not waited."""
    import telegram.ext._aioratelimiter as aioratelimiter

    sleeps = Sleeps()
    monkeypatch.setattr(aioratelimiter, "asyncio", sleeps)
    return sleeps


def push_sleeps(monkeypatch: pytest.MonkeyPatch, start: datetime | None = None) -> Sleeps:
    """The waits of bot.push (a 429 waited out, a retry's backoff), recorded and not waited. With
    `start`, the push's clock (bot.push and storage.deliveries read it) stands still at `start` and
    each wait moves it on by its delay: a retry falls due exactly when the push wakes for it."""
    import bot.push
    import storage.deliveries

    advance = None
    if start is not None:
        clock = {"now": start}
        monkeypatch.setattr(bot.push, "datetime", _clock_class(clock))
        monkeypatch.setattr(storage.deliveries, "_now", lambda: clock["now"].astimezone(UTC))

        def advance(delay: float) -> None:
            clock["now"] += timedelta(seconds=delay)

    sleeps = Sleeps(advance, real_from=storage.deliveries.LEASE.total_seconds() / 4)
    monkeypatch.setattr(bot.push, "asyncio", sleeps)
    return sleeps
