"""The bot's own membership: removed (a group or channel: unsubscribed too) or blocked -> deactivate;
group upgraded to supergroup -> move."""

from __future__ import annotations

import logging

from telegram import ChatMemberRestricted, ChatMemberUpdated, Update
from telegram.constants import ChatMemberStatus
from telegram.ext import ChatMemberHandler, MessageHandler, filters

from bot.handlers.common import Context
from bot.services import services_of
from reports.i18n import pick_language
from storage import chats

log = logging.getLogger(__name__)
GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)


def is_gone(change: ChatMemberUpdated) -> bool:
    """The bot is no longer in the chat: left or banned, or removed while muted (Telegram keeps a
    restricted member's restrictions after removal: status "restricted" with is_member false)."""
    member = change.new_chat_member
    if member.status in GONE:
        return True
    return isinstance(member, ChatMemberRestricted) and not member.is_member


async def my_chat_member(update: Update, context: Context) -> None:
    change: ChatMemberUpdated | None = update.my_chat_member
    if change is None:
        return
    services = services_of(context)
    chat = change.chat
    status = change.new_chat_member.status
    if is_gone(change):
        reason = f"bot {status}" if status in GONE else "bot removed while restricted"
        log.info("bot removed from chat %s (%s): deactivating", chat.id, reason)
        # a group or channel is unsubscribed too, a user keeps theirs (chats.refused)
        await services.run(chats.refused, services.engine, chat.id, reason)
    else:
        # A group the bot is added to speaks the language of whoever added it, as a chat whose first
        # contact is a message speaks its sender's.
        adder = change.from_user
        lang = pick_language(adder.language_code if adder else None, services.settings.default_language)
        await services.run(chats.ensure_chat, services.engine, chat.id, chat.type, chat.title or chat.full_name or "",
                           lang)


async def migrated(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    services = services_of(context)
    log.info("chat %s migrated to %s: moving its subscription", message.chat.id, message.migrate_to_chat_id)
    await services.run(chats.migrate, services.engine, message.chat.id, message.migrate_to_chat_id)


def handlers() -> list:  # type: ignore[type-arg]
    return [
        ChatMemberHandler(my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER),
        MessageHandler(filters.StatusUpdate.MIGRATE, migrated),
    ]
