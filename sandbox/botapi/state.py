"""The records the server keeps: recorded calls, uploads, files, messages, chats, members and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.botapi.text import visible_text


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
    message_thread_id: int | None = None  # the forum topic it was posted in
    edit_date: int | None = None
    edits: int = 0
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def from_bot(self) -> bool:
        """True for messages the bot sent (not a user's sent on behalf of a chat, whose sender is
        Telegram's placeholder bot)."""
        return bool(self.sender.get("is_bot")) and "sender_chat" not in self.extra

    @property
    def photo_file_id(self) -> str | None:
        """file_id of the largest photo size, as a bot would keep it for reuse."""
        return self.photo[-1]["file_id"] if self.photo else None

    def plain_text(self) -> str | None:
        """Text or caption with HTML/MarkdownV2 markup removed, as a Telegram client shows it."""
        raw = self.text if self.text is not None else self.caption
        if raw is None:
            return None
        return visible_text(raw, self.parse_mode, strict=False)

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
        if self.message_thread_id is not None:
            msg["message_thread_id"] = self.message_thread_id
            msg["is_topic_message"] = True
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
    is_forum: bool = False  # a supergroup with topics: messages carry a message_thread_id
    deleted_topics: set[int] = field(default_factory=set)  # sends to these get "message thread not found"
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1

    def to_api(self) -> dict[str, Any]:
        """The short ``Chat`` object used inside messages."""
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title is not None:
            chat["title"] = self.title
        if self.is_forum:
            chat["is_forum"] = True
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
                    "can_react_to_messages",  # required by python-telegram-bot 22.8
                ),
                False,
            ),
        )
    elif status == "kicked":
        member["until_date"] = 0
    elif status not in ("member", "left"):
        raise ValueError(f"unknown chat member status {status!r}")
    return member
