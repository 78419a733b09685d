"""The test and chat-page API: set up users and chats, inject updates and faults, inspect what the bot
sent, wait for calls and subscribe to events."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sandbox.botapi.base import _ServerBase
from sandbox.botapi.errors import _DEFAULT_DESCRIPTIONS, BLOCKED, MIGRATED, ApiError
from sandbox.botapi.faults import _Fault, _RateLimits
from sandbox.botapi.state import ApiCall, BotEvent, ChatState, StoredMessage, _member_json
from sandbox.botapi.text import _utf16_len
from sandbox.botapi.wire import _phrase

# Telegram's placeholder senders of messages sent on behalf of a chat (Message.from_user).
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,64})?")

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_ServerBase)


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


class _ControlApi(_ServerBase):
    """Methods tests and the chat page call; those marked ``_threadsafe`` run on the server loop."""

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
        is_forum: bool = False,
    ) -> ChatState:
        """Register a chat. ``members``/``admins``/``creator`` answer getChatMember and getChatAdministrators.

        A private chat's id is its user's id; the user is registered if unknown. ``bot_status``
        is the bot's own membership ("member", "administrator", "left", "kicked"). ``is_forum``: a
        supergroup with topics.
        """
        if type not in ("private", "group", "supergroup", "channel"):
            raise ValueError(f"unknown chat type {type!r}")
        if is_forum and type != "supergroup":
            raise ValueError("only a supergroup can have topics")
        chat = ChatState(chat_id, type, title=title, username=username, bot_status=bot_status, is_forum=is_forum)
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
    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """An admin deletes a forum topic: later sends to it fail with "message thread not found"."""
        chat = self._known_chat(chat_id)
        if not chat.is_forum:
            raise ValueError(f"chat {chat_id} has no topics")
        chat.deleted_topics.add(thread_id)

    # ---------------------------------------------------------------- test API: injecting updates

    @property
    def updates_injected(self) -> int:
        """How many updates were injected so far (delivered to the bot or still pending): a test
        compares it before and after an action to see that the action sent the bot nothing."""
        return self._next_update_id - 1

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
        thread_id: int | None = None,
        sender_chat: int | None = None,
    ) -> dict[str, Any]:
        """A user writes ``text`` in a chat (in forum topic ``thread_id``); returns the ``Message``
        object delivered to the bot.

        A leading command (``/ratio`` or ``/ratio@botname``) gets a ``bot_command`` entity.
        ``sender_chat``: the message is sent on behalf of a chat, as Telegram delivers it: the group
        itself (an anonymous admin, ``from`` GroupAnonymousBot) or a channel (a member posting as
        their channel, or the group's linked channel; ``from`` Channel_Bot); ``from_user`` is then
        who did it, never shown to the bot.
        """
        chat = self._known_chat(chat_id)
        if thread_id is not None and not chat.is_forum:
            raise ValueError(f"chat {chat_id} has no topics")
        user = self._user(from_user)
        if chat.is_group and chat.members.get(int(user["id"])) in (None, "left", "kicked"):
            chat.members[int(user["id"])] = "member"
        on_behalf = self._known_chat(sender_chat) if sender_chat is not None else None
        if on_behalf is not None:
            user = dict(GROUP_ANONYMOUS_BOT if on_behalf.id == chat.id else CHANNEL_BOT)
        entities = None
        match = _COMMAND_RE.match(text)
        if match and (match.end() == len(text) or text[match.end()].isspace()):
            entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]
        reply_to = chat.messages.get(reply_to_message_id) if reply_to_message_id is not None else None
        message = self._new_message(chat, user, text=text, entities=entities, reply_to=reply_to,
                                    message_thread_id=thread_id)
        if on_behalf is not None:
            message.extra["sender_chat"] = on_behalf.to_api()
        payload = message.to_api()
        self._push_update("message", payload, chat.id)
        return payload

    @_threadsafe
    def inject_edit(self, chat_id: int, message_id: int, text: str | None = None) -> dict[str, Any]:
        """The author of message ``message_id`` edits its text (or a photo's caption) to ``text``: an
        ``edited_message`` update carrying the whole message with its new text, entities and
        ``edit_date``. Without ``text`` nothing changes, as when Telegram reports a message's first
        reaction as an edit."""
        chat = self._known_chat(chat_id)
        if chat.type == "channel":
            raise ValueError("a channel's edits are edited_channel_post updates")
        message = chat.messages.get(message_id)
        if message is None or message.from_bot:
            raise KeyError(f"no user message {message_id} in chat {chat_id}")
        if text is not None and message.text is None:
            message.caption = text
        elif text is not None:
            match = _COMMAND_RE.match(text)
            command = match is not None and (match.end() == len(text) or text[match.end()].isspace())
            message.text = text
            message.entities = ([{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]
                                if command and match is not None else None)
        message.edit_date = int(time.time())
        message.edits += 1
        payload = message.to_api()
        self._push_update("edited_message", payload, chat.id)
        return payload

    @_threadsafe
    def inject_channel_post(self, chat_id: int, text: str, discussion: int | None = None) -> dict[str, Any]:
        """An admin posts ``text`` in a channel, as the channel: a ``channel_post`` update whose
        message has ``sender_chat`` (the channel itself) and no ``from``; returns that message.

        ``discussion``: the channel's linked discussion group, where Telegram copies the post as a
        message with ``is_automatic_forward``, from its service account 777000 (a second update)."""
        chat = self._known_chat(chat_id)
        if chat.type != "channel":
            raise ValueError(f"chat {chat_id} is not a channel")
        entities = None
        match = _COMMAND_RE.match(text)
        if match and (match.end() == len(text) or text[match.end()].isspace()):
            entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]
        message = self._new_message(chat, {}, text=text, entities=entities)
        payload = message.to_api()
        payload.pop("from", None)
        payload["sender_chat"] = chat.to_api()
        self._push_update("channel_post", payload, chat.id)
        if discussion is not None:
            group = self._known_chat(discussion)
            copy = self._new_message(group, {"id": 777000, "is_bot": False, "first_name": "Telegram"}, text=text,
                                     entities=entities)
            copy.extra.update(sender_chat=chat.to_api(), is_automatic_forward=True, forward_origin={
                "type": "channel", "chat": chat.to_api(), "message_id": message.message_id, "date": message.date})
            self._push_update("message", copy.to_api(), group.id)
        return payload

    @_threadsafe
    def inject_media(self, chat_id: int, from_user: int | dict[str, Any], kind: str,
                     content: dict[str, Any]) -> dict[str, Any]:
        """A user sends a message without text: ``kind`` is its field (``sticker``, ``photo``,
        ``voice``...) and ``content`` that field's object as the Bot API gives it."""
        chat = self._known_chat(chat_id)
        message = self._new_message(chat, self._user(from_user))
        message.extra[kind] = content
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
        if result.get("reply_markup"):  # the result's buttons come with it, as in Telegram
            fields["reply_markup"] = result["reply_markup"]
        message = self._new_message(chat, user, extra={"via_bot": dict(self.bot_user)}, **fields)
        payload = message.to_api()
        self._push_update("message", payload, chat.id)
        return payload

    @_threadsafe
    def inject_my_chat_member(
        self, chat_id: int, old_status: str, new_status: str, *, from_user: int | dict[str, Any] | None = None,
        is_member: bool = True,
    ) -> dict[str, Any]:
        """The bot's membership changes (e.g. "member" -> "kicked"); later sends follow the new status.

        In a private chat "kicked" means the user blocked the bot (sends answer 403). ``is_member``
        False with ``new_status`` "restricted": the muted bot was removed (Telegram keeps its
        restrictions: still "restricted", no longer a member; sends answer 403 as for "left").
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
        if new_status == "restricted" and not is_member:
            payload["new_chat_member"]["is_member"] = False
        chat.bot_status = "left" if new_status == "restricted" and not is_member else new_status
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
