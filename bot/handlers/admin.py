"""/status for the bot's operators: the chats in ADMIN_CHAT_IDS. Anywhere else the command does
not exist (the unknown-command answer), so strangers learn nothing about the deployment."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CommandHandler

from bot.handlers.common import COMMAND_ECHO, Context, addressed_to_bot, chat_language, reply, reply_key
from bot.services import services_of
from reports.fmt import clipped
from reports.text import render_status
from storage.status import read_status

ADMIN_COMMANDS = ("status",)


async def status_command(update: Update, context: Context) -> None:
    chat, message = update.effective_chat, update.effective_message
    if chat is None or message is None or not message.text:
        return
    services = services_of(context)
    if chat.id not in services.settings.admin_chat_ids:
        # as any unknown command (chat.unknown_command): in a group answered only when it names this bot
        command = message.text.split()[0]
        if chat.type == "private" or ("@" in command and addressed_to_bot(update, context)):
            await reply_key(update, context, "bot.unknown_command", command=clipped(command, COMMAND_ECHO))
        return
    lang = await chat_language(update, context)
    status = await services.run(read_status, services.engine)
    # a Jinja render, as a report's: in the worker pool, not on the event loop
    await reply(update, await services.run(render_status, lang, status))


def handlers() -> list:  # type: ignore[type-arg]
    return [CommandHandler(list(ADMIN_COMMANDS), status_command)]
