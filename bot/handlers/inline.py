"""Inline mode: `@bot ratio` (or `@bot 600519`, `@bot 茅台`, `@bot top 电子`, `@bot sectors 电子`,
`@bot ratio 2024-09-30`) in any chat offers the charts as cached photos with captions.

Telegram drops an inline answer after about ten seconds, and a chart not uploaded yet must first go
to the storage chat (a file_id is what an inline photo needs), at that chat's pace. So the answer
never waits for uploads longer than INLINE_WAIT_SECONDS: it offers the charts that are ready, and a
button into the bot for the rest, while their uploads go on for the next query. The latest charts are
uploaded ahead, after each data change (bot.pipeline.warm_reports)."""

from __future__ import annotations

import asyncio
import logging
from datetime import date

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import Application, InlineQueryHandler

from bot.arguments import INLINE_REPORTS, parse_inline_query
from bot.handlers.common import Context, answer_inline, user_language
from bot.sending import start_payload, upload_chart
from bot.services import Services, services_of
from reports import securities
from reports.errors import ReportError
from reports.i18n import LANGUAGES, t
from reports.service import RenderedReport

log = logging.getLogger(__name__)
# Seconds an inline answer waits for charts to upload before it offers what is ready.
INLINE_WAIT_SECONDS = 4.0
# Seconds an inline answer spends making charts (a past date: six reports, none cached) before it
# offers what is made; with the upload wait it stays well inside the ~10 s Telegram keeps a query.
INLINE_RENDER_SECONDS = 3.0
# Telegram shows a results button's text on one line: longer reasons are cut.
BUTTON_TEXT_LIMIT = 64


def _button(text: str, payload: str = "help") -> InlineQueryResultsButton:
    shown = text if len(text) <= BUTTON_TEXT_LIMIT else text[: BUTTON_TEXT_LIMIT - 1] + "…"
    return InlineQueryResultsButton(text=shown, start_parameter=payload)


def _result(report: RenderedReport, file_id: str, lang: str, username: str) -> InlineQueryResultCachedPhoto:
    kind = report.kind
    found = report.data.get("code")  # the security's code, or the sector's: what was asked, resolved
    title = t(lang, f"titles.{kind}")
    if kind == "stock":
        title = f"{report.data['name']} {found}"
    elif report.data.get("sector"):
        title = f"{report.data['sector']['name' if lang == 'zh' else 'name_en']} · {title}"
    # Under the shared chart, a link that opens the same report in a private chat with the bot.
    link = f"https://t.me/{username}?start={start_payload(kind, found, report.on)}"
    return InlineQueryResultCachedPhoto(
        id="-".join(part for part in (kind, found, report.data["date"], lang) if part),
        photo_file_id=file_id,
        title=t(lang, "bot.inline_title", title=title, date=report.data["date"]),
        caption=report.caption,
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton(t(lang, "bot.open_in_bot"), url=link)]]),
    )


def _keep_running(services: Services, tasks: set[asyncio.Task[str]]) -> None:
    """Uploads, from their start: kept referenced until done (the answer may go before they end, or
    the query fail), their errors logged, cancelled at shutdown (bot.app.post_shutdown)."""

    def done(task: asyncio.Task[str]) -> None:
        services.uploads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("inline chart upload failed: %s", task.exception())

    for task in tasks:
        services.uploads.add(task)
        task.add_done_callback(done)


async def _file_ids(bot: Bot, services: Services, reports: list[RenderedReport]) -> dict[str, str]:
    """chart_key -> file_id for the charts ready within INLINE_WAIT_SECONDS (uploading the others)."""
    ids: dict[str, str] = {}
    pending: dict[asyncio.Task[str], str] = {}
    for report in reports:
        known = await services.file_id(report.chart_key)
        if known is not None:
            ids[report.chart_key] = known
        elif services.storage_chat_id is not None and report.png:
            task = asyncio.ensure_future(upload_chart(bot, services, services.storage_chat_id, report))
            _keep_running(services, {task})
            pending[task] = report.chart_key
    if pending:
        done, _still = await asyncio.wait(pending, timeout=INLINE_WAIT_SECONDS)
        for task in done:
            if not task.cancelled() and task.exception() is None:  # a failure is logged by _keep_running
                ids[pending[task]] = task.result()
    return ids


def _all_cached(services: Services, wanted: list[tuple[str, str | None]], on: date | None, lang: str) -> bool:
    return all(services.reports.is_cached(kind, code=target, on=on, lang=lang) for kind, target in wanted)


async def inline_query(update: Update, context: Context) -> None:
    query = update.inline_query
    if query is None:
        return
    services = services_of(context)
    lang = await user_language(services, query.from_user)
    request = parse_inline_query(query.query)
    if request.bad_date is not None or request.two_dates:
        reason = (t(lang, "bot.inline_one_date") if request.two_dates
                  else t(lang, "error.bad_date", date=request.bad_date))
        await answer_inline(query, [], cache_time=0, is_personal=True, button=_button(reason))
        return
    wanted = list(request.wanted)
    if request.name is not None:
        # "茅台": the chart of the one security whose name holds it (several or none: the report list)
        candidates = await services.run(securities.candidates, services.engine, request.name, request.on)
        if len(candidates) == 1:
            wanted = [("stock", candidates[0][0])]
        elif not candidates and request.name[0].isdigit():
            # digits first (00700.HK, 600519.HK): meant as a code, so the reason is "no such
            # security", not the market's reports
            wanted = [("stock", request.name)]
    # Any code, sector or date may be asked, each a render and an upload: a query that needs a chart
    # not made yet is counted against the user's allowance of expensive requests (the same as their
    # private chat's; over it, nothing for a while). Typing through cached charts costs nothing.
    if request.asks_render and not await services.run(_all_cached, services, wanted, request.on, lang) \
            and services.throttle.check(query.from_user.id) > 0:
        await answer_inline(query, [], cache_time=0, is_personal=True, button=_button(t(lang, "bot.inline_slow_down")))
        return
    reports: list[RenderedReport] = []
    problem: ReportError | None = None
    deadline = asyncio.get_running_loop().time() + INLINE_RENDER_SECONDS
    unmade: tuple[str, str | None] | None = None  # the first report left for lack of time
    for kind, target in wanted:
        if asyncio.get_running_loop().time() > deadline:
            unmade = (kind, target)
            break
        try:
            reports.append(await services.run(services.reports.render, kind, code=target, on=request.on, lang=lang))
        except ReportError as exc:
            problem = problem or exc
    ids = await _file_ids(context.bot, services, reports)
    username = services.bot_username or context.bot.username
    results = [_result(r, ids[r.chart_key], lang, username) for r in reports if r.chart_key in ids]
    button = None
    if unmade is not None and len(results) == len(reports):  # out of time: the rest in the bot itself
        payload = start_payload(unmade[0], unmade[1] if unmade[1] and unmade[1].isdigit() else None, request.on)
        button = _button(t(lang, "bot.inline_open_in_bot"), payload)
    elif len(results) < len(reports):  # still uploading: the bot itself has them at once
        first = next(r for r in reports if r.chart_key not in ids)
        payload = start_payload(first.kind, first.data.get("code"), first.on)
        # Uploading for the next query where a storage chat takes uploads; else only a chat's request uploads it.
        pending = "bot.inline_pending" if services.storage_chat_id is not None else "bot.inline_open_in_bot"
        button = _button(t(lang, pending), payload)
    elif not results:
        reason = problem.message(lang) if problem else t(lang, "bot.inline_empty")
        button = _button(reason)
    # Personal: the results are in the asker's language (Telegram caches by query text otherwise).
    # A partial answer is not cached: the next query offers the charts uploaded meanwhile.
    await answer_inline(query, results, cache_time=300 if button is None else 0, is_personal=True, button=button)


async def upload_latest(application: Application) -> int:  # type: ignore[type-arg]
    """Upload the latest charts that inline mode offers first (every report, both languages) to the
    storage chat, one at a time, so that `@bot ratio` finds them ready; returns the uploads made."""
    services = services_of(application)
    if services.storage_chat_id is None:
        return 0
    made = 0
    for lang in LANGUAGES:
        for kind in INLINE_REPORTS:
            try:
                report = await services.run(services.reports.render, kind, lang=lang)
            except ReportError:
                continue
            if await services.file_id(report.chart_key) is None and report.png:
                await upload_chart(application.bot, services, services.storage_chat_id, report)
                made += 1
    return made


def handlers() -> list:  # type: ignore[type-arg]
    return [InlineQueryHandler(inline_query)]
