"""Edges of the daily pipeline and push: a stored calendar that has run out, planning again every
minute, a 429 on the lines after the chart, an admin notice nobody received, a language changed
between claim and send.

The end-to-end tests run the real bot against the stand-in Bot API (tests.bot_harness) on a copy of
the demo database, with the fixtures and helpers of tests.bot_fixtures; the storage tests run on
SQLite and PostgreSQL (the `engine` fixture of conftest).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from bot.push import push_now
from marginbot.settings import TIMEZONE
from reports.service import ReportService
from storage import chats, deliveries, models
from storage.database import session_scope
from storage.demo import open_weekdays
from storage.models import DeliveryStatus
from tests.bot_fixtures import (
    ADMIN_CHAT,
    EN_USER,
    ZH_USER,
    add_people,
    delivery_rows,
    expected,
    limiter_sleeps,
    live_clock,
    push_sleeps,
    running,
    subscribe_directly,
    subscribed_with_ten_watches,
    tick,
)
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import DATA_DATE, BotHarness

# PTB warns when it builds RetryAfter from an int retry_after (its own deprecation, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

TUESDAY = date(2026, 11, 24)  # the demo calendar ends on Friday 2026-11-20, two trading days before
MONDAY_LATE = ("⚠️ 2026-11-23 的两融数据截至 10:30 仍未齐全（缺：沪市汇总、深市汇总、北交所汇总、沪市明细、深市明细、"
               "北交所明细、行业汇总、沪市成交额、深市成交额），本次推送暂缓。")  # nothing of Monday's is in


def offline_ingest(monkeypatch: pytest.MonkeyPatch,
                   refresh: Callable[[Engine], None] | None = None) -> list[dict[str, Any]]:
    """storage.ingest.run_ingest replaced: records each call's keyword arguments and fetches nothing
    (`refresh`: what the run writes, e.g. the calendar fetched again); the list of calls is returned."""
    import storage.ingest

    calls: list[dict[str, Any]] = []

    def run_ingest(engine: Engine, settings: object, **kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        if refresh is not None:
            refresh(engine)
        return SimpleNamespace(summary=lambda: "offline: nothing fetched")

    monkeypatch.setattr(storage.ingest, "run_ingest", run_ingest)
    return calls


async def tick_at(h: BotHarness, clock: dict[str, datetime], day: date, hour: int, minute: int) -> None:
    clock["now"] = datetime(day.year, day.month, day.day, hour, minute, tzinfo=TIMEZONE)
    await tick(h.app)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# 1. The stored calendar has run out
# ------------------------------------------------------------------------------------------------


async def test_a_calendar_that_ran_out_is_fetched_again_and_the_admins_told_once(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The calendar ends on Friday and Friday's data are complete: on Tuesday morning the pipeline
    still runs its ingest (every ingest_retry_minutes), which is what refreshes the calendar; while
    the refresh fails, at the cut-off each admin is told once, in their language, that the calendar
    has run out, and no late-data warning goes out (whether anything is late is unknown)."""
    ingests = offline_ingest(monkeypatch)
    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 24, 8, 30, tzinfo=TIMEZONE), calendar_ahead=False)
    async with running(demo_db, shared_reports, admin_chat_ids=[ADMIN_CHAT, EN_USER]) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/start")  # the second admin reads English
        await tick_at(h, clock, TUESDAY, 8, 30)  # before ingest_start_time (08:45)
        assert ingests == []
        await tick_at(h, clock, TUESDAY, 9, 0)
        assert ingests == [{"progress": False, "lending": False}]
        assert h.texts(ADMIN_CHAT) == []  # before the cut-off (10:30)

        await tick_at(h, clock, TUESDAY, 10, 45)
        await tick_at(h, clock, TUESDAY, 10, 46)  # within ingest_retry_minutes of the last: no ingest
        assert len(ingests) == 2
        assert h.texts(ADMIN_CHAT) == [
            "⚠️ 存储的交易日历止于 2026-11-20，且未能更新：此后的交易日既不抓取也不推送。请检查交易日历数据源。"]
        assert h.texts(EN_USER)[-1] == (
            "⚠️ The stored trading calendar ends on 2026-11-20 and could not be refreshed: days after it are"
            " neither fetched nor pushed. Please check the calendar source.")
        assert [m for m in h.texts(EN_USER) if "Margin data for" in m] == []
        assert len(h.server.calls_for("sendMessage", ADMIN_CHAT)) == 1

        # the next day is another day: told again (once)
        await tick_at(h, clock, TUESDAY + timedelta(days=1), 10, 45)
        await tick_at(h, clock, TUESDAY + timedelta(days=1), 10, 50)
        assert len(ingests) == 3 and len(h.texts(ADMIN_CHAT)) == 2


async def test_an_ingest_that_refreshes_the_calendar_brings_the_next_day_back(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same morning, and the ingest fetches the calendar again: Monday is a trade date now, its data
    are missing, and at the cut-off the admins get the ordinary late-data warning, not the calendar's."""

    def refresh(engine: Engine) -> None:  # the calendar to the year's end, as upstream has it
        with session_scope(engine) as session:
            stored = set(session.execute(select(models.TradingDay.trade_date)).scalars())
            session.add_all(models.TradingDay(trade_date=day) for day in
                            open_weekdays(date(2026, 11, 23), date(2026, 12, 31), lambda year: []) if day not in stored)

    ingests = offline_ingest(monkeypatch, refresh)
    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 24, 9, 0, tzinfo=TIMEZONE), calendar_ahead=False)
    async with running(demo_db, shared_reports) as h:
        await tick_at(h, clock, TUESDAY, 9, 0)
        assert len(ingests) == 1
        await tick_at(h, clock, TUESDAY, 10, 45)
        assert len(ingests) == 2  # Monday's data are missing: fetched again
        assert h.texts(ADMIN_CHAT) == [MONDAY_LATE]
        assert chats.first_notice(demo_db, "calendar:2026-11-24") is True  # never claimed


# ------------------------------------------------------------------------------------------------
# 2. Planning every minute inserts only what is new
# ------------------------------------------------------------------------------------------------


def _serial_last_value(engine: Engine) -> int | None:
    """The last id the delivery table's sequence handed out (PostgreSQL; None on SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('delivery', 'id')::regclass)")).scalar()


def test_planning_again_inserts_nothing_and_uses_up_no_id(engine: Engine) -> None:
    day = date(2026, 11, 23)
    for chat_id in (11, 12, 13):
        chats.ensure_chat(engine, chat_id, "private", f"chat {chat_id}", "zh")
        chats.set_subscribed(engine, chat_id, True)
    assert deliveries.plan_deliveries(engine, day, time(10, 0), time(9, 0)) == 3
    with Session(engine) as session:
        ids = sorted(session.execute(select(models.Delivery.id)).scalars())
    sequence = _serial_last_value(engine)
    assert sequence in (None, ids[-1])

    assert deliveries.plan_deliveries(engine, day, time(10, 1), time(9, 0)) == 0
    assert deliveries.plan_deliveries(engine, day, time(10, 2), time(9, 0)) == 0
    assert _serial_last_value(engine) == sequence  # nothing inserted, nothing discarded
    assert deliveries.delivery_counts(engine, day) == {DeliveryStatus.PENDING: 3}

    # a chat subscribing later is planned, with the next id: the plans between used none up
    chats.ensure_chat(engine, 14, "private", "chat 14", "zh")
    chats.set_subscribed(engine, 14, True)
    assert deliveries.plan_deliveries(engine, day, time(10, 3), time(9, 0)) == 1
    with Session(engine) as session:
        new_id = session.execute(select(models.Delivery.id).where(models.Delivery.chat_id == 14)).scalar()
    assert new_id == ids[-1] + 1


# ------------------------------------------------------------------------------------------------
# 3. A 429 on the lines after the chart
# ------------------------------------------------------------------------------------------------


async def test_a_429_on_the_lines_after_the_chart_is_waited_out(demo_db: Engine, shared_reports: ReportService,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate limiter retries a 429 three times itself (retry_after + 0.1 s each); a fourth 429
    reaches the push, which waits retry_after and sends the lines again: they arrive once, the chart
    is not sent twice and the delivery is sent in one attempt."""
    codes = subscribed_with_ten_watches(demo_db)
    limiter, push = limiter_sleeps(monkeypatch), push_sleeps(monkeypatch)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.fail_next("sendMessage", 429, retry_after=1, chat_id=EN_USER, times=4)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed, result.retried) == (1, 0, 0)
        calls = h.server.calls_for("sendMessage", EN_USER)
        assert [c.status for c in calls] == [429, 429, 429, 429, 200]
        assert limiter.delays == [pytest.approx(1.1)] * 3
        assert push.delays == [1.0]  # the push waited retry_after
        assert len(h.server.calls_for("sendPhoto", EN_USER)) == 1
        chart, apart = h.bot_messages(EN_USER)
        assert chart.caption == expected(shared_reports, "summary", lang="en", on=DATA_DATE).caption
        assert apart.text == shared_reports.watch_text(codes, on=DATA_DATE, lang="en")
        row = delivery_rows(demo_db)[EN_USER]
        assert (row.status, row.attempts, row.message_id) == (DeliveryStatus.SENT, 1, chart.message_id)


async def test_lines_after_the_chart_are_given_up_on_a_long_429(demo_db: Engine, shared_reports: ReportService,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 asking for a longer wait than a delivery holds on for: the lines are given up (logged),
    the delivery stands as sent, the chart is not sent again."""
    import bot.push

    monkeypatch.setattr(bot.push, "APART_MAX_WAIT", 0.5)
    subscribed_with_ten_watches(demo_db)
    limiter, push = limiter_sleeps(monkeypatch), push_sleeps(monkeypatch)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.fail_next("sendMessage", 429, retry_after=1, chat_id=EN_USER, times=5)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed, result.retried) == (1, 0, 0)
        assert [c.status for c in h.server.calls_for("sendMessage", EN_USER)] == [429] * 4
        assert limiter.delays == [pytest.approx(1.1)] * 3 and push.delays == []  # given up, not waited for
        assert len(h.server.calls_for("sendPhoto", EN_USER)) == 1 and len(h.bot_messages(EN_USER)) == 1
        assert delivery_rows(demo_db)[EN_USER].status == DeliveryStatus.SENT
        await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert len(h.server.calls_for("sendPhoto", EN_USER)) == 1


# ------------------------------------------------------------------------------------------------
# 4. An admin notice nobody received is tried again
# ------------------------------------------------------------------------------------------------


def test_a_released_notice_can_be_given_again(engine: Engine) -> None:
    assert chats.first_notice(engine, "late:2026-11-23") is True
    chats.forget_notice(engine, "late:2026-11-23")
    assert chats.first_notice(engine, "late:2026-11-23") is True
    assert chats.first_notice(engine, "late:2026-11-23") is False
    chats.forget_notice(engine, "late:2026-11-24")  # never given: nothing to release
    assert chats.first_notice(engine, "late:2026-11-24") is True


async def test_a_late_warning_no_admin_received_goes_out_on_the_next_tick(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Monday's data are late at the cut-off and Telegram answers 502 to the warning: the next tick
    sends it, and the one after sends nothing."""
    offline_ingest(monkeypatch)
    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 24, 10, 45, tzinfo=TIMEZONE))
    with session_scope(demo_db) as session:
        # Monday traded (no data of it stored), and Tuesday, when its data are due, too
        session.add_all([models.TradingDay(trade_date=date(2026, 11, 23)), models.TradingDay(trade_date=TUESDAY)])
    async with running(demo_db, shared_reports) as h:
        h.server.fail_next("sendMessage", 502, description="Bad Gateway", chat_id=ADMIN_CHAT)
        await tick_at(h, clock, TUESDAY, 10, 45)
        assert [c.status for c in h.server.calls_for("sendMessage", ADMIN_CHAT)] == [502]
        assert h.texts(ADMIN_CHAT) == []
        await tick_at(h, clock, TUESDAY, 10, 46)
        assert h.texts(ADMIN_CHAT) == [MONDAY_LATE]
        await tick_at(h, clock, TUESDAY, 10, 47)
        assert [c.status for c in h.server.calls_for("sendMessage", ADMIN_CHAT)] == [502, 200]
        assert chats.first_notice(demo_db, "late:2026-11-23") is False


async def test_a_notice_no_admin_receives_is_tried_less_and_less_often(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only admin blocked the bot: the late warning is tried at the cut-off, then 1, 2 and 4
    minutes after each failure (not every minute); once the admin unblocks it, the next try
    delivers it and no other follows."""
    offline_ingest(monkeypatch)
    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 24, 10, 45, tzinfo=TIMEZONE))
    with session_scope(demo_db) as session:
        session.add_all([models.TradingDay(trade_date=date(2026, 11, 23)), models.TradingDay(trade_date=TUESDAY)])
    async with running(demo_db, shared_reports) as h:
        h.server.block_chat(ADMIN_CHAT)
        tried: list[str] = []
        for minutes in range(10 * 60 + 45, 11 * 60 + 3):
            hour, minute = divmod(minutes, 60)
            before = len(h.server.calls_for("sendMessage", ADMIN_CHAT))
            if (hour, minute) == (10, 56):
                h.server.unblock_chat(ADMIN_CHAT)
            await tick_at(h, clock, TUESDAY, hour, minute)
            if len(h.server.calls_for("sendMessage", ADMIN_CHAT)) > before:
                tried.append(f"{hour}:{minute:02d}")
        assert tried == ["10:45", "10:46", "10:48", "10:52", "11:00"]  # waits of 1, 2, 4, then 8 minutes
        assert [c.status for c in h.server.calls_for("sendMessage", ADMIN_CHAT)] == [403, 403, 403, 403, 200]
        assert h.texts(ADMIN_CHAT) == [MONDAY_LATE]
        assert chats.first_notice(demo_db, "late:2026-11-23") is False


# ------------------------------------------------------------------------------------------------
# 5. A language changed between claim and send
# ------------------------------------------------------------------------------------------------


def test_start_returns_the_chats_language_as_the_send_starts(engine: Engine) -> None:
    day = date(2026, 11, 23)
    chats.ensure_chat(engine, 21, "private", "chat 21", "zh")
    chats.set_subscribed(engine, 21, True)
    deliveries.plan_deliveries(engine, day, time(10, 0), time(9, 0))
    [claim] = deliveries.claim(engine, day, "w", 10)
    assert claim.language == "zh"
    chats.set_language(engine, 21, "en")
    assert deliveries.start(engine, claim.delivery_id, "w") == "en"
    assert deliveries.start(engine, claim.delivery_id, "w") is None  # started already: not this worker's to send


async def test_a_language_changed_after_the_claim_is_the_one_pushed(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat switches to English in /settings after the push claimed its delivery (in Chinese) and
    before the send: the summary goes out in English."""
    subscribe_directly(demo_db, [ZH_USER])
    claimed: list[str] = []
    claim = deliveries.claim

    def claim_then_switch(*args: Any, **kwargs: Any) -> list[deliveries.Claim]:
        claims = claim(*args, **kwargs)
        if claims:
            claimed.extend(c.language for c in claims)
            chats.set_language(demo_db, ZH_USER, "en")
        return claims

    monkeypatch.setattr(deliveries, "claim", claim_then_switch)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        assert claimed == ["zh"]
        [photo] = h.photos(ZH_USER)
        assert photo.caption == expected(shared_reports, "summary", lang="en", on=DATA_DATE).caption
        assert photo.caption.startswith("<b>Margin Radar · 2026-11-20</b>")  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------
# 6. A bot that begins to stop during its push starts nothing more
# ------------------------------------------------------------------------------------------------


async def test_a_tick_whose_push_met_the_stop_starts_no_background_work(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop begins while the tick pushes (push_now returns early): the tick must not then start
    valuing SSE's lending, a minute or two of work the stop would wait for. Without the stop it does."""
    import bot.pipeline
    import storage.history

    valued: list[date] = []

    def estimate(engine: Engine, settings: object, today: date) -> SimpleNamespace:
        valued.append(today)
        return SimpleNamespace(rows=0, message="")

    monkeypatch.setattr(storage.history, "estimate_sse_lending", estimate)
    live_clock(monkeypatch, demo_db, datetime(2026, 11, 23, 9, 0, tzinfo=TIMEZONE))
    async with running(demo_db, shared_reports) as h:
        assert h.app is not None

        async def push_met_the_stop(application: Any, *args: Any, **kwargs: Any) -> None:
            application.bot_data["stopping"] = True  # as MarginApplication.stop sets it
            return None

        monkeypatch.setattr(bot.pipeline, "push_now", push_met_the_stop)
        await tick(h.app)
        assert valued == [] and not h.app.bot_data.get("valuing_lending")

        h.app.bot_data["stopping"] = False
        monkeypatch.setattr(bot.pipeline, "push_now", lambda *args, **kwargs: _none())
        await tick(h.app)
        await h.until(lambda: not h.app.bot_data.get("valuing_lending"))  # type: ignore[union-attr]
        assert valued == [date(2026, 11, 23)]


async def _none() -> None:
    return None
