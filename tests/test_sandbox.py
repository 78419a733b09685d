"""The sandbox: the real bot against the stand-in Bot API, seen through the chat page's endpoints.

The demo data are seeded once per module into a template SQLite file; every sandbox gets a copy.
The browser test (marked ``browser``) drives Debian's Chromium headless with Playwright and saves
screenshots to out/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from marginbot.settings import Settings, load_settings
from reports.i18n import t
from reports.text import to_plain
from sandbox.app import SANDBOX_COMMANDS_PER_MINUTE, Sandbox, forget_local_deliveries, run_sandbox, start_sandbox
from sandbox.page import GROUP_ID, STORAGE_CHANNEL_ID, YOU_ID
from storage.database import make_engine
from tests.demo_db import demo_db_file
from tests.netguard import PREAMBLE, child_env

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "out" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_RESOLVER_RULES = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
Message = dict[str, Any]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """The demo database (seeded once per session, shared with the other test modules)."""
    return demo_db_file(tmp_path_factory, pytestconfig)


def copy_db(template: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "sandbox.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def sandbox_settings(database_url: str) -> Settings:
    return load_settings(
        _env_file=None, database_url=database_url, telegram_bot_token=None, sandbox_open_browser=False
    )


class SandboxThread:
    """start_sandbox on an event loop of its own thread, for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandbox-test", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the sandbox's loop: the stand-in's state belongs to that loop."""

        async def on_loop() -> Any:
            return fn(*args)

        return self.run(on_loop(), 30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def running_sandbox(database_url: str) -> Iterator[tuple[Sandbox, SandboxThread]]:
    """A sandbox on `database_url` (port 0), stopped on leaving."""
    engine = make_engine(database_url)
    runner = SandboxThread()
    try:
        box: Sandbox = runner.run(start_sandbox(sandbox_settings(database_url), engine, port=0))
        try:
            yield box, runner
        finally:
            runner.run(box.stop(), 30)
    finally:
        runner.close()
        engine.dispose()


@pytest.fixture(scope="module")
def sandbox_and_loop(
    template_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, SandboxThread]]:
    with running_sandbox(copy_db(template_db, tmp_path_factory.mktemp("sandbox"))) as both:
        yield both


@pytest.fixture(scope="module")
def sandbox(sandbox_and_loop: tuple[Sandbox, SandboxThread]) -> Sandbox:
    return sandbox_and_loop[0]


@pytest.fixture(scope="module")
def loop(sandbox_and_loop: tuple[Sandbox, SandboxThread]) -> SandboxThread:
    return sandbox_and_loop[1]


@pytest.fixture(scope="module")
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=40) as c:
        yield c


class Chats:
    """What the page knows: every message by (chat, id) as of the last change seen."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.seq = 0
        self.messages: dict[tuple[int, int], Message] = {}
        self.notices: list[dict[str, Any]] = []

    def sync(self, wait: float = 0) -> None:
        answer = self.client.get("/api/history", params={"after": self.seq, "wait": wait})
        answer.raise_for_status()
        body = answer.json()
        for message in body["messages"]:
            self.messages[(message["chat"], message["id"])] = message
        self.notices += body["notices"]
        self.seq = body["seq"]

    def in_chat(self, chat: int) -> list[Message]:
        return sorted((m for (c, _), m in self.messages.items() if c == chat), key=lambda m: m["id"])

    def until(self, found: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = found()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}; seen: {list(self.messages.values())[-4:]}"
                )
            self.sync(wait=min(left, 10))


def bot_messages(chats: Chats, chat: int, after_id: int = 0) -> list[Message]:
    return [m for m in chats.in_chat(chat) if m["from"]["is_bot"] and m["id"] > after_id]


def send(client: httpx.Client, chat: int, text: str, who: str = "you") -> int:
    answer = client.post("/api/send", json={"chat": chat, "text": text, "as": who})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["message_id"])


def reply_to(chats: Chats, chat: int, sent_id: int, contains: str, what: str) -> Message:
    def found() -> Message | None:
        return next((m for m in bot_messages(chats, chat, sent_id) if contains in (m["text"] or "")), None)

    return chats.until(found, 60, what)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------- the page


def test_page_static_files_and_guards(sandbox: Sandbox, client: httpx.Client) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js">' in page.text and "https://" not in page.text  # no CDN
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
    assert client.get("/static/../app.py").status_code == 404
    # DNS rebinding: another host name pointing at 127.0.0.1 gets nothing.
    assert client.get("/api/chats", headers={"Host": "evil.example:80"}).status_code == 403
    # A cross-site form post (no JSON content type) is refused.
    assert (
        client.post(
            "/api/send",
            content=b"chat=1&text=/ratio",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status_code
        == 415
    )
    assert client.post("/api/send", json={"chat": 42, "text": "/ratio"}).status_code == 400
    assert client.post("/api/send", json={"chat": YOU_ID, "text": "  "}).status_code == 400
    # The Bot API on the same port wants the generated token, which the page never learns.
    assert client.get("/bot123456:wrong/getMe").status_code == 401
    assert sandbox.server.token not in page.text + client.get("/api/chats").text


# The menu the bot registers for private chats (and, the same, for the group's members and admins).
PRIVATE_COMMANDS = [
    "balance", "ratio", "sectors", "signals", "stock", "top", "watch", "unwatch",
    "subscribe", "unsubscribe", "settings", "help",
]


def test_chats_and_command_menus(client: httpx.Client) -> None:
    info = client.get("/api/chats").json()
    assert info["me"]["name"] == "You" and info["lang"] == "zh"
    private, group = info["chats"]
    assert private["id"] == YOU_ID and private["type"] == "private"
    assert group["id"] == GROUP_ID and group["title"] == "两融讨论群"
    bot, me, member = info["bot"], info["me"], info["member"]
    assert bot["name"] == "两融雷达" and bot["username"] == "liangrong_sandbox_bot"
    assert private["members"] == [
        {"id": YOU_ID, "name": "You", "is_bot": False, "status": "member"},
        {"id": bot["id"], "name": "两融雷达", "is_bot": True, "status": "member"},
    ]
    assert group["members"] == [
        {"id": member["id"], "name": "小林", "is_bot": False, "status": "member"},
        {"id": me["id"], "name": "You", "is_bot": False, "status": "administrator"},
        {"id": bot["id"], "name": "两融雷达", "is_bot": True, "status": "member"},  # added by You
    ]

    def menu(chat: int) -> dict[str, str]:
        commands = client.get("/api/commands", params={"chat": chat}).json()["commands"]
        return {c["command"]: c["description"] for c in commands}

    # What the bot registered with setMyCommands, per scope and language.
    assert menu(YOU_ID)["ratio"] == "两融交易占比" and list(menu(YOU_ID)) == PRIVATE_COMMANDS
    assert list(menu(GROUP_ID)) == PRIVATE_COMMANDS  # with /settings: admins set a group's language
    assert client.post("/api/language", json={"lang": "en"}).json()["lang"] == "en"
    try:
        assert menu(YOU_ID)["ratio"] == "Margin share of turnover"
        assert client.get("/api/chats").json()["lang"] == "en"
    finally:
        client.post("/api/language", json={"lang": "zh"})
    assert client.post("/api/language", json={"lang": "fr"}).status_code == 400


def test_ratio_chart_then_window_button_edits_it(client: httpx.Client) -> None:
    chats = Chats(client)
    chats.sync()
    sent = send(client, YOU_ID, "/ratio")

    def chart() -> Message | None:
        return next(
            (
                m
                for m in bot_messages(chats, YOU_ID, sent)
                if m["photo"] and "两融交易占比" in (m["text"] or "")
            ),
            None,
        )

    photo = chats.until(chart, 90, "the /ratio chart")
    user_message = chats.messages[(YOU_ID, sent)]
    assert user_message["text"] == "/ratio" and user_message["html"] is None
    assert "<b>两融交易占比" in photo["html"] and "\n" in photo["html"]  # Telegram HTML, line breaks kept
    image = client.get(photo["photo"]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n") and len(image.content) > 10_000
    assert photo["photo"]["width"] >= 600
    labels = [b["text"] for row in photo["buttons"] for b in row]
    assert labels == ["20日", "60日", "• 250日 •"]
    sixty = next(b for row in photo["buttons"] for b in row if b["text"] == "60日")

    # A button the message does not have is refused; the real one becomes a callback query.
    bad = client.post("/api/callback", json={"chat": YOU_ID, "message_id": photo["id"], "data": "w:ratio:7:"})
    assert bad.status_code == 400
    tapped = client.post(
        "/api/callback", json={"chat": YOU_ID, "message_id": photo["id"], "data": sixty["data"]}
    )
    assert tapped.status_code == 200, tapped.text
    query_id = tapped.json()["query_id"]

    def edited() -> Message | None:
        current = chats.messages[(YOU_ID, photo["id"])]
        return current if current["edited"] and current["seq"] > photo["seq"] else None

    after = chats.until(edited, 90, "the chart redrawn for 60 days")
    assert [b["text"] for row in after["buttons"] for b in row] == ["20日", "• 60日 •", "250日"]
    assert "两融交易占比" in after["text"] and after["photo"]["url"] != photo["photo"]["url"]
    assert client.get(after["photo"]["url"]).content.startswith(b"\x89PNG")
    chats.until(
        lambda: any(n["kind"] == "answer" and n["query_id"] == query_id for n in chats.notices),
        30,
        "the callback answer",
    )
    # Still one chart message in the chat: edited in place, not sent again.
    assert sum(1 for m in bot_messages(chats, YOU_ID, sent) if m["photo"]) == 1


def test_plain_user_text_is_never_markup(client: httpx.Client) -> None:
    chats = Chats(client)
    sent = send(client, YOU_ID, "<b>not bold</b> & <img src=x onerror=alert(1)>")
    chats.until(lambda: (YOU_ID, sent) in chats.messages, 20, "the user's message")
    message = chats.messages[(YOU_ID, sent)]
    assert message["html"] is None and message["text"] == "<b>not bold</b> & <img src=x onerror=alert(1)>"


# ---------------------------------------------------------------------------------------- editing


def edit(client: httpx.Client, chat: int, message_id: int, text: str, who: str = "you") -> httpx.Response:
    return client.post("/api/edit", json={"chat": chat, "message_id": message_id, "text": text, "as": who})


def ratio_chart(chats: Chats, chat: int, after_id: int) -> Message | None:
    return next(
        (m for m in bot_messages(chats, chat, after_id) if m["photo"] and "两融交易占比" in (m["text"] or "")),
        None,
    )


def test_a_command_corrected_in_place_is_answered(client: httpx.Client) -> None:
    """/stokc gets the unknown-command answer; edited to /ratio 20 on the page, the bot answers the edit
    with its 20-day chart, and the page shows the user's message with its new text, marked edited."""
    chats = Chats(client)
    chats.sync()
    sent = send(client, YOU_ID, "/stokc")
    unknown = reply_to(chats, YOU_ID, sent, "/stokc", "the unknown-command answer")
    assert unknown["text"] == to_plain(t("zh", "bot.unknown_command_suggest", command="/stokc", suggestion="/stock"))

    answer = edit(client, YOU_ID, sent, "/ratio 20")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and body["edited"] is True and body["message_id"] == sent

    def corrected() -> Message | None:
        message = chats.messages[(YOU_ID, sent)]
        return message if message["edited"] and message["text"] == "/ratio 20" else None

    chats.until(corrected, 20, "the user's message with its new text")
    chart = chats.until(lambda: ratio_chart(chats, YOU_ID, unknown["id"]), 90, "the /ratio 20 chart")
    assert [b["text"] for row in chart["buttons"] for b in row] == ["• 20日 •", "60日", "250日"]
    assert chart["reply_to"] is None  # a private chat: answered as if sent anew, not quoted
    # One answer to the edit: the chart (and its details), no second unknown-command line.
    assert [m for m in bot_messages(chats, YOU_ID, sent) if "/stokc" in (m["text"] or "")] == [unknown]


def test_editing_only_your_own_text_and_an_unchanged_edit_is_not_sent(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    chats = Chats(client)
    chats.sync()
    sent = send(client, YOU_ID, "/stokc")
    unknown = reply_to(chats, YOU_ID, sent, "/stokc", "the unknown-command answer")

    def refused(chat: int, message_id: int, text: str = "/ratio", who: str = "you") -> str:
        answer = edit(client, chat, message_id, text, who)
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert error["ok"] is False and error["error"]
        return str(error["error"])

    # The bot's message, an unknown one, another sender's, bad parameters: 400 and nothing edited.
    assert "bot's message" in refused(YOU_ID, unknown["id"])
    assert "no such message" in refused(YOU_ID, 10**9)
    assert "text" in refused(YOU_ID, sent, "  ")
    assert "4096" in refused(YOU_ID, sent, "x" * 4097)
    assert "chat" in refused(42, sent)
    assert "as" in refused(YOU_ID, sent, who="member")  # no member in the private chat
    bad_id = client.post("/api/edit", json={"chat": YOU_ID, "message_id": "x", "text": "/ratio"})
    assert bad_id.status_code == 400 and "message_id" in bad_id.json()["error"]
    form = client.post(
        "/api/edit", content=b"chat=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415
    chatter = send(client, GROUP_ID, "hi", who="member")
    assert "sender" in refused(GROUP_ID, chatter)  # You may not edit 小林's message
    updates_before = sandbox.server.updates_injected
    moved = edit(client, GROUP_ID, chatter, "hi all", who="member")  # 小林 may
    assert moved.status_code == 200 and moved.json()["edited"] is True
    assert sandbox.server.updates_injected == updates_before + 1  # one edited_message for the bot
    body = inline(client, GROUP_ID, "ratio")
    chosen = client.post(
        "/api/inline/choose",
        json={"chat": GROUP_ID, "query_id": body["query_id"], "result_id": body["results"][0]["id"]},
    )
    assert "via a bot" in refused(GROUP_ID, chosen.json()["message_id"])

    # The same text again: Telegram refuses such an edit (MESSAGE_NOT_MODIFIED), so no update reaches
    # the bot and nothing is answered; the message is not marked edited.
    updates_before = sandbox.server.updates_injected
    same = edit(client, YOU_ID, sent, "/stokc")
    assert same.status_code == 200, same.text
    assert same.json()["ok"] is True and same.json()["edited"] is False and same.json()["message_id"] == sent
    assert sandbox.server.updates_injected == updates_before  # no edited_message reached the bot
    chats.until(lambda: (chats.messages.get((GROUP_ID, chatter)) or {}).get("text") == "hi all", 20, "小林's edit")
    chats.sync()
    assert chats.messages[(YOU_ID, sent)]["edited"] is False and chats.messages[(YOU_ID, sent)]["text"] == "/stokc"
    assert not chats.messages[(YOU_ID, unknown["id"])]["edited"]  # the bot's message was not touched


def engine_of(box: Sandbox) -> Engine:
    from bot.services import services_of

    return services_of(box.application).engine


def test_subscribe_and_push_now(sandbox: Sandbox, client: httpx.Client) -> None:
    chats = Chats(client)
    chats.sync()
    # This module's sandbox is shared: whatever another test pushed to its chats is forgotten first,
    # so that the day's push goes to both chats below (as after a restart of the sandbox).
    forget_local_deliveries(engine_of(sandbox))
    sent = send(client, YOU_ID, "/subscribe")
    reply_to(chats, YOU_ID, sent, "订阅", "the private /subscribe answer")
    # In the group only admins may subscribe: 小林 is refused, You (admin) are not.
    sent = send(client, GROUP_ID, "/subscribe", who="member")
    reply_to(chats, GROUP_ID, sent, "只有群管理员", "the admins-only answer")
    sent = send(client, GROUP_ID, "/subscribe")
    reply_to(chats, GROUP_ID, sent, "订阅", "the group /subscribe answer")
    marks = {chat: max(m["id"] for m in chats.in_chat(chat)) for chat in (YOU_ID, GROUP_ID)}

    answer = client.post("/api/push", json={}, timeout=120)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    # The page has two chats (the storage channel never subscribes), both subscribed just above.
    assert result["ok"] and result["trade_date"] == "2026-11-20"
    assert (result["subscribers"], result["delivered"]) == (2, 2)
    assert (result["sent"], result["failed"], result["deactivated"], result["unconfirmed"]) == (2, 0, 0, 0)

    def summaries() -> bool:
        return all(
            any(
                m["photo"] and "两融雷达 · 2026-11-20" in (m["text"] or "")
                for m in bot_messages(chats, chat, marks[chat])
            )
            for chat in (YOU_ID, GROUP_ID)
        )

    chats.until(summaries, 60, "the daily summary in both subscribed chats")
    # Pushing again sends nothing: every subscriber already has that day's summary.
    again = client.post("/api/push", json={}, timeout=120).json()
    assert again["ok"] and (again["sent"], again["failed"], again["subscribers"], again["delivered"]) == (0, 0, 2, 2)


def test_history_wait_must_be_a_finite_number_of_seconds(client: httpx.Client) -> None:
    """nan or inf would become a timer of the event loop the bot shares: refused, never scheduled."""
    for wait in ("nan", "NaN", "inf", "-inf", "-1", "30.5", "1e9", "soon"):
        answer = client.get("/api/history", params={"after": 10**9, "wait": wait})
        assert answer.status_code == 400, (wait, answer.text)
        assert answer.json()["ok"] is False and "wait" in answer.json()["error"], wait
    for wait in ("0", "0.2"):
        answer = client.get("/api/history", params={"wait": wait})
        assert answer.status_code == 200 and answer.json()["seq"] >= 0
    # The loop's timers are intact: a long poll of 0.3 s still ends (a broken timer would hang it past
    # the request's own timeout, which fails the test), and the bot still answers.
    seq = client.get("/api/history").json()["seq"]
    assert client.get("/api/history", params={"after": seq, "wait": 0.3}, timeout=10).status_code == 200
    chats = Chats(client)
    chats.sync()
    sent = send(client, YOU_ID, "/stokc")
    answer = reply_to(chats, YOU_ID, sent, "/stokc", "an answer")
    assert answer["text"] == to_plain(t("zh", "bot.unknown_command_suggest", command="/stokc", suggestion="/stock"))


def test_demo_stocks_go_by_their_demo_names(client: httpx.Client) -> None:
    """Real names (茅台) are not in the demo data: the page and the README give names that are."""
    chats = Chats(client)
    chats.sync()
    sent = send(client, YOU_ID, "/stock 演示股份0028")
    answer = reply_to(chats, YOU_ID, sent, "演示股份0028（600519）", "the /stock answer by demo name")
    assert answer["from"]["is_bot"] and answer["text"].startswith("演示股份0028（600519）融资余额")
    page = client.get("/").text
    assert "<code>/stock 演示股份0028</code>" in page and "<code>/stock 600519</code>" in page
    assert "/stock 演示股份0028" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_sandbox_allows_a_newcomer_more_reports(sandbox: Sandbox) -> None:
    """Trying every report within a minute must not hit the default 12 a minute."""
    from bot.services import services_of
    from sandbox.app import sandbox_settings as bot_settings

    assert services_of(sandbox.application).throttle.limit == SANDBOX_COMMANDS_PER_MINUTE == 60
    configured = load_settings(_env_file=None, telegram_bot_token=None, commands_per_minute=200)
    assert [s.commands_per_minute for s in bot_settings(configured, "1:x")] == [200, 200]  # never lowered


def subscribe_private(client: httpx.Client, chats: Chats) -> None:
    sent = send(client, YOU_ID, "/subscribe")
    reply_to(chats, YOU_ID, sent, "订阅", "the /subscribe answer")


def summary_after(chats: Chats, after_id: int) -> Message:
    def found() -> Message | None:
        return next(
            (
                m
                for m in bot_messages(chats, YOU_ID, after_id)
                if m["photo"] and "两融雷达 · 2026-11-20" in (m["text"] or "")
            ),
            None,
        )

    return chats.until(found, 60, "the daily summary")  # type: ignore[no-any-return]


def push(client: httpx.Client) -> dict[str, Any]:
    answer = client.post("/api/push", json={}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_push_now_reaches_a_chat_whatever_its_push_time(
    template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/settings sets the chat's push time to 20:00; at 09:00 Beijing time "Run daily push now" still
    delivers it (the button is "now"; the push time is for the scheduled push)."""
    import bot.push
    from marginbot.settings import TIMEZONE
    from storage.chats import get_chat

    real = bot.push.datetime

    class NineAm(real):  # type: ignore[misc,valid-type]
        """Beijing time is 09:00, before the chat's push time, whatever the hour of the test run."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            at = real.now(tz)
            return at.replace(hour=9, minute=0) if tz is TIMEZONE else at

    monkeypatch.setattr(bot.push, "datetime", NineAm)
    with running_sandbox(copy_db(template_db, tmp_path)) as (box, _), httpx.Client(
        base_url=box.url, timeout=40
    ) as client:
        chats = Chats(client)
        chats.sync()
        subscribe_private(client, chats)
        sent = send(client, YOU_ID, "/settings")
        menu = reply_to(chats, YOU_ID, sent, "推送时间", "the /settings answer")
        data = [b["data"] for row in menu["buttons"] for b in row if b.get("data") == "s:time:20:00"]
        assert data == ["s:time:20:00"], menu["buttons"]
        tapped = client.post("/api/callback", json={"chat": YOU_ID, "message_id": menu["id"], "data": data[0]})
        assert tapped.status_code == 200, tapped.text
        query_id = tapped.json()["query_id"]
        chats.until(
            lambda: any(n["kind"] == "answer" and n["query_id"] == query_id for n in chats.notices),
            30,
            "the answer to the push-time button",
        )
        stored = get_chat(engine_of(box), YOU_ID)
        assert stored is not None and stored.push_time is not None
        assert stored.push_time.strftime("%H:%M") == "20:00" and stored.subscribed
        mark = max(m["id"] for m in chats.in_chat(YOU_ID))

        result = push(client)
        assert result["ok"] and result["trade_date"] == "2026-11-20"
        assert (result["sent"], result["failed"], result["subscribers"], result["delivered"]) == (1, 0, 1, 1)
        summary_after(chats, mark)


def test_a_restarted_sandbox_pushes_the_day_again(template_db: Path, tmp_path: Path) -> None:
    """The stand-in's chats start empty on every run; the database remembers the earlier run's push
    of the demo's one trade date. The sandbox forgets its own chats' deliveries, never a real chat's."""
    from sqlalchemy import select

    from storage import models
    from storage.database import session_scope

    url = copy_db(template_db, tmp_path)
    real_chat = 123456789  # a Telegram chat of a real bot on the same database
    with running_sandbox(url) as (box, _), httpx.Client(base_url=box.url, timeout=40) as client:
        chats = Chats(client)
        chats.sync()
        subscribe_private(client, chats)
        first = push(client)
        assert (first["sent"], first["subscribers"], first["delivered"]) == (1, 1, 1)
        summary_after(chats, 0)
        with session_scope(engine_of(box)) as session:
            session.add(models.Delivery(chat_id=real_chat, trade_date=date(2026, 11, 20), status="sent"))

    with running_sandbox(url) as (box, _), httpx.Client(base_url=box.url, timeout=40) as client:
        chats = Chats(client)
        chats.sync()
        assert chats.in_chat(YOU_ID) == []  # a new stand-in: the private chat is empty
        again = push(client)  # still subscribed: the database kept the chat
        assert again["ok"] and again["trade_date"] == "2026-11-20"
        assert (again["sent"], again["failed"], again["subscribers"], again["delivered"]) == (1, 0, 1, 1)
        summary_after(chats, 0)
        with session_scope(engine_of(box)) as session:
            kept = session.execute(
                select(models.Delivery.chat_id, models.Delivery.status).where(models.Delivery.chat_id == real_chat)
            ).all()
        assert [tuple(row) for row in kept] == [(real_chat, "sent")]


# ---------------------------------------------------------------------------------------- inline mode


def inline(client: httpx.Client, chat: int, query: str, **extra: Any) -> dict[str, Any]:
    """The page's inline query: the answer of the bot to `@bot query` typed in `chat`."""
    answer = client.post("/api/inline", json={"chat": chat, "query": query, **extra})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()
    assert body["ok"] and body["query"] == query
    return body


def result_kinds(body: dict[str, Any]) -> list[str]:
    """Report kinds of the results: the bot's result ids are `kind-date-lang`."""
    return [r["id"].split("-", 1)[0] for r in body["results"]]


def test_inline_ratio_answers_the_bots_cached_photo(sandbox: Sandbox, client: httpx.Client) -> None:
    body = inline(client, GROUP_ID, "ratio")
    recorded = sandbox.server.inline_answers[body["query_id"]]  # the bot's own answerInlineQuery
    # personal: the results are in the asker's language, so Telegram must not hand them to others
    assert recorded["is_personal"] is True and int(recorded["cache_time"]) == 300
    assert [r["id"] for r in body["results"]] == [r["id"] for r in recorded["results"]]
    assert result_kinds(body) == ["ratio"]
    (result,) = body["results"]
    (sent,) = recorded["results"]
    assert result["id"] == "ratio-2026-11-20-zh" and result["type"] == "photo" == sent["type"]
    assert result["caption"] == sent["caption"] and result["parse_mode"] == "HTML" == sent["parse_mode"]
    assert result["html"] == sent["caption"] and "<b>两融交易占比" in result["html"]
    assert result["text"].startswith("两融交易占比") and "<b>" not in result["text"]
    assert result["title"] == sent["title"] and result["sendable"] is True
    assert result["photo"]["file_id"] == sent["photo_file_id"]
    assert result["photo"]["url"] == f"/api/file/{sent['photo_file_id']}"
    image = client.get(result["photo"]["url"])
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG\r\n\x1a\n")
    # The inline query reached the bot from "You", typed in a group.
    query = sandbox.server.inline_queries[body["query_id"]]
    assert query["from"]["id"] == YOU_ID and query["query"] == "ratio" and query["chat_type"] == "group"


def test_choosing_an_inline_result_sends_it_via_the_bot(sandbox: Sandbox, client: httpx.Client) -> None:
    chats = Chats(client)
    chats.sync()
    body = inline(client, GROUP_ID, "ratio")
    (result,) = body["results"]
    chosen = client.post(
        "/api/inline/choose", json={"chat": GROUP_ID, "query_id": body["query_id"], "result_id": result["id"]}
    )
    assert chosen.status_code == 200, chosen.text
    message_id = chosen.json()["message_id"]
    # The page's change log shows it: the user's message, via the bot, the same photo and caption.
    message = chats.until(lambda: chats.messages.get((GROUP_ID, message_id)), 20, "the via-bot message")
    bot = client.get("/api/chats").json()["bot"]
    assert message["from"]["id"] == YOU_ID and not message["from"]["is_bot"]
    assert message["via_bot"] == {"id": bot["id"], "username": "liangrong_sandbox_bot"}
    assert message["photo"]["url"] == result["photo"]["url"]
    assert message["html"] == result["caption"] and message["text"] == result["text"]
    # What the stand-in stored is Telegram's Message: via_bot is the bot user, the photo the same file.
    stored = next(m for m in sandbox.server.history(GROUP_ID) if m.message_id == message_id)
    api = stored.to_api()
    assert api["via_bot"]["id"] == sandbox.server.bot_id and api["via_bot"]["is_bot"] is True
    assert stored.photo_file_id == result["photo"]["file_id"] and stored.caption == result["caption"]
    assert stored.parse_mode == "HTML" and "两融交易占比" in api["caption"]
    # with the result's button: a link that opens the report in a chat with the bot
    assert message["buttons"] == [[{"text": "在两融雷达中查看",
                                    "url": "https://t.me/liangrong_sandbox_bot?start=ratio"}]]


def test_inline_queries_answer_what_the_bot_answers(sandbox: Sandbox, client: httpx.Client) -> None:
    everything = ["summary", "balance", "ratio", "sectors", "signals", "top"]  # bot.handlers.inline.INLINE_REPORTS
    server = sandbox.server

    def page_photos() -> dict[int, int]:
        return {chat: sum(1 for m in server.history(chat) if m.photo) for chat in (YOU_ID, GROUP_ID)}

    photos_before, photo_calls_before = page_photos(), len(server.calls_for("sendPhoto"))
    # Unknown words and an empty query: the bot offers every chart; a prefix or an alias narrows it.
    body = inline(client, YOU_ID, "no-such-report")
    assert result_kinds(body) == everything
    # Charts uploaded only for their file_id went to the hidden storage channel, not to a chat on the page:
    # no photo appeared in the page's chats, and what was uploaded meanwhile (here or by the minute job's
    # uploads ahead) went to the storage channel, as captionless photos.
    assert page_photos() == photos_before
    uploads = server.calls_for("sendPhoto")[photo_calls_before:]
    assert {call.chat_id for call in uploads} <= {STORAGE_CHANNEL_ID}
    stored = [m for m in server.history(STORAGE_CHANNEL_ID) if m.photo]
    assert stored and all(m.caption is None and m.from_bot for m in stored)
    # No chat on the page ever asked for these four (only /ratio and the pushed summary were sent to one):
    # their results are the photos uploaded to the storage channel.
    offered = {r["id"].split("-", 1)[0]: r["photo_file_id"] for r in server.inline_answers[body["query_id"]]["results"]}
    in_storage = {m.photo_file_id for m in stored}
    assert [kind for kind in ("balance", "sectors", "signals", "top") if offered[kind] not in in_storage] == []
    assert all(m.caption for m in server.history(YOU_ID) if m.photo)
    assert result_kinds(inline(client, YOU_ID, "")) == everything
    assert result_kinds(inline(client, YOU_ID, "s")) == ["summary", "sectors", "signals"]
    assert result_kinds(inline(client, YOU_ID, "占比")) == ["ratio"]
    # In the private chat with the bot, the chat type is "sender"; 小林 may type it in the group.
    body = inline(client, GROUP_ID, "bal", **{"as": "member"})
    assert result_kinds(body) == ["balance"]
    assert all(r["photo"] and r["sendable"] for r in body["results"])
    assert body["button"] is None
    # Nothing to offer: the bot's reason comes as the button above the (empty) results.
    body = inline(client, YOU_ID, "ratio 2024-02-30")
    assert body["results"] == [] and "2024-02-30" in body["button"]["text"]


def test_inline_bad_inputs_are_400_and_a_silent_bot_504(
    sandbox: Sandbox, loop: SandboxThread, client: httpx.Client
) -> None:
    def refused(path: str, payload: dict[str, Any], status: int = 400) -> str:
        answer = client.post(path, json=payload)
        assert answer.status_code == status, answer.text
        body = answer.json()
        assert body["ok"] is False and body["error"]
        return str(body["error"])

    assert "chat" in refused("/api/inline", {"chat": 42, "query": "ratio"})
    assert "query" in refused("/api/inline", {"chat": YOU_ID})
    assert "query" in refused("/api/inline", {"chat": YOU_ID, "query": 7})
    assert "256" in refused("/api/inline", {"chat": YOU_ID, "query": "x" * 257})
    assert "as" in refused("/api/inline", {"chat": YOU_ID, "query": "ratio", "as": "member"})
    body = inline(client, YOU_ID, "x" * 256)  # Telegram's longest query is fine
    query_id, result_id = body["query_id"], body["results"][0]["id"]
    choose = "/api/inline/choose"
    assert "query" in refused(choose, {"chat": YOU_ID, "query_id": "8999999999", "result_id": result_id})
    assert "result" in refused(choose, {"chat": YOU_ID, "query_id": query_id, "result_id": "nope"})
    assert "given" in refused(choose, {"chat": YOU_ID, "query_id": query_id})
    # A result goes to the chat the query was typed in, by its typist.
    assert "another" in refused(choose, {"chat": GROUP_ID, "query_id": query_id, "result_id": result_id})

    # The bot answers later than the page waits: a clear 504, not a hang; the query stays unanswered.
    # The stand-in holds the bot's answer back until released: no race against a clock.
    page, server = sandbox.page, sandbox.server
    page.inline_timeout = 0.3
    loop.call(server.hold_answers, "answerInlineQuery")
    try:
        answer = client.post("/api/inline", json={"chat": YOU_ID, "query": "ratio"})
        assert answer.status_code == 504, answer.text
        late = answer.json()
        error = "the bot did not answer the inline query within 0.3 s"
        assert late == {"ok": False, "error": error, "query_id": late["query_id"]}
        assert "bot has not answered" in refused(
            choose, {"chat": YOU_ID, "query_id": late["query_id"], "result_id": result_id}
        )
        _until(lambda: loop.call(server.held, "answerInlineQuery") == 1, 20)  # the bot's answer, held
        assert late["query_id"] not in server.inline_answers
    finally:
        page.inline_timeout = 10.0
        loop.call(server.release_answers, "answerInlineQuery")
    # The late answer still lands: later tests start from a quiet bot.
    _until(lambda: late["query_id"] in server.inline_answers, 20)
    assert loop.call(server.held, "answerInlineQuery") == 0


def test_inline_html_in_the_query_is_only_data(client: httpx.Client) -> None:
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    body = inline(client, YOU_ID, evil)
    # The bot does not echo the query: its results are its own charts and captions.
    assert result_kinds(body) == ["summary", "balance", "ratio", "sectors", "signals", "top"]
    for result in body["results"]:
        assert "<img" not in (result["html"] or "") and "<script" not in (result["html"] or "")
        assert "onerror" not in result["text"]
    # The query comes back as a JSON string only; the page renders captions with its sanitiser
    # (renderTelegramHtml builds elements and text nodes) and never assigns HTML anywhere.
    script = (ROOT / "sandbox" / "static" / "app.js").read_text(encoding="utf-8")
    assert "renderTelegramHtml(" in script and "function renderInlineResults" in script
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script.replace("(never innerHTML)", ""), sink


# ---------------------------------------------------------------------------------------- `marginbot run`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def marginbot_run(database_url: str, workdir: Path) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """`marginbot run` without a token in a subprocess; yields (page URL, process, stdout lines)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SANDBOX_PORT": str(free_port()),
        "SANDBOX_OPEN_BROWSER": "false",
        "TELEGRAM_BOT_TOKEN": "",
        "LOG_LEVEL": "INFO",
    }
    command = [sys.executable, "-c", PREAMBLE + "import sys; from marginbot.cli import main; sys.exit(main())", "run"]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    lines: list[str] = []
    errors: list[str] = []
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "Chat page: " in line:
                ready.set()
        ready.set()

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            errors.append(line.rstrip("\n"))

    for target in (read_stdout, read_stderr):
        threading.Thread(target=target, daemon=True).start()
    try:
        ready.wait(120)
        url = next((line.split("Chat page: ", 1)[1].strip() for line in lines if "Chat page: " in line), None)
        assert url, f"no URL printed; stdout={lines} stderr={errors[-20:]}"
        yield url, process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.returncode not in (0, None):
            print("\n".join(errors[-40:]), file=sys.stderr)


def test_marginbot_run_without_token_serves_the_page(template_db: Path, tmp_path: Path) -> None:
    url = copy_db(template_db, tmp_path / "db")
    with marginbot_run(url, tmp_path) as (page_url, process, lines):
        assert page_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=page_url, timeout=20) as c:
            assert c.get("/").status_code == 200
            assert {chat["title"] for chat in c.get("/api/chats").json()["chats"]} == {
                "两融雷达",
                "两融讨论群",
            }
            commands = c.get("/api/commands", params={"chat": YOU_ID}).json()["commands"]
            assert [cmd["command"] for cmd in commands] == PRIVATE_COMMANDS
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert lines[-2:] == ["marginbot sandbox: stopping ...", "marginbot sandbox: stopped."]


# The real bot as a server runs it: `marginbot run` reading its token and Bot API address from .env.
# The daily pipeline's ingestion is replaced (no test touches the network); everything else is real.
_RUN_OFFLINE = (
    PREAMBLE
    + "import sys, types\n"
    "import storage.ingest\n"
    "storage.ingest.run_ingest = lambda *a, **k: types.SimpleNamespace(summary=lambda: 'offline', ok=False)\n"
    "from marginbot.cli import main\n"
    "sys.exit(main())\n"
)


def test_marginbot_run_with_a_token_from_dotenv(template_db: Path, tmp_path: Path) -> None:
    """`marginbot run` with TELEGRAM_BOT_TOKEN and TELEGRAM_BASE_URL in .env: the bot polls the Bot
    API at that address (the stand-in here, as a self-hosted Bot API server would be), registers its
    commands, answers /ratio with its chart, never prints the token, and stops cleanly on SIGTERM."""
    from sandbox.botapi import BotApiServer

    token = "123456789:StandInTokenOfTheRunTest_0123456789abcdef"  # shaped like @BotFather's
    url = copy_db(template_db, tmp_path / "db")
    server = BotApiServer(token).start_in_thread()
    user = 5151
    server.add_user(user, "Ann", language_code="zh-hans")
    server.add_chat(user)
    (tmp_path / ".env").write_text(
        f"TELEGRAM_BOT_TOKEN={token}\nTELEGRAM_BASE_URL={server.base_url}\nDATABASE_URL={url}\n"
        "LOG_LEVEL=DEBUG\n", encoding="utf-8")
    settings_vars = {"TELEGRAM_BOT_TOKEN", "TELEGRAM_BASE_URL", "DATABASE_URL", "LOG_LEVEL", "ADMIN_CHAT_IDS"}
    env = {k: v for k, v in os.environ.items() if k not in settings_vars}
    process = subprocess.Popen([sys.executable, "-c", _RUN_OFFLINE, "run"], cwd=tmp_path, env=child_env(env),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8")
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        _until(lambda: server.is_polling or process.poll() is not None, 120)
        assert process.poll() is None, "".join(output[-30:])
        assert [c["command"] for c in server.commands({"type": "all_private_chats"}, "zh")][:2] == ["balance", "ratio"]
        server.inject_message(user, user, "/ratio")
        _until(lambda: any(m.photo for m in server.sent_messages(user)), 60)
        photo = next(m for m in server.sent_messages(user) if m.photo)
        assert photo.caption is not None and "两融交易占比" in photo.caption and "数据日期" in photo.caption
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        server.stop_thread()
        reader.join(10)
    assert code == 0, "".join(output[-30:])
    text = "".join(output)
    assert "bot @marginbot_test_bot ready" in text  # DEBUG logging was on, the token appeared nowhere
    assert token not in text and token.split(":")[1] not in text


def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.05)


def test_port_in_use_is_one_line_and_status_1(
    template_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.demo

    seeded: list[object] = []  # the port is taken: told before any seeding (which takes seconds)
    monkeypatch.setattr(storage.demo, "ensure_seeded", lambda engine: seeded.append(engine) or False)
    url = copy_db(template_db, tmp_path / "db")
    engine = make_engine(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = sandbox_settings(url).model_copy(update={"sandbox_port": port})
        assert run_sandbox(settings, engine) == 1
    engine.dispose()
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "SANDBOX_PORT" in err
    assert seeded == []


def test_opening_a_browser_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox.app as app

    def broken(url: str) -> bool:
        raise RuntimeError("no browser here")

    monkeypatch.setattr(app.webbrowser, "open", broken)
    app._open_browser("http://127.0.0.1:1/")  # logged, not raised
    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not app._has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert app._has_display()


# ---------------------------------------------------------------------------------------- a real browser


@pytest.mark.browser
def test_browser_chat_page(template_db: Path, tmp_path: Path) -> None:
    """Type /ratio, see the chart and caption, tap 60, see it edited; subscribe the group, push, share inline."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/setup.sh --test installs it with apt)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("playwright (the Python package of the dev extras) is not installed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = copy_db(template_db, tmp_path / "db")
    problems: list[str] = []
    with marginbot_run(url, tmp_path) as (page_url, process, _lines), sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    # The network guard of tests/netguard.py covers Python only: Chromium resolves no
                    # host name at all but the page's own address.
                    f"--host-resolver-rules={CHROMIUM_RESOLVER_RULES}",
                ],
                viewport={"width": 1280, "height": 860},
                locale="zh-CN",
            )
        except PlaywrightError as exc:
            pytest.skip(f"Chromium would not start under Playwright: {str(exc).splitlines()[0]}")
        try:
            # Any other name does not resolve, even one this machine knows: the same page as "localhost".
            probe = context.new_page()
            with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
                probe.goto(page_url.replace("//127.0.0.1:", "//localhost:"))
            probe.close()
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
            )
            page.goto(page_url)
            expect(page.locator("#chat-list .chat-item")).to_have_count(2)
            expect(page.locator("#chat-name")).to_have_text("两融雷达")

            # The sanitiser keeps Telegram's tags and shows everything else as text.
            rendered = page.evaluate("""() => {
                const box = document.createElement('div');
                box.appendChild(window.marginbotSandbox.renderTelegramHtml(
                  '<b>粗</b> <i>i</i> <a href="javascript:alert(1)">x</a> <a href="https://example.com">ok</a>'
                  + '<img src=x onerror=alert(1)><script>alert(2)</script> &lt;tag&gt;'
                  + ' <pre><code>1 &amp; 2</code></pre>'));
                return {html: box.innerHTML, imgs: box.querySelectorAll('img,script').length,
                        links: [...box.querySelectorAll('a')].map(a => a.getAttribute('href'))};
            }""")
            assert (
                rendered["imgs"] == 0 and "<b>粗</b>" in rendered["html"] and "<i>i</i>" in rendered["html"]
            )
            assert (
                "&lt;img src=x onerror=alert(1)&gt;" in rendered["html"] and "&lt;tag&gt;" in rendered["html"]
            )
            assert rendered["links"] == [None, "https://example.com/"]
            assert "<pre><code>1 &amp; 2</code></pre>" in rendered["html"]

            # Type /ratio: the real bot answers with its chart, caption and window buttons.
            page.locator("#input").click()
            page.keyboard.type("/ratio")
            page.keyboard.press("Enter")
            chart = page.locator(".msg.in.has-photo").filter(has_text="两融交易占比").last
            expect(chart).to_be_visible(timeout=45_000)
            message_id = chart.get_attribute("data-id")
            page.wait_for_function(
                "id => { const i = document.querySelector(`.msg[data-id='${id}'] img`);"
                " return i && i.complete && i.naturalWidth > 0; }",
                arg=message_id,
                timeout=20_000,
            )
            expect(page.locator(".msg.out").filter(has_text="/ratio")).to_have_count(1)
            buttons = page.locator(f".msg[data-id='{message_id}'] .kbtn")
            expect(buttons).to_have_text(["20日", "60日", "• 250日 •"])
            caption = page.locator(f".msg[data-id='{message_id}'] .body")
            assert "\n" in caption.inner_text()  # the caption's line breaks survive
            expect(caption.locator("b").first).to_contain_text("两融交易占比")
            page.screenshot(path=str(SCREENSHOTS / "sandbox-1-ratio.png"))

            # Tap "60日": the same message is edited in place.
            buttons.filter(has_text="60日").click()
            edited = page.locator(f".msg[data-id='{message_id}']")
            expect(edited.locator(".kbtn")).to_have_text(["20日", "• 60日 •", "250日"], timeout=45_000)
            expect(edited.locator(".meta")).to_contain_text("edited")
            page.wait_for_function(
                "id => { const i = document.querySelector(`.msg[data-id='${id}'] img`);"
                " return i && i.complete && i.naturalWidth > 0; }",
                arg=message_id,
                timeout=20_000,
            )
            assert page.locator(".msg.in.has-photo").count() == 1
            page.screenshot(path=str(SCREENSHOTS / "sandbox-2-ratio-60.png"))

            # A command corrected in place: ↑ in the empty message box edits your last message, and the
            # bot answers the edit as if it were sent anew.
            page.locator("#input").click()
            page.keyboard.type("/stokc")
            page.keyboard.press("Enter")
            typo = page.locator(".msg.out").filter(has_text="/stokc")
            expect(typo).to_have_count(1)
            expect(page.locator(".msg.in").filter(has_text="不认识这个命令")).to_have_count(1, timeout=30_000)
            typo_id = typo.get_attribute("data-id")
            expect(page.locator("#input")).to_have_value("")
            page.locator("#input").press("ArrowUp")
            expect(page.locator("#edit-bar")).to_be_visible()
            expect(page.locator("#edit-bar")).to_contain_text("Editing message")
            expect(page.locator("#edit-old")).to_have_text("/stokc")
            expect(page.locator("#input")).to_have_value("/stokc")
            expect(page.locator(f".msg[data-id='{typo_id}']")).to_have_class("msg out being-edited")
            page.locator("#input").fill("/balance")
            expect(page.locator("#menu .cmd-name")).to_have_text(["/balance"])  # completion works in an edit
            page.locator("#input").press("Escape")  # the first Esc closes the menu only
            expect(page.locator("#menu")).to_be_hidden()
            expect(page.locator("#edit-bar")).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "sandbox-2a-editing.png"))
            page.locator("#input").press("Enter")
            expect(page.locator("#edit-bar")).to_be_hidden()
            expect(page.locator("#input")).to_have_value("")
            corrected = page.locator(f".msg.out[data-id='{typo_id}']")
            expect(corrected.locator(".body")).to_have_text("/balance", timeout=20_000)
            expect(corrected.locator(".meta")).to_contain_text("edited")
            charts = page.locator(".msg.in.has-photo")
            expect(charts).to_have_count(2, timeout=45_000)
            expect(charts.last.locator(".body b").first).to_contain_text("两融余额")
            expect(charts.last.locator(".kbtn")).not_to_have_count(0)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.has-photo img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=20_000,
            )
            expect(page.locator(".msg.in").filter(has_text="不认识这个命令")).to_have_count(1)  # no second one
            # At the top the corrected message, marked edited, then the answer to the typo and the new chart.
            corrected.evaluate("node => node.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(SCREENSHOTS / "sandbox-2b-edited-balance.png"))
            # The edit affordance on hover; ✕ (or Esc) leaves the message as it is.
            corrected.hover()
            expect(corrected.locator(".edit-btn")).to_have_css("opacity", "1")
            corrected.locator(".edit-btn").click()
            expect(page.locator("#edit-old")).to_have_text("/balance")
            page.locator("#input").press("Escape")
            expect(page.locator("#edit-bar")).to_be_hidden()
            expect(page.locator("#input")).to_have_value("")
            expect(page.locator(".msg.in .edit-btn")).to_have_count(0)  # the bot's messages are not yours

            # The group: the command menu from setMyCommands, /subscribe as admin, then the push.
            page.locator("#chat-list .chat-item").nth(1).click()
            expect(page.locator("#chat-name")).to_have_text("两融讨论群")
            page.locator("#menu-button").click()
            expect(page.locator("#menu .cmd-name")).to_contain_text(["/balance", "/ratio"])
            page.screenshot(path=str(SCREENSHOTS / "sandbox-3-group-menu.png"))
            # 小林 (a member) may not subscribe the group; You (admin) may.
            page.locator("#send-as").select_option("member")
            page.locator("#menu .cmd").filter(has_text="/subscribe").click()
            expect(page.locator(".msg.in").filter(has_text="只有群管理员")).to_have_count(1, timeout=30_000)
            page.locator("#send-as").select_option("you")
            page.locator("#input").fill("/subscribe")
            page.locator("#input").press("Enter")
            expect(page.locator(".msg.in").filter(has_text="已订阅")).to_have_count(1, timeout=30_000)
            page.locator("#push-now").click()
            summary = page.locator(".msg.in.has-photo").filter(has_text="两融雷达 · 2026-11-20")
            expect(summary).to_have_count(1, timeout=45_000)
            expect(page.locator("#push-status")).to_contain_text("1 sent", timeout=45_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.has-photo img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=20_000,
            )
            page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
            page.screenshot(path=str(SCREENSHOTS / "sandbox-4-group-subscribe-push.png"))
            page.locator("#messages").evaluate("box => { box.scrollTop = box.scrollHeight; }")
            page.screenshot(path=str(SCREENSHOTS / "sandbox-5-group-summary.png"))

            # Inline mode: "@bot ratio" shows the bot's cached chart; tapping it sends it "via @bot".
            page.locator("#input").click()
            page.keyboard.type("@liangrong_sandbox_bot ratio")
            result = page.locator("#inline .inline-result")
            expect(result).to_have_count(1, timeout=30_000)
            expect(result.locator(".inline-caption b")).to_contain_text("两融交易占比")  # sanitised HTML
            page.wait_for_function(
                "() => { const i = document.querySelector('#inline .inline-result img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=20_000,
            )
            page.screenshot(path=str(SCREENSHOTS / "sandbox-6-inline-results.png"))
            result.click()
            shared = page.locator(".msg.out.has-photo").filter(has_text="via @liangrong_sandbox_bot")
            expect(shared).to_have_count(1, timeout=30_000)
            expect(shared.locator(".body b").first).to_contain_text("两融交易占比")
            expect(page.locator("#input")).to_have_value("")
            expect(page.locator("#inline")).to_be_hidden()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.out.has-photo img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=20_000,
            )
            page.screenshot(path=str(SCREENSHOTS / "sandbox-7-inline-sent.png"))

            # The shared chart's button is a deep link (t.me/<bot>?start=ratio): as in Telegram it opens
            # the private chat with the bot and sends /start ratio, in this tab, not t.me in another.
            deep_link = shared.locator("a.kbtn.deep-link")
            expect(deep_link).to_have_text("在两融雷达中查看")
            assert deep_link.get_attribute("href") == "https://t.me/liangrong_sandbox_bot?start=ratio"
            deep_link.click()
            expect(page.locator("#chat-name")).to_have_text("两融雷达")
            expect(page.locator(".msg.out").filter(has_text="/start ratio")).to_have_count(1, timeout=20_000)
            expect(page.locator(".msg.in.has-photo").filter(has_text="两融交易占比")).to_have_count(2, timeout=45_000)
            assert len(context.pages) == 1 and page.url == page_url

            # English: the simulated user's language_code picks the English command menu.
            page.locator(".lang button[data-lang='en']").click()
            page.locator("#chat-list .chat-item").nth(0).click()
            page.locator("#menu-button").click()
            expect(page.locator("#menu .cmd").filter(has_text="/ratio")).to_contain_text(
                "Margin share of turnover"
            )
            page.screenshot(path=str(SCREENSHOTS / "sandbox-8-menu-en.png"))
            page.locator("#menu-button").click()  # closes the menu
            expect(page.locator("#menu")).to_be_hidden()

            # A phone (390x844): the messages scroll inside the chat, the page itself does not, and the
            # message box and Send stay on screen, in the group too (where "send as" shares the row).
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.has-photo img')]"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=20_000,
            )
            for chat_index, shot in ((0, "sandbox-9-phone.png"), (1, "sandbox-10-phone-group.png")):
                page.locator("#chat-list .chat-item").nth(chat_index).click()
                page.locator("#messages").evaluate("box => { box.scrollTop = box.scrollHeight; }")
                layout = page.evaluate("""() => {
                    const box = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                                          return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                                                  width: r.width}; };
                    const messages = document.getElementById('messages');
                    return {scroll: document.scrollingElement.scrollHeight, inner: window.innerHeight,
                            width: window.innerWidth, input: box('input'), send: box('send-button'),
                            sendAs: box('send-as'), scrolls: messages.scrollHeight > messages.clientHeight};
                }""")
                assert layout["scroll"] <= layout["inner"] + 2, layout  # the document does not scroll
                assert layout["scrolls"], layout  # the messages do, inside the chat
                for name in ("input", "send"):
                    r = layout[name]
                    assert r["left"] >= 0 and r["right"] <= layout["width"], (name, layout)
                    assert r["top"] >= 0 and r["bottom"] <= layout["inner"], (name, layout)
                assert layout["input"]["width"] >= 180, layout  # not squeezed by "send as"
                if chat_index == 1:
                    assert layout["sendAs"]["width"] > 0 and layout["sendAs"]["right"] <= layout["input"]["left"]
                page.screenshot(path=str(SCREENSHOTS / shot))
        finally:
            context.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert not problems, problems
