"""`marginbot bench push`: the daily push to N subscribed chats through the stand-in Bot API server.

Prints wall time against the floor N / rate, uploads (must equal the distinct charts), duplicates
and missed chats, then the same after stopping the worker halfway and restarting it, and the reply
time of a command with the report cache cold and warm. The stand-in runs in its own thread and
event loop, so the bot's sends cross a real HTTP connection.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import time
from collections import Counter
from datetime import date
from datetime import time as dtime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.app import build_application, build_services, start_application, stop_application
from bot.push import Pusher
from marginbot.settings import load_settings
from sandbox.botapi import BotApiServer
from storage import deliveries, models
from storage.database import make_engine, session_scope, upgrade

log = logging.getLogger(__name__)
TOKEN = "424242424:BenchTokenForTheStandInServerOnly_0001"
CACHE_DIR = Path("var/bench")
SENDING_METHODS = ("sendPhoto", "sendMessage")
REPLY_TIMEOUT = 60.0  # seconds a /ratio may take before the benchmark gives up on it


def _demo_database() -> Path:
    """A demo database seeded once and reused between runs (seeding takes ~20 s)."""
    from storage.demo import seed_demo

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    template = CACHE_DIR / "push-demo.db"
    if not template.exists():
        engine = make_engine(f"sqlite:///{template}")
        upgrade(engine)
        seed_demo(engine)
        engine.dispose()
    target = CACHE_DIR / "push-run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, target)
    return target


WATCH_EVERY = 5  # every fifth chat follows WATCHED securities: their lines ride under its push
WATCHED = 5


def _subscribe(engine: Any, n_chats: int, group_every: int) -> list[int]:
    """N subscribed chats: every `group_every`-th a group (negative id); 30% English; every
    WATCH_EVERY-th follows WATCHED securities (a different mix per chat, from every security with
    detail: the push reads the lines of hundreds of securities, more than the figure cache holds)."""
    with Session(engine) as session:
        codes = session.execute(
            select(models.StockMargin.code).distinct().order_by(models.StockMargin.code)).scalars().all()
    ids = []
    rows = []
    follows = []
    for i in range(1, n_chats + 1):
        group = i % group_every == 0
        chat_id = -(1_000_000 + i) if group else 10_000_000 + i
        ids.append(chat_id)
        rows.append({"chat_id": chat_id, "chat_type": "group" if group else "private", "title": f"chat {i}",
                     "language": "en" if i % 10 < 3 else "zh", "subscribed": True, "active": True})
        if i % WATCH_EVERY == 0:
            follows += [{"chat_id": chat_id, "code": codes[(i // WATCH_EVERY + 101 * k) % len(codes)]}
                        for k in range(WATCHED)]
    with session_scope(engine) as session:
        session.execute(delete(models.Chat))
        session.execute(delete(models.Delivery))
        session.execute(delete(models.ChartUpload))
        session.execute(delete(models.Watch))
        upsert_chats(session, rows)
        session.add_all(models.Watch(**row) for row in follows)
    return ids


def upsert_chats(session: Session, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 1000):
        session.add_all([models.Chat(**row) for row in rows[start : start + 1000]])
        session.flush()


def _trade_dates(engine: Any) -> tuple[date, date]:
    with Session(engine) as session:
        days = session.execute(
            select(models.MarginSummary.trade_date).distinct().order_by(models.MarginSummary.trade_date.desc()).limit(2)
        ).scalars().all()
    return days[0], days[1]


def _tally(server: BotApiServer, ids: list[int], day_caption: str) -> tuple[int, int]:
    """(duplicates, missed) of photos whose caption names `day_caption`, per chat."""
    counts: Counter[int] = Counter()
    for call in server.calls_for("sendPhoto"):
        caption = str(call.params.get("caption", ""))
        if call.ok and day_caption in caption and call.chat_id is not None:
            counts[int(call.chat_id)] += 1
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    missed = sum(1 for chat_id in ids if counts[chat_id] == 0)
    return duplicates, missed


async def _push_round(settings: Any, engine: Any, server: BotApiServer, ids: list[int], day: date,
                      kill_after: int | None) -> dict[str, Any]:
    uploads_before, calls_before = server.uploads, len(server.calls)
    await asyncio.to_thread(deliveries.plan_deliveries, engine, day, dtime(23, 59), dtime(0, 0))
    # The summary is rendered once when day T lands, before the push: time it apart from sending.
    services = build_services(settings, engine)
    render_started = time.perf_counter()
    for lang in ("zh", "en"):
        await asyncio.to_thread(services.reports.render, "summary", on=day, lang=lang)
    render_seconds = time.perf_counter() - render_started
    started = time.perf_counter()
    workers = 0
    while True:
        workers += 1
        application = build_application(settings, engine, base_url=server.base_url,
                                        base_file_url=server.base_file_url, schedule=False, services=services)
        await application.initialize()
        pusher = Pusher(application.bot, application.bot_data["services"], worker_id=f"bench-{workers}")
        task = asyncio.create_task(pusher.push_day(day))
        if kill_after is not None and workers == 1:
            while True:
                await asyncio.sleep(0.05)
                sent = await asyncio.to_thread(deliveries.delivery_counts, engine, day)
                if sent.get(models.DeliveryStatus.SENT, 0) >= kill_after or task.done():
                    break
            task.cancel()  # the worker dies halfway; in-flight sends finish (shielded) and are recorded
            await asyncio.gather(task, return_exceptions=True)
            await application.shutdown()
            continue
        await task
        await application.shutdown()
        break
    wall = time.perf_counter() - started
    duplicates, missed = _tally(server, ids, day.isoformat())
    counts = await asyncio.to_thread(deliveries.delivery_counts, engine, day)
    # Every message the round sent, each under the same global rate: a chat whose watch list does not
    # fit under the summary's caption gets it in a second message (bot.push.Pusher._send).
    messages = sum(1 for call in server.calls[calls_before:] if call.method in SENDING_METHODS)
    return {"wall": wall, "render": render_seconds, "uploads": server.uploads - uploads_before,
            "duplicates": duplicates, "missed": missed, "workers": workers, "counts": counts, "messages": messages}


async def _command_latency(settings: Any, engine: Any, server: BotApiServer, samples: int) -> dict[str, list[float]]:
    application = build_application(settings, engine, base_url=server.base_url, base_file_url=server.base_file_url,
                                    schedule=False, rate_limit=False)
    await start_application(application)
    services = application.bot_data["services"]
    out: dict[str, list[float]] = {"cold": [], "warm": []}
    server.add_user(777, first_name="Bench", language_code="zh-hans")
    user = 777
    try:
        for mode in ("cold", "warm"):
            for _ in range(samples):
                if mode == "cold":
                    services.reports.clear()
                    services.file_ids.clear()
                    await asyncio.to_thread(_forget_uploads, engine)
                # the reply time is measured, not the chat's allowances (a report counts two answers)
                services.throttle.events.clear()
                services.private_answers.events.clear()
                before = len(server.calls_for("sendPhoto", 777))
                started = time.perf_counter()
                server.inject_message(777, user, "/ratio")
                while len(server.calls_for("sendPhoto", 777)) <= before:
                    if time.perf_counter() - started > REPLY_TIMEOUT:  # the bot answered otherwise, or not at all
                        said = [m.plain_text() for m in server.sent_messages(777)[-1:]]
                        raise RuntimeError(f"/ratio got no chart within {REPLY_TIMEOUT:.0f} s; the bot said {said}")
                    await asyncio.sleep(0.002)
                out[mode].append((time.perf_counter() - started) * 1000)
    finally:
        await stop_application(application)
    return out


def _forget_uploads(engine: Any) -> None:
    with session_scope(engine) as session:
        session.execute(delete(models.ChartUpload))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _run(n_chats: int, rate: float, samples: int) -> int:
    db = _demo_database()
    settings = load_settings(telegram_bot_token=TOKEN, database_url=f"sqlite:///{db}", push_rate=rate,
                             commands_per_minute=1000, admin_chat_ids=[])
    engine = make_engine(settings.database_url)
    upgrade(engine)
    server = BotApiServer(TOKEN, strict_parse=False).start_in_thread()
    try:
        ids = await asyncio.to_thread(_subscribe, engine, n_chats, 10)
        last, previous = _trade_dates(engine)
        floor = n_chats / rate
        with Session(engine) as session:
            distinct = session.execute(select(func.count(models.Watch.code.distinct()))).scalar()
        print(f"push benchmark: {n_chats} chats ({n_chats // 10} groups, {n_chats // WATCH_EVERY} following {WATCHED}"
              f" securities each, {distinct} distinct), rate {rate:g} msg/s, floor {floor:.1f} s")
        full = await _push_round(settings, engine, server, ids, last, None)
        killed = await _push_round(settings, engine, server, ids, previous, n_chats // 2)
        latency = await _command_latency(settings, engine, server, samples)
    finally:
        server.stop_thread()
    print(f"{'run':<22}{'wall s':>9}{'floor s':>9}{'vs floor':>10}{'msgs':>8}{'msg floor':>11}{'vs msgs':>9}"
          f"{'uploads':>9}{'dups':>6}{'missed':>8}  deliveries")
    for name, r in (("full push", full), ("killed + restarted", killed)):
        message_floor = r["messages"] / rate
        print(f"{name:<22}{r['wall']:>9.1f}{floor:>9.1f}{(r['wall'] / floor - 1) * 100:>+9.1f}%{r['messages']:>8}"
              f"{message_floor:>11.1f}{(r['wall'] / message_floor - 1) * 100:>+8.1f}%{r['uploads']:>9}"
              f"{r['duplicates']:>6}{r['missed']:>8}  {dict(r['counts'])} workers={r['workers']}"
              f" (summary rendered beforehand in {r['render']:.1f} s)")
    print("(floor = chats / rate; msgs = every message the round sent, the chart plus, for a chat whose watch list"
          " does not fit under the caption, that list in a second message; msg floor = msgs / rate)")
    print("aim: within 10% of the floor, uploads = distinct charts (2: zh and en), 0 duplicates, 0 missed")
    for mode in ("cold", "warm"):
        values = latency[mode]
        print(f"/ratio reply, cache {mode}: p50 {_pct(values, 0.5):.1f} ms, p95 {_pct(values, 0.95):.1f} ms "
              f"({len(values)} samples, mean {statistics.mean(values):.1f} ms)")
    ok = all(r["duplicates"] == 0 and r["missed"] == 0 for r in (full, killed))
    return 0 if ok else 1


def main(args: argparse.Namespace) -> int:
    logging.getLogger("telegram").setLevel(logging.WARNING)
    n_chats = getattr(args, "chats", None) or (300 if args.small else 10_000)
    rate = getattr(args, "rate", None) or load_settings().push_rate
    samples = 5 if args.small else 20
    return asyncio.run(_run(n_chats, rate, samples))
