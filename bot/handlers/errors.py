"""Unexpected errors: a short apology to the user, the full trace in the log and to the admins.

Telegram saying "too many requests" or a network hiccup is no bug: it is logged as a warning, with
no apology (it would meet the same limit) and no report. A report to the admins goes once per kind
of error (type and place) in ADMIN_REPORT_EVERY seconds: a failure that repeats on every update
would otherwise flood their chats.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import time
import traceback

from telegram import Chat, InlineQueryResultsButton, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.handlers.common import ALERT_LIMIT, Context, is_stale_query, placement, user_language, written
from bot.push import may_have_arrived
from bot.sending import is_chat_restriction
from bot.services import services_of
from marginbot.logging_setup import redact
from reports.fmt import clipped
from reports.i18n import pick_language, t
from storage import chats

log = logging.getLogger(__name__)
ADMIN_TRACE_CHARS = 3000
ADMIN_REPORT_EVERY = 600.0


_OWN = tuple(f"{os.sep}{package}{os.sep}" for package in ("bot", "reports", "storage", "analytics", "marginbot"))


def _kind(error: BaseException) -> str:
    """What makes two reports the same: the error's type, the deepest line of the project's own code
    it passed through (a library raises every BadRequest at one line), and for Telegram's errors,
    which differ only in their text, the text."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "site-packages" not in f.filename and f.filename.endswith(".py")
              and any(p in f.filename for p in _OWN)]
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    text = f" {str(error)[:100]}" if isinstance(error, TelegramError) else ""
    return f"{type(error).__name__} {where}{text}"


async def on_error(update: object, context: Context) -> None:
    error = context.error
    if isinstance(error, RetryAfter) or (isinstance(error, NetworkError) and not isinstance(error, BadRequest)):
        # NetworkError covers TimedOut and connection failures; BadRequest subclasses it, but is a bug
        log.warning("Telegram could not take an answer now: %s", redact(str(error)))
        if isinstance(error, NetworkError) and not may_have_arrived(error):
            await _ask_to_resend(update, context)
        return
    if error is not None and is_stale_query(error):  # a press or query that waited while the bot was down
        log.info("a query was too old to answer: %s", error)
        return
    chat = update.effective_chat if isinstance(update, Update) else None
    if isinstance(error, BadRequest) and is_chat_restriction(error):
        # The chat's settings, not a bug: an apology could not be sent there either.
        log.info("chat %s does not let the bot answer: %s", chat.id if chat else "?", error.message)
        return
    if chat is not None and isinstance(error, Forbidden | ChatMigrated):
        await _chat_gone(update, context, chat, error)
        return
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__)) if error else ""
    # The trace as redacted text, not exc_info: an exception's text may carry a request URL, hence the token.
    log.error("unhandled error while handling an update\n%s", redact(trace))
    services = services_of(context)
    # (a Forbidden with a chat returned above: the chat is gone, nobody to apologise to)
    if isinstance(update, Update) and update.effective_chat is not None:
        lang = await _apology_language(update, context)
        in_channel = update.effective_chat.type == ChatType.CHANNEL
        if update.callback_query is not None:  # else the button keeps spinning
            with contextlib.suppress(TelegramError):  # answered already, before the failure
                # under a channel's post the apology is the presser's alone: every subscriber reads the channel
                await update.callback_query.answer(clipped(t(lang, "bot.error"), ALERT_LIMIT), show_alert=in_channel)
        if not (in_channel and update.callback_query is not None):
            try:
                await update.effective_chat.send_message(t(lang, "bot.error"), **placement(update).send_kwargs())
            except TelegramError:
                log.warning("could not send the apology to chat %s", update.effective_chat.id)
    elif isinstance(update, Update) and update.inline_query is not None:
        try:  # the language inline answers are given in (bot.handlers.inline); the database may be what failed
            lang = await user_language(services, update.inline_query.from_user)
        except Exception:
            log.warning("could not read the user's language for the failed inline query")
            user = update.inline_query.from_user
            lang = pick_language(user.language_code if user else None, services.settings.default_language)
        try:  # no chat to apologise in: an empty answer saying why, so the user's client stops waiting
            await update.inline_query.answer([], cache_time=0, is_personal=True, button=InlineQueryResultsButton(
                text=t(lang, "bot.inline_error"), start_parameter="help"))
        except TelegramError:
            log.warning("could not answer the failed inline query")
    if not services.settings.admin_chat_ids or error is None:
        return
    kind, now = _kind(error), time.monotonic()
    if now - services.error_reports.get(kind, -ADMIN_REPORT_EVERY) < ADMIN_REPORT_EVERY:
        log.info("error %s already reported to the admins within %g s", kind, ADMIN_REPORT_EVERY)
        return
    services.error_reports[kind] = now
    text = f"<b>marginbot error</b>\n<pre>{html.escape(redact(trace)[-ADMIN_TRACE_CHARS:])}</pre>"
    for admin in services.settings.admin_chat_ids:
        try:
            await context.bot.send_message(admin, text, parse_mode=ParseMode.HTML)
        except TelegramError:
            log.warning("could not report the error to admin chat %s", admin)


async def _apology_language(update: Update, context: Context) -> str:
    """The chat's stored language, else the user's Telegram one (the database may be what failed)."""
    services = services_of(context)
    user = update.effective_user
    lang = pick_language(user.language_code if user else None, services.settings.default_language)
    if update.effective_chat is None:
        return lang
    try:
        stored = await services.run(chats.get_chat, services.engine, update.effective_chat.id)
    except Exception:
        log.warning("could not read the chat's language for the apology")
        return lang
    return stored.language if stored else lang


async def _ask_to_resend(update: object, context: Context) -> None:
    """An answer Telegram never took (a refused connection, a 5xx: it cannot be in the chat): one
    line asking the user to send the command again, best effort (Telegram may still be refusing),
    never silence where it can be helped. Not under a channel's post, where everyone would read it."""
    if not isinstance(update, Update) or update.effective_chat is None or written(update) is None:
        return
    if update.effective_chat.type == ChatType.CHANNEL:
        return
    lang = await _apology_language(update, context)
    try:
        await update.effective_chat.send_message(t(lang, "bot.not_taken"), **placement(update).send_kwargs())
    except TelegramError:
        log.warning("could not ask chat %s to send its command again", update.effective_chat.id)


async def _chat_gone(update: object, context: Context, chat: Chat, error: Forbidden | ChatMigrated) -> None:
    """An answer met a chat that blocked or removed the bot (deactivated, as the push does; a group
    or channel unsubscribed too, as bot.handlers.membership does) or a group that became a
    supergroup (its subscription moved, and the member told to ask again there): the chat's doing,
    not a bug."""
    services = services_of(context)
    if isinstance(error, ChatMigrated):
        log.info("chat %s became supergroup %s while answering it", chat.id, error.new_chat_id)
        try:
            await services.run(chats.migrate, services.engine, chat.id, error.new_chat_id)
        except Exception:  # the database away: the membership update moves it later; the member still hears
            log.warning("chat %s: subscription not moved to %s now", chat.id, error.new_chat_id, exc_info=True)
        await _ask_again(update, context, error.new_chat_id)
    else:
        log.info("chat %s refused the answer (%s): deactivated", chat.id, redact(error.message))
        try:
            await services.run(chats.refused, services.engine, chat.id, f"forbidden: {redact(error.message)}")
        except Exception:  # the database away: the next push's 403 deactivates it
            log.warning("chat %s: not deactivated now", chat.id, exc_info=True)


async def _ask_again(update: object, context: Context, new_chat_id: int) -> None:
    """A member's request met the group's upgrade: its answer is lost with the old id, so the
    supergroup gets one line asking to send it again (not the answer itself: part of it may have
    gone out before the upgrade, and a redrawn button's message is in the old chat)."""
    if not isinstance(update, Update) or (update.effective_message is None and update.callback_query is None):
        return
    services = services_of(context)
    lang = services.settings.default_language
    try:
        stored = await services.run(chats.get_chat, services.engine, new_chat_id)
        lang = stored.language if stored else lang
    except Exception:  # the database away: the line in the default language
        log.warning("could not read supergroup %s's language", new_chat_id)
    try:
        await context.bot.send_message(new_chat_id, t(lang, "bot.group_upgraded"), parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        log.warning("could not ask supergroup %s to send its request again: %s", new_chat_id, exc)
