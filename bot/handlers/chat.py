"""/start, /help, /subscribe, /unsubscribe, /settings, answers to unknown commands and to plain text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.arguments import typed_words
from bot.handlers.admin import ADMIN_COMMANDS
from bot.handlers.common import (
    COMMAND_ECHO,
    Context,
    addressed_to_bot,
    answer_press,
    chat_language,
    ignored_note,
    is_admin,
    placement,
    reply,
    reply_key,
)
from bot.handlers.reports import REPORT_COMMANDS, answer_report_args, render_and_send
from bot.handlers.watch import WATCH_COMMANDS
from bot.sending import parse_start_payload
from bot.services import services_of
from reports import securities
from reports.fmt import clipped
from reports.i18n import LANGUAGES, t
from storage import chats

PUSH_TIMES = ("default", "12:00", "15:30", "20:00")
HELP_PAYLOAD = "help"  # /start help: what inline mode's "why nothing" buttons open (bot.handlers.inline)
KNOWN_COMMANDS = frozenset({"start", "help", "subscribe", "unsubscribe", "settings", *REPORT_COMMANDS, *ADMIN_COMMANDS,
                            *WATCH_COMMANDS})
# How alike (difflib's ratio) an unknown command's name and a known one must be for the known one to
# be suggested: a swapped or dropped letter (ratoi, stokc, sector, top10) is, while a mere shared
# letter or two is not (chart is 0.6 like start, foo 0.33 like top: no suggestion beats a wrong one).
SUGGEST_CUTOFF = 0.7
# The commands that take arguments: one typed glued to a number (/top5, /ratio250) is suggested with
# the number as its first argument (/top 5); any other's number is dropped (/help2: /help).
ARGUMENT_COMMANDS = frozenset({*REPORT_COMMANDS, *WATCH_COMMANDS})
_GLUED_NUMBER = re.compile(r"(?P<name>[a-z_]+?)(?P<number>\d+)", re.ASCII)
# Plain text of at most this many words whose first, in Chinese, names no security was typed as a name
# (茅台, 茅台 60): its answer says nothing matched; longer text is chat, and gets the hint.
NAME_LIKE_WORDS = 3


async def start(update: Update, context: Context) -> None:
    """The welcome; with a deep link's payload (t.me/<bot>?start=stock_600519, the button under a
    shared chart) the report it names instead; with "help" (the button of an inline answer that
    could offer nothing) the help."""
    lang = await chat_language(update, context)
    if context.args and context.args[0] == HELP_PAYLOAD:
        await _send_help(update, context, lang)
        return
    if context.args:
        try:
            kind, code, days, on = parse_start_payload(context.args[0])
        except ValueError:
            pass  # not a link this bot made: the welcome
        else:
            await render_and_send(update, context, kind, lang, code=code, days=days, on=on)
            return
    await reply(update, t(lang, "bot.start"))


async def help_command(update: Update, context: Context) -> None:
    lang = await chat_language(update, context)
    await _send_help(update, context, lang, ignored_note(context, lang))


async def _send_help(update: Update, context: Context, lang: str, note: str = "") -> None:
    username = services_of(context).bot_username or context.bot.username
    await reply(update, t(lang, "bot.help", bot=username) + note)


async def subscribe(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)  # and makes sure the chat is stored
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only", lang=lang)
        return
    services = services_of(context)
    topic = placement(update).thread_id  # subscribed from a forum topic: the push goes there
    changed = await services.run(chats.set_subscribed, services.engine, chat.id, True, topic)
    if changed:
        when = await _push_time(context, chat.id)
        await reply_key(update, context, "bot.subscribed_topic" if topic is not None else "bot.subscribed",
                        takes_no_arguments=True, lang=lang, time=when.strftime("%H:%M"))
    else:
        await reply_key(update, context, "bot.already_subscribed", takes_no_arguments=True, lang=lang)


async def unsubscribe(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only", lang=lang)
        return
    services = services_of(context)
    changed = await services.run(chats.set_subscribed, services.engine, chat.id, False)
    await reply_key(update, context, "bot.unsubscribed" if changed else "bot.not_subscribed", takes_no_arguments=True,
                    lang=lang)


def _settings_keyboard(default_time: time) -> InlineKeyboardMarkup:
    """A button per language, each named in itself (中文, English), and one per push time."""
    times = []
    for value in PUSH_TIMES:
        label = f"{default_time:%H:%M}" if value == "default" else value
        times.append(InlineKeyboardButton(label, callback_data=f"s:time:{value}"))
    languages = [InlineKeyboardButton(t(code, "bot.language_name"), callback_data=f"s:lang:{code}")
                 for code in LANGUAGES]
    return InlineKeyboardMarkup([languages, times])


async def _push_time(context: Context, chat_id: int) -> time:
    """The chat's push time: its own, or the configured default (PUSH_TIME)."""
    services = services_of(context)
    stored = await services.run(chats.get_chat, services.engine, chat_id)
    return stored.push_time if stored and stored.push_time else services.settings.push_time


async def _settings_text(context: Context, chat_id: int, lang: str) -> str:
    push = await _push_time(context, chat_id)
    return t(lang, "bot.settings", language=t(lang, "bot.language_name"), push_time=push.strftime("%H:%M"))


async def settings_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    services = services_of(context)
    await chat.send_message(
        await _settings_text(context, chat.id, lang) + ignored_note(context, lang), parse_mode=ParseMode.HTML,
        reply_markup=_settings_keyboard(services.settings.push_time), **placement(update).send_kwargs(),
    )


async def settings_button(update: Update, context: Context) -> None:
    """`s:lang:<zh|en>` or `s:time:<HH:MM|default>`; in groups only admins may change settings."""
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None or not query.data:
        return
    lang = await chat_language(update, context)
    if not await is_admin(update, context):
        await answer_press(query, t(lang, "bot.admins_only_settings"), show_alert=True)
        return
    services = services_of(context)
    _, what, value = (query.data.split(":", 2) + ["", ""])[:3]
    if what == "lang" and value in LANGUAGES:
        await services.run(chats.set_language, services.engine, chat.id, value)
        lang = value
        await answer_press(query, t(lang, "bot.settings_language"))
    elif what == "time" and (value == "default" or value in PUSH_TIMES):
        chosen = None if value == "default" else time.fromisoformat(value)
        await services.run(chats.set_push_time, services.engine, chat.id, chosen)
        shown = (chosen or services.settings.push_time).strftime("%H:%M")
        await answer_press(query, t(lang, "bot.settings_time", push_time=shown))
    else:
        await answer_press(query)
        return
    if query.message is not None and query.message.is_accessible:
        try:
            await query.edit_message_text(
                await _settings_text(context, chat.id, lang), parse_mode=ParseMode.HTML,
                reply_markup=_settings_keyboard(services.settings.push_time),
            )
        except BadRequest as exc:
            # The setting already shown (a second tap): Telegram refuses an identical edit.
            if "not modified" not in str(exc).lower():
                raise


async def unknown_command(update: Update, context: Context) -> None:
    """In private chats any unknown command; in groups only those addressed to this bot (/x@thisbot)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text:
        return
    command = message.text.split()[0]
    name, _, addressee = command.lstrip("/").partition("@")
    ours = services_of(context).bot_username or context.bot.username or ""
    if name.lower() in KNOWN_COMMANDS and (chat.type != ChatType.PRIVATE or addressee.lower() in ("", ours.lower())):
        # handled in the main group (this fallback sees every command); in a private chat, one of
        # ours named for another bot (/ratio@otherbot) is not, and is answered here
        return
    if chat.type != ChatType.PRIVATE and ("@" not in command or not addressed_to_bot(update, context)):
        return  # another bot's command, or a name this bot does not know addressed to nobody in particular
    services = services_of(context)
    # /status exists only in the operators' chats: elsewhere it is never suggested (nor otherwise told)
    names = KNOWN_COMMANDS if chat.id in services.settings.admin_chat_ids else KNOWN_COMMANDS - set(ADMIN_COMMANDS)
    # the addressee kept where it is this bot (a group with several bots), dropped where it is another
    ours_named = addressee if addressee and addressee.lower() == ours.lower() else ""
    suggestion = suggested_command(name, ours_named, message.text.split()[1:], names)
    if suggestion is None:
        await reply_key(update, context, "bot.unknown_command", command=clipped(command, COMMAND_ECHO))
    else:
        await reply_key(update, context, "bot.unknown_command_suggest", command=clipped(command, COMMAND_ECHO),
                        suggestion=clipped(suggestion, COMMAND_ECHO))


def suggested_command(name: str, addressee: str, words: list[str], known: Iterable[str]) -> str | None:
    """The command a user probably meant by /`name` (a typo of a known one: /ratoi 20 -> "/ratio 20"),
    with their arguments as they typed them and `addressee` (this bot's username, or ""); None when no
    known name is close enough (SUGGEST_CUTOFF). A known name itself is its own suggestion: in a
    private chat /ratio@otherbot reaches no other bot, and /ratio is what was meant. A name glued to
    a number (/top5, /ratio250, /sectors20, /stock600519) is that command with the number as its
    first argument ("/top 5"), where the command takes arguments (ARGUMENT_COMMANDS)."""
    glued = _GLUED_NUMBER.fullmatch(name.lower())
    if glued is not None:
        close = difflib.get_close_matches(glued["name"], sorted(known), n=1, cutoff=SUGGEST_CUTOFF)
        if close and close[0] in ARGUMENT_COMMANDS:
            return " ".join([f"/{close[0]}" + (f"@{addressee}" if addressee else ""), glued["number"], *words])
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=SUGGEST_CUTOFF)
    if not close:
        return None
    return " ".join([f"/{close[0]}" + (f"@{addressee}" if addressee else ""), *words])


def _has_han(word: str) -> bool:
    """Whether `word` holds a Chinese character, as the names of A shares do (hello is not a name)."""
    return any("\u4e00" <= char <= "\u9fff" for char in word)


async def private_text(update: Update, context: Context) -> None:
    """Text that is not a command, in a private chat: a security's code or name (or part of a name),
    optionally with a window and a date, is /stock ...; anything else gets a hint instead of silence.
    (In groups the bot answers commands only.)"""
    message = update.effective_message
    if message is None or not message.text:
        return
    words = typed_words(message.text.split())
    if words:
        services = services_of(context)
        if await services.run(securities.candidates, services.engine, words[0], None):
            await answer_report_args(update, context, "stock", words)
            return
    if update.edited_message is not None:  # an edit that asks for nothing: the hint was given for the original
        return
    if 0 < len(words) <= NAME_LIKE_WORDS and len(words[0]) <= securities.MAX_NAME_LENGTH and _has_han(words[0]):
        # a Chinese word or two, as a name is typed: say that no security has it, not "send a command"
        await reply_key(update, context, "bot.plain_text_no_match", query=clipped(words[0], securities.QUERY_ECHO))
    else:
        await reply_key(update, context, "bot.plain_text")


async def private_other(update: Update, context: Context) -> None:
    """Anything but text in a private chat: what the bot understands, instead of silence."""
    await reply_key(update, context, "bot.plain_text")


def handlers() -> list:  # type: ignore[type-arg]
    return [
        CommandHandler("start", start),
        CommandHandler("help", help_command),
        CommandHandler("subscribe", subscribe),
        CommandHandler("unsubscribe", unsubscribe),
        CommandHandler("settings", settings_command),
        CallbackQueryHandler(settings_button, pattern=r"^s:"),
        # messages sent "via" this bot are its own inline results: nothing to answer
        MessageHandler(filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND & ~filters.VIA_BOT, private_text),
        # a photo, a sticker, a voice note... in a private chat: the same hint as for other text (once)
        MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & ~filters.TEXT
                       & ~filters.StatusUpdate.ALL & ~filters.VIA_BOT, private_other),
    ]


async def stale_button(update: Update, context: Context) -> None:
    """A button press no handler knows (an old keyboard, forged data): answered, so it stops spinning."""
    if update.callback_query is not None:
        await answer_press(update.callback_query)


def last_handlers() -> list:  # type: ignore[type-arg]
    """After every other handler of the main group: what none of them took."""
    return [CallbackQueryHandler(stale_button)]


def fallback_handlers() -> list:  # type: ignore[type-arg]
    # a channel's posts are its content: only the channel commands below are answered there
    return [MessageHandler(filters.COMMAND & ~filters.UpdateType.CHANNEL_POSTS, unknown_command)]


# What a channel's admins can ask by posting in it (all of them are admins: only admins post).
CHANNEL_COMMANDS = {"subscribe": subscribe, "unsubscribe": unsubscribe, "settings": settings_command}


async def channel_other(update: Update, context: Context) -> None:
    """Any other command posted in a channel for this bot: what can be done there, once."""
    message = update.channel_post
    if message is None or not message.text:
        return
    command = message.text.split()[0]
    if command.lstrip("/").split("@")[0].lower() in CHANNEL_COMMANDS:
        return
    if "@" in command and not addressed_to_bot(update, context):
        return  # another bot's
    await reply_key(update, context, "bot.channel_help")


def channel_handlers() -> list:  # type: ignore[type-arg]
    """A channel subscribes to the daily push and sets its language and time; reports are asked for
    in a chat with the bot (a channel's posts go to every subscriber)."""
    posts = filters.UpdateType.CHANNEL_POST
    return [*(CommandHandler(name, callback, filters=posts) for name, callback in CHANNEL_COMMANDS.items()),
            MessageHandler(posts & filters.COMMAND, channel_other)]
