"""The stand-in Bot API server, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultCachedPhoto,
    InputMediaPhoto,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from sandbox.botapi import DEFAULT_TOKEN, BotApiServer, BotEvent, HttpRequest, HttpResponse

# PTB itself warns on building RetryAfter while retry_after is still an int by default.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

USER = 5001
GROUP = -4001


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is an int (deprecated) or a timedelta depending on PTB_TIMEDELTA."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


@pytest.fixture
async def server() -> AsyncIterator[BotApiServer]:
    async with BotApiServer() as srv:
        srv.add_user(USER, "Alice", username="alice")
        srv.add_chat(USER)
        srv.add_chat(GROUP, "group", title="两融讨论", members=[5002], admins=[5003], creator=5004)
        yield srv


@pytest.fixture
async def bot(server: BotApiServer) -> AsyncIterator[Bot]:
    async with Bot(DEFAULT_TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as b:
        yield b


@pytest.fixture
async def app(server: BotApiServer) -> AsyncIterator[Application]:
    """A polling Application; tests add handlers before the first update is injected."""
    application = server.application_builder().build()
    async with application:
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=5)
        yield application
        await application.updater.stop()
        await application.stop()


async def test_get_me_and_startup_calls(server: BotApiServer, app: Application) -> None:
    assert app.bot.username == "marginbot_test_bot"
    assert app.bot.id == server.bot_id
    await asyncio.wait_for(_until(lambda: server.is_polling), 3)
    methods = [c.method for c in server.calls]
    assert methods[:2] == ["getMe", "deleteWebhook"]


async def test_command_reaches_handler_private_and_group(server: BotApiServer, app: Application) -> None:
    seen: list[tuple[int, list[str]]] = []

    async def ratio(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        seen.append((update.effective_chat.id, list(context.args or [])))
        await update.effective_message.reply_text("<b>ratio</b> 1.5%", parse_mode=ParseMode.HTML)

    app.add_handler(CommandHandler("ratio", ratio))
    server.inject_message(USER, USER, "/ratio 600519")
    first = await server.wait_for("sendMessage")
    server.inject_message(GROUP, 5002, "/ratio@marginbot_test_bot")
    server.inject_message(GROUP, 5002, "/ratio@someone_else_bot")  # addressed to another bot: ignored
    second = await server.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == GROUP)

    assert seen == [(USER, ["600519"]), (GROUP, [])]
    assert first.chat_id == USER and first.params["parse_mode"] == "HTML"
    reply = server.sent_messages(USER)[-1]
    assert reply.text == "<b>ratio</b> 1.5%" and reply.plain_text() == "ratio 1.5%"
    assert [m.message_id for m in server.history(USER)] == [1, 2]
    assert second.result["chat"]["type"] == "group"
    assert second.result["reply_to_message"]["text"] == "/ratio@marginbot_test_bot"  # PTB quotes in groups


async def test_forum_topics(server: BotApiServer, bot: Bot) -> None:
    """A supergroup with topics: a user's message carries its topic; a send names one (a chat without
    topics refuses that, as Telegram does) or inherits the topic of the message it replies to."""
    forum = -100777
    server.add_chat(forum, "supergroup", title="两融论坛", members=[USER], is_forum=True)
    asked = server.inject_message(forum, USER, "/ratio", thread_id=42)
    assert asked["message_thread_id"] == 42 and asked["is_topic_message"] is True
    assert asked["chat"]["is_forum"] is True
    sent = await bot.send_message(forum, "in the topic", message_thread_id=42)
    assert (sent.message_thread_id, sent.is_topic_message) == (42, True)
    answer = await bot.send_message(forum, "a reply", reply_to_message_id=asked["message_id"])
    assert answer.message_thread_id == 42  # the topic of the message it answers
    general = await bot.send_message(forum, "general")
    assert general.message_thread_id is None and not general.is_topic_message
    with pytest.raises(BadRequest, match="(?i)message thread not found"):
        await bot.send_message(GROUP, "no topics here", message_thread_id=42)
    with pytest.raises(ValueError, match="has no topics"):
        server.inject_message(GROUP, 5002, "hi", thread_id=42)
    assert [m.message_thread_id for m in server.history(forum)] == [42, 42, 42, None]


async def test_photo_upload_then_reuse_and_download(server: BotApiServer, bot: Bot) -> None:
    chart = png(1200, 600)
    first = await bot.send_photo(USER, photo=chart, caption="融资余额")
    file_id = first.photo[-1].file_id
    assert (first.photo[-1].width, first.photo[-1].height) == (1200, 600)
    second = await bot.send_photo(GROUP, photo=file_id, caption="again")

    assert server.uploads == 1
    assert second.photo[-1].file_id == file_id
    assert [c.media_source for c in server.calls_for("sendPhoto")] == ["upload", "file_id"]
    assert server.sent_messages(GROUP)[0].photo_file_id == file_id
    assert server.file_bytes(file_id) == chart

    tg_file = await bot.get_file(file_id)
    assert bytes(await tg_file.download_as_bytearray()) == chart
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_photo(USER, photo="AgACnot-a-real-id")


async def test_documents_albums_and_extra_routes(server: BotApiServer, bot: Bot) -> None:
    sheet = b"PK\x03\x04 not really a workbook"
    doc = await bot.send_document(USER, document=sheet, filename="两融.xlsx", caption="明细")
    assert doc.document is not None and doc.document.file_name == "两融.xlsx"
    assert server.document_uploads == 1 and server.uploads == 0
    assert bytes(await (await bot.get_file(doc.document.file_id)).download_as_bytearray()) == sheet

    album = await bot.send_media_group(GROUP, [InputMediaPhoto(png(30, 20)), InputMediaPhoto(png(20, 30))])
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert server.uploads == 2

    async def hello(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json_body({"chats": sorted(server.chats), "q": request.query.get("q")})

    async def catch_all(request: HttpRequest) -> HttpResponse:
        return HttpResponse.text_body("page", 404)

    server.add_route("GET", "/ui/state", hello)
    server.add_route("GET", "/", catch_all)  # never shadows the Bot API paths
    async with httpx.AsyncClient(base_url=server.url) as client:
        state = (await client.get("/ui/state?q=1")).json()
        assert state == {"chats": [GROUP, USER], "q": "1"}
        assert (await client.get(f"/file/botWRONG/{doc.document.file_id}")).status_code == 401
        assert (await client.get("/nowhere")).text == "page"
        assert (await client.get(f"/bot{server.token}/getMe")).json()["ok"] is True


async def test_edits_change_recorded_history(server: BotApiServer, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("5日", callback_data="p:5")]])
    sent = await bot.send_photo(USER, photo=png(400, 300), caption="周期 20日", reply_markup=keyboard)
    assert sent.reply_markup == keyboard

    edited = await bot.edit_message_caption(USER, sent.message_id, caption="周期 5日", reply_markup=keyboard)
    assert edited.caption == "周期 5日"
    new_chart = png(400, 300, shade=200)
    await bot.edit_message_media(
        InputMediaPhoto(new_chart, caption="周期 5日 (new chart)"),
        USER,
        sent.message_id,
        reply_markup=keyboard,
    )
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=keyboard)

    [message] = server.sent_messages(USER)
    assert message.caption == "周期 5日 (new chart)"
    assert message.edits == 2 and server.uploads == 2
    assert message.photo_file_id != sent.photo[-1].file_id
    assert server.file_bytes(message.photo_file_id or "") == new_chart
    assert message.reply_markup == keyboard.to_dict()

    text = await bot.send_message(USER, "v1", reply_markup=keyboard)
    await bot.edit_message_text("v2", USER, text.message_id)
    assert server.sent_messages(USER)[-1].reply_markup is None  # edit without markup drops the keyboard


async def test_callback_and_inline_answers_recorded(server: BotApiServer, app: Application) -> None:
    photo = await app.bot.send_photo(USER, photo=png(64, 64))
    file_id = photo.photo[-1].file_id

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer(f"got {update.callback_query.data}")

    async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.inline_query is not None
        await update.inline_query.answer([InlineQueryResultCachedPhoto("r1", file_id)], cache_time=0)

    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(InlineQueryHandler(on_inline))
    query_id = server.inject_callback(USER, USER, photo.message_id, "p:5")
    inline_id = server.inject_inline_query(USER, "600519")
    await server.wait_for("answerInlineQuery")
    await server.wait_for("answerCallbackQuery")

    assert server.callback_answers[query_id]["text"] == "got p:5"
    assert server.inline_answers[inline_id]["results"][0]["photo_file_id"] == file_id


async def test_my_chat_member_and_kicked_group(server: BotApiServer, app: Application) -> None:
    changes: list[str] = []

    async def on_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.my_chat_member is not None
        changes.append(update.my_chat_member.new_chat_member.status)

    app.add_handler(ChatMemberHandler(on_member, ChatMemberHandler.MY_CHAT_MEMBER))
    server.inject_my_chat_member(GROUP, "member", "kicked")
    server.inject_my_chat_member(USER, "member", "kicked")
    await asyncio.wait_for(_until(lambda: len(changes) == 2), 3)

    assert changes == ["kicked", "kicked"]
    with pytest.raises(Forbidden, match="kicked from the group"):
        await app.bot.send_message(GROUP, "hi")
    with pytest.raises(Forbidden, match="blocked by the user"):
        await app.bot.send_message(USER, "hi")


async def test_migration_update_and_error(server: BotApiServer, app: Application) -> None:
    migrations: list[tuple[int, int]] = []

    async def on_migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        if message.migrate_to_chat_id:
            migrations.append((message.chat_id, message.migrate_to_chat_id))

    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migrate))
    new_id = server.inject_migration(GROUP)
    await asyncio.wait_for(_until(lambda: bool(migrations)), 3)

    assert migrations == [(GROUP, new_id)] and new_id == -1004001
    with pytest.raises(ChatMigrated) as caught:
        await app.bot.send_message(GROUP, "report")
    assert caught.value.new_chat_id == new_id
    moved = await app.bot.send_message(new_id, "report")
    assert moved.chat.type == "supergroup"
    assert server.calls[-2].error == "Bad Request: group chat was upgraded to a supergroup chat"


@pytest.mark.parametrize(
    ("status", "kwargs", "error", "match"),
    [
        (403, {}, Forbidden, "blocked by the user"),
        (400, {"migrate_to_chat_id": -1009}, ChatMigrated, "New chat id: -1009"),
        (500, {}, NetworkError, "Internal Server Error"),
        (502, {"description": "Bad Gateway"}, NetworkError, "Bad Gateway"),
        (0, {}, NetworkError, None),
    ],
)
async def test_fail_next(
    server: BotApiServer,
    bot: Bot,
    status: int,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str | None,
) -> None:
    server.fail_next("sendMessage", status, **kwargs)
    with pytest.raises(error, match=match):
        await bot.send_message(USER, "x")
    assert (await bot.send_message(USER, "second try")).text == "second try"


async def test_retry_after_and_scoped_faults(server: BotApiServer, bot: Bot) -> None:
    server.fail_next("sendPhoto", 429, retry_after=7, chat_id=GROUP, times=2)
    await bot.send_message(GROUP, "text is not affected")
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_photo(GROUP, photo=png(10, 10))
        assert retry_seconds(caught.value) == 7
    assert server.calls[-1].status == 429 and server.calls[-1].error_parameters == {"retry_after": 7}
    await bot.send_photo(GROUP, photo=png(10, 10))
    assert server.uploads == 1  # failed uploads are not stored

    server.block_chat(USER)
    with pytest.raises(Forbidden):
        await bot.send_photo(USER, photo=png(10, 10))
    server.unblock_chat(USER)
    await bot.send_message(USER, "back")


async def test_rate_limit_emulation(server: BotApiServer, bot: Bot) -> None:
    await bot.send_message(USER, "1")
    await bot.send_message(USER, "2")  # off by default
    server.set_rate_limit(per_chat_per_second=2, group_per_minute=3)
    await bot.send_message(USER, "3")
    await bot.send_message(USER, "4")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "5")
    assert retry_seconds(caught.value) == 1
    server.set_rate_limit(per_chat_per_second=None, group_per_minute=3)
    for n in range(3):
        await bot.send_message(GROUP, str(n))
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "4th in a minute")
    assert 58 <= retry_seconds(caught.value) <= 60


async def test_latency_and_invalid_token(
        server: BotApiServer, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    """set_latency holds the answers of the method named for the seconds configured, and no other's.
    The server's latency wait is observed, not timed: its module's asyncio.sleep is replaced by one
    that records the delay asked and returns when the test says the latency is over."""
    import sandbox.botapi.server as server_module

    slept: list[float] = []
    latency_over = asyncio.Event()

    class Clock:
        """The server module's asyncio, whose sleep waits for the test."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        async def sleep(delay: float, result: Any = None) -> Any:
            slept.append(delay)
            await latency_over.wait()
            return result

    monkeypatch.setattr(server_module, "asyncio", Clock())
    server.set_latency(2.5, "sendMessage")
    slow = asyncio.create_task(bot.send_message(USER, "slow"))
    await asyncio.wait_for(_until(lambda: slept), 5)
    assert (await asyncio.wait_for(bot.get_me(), 5)).username == "marginbot_test_bot"  # others answer at once
    assert slept == [2.5] and not slow.done()  # the send waits for its configured latency
    assert [c.method for c in server.calls if c.method == "sendMessage"] == []  # not yet handled
    latency_over.set()
    assert (await slow).text == "slow"
    assert [c.method for c in server.calls][-2:] == ["getMe", "sendMessage"]  # answered after getMe
    server.set_latency(0, "sendMessage")
    assert (await bot.send_message(USER, "fast")).text == "fast"
    assert slept == [2.5]  # no latency once removed

    server.hold_answers("sendMessage")  # the same, held until released rather than for a time
    held = asyncio.create_task(bot.send_message(USER, "held"))
    await asyncio.wait_for(_until(lambda: server.held("sendMessage") == 1), 5)
    assert not held.done() and [m.text for m in server.sent_messages(USER)] == ["slow", "fast"]
    server.release_answers("sendMessage")
    assert (await held).text == "held" and server.held("sendMessage") == 0
    assert [m.text for m in server.sent_messages(USER)] == ["slow", "fast", "held"]

    other = Bot("42:WRONG", base_url=server.base_url)
    with pytest.raises(InvalidToken):
        await other.initialize()
    await other.shutdown()
    assert server.calls[-1].status == 401


async def test_parse_errors_like_telegram(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, "融资 < 融券", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)character '-' is reserved"):
        await bot.send_message(USER, "涨跌 -1.5%", parse_mode=ParseMode.MARKDOWN_V2)
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(USER, "x" * 4097)
    ok = await bot.send_message(USER, "涨跌 \\-1\\.5% *粗*", parse_mode=ParseMode.MARKDOWN_V2)
    assert ok.text == "涨跌 -1.5% 粗"


async def test_chat_members_commands_and_leave(server: BotApiServer, bot: Bot) -> None:
    admins = await bot.get_chat_administrators(GROUP)
    assert {(a.user.id, a.status) for a in admins} == {(5003, "administrator"), (5004, "creator")}
    assert (await bot.get_chat_member(GROUP, 5002)).status == "member"
    assert (await bot.get_chat_member(GROUP, server.bot_id)).status == "member"
    chat = await bot.get_chat(GROUP)
    assert chat.title == "两融讨论" and chat.type == "group"

    await bot.set_my_commands([("ratio", "融资融券比"), ("subscribe", "订阅日报")])
    assert [c.command for c in await bot.get_my_commands()] == ["ratio", "subscribe"]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()

    await bot.send_chat_action(USER, "upload_photo")
    assert server.chat_actions[-1]["action"] == "upload_photo"
    assert await bot.leave_chat(GROUP)
    with pytest.raises(Forbidden, match="not a member"):
        await bot.send_message(GROUP, "still here?")


async def test_events_and_long_poll_wakeup(server: BotApiServer, bot: Bot) -> None:
    events = server.subscribe()
    seen: list[BotEvent] = []
    server.add_listener(seen.append)
    sent = await bot.send_message(USER, "hello")
    await bot.edit_message_text("hello again", USER, sent.message_id)
    first, second = events.get_nowait(), events.get_nowait()
    assert (first.kind, second.kind) == ("message", "edit")
    assert second.message is not None and second.message.text == "hello again"
    assert [e.kind for e in seen] == ["message", "edit"]
    server.unsubscribe(events)

    poll = asyncio.create_task(bot.get_updates(timeout=600))
    await asyncio.wait_for(_until(lambda: server.is_polling), 5)  # the server holds the long poll
    assert not poll.done()
    server.inject_message(USER, USER, "/start")
    assert not server.is_polling  # woken by the update at once, not by its 600 s timeout
    updates = await asyncio.wait_for(poll, 5)
    assert updates[0].message is not None and updates[0].message.text == "/start"
    assert seen[-1].kind == "update"
    with pytest.raises(TimeoutError):
        await server.wait_for("sendDocument", timeout=0.05)


def test_thread_mode_for_sync_callers() -> None:
    with BotApiServer() as server:
        url = f"{server.base_url}{server.token}"
        with httpx.Client() as client:
            assert client.get(f"{url}/getMe").json()["result"]["username"] == "marginbot_test_bot"
            server.add_chat(-100777, "supergroup", title="Broadcast")
            answer = client.post(f"{url}/sendMessage", data={"chat_id": "-100777", "text": "hi"}).json()
            assert answer["ok"] and answer["result"]["chat"]["type"] == "supergroup"
            server.fail_next("sendMessage", 403)
            denied = client.post(f"{url}/sendMessage", json={"chat_id": -100777, "text": "x"})
            assert denied.status_code == 403 and denied.json()["error_code"] == 403
            assert client.post(f"{server.base_url}bad:token/getMe").status_code == 401
        assert server.wait_for_sync("sendMessage").chat_id == -100777
        assert [m.text for m in server.sent_messages(-100777)] == ["hi"]


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)
