"""The flood gate: a per-chat budget of answers, checked before any handler runs.

Every command the bot answers costs a message (one that sends a report two: its chart and its
details; so does a choice button, which sends one too), and a group takes at most 20 a minute (Telegram):
answers beyond that wait in the rate limiter, each holding one of the application's update slots,
so one chat flooding cheap commands (bad arguments, unknown commands) would soon leave none for
anybody else. Over its budget (services.GROUP_ANSWERS_PER_MINUTE, PRIVATE_ANSWERS_PER_MINUTE), a
chat is told once a minute to slow down and the rest is dropped.
Expensive commands have their own, lower limit (services.throttle, COMMANDS_PER_MINUTE).
Before the budget, an edited message that changes nothing the bot read (services.read_anew) stops
here: Telegram sends such edits for a first reaction or a moving live location.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, TypeHandler

from bot.arguments import ArgumentError, parse_report_args
from bot.handlers.chat import KNOWN_COMMANDS
from bot.handlers.common import (
    Context,
    addressed_to_bot,
    answer_press,
    chat_language,
    is_group,
    reply_key,
    seconds_to_wait,
    written,
)
from bot.handlers.reports import REPORT_COMMANDS
from bot.sending import parse_start_payload, parse_window_data
from bot.services import services_of
from reports.i18n import t

log = logging.getLogger(__name__)


# What a report sends: its chart and its details (bot.sending.send_report).
REPORT_MESSAGES = 2


def messages_asked(update: Update) -> int:
    """The messages the answer will take: REPORT_MESSAGES for what sends a report (a report command
    whose arguments parse, a deep link /start <payload>, a choice button "p:", and plain text, which
    a private chat answers with the report of the security it names; a bad one is answered in one
    line, but which text names a security only the database tells), else one."""
    query = update.callback_query
    if query is not None:
        return REPORT_MESSAGES if is_choice(query.data) else 1
    message = written(update)
    text = message.text if message is not None and message.text else ""
    if not text.startswith("/"):
        return REPORT_MESSAGES if text.strip() else 1
    command, *words = text.split()
    kind = command.lstrip("/").split("@")[0].lower()
    if kind == "start":
        try:
            parse_start_payload(words[0] if words else "")
        except ValueError:
            return 1  # the welcome
        return REPORT_MESSAGES
    if kind not in REPORT_COMMANDS:
        return 1
    try:
        parse_report_args(kind, words)
    except ArgumentError:
        return 1
    return REPORT_MESSAGES


def is_choice(data: str | None) -> bool:
    """A choice button's data (bot.sending.pick_data): pressed, it sends a whole new report."""
    try:
        parse_window_data(data or "", prefix="p")
    except ValueError:
        return False
    return True


def asks_for_an_answer(update: Update, context: Context) -> bool:
    """In a private chat any message or button press; in a group a command this bot answers: one of
    its own (/ratio, /ratio@thisbot) or any named for it (/foo@thisbot), never another bot's (/roll,
    /ratio@otherbot). A group's window and settings buttons cost it no message (they edit one): not
    counted here (the reports they redraw are, by services.throttle); its choice buttons send a new
    report, and are."""
    chat = update.effective_chat
    if chat is None:
        return False
    if update.callback_query is not None:
        return not is_group(chat) or is_choice(update.callback_query.data)
    message = written(update)
    if message is None or message.via_bot is not None:
        return False  # no message, or this bot's own inline result: nothing is answered
    if not is_group(chat):
        return True
    if not message.text or not message.text.startswith("/") or not addressed_to_bot(update, context):
        return False
    command = message.text.split()[0]
    return "@" in command or command.lstrip("/").lower() in KNOWN_COMMANDS


async def gate(update: Update, context: Context) -> None:
    chat = update.effective_chat
    services = services_of(context)
    message = written(update)
    if message is not None and message.is_automatic_forward:
        # A linked channel's post copied into its discussion group: the channel's command was
        # answered (or not) in the channel; answering the copy would do it twice. It tells which
        # channel is linked (common.is_admin).
        if chat is not None and message.sender_chat is not None and message.sender_chat.type == ChatType.CHANNEL:
            services.remember_linked_channel(chat.id, message.sender_chat.id)
        raise ApplicationHandlerStop
    if chat is not None and message is not None and not services.read_anew(
            chat.id, message.message_id, message.text or message.caption or "",
            edited=update.edited_message is not None):
        raise ApplicationHandlerStop  # an edit that changed nothing read (a reaction, a live location)
    if chat is None or not asks_for_an_answer(update, context):
        return
    budget = services.group_answers if is_group(chat) else services.private_answers
    wait = budget.check(chat.id, messages_asked(update))
    if wait <= 0:
        return
    log.info("chat %s over its answer budget: update dropped", chat.id)
    # One "slow down" a minute per chat, whichever allowance ran out (this one or services.throttle's).
    if services.throttle.should_warn(chat.id):
        seconds = seconds_to_wait(wait)
        if update.callback_query is not None:
            await answer_press(update.callback_query, t(await chat_language(update, context), "bot.slow_down",
                                                        seconds=seconds))
        else:
            await reply_key(update, context, "bot.slow_down", seconds=seconds)
    elif update.callback_query is not None:
        await answer_press(update.callback_query)  # no spinning button
    raise ApplicationHandlerStop


def handlers() -> list:  # type: ignore[type-arg]
    return [TypeHandler(Update, gate)]
