"""`marginbot run --push-only`: a worker that only sends the daily push, beside the bot that polls and
ingests, on the same database (their claims are row locks: storage.deliveries).

The real bot and a real push worker (bot.app.build_application(push_only=True), served as the command
serves it) against the stand-in Bot API, with the fixtures and helpers of tests.bot_fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
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
from tests.bot_fixtures import ADMIN_CHAT, held_push, live_clock, running, subscribe_directly, tick
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import BOT_USERNAME, DATA_DATE, GROUP_TIME_PERIOD, TOKEN, BotHarness, make_settings, until


@contextlib.asynccontextmanager
async def push_worker(server: BotApiServer, engine: Engine, reports: ReportService,
                      **settings: Any) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """A push worker served as `marginbot run --push-only` serves it, until the block ends."""
    app = build_application(make_settings(**settings), engine, base_url=server.base_url,
                            base_file_url=server.base_file_url, schedule=False, push_only=True,
                            group_time_period=GROUP_TIME_PERIOD)
    BotHarness.services_of(app).reports = reports  # the demo's rendered reports, shared between tests
    stop = asyncio.Event()
    served = asyncio.create_task(serve_push_worker(app, stop))
    try:
        await until(lambda: app.running or served.done())
        if served.done():
            served.result()  # its start failed: raise that
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(served, 10)


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
            await tick(app)
            assert {cid: len(server.calls_for("sendPhoto", cid)) for cid in ids} == dict.fromkeys(ids, 1)
            captions = {cid: server.calls_for("sendPhoto", cid)[0].params["caption"] for cid in ids}
            assert captions[4101].startswith("<b>两融雷达 · 2026-11-20</b>")
            assert captions[4103].startswith("<b>Margin Radar · 2026-11-20</b>")
            assert deliveries.delivery_counts(demo_db, DATA_DATE) == {DeliveryStatus.SENT: 3}

            clock["now"] = datetime(2026, 11, 24, 10, 45, tzinfo=TIMEZONE)  # Monday's data late
            await tick(app)
        assert server.calls_for("sendMessage", ADMIN_CHAT) == []
        assert server.calls_for("getUpdates") == [] and server.calls_for("setMyCommands") == []
        # it knows which bot it sends for (asked by PTB's initialize, then by post_init)
        assert [c.ok for c in server.calls_for("getMe")] == [True, True]
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
    async with running(engine, shared_reports, push_rate=1000) as h:  # 100 photos: the rate is not under test
        await held_push(h, ids)
        main = asyncio.create_task(push_now(h.app, DATA_DATE))  # type: ignore[arg-type]
        await h.until(lambda: h.server.held("sendPhoto") == SENDERS)
        async with push_worker(h.server, engine, shared_reports, push_rate=1000) as worker:
            second = asyncio.create_task(push_now(worker, DATA_DATE, plan=False))
            await h.until(lambda: h.server.held("sendPhoto") == 2 * SENDERS)
            h.server.release_answers("sendPhoto")
            first_result, second_result = await asyncio.wait_for(asyncio.gather(main, second), 30)
        assert first_result is not None and second_result is not None
        assert min(first_result.sent, second_result.sent) >= SENDERS  # each answered for its senders held busy
        assert first_result.sent + second_result.sent == len(ids)
        assert {cid: len(h.server.calls_for("sendPhoto", cid)) for cid in ids} == dict.fromkeys(ids, 1)
        assert deliveries.delivery_counts(engine, DATA_DATE) == {DeliveryStatus.SENT: len(ids)}
        assert h.server.uploads == 2  # the two summaries, before the push: the worker found their ids
