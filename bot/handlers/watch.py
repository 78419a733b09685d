"""/watch and /unwatch: the securities a chat follows; their lines ride under its daily push.
In groups, as for the subscription, only admins change the list; anyone may look at it.
A name that matches several securities is answered with one button each, as /stock answers it:
pressed, the button watches that one (`watch:<code>`) and its message becomes the confirmation;
/unwatch NAME matching several that the chat follows offers them the same way (`unwatch:<code>`)."""

from __future__ import annotations

import html

from telegram import CallbackQuery, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.arguments import typed_words
from bot.handlers.common import (
    ALERT_LIMIT,
    Context,
    answer_press,
    chat_language,
    error_text,
    is_admin,
    reply,
    reply_key,
)
from bot.handlers.reports import choice_keyboard
from bot.services import Services, services_of
from reports import securities
from reports.errors import ReportError
from reports.fmt import clipped
from reports.i18n import t
from reports.securities import QUERY_ECHO
from reports.text import to_plain
from storage import chats, queries

WATCH_COMMANDS = ("watch", "unwatch")
WATCH_PREFIX = "watch:"  # a choice button's callback data: watch:<code>
UNWATCH_PREFIX = "unwatch:"  # and the one that stops following: unwatch:<code>


def watch_data(code: str) -> str:
    """The callback data of the choice button that watches `code`."""
    return f"{WATCH_PREFIX}{code}"


def unwatch_data(code: str) -> str:
    """The callback data of the choice button that stops following `code`."""
    return f"{UNWATCH_PREFIX}{code}"


async def _code(update: Update, context: Context, lang: str, words: list[str]) -> str | None:
    """The security the words name (code in any usual form, name, part of a name) and that has
    stored detail, or None after answering what is wrong (nothing matches, no detail; several match:
    each of the first ones a button that watches it)."""
    services = services_of(context)
    try:
        return await services.run(securities.resolve_known, services.engine, " ".join(words))
    except ReportError as exc:
        choices = exc.param("choices", lang)
        # ⭐ as in the watch list's header: these buttons follow a security, /stock's show its report
        followable = tuple((code, f"⭐ {label}") for code, label in choices) if choices else None
        await reply(update, html.escape(error_text(exc, lang, "/watch")),
                    choice_keyboard(followable, watch_data) if followable else None)
        return None


def _several(words: list[str], command: str) -> str | None:
    """Where `words` (typed_words) name more than one security (two codes, "600519 000775", or a code
    and more): the example of one at a time ("/watch 600519", the first code that is one as typed);
    None for one security (a name of several words, a code, a security pasted as the bot lists it)."""
    codes = [securities.code_form(w) for w in words if not securities.exchange_mismatch(w)]
    if len(words) < 2 or not any(securities.code_form(w) for w in words):
        return None
    return f"{command} {next((c for c in codes if c), '600519')}"


def _followed_named(services: Services, chat_id: int, text: str) -> list[tuple[str, str]]:
    """(code, name) of the securities the chat follows whose name holds `text` (case and full-width
    forms aside), in the list's order."""
    wanted = securities.normalized(text).lower()
    codes = chats.watches(services.engine, [chat_id]).get(chat_id, [])
    latest = queries.latest_data_date(services.engine)
    # the names of the latest day in one query; a security without detail that day looked up alone
    names = queries.stock_names(services.engine, codes, latest) if latest and codes else {}
    named = [(code, names.get(code) or securities.name_of(services.engine, code)) for code in codes]
    return [(code, name) for code, name in named if wanted and wanted in securities.normalized(name).lower()]


async def _watched(context: Context, chat_id: int, lang: str, code: str) -> str:
    """Add `code` to the chat's list: the answer (added, already there, list full), with a reminder to
    subscribe where the lines have no push to ride under yet."""
    services = services_of(context)
    outcome = await services.run(chats.watch, services.engine, chat_id, code)
    name = await services.run(securities.name_of, services.engine, code)
    text = t(lang, f"bot.watch_{outcome}", name=html.escape(name), code=code, max=chats.MAX_WATCHES)
    stored = await services.run(chats.get_chat, services.engine, chat_id)
    if outcome == "added" and not (stored and stored.subscribed and stored.active):
        text += "\n" + t(lang, "bot.watch_subscribe")
    return text


async def watch_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    services = services_of(context)
    words = typed_words(context.args or [])
    if not words:  # the list, with each security's figures of the latest day
        codes = (await services.run(chats.watches, services.engine, [chat.id])).get(chat.id, [])
        if not codes:
            await reply_key(update, context, "bot.watch_empty", lang=lang)
            return
        lines = await services.run(services.reports.watch_text, codes, on=None, lang=lang)
        await reply(update, f"{lines}\n{t(lang, 'bot.watch_hint')}")
        return
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only_watch", lang=lang)
        return
    example = _several(words, "/watch")
    if example is not None:
        await reply_key(update, context, "bot.one_security", lang=lang, example=example)
        return
    code = await _code(update, context, lang, words)
    if code is None:
        return
    await reply(update, await _watched(context, chat.id, lang, code))


async def watch_button(update: Update, context: Context) -> None:
    """A choice button under /watch's "several matched": watch the one picked (in groups, an admin's
    press only), and turn the question into the answer. Editing it costs the chat no message of its
    budget (bot.handlers.flood), and leaves no buttons to press twice."""
    pressed = await _pressed_code(update, context, WATCH_PREFIX)
    if pressed is None:
        return
    query, chat_id, lang, offered = pressed
    services = services_of(context)
    try:  # a code that has lost its detail since it was offered is refused, as /watch refuses it
        code = await services.run(securities.resolve_known, services.engine, offered)
    except ReportError as exc:
        await answer_press(query, clipped(error_text(exc, lang, "/watch"), ALERT_LIMIT), show_alert=True)
        return
    await _answer_in_place(query, await _watched(context, chat_id, lang, code))


async def unwatch_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    words = typed_words(context.args or [])
    if not words:
        await reply_key(update, context, "bot.unwatch_need", lang=lang)
        return
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only_watch", lang=lang)
        return
    example = _several(words, "/unwatch")
    if example is not None:
        await reply_key(update, context, "bot.one_security", lang=lang, example=example)
        return
    services = services_of(context)
    # a code as typed is enough: it may no longer have detail (and so no name to find it by); but not
    # one written for another exchange (sh000001, the index, is not 平安银行's 000001)
    code = securities.code_form(words[0]) if len(words) == 1 else None
    if code is not None:
        try:
            securities.check_exchange(words[0])
        except ReportError as exc:
            await reply(update, html.escape(error_text(exc, lang, "/unwatch")))
            return
    if code is None:
        # A name is looked for among what the chat follows first: "/unwatch 银行" means the one bank
        # it follows, not the dozens the market has.
        followed = await services.run(_followed_named, services, chat.id, " ".join(words))
        if len(followed) > 1:
            listed = t(lang, "scope.joiner").join(f"{name} ({found})" for found, name in followed)
            text = t(lang, "bot.unwatch_several", query=html.escape(clipped(" ".join(words), QUERY_ECHO)),
                     listed=html.escape(listed), example=followed[0][0])
            # ✖ as these buttons stop following (a list holds at most MAX_WATCHES: they all fit)
            choices = tuple((found, f"✖ {name} ({found})") for found, name in followed)
            await reply(update, text, choice_keyboard(choices, unwatch_data))
            return
        if not followed:  # none of the chat's: the market's matches would be no answer to "stop following"
            await reply_key(update, context, "bot.not_watched_named", lang=lang,
                            query=clipped(" ".join(words), QUERY_ECHO))
            return
        code = followed[0][0]
    await reply(update, await _unwatched(context, chat.id, lang, code))


async def _unwatched(context: Context, chat_id: int, lang: str, code: str) -> str:
    """Take `code` off the chat's list: the answer (taken off, or it was not on it)."""
    services = services_of(context)
    if await services.run(chats.unwatch, services.engine, chat_id, code):
        name = await services.run(securities.name_of, services.engine, code)
        return t(lang, "bot.unwatched", name=html.escape(name), code=code)
    return t(lang, "bot.not_watched", code=code)


async def unwatch_button(update: Update, context: Context) -> None:
    """A choice button under /unwatch's "several followed match": stop following the one picked (in
    groups, an admin's press only), and turn the question into the answer, as watch_button does."""
    pressed = await _pressed_code(update, context, UNWATCH_PREFIX)
    if pressed is not None:
        query, chat_id, lang, code = pressed
        await _answer_in_place(query, await _unwatched(context, chat_id, lang, code))


async def _pressed_code(update: Update, context: Context, prefix: str) -> tuple[CallbackQuery, int, str, str] | None:
    """(query, chat id, language, code) of a watch list's choice button (`prefix` + code) pressed by
    someone who may change the list; None after answering the press of anyone else (in groups, a
    member: an alert) or of data this bot did not make."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None or not query.data:
        return None
    lang = await chat_language(update, context)
    if not await is_admin(update, context):
        await answer_press(query, t(lang, "bot.admins_only_watch"), show_alert=True)
        return None
    code = securities.code_form(query.data.removeprefix(prefix))
    if code is None:
        await answer_press(query)
        return None
    return query, chat.id, lang, code


async def _answer_in_place(query: CallbackQuery, text: str) -> None:
    """Turn a choice message into its answer (no buttons left to press twice); a message too old to
    edit gets the answer in a box instead, and one deleted meanwhile nothing."""
    if query.message is None or not query.message.is_accessible:
        await answer_press(query, clipped(to_plain(text), ALERT_LIMIT), show_alert=True)
        return
    await answer_press(query)
    try:
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)
    except BadRequest as exc:
        if "message to edit not found" not in str(exc).lower():
            raise


def handlers() -> list:  # type: ignore[type-arg]
    return [CommandHandler("watch", watch_command), CommandHandler("unwatch", unwatch_command),
            CallbackQueryHandler(watch_button, pattern=rf"^{WATCH_PREFIX}"),
            CallbackQueryHandler(unwatch_button, pattern=rf"^{UNWATCH_PREFIX}")]
