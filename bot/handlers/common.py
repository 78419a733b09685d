"""Helpers every handler uses: the chat's language, replying in HTML, answering presses and inline
queries, whether a message is addressed to the bot and whether its sender is an admin."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from telegram import (
    CallbackQuery,
    Chat,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResult,
    Message,
    Update,
    User,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.sending import Placement
from bot.services import Services, services_of
from reports.errors import ReportError, end_cut_list
from reports.fmt import clipped
from reports.i18n import LANGUAGES, pick_language, strings, t
from storage import chats

Context = ContextTypes.DEFAULT_TYPE
log = logging.getLogger(__name__)
IGNORED_ECHO = 32  # characters of the ignored arguments the note echoes
COMMAND_ECHO = 64  # characters of an unknown command (or of a suggestion) an answer echoes
ALERT_LIMIT = 200  # characters Telegram shows in the box a button press is answered with


def error_text(error: ReportError, lang: str, command: str | None = None) -> str:
    """A report error's line in `lang`, as a chat is answered with it (not escaped). `command`
    ("/watch", "/unwatch"): the command the user was typing, which the answer's advice names
    (bot.command_<kind>: "send /watch 000001") instead of /stock, the reports' own. A list cut
    with "…" ends the sentence without a full stop after the ellipsis."""
    key = f"command_{error.kind}"
    if command is not None and key in strings(lang)["bot"]:
        text = t(lang, f"bot.{key}", command=command, **error.params_for(lang))
    else:
        text = error.message(lang)
    return end_cut_list(text)


def is_stale_query(error: BaseException) -> bool:
    """Telegram's refusal of an answer to a button press or an inline query that waited too long for
    the bot (it takes one for about 15 seconds, and updates queued while the bot was down are older)."""
    return isinstance(error, BadRequest) and "query is too old" in error.message.lower()


async def answer_press(query: CallbackQuery, text: str | None = None, **kwargs: Any) -> None:
    """Answer a button press (its spinner stops; `text` shows as a toast or, show_alert, a box). A
    press too old to answer is no error: what it asked for is done all the same."""
    await _unless_stale(query.answer(text, **kwargs), "button press", query.id)


async def answer_inline(query: InlineQuery, results: Sequence[InlineQueryResult], **kwargs: Any) -> None:
    """Answer an inline query; one too old to answer is dropped (its user has typed on)."""
    await _unless_stale(query.answer(results, **kwargs), "inline query", query.id)


async def _unless_stale(answer: Awaitable[bool], what: str, query_id: str) -> None:
    try:
        await answer
    except BadRequest as exc:
        if not is_stale_query(exc):
            raise
        log.info("%s %s was too old to answer", what, query_id)


async def chat_language(update: Update, context: Context) -> str:
    """The stored language of this chat: on first contact the user's Telegram language, which a
    private chat then follows until a language is picked in /settings (storage.chats.ensure_chat)."""
    services = services_of(context)
    chat = update.effective_chat
    if chat is None:
        user = update.effective_user
        return pick_language(user.language_code if user else None, services.settings.default_language)
    user = update.effective_user
    guess = pick_language(user.language_code if user else None, services.settings.default_language)
    # a private chat follows its user's Telegram language until one is picked in /settings
    follow = chat.type == ChatType.PRIVATE and user is not None and user.language_code is not None
    stored = await services.run(
        chats.ensure_chat, services.engine, chat.id, chat.type, chat.title or chat.full_name or "", guess, follow
    )
    return stored.language


async def user_language(services: Services, user: User | None) -> str:
    """Where there is no chat to answer in (inline mode): the language the user chose in their
    private chat with the bot (/settings), else their Telegram one."""
    if user is not None:
        stored = await services.run(chats.get_chat, services.engine, user.id)
        if stored is not None and stored.language_chosen and stored.language in LANGUAGES:
            return str(stored.language)
    return pick_language(user.language_code if user else None, services.settings.default_language)


async def reply(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer in the chat of the update (HTML parse mode), in the topic it came from."""
    chat = update.effective_chat
    if chat is not None:
        await chat.send_message(text, parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                                reply_markup=markup, **placement(update).send_kwargs())


def written(update: Update) -> Message | None:
    """The message a user wrote (sent or edited): never a button press's message, the bot's own."""
    return update.message or update.edited_message


def placement(update: Update) -> Placement:
    """Where the answer to `update` goes: the forum topic of its message (a command in a topic is
    answered there, not in General) and, in groups, a reply to the command that asked, or to the
    message whose button was pressed (a choice under "several matched", itself a reply to the
    command): in a busy group an answer quotes what it answers."""
    message, chat = update.effective_message, update.effective_chat
    thread = message.message_thread_id if message is not None and message.is_topic_message else None
    asked = written(update)
    if asked is None and update.callback_query is not None and message is not None and message.is_accessible:
        asked = message
    quote = asked.message_id if asked is not None and chat is not None and is_group(chat) else None
    return Placement(thread, quote)


def seconds_to_wait(wait: float) -> int:
    """The whole seconds a user is told to wait for `wait` (> 0) seconds: rounded up, so that the
    request then sent is let through (a thousandth over a second is not "1 more second" of waiting)."""
    return max(1, int(wait + 0.999))


async def reply_key(update: Update, context: Context, key: str, *, takes_no_arguments: bool = False,
                    lang: str | None = None, **params: object) -> None:
    """Answer with a per-language string; every parameter is escaped (user text may be echoed).
    `takes_no_arguments`: a subscription command, whose answer says so where it was given some (a
    push time, a language: ignored_note, pointing to /settings).
    `lang`: the chat's language where the handler has it already (else it is looked up: a transaction)."""
    lang = lang or await chat_language(update, context)
    safe = {k: html.escape(str(v)) for k, v in params.items()}
    note = ignored_note(context, lang, settings_hint=True) if takes_no_arguments else ""
    await reply(update, t(lang, key, **safe) + note)


def ignored_note(context: Context, lang: str, settings_hint: bool = False) -> str:
    """For a command that takes no arguments given some (/subscribe 20:00, /help me): a line saying
    they were ignored, so that nobody takes them for obeyed; "" otherwise. The words are escaped and
    cut. `settings_hint`: where they were likely a push time or a language, the line says where
    those are set."""
    if not context.args:
        return ""
    key = "bot.ignored_arguments_settings" if settings_hint else "bot.ignored_arguments"
    return "\n" + t(lang, key, words=html.escape(clipped(" ".join(context.args), IGNORED_ECHO)))


def addressed_to_bot(update: Update, context: Context) -> bool:
    """A command in a private chat, or in a group or channel one named for this bot (/x@thisbot) or
    naming no bot at all (/x): several bots in a group may share a command's name."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text:
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    command = message.text.split()[0]
    if "@" not in command:
        return True
    username = services_of(context).bot_username or context.bot.username or ""
    return command.split("@", 1)[1].lower() == username.lower()


def is_group(chat: Chat) -> bool:
    return chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


async def is_admin(update: Update, context: Context) -> bool:
    """True in private chats; in groups and channels, when the sender is an admin: one posting as the
    chat itself (a group's anonymous admin, any channel post), or a user whose membership says so
    (a button under a channel post may be pressed by any subscriber).

    A message sent as another chat (a member posting as their own channel) comes from Telegram's
    placeholder user (Channel_Bot), whose membership says nothing about who wrote it: refused,
    unless that chat is the group's linked channel (its admins run the discussion group), known
    when one of its posts was copied into the group (bot.handlers.flood.gate)."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or chat.type == ChatType.PRIVATE:
        return True
    posted = written(update) or update.channel_post
    if posted is not None and posted.sender_chat is not None:
        if posted.sender_chat.id == chat.id:
            return True
        return services_of(context).linked_channels.get(chat.id) == posted.sender_chat.id
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)
