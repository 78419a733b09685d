"""A stand-in Telegram Bot API server for tests, benchmarks and the local demo chat page.

The real python-telegram-bot client talks to it over HTTP on 127.0.0.1, so everything between the
bot's code and the wire (PTB's request encoding, error mapping, update de-serialisation) is
exercised exactly as in production. Only the standard library is used: a small HTTP/1.1 server on
``asyncio.start_server`` with keep-alive, urlencoded/JSON/multipart request bodies and optional
chunked streaming responses (for server-sent events of a chat page).

Two ways to run it::

    # inside the test's event loop
    async with BotApiServer() as server:
        app = server.application_builder().build()
        ...

    # in a background thread with its own loop, for synchronous callers
    with BotApiServer() as server:  # or server.start_in_thread() ... server.stop_thread()
        httpx.post(f"{server.base_url}{server.token}/getMe")

State-changing and inspection methods may be called from any thread in thread mode; they run on
the server's loop. Async helpers (``wait_for``) work from any loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import html
import json
import logging
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "BotApiServer",
    "BotEvent",
    "ChatState",
    "HttpRequest",
    "HttpResponse",
    "StoredFile",
    "StoredMessage",
    "UploadedPart",
]

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "123456789:STANDIN-token-for-tests"

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
PHOTO_BYTES_LIMIT = 10 * 1024 * 1024
DOCUMENT_BYTES_LIMIT = 50 * 1024 * 1024

MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
BLOCKED = "Forbidden: bot was blocked by the user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# Parameters whose wire value is a plain string even when it looks like JSON ("123", "true").
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "query",
        "data",
        "description",
        "short_description",
        "parse_mode",
        "callback_query_id",
        "inline_query_id",
        "inline_message_id",
        "url",
        "action",
        "language_code",
        "file_id",
        "next_offset",
        "secret_token",
        "name",
        "photo",
        "document",
    }
)

# Methods that produce or change a chat message: blocking, kicking and rate limits apply to them.
_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "deleteMessage",
    }
)
_RATE_LIMITED = _MESSAGE_METHODS - {"sendChatAction", "deleteMessage"}

_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?")
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_DISPOSITION_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="BotApiServer")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram description and optional ``parameters``."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass(slots=True)
class UploadedPart:
    """One file part of a multipart/form-data request."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(slots=True)
class ApiCall:
    """One recorded Bot API request and how it was answered."""

    method: str
    params: dict[str, Any]
    time: float
    chat_id: int | str | None
    status: int = 200
    result: Any = None
    error: str | None = None
    error_parameters: dict[str, Any] | None = None
    files: dict[str, int] = field(default_factory=dict)  # multipart part name -> size in bytes
    media_source: str | None = None  # "upload", "file_id" or "url" for media methods
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call was answered with ``ok: true``."""
        return self.status == 200


@dataclass(slots=True)
class StoredFile:
    """A file known to the server: an upload, or a placeholder for a sent URL."""

    file_id: str
    file_unique_id: str
    kind: str  # "photo" or "document"
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    photo_sizes: list[dict[str, Any]] | None = None

    def document_json(self) -> dict[str, Any]:
        """The Telegram ``Document`` object for this file."""
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc


@dataclass(slots=True)
class StoredMessage:
    """A message in a chat as it currently stands (edits applied), bot's or injected user's."""

    chat_id: int
    message_id: int
    date: int
    sender: dict[str, Any]
    chat: dict[str, Any]
    text: str | None = None  # as sent, markup included; see plain_text()
    caption: str | None = None
    parse_mode: str | None = None
    entities: list[dict[str, Any]] | None = None
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None
    reply_markup: dict[str, Any] | None = None
    media_source: str | None = None
    media_group_id: str | None = None
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    edits: int = 0
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def from_bot(self) -> bool:
        """True for messages the bot sent."""
        return bool(self.sender.get("is_bot"))

    @property
    def photo_file_id(self) -> str | None:
        """file_id of the largest photo size, as a bot would keep it for reuse."""
        return self.photo[-1]["file_id"] if self.photo else None

    def plain_text(self) -> str | None:
        """Text or caption with HTML/MarkdownV2 markup removed, as a Telegram client shows it."""
        raw = self.text if self.text is not None else self.caption
        if raw is None:
            return None
        return _plain(raw, self.parse_mode, strict=False)

    def to_api(self) -> dict[str, Any]:
        """The Telegram ``Message`` object."""
        msg: dict[str, Any] = {
            "message_id": self.message_id,
            "date": self.date,
            "chat": self.chat,
            "from": self.sender,
        }
        body = self.plain_text()
        if self.text is not None:
            msg["text"] = body
        elif self.caption is not None:
            msg["caption"] = body
        if self.entities:
            msg["entities"] = self.entities
        if self.photo is not None:
            msg["photo"] = self.photo
        if self.document is not None:
            msg["document"] = self.document
        if self.reply_markup is not None:
            msg["reply_markup"] = self.reply_markup
        if self.media_group_id is not None:
            msg["media_group_id"] = self.media_group_id
        if self.edit_date is not None:
            msg["edit_date"] = self.edit_date
        if self.extra:
            msg.update(self.extra)
        return msg


@dataclass(slots=True)
class ChatState:
    """A chat known to the server, its members and the messages in it."""

    id: int
    type: str  # "private", "group", "supergroup" or "channel"
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    members: dict[int, str] = field(default_factory=dict)  # user id -> ChatMember status
    bot_status: str = "member"
    blocked: str | None = None  # 403 description while the chat is blocked
    migrated_to: int | None = None
    migrated_from: int | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1

    def to_api(self) -> dict[str, Any]:
        """The short ``Chat`` object used inside messages."""
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title is not None:
            chat["title"] = self.title
        if self.username is not None:
            chat["username"] = self.username
        if self.first_name is not None:
            chat["first_name"] = self.first_name
        return chat

    @property
    def is_group(self) -> bool:
        """True for groups and supergroups."""
        return self.type in ("group", "supergroup")


@dataclass(slots=True)
class BotEvent:
    """Something happened a chat page may want to show.

    ``kind`` is one of ``"message"`` (bot sent), ``"edit"``, ``"delete"``, ``"chat_action"``,
    ``"callback_answer"``, ``"inline_answer"`` or ``"update"`` (an injected update for the bot).
    """

    kind: str
    chat_id: int | None
    message: StoredMessage | None = None
    data: dict[str, Any] | None = None


@dataclass(slots=True)
class HttpRequest:
    """A parsed HTTP request, as handed to routes added with :meth:`BotApiServer.add_route`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body or b"null")


@dataclass(slots=True)
class HttpResponse:
    """An HTTP response; ``stream`` (chunks sent with chunked encoding) replaces ``body`` when set."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def json_body(cls, obj: Any, status: int = 200) -> HttpResponse:
        """A JSON response."""
        return cls(status, _dumps(obj))

    @classmethod
    def text_body(
        cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
    ) -> HttpResponse:
        """A text response."""
        return cls(status, text.encode(), content_type)


Route = Callable[[HttpRequest], Awaitable[HttpResponse]]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _utf16_len(text: str) -> int:
    # Every code point takes one or two UTF-16 units, so short strings need no encoding.
    n = len(text)
    if text.isascii():
        return n
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _decode_value(key: str, value: str) -> Any:
    if key in _STRING_PARAMS or not value:
        return value
    first = value[0]
    if first in '{["-0123456789tfn':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, UploadedPart]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ApiError(400, "Bad Request: multipart boundary missing")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedPart] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        part_headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part_headers[name.strip().lower()] = value.strip()
        params = {
            key.lower(): quoted or unq.strip()
            for key, quoted, unq in _DISPOSITION_PARAM_RE.findall(part_headers.get("content-disposition", ""))
        }
        part_name = params.get("name")
        if part_name is None:
            continue
        if "filename" in params or "filename*" in params:
            filename = params.get("filename") or unquote(params.get("filename*", "").split("''")[-1])
            files[part_name] = UploadedPart(part_name, filename, part_headers.get("content-type"), content)
        else:
            fields[part_name] = content.decode("utf-8")
    return fields, files


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WebP image from its header; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _plain_html(text: str, strict: bool) -> str:
    if "<" not in text and "&" not in text:
        return text
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while True:
        start = text.find("<", pos)
        if start < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        match = _HTML_TAG_RE.match(text, start)
        if match is None or match.group(2).lower() not in _HTML_TAGS:
            if strict:
                name = match.group(2) if match else ""
                raise ApiError(
                    400,
                    f'Bad Request: can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{_byte_offset(text, start)}",
                )
            out.append("<")
            pos = start + 1
            continue
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            if strict and (not stack or stack[-1] != name):
                expected = f'expected "</{stack[-1]}>", ' if stack else ""
                raise ApiError(
                    400,
                    f"Bad Request: can't parse entities: Unmatched end tag at byte offset "
                    f'{_byte_offset(text, start)}, {expected}found "</{name}>"',
                )
            if stack:
                stack.pop()
        else:
            stack.append(name)
        pos = match.end()
    if strict and stack:
        raise ApiError(
            400,
            f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"",
        )
    return html.unescape("".join(out))


def _plain_markdown_v2(text: str, strict: bool) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    open_links = 0
    toggles: dict[str, int] = {}
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n:
                out.append(text[i + 1])
            i += 2
            continue
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = text.find(fence, i + len(fence))
            if end < 0:
                if strict:
                    kind = "PreCode" if fence == "```" else "Code"
                    raise ApiError(
                        400,
                        f"Bad Request: can't parse entities: Can't find end of {kind} entity at byte offset "
                        f"{_byte_offset(text, i)}",
                    )
                end = n
            inner = text[i + len(fence) : end]
            if fence == "```" and "\n" in inner:
                inner = inner.split("\n", 1)[1]  # first line names the language
            out.append(inner.replace("\\`", "`").replace("\\\\", "\\"))
            i = end + len(fence)
            continue
        marker = text[i : i + 2] if text.startswith(("__", "||"), i) else c
        if marker in ("*", "_", "__", "~", "||"):
            toggles[marker] = toggles.get(marker, 0) ^ 1
            i += len(marker)
            continue
        if c == "[" or text.startswith("![", i):
            open_links += 1
            i += 2 if c == "!" else 1
            continue
        if c == "]" and open_links:
            open_links -= 1
            if text.startswith("(", i + 1):
                end = text.find(")", i + 2)
                while end > 0 and text[end - 1] == "\\":
                    end = text.find(")", end + 1)
                i = (end if end > 0 else n) + 1
            else:
                i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue
        if strict and c in _MDV2_RESERVED:
            raise ApiError(
                400,
                f"Bad Request: can't parse entities: Character '{c}' is reserved and must be escaped with "
                "the preceding '\\'",
            )
        out.append(c)
        i += 1
    if strict:
        names = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}
        for marker, is_open in toggles.items():
            if is_open:
                raise ApiError(
                    400, f"Bad Request: can't parse entities: Can't find end of {names[marker]} entity"
                )
    return "".join(out)


@functools.lru_cache(maxsize=4096)  # a broadcast repeats one caption thousands of times
def _plain(text: str, parse_mode: str | None, *, strict: bool) -> str:
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _plain_html(text, strict)
    if mode == "markdownv2":
        return _plain_markdown_v2(text, strict)
    if mode == "markdown":
        return re.sub(r"[*_`\[]", "", text)
    return text


def _member_json(user: dict[str, Any], status: str) -> dict[str, Any]:
    """A ChatMember object with every field PTB requires for that status."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(
            can_be_edited=False,
            is_anonymous=False,
            can_manage_chat=True,
            can_delete_messages=True,
            can_manage_video_chats=True,
            can_restrict_members=True,
            can_promote_members=False,
            can_change_info=True,
            can_invite_users=True,
            can_post_stories=False,
            can_edit_stories=False,
            can_delete_stories=False,
            can_pin_messages=True,
        )
    elif status == "restricted":
        member.update(
            is_member=True,
            until_date=0,
            **dict.fromkeys(
                (
                    "can_change_info",
                    "can_invite_users",
                    "can_pin_messages",
                    "can_send_messages",
                    "can_send_polls",
                    "can_send_other_messages",
                    "can_add_web_page_previews",
                    "can_manage_topics",
                    "can_send_audios",
                    "can_send_documents",
                    "can_send_photos",
                    "can_send_videos",
                    "can_send_video_notes",
                    "can_send_voice_notes",
                    "can_edit_tag",
                ),
                False,
            ),
        )
    elif status == "kicked":
        member["until_date"] = 0
    elif status not in ("member", "left"):
        raise ValueError(f"unknown chat member status {status!r}")
    return member


class _Window:
    """Sliding-window counter: at most ``limit`` events in any ``period`` seconds."""

    __slots__ = ("limit", "period", "stamps")

    def __init__(self, limit: int, period: float):
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        stamps = self.stamps
        while stamps and now - stamps[0] >= self.period:
            stamps.popleft()
        if len(stamps) < self.limit:
            return 0.0
        return self.period - (now - stamps[0])


@dataclass(slots=True)
class _Fault:
    method: str | None
    chat_id: int | str | None
    status: int
    description: str
    parameters: dict[str, Any] | None
    times: int


@dataclass(slots=True)
class _RateLimits:
    per_chat_per_second: int | None
    group_per_minute: int | None
    global_per_second: int | None
    chat_windows: dict[int, _Window] = field(default_factory=dict)
    group_windows: dict[int, _Window] = field(default_factory=dict)
    global_window: _Window | None = None


class _DropConnection(Exception):
    """Raised by a fault with status 0: close the socket without answering."""


def _threadsafe(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run the method on the server loop when called from another thread in thread mode."""

    @functools.wraps(fn)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        loop = self._thread_loop
        if loop is None or threading.get_ident() == self._loop_thread_id:
            return fn(self, *args, **kwargs)
        done: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn(self, *args, **kwargs))
            except BaseException as exc:  # handed back to the calling thread
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=30)

    return wrapper


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class BotApiServer:
    """A stand-in Telegram Bot API server (one bot) with a test, inspection and fault API.

    Args:
        token: the bot token requests must carry; others get 401 Unauthorized.
        host, port: where to listen; port 0 picks a free port (see :attr:`port` after start).
        bot_username, bot_first_name: what ``getMe`` answers.
        auto_create_chats: sends to an unknown chat id create it (positive id: private chat,
            ``-100…``: supergroup, other negative: group) instead of answering "chat not found".
        strict_parse: reject malformed HTML / MarkdownV2 like Telegram ("can't parse entities").
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "marginbot_test_bot",
        bot_first_name: str = "两融雷达 (stand-in)",
        auto_create_chats: bool = True,
        strict_parse: bool = True,
    ) -> None:
        self.token = token
        self.host = host
        self._requested_port = port
        self.port = 0
        self.auto_create_chats = auto_create_chats
        self.strict_parse = strict_parse
        head = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = {
            "id": int(head) if head.isdigit() else 1000,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }

        self.users: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.calls: list[ApiCall] = []
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.inline_queries: dict[str, dict[str, Any]] = {}
        self.inline_answers: dict[str, dict[str, Any]] = {}
        self.chat_actions: list[dict[str, Any]] = []
        self.uploads = 0
        self.document_uploads = 0
        self.webhook_url = ""

        self._files_by_path: dict[str, StoredFile] = {}
        self._calls_by_method: dict[str, list[ApiCall]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._updates: deque[dict[str, Any]] = deque()
        self._next_update_id = 1
        self._next_file = 1
        self._next_query = 1
        self._next_media_group = 1
        self._poll_future: asyncio.Future[None] | None = None
        self._faults: list[_Fault] = []
        self._latency: dict[str | None, float] = {}
        self._rate: _RateLimits | None = None
        self._call_waiters: list[tuple[Callable[[ApiCall], bool], asyncio.Future[ApiCall]]] = []
        self._subscribers: list[asyncio.Queue[BotEvent]] = []
        self._listeners: list[Callable[[BotEvent], None]] = []
        self._routes: dict[tuple[str, str], Route] = {}
        self._prefix_routes: list[tuple[str, str, Route]] = []

        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

        self._methods: dict[str, Callable[[dict[str, Any], dict[str, UploadedPart], ApiCall], Any]] = {
            name[3:].lower(): getattr(self, name) for name in dir(self) if name.startswith("_m_")
        }
        self._canonical = {name[3:].lower(): name[3:] for name in dir(self) if name.startswith("_m_")}

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url`` (PTB appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url``."""
        return f"{self.url}/file/bot"

    @property
    def bot_id(self) -> int:
        """The bot's user id (the number before the colon in the token)."""
        return int(self.bot_user["id"])

    @property
    def is_polling(self) -> bool:
        """True while a getUpdates long poll is waiting for updates."""
        return self._poll_future is not None and not self._poll_future.done()

    def application_builder(self) -> ApplicationBuilder:
        """An ``ApplicationBuilder`` already pointed at this server with its token."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder().token(self.token).base_url(self.base_url).base_file_url(self.base_file_url)
        )

    async def start(self) -> None:
        """Start listening on the running loop (again on the same port after :meth:`stop`)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self._requested_port, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._requested_port = self.port  # a restart (outage emulation) keeps the same URLs

    async def stop(self) -> None:
        """Stop listening, end pending long polls and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._poll_future is not None and not self._poll_future.done():
            self._poll_future.set_result(None)
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        for _predicate, waiter in self._call_waiters:
            if not waiter.done():
                waiter.cancel()

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start_in_thread(self) -> BotApiServer:
        """Run the server in a daemon thread with its own event loop; returns once it listens."""
        if self._thread is not None:
            raise RuntimeError("server thread already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="botapi-standin", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        self._thread_loop = loop
        return self

    def stop_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        thread, loop = self._thread, self._thread_loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
        self._thread_loop = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> BotApiServer:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # ---------------------------------------------------------------- HTTP layer

    def add_route(self, method: str, path: str, handler: Route) -> None:
        """Serve extra HTTP endpoints (e.g. a chat page) on the same port.

        ``path`` ending in ``/`` matches every path below it. Paths starting with ``/bot`` or
        ``/file/bot`` always go to the Bot API, so a ``"/"`` prefix route only gets the rest. Handlers run on the server loop and may return a streaming :class:`HttpResponse`
        (e.g. ``text/event-stream`` fed from :meth:`subscribe`); a client that goes away is only
        noticed on the next write, so streams should send a heartbeat now and then.
        """
        if path.endswith("/"):
            self._prefix_routes.append((method.upper(), path, handler))
        else:
            self._routes[(method.upper(), path)] = handler

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    if "chunked" in headers.get("transfer-encoding", "").lower():
                        body = await self._read_chunked(reader)
                    else:
                        length = int(headers.get("content-length") or 0)
                        body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                connection = headers.get("connection", "").lower()
                keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
                path, _, query_string = target.partition("?")
                request = HttpRequest(
                    method.upper(), unquote(path), dict(parse_qsl(query_string)), headers, body
                )
                try:
                    response = await self._dispatch(request)
                except _DropConnection:
                    return
                except Exception:
                    log.exception("stand-in Bot API: error handling %s %s", method, path)
                    response = HttpResponse.json_body(ApiError(500, "Internal Server Error").payload(), 500)
                if not await self._write_response(writer, response, keep_alive) or not keep_alive:
                    return
        except asyncio.CancelledError:
            # Only stop() cancels these; finishing normally keeps asyncio's stream callback quiet.
            return
        finally:
            self._connections.discard(task)
            writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    @staticmethod
    async def _write_response(writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool) -> bool:
        status = response.status
        head = [f"HTTP/1.1 {status} {_phrase(status)}", f"Content-Type: {response.content_type}"]
        head.extend(f"{k}: {v}" for k, v in response.headers.items())
        head.append("Connection: keep-alive" if keep_alive else "Connection: close")
        try:
            if response.stream is None:
                head.append(f"Content-Length: {len(response.body)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
                await writer.drain()
                return True
            head.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            try:
                async for chunk in response.stream:
                    if chunk:
                        writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                        await writer.drain()
            finally:
                # Run the generator's cleanup (e.g. unsubscribe) now, not whenever it is collected.
                aclose = getattr(response.stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            return False

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith("/bot"):
            token, _, method = path[4:].partition("/")
            return await self._api(token, method, request)
        if path.startswith("/file/bot"):
            token, _, file_path = path[9:].partition("/")
            return self._download(token, file_path)
        handler = self._routes.get((request.method, path))
        if handler is None:
            for method, prefix, candidate in self._prefix_routes:
                if method == request.method and path.startswith(prefix):
                    handler = candidate
                    break
        if handler is None:
            return HttpResponse.text_body("Not Found", 404)
        return await handler(request)

    def _download(self, token: str, file_path: str) -> HttpResponse:
        if token != self.token:
            return HttpResponse.json_body(ApiError(401, "Unauthorized").payload(), 401)
        stored = self._files_by_path.get(file_path)
        if stored is not None:
            return HttpResponse(200, stored.data, stored.mime_type or "application/octet-stream")
        return HttpResponse.json_body(ApiError(404, "Not Found").payload(), 404)

    # ---------------------------------------------------------------- Bot API dispatch

    def _parse_params(self, request: HttpRequest) -> tuple[dict[str, Any], dict[str, UploadedPart]]:
        content_type = request.headers.get("content-type", "")
        files: dict[str, UploadedPart] = {}
        raw: dict[str, str] = dict(request.query)
        if request.body:
            if content_type.startswith("application/x-www-form-urlencoded"):
                raw.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
            elif content_type.startswith("multipart/form-data"):
                fields, files = _parse_multipart(request.body, content_type)
                raw.update(fields)
            elif content_type.startswith("application/json"):
                try:
                    decoded = json.loads(request.body)
                except ValueError as exc:
                    raise ApiError(400, "Bad Request: can't parse JSON request body") from exc
                if not isinstance(decoded, dict):
                    raise ApiError(400, "Bad Request: JSON request body must be an object")
                params = {k: _decode_value(k, v) for k, v in raw.items()}
                params.update(decoded)
                return params, files
        return {k: _decode_value(k, v) for k, v in raw.items()}, files

    async def _api(self, token: str, method_path: str, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        key = method_path.lower()
        method = self._canonical.get(key, method_path)
        call = ApiCall(method, {}, time.time(), None)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            params, files = self._parse_params(request)
            call.params = params
            call.files = {name: len(part.data) for name, part in files.items()}
            chat_ref = params.get("chat_id")
            call.chat_id = (
                int(chat_ref) if isinstance(chat_ref, str) and chat_ref.lstrip("-").isdigit() else chat_ref
            )
            fault = self._take_fault(method, call.chat_id) if self._faults else None
            if self._latency:
                delay = self._latency.get(method, self._latency.get(None, 0.0))
                if delay:
                    await asyncio.sleep(delay)
            if fault is not None:
                if fault.status == 0:
                    call.status, call.error = 0, "connection dropped"
                    raise _DropConnection
                raise ApiError(fault.status, fault.description, fault.parameters)
            handler = self._methods.get(key)
            if handler is None:
                raise ApiError(404, "Not Found")
            if method in _MESSAGE_METHODS:
                self._check_can_send(call.chat_id, method)
            result = handler(params, files, call)
            if asyncio.iscoroutine(result):
                result = await result
            call.result = result
            response = HttpResponse(200, _dumps({"ok": True, "result": result}))
        except ApiError as exc:
            call.status, call.error, call.error_parameters = exc.status, exc.description, exc.parameters
            response = HttpResponse(exc.status, _dumps(exc.payload()))
        finally:
            call.duration = time.perf_counter() - started
            self._record(call)
        return response

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        bucket = self._calls_by_method.get(call.method)
        if bucket is None:
            bucket = self._calls_by_method[call.method] = []
        bucket.append(call)
        if self._call_waiters:
            for predicate, waiter in self._call_waiters:
                if waiter.done():
                    continue
                try:
                    if predicate(call):
                        waiter.set_result(call)
                except Exception as exc:  # a broken predicate fails its own wait_for, not the server
                    waiter.set_exception(exc)

    def _take_fault(self, method: str, chat_id: int | str | None) -> _Fault | None:
        for fault in self._faults:
            if fault.method is None and method == "getUpdates":
                continue
            if fault.method is not None and fault.method.lower() != method.lower():
                continue
            if fault.chat_id is not None and fault.chat_id != chat_id:
                continue
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            return fault
        return None

    def _check_can_send(self, chat_id: int | str | None, method: str) -> None:
        if chat_id is None:
            return  # inline-message edits carry no chat
        chat = self._chat_for_request(chat_id)
        if chat.blocked:
            raise ApiError(403, chat.blocked)
        kind = "supergroup" if chat.type == "supergroup" else "group"
        if chat.bot_status == "kicked":
            if chat.type == "private":
                raise ApiError(403, BLOCKED)
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind} chat")
        if chat.bot_status == "left" and chat.is_group:
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        if self._rate is not None and method in _RATE_LIMITED:
            self._check_rate(chat)

    def _check_rate(self, chat: ChatState) -> None:
        rate = self._rate
        assert rate is not None
        now = time.monotonic()
        windows: list[_Window] = []
        if rate.global_per_second:
            if rate.global_window is None:
                rate.global_window = _Window(rate.global_per_second, 1.0)
            windows.append(rate.global_window)
        if rate.per_chat_per_second:
            window = rate.chat_windows.get(chat.id)
            if window is None:
                window = rate.chat_windows[chat.id] = _Window(rate.per_chat_per_second, 1.0)
            windows.append(window)
        if rate.group_per_minute and chat.is_group:
            window = rate.group_windows.get(chat.id)
            if window is None:
                window = rate.group_windows[chat.id] = _Window(rate.group_per_minute, 60.0)
            windows.append(window)
        wait = max((w.wait(now) for w in windows), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        for window in windows:
            window.stamps.append(now)

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
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        return message

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
        plain = _plain(text, parse_mode, strict=self.strict_parse)
        if not caption and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(plain) > limit // 2 and _utf16_len(plain) > limit:
            raise ApiError(400, f"Bad Request: message {'caption ' if caption else ''}is too long")
        return text

    # ---------------------------------------------------------------- files

    def _register_file(self, stored: StoredFile, *file_ids: str) -> None:
        for file_id in file_ids:
            self.files[file_id] = stored
        self._files_by_path[stored.file_path] = stored

    def _new_file_ids(self) -> tuple[int, str]:
        n = self._next_file
        self._next_file += 1
        return n, f"AQADstandin{n:07d}"

    def _store_photo(self, part: UploadedPart) -> StoredFile:
        if not part.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if len(part.data) > PHOTO_BYTES_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        size = _image_size(part.data) or (800, 600)
        width, height = size
        if width + height > 10000 or min(width, height) == 0 or max(width, height) / min(width, height) > 20:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        n, unique = self._new_file_ids()
        ext = "png" if part.data[:4] == b"\x89PNG" else "jpg"
        stored = StoredFile(
            f"AgACAgIAAxkBstandin{n:07d}-full",
            unique,
            "photo",
            part.data,
            f"photos/file_{n}.{ext}",
            file_name=part.filename,
            mime_type=part.content_type or f"image/{'png' if ext == 'png' else 'jpeg'}",
            width=width,
            height=height,
        )
        sizes: list[dict[str, Any]] = []
        scale = 320 / max(width, height)
        if scale < 1:
            thumb_id = f"AgACAgIAAxkBstandin{n:07d}-thumb"
            sizes.append(
                {
                    "file_id": thumb_id,
                    "file_unique_id": f"{unique}-t",
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                    "file_size": len(part.data),
                }
            )
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": unique,
                "width": width,
                "height": height,
                "file_size": len(part.data),
            }
        )
        stored.photo_sizes = sizes
        self._register_file(stored, *(size["file_id"] for size in sizes))
        self.uploads += 1
        return stored

    def _store_document(self, part: UploadedPart) -> StoredFile:
        if not part.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if len(part.data) > DOCUMENT_BYTES_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        n, unique = self._new_file_ids()
        name = part.filename or f"file_{n}"
        suffix = name.rsplit(".", 1)[-1] if "." in name else "bin"
        stored = StoredFile(
            f"BQACAgIAAxkBstandin{n:07d}",
            unique,
            "document",
            part.data,
            f"documents/file_{n}.{suffix}",
            file_name=name,
            mime_type=part.content_type or "application/octet-stream",
        )
        self._register_file(stored, stored.file_id)
        self.document_uploads += 1
        return stored

    def _input_file(
        self, value: Any, files: dict[str, UploadedPart], field_name: str, kind: str, call: ApiCall
    ) -> StoredFile:
        part: UploadedPart | None = None
        if value is None:
            part = files.get(field_name)
            if part is None:
                raise ApiError(400, f"Bad Request: there is no {field_name} in the request")
        elif isinstance(value, str) and value.startswith("attach://"):
            part = files.get(value[len("attach://") :])
            if part is None:
                raise ApiError(400, f"Bad Request: file {value!r} not found in the request")
        if part is not None:
            call.media_source = "upload"
            return self._store_photo(part) if kind == "photo" else self._store_document(part)
        if not isinstance(value, str) or not value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if value.startswith(("http://", "https://")):
            # No network here: remember the URL as an empty placeholder file.
            call.media_source = "url"
            n, unique = self._new_file_ids()
            placeholder = StoredFile(
                f"AgACAgIAAxkBstandin{n:07d}-url",
                unique,
                kind,
                b"",
                f"{kind}s/url_{n}",
                width=800,
                height=600,
            )
            if kind == "photo":
                placeholder.photo_sizes = [
                    {
                        "file_id": placeholder.file_id,
                        "file_unique_id": unique,
                        "width": 800,
                        "height": 600,
                    }
                ]
            self._register_file(placeholder, placeholder.file_id)
            return placeholder
        stored = self.files.get(value)
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise ApiError(
                400, f"Bad Request: can't use file of type {stored.kind.title()} as {kind.title()}"
            )
        call.media_source = "file_id"
        return stored

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
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
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
        )
        self._emit("message", chat.id, message)
        return message.to_api()

    def _m_sendPhoto(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        caption = self._check_text(p.get("caption"), p.get("parse_mode"), caption=True)
        stored = self._input_file(p.get("photo"), f, "photo", "photo", call)
        message = self._new_message(
            chat,
            self.bot_user,
            caption=caption,
            parse_mode=p.get("parse_mode"),
            photo=stored.photo_sizes,
            reply_markup=p.get("reply_markup"),
            media_source=call.media_source,
            reply_to=self._reply_target(p, chat),
        )
        self._emit("message", chat.id, message)
        return message.to_api()

    def _m_sendDocument(self, p: dict[str, Any], f: dict[str, UploadedPart], call: ApiCall) -> Any:
        chat = self._chat_for_request(p.get("chat_id"))
        caption = self._check_text(p.get("caption"), p.get("parse_mode"), caption=True)
        stored = self._input_file(p.get("document"), f, "document", "document", call)
        message = self._new_message(
            chat,
            self.bot_user,
            caption=caption,
            parse_mode=p.get("parse_mode"),
            document=stored.document_json(),
            reply_markup=p.get("reply_markup"),
            media_source=call.media_source,
            reply_to=self._reply_target(p, chat),
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
        if (
            text == message.text
            and p.get("parse_mode") == message.parse_mode
            and markup == message.reply_markup
        ):
            raise ApiError(400, NOT_MODIFIED)
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
        if (
            caption == message.caption
            and p.get("parse_mode") == message.parse_mode
            and markup == message.reply_markup
        ):
            raise ApiError(400, NOT_MODIFIED)
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

    def _command_key(self, p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")

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

    # ---------------------------------------------------------------- test API: setup

    @_threadsafe
    def add_user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """Register (or replace) a user; returns the Telegram ``User`` object."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        if username:
            user["username"] = username
        if last_name:
            user["last_name"] = last_name
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return user

    @_threadsafe
    def add_chat(
        self,
        chat_id: int,
        type: str = "private",
        *,
        title: str | None = None,
        username: str | None = None,
        members: Iterable[int | dict[str, Any]] = (),
        admins: Iterable[int | dict[str, Any]] = (),
        creator: int | dict[str, Any] | None = None,
        bot_status: str = "member",
    ) -> ChatState:
        """Register a chat. ``members``/``admins``/``creator`` answer getChatMember and getChatAdministrators.

        A private chat's id is its user's id; the user is registered if unknown. ``bot_status``
        is the bot's own membership ("member", "administrator", "left", "kicked").
        """
        if type not in ("private", "group", "supergroup", "channel"):
            raise ValueError(f"unknown chat type {type!r}")
        chat = ChatState(chat_id, type, title=title, username=username, bot_status=bot_status)
        if type == "private":
            user = self._user(chat_id)
            chat.first_name = user["first_name"]
            chat.username = username or user.get("username")
            chat.title = None
        else:
            chat.title = title or f"{type.title()} {chat_id}"
        for member in members:
            chat.members[int(self._user(member)["id"])] = "member"
        for admin in admins:
            chat.members[int(self._user(admin)["id"])] = "administrator"
        if creator is not None:
            chat.members[int(self._user(creator)["id"])] = "creator"
        self.chats[chat_id] = chat
        return chat

    @_threadsafe
    def set_member_status(self, chat_id: int, user: int | dict[str, Any], status: str) -> None:
        """Change one user's membership status in a registered group."""
        _member_json({}, status)  # validates the status
        self._known_chat(chat_id).members[int(self._user(user)["id"])] = status

    # ---------------------------------------------------------------- test API: injecting updates

    def _push_update(self, kind: str, payload: dict[str, Any], chat_id: int | None) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._updates.append(update)
        waiter = self._poll_future
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._emit("update", chat_id, data=update)
        return update

    @_threadsafe
    def inject_message(
        self,
        chat_id: int,
        from_user: int | dict[str, Any],
        text: str,
        *,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user writes ``text`` in a chat; returns the ``Message`` object delivered to the bot.

        A leading command (``/ratio`` or ``/ratio@botname``) gets a ``bot_command`` entity.
        """
        chat = self._known_chat(chat_id)
        user = self._user(from_user)
        if chat.is_group and chat.members.get(int(user["id"])) in (None, "left", "kicked"):
            chat.members[int(user["id"])] = "member"
        entities = None
        match = _COMMAND_RE.match(text)
        if match and (match.end() == len(text) or text[match.end()].isspace()):
            entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]
        reply_to = chat.messages.get(reply_to_message_id) if reply_to_message_id is not None else None
        message = self._new_message(chat, user, text=text, entities=entities, reply_to=reply_to)
        payload = message.to_api()
        self._push_update("message", payload, chat.id)
        return payload

    @_threadsafe
    def inject_callback(
        self, chat_id: int, from_user: int | dict[str, Any], message_id: int, data: str
    ) -> str:
        """A user presses an inline button with ``data`` under a message; returns the callback query id."""
        chat = self._known_chat(chat_id)
        message = chat.messages.get(message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        query_id = str(9_000_000_000 + self._next_query)
        self._next_query += 1
        query = {
            "id": query_id,
            "from": self._user(from_user),
            "message": message.to_api(),
            "chat_instance": str(abs(chat.id) * 7 + 1),
            "data": data,
        }
        self.callback_queries[query_id] = query
        self._push_update("callback_query", query, chat.id)
        return query_id

    @_threadsafe
    def inject_inline_query(
        self,
        from_user: int | dict[str, Any],
        query: str,
        *,
        offset: str = "",
        chat_type: str | None = "sender",
    ) -> str:
        """A user types ``@bot query`` in some chat; returns the inline query id."""
        query_id = str(8_000_000_000 + self._next_query)
        self._next_query += 1
        payload: dict[str, Any] = {
            "id": query_id,
            "from": self._user(from_user),
            "query": query,
            "offset": offset,
        }
        if chat_type:
            payload["chat_type"] = chat_type
        self.inline_queries[query_id] = payload
        self._push_update("inline_query", payload, None)
        return query_id

    @_threadsafe
    def inject_inline_result(
        self, chat_id: int, from_user: int | dict[str, Any], query_id: str, result_id: str
    ) -> dict[str, Any]:
        """The user taps result ``result_id`` of the bot's answer to ``query_id``; returns the ``Message``.

        As in Telegram, the chosen result becomes the user's own message in ``chat_id`` with
        ``via_bot`` set: a cached photo keeps its ``photo_file_id``, caption and parse mode, and an
        ``input_message_content`` with ``message_text`` replaces the result's own content. The bot
        gets it as a message update (bots see messages sent via themselves even in privacy mode).
        No ``chosen_inline_result`` update: Telegram sends those only with inline feedback turned on.
        Raises KeyError for an unknown query or result, ValueError for a result not simulated.
        """
        query = self.inline_queries.get(str(query_id))
        answer = self.inline_answers.get(str(query_id))
        if query is None or answer is None:
            raise KeyError(f"no answered inline query {query_id}")
        user = self._user(from_user)
        if int(query["from"]["id"]) != int(user["id"]):
            raise ValueError("only the user who typed the inline query can send its results")
        result = next((r for r in answer.get("results") or [] if str(r.get("id")) == str(result_id)), None)
        if result is None:
            raise KeyError(f"the answer to inline query {query_id} has no result {result_id!r}")
        fields: dict[str, Any]
        content = result.get("input_message_content")
        try:
            if isinstance(content, dict) and content.get("message_text") is not None:
                parse_mode = content.get("parse_mode")
                fields = {
                    "text": self._check_text(content["message_text"], parse_mode, caption=False),
                    "parse_mode": parse_mode,
                }
            elif result.get("type") == "photo" and result.get("photo_file_id") in self.files:
                stored = self.files[result["photo_file_id"]]
                parse_mode = result.get("parse_mode")
                fields = {
                    "caption": self._check_text(result.get("caption"), parse_mode, caption=True),
                    "parse_mode": parse_mode,
                    "photo": stored.photo_sizes,
                    "media_source": "file_id",
                }
            else:
                raise ValueError(f"inline results of type {result.get('type')!r} are not simulated")
        except ApiError as exc:  # what Telegram would have refused
            raise ValueError(exc.description) from None
        chat = self._known_chat(chat_id)
        if chat.is_group and chat.members.get(int(user["id"])) in (None, "left", "kicked"):
            chat.members[int(user["id"])] = "member"
        message = self._new_message(chat, user, extra={"via_bot": dict(self.bot_user)}, **fields)
        payload = message.to_api()
        self._push_update("message", payload, chat.id)
        return payload

    @_threadsafe
    def inject_my_chat_member(
        self, chat_id: int, old_status: str, new_status: str, *, from_user: int | dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The bot's membership changes (e.g. "member" -> "kicked"); later sends follow the new status.

        In a private chat "kicked" means the user blocked the bot (sends answer 403).
        """
        chat = self._known_chat(chat_id)
        if from_user is None:
            if chat.type == "private":
                from_user = chat.id
            else:
                from_user = next(
                    (uid for uid, s in chat.members.items() if s in ("creator", "administrator")),
                    next(iter(chat.members), 1),
                )
        payload = {
            "chat": chat.to_api(),
            "from": self._user(from_user),
            "date": int(time.time()),
            "old_chat_member": _member_json(self.bot_user, old_status),
            "new_chat_member": _member_json(self.bot_user, new_status),
        }
        chat.bot_status = new_status
        self._push_update("my_chat_member", payload, chat.id)
        return payload

    @_threadsafe
    def inject_migration(
        self, chat_id: int, new_chat_id: int | None = None, *, from_user: int | dict[str, Any] | None = None
    ) -> int:
        """A group becomes a supergroup; returns the new chat id.

        Delivers the two service messages (``migrate_to_chat_id`` in the old group,
        ``migrate_from_chat_id`` in the new supergroup); later calls naming the old id answer 400
        with ``parameters.migrate_to_chat_id``.
        """
        old = self._known_chat(chat_id)
        if old.type != "group":
            raise ValueError("only basic groups can be migrated")
        new_id = new_chat_id if new_chat_id is not None else int(f"-100{abs(chat_id)}")
        new = ChatState(
            new_id,
            "supergroup",
            title=old.title,
            members=dict(old.members),
            bot_status=old.bot_status,
            migrated_from=old.id,
        )
        self.chats[new_id] = new
        if from_user is None:
            from_user = next(
                (u for u, s in old.members.items() if s == "creator"), next(iter(old.members), 1)
            )
        user = self._user(from_user)
        notice = self._new_message(old, user, extra={"migrate_to_chat_id": new_id})
        self._push_update("message", notice.to_api(), old.id)
        old.migrated_to = new_id
        welcome = self._new_message(new, user, extra={"migrate_from_chat_id": old.id})
        self._push_update("message", welcome.to_api(), new_id)
        return new_id

    @_threadsafe
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates injected but not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # ---------------------------------------------------------------- test API: faults

    @_threadsafe
    def fail_next(
        self,
        method: str | None,
        status: int,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        chat_id: int | str | None = None,
        times: int = 1,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (None: any method but getUpdates) with an error.

        ``chat_id`` restricts the fault to calls for that chat. ``status`` 0 closes the connection
        without an answer (a network failure). ``retry_after``/``migrate_to_chat_id`` fill
        ``parameters``; a 429 without them gets ``retry_after`` 1. Default descriptions follow
        Telegram (403: "Forbidden: bot was blocked by the user").
        """
        params = dict(parameters or {})
        if retry_after is not None:
            params["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            params["migrate_to_chat_id"] = migrate_to_chat_id
        if status == 429:
            params.setdefault("retry_after", 1)
        if description is None:
            if "migrate_to_chat_id" in params:
                description = MIGRATED
            else:
                description = _DEFAULT_DESCRIPTIONS.get(status) or _phrase(status)
                description = description.format(retry_after=params.get("retry_after"))
        self._faults.append(_Fault(method, chat_id, status, description, params or None, times))

    @_threadsafe
    def clear_faults(self) -> None:
        """Forget pending ``fail_next`` faults."""
        self._faults.clear()

    @_threadsafe
    def block_chat(self, chat_id: int, description: str | None = None) -> None:
        """Every message sent to the chat answers 403 until :meth:`unblock_chat`."""
        chat = self._known_chat(chat_id)
        if description is None:
            kind = "supergroup" if chat.type == "supergroup" else "group"
            description = (
                BLOCKED if chat.type == "private" else f"Forbidden: bot was kicked from the {kind} chat"
            )
        chat.blocked = description

    @_threadsafe
    def unblock_chat(self, chat_id: int) -> None:
        """Undo :meth:`block_chat`."""
        self._known_chat(chat_id).blocked = None

    @_threadsafe
    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay answers by ``seconds`` (for ``method`` only, or all methods); 0 removes the delay."""
        if seconds > 0:
            self._latency[method] = seconds
        else:
            self._latency.pop(method, None)

    @_threadsafe
    def set_rate_limit(
        self,
        enabled: bool = True,
        *,
        per_chat_per_second: int | None = 1,
        group_per_minute: int | None = 20,
        global_per_second: int | None = 30,
    ) -> None:
        """Emulate Telegram's flood limits with sliding windows (off by default).

        Counted: sends and edits. Over a limit the call answers 429 with ``retry_after`` set to
        the seconds until the window frees up; rejected calls do not count. None disables a limit.
        """
        self._rate = (
            _RateLimits(per_chat_per_second, group_per_minute, global_per_second) if enabled else None
        )

    # ---------------------------------------------------------------- test API: inspection

    @_threadsafe
    def calls_for(self, method: str, chat_id: int | str | None = None) -> list[ApiCall]:
        """Recorded calls of one method (optionally for one chat), oldest first."""
        calls = self._calls_by_method.get(method, [])
        return [c for c in calls if c.chat_id == chat_id] if chat_id is not None else list(calls)

    @_threadsafe
    def sent_messages(self, chat_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        """The bot's messages in a chat as they now stand (edits applied), oldest first."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [m for m in chat.messages.values() if m.from_bot and (include_deleted or not m.deleted)]

    @_threadsafe
    def history(self, chat_id: int, *, include_deleted: bool = False) -> list[StoredMessage]:
        """Every message in a chat, user's and bot's, oldest first."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [m for m in chat.messages.values() if include_deleted or not m.deleted]

    @_threadsafe
    def file_bytes(self, file_id: str) -> bytes:
        """The stored bytes behind a file_id (any PhotoSize id of an upload)."""
        return self.files[file_id].data

    @_threadsafe
    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, Any]]:
        """Commands set with setMyCommands for a scope and language."""
        return list(
            self._commands.get(self._command_key({"scope": scope, "language_code": language_code}), [])
        )

    @_threadsafe
    def clear_calls(self) -> None:
        """Forget recorded calls (chats, messages and files stay)."""
        self.calls.clear()
        self._calls_by_method.clear()

    async def wait_for(
        self, predicate: Callable[[ApiCall], bool] | str, timeout: float = 5.0, *, since: int = 0
    ) -> ApiCall:
        """The first recorded call (from index ``since`` of :attr:`calls`) matching ``predicate``.

        ``predicate`` may be a method name. Already-recorded calls count, so pass
        ``since=len(server.calls)`` to wait only for new ones. Raises ``TimeoutError``. Works from
        any event loop.
        """
        check: Callable[[ApiCall], bool]
        if isinstance(predicate, str):
            name = predicate

            def check(call: ApiCall) -> bool:
                return call.method == name
        else:
            check = predicate
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop and self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.wait_for(check, timeout, since=since), self._loop)
            return await asyncio.wrap_future(future)
        for call in self.calls[since:]:
            if check(call):
                return call
        waiter: asyncio.Future[ApiCall] = loop.create_future()
        entry = (check, waiter)
        self._call_waiters.append(entry)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"no matching Bot API call within {timeout} s") from None
        finally:
            self._call_waiters.remove(entry)

    def wait_for_sync(
        self, predicate: Callable[[ApiCall], bool] | str, timeout: float = 5.0, *, since: int = 0
    ) -> ApiCall:
        """Blocking :meth:`wait_for` for synchronous callers in thread mode."""
        if self._thread_loop is None:
            raise RuntimeError("wait_for_sync needs the server running in its thread")
        future = asyncio.run_coroutine_threadsafe(
            self.wait_for(predicate, timeout, since=since), self._thread_loop
        )
        return future.result(timeout + 5)

    # ---------------------------------------------------------------- events for a chat page

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[BotEvent]:
        """A queue receiving every :class:`BotEvent`; call on the server loop, undo with :meth:`unsubscribe`.

        When the queue is full new events are dropped for that subscriber rather than blocking
        the server.
        """
        queue: asyncio.Queue[BotEvent] = asyncio.Queue(maxsize)
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[BotEvent]) -> None:
        """Stop delivering events to a queue from :meth:`subscribe`."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    def add_listener(self, callback: Callable[[BotEvent], None]) -> None:
        """Call ``callback(event)`` synchronously on the server loop for every :class:`BotEvent`."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[BotEvent], None]) -> None:
        """Undo :meth:`add_listener`."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise ApiError(400, f"Bad Request: {name} is empty")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name}") from None
