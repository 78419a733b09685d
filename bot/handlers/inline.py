"""Inline mode: `@bot ratio` (or `@bot 600519`, `@bot 茅台`, `@bot top 电子`, `@bot sectors 电子`,
`@bot ratio 2024-09-30`, `@bot top 20 电子`) in any chat offers the charts as cached photos with
captions: the window and date asked, as the commands read them (bot.arguments.parse_inline_query).
Whatever is not offered as asked gets a word on the results button: a bad date or window, a name
that matches nothing or more securities than are offered, a report error (in short: the button
shows one line).

Telegram drops an inline answer after about ten seconds, and a chart not uploaded yet must first go
to the storage chat (a file_id is what an inline photo needs), at that chat's pace. So the answer
never waits for uploads longer than INLINE_WAIT_SECONDS: it offers the charts that are ready, and a
button into the bot for the rest, while their uploads go on for the next query. The latest charts are
uploaded ahead, after each data change (bot.pipeline.warm_reports)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import date

from sqlalchemy import Engine
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

from bot.arguments import INLINE_REPORTS, UNWINDOWED, parse_inline_query, takes_window
from bot.handlers.chat import HELP_PAYLOAD
from bot.handlers.common import Context, answer_inline, user_language
from bot.sending import start_payload, upload_chart
from bot.services import Services, services_of
from reports import securities
from reports.errors import ReportError
from reports.figures import DEFAULT_DAYS, SECTOR_KINDS, window_limit
from reports.fmt import clipped
from reports.i18n import LANGUAGES, strings, t
from reports.securities import MAX_CANDIDATES, QUERY_ECHO
from reports.service import RenderedReport

log = logging.getLogger(__name__)
# Seconds an inline answer waits for charts to upload before it offers what is ready.
INLINE_WAIT_SECONDS = 4.0
# Seconds an inline answer spends making charts (a past date: six reports, none cached; a name: up to
# MAX_CANDIDATES securities) before it offers what is made; with the upload wait it stays well inside
# the ~10 s Telegram keeps a query.
INLINE_RENDER_SECONDS = 3.0
# Telegram shows a results button's text on one line: longer reasons are cut.
BUTTON_TEXT_LIMIT = 64


def _button(text: str, payload: str = HELP_PAYLOAD) -> InlineQueryResultsButton:
    return InlineQueryResultsButton(text=clipped(text, BUTTON_TEXT_LIMIT), start_parameter=payload)


def _reason(error: ReportError, lang: str) -> str:
    """A report error as the results button says it: its short form (bot.inline_reason_<kind>: the
    useful part first, "No data for 2099-01-01 · latest 2026-11-20") where there is one, else its
    one line, which _button cuts."""
    key = f"inline_reason_{error.kind}"
    if key not in strings(lang)["bot"]:
        return error.message(lang)
    return t(lang, f"bot.{key}", **error.params_for(lang))


def _link_code(engine: Engine, kind: str, target: str | None) -> str | None:
    """What a deep link carries for `target` (its payload takes digits only): a code as it is, a
    sector's name as its code (电子 -> 270000), so that "top 电子" opens that sector's ranking; else None."""
    if not target:
        return None
    if target.isdigit():
        return target
    if kind in SECTOR_KINDS:
        try:
            return securities.sector_code(engine, target)
        except ReportError:
            return None
    return None


def _window(kind: str, days: int | None) -> int | None:
    """The window to ask a report for: None for the report's own (DEFAULT_DAYS), so that `top 5` is
    the chart warmed ahead for `top` (the render cache keys on the window as asked), and a result's
    id and link name a window only where it is not the one the report has anyway."""
    return None if days is None or days == DEFAULT_DAYS.get(kind) else days


def _result(report: RenderedReport, file_id: str, lang: str, username: str) -> InlineQueryResultCachedPhoto:
    kind = report.kind
    found = report.data.get("code")  # the security's code, or the sector's: what was asked, resolved
    window = _window(kind, report.data.get("days"))
    title = t(lang, f"titles.{kind}")
    if kind == "stock":
        title = f"{report.data['name']} {found}"
    elif report.data.get("sector"):
        title = f"{report.data['sector']['name' if lang == 'zh' else 'name_en']} · {title}"
    if window is None:
        title = t(lang, "bot.inline_title", title=title, date=report.data["date"])
    else:  # a window asked: said in the title too, where a list of results shows it
        title = t(lang, "bot.inline_title_window", title=title, days=window, date=report.data["date"])
    # Under the shared chart, a link that opens the same report (its window, its date) in a private
    # chat with the bot.
    link = f"https://t.me/{username}?start={start_payload(kind, found, report.on, window)}"
    return InlineQueryResultCachedPhoto(
        id="-".join(part for part in (kind, found, window and f"{window}d", report.data["date"], lang) if part),
        photo_file_id=file_id,
        title=title,
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


def _cached(services: Services, wanted: list[tuple[str, str | None]], days: int | None, on: date | None,
            lang: str) -> list[bool]:
    """For each wanted report, whether its chart is made already (rendering it costs nothing)."""
    return [services.reports.is_cached(kind, code=target, days=_window(kind, days), on=on, lang=lang)
            for kind, target in wanted]


def _matches(engine: Engine, name: str, on: date | None) -> tuple[list[str], int]:
    """The codes of the securities whose name holds `name` (reports.securities.candidates: at most
    MAX_CANDIDATES, in its order) and how many there are in all (counted only past MAX_CANDIDATES).

    Digits alone are a code on its way ("6005", "300"): only a name they single out counts, never the
    several ETFs whose names hold them (沪深300ETF, 中证500ETF), each a chart to make at every digit typed."""
    found = securities.candidates(engine, name, on)
    if name.isdigit() and len(found) > 1:
        return [], 0
    count = len(found)
    if count > MAX_CANDIDATES:
        count = securities.count_named(engine, name, on)
    return [code for code, _ in found[:MAX_CANDIDATES]], count


def _names_a_sector(engine: Engine, name: str) -> bool:
    """Whether `name` names one Shenwan level-1 sector (reports.securities.sector_code)."""
    try:
        securities.sector_code(engine, name)
    except ReportError:
        return False
    return True


async def inline_query(update: Update, context: Context) -> None:
    query = update.inline_query
    if query is None:
        return
    services = services_of(context)
    lang = await user_language(services, query.from_user)
    request = parse_inline_query(query.query)
    if request.on is not None and request.nearest:  # 昨天 on a Monday: Friday's reports
        request = replace(request, on=await services.run(services.reports.data_day_on_or_before, request.on))
    if request.refusal is not None:  # a bad date or window, or two: the rule, and nothing else
        refusal = request.refusal
        await answer_inline(query, [], cache_time=0, is_personal=True,
                            button=_button(t(lang, refusal.key, **refusal.params)))
        return
    wanted = list(request.wanted)
    # What the results button says when nothing more pressing (a chart still to come) takes it.
    note: str | None = None
    if request.name is not None:
        # "茅台": the charts of the securities whose name holds it (the first MAX_CANDIDATES, and how
        # many there are when more); none: the report charts, and the button says so
        codes, count = await services.run(_matches, services.engine, request.name, request.on)
        shown = clipped(request.name, QUERY_ECHO)
        if codes:
            wanted = [("stock", code) for code in codes]
            if count > len(codes):
                note = t(lang, "bot.inline_many_matches", query=shown, count=count)
        elif request.name[0].isdigit():
            # digits first (00700.HK, 600519.HK): meant as a code, so the reason is "no such
            # security", not the market's reports
            wanted = [("stock", request.name)]
        elif await services.run(_names_a_sector, services.engine, request.name):
            # "电子", "Banks": no security's name, a sector's: that sector alone and its ranking
            wanted = [("sectors", request.name), ("top", request.name)]
        else:
            note = t(lang, "bot.inline_no_match", query=shown)
    if request.days is not None:
        # A window: the reports that take it. The summary takes none (a list leaves it out without a
        # word: it was not asked for by name, parse_inline_query refuses `summary 20`); a report whose
        # longest window is shorter (sectors: 250) is left out, and the button says why.
        too_long = [kind for kind, _ in wanted if kind not in UNWINDOWED and not takes_window(kind, request.days)]
        wanted = [(kind, target) for kind, target in wanted if takes_window(kind, request.days)]
        if too_long and note is None:
            note = t(lang, "bot.inline_window_left_out", report=t(lang, f"titles.{too_long[0]}"),
                     max=window_limit(too_long[0]), days=request.days)
    # Any code, sector, window or date may be asked, each a render and an upload: each chart a query
    # makes is counted against the user's allowance of expensive requests (the same as their private
    # chat's), as a command would be; over it, the charts not made are left out for a while. Typing
    # through charts made already costs nothing, and neither do the latest charts, warmed for everyone.
    cached = (await services.run(_cached, services, wanted, request.days, request.on, lang) if request.asks_render
              else [True] * len(wanted))
    reports: list[RenderedReport] = []
    problem: ReportError | None = None
    slowed = False  # a chart left out for the allowance
    deadline = asyncio.get_running_loop().time() + INLINE_RENDER_SECONDS
    unmade: tuple[str, str | None] | None = None  # the first report left for lack of time
    for (kind, target), made in zip(wanted, cached, strict=True):
        if asyncio.get_running_loop().time() > deadline:
            unmade = (kind, target)
            break
        if not made and services.throttle.check(query.from_user.id) > 0:
            slowed = True
            continue
        try:
            reports.append(await services.run(services.reports.render, kind, code=target,
                                              days=_window(kind, request.days), on=request.on, lang=lang))
        except ReportError as exc:
            problem = problem or exc
    ids = await _file_ids(context.bot, services, reports)
    username = services.bot_username or context.bot.username
    results = [_result(r, ids[r.chart_key], lang, username) for r in reports if r.chart_key in ids]
    button = None
    if slowed:
        button = _button(t(lang, "bot.inline_slow_down"))
    elif unmade is not None and len(results) == len(reports):  # out of time: the rest in the bot itself
        code = await services.run(_link_code, services.engine, *unmade)
        button = _button(t(lang, "bot.inline_open_in_bot"),
                         start_payload(unmade[0], code, request.on, _window(unmade[0], request.days)))
    elif len(results) < len(reports):  # still uploading: the bot itself has them at once
        first = next(r for r in reports if r.chart_key not in ids)
        window = _window(first.kind, first.data.get("days"))
        payload = start_payload(first.kind, first.data.get("code"), first.on, window)
        # Uploading for the next query where a storage chat takes uploads; else only a chat's request uploads it.
        pending = "bot.inline_pending" if services.storage_chat_id is not None else "bot.inline_open_in_bot"
        button = _button(t(lang, pending), payload)
    elif not results:
        button = _button(_reason(problem, lang) if problem else note or t(lang, "bot.inline_empty"))
    elif note is not None:
        button = _button(note)
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
