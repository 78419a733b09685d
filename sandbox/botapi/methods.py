"""The Bot API methods the stand-in answers, from ``getMe`` to ``getFile``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from sandbox.botapi.errors import _DEFAULT_DESCRIPTIONS, NOT_MODIFIED, ApiError
from sandbox.botapi.files import _FileStore
from sandbox.botapi.state import ApiCall, ChatState, StoredFile, StoredMessage, UploadedPart, _member_json

_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")


class _BotApiMethods(_FileStore):
    """The ``_m_<method>`` implementations :class:`BotApiServer` dispatches to, and their helpers."""

    def _reply_target(self, params: dict[str, Any], chat: ChatState) -> StoredMessage | None:
        reply = params.get("reply_parameters")
        allow_missing = False
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.get("reply_to_message_id")
            allow_missing = params.get("allow_sending_without_reply") is True
        if message_id is None:
            return None
        target = chat.messages.get(int(message_id))
        if (target is None or target.deleted) and not allow_missing:
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _topic(self, params: dict[str, Any], chat: ChatState) -> int | None:
        """The forum topic a send names (message_thread_id); Telegram refuses one in a chat without topics."""
        thread = params.get("message_thread_id")
        if thread is None:
            return None
        if not chat.is_forum or int(thread) in chat.deleted_topics:
            raise ApiError(400, "Bad Request: message thread not found")
        return int(thread)

    def _message_for_edit(self, params: dict[str, Any]) -> StoredMessage | None:
        if params.get("inline_message_id"):
            return None
        chat = self._chat_for_request(params.get("chat_id"))
        message = chat.messages.get(_int_param(params, "message_id"))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not message.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    # ---------------------------------------------------------------- Bot API methods
    # Each _m_<method> gets (params, files, call) and returns the JSON "result" or raises ApiError.

    def _m_getMe(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logOut(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return True

    def _m_close(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return True

    def _m_deleteWebhook(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        self.webhook_url = ""
        if p.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _m_setWebhook(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        self.webhook_url = str(p.get("url") or "")
        return True

    def _m_getWebhookInfo(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _m_getUpdates(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        offset = _int_param(p, "offset", 0)
        limit = min(max(_int_param(p, "limit", 100), 1), 100)
        timeout = float(p.get("timeout") or 0)
        allowed = p.get("allowed_updates") or None
        updates = self._updates
        if offset < 0:
            while len(updates) > -offset:
                updates.popleft()
        else:
            while updates and updates[0]["update_id"] < offset:
                updates.popleft()
        if not updates and timeout > 0 and self._server is not None:
            previous = self._poll_future
            if previous is not None and not previous.done():
                previous.set_exception(ApiError(409, _DEFAULT_DESCRIPTIONS[409]))
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._poll_future = waiter
            timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            finally:
                timer.cancel()
                if self._poll_future is waiter:
                    self._poll_future = None
        result: list[dict[str, Any]] = []
        for update in updates:
            if allowed is None or any(kind in update for kind in allowed):
                result.append(update)
                if len(result) == limit:
                    break
        return result

    def _m_sendMessage(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        text = self._check_text(p.get("text"), p.get("parse_mode"), caption=False)
        if text is None:
            raise ApiError(400, "Bad Request: message text is empty")
        message = self._new_message(
            chat,
            self.bot_user,
            text=text,
            parse_mode=p.get("parse_mode"),
            reply_markup=p.get("reply_markup"),
            reply_to=self._reply_target(p, chat),
            message_thread_id=self._topic(p, chat),
        )
        self._emit("message", chat.id, message)
        return message.to_api()

    def _m_sendPhoto(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return self._send_file(p, f, call, "photo", lambda stored: {"photo": stored.photo_sizes})

    def _m_sendDocument(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return self._send_file(p, f, call, "document", lambda stored: {"document": stored.document_json()})

    def _send_file(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall, kind: str,
                   content: Callable[[StoredFile], dict[str, Any]]) -> Any:
        """sendPhoto / sendDocument: the file (uploaded or by file_id) with its caption."""
        chat = self._chat_for_request(p.get("chat_id"))
        caption = self._check_text(p.get("caption"), p.get("parse_mode"), caption=True)
        stored = self._input_file(p.get(kind), f, kind, kind, call)
        message = self._new_message(
            chat,
            self.bot_user,
            caption=caption,
            parse_mode=p.get("parse_mode"),
            reply_markup=p.get("reply_markup"),
            media_source=call.media_source,
            reply_to=self._reply_target(p, chat),
            message_thread_id=self._topic(p, chat),
            **content(stored),
        )
        self._emit("message", chat.id, message)
        return message.to_api()

    def _m_sendMediaGroup(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        media = p.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media in the album (2-10 required)")
        resolved = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "document"):
                raise ApiError(400, f"Bad Request: media type {kind!r} is not supported by the stand-in")
            caption = self._check_text(item.get("caption"), item.get("parse_mode"), caption=True)
            resolved.append((item, kind, caption, self._input_file(item.get("media"), f, kind, kind, call)))
        group_id = str(10_000_000 + self._next_media_group)
        self._next_media_group += 1
        results = []
        for item, kind, caption, stored in resolved:
            message = self._new_message(
                chat,
                self.bot_user,
                caption=caption,
                parse_mode=item.get("parse_mode"),
                photo=stored.photo_sizes if kind == "photo" else None,
                document=stored.document_json() if kind == "document" else None,
                media_source=call.media_source,
                media_group_id=group_id,
                reply_to=self._reply_target(p, chat),
            message_thread_id=self._topic(p, chat),
            )
            self._emit("message", chat.id, message)
            results.append(message.to_api())
        return results

    def _m_sendChatAction(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        action = {"chat_id": chat.id, "action": p.get("action"), "time": call.time}
        self.chat_actions.append(action)
        self._emit("chat_action", chat.id, data=action)
        return True

    def _m_editMessageText(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        text = self._check_text(p.get("text"), p.get("parse_mode"), caption=False)
        if text is None:
            raise ApiError(400, "Bad Request: message text is empty")
        message = self._message_for_edit(p)
        if message is None:
            return True
        if message.text is None:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        markup = p.get("reply_markup")
        _refuse_unchanged(message, "text", text, p.get("parse_mode"), markup)
        message.text, message.parse_mode = text, p.get("parse_mode")
        return self._edited(message, markup)

    def _m_editMessageCaption(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        caption = self._check_text(p.get("caption"), p.get("parse_mode"), caption=True)
        message = self._message_for_edit(p)
        if message is None:
            return True
        if message.photo is None and message.document is None:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        markup = p.get("reply_markup")
        _refuse_unchanged(message, "caption", caption, p.get("parse_mode"), markup)
        message.caption, message.parse_mode = caption, p.get("parse_mode")
        return self._edited(message, markup)

    def _m_editMessageMedia(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        media = p.get("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "document"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: photo or document expected")
        kind = media["type"]
        caption = self._check_text(media.get("caption"), media.get("parse_mode"), caption=True)
        message = self._message_for_edit(p)
        if message is not None and message.photo is None and message.document is None:
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        stored = self._input_file(media.get("media"), f, "media", kind, call)
        if message is None:
            return True
        if kind == "photo":
            message.photo, message.document = stored.photo_sizes, None
        else:
            message.photo, message.document = None, stored.document_json()
        message.caption, message.parse_mode = caption, media.get("parse_mode")
        message.media_source = call.media_source
        return self._edited(message, p.get("reply_markup"))

    def _m_editMessageReplyMarkup(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        message = self._message_for_edit(p)
        if message is None:
            return True
        markup = p.get("reply_markup")
        if markup == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        return self._edited(message, markup)

    def _edited(self, message: StoredMessage, markup: dict[str, Any] | None) -> dict[str, Any]:
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        message.reply_markup = markup
        message.edit_date = int(time.time())
        message.edits += 1
        self._emit("edit", message.chat_id, message)
        return message.to_api()

    def _m_deleteMessage(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        message = chat.messages.get(_int_param(p, "message_id"))
        if message is None or message.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        message.deleted = True
        self._emit("delete", chat.id, message)
        return True

    def _m_answerCallbackQuery(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        query_id = str(p.get("callback_query_id") or "")
        if query_id not in self.callback_queries:
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        self.callback_answers[query_id] = p
        chat_id = self.callback_queries[query_id].get("message", {}).get("chat", {}).get("id")
        self._emit("callback_answer", chat_id, data=p)
        return True

    def _m_answerInlineQuery(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        query_id = str(p.get("inline_query_id") or "")
        if query_id not in self.inline_queries:
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        results = p.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise ApiError(400, "Bad Request: results must be a list of at most 50 InlineQueryResult")
        for result in results:
            if not isinstance(result, dict) or not result.get("type") or not result.get("id"):
                raise ApiError(400, "Bad Request: RESULT_TYPE_INVALID")
            file_id = result.get("photo_file_id") or result.get("document_file_id")
            if file_id is not None and file_id not in self.files:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        self.inline_answers[query_id] = p
        self._emit("inline_answer", None, data=p)
        return True

    def _m_setMyCommands(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._command_key(p)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _m_getMyCommands(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        return self._commands.get(self._command_key(p), [])

    def _m_deleteMyCommands(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        self._commands.pop(self._command_key(p), None)
        return True

    def _m_getChat(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        info = chat.to_api()
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if chat.migrated_from is not None:
            info["description"] = f"Upgraded from group {chat.migrated_from}"
        return info

    def _m_getChatMember(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        user_id = _int_param(p, "user_id")
        if user_id == self.bot_id:
            return _member_json(self.bot_user, chat.bot_status)
        if chat.type == "private":
            status = "member" if user_id == chat.id else "left"
        else:
            status = chat.members.get(user_id, "left")
        if user_id not in self.users and status == "left":
            raise ApiError(400, "Bad Request: user not found")
        return _member_json(self._user(user_id), status)

    def _m_getChatAdministrators(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        if not chat.is_group:
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        admins = [
            _member_json(self._user(uid), status)
            for uid, status in chat.members.items()
            if status in ("creator", "administrator")
        ]
        if chat.bot_status == "administrator":
            admins.append(_member_json(self.bot_user, "administrator"))
        return admins

    def _m_getChatMemberCount(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        if chat.type == "private":
            return 2
        present = sum(1 for status in chat.members.values() if status not in ("left", "kicked"))
        return present + (chat.bot_status not in ("left", "kicked"))

    def _m_leaveChat(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        if chat.type == "private":
            raise ApiError(400, "Bad Request: chat member status can't be changed in private chats")
        chat.bot_status = "left"
        return True

    def _m_getFile(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        stored = self.files.get(str(p.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        file_id = str(p["file_id"])
        unique = stored.file_unique_id
        if stored.photo_sizes:
            unique = next(
                (s["file_unique_id"] for s in stored.photo_sizes if s["file_id"] == file_id), unique
            )
        return {
            "file_id": file_id,
            "file_unique_id": unique,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise ApiError(400, f"Bad Request: {name} is empty")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name}") from None


def _refuse_unchanged(message: StoredMessage, field: str, value: str | None, parse_mode: Any, markup: Any) -> None:
    """Telegram refuses an edit that changes nothing (text or caption, parse mode and buttons alike)."""
    if value == getattr(message, field) and parse_mode == message.parse_mode and markup == message.reply_markup:
        raise ApiError(400, NOT_MODIFIED)
