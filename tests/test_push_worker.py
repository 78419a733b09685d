"""`marginbot run --push-only`: a worker that only sends the daily push, beside the bot that polls and
ingests, on the same database (their claims are row locks: storage.deliveries).

The real bot and a real push worker (bot.app.build_application(push_only=True), served as the command
serves it) against the stand-in Bot API, with the fixtures and helpers of tests.test_bot_e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine
from telegram.ext import Application

import bot.pipeline
import bot.push
from bot.app import build_application, serve_push_worker
from bot.push import SENDERS, push_now
from marginbot.settings import TIMEZONE
from reports.service import ReportService
from sandbox.botapi import BotApiServer
from storage import deliveries
from storage.models import DeliveryStatus
from tests import test_bot_e2e as e2e
from tests.bot_harness import BOT_USERNAME, DATA_DATE, TOKEN, BotHarness, make_settings
from tests.test_bot_e2e import ADMIN_CHAT, live_clock, running, subscribe_directly, upload_summaries

# tests.test_bot_e2e's fixtures, under the names pytest finds them by (debug_logs is autouse: the
# product's logging at DEBUG, and no record may carry the token)
template_db, shared_reports, demo_db, debug_logs = e2e.template_db, e2e.shared_reports, e2e.demo_db, e2e.debug_logs


@contextlib.asynccontextmanager
async def push_worker(server: BotApiServer, engine: Engine, reports: ReportService,
                      **settings: Any) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """A push worker served as `marginbot run --push-only` serves it, until the block ends."""
    app = build_application(make_settings(**settings), engine, base_url=server.base_url,
                            base_file_url=server.base_file_url, schedule=False, push_only=True)
    BotHarness.services_of(app).reports = reports  # the demo's rendered reports, shared between tests
    stop = asyncio.Event()
    served = asyncio.create_task(serve_push_worker(app, stop))
    try:
        await asyncio.wait_for(_until(lambda: app.running or served.done()), 10)
        if served.done():
            served.result()  # its start failed: raise that
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(served, 10)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def tick_context(app: Application) -> SimpleNamespace:  # type: ignore[type-arg]
    return SimpleNamespace(application=app, bot_data=app.bot_data, bot=app.bot)


async def test_a_push_worker_pushes_and_neither_polls_nor_ingests(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its pipeline sends Friday's summary to every subscriber on Monday morning; it never asks for
    updates or sets the command menus (the polling bot's), and on Tuesday, with Monday's data
    missing past the cut-off, it neither ingests nor tells the admins (the polling bot does both)."""
    import storage.ingest

    def no_ingest(*args: object, **kwargs: object) -> None:
        raise AssertionError("a push worker ingested")

    monkeypatch.setattr(storage.ingest, "run_ingest", no_ingest)
    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 23, 9, 0, tzinfo=TIMEZONE))
    ids = [4101, 4102, 4103]
    subscribe_directly(demo_db, ids, lambda cid: "en" if cid == 4103 else "zh")
    server = BotApiServer(TOKEN, bot_username=BOT_USERNAME)
    await server.start()
    try:
        for cid in (*ids, ADMIN_CHAT):
            server.add_chat(cid)
        async with push_worker(server, demo_db, shared_reports, admin_chat_ids=[ADMIN_CHAT]) as app:
            assert app.updater is None
            await bot.pipeline.pipeline_tick(tick_context(app))  # type: ignore[arg-type]
            assert {cid: len(server.calls_for("sendPhoto", cid)) for cid in ids} == dict.fromkeys(ids, 1)
            captions = {cid: server.calls_for("sendPhoto", cid)[0].params["caption"] for cid in ids}
            assert captions[4101].startswith("<b>两融雷达 · 2026-11-20</b>")
            assert captions[4103].startswith("<b>Margin Radar · 2026-11-20</b>")
            assert deliveries.delivery_counts(demo_db, DATA_DATE) == {DeliveryStatus.SENT: 3}

            clock["now"] = datetime(2026, 11, 24, 10, 45, tzinfo=TIMEZONE)  # Monday's data late
            await bot.pipeline.pipeline_tick(tick_context(app))  # type: ignore[arg-type]
        assert server.calls_for("sendMessage", ADMIN_CHAT) == []
        assert server.calls_for("getUpdates") == [] and server.calls_for("setMyCommands") == []
        assert server.calls_for("getMe")  # it knows which bot it sends for
    finally:
        await server.stop()


async def test_the_bot_and_a_push_worker_share_one_push(engine: Engine, shared_reports: ReportService,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """100 chats, pushed at once by the polling bot and a push worker on one database. The stand-in
    holds the photos' answers until both have every sender busy: each has claimed its own chats
    (claims of 10, so neither can take them all), and once the answers come every chat has the
    summary exactly once, the two workers' counts adding up to 100, every send by the file_id
    uploaded before (none uploaded again)."""
    monkeypatch.setattr(bot.push, "CLAIM_BATCH", 10)
    ids = list(range(4201, 4301))
    subscribe_directly(engine, ids, lambda cid: "en" if cid % 4 == 0 else "zh")
    async with running(engine, shared_reports, push_rate=500) as h:
        for cid in ids:
            h.server.add_chat(cid)
        await upload_summaries(h)
        h.server.hold_answers("sendPhoto")
        main = asyncio.create_task(push_now(h.app, DATA_DATE))  # type: ignore[arg-type]
        await h.until(lambda: h.server.held("sendPhoto") == SENDERS)
        async with push_worker(h.server, engine, shared_reports, push_rate=500) as worker:
            second = asyncio.create_task(push_now(worker, DATA_DATE, plan=False))
            await h.until(lambda: h.server.held("sendPhoto") == 2 * SENDERS)
            h.server.release_answers("sendPhoto")
            first_result, second_result = await asyncio.wait_for(asyncio.gather(main, second), 30)
        assert first_result is not None and second_result is not None
        assert first_result.sent > 0 and second_result.sent > 0
        assert first_result.sent + second_result.sent == len(ids)
        assert {cid: len(h.server.calls_for("sendPhoto", cid)) for cid in ids} == dict.fromkeys(ids, 1)
        assert deliveries.delivery_counts(engine, DATA_DATE) == {DeliveryStatus.SENT: len(ids)}
        assert h.server.uploads == 2  # the two summaries, before the push: the worker found their ids
