"""Sending a rendered report: chart uploaded once then reused by file_id, caption, optional details."""

from __future__ import annotations

import logging
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.arguments import REPORT_COMMANDS, parse_days
from bot.services import Services, holding
from reports.figures import KINDS, MIN_DAYS, window_limit
from reports.i18n import t
from reports.service import RenderedReport

log = logging.getLogger(__name__)

# Telegram's refusal where a group's permissions do not let members (the bot) send photos.
NO_PHOTO_RIGHTS = "not enough rights to send photos"
# Telegram's refusals where a group restricts the bot (muted, or a closed forum topic): the chat's
# choice, which retrying will not change.
CHAT_RESTRICTIONS = ("have no rights to send a message", "not enough rights to send text", "topic_closed")
# The chat no longer exists (a deleted group): nothing will ever reach it.
CHAT_NOT_FOUND = "chat not found"
# Telegram's refusals of a stored file_id it no longer takes from this bot.
REFUSED_FILE_ID = ("file identifier", "file reference", "file_reference")


def is_chat_restriction(error: BadRequest) -> bool:
    return any(r in error.message.lower() for r in CHAT_RESTRICTIONS)


def is_refused_file_id(error: BadRequest) -> bool:
    return any(r in error.message.lower() for r in REFUSED_FILE_ID)


# The windows (trade days) the buttons of each report a command asks for offer (the push's summary
# has none); a ranking reads best over days, not months.
WINDOWS = dict.fromkeys(REPORT_COMMANDS, (20, 60, 250)) | {"top": (1, 5, 20)}


@dataclass(frozen=True)
class Placement:
    """Where in a chat an answer goes: the forum topic of the request (None: the chat, or a forum's
    General topic) and the request it answers, quoted in groups (sent all the same if it is gone)."""

    thread_id: int | None = None
    reply_to: int | None = None

    def send_kwargs(self, quote: bool = True) -> dict[str, Any]:
        """The send_* arguments: message_thread_id and, with `quote`, reply_parameters."""
        out: dict[str, Any] = {}
        if self.thread_id is not None:
            out["message_thread_id"] = self.thread_id
        if quote and self.reply_to is not None:
            out["reply_parameters"] = ReplyParameters(self.reply_to, allow_sending_without_reply=True)
        return out


NOWHERE_IN_PARTICULAR = Placement()
# A deep link's window: a whole number of days, as start_payload writes it (no sign, no leading zero).
_PAYLOAD_WINDOW = re.compile(r"([1-9][0-9]{0,3})d")


def window_data(kind: str, days: int, code: str | None, on: date | None) -> str:
    """A window button's callback data, `w:<kind>:<days>:<code>[:<YYYYMMDD>]` (at most 30 bytes of
    Telegram's 64): the date only when the report was asked for one, so that a report of the latest
    day stays on the latest day."""
    data = f"w:{kind}:{days}:{code or ''}"
    return f"{data}:{on:%Y%m%d}" if on is not None else data


def start_payload(kind: str, code: str | None, on: date | None, days: int | None = None) -> str:
    """A deep link's payload (https://t.me/<bot>?start=<payload>) that opens a report:
    `<kind>[_<code>][_<days>d][_<YYYYMMDD>]`, e.g. `ratio`, `stock_600519`, `top_270000_20d`,
    `sectors_370000_20240930` (Telegram allows letters, digits, _ and -, up to 64 characters: at most
    `sectors_370000_2500d_20240930`, 29). `days`: the window, None for the report's own."""
    window = f"{days}d" if days is not None else None
    return "_".join(part for part in (kind, code, window, on and f"{on:%Y%m%d}") if part)


def parse_start_payload(payload: str) -> tuple[str, str | None, int | None, date | None]:
    """(kind, code, days, date) of a deep link's payload; ValueError for anything start_payload did not
    make, and for a window the report's command would refuse (bot.arguments.parse_days): the flood
    gate counts a payload that parses as a report sent (bot.handlers.flood), so what parses is one.
    Payloads made before windows were carried (`ratio`, `stock_600519_20240930`) still parse."""
    kind, *rest = payload.split("_")
    if kind not in KINDS or len(rest) > 3:
        raise ValueError(payload)
    code = rest.pop(0) if rest and len(rest[0]) == 6 and rest[0].isdigit() else None
    days: int | None = None
    window = _PAYLOAD_WINDOW.fullmatch(rest[0]) if rest else None
    if window is not None:
        if kind not in REPORT_COMMANDS:  # the summary takes none
            raise ValueError(payload)
        days = parse_days(kind, window.group(1))
        rest.pop(0)
    on = datetime.strptime(rest.pop(0), "%Y%m%d").date() if rest and len(rest[0]) == 8 else None
    if rest or (kind == "stock" and code is None):
        raise ValueError(payload)
    return kind, code, days, on


def pick_data(kind: str, days: int, code: str, on: date | None) -> str:
    """A choice button's callback data (one of several securities or sectors a name matched):
    `p:<kind>:<days>:<code>[:<YYYYMMDD>]`, the window button's fields; pressed, it sends that report."""
    return "p" + window_data(kind, days, code, on)[1:]


def parse_window_data(data: str, prefix: str = "w") -> tuple[str, int, str | None, date | None]:
    """(kind, days, code, date) of a window button (or, with prefix "p", of a choice button);
    ValueError for anything this bot did not make."""
    parts = data.split(":")
    if len(parts) not in (4, 5) or parts[0] != prefix or parts[1] not in REPORT_COMMANDS:
        raise ValueError(data)
    days = int(parts[2])
    if not MIN_DAYS <= days <= window_limit(parts[1]):  # a forged or stale window: none this bot offers
        raise ValueError(data)
    on = datetime.strptime(parts[4], "%Y%m%d").date() if len(parts) == 5 else None
    return parts[1], days, parts[3] or None, on


def window_keyboard(report: RenderedReport) -> InlineKeyboardMarkup | None:
    """The report's window buttons (WINDOWS[kind]: 20/60/250 days, /top 1/5/20) that redraw the same
    message; the current window is marked."""
    if report.kind not in REPORT_COMMANDS:
        return None
    current = report.data.get("days")
    buttons = []
    for days in WINDOWS[report.kind]:
        label = t(report.lang, "bot.window_button", days=days)
        if days == current:
            label = f"• {label} •"
        data = window_data(report.kind, days, report.data.get("code"), report.on)
        buttons.append(InlineKeyboardButton(label, callback_data=data))
    return InlineKeyboardMarkup([buttons])


async def _photo(services: Services, report: RenderedReport) -> str | bytes:
    return await services.file_id(report.chart_key) or (report.png or b"")


async def send_report(
    bot: Bot, services: Services, chat_id: int, report: RenderedReport, *, with_buttons: bool = True,
    placement: Placement = NOWHERE_IN_PARTICULAR,
) -> Message:
    """Send chart + caption (and details as a second message when there are any, in the same topic).

    Where the chart quotes the request (groups), the details quote the chart: answers to several
    members may interleave, and each table stays tied to its chart."""
    markup = window_keyboard(report) if with_buttons else None
    if not report.details:
        return await send_chart(bot, services, chat_id, report, markup, placement)
    async with services.answering(chat_id):  # the details right under their chart
        message = await send_chart(bot, services, chat_id, report, markup, placement)
        details_placement = Placement(placement.thread_id, message.message_id if placement.reply_to else None)
        details = await bot.send_message(chat_id, report.details, parse_mode=ParseMode.HTML,
                                         disable_web_page_preview=True, **details_placement.send_kwargs())
    if markup is not None:
        services.remember_details(chat_id, message.message_id, details.message_id)
    return message


def _upload_lock(services: Services, key: str) -> AbstractAsyncContextManager[None]:
    """The one lock of a chart's upload, dropped with its last holder: whoever comes later finds the
    file_id (remembered before the lock is released) and needs no lock."""
    return holding(services.upload_locks, key)


async def send_chart(
    bot: Bot, services: Services, chat_id: int, report: RenderedReport,
    markup: InlineKeyboardMarkup | None = None, placement: Placement = NOWHERE_IN_PARTICULAR,
    caption: str | None = None, read_timeout: float | None = None,
) -> Message:
    """Send the chart with its caption (or `caption`, e.g. with a chat's watch list below it); the
    first send of a chart uploads it, the others use its file_id. `read_timeout`: seconds to wait
    for Telegram's answer (None: the client's default).

    Concurrent first sends of the same chart wait on one lock, so each distinct chart is uploaded once.
    A group that does not let the bot send photos gets the caption as a text message, with a line
    saying why the chart is missing (and no window buttons: they redraw charts).
    """
    caption = report.caption if caption is None else caption
    timeouts: dict[str, Any] = {} if read_timeout is None else {"read_timeout": read_timeout}
    try:
        return await _send_photo(bot, services, chat_id, report, markup, placement, caption, timeouts)
    except BadRequest as exc:
        if NO_PHOTO_RIGHTS not in exc.message.lower():
            raise
        log.info("chat %s does not take photos: the report goes as text", chat_id)
        return await bot.send_message(chat_id, f"{caption}\n{t(report.lang, 'bot.no_photo_rights')}",
                                      parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                                      **placement.send_kwargs(), **timeouts)


async def _send_photo(
    bot: Bot, services: Services, chat_id: int, report: RenderedReport, markup: InlineKeyboardMarkup | None,
    placement: Placement, caption: str, timeouts: dict[str, Any],
) -> Message:
    """send_chart's photo: uploaded under the chart's lock the first time, then sent by file_id."""
    key = report.chart_key
    known = await services.file_id(key)
    if known is None:
        async with _upload_lock(services, key):
            known = await services.file_id(key)
            if known is None:
                message = await bot.send_photo(
                    chat_id, report.png or b"", caption=caption, parse_mode=ParseMode.HTML,
                    reply_markup=markup, **placement.send_kwargs(), **timeouts,
                )
                await services.remember_file_id(key, message.photo[-1].file_id)
                return message
    try:
        return await bot.send_photo(
            chat_id, known, caption=caption, parse_mode=ParseMode.HTML, reply_markup=markup,
            **placement.send_kwargs(), **timeouts,
        )
    except BadRequest as exc:
        if not is_refused_file_id(exc):
            raise
        # Telegram no longer knows the stored id: upload the chart again (once), and keep the new id.
        log.warning("chart %s: stored file_id refused (%s); uploading it again", key, exc.message)
        await services.forget_file_id(key)
        return await _send_photo(bot, services, chat_id, report, markup, placement, caption, timeouts)


async def upload_chart(bot: Bot, services: Services, chat_id: int, report: RenderedReport) -> str:
    """The chart's file_id: known, or from one upload to `chat_id` (the storage chat of inline mode),
    under the same per-chart lock as send_chart, so each distinct chart is uploaded once."""
    key = report.chart_key
    known = await services.file_id(key)
    if known is not None:
        return known
    async with _upload_lock(services, key):
        known = await services.file_id(key)
        if known is None:
            message = await bot.send_photo(chat_id, report.png or b"", disable_notification=True)
            known = message.photo[-1].file_id
            await services.remember_file_id(key, known)
    return known


async def _edit_media(bot: Bot, chat_id: int, message_id: int, report: RenderedReport,
                      photo: str | bytes) -> Message | bool:
    media = InputMediaPhoto(photo, caption=report.caption, parse_mode=ParseMode.HTML)
    return await bot.edit_message_media(media, chat_id=chat_id, message_id=message_id,
                                        reply_markup=window_keyboard(report))


async def edit_report(bot: Bot, services: Services, chat_id: int, message_id: int, report: RenderedReport) -> None:
    """Replace chart, caption and buttons of an existing message (window buttons), and the details
    message sent under it where the bot knows it (services.remember_details): a table that
    depends on the window follows it."""
    photo = await _photo(services, report)
    try:
        message = await _edit_media(bot, chat_id, message_id, report, photo)
    except BadRequest as exc:
        if isinstance(photo, bytes) or not is_refused_file_id(exc):
            raise
        # As in _send_photo: Telegram no longer knows the stored id; upload the chart instead (once).
        log.warning("chart %s: stored file_id refused on edit (%s); uploading it", report.chart_key, exc.message)
        await services.forget_file_id(report.chart_key)
        message = await _edit_media(bot, chat_id, message_id, report, report.png or b"")
    if isinstance(message, Message) and message.photo and not await services.file_id(report.chart_key):
        await services.remember_file_id(report.chart_key, message.photo[-1].file_id)
    details_id = services.details_messages.get((chat_id, message_id))
    if details_id is None or not report.details:
        return
    try:
        await bot.edit_message_text(report.details, chat_id=chat_id, message_id=details_id,
                                    parse_mode=ParseMode.HTML, disable_web_page_preview=True)
    except BadRequest as exc:  # the same table (not modified), or deleted by a member: the chart is done
        if "not modified" not in exc.message.lower():
            log.info("chat %s: details of message %s not redrawn: %s", chat_id, message_id, exc.message)
