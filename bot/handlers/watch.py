"""/watch and /unwatch: the securities a chat follows; their lines ride under its daily push.
In groups, as for the subscription, only admins change the list; anyone may look at it."""

from __future__ import annotations

import html

from telegram import Update
from telegram.ext import CommandHandler

from bot.handlers.common import Context, chat_language, is_admin, reply, reply_key
from bot.services import services_of
from reports import securities
from reports.errors import ReportError
from reports.i18n import t
from storage import chats

WATCH_COMMANDS = ("watch", "unwatch")


async def _code(update: Update, context: Context, lang: str, words: list[str]) -> str | None:
    """The security the words name (code in any usual form, name, part of a name) and that has
    stored detail, or None after answering what is wrong (nothing matches, several do, no detail)."""
    services = services_of(context)
    try:
        return await services.run(securities.resolve_known, services.engine, " ".join(words))
    except ReportError as exc:
        await reply(update, html.escape(exc.message(lang)))
        return None


async def watch_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    services = services_of(context)
    words = context.args or []
    if not words:  # the list, with each security's figures of the latest day
        codes = (await services.run(chats.watches, services.engine, [chat.id])).get(chat.id, [])
        if not codes:
            await reply_key(update, context, "bot.watch_empty")
            return
        lines = await services.run(services.reports.watch_text, codes, on=None, lang=lang)
        await reply(update, f"{lines}\n{t(lang, 'bot.watch_hint')}")
        return
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only_watch")
        return
    code = await _code(update, context, lang, words)
    if code is None:
        return
    outcome = await services.run(chats.watch, services.engine, chat.id, code)
    name = await services.run(securities.name_of, services.engine, code)
    text = t(lang, f"bot.watch_{outcome}", name=html.escape(name), code=code, max=chats.MAX_WATCHES)
    stored = await services.run(chats.get_chat, services.engine, chat.id)
    if outcome == "added" and not (stored and stored.subscribed and stored.active):
        text += "\n" + t(lang, "bot.watch_subscribe")
    await reply(update, text)


async def unwatch_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    lang = await chat_language(update, context)
    words = context.args or []
    if not words:
        await reply_key(update, context, "bot.unwatch_need")
        return
    if not await is_admin(update, context):
        await reply_key(update, context, "bot.admins_only_watch")
        return
    services = services_of(context)
    # a code as typed is enough: it may no longer have detail (and so no name to find it by)
    code = securities.code_form(words[0]) if len(words) == 1 else None
    code = code or await _code(update, context, lang, words)
    if code is None:
        return
    if await services.run(chats.unwatch, services.engine, chat.id, code):
        name = await services.run(securities.name_of, services.engine, code)
        await reply_key(update, context, "bot.unwatched", name=name, code=code)
    else:
        await reply_key(update, context, "bot.not_watched", code=code)


def handlers() -> list:  # type: ignore[type-arg]
    return [CommandHandler("watch", watch_command), CommandHandler("unwatch", unwatch_command)]
