"""Inline mode: `@bot ratio` (or `@bot 600519`, `@bot 茅台`, `@bot top 电子`, `@bot sectors 电子`,
`@bot ratio 2024-09-30`) in any chat offers the charts as cached photos with captions."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InlineQueryResultCachedPhoto, Update
from telegram.constants import ParseMode
from telegram.ext import InlineQueryHandler

from bot.arguments import SECTOR_KINDS, looks_like_date, parse_date
from bot.handlers.common import Context
from bot.sending import start_payload
from bot.services import Services, services_of
from reports import securities
from reports.errors import ReportError
from reports.i18n import pick_language, t
from reports.service import RenderedReport

log = logging.getLogger(__name__)
INLINE_REPORTS = ("summary", "balance", "ratio", "sectors", "signals", "top")
ALIASES = {"两融": "balance", "余额": "balance", "占比": "ratio", "行业": "sectors", "信号": "signals", "概览": "summary",
           "排行": "top"}


async def _ensure_uploaded(context: Context, services: Services, report: RenderedReport) -> str | None:
    """A file_id for the chart: known, or uploaded once to the storage chat (inline results need an id)."""
    known = await services.file_id(report.chart_key)
    if known or services.storage_chat_id is None:
        return known
    message = await context.bot.send_photo(services.storage_chat_id, report.png or b"", disable_notification=True)
    await services.remember_file_id(report.chart_key, message.photo[-1].file_id)
    return message.photo[-1].file_id


async def inline_query(update: Update, context: Context) -> None:
    query = update.inline_query
    if query is None:
        return
    services = services_of(context)
    lang = pick_language(query.from_user.language_code, services.settings.default_language)
    words = query.query.strip().lower().split()
    dates = [w for w in words if looks_like_date(w)]
    words = [w for w in words if not looks_like_date(w)]
    try:
        on = parse_date(dates[0]) if dates else None  # "ratio 2024-09-30": that day's chart
    except ValueError:
        on = None
    # "top 电子" / "排行 银行" / "top 5 电子": the ranking inside that sector; "sectors 电子" / "行业 电子" /
    # "sectors 270000": that sector alone (the report finds the sector, or nothing is offered). A
    # window among the words is left out: a shared chart has its report's own. Six digits are a
    # sector's code or index here (801080), never a window (at most 2500) nor a security.
    asked = ALIASES.get(words[0], words[0]) if words else None
    code: str | None = None
    sector: str | None = None
    if asked in SECTOR_KINDS:
        sector = " ".join(w for w in words[1:] if not (w.isdigit() and len(w) < 6)) or None
    else:
        code = next((c for c in map(securities.code_form, words) if c), None)
        names = words[1:] if words and words[0] in ("stock", "个股") else words
        names_a_report = names and (names[0] in ALIASES or any(k.startswith(names[0]) for k in INLINE_REPORTS))
        if code is None and names and not names_a_report:
            # "茅台": the chart of the one security whose name holds it (several or none: the report list)
            found = await services.run(securities.candidates, services.engine, names[0], on)
            code = found[0][0] if len(found) == 1 else None
    # A bad date offers nothing. Any code, sector or date may be asked, each a render and an upload:
    # counted against the user's allowance of expensive requests (the same as their private chat's);
    # over it, nothing for a while.
    bad_date = (dates and on is None) or len(dates) > 1
    asks_render = code is not None or on is not None or sector is not None
    if bad_date or (asks_render and services.throttle.check(query.from_user.id) > 0):
        await query.answer([], cache_time=0, is_personal=True)
        return
    wanted: list[tuple[str, str | None]]
    if code is not None:  # "600519" or "stock 600519": that security's chart, or nothing if unknown
        wanted = [("stock", code)]
    elif sector is not None:
        wanted = [(str(asked), sector)]
    elif words and words[0] in ALIASES:
        wanted = [(ALIASES[words[0]], None)]
    else:
        wanted = [(k, None) for k in INLINE_REPORTS if not words or k.startswith(words[0])]
        wanted = wanted or [(k, None) for k in INLINE_REPORTS]
    username = services.bot_username or context.bot.username
    results = []
    for kind, target in wanted:
        try:
            report = await services.run(services.reports.render, kind, code=target, on=on, lang=lang)
        except ReportError:
            continue
        file_id = await _ensure_uploaded(context, services, report)
        if file_id is None:
            continue
        found = report.data.get("code")  # the security's code, or the sector's: what was asked, resolved
        title = t(lang, f"titles.{kind}")
        if kind == "stock":
            title = f"{report.data['name']} {found}"
        elif report.data.get("sector"):
            title = f"{report.data['sector']['name' if lang == 'zh' else 'name_en']} · {title}"
        # Under the shared chart, a link that opens the same report in a private chat with the bot.
        link = f"https://t.me/{username}?start={start_payload(kind, found, report.on)}"
        results.append(
            InlineQueryResultCachedPhoto(
                id="-".join(part for part in (kind, found, report.data["date"], lang) if part),
                photo_file_id=file_id,
                title=t(lang, "bot.inline_title", title=title, date=report.data["date"]),
                caption=report.caption,
                parse_mode=ParseMode.HTML,
                reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton(t(lang, "bot.open_in_bot"), url=link)]]),
            )
        )
    # Personal: the results are in the asker's language (Telegram caches by query text otherwise).
    await query.answer(results, cache_time=300, is_personal=True)


def handlers() -> list:  # type: ignore[type-arg]
    return [InlineQueryHandler(inline_query)]
