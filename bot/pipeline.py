"""The daily pipeline, every minute: ingest day T on the morning after until every source has it,
tell the admins at the cut-off what is still missing, render the reports people ask for once per
data version, and push the summary when the day is complete (bot.push delivers it)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bot.arguments import INLINE_REPORTS
from bot.push import latest_pushable_date, push_now
from bot.services import Services, services_of
from marginbot.settings import TIMEZONE
from reports.errors import ReportError
from reports.i18n import LANGUAGES, t
from reports.service import freeze_long_lived
from storage import chats, deliveries, queries

log = logging.getLogger(__name__)


def expected_trade_date(services: Services, today: date) -> date | None:
    """The trade date whose data should be published this morning: the last trading day before today
    by the stored calendar, or, where the calendar has none, the latest day with data."""
    return queries.last_trading_day_before(services.engine, today) or queries.latest_data_date(services.engine)


def publishes_on(services: Services, today: date) -> bool:
    """Whether the exchanges publish this morning: they do on trading days (the previous trade date's
    data), not on weekends and holidays, when the data of the last trade date waits for the next
    trading morning and is not late. True where the stored calendar does not reach `today`."""
    return queries.is_trading_day(services.engine, today) is not False


def calendar_runs_out(services: Services, today: date) -> bool:
    """Whether the stored exchange calendar ends before `today` (or is empty)."""
    return queries.is_trading_day(services.engine, today) is None


def missing_for(services: Services, day: date) -> list[str]:
    """What day `day` still lacks before its push, as keys of the `steps` strings: the required
    ingestion steps not done, and turnover_<exchange> for SSE or SZSE where none is stored."""
    from storage.ingest_status import missing_steps

    turnover = queries.turnover_exchanges(services.engine, day)
    return [*missing_steps(services.engine, day), *(f"turnover_{e}" for e in queries.FULL_SPLIT if e not in turnover)]


# A notice that reached no admin is tried again after a minute, then after twice as long each time
# (an admin who blocked the bot, Telegram down for an hour), up to half an hour apart.
NOTICE_RETRY_FIRST = timedelta(minutes=1)
NOTICE_RETRY_MAX = timedelta(minutes=30)
WARM_REPORTS = INLINE_REPORTS  # the latest charts inline mode offers first, rendered ahead for everyone


async def warm_reports(application: Application) -> bool:  # type: ignore[type-arg]
    """Render the reports people ask for most, in both languages, once per data version.

    Uncached reports take hundreds of milliseconds to seconds; rendering them right after data lands
    means chats and the push hit the cache. Returns True when it rendered. A render that fails
    unexpectedly is logged and the whole warm-up tried again at the next tick (the version is
    recorded only once it went through); it never stops the tick's push.
    """
    from storage.database import data_version

    services = services_of(application)
    version = await services.run(data_version, services.engine)
    if application.bot_data.get("warm_version") == version:
        return False
    for kind in WARM_REPORTS:
        for lang in LANGUAGES:
            try:
                await services.run(services.reports.render, kind, lang=lang)
            except ReportError as exc:
                log.info("not pre-rendering %s: %s", kind, exc.message("en"))
                break
            except Exception:
                log.exception("pre-rendering %s (%s) failed; tried again at the next tick", kind, lang)
                return False
    application.bot_data["warm_version"] = version
    if not application.bot_data.get("heap_frozen"):
        application.bot_data["heap_frozen"] = True
        freeze_long_lived()  # start-up is over: what lives now lives for good (once: a full collection)
    return True


async def pipeline_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every minute: ingest day T while it is incomplete (live mode), warn admins at the cut-off, push when complete."""
    from storage.database import is_demo

    application = context.application
    if application.bot_data.get("stopping"):
        return
    services = services_of(context)
    settings = services.settings
    live = settings.telegram_bot_token is not None
    # A push worker (marginbot run --push-only) leaves ingesting, alerts and inline uploads to the
    # polling bot: it pushes what that bot stored.
    leader = live and not application.bot_data.get("push_only")
    now = datetime.now(TIMEZONE)
    expected = await services.run(expected_trade_date, services, now.date())
    complete = await services.run(latest_pushable_date, services)
    # A live bot replaces demo data with real data as soon as it can, and never pushes demo data.
    demo = live and await services.run(is_demo, services.engine)
    # A calendar that ends before today hides the days after its end (expected stays on its last
    # day): only an ingest refreshes it, so its end counts as data possibly missing.
    uncharted = live and await services.run(calendar_runs_out, services, now.date())
    missing = demo or uncharted or expected is None or complete is None or complete < expected
    if leader and missing:
        if now.time() >= settings.ingest_start_time or demo:
            await _maybe_ingest(application, services, now)
            expected = await services.run(expected_trade_date, services, now.date())
            complete = await services.run(latest_pushable_date, services)
            demo = await services.run(is_demo, services.engine)
            uncharted = await services.run(calendar_runs_out, services, now.date())
        if now.time() >= settings.ingest_cutoff_time:
            # told once; the tick goes on: retries of the last complete day still fall due
            if uncharted:
                # not the late-data warning: without the calendar, whether anything is late is unknown
                await _tell_admins_calendar(context, services, now.date())
            elif (expected is not None and (complete is None or complete < expected)
                    and await services.run(publishes_on, services, now.date())):
                await _tell_admins_late(context, services, expected)
    if (await warm_reports(application) and not application.bot_data.get("push_only")
            and not application.bot_data.get("uploading_inline") and not application.bot_data.get("stopping")):
        # New data: the charts inline mode offers first are uploaded ahead, beside the ticks.
        application.bot_data["uploading_inline"] = True
        application.create_task(_upload_inline(application), name="upload-inline-charts")
    if demo or expected is None or complete is None:
        return
    if not application.bot_data.get("auto_push", True):
        return  # the sandbox pushes when its user asks for it
    if complete < expected:
        # The next day is not in yet (past midnight, say): the last complete day's deliveries still
        # waiting for a retry go on, until the next day's push replaces them; none is planned anew.
        if await services.run(deliveries.has_unsent, services.engine, complete):
            await push_now(application, complete, plan=False)
        return
    await push_now(application, expected)
    # a bot stopping (push_now returned early) starts no more background work: its stop would wait for it
    if leader and not application.bot_data.get("valuing_lending") and not application.bot_data.get("stopping"):
        # After the push, which does not need it, and beside the ticks (fetching the quotes takes a
        # minute or two): SSE's lending valued at the day's closes, once a day at most.
        application.bot_data["valuing_lending"] = True
        application.create_task(_value_lending(application, services, now.date()), name="value-sse-lending")


async def _upload_inline(application: Application) -> None:  # type: ignore[type-arg]
    from bot.handlers.inline import upload_latest

    try:
        made = await upload_latest(application)
        if made:
            log.info("inline mode: %d charts uploaded ahead", made)
    except TelegramError as exc:  # the next data change tries again; an inline query uploads its own
        log.warning("inline charts not uploaded ahead: %s", exc)
    finally:
        application.bot_data["uploading_inline"] = False


async def _value_lending(application: Application, services: Services, today: date) -> None:  # type: ignore[type-arg]
    from storage.history import estimate_sse_lending

    try:
        step = await services.run_background(estimate_sse_lending, services.engine, services.settings, today)
        if step.rows:
            log.info("SSE 融券余额 estimated for %d securities (%s)", step.rows, step.message or "done")
    finally:
        application.bot_data["valuing_lending"] = False


async def _maybe_ingest(application: Application, services: Services, now: datetime) -> None:  # type: ignore[type-arg]
    last = application.bot_data.get("last_ingest")
    if last is not None and (now - last).total_seconds() < services.settings.ingest_retry_minutes * 60:
        return
    application.bot_data["last_ingest"] = now
    from storage.ingest import run_ingest

    # SSE's lending is valued after the push (estimate_sse_lending): the push does not wait for it
    result = await services.run_background(run_ingest, services.engine, services.settings, progress=False,
                                           lending=False)
    log.info("scheduled ingest: %s", result.summary())


async def _tell_admins_late(context: ContextTypes.DEFAULT_TYPE, services: Services, day: date) -> None:
    cutoff = services.settings.ingest_cutoff_time.strftime("%H:%M")
    steps = await services.run(missing_for, services, day)

    def text(lang: str) -> str:
        missing = t(lang, "scope.joiner").join(t(lang, f"steps.{key}") for key in steps)
        return t(lang, "bot.data_late", date=day.isoformat(), cutoff=cutoff, missing=html.escape(missing or "?"))

    if await _tell_admins(context, services, f"late:{day.isoformat()}", text):
        log.warning("data for %s still incomplete at the cut-off %s: %s", day, cutoff, ", ".join(steps))


async def _tell_admins_calendar(context: ContextTypes.DEFAULT_TYPE, services: Services, today: date) -> None:
    last = await services.run(queries.last_trading_day_before, services.engine, today)
    shown = last.isoformat() if last else "—"

    def text(lang: str) -> str:
        return t(lang, "bot.calendar_stale", last=shown)

    if await _tell_admins(context, services, f"calendar:{today.isoformat()}", text):
        log.error("the stored trading calendar ends on %s and could not be refreshed: days after it are"
                  " neither fetched nor pushed", shown)


async def _tell_admins(context: ContextTypes.DEFAULT_TYPE, services: Services, key: str,
                       text: Callable[[str], str]) -> bool:
    """Send a one-time notice (`key`) to every admin chat, each in its chat's language; False when it
    was given already (by this worker before a restart, or by another worker), or when it is not yet
    time to try again. When no admin received it (Telegram down, an admin who blocked the bot), the
    notice is released and tried again later: after NOTICE_RETRY_FIRST, then twice as long each
    time up to NOTICE_RETRY_MAX."""
    now = datetime.now(TIMEZONE)
    retry = services.notice_retries.get(key)
    if retry is not None and now < retry[0]:
        return False
    if not await services.run(chats.first_notice, services.engine, key):
        return False
    admins = services.settings.admin_chat_ids
    told = 0
    for admin in admins:
        # An admin who has talked to the bot reads it in their chat's language.
        chat = await services.run(chats.get_chat, services.engine, admin)
        try:
            await context.bot.send_message(admin, text(chat.language if chat else services.settings.default_language),
                                           parse_mode=ParseMode.HTML)
            told += 1
        except TelegramError as exc:
            log.warning("could not tell admin chat %s (%s): %s", admin, key, exc)
    if admins and not told:
        # Nobody has it: released for a later tick (with no admin configured, the log is the notice).
        await services.run(chats.forget_notice, services.engine, key)
        wait = retry[1] if retry is not None else NOTICE_RETRY_FIRST
        # the notices of days gone by, never received, are not kept for good
        services.notice_retries = {k: r for k, r in services.notice_retries.items() if now - r[0] < timedelta(days=1)}
        services.notice_retries[key] = (now + wait, min(wait * 2, NOTICE_RETRY_MAX))
        log.warning("notice %s reached no admin: tried again in %d min", key, wait.total_seconds() // 60)
    else:
        services.notice_retries.pop(key, None)
    return True
