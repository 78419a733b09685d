"""Report commands (/balance /ratio /sectors /signals /stock /top) and their window buttons."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import date

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.arguments import REPORT_COMMANDS, ArgumentError, parse_report_args
from bot.handlers.common import (
    ALERT_LIMIT,
    Context,
    answer_press,
    chat_language,
    error_text,
    placement,
    reply,
    reply_key,
    seconds_to_wait,
)
from bot.sending import edit_report, parse_window_data, pick_data, send_report
from bot.services import services_of
from reports.errors import ReportError
from reports.figures import resolve_days
from reports.fmt import clipped
from reports.i18n import t

log = logging.getLogger(__name__)


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
        await reply_key(update, context, "bot.slow_down", seconds=seconds_to_wait(wait))
    return True


async def report_command(update: Update, context: Context) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text:
        return
    kind = message.text.split()[0].lstrip("/").split("@")[0].lower()
    await answer_report_args(update, context, kind, context.args or [])


async def answer_report_args(update: Update, context: Context, kind: str, words: list[str]) -> None:
    """Parse a report's arguments and send it, or answer in one line what is wrong with them."""
    try:
        args = parse_report_args(kind, words)
    except ArgumentError as exc:
        await reply_key(update, context, exc.key, **exc.params)
        return
    lang = await chat_language(update, context)
    on = args.on
    if on is not None and args.nearest:  # 昨天 on a Monday: Friday's report
        services = services_of(context)
        on = await services.run(services.reports.data_day_on_or_before, on)
    await render_and_send(update, context, kind, lang, code=args.code, days=args.days, on=on)


async def render_and_send(update: Update, context: Context, kind: str, lang: str, *, code: str | None = None,
                          days: int | None = None, on: date | None = None) -> None:
    """Render a report off the event loop and send it to the update's chat; a bad code or date gets
    its one-line answer, a chat that asks too fast is told to slow down."""
    chat = update.effective_chat
    if chat is None or await _throttled(update, context):
        return
    services = services_of(context)
    try:
        report = await services.run(services.reports.render, kind, code=code, days=days, on=on, lang=lang)
    except ReportError as exc:
        choices = exc.param("choices", lang)  # a name that matched several: one button each
        window = resolve_days(kind, days)
        markup = choice_keyboard(choices, lambda code: pick_data(kind, window, code, on)) if choices else None
        await reply(update, html.escape(error_text(exc, lang)), markup)
        return
    await send_report(context.bot, services, chat.id, report, placement=placement(update))


def choice_keyboard(choices: tuple[tuple[str, str], ...], data: Callable[[str], str]) -> InlineKeyboardMarkup:
    """Two buttons a row, one per (code, label), each with the callback data `data(code)`: under a
    report's "several matched" the report of the one picked (pick_data, pick_button), under /watch's
    the watching of it (bot.handlers.watch)."""
    buttons = [InlineKeyboardButton(label[:40], callback_data=data(code)) for code, label in choices]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


async def _pressed(update: Update, prefix: str) -> tuple[str, int, str | None, date | None] | None:
    """The report a window ("w") or choice ("p") button asks for; None, the press answered, for a
    button of an inline message (nothing here to redraw) or data this bot did not make."""
    query = update.callback_query
    if query is None:
        return None
    try:
        if query.message is None or not query.data:
            raise ValueError("no message or no data")
        return parse_window_data(query.data, prefix=prefix)
    except ValueError:
        await answer_press(query)
        return None


async def pick_button(update: Update, context: Context) -> None:
    """A choice button under "several matched": send the report of the one picked (a new message)."""
    query, pressed = update.callback_query, await _pressed(update, prefix="p")
    if query is None or pressed is None:
        return
    kind, days, code, on = pressed
    await answer_press(query)
    await render_and_send(update, context, kind, await chat_language(update, context), code=code, days=days, on=on)


async def window_button(update: Update, context: Context) -> None:
    """A window button (see bot.sending.window_keyboard): redraw the report in the same message."""
    query, pressed = update.callback_query, await _pressed(update, prefix="w")
    if query is None or query.message is None or pressed is None:
        return
    kind, days, code, on = pressed
    lang = await chat_language(update, context)
    services = services_of(context)
    chat_id = query.message.chat.id
    if not query.message.is_accessible or not query.message.photo:  # too old, or no chart: nothing to redraw
        await answer_press(query)
        return
    wait = services.throttle.check(chat_id)
    if wait > 0:
        await answer_press(query, t(lang, "bot.slow_down", seconds=seconds_to_wait(wait)), show_alert=False)
        return
    try:
        report = await services.run(services.reports.render, kind, code=code, days=days, on=on, lang=lang)
    except ReportError as exc:
        await answer_press(query, clipped(error_text(exc, lang), ALERT_LIMIT), show_alert=True)
        return
    await answer_press(query)
    try:
        await edit_report(context.bot, services, chat_id, query.message.message_id, report)
    except BadRequest as exc:
        # Tapping the window already shown (Telegram refuses an identical edit), or the chart deleted
        # meanwhile: nothing to redraw.
        if not any(reason in str(exc).lower() for reason in ("not modified", "message to edit not found")):
            raise


def handlers() -> list:  # type: ignore[type-arg]
    return [
        CommandHandler(list(REPORT_COMMANDS), report_command),
        CallbackQueryHandler(window_button, pattern=r"^w:"),
        CallbackQueryHandler(pick_button, pattern=r"^p:"),
    ]
