"""The chat page: its routes on the stand-in server and the change log it polls.

JSON endpoints of the page (loopback only, ``Host`` must be the loopback address; POST bodies must
be ``application/json``):

* ``GET /api/chats``: the simulated user, the bot, the two chats and the user's language.
* ``GET /api/commands?chat=ID``: the command menu the bot registered (setMyCommands) for that
  chat's scope and the user's language, resolved the way Telegram clients do.
* ``GET /api/history?chat=ID&after=SEQ&wait=S``: messages created, edited or deleted after change
  number SEQ (every chat when ``chat`` is omitted), plus notices (callback answers, chat
  actions); with ``wait`` it long-polls up to S seconds (0 to 30; anything else is a 400) for a
  change.
* ``GET /api/file/FILE_ID``: the bytes of a photo or document the bot uploaded.
* ``POST /api/send {chat, text, as?}``: the user (or, in the group, ``as: "member"``) writes.
* ``POST /api/edit {chat, message_id, text, as?}``: that sender edits the text of one of their own
  text messages: the bot gets an ``edited_message`` update and the message shows its new text,
  marked edited. Answers ``{ok, message_id, edited, seq}``; ``edited`` is false when the text is
  unchanged (Telegram refuses such an edit, MESSAGE_NOT_MODIFIED, so no update is sent). A bot's
  message, another sender's, a deleted or unknown one, one sent via a bot, one without text or
  older than Telegram's 48 hours of editing is refused with 400.
* ``POST /api/callback {chat, message_id, data, as?}``: the user taps an inline button.
* ``POST /api/language {lang}``: the Telegram language (``language_code``) of the simulated user.
* ``POST /api/push``: run the daily push of the latest complete day now (``bot.push.push_now``),
  to every subscribed chat of the page whatever its push time, and report its counts (with
  ``subscribers`` and ``delivered``: how many of them have that day's push).
* ``POST /api/inline {chat, query, as?}``: the user types ``@bot query`` in a chat; answers the
  bot's answerInlineQuery results (``{ok, query_id, query, results: [{id, type, title, photo,
  caption, parse_mode, html, text, sendable}], next_offset}``), 504 when the bot does not answer
  within :data:`INLINE_WAIT` seconds.
* ``POST /api/inline/choose {chat, query_id, result_id, as?}``: the user taps a result: it is sent
  in that chat as the user's message ``via_bot`` the bot, as Telegram does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time as clock
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exists, func, select
from telegram.ext import Application

from sandbox.botapi import (
    ApiCall,
    BotApiServer,
    BotEvent,
    HttpRequest,
    HttpResponse,
    StoredMessage,
    visible_text,
)
from storage import chats, models
from storage.chats import LOCAL_CHAT_ID_FLOOR, local_chat_ids
from storage.database import session_scope

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Invented chats live where no Telegram chat can (LOCAL_CHAT_ID_FLOOR): a real bot on the same
# database forgets them, and the sandbox's push never reaches a real subscriber.
YOU_ID = LOCAL_CHAT_ID_FLOOR + 1
MEMBER_ID = LOCAL_CHAT_ID_FLOOR + 2
GROUP_ID = -(LOCAL_CHAT_ID_FLOOR + 1)
GROUP_TITLE = "两融讨论群"
# Where the bot uploads charts only to get a file_id for inline results (STORAGE_CHAT_ID): a
# channel of its own that the page does not show, so such uploads do not land in your chat.
STORAGE_CHANNEL_ID = -(LOCAL_CHAT_ID_FLOOR + 2)
YOU_NAME = "You"
MEMBER_NAME = "小林"
BOT_USERNAME = "liangrong_sandbox_bot"
BOT_NAME = "两融雷达"
LANGUAGES = ("zh", "en")
MAX_WAIT = 30.0
NOTICES_KEPT = 500
INLINE_WAIT = 10.0  # Telegram's clients give up on an inline answer after about this long
INLINE_QUERY_LIMIT = 256  # Telegram's limit on the text after @bot
INLINE_KEPT = 100  # inline queries remembered for /api/inline/choose
TEXT_LIMIT = 4096  # Telegram's limit on a message's text
EDIT_TIME_LIMIT = 48 * 3600  # Telegram's edit_time_limit: a user edits a message for 48 hours




def _image_type(data: bytes) -> str:
    """The image type from the bytes: uploads often come as application/octet-stream."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class BadRequest(Exception):
    """A request the page should not have made: answered 400 with the message."""


def _json_error(status: int, message: str, **extra: Any) -> HttpResponse:
    return HttpResponse.json_body({"ok": False, "error": message, **extra}, status)


@dataclass(frozen=True, slots=True)
class InlineQuery:
    """An inline query typed on the page: only its typist, in its chat, may send a result."""

    chat_id: int
    user_id: int
    query: str


class ChatPage:
    """The chat page's routes on the stand-in server, and a change log the page polls."""

    def __init__(self, server: BotApiServer, default_language: str = "zh") -> None:
        self.server = server
        self.application: Application | None = None  # type: ignore[type-arg]
        self.lang = default_language if default_language in LANGUAGES else "zh"
        self.seq = 0
        self.instance = secrets.token_hex(6)  # a page that outlives a restart notices the new one
        self._versions: dict[tuple[int, int], int] = {}
        self._notices: deque[dict[str, Any]] = deque(maxlen=NOTICES_KEPT)
        self._changed = asyncio.Event()
        self._inline: OrderedDict[str, InlineQuery] = OrderedDict()
        self.inline_timeout = INLINE_WAIT  # tests shorten it

    # ------------------------------------------------------------------ set-up

    def install(self) -> None:
        """Register users, chats, routes and the event listener on the (not yet started) server."""
        server = self.server
        server.add_user(YOU_ID, YOU_NAME, language_code=self.lang)
        server.add_user(MEMBER_ID, MEMBER_NAME, language_code="zh")
        server.add_chat(YOU_ID, "private")
        server.add_chat(GROUP_ID, "group", title=GROUP_TITLE, members=[MEMBER_ID], admins=[YOU_ID])
        server.add_chat(STORAGE_CHANNEL_ID, "channel", title="marginbot chart storage", bot_status="administrator")
        server.add_listener(self._on_event)
        self._routes = {
            ("GET", "/"): self._index,
            ("GET", "/index.html"): self._index,
            ("GET", "/api/chats"): self._chats,
            ("GET", "/api/commands"): self._commands,
            ("GET", "/api/history"): self._history,
            ("POST", "/api/send"): self._send,
            ("POST", "/api/edit"): self._edit,
            ("POST", "/api/callback"): self._callback,
            ("POST", "/api/language"): self._language,
            ("POST", "/api/push"): self._push,
            ("POST", "/api/inline"): self._inline_query,
            ("POST", "/api/inline/choose"): self._inline_choose,
        }
        self._prefixes = {("GET", "/static/"): self._static, ("GET", "/api/file/"): self._file}
        # "/" is a prefix route of the server (tried after its /bot and /file/bot paths): one router.
        for method in ("GET", "POST"):
            server.add_route(method, "/", self._route)

    @property
    def chat_ids(self) -> tuple[int, int]:
        return (YOU_ID, GROUP_ID)

    # ------------------------------------------------------------------ change log

    def _bump(self) -> int:
        self.seq += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        return self.seq

    def _on_event(self, event: BotEvent) -> None:
        """Runs on the server loop for everything the bot does and every injected update."""
        if event.kind in ("message", "edit", "delete") and event.message is not None:
            self._versions[(event.message.chat_id, event.message.message_id)] = self._bump()
        elif event.kind == "update" and event.data is not None:
            # A user's message, new or edited (edited_message carries it with its new text).
            message = event.data.get("message") or event.data.get("edited_message")
            if isinstance(message, dict) and "chat" in message:
                self._versions[(int(message["chat"]["id"]), int(message["message_id"]))] = self._bump()
        elif event.kind == "callback_answer" and event.data is not None:
            query_id = str(event.data.get("callback_query_id") or "")
            self._notices.append(
                {
                    "seq": self._bump(),
                    "kind": "answer",
                    "chat": event.chat_id,
                    "query_id": query_id,
                    "text": event.data.get("text") or "",
                    "alert": bool(event.data.get("show_alert")),
                }
            )
        elif event.kind == "chat_action" and event.data is not None:
            self._notices.append(
                {
                    "seq": self._bump(),
                    "kind": "action",
                    "chat": event.chat_id,
                    "action": event.data.get("action") or "",
                }
            )

    # ------------------------------------------------------------------ serialisation

    def _user_json(self, user_id: int) -> dict[str, Any]:
        user = self.server.users.get(user_id, {"id": user_id, "first_name": f"User{user_id}"})
        return {"id": user_id, "name": user.get("first_name", ""), "is_bot": bool(user.get("is_bot"))}

    @staticmethod
    def _file_url(file_id: str) -> str:
        return f"/api/file/{file_id}"

    def _message_json(self, message: StoredMessage, seq: int) -> dict[str, Any]:
        sender = message.sender
        body = message.text if message.text is not None else message.caption
        is_html = (message.parse_mode or "").lower() == "html"
        out: dict[str, Any] = {
            "chat": message.chat_id,
            "id": message.message_id,
            "seq": seq,
            "date": message.date,
            "from": {
                "id": sender.get("id"),
                "name": " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p),
                "is_bot": bool(sender.get("is_bot")),
            },
            "html": body if is_html else None,  # Telegram HTML as the bot sent it; the page sanitises it
            "text": message.plain_text(),
            "edited": message.edit_date is not None,
            "deleted": message.deleted,
            "reply_to": message.reply_to_message_id,
            "via_bot": None,
            "photo": None,
            "document": None,
            "buttons": [],
        }
        via = message.extra.get("via_bot")
        if isinstance(via, dict):  # sent by the user through an inline result: "via @bot"
            out["via_bot"] = {"id": via.get("id"), "username": via.get("username") or ""}
        if message.photo:
            largest = message.photo[-1]
            out["photo"] = {
                "url": self._file_url(largest["file_id"]),
                "width": largest.get("width") or 0,
                "height": largest.get("height") or 0,
            }
        if message.document:
            out["document"] = {
                "url": self._file_url(message.document["file_id"]),
                "name": message.document.get("file_name") or "file",
                "size": message.document.get("file_size") or 0,
            }
        keyboard = (message.reply_markup or {}).get("inline_keyboard") or []
        for row in keyboard:
            buttons = []
            for button in row:
                item: dict[str, Any] = {"text": str(button.get("text", ""))}
                if "callback_data" in button:
                    item["data"] = str(button["callback_data"])
                elif button.get("url"):
                    item["url"] = str(button["url"])
                else:
                    item["disabled"] = True  # switch-inline, login, pay: not simulated
                buttons.append(item)
            out["buttons"].append(buttons)
        return out

    def changes(self, after: int, chat_id: int | None = None) -> dict[str, Any]:
        """Messages and notices changed after change number ``after``."""
        messages = []
        for cid in self.chat_ids if chat_id is None else (chat_id,):
            for message in self.server.history(cid, include_deleted=True):
                seq = self._versions.get((cid, message.message_id), 0)
                if seq > after and not (after == 0 and message.deleted):
                    messages.append(self._message_json(message, seq))
        messages.sort(key=lambda m: m["seq"])
        notices = [n for n in self._notices if n["seq"] > after and (chat_id is None or n["chat"] == chat_id)]
        return {"instance": self.instance, "seq": self.seq, "messages": messages, "notices": notices}

    # ------------------------------------------------------------------ routes

    async def _route(self, request: HttpRequest) -> HttpResponse:
        """Loopback Host only (no DNS rebinding); JSON bodies only (no cross-site form posts)."""
        method, path = request.method, request.path
        handler = self._routes.get((method, path))
        if handler is None:
            handler = next(
                (h for (m, prefix), h in self._prefixes.items() if m == method and path.startswith(prefix)),
                None,
            )
        if handler is None:
            return _json_error(404, "Not Found")
        if request.headers.get("host", "") not in (
            f"{HOST}:{self.server.port}",
            f"localhost:{self.server.port}",
        ):
            return _json_error(403, "this page answers on the loopback address only")
        if method == "POST" and not request.headers.get("content-type", "").startswith("application/json"):
            return _json_error(415, "send application/json")
        try:
            return await handler(request)
        except BadRequest as exc:
            return _json_error(400, str(exc))

    async def _index(self, request: HttpRequest) -> HttpResponse:
        return self._static_file("index.html")

    async def _static(self, request: HttpRequest) -> HttpResponse:
        return self._static_file(request.path.removeprefix("/static/"))

    def _static_file(self, name: str) -> HttpResponse:
        known = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()} if STATIC_DIR.is_dir() else {}
        path = known.get(name)
        if path is None:
            return HttpResponse.text_body("Not Found", 404)
        content_type = STATIC_TYPES.get(path.suffix, "application/octet-stream")
        return HttpResponse(200, path.read_bytes(), content_type, {"Cache-Control": "no-cache"})

    async def _chats(self, request: HttpRequest) -> HttpResponse:
        listed = []
        for cid in self.chat_ids:
            state = self.server.chats[cid]
            if state.type == "private":
                title = self.server.bot_user.get("first_name", BOT_NAME)
                members = [self._user_json(YOU_ID) | {"status": "member"}]
            else:
                title = state.title or GROUP_TITLE
                members = [self._user_json(uid) | {"status": status} for uid, status in state.members.items()]
            if state.bot_status not in ("left", "kicked"):
                members.append(
                    {
                        "id": self.server.bot_id,
                        "name": self.server.bot_user.get("first_name", ""),
                        "is_bot": True,
                        "status": state.bot_status,
                    }
                )
            listed.append({"id": cid, "type": state.type, "title": title, "members": members})
        return HttpResponse.json_body(
            {
                "me": self._user_json(YOU_ID),
                "member": self._user_json(MEMBER_ID),
                "bot": {
                    "id": self.server.bot_id,
                    "name": self.server.bot_user.get("first_name", ""),
                    "username": self.server.bot_user.get("username", ""),
                },
                "lang": self.lang,
                "languages": list(LANGUAGES),
                "chats": listed,
                "seq": self.seq,
                "instance": self.instance,
            }
        )

    def _chat_param(self, value: Any) -> int:
        try:
            chat_id = int(value)
        except (TypeError, ValueError):
            raise BadRequest("chat must be one of the page's chat ids") from None
        if chat_id not in self.chat_ids:
            raise BadRequest("chat must be one of the page's chat ids")
        return chat_id

    def _sender(self, chat_id: int, who: Any) -> int:
        if who in (None, "", "you", "me"):
            return YOU_ID
        if who == "member" and chat_id == GROUP_ID:
            return MEMBER_ID
        raise BadRequest("as must be 'you', or 'member' in the group")

    def resolve_commands(self, chat_id: int, user_id: int = YOU_ID) -> list[dict[str, Any]]:
        """The menu a Telegram client shows: the narrowest scope with commands, the user's language first."""
        chat = self.server.chats[chat_id]
        if chat.type == "private":
            scopes: list[dict[str, Any]] = [
                {"type": "chat", "chat_id": chat_id},
                {"type": "all_private_chats"},
            ]
        else:
            admin = chat.members.get(user_id) in ("creator", "administrator")
            scopes = [{"type": "chat_member", "chat_id": chat_id, "user_id": user_id}]
            if admin:
                scopes.append({"type": "chat_administrators", "chat_id": chat_id})
            scopes.append({"type": "chat", "chat_id": chat_id})
            if admin:
                scopes.append({"type": "all_chat_administrators"})
            scopes.append({"type": "all_group_chats"})
        scopes.append({"type": "default"})
        user = self.server.users.get(user_id, {})
        lang = str(user.get("language_code") or "")
        for scope in scopes:
            for code in [lang, ""] if lang else [""]:
                found = self.server.commands(scope, code)
                if found:
                    return found
        return []

    async def _commands(self, request: HttpRequest) -> HttpResponse:
        chat_id = self._chat_param(request.query.get("chat"))
        user_id = self._sender(chat_id, request.query.get("as"))
        return HttpResponse.json_body({"chat": chat_id, "commands": self.resolve_commands(chat_id, user_id)})

    async def _history(self, request: HttpRequest) -> HttpResponse:
        query = request.query
        chat_id = self._chat_param(query["chat"]) if query.get("chat") else None
        try:
            after = max(0, int(query.get("after") or 0))
            wait = float(query.get("wait") or 0)
        except ValueError:
            raise BadRequest("after must be a whole number and wait a number of seconds") from None
        # nan or inf would become a timer of the event loop the bot shares: refused, not clamped.
        if not (math.isfinite(wait) and 0 <= wait <= MAX_WAIT):
            raise BadRequest(f"wait must be a number of seconds from 0 to {MAX_WAIT:g}")
        if after > self.seq:
            after = 0  # the page outlived a restart of the sandbox: start over
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            found = self.changes(after, chat_id)
            remaining = deadline - asyncio.get_running_loop().time()
            if found["messages"] or found["notices"] or remaining <= 0:
                found["after"] = after
                return HttpResponse.json_body(found)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _file(self, request: HttpRequest) -> HttpResponse:
        file_id = request.path.removeprefix("/api/file/")
        stored = self.server.files.get(file_id)
        if stored is None or not stored.data:
            return _json_error(404, "no such file")
        headers = {"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"}
        if stored.kind == "document":
            # A document is offered as a download, never shown in the page's origin.
            name = (stored.file_name or "file").replace('"', "")
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
            return HttpResponse(200, stored.data, "application/octet-stream", headers)
        return HttpResponse(200, stored.data, _image_type(stored.data), headers)

    @staticmethod
    def _body(request: HttpRequest) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    @staticmethod
    def _text_param(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("text must be a non-empty string")
        if len(value) > TEXT_LIMIT:
            raise BadRequest(f"text is longer than Telegram's {TEXT_LIMIT} characters")
        return value

    @staticmethod
    def _message_id_param(value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadRequest("message_id must be a whole number") from None

    async def _send(self, request: HttpRequest) -> HttpResponse:
        body = self._body(request)
        chat_id = self._chat_param(body.get("chat"))
        user_id = self._sender(chat_id, body.get("as"))
        text = self._text_param(body.get("text"))
        sent = self.server.inject_message(chat_id, user_id, text)
        return HttpResponse.json_body({"ok": True, "message_id": sent["message_id"], "seq": self.seq})

    async def _edit(self, request: HttpRequest) -> HttpResponse:
        """The sender edits one of their own text messages, as Telegram's clients allow."""
        body = self._body(request)
        chat_id = self._chat_param(body.get("chat"))
        user_id = self._sender(chat_id, body.get("as"))
        message_id = self._message_id_param(body.get("message_id"))
        text = self._text_param(body.get("text"))
        message = self.server.chats[chat_id].messages.get(message_id)
        if message is None or message.deleted:
            raise BadRequest("no such message in this chat")
        if message.from_bot:
            raise BadRequest("that is the bot's message: only your own messages can be edited")
        if message.sender.get("id") != user_id:
            raise BadRequest("only its sender can edit a message")
        if message.extra.get("via_bot"):
            raise BadRequest("a message sent via a bot cannot be edited")
        if message.text is None:
            raise BadRequest("only a text message can be edited here")
        if clock.time() - message.date > EDIT_TIME_LIMIT:
            raise BadRequest("Telegram lets you edit a message for 48 hours only")
        if text == message.text:  # Telegram: MESSAGE_NOT_MODIFIED, the client just closes its editor
            return HttpResponse.json_body({"ok": True, "message_id": message_id, "edited": False, "seq": self.seq})
        self.server.inject_edit(chat_id, message_id, text)
        return HttpResponse.json_body({"ok": True, "message_id": message_id, "edited": True, "seq": self.seq})

    async def _callback(self, request: HttpRequest) -> HttpResponse:
        body = self._body(request)
        chat_id = self._chat_param(body.get("chat"))
        user_id = self._sender(chat_id, body.get("as"))
        message_id = self._message_id_param(body.get("message_id"))
        data = body.get("data")
        message = self.server.chats[chat_id].messages.get(message_id)
        if message is None or message.deleted:
            raise BadRequest("no such message in this chat")
        keyboard = (message.reply_markup or {}).get("inline_keyboard") or []
        if not any(b.get("callback_data") == data for row in keyboard for b in row):
            raise BadRequest("that message has no button with this callback data")
        query_id = self.server.inject_callback(chat_id, user_id, message_id, str(data))
        return HttpResponse.json_body({"ok": True, "query_id": query_id})

    def _inline_result_json(self, result: dict[str, Any]) -> dict[str, Any]:
        """One result of the bot's answer, as the page shows it (captions go through the page's sanitiser)."""
        file_id = result.get("photo_file_id")
        stored = self.server.files.get(file_id) if isinstance(file_id, str) else None
        caption = result.get("caption")
        parse_mode = result.get("parse_mode")
        content = result.get("input_message_content")
        text_content = isinstance(content, dict) and content.get("message_text") is not None
        photo = None
        if stored is not None and stored.data:
            photo = {
                "url": self._file_url(file_id),
                "file_id": file_id,
                "width": stored.width,
                "height": stored.height,
            }
        return {
            "id": str(result.get("id", "")),
            "type": str(result.get("type", "")),
            "title": str(result.get("title") or ""),
            "photo": photo,
            "caption": caption,
            "parse_mode": parse_mode,
            "html": caption if caption is not None and str(parse_mode or "").lower() == "html" else None,
            "text": visible_text(str(caption), parse_mode, strict=False) if caption is not None else "",
            # What inject_inline_result can turn into a message: a cached photo or a text content.
            "sendable": text_content or (result.get("type") == "photo" and stored is not None),
        }

    def _remember_inline(self, query_id: str, query: InlineQuery) -> None:
        self._inline[query_id] = query
        while len(self._inline) > INLINE_KEPT:
            self._inline.popitem(last=False)

    async def _inline_query(self, request: HttpRequest) -> HttpResponse:
        body = self._body(request)
        chat_id = self._chat_param(body.get("chat"))
        user_id = self._sender(chat_id, body.get("as"))
        query = body.get("query")
        if not isinstance(query, str):
            raise BadRequest("query must be a string: the text after @bot")
        if len(query) > INLINE_QUERY_LIMIT:
            raise BadRequest(f"query is longer than Telegram's {INLINE_QUERY_LIMIT} characters")
        chat = self.server.chats[chat_id]
        # Telegram's chat_type: "sender" is the typist's own private chat with the bot.
        chat_type = "sender" if chat.type == "private" else chat.type
        since = len(self.server.calls)  # only answers recorded after the query count
        query_id = self.server.inject_inline_query(user_id, query, chat_type=chat_type)
        self._remember_inline(query_id, InlineQuery(chat_id, user_id, query))

        def answers_it(call: ApiCall) -> bool:
            return call.method == "answerInlineQuery" and str(call.params.get("inline_query_id")) == query_id

        try:
            # wait_for awaits a future resolved when the call is recorded: the loop keeps serving.
            call = await self.server.wait_for(answers_it, self.inline_timeout, since=since)
        except TimeoutError:
            return _json_error(
                504,
                f"the bot did not answer the inline query within {self.inline_timeout:g} s",
                query_id=query_id,
            )
        if not call.ok:
            return _json_error(502, f"the stand-in refused the bot's answer: {call.error}", query_id=query_id)
        results = call.params.get("results")
        return HttpResponse.json_body(
            {
                "ok": True,
                "query_id": query_id,
                "query": query,
                "results": [self._inline_result_json(r) for r in results if isinstance(r, dict)]
                if isinstance(results, list)
                else [],
                "next_offset": str(call.params.get("next_offset") or ""),
                # The button above the results (a reason, or "open in the bot"): {text, start_parameter}.
                "button": call.params.get("button") if isinstance(call.params.get("button"), dict) else None,
            }
        )

    async def _inline_choose(self, request: HttpRequest) -> HttpResponse:
        body = self._body(request)
        chat_id = self._chat_param(body.get("chat"))
        user_id = self._sender(chat_id, body.get("as"))
        query_id, result_id = body.get("query_id"), body.get("result_id")
        if not isinstance(query_id, str | int) or not isinstance(result_id, str | int):
            raise BadRequest("query_id and result_id must be given")
        query_id, result_id = str(query_id), str(result_id)
        typed = self._inline.get(query_id)
        if typed is None:
            raise BadRequest("no such inline query: type @bot … again")
        if typed.chat_id != chat_id or typed.user_id != user_id:
            raise BadRequest("that inline query was typed in another chat or by another sender")
        answer = self.server.inline_answers.get(query_id)
        if answer is None:
            raise BadRequest("the bot has not answered that inline query")
        if not any(
            isinstance(r, dict) and str(r.get("id")) == result_id for r in answer.get("results") or []
        ):
            raise BadRequest("the bot's answer has no result with that id")
        try:
            sent = self.server.inject_inline_result(chat_id, user_id, query_id, result_id)
        except (KeyError, ValueError) as exc:
            raise BadRequest(str(exc.args[0] if exc.args else exc)) from None
        return HttpResponse.json_body({"ok": True, "message_id": sent["message_id"], "seq": self.seq})

    async def _language(self, request: HttpRequest) -> HttpResponse:
        lang = self._body(request).get("lang")
        if lang not in LANGUAGES:
            raise BadRequest("lang must be zh or en")
        self.lang = str(lang)
        self.server.add_user(YOU_ID, YOU_NAME, language_code=self.lang)
        return HttpResponse.json_body({"ok": True, "lang": self.lang})

    async def _push(self, request: HttpRequest) -> HttpResponse:
        """The daily push of the latest complete day to every subscribed chat of the page, now.

        Each chat's push time (/settings) is for the scheduled push: the button is "now", so the page's
        chats are planned here as at the end of the day, and push_now only runs what is planned.
        """
        from bot.push import latest_pushable_date, push_now
        from bot.services import services_of
        from storage import deliveries

        application = self.application
        if application is None:
            return _json_error(503, "the bot is not running yet")
        services = services_of(application)
        engine = services.engine
        try:
            day = await services.run(latest_pushable_date, services)
            result = None
            if day is not None:
                await services.run(
                    deliveries.plan_deliveries,
                    engine,
                    day,
                    local_now=time.max,
                    default_time=services.settings.push_time,
                    local_only=True,
                )
                result = await push_now(application, day, plan=False)
        except Exception as exc:  # shown on the page; the trace goes to the log
            log.exception("sandbox: the daily push failed")
            return _json_error(500, f"the push failed: {type(exc).__name__}: {exc}")
        subscribers, delivered = await services.run(_local_delivery_counts, engine, day)
        if result is None:
            return HttpResponse.json_body(
                {
                    "ok": False,
                    "subscribers": subscribers,
                    "error": "no complete trade date, or the summary could not be rendered",
                }
            )
        return HttpResponse.json_body(
            {
                "ok": True,
                "trade_date": result.trade_date.isoformat(),
                "sent": result.sent,
                "failed": result.failed,
                "deactivated": result.deactivated,
                "retried": result.retried,
                "unconfirmed": result.unconfirmed,
                "seconds": round(result.seconds, 2),
                "errors": result.errors[:5],
                "subscribers": subscribers,
                # subscribed chats that have the day's summary now: the page says "nothing left to
                # send" only when this is every subscriber
                "delivered": delivered,
            }
        )


def _local_delivery_counts(engine: Engine, day: date | None) -> tuple[int, int]:
    """(the page's active subscribed chats, how many of them have ``day``'s push delivered)."""
    subscribers = chats.subscriber_count(engine, local_only=True)
    if day is None:
        return subscribers, 0
    chat, delivery = models.Chat, models.Delivery
    has_it = exists().where(
        delivery.chat_id == chat.chat_id,
        delivery.trade_date == day,
        delivery.status == models.DeliveryStatus.SENT,
    )
    with session_scope(engine) as session:
        delivered = session.execute(select(func.count()).select_from(chat).where(
            chat.subscribed, chat.active, local_chat_ids(chat.chat_id), has_it)).scalar_one()
    return subscribers, int(delivered)
