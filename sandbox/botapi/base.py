"""The state every part of the server shares, with the helpers that find or create users, chats and
messages, check texts and emit events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sandbox.botapi.errors import MIGRATED, ApiError
from sandbox.botapi.faults import _Fault, _RateLimits
from sandbox.botapi.state import ApiCall, BotEvent, ChatState, StoredFile, StoredMessage
from sandbox.botapi.text import CAPTION_LIMIT, TEXT_LIMIT, _utf16_len, visible_text

log = logging.getLogger(__name__)


class _ServerBase:
    """What the Bot API methods, the control API and the server share; :class:`BotApiServer` sets it up."""

    # Set up by BotApiServer.__init__; declared here so that the parts built on this class type-check.
    auto_create_chats: bool
    strict_parse: bool
    bot_user: dict[str, Any]

    users: dict[int, dict[str, Any]]
    chats: dict[int, ChatState]
    files: dict[str, StoredFile]
    calls: list[ApiCall]
    callback_queries: dict[str, dict[str, Any]]
    callback_answers: dict[str, dict[str, Any]]
    inline_queries: dict[str, dict[str, Any]]
    inline_answers: dict[str, dict[str, Any]]
    chat_actions: list[dict[str, Any]]
    uploads: int
    document_uploads: int
    webhook_url: str

    _files_by_path: dict[str, StoredFile]
    _calls_by_method: dict[str, list[ApiCall]]
    _commands: dict[tuple[str, str], list[dict[str, Any]]]
    _updates: deque[dict[str, Any]]
    _next_update_id: int
    _next_file: int
    _next_query: int
    _next_media_group: int
    _poll_future: asyncio.Future[None] | None
    _faults: list[_Fault]
    _latency: dict[str | None, float]
    _rate: _RateLimits | None
    _call_waiters: list[tuple[Callable[[ApiCall], bool], asyncio.Future[ApiCall]]]
    _subscribers: list[asyncio.Queue[BotEvent]]
    _listeners: list[Callable[[BotEvent], None]]

    _server: asyncio.Server | None
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread_id: int | None
    _thread_loop: asyncio.AbstractEventLoop | None

    @property
    def bot_id(self) -> int:
        """The bot's user id (the number before the colon in the token)."""
        return int(self.bot_user["id"])

    # ---------------------------------------------------------------- chats, users, messages

    def _user(self, user: int | dict[str, Any]) -> dict[str, Any]:
        if isinstance(user, dict):
            self.users.setdefault(int(user["id"]), user)
            return user
        found = self.users.get(user)
        if found is None:
            found = self.users[user] = {"id": user, "is_bot": False, "first_name": f"User{user}"}
        return found

    def _chat_for_request(self, chat_ref: int | str | None) -> ChatState:
        if chat_ref is None or chat_ref == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat: ChatState | None
        if isinstance(chat_ref, str) and not chat_ref.lstrip("-").isdigit():
            name = chat_ref.lstrip("@").lower()
            chat = next((c for c in self.chats.values() if (c.username or "").lower() == name), None)
        else:
            chat_id = int(chat_ref)
            chat = self.chats.get(chat_id)
            if chat is None and self.auto_create_chats:
                chat = self._auto_chat(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat.migrated_to is not None:
            raise ApiError(400, MIGRATED, {"migrate_to_chat_id": chat.migrated_to})
        return chat

    def _auto_chat(self, chat_id: int) -> ChatState:
        if chat_id > 0:
            user = self._user(chat_id)
            chat = ChatState(chat_id, "private", first_name=user["first_name"], username=user.get("username"))
        elif str(chat_id).startswith("-100"):
            chat = ChatState(chat_id, "supergroup", title=f"Supergroup {chat_id}")
        else:
            chat = ChatState(chat_id, "group", title=f"Group {chat_id}")
        self.chats[chat_id] = chat
        return chat

    def _known_chat(self, chat_id: int) -> ChatState:
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self._auto_chat(chat_id)
        return chat

    def _new_message(
        self, chat: ChatState, sender: dict[str, Any], *, reply_to: StoredMessage | None = None, **fields: Any
    ) -> StoredMessage:
        message = StoredMessage(
            chat.id, chat.next_message_id, int(time.time()), sender, chat.to_api(), **fields
        )
        if reply_to is not None:
            snapshot = reply_to.to_api()
            snapshot.pop("reply_to_message", None)  # Telegram nests replies one level only
            message.reply_to_message_id = reply_to.message_id
            message.extra["reply_to_message"] = snapshot
            if message.message_thread_id is None:  # a reply goes to the topic of what it answers
                message.message_thread_id = reply_to.message_thread_id
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        return message

    def _emit(
        self,
        kind: str,
        chat_id: int | None,
        message: StoredMessage | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if not self._subscribers and not self._listeners:
            return
        event = BotEvent(kind, chat_id, message, data)
        for queue in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("stand-in Bot API: event listener failed")

    def _check_text(self, text: Any, parse_mode: str | None, *, caption: bool) -> str | None:
        if text is None:
            return None
        text = str(text)
        limit = CAPTION_LIMIT if caption else TEXT_LIMIT
        plain = visible_text(text, parse_mode, strict=self.strict_parse)
        if not caption and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(plain) > limit // 2 and _utf16_len(plain) > limit:
            raise ApiError(400, f"Bad Request: message {'caption ' if caption else ''}is too long")
        return text

    def _command_key(self, p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")
