"""Report commands (/balance /ratio /sectors /signals /stock) and their window buttons."""

from __future__ import annotations

import html
import logging

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.handlers.common import Context, chat_language, reply, reply_key
from bot.sending import edit_report, send_report
from bot.services import services_of
from reports.errors import ReportError
from reports.figures import MAX_DAYS
from reports.i18n import t

log = logging.getLogger(__name__)
REPORT_COMMANDS = ("balance", "ratio", "sectors", "signals", "stock")
SECTOR_MAX_DAYS = 250
# What a bad window's answer offers to copy, per command.
WINDOW_EXAMPLES = {"balance": "/balance 60", "ratio": "/ratio 250", "sectors": "/sectors 20",
                   "signals": "/signals 60", "stock": "/stock 600519 60"}


def _parse_days(kind: str, text: str) -> int | None:
    """A window argument: a whole number in range, else ValueError."""
    days = int(text)
    limit = SECTOR_MAX_DAYS if kind == "sectors" else MAX_DAYS
    if not 1 <= days <= limit:
        raise ValueError(text)
    return days


async def _throttled(update: Update, context: Context) -> bool:
    """True (and, once per minute, a polite answer) when this chat sends expensive commands too fast."""
    services = services_of(context)
    chat = update.effective_chat
    if chat is None:
        return False
    wait = services.throttle.check(chat.id)
    if wait <= 0:
        return False
    if services.throttle.should_warn(chat.id):
        await reply_key(update, context, "bot.slow_down", seconds=int(wait + 0.999))
    return True


async def report_command(update: Update, context: Context) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text:
        return
    kind = message.text.split()[0].lstrip("/").split("@")[0].lower()
    args = context.args or []
    lang = await chat_language(update, context)
    code: str | None = None
    days: int | None = None
    if kind == "stock":
        if not args:
            await reply_key(update, context, "bot.need_code")
            return
        code = args[0].strip()
        args = args[1:]
    if args:
        try:
            days = _parse_days(kind, args[0])
        except ValueError:
            limit = SECTOR_MAX_DAYS if kind == "sectors" else MAX_DAYS
            await reply_key(update, context, "bot.bad_window", value=args[0][:32], max=limit,
                            example=WINDOW_EXAMPLES[kind])
            return
    await render_and_send(update, context, kind, lang, code=code, days=days)


async def render_and_send(update: Update, context: Context, kind: str, lang: str, *, code: str | None = None,
                          days: int | None = None) -> None:
    """Render a report off the event loop and send it to the update's chat; a bad code or date gets
    its one-line answer, a chat that asks too fast is told to slow down."""
    chat = update.effective_chat
    if chat is None or await _throttled(update, context):
        return
    services = services_of(context)
    try:
        report = await services.run(services.reports.render, kind, code=code, days=days, lang=lang)
    except ReportError as exc:
        await reply(update, html.escape(exc.message(lang)))
        return
    await send_report(context.bot, services, chat.id, report)


async def window_button(update: Update, context: Context) -> None:
    """`w:<kind>:<days>:<code>`: redraw the report in the same message with another window."""
    query = update.callback_query
    if query is None or query.message is None or not query.data:
        return
    try:
        _, kind, days_text, code = query.data.split(":", 3)
        days = int(days_text)
        if kind not in REPORT_COMMANDS:
            raise ValueError(kind)
    except ValueError:
        await query.answer()
        return
    lang = await chat_language(update, context)
    services = services_of(context)
    chat_id = query.message.chat.id
    if services.throttle.check(chat_id) > 0:
        await query.answer(t(lang, "bot.slow_down", seconds=10), show_alert=False)
        return
    try:
        report = await services.run(services.reports.render, kind, code=code or None, days=days, lang=lang)
    except ReportError as exc:
        await query.answer(exc.message(lang)[:200], show_alert=True)
        return
    await query.answer()
    try:
        await edit_report(context.bot, services, chat_id, query.message.message_id, report)
    except BadRequest as exc:
        # Tapping the window already shown: Telegram refuses an identical edit; nothing to do.
        if "not modified" not in str(exc).lower():
            raise


def handlers() -> list:  # type: ignore[type-arg]
    return [
        CommandHandler(list(REPORT_COMMANDS), report_command),
        CallbackQueryHandler(window_button, pattern=r"^w:"),
    ]
