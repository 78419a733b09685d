"""The real bot (bot.app.build_application) against the stand-in Bot API server, end to end over HTTP.

Every test starts the stand-in (sandbox/botapi/) and the python-telegram-bot Application exactly
as production builds it (handlers, AIORateLimiter, HTML defaults, post_init), injects what users
do (messages, button taps, inline queries, membership changes, migrations) and checks what the
server received: method, chat, caption/text as sent (HTML), uploads vs file_id reuse, and the
database state behind it (chats, deliveries).

Reports come from the embedded demo dataset (data date 2026-11-20); expected captions and numbers
are rendered by reports.service.ReportService from the same data. Rendering is cached per session:
the demo data are identical in every test's copy of the database.

Every test logs at DEBUG (marginbot.logging_setup) and no record may contain the bot token.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from bot.app import GROUP_COMMANDS, PRIVATE_COMMANDS
from bot.handlers.admin import ADMIN_COMMANDS
from bot.handlers.chat import KNOWN_COMMANDS
from bot.push import MAX_ATTEMPTS, SENDERS, push_now
from bot.services import GROUP_ANSWERS_PER_MINUTE, PRIVATE_ANSWERS_PER_MINUTE, services_of
from reports.gallery import sample_stock
from reports.i18n import t
from reports.service import RenderedReport, ReportService
from reports.text import to_plain
from storage import chats, deliveries, models
from storage.database import bump_data_version, session_scope
from storage.models import DeliveryStatus
from tests.bot_fixtures import (
    ADMIN,
    ADMIN_CHAT,
    CREATOR,
    EN_USER,
    GROUP,
    MEMBER,
    STORAGE_CHAT,
    ZH_USER,
    add_people,
    buttons,
    delivery_rows,
    expected,
    held_push,
    limiter_sleeps,
    live_clock,
    push_sleeps,
    running,
    stored_chat,
    subscribe_directly,
    subscribed_with_ten_watches,
    tick,
)
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import stock_code as stock_code
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import BOT_USERNAME, DATA_DATE, SECRET, TOKEN, RecordAll

# PTB warns when it builds RetryAfter from an int retry_after (its own deprecation, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


def yi(value: float) -> str:
    """元 -> '1,234.56 亿元' as the Chinese reports print money."""
    return f"{value / 1e8:,.2f} 亿元"


# ------------------------------------------------------------------------------------------------
# Private chat: every command
# ------------------------------------------------------------------------------------------------


async def test_private_commands_in_chinese(demo_db: Engine, shared_reports: ReportService, stock_code: str) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        chat = ZH_USER

        await h.write(chat, ZH_USER, "/start")
        assert h.texts(chat)[-1] == t("zh", "bot.start") and "两融雷达" in h.texts(chat)[-1]

        await h.write(chat, ZH_USER, "/help")
        help_text = h.texts(chat)[-1]
        assert help_text == t("zh", "bot.help", bot=BOT_USERNAME)
        assert f"@{BOT_USERNAME} ratio" in help_text and f"@{BOT_USERNAME} 600519" in help_text  # inline sharing
        # every command of the menu (but /help itself) is explained, with its argument; the menu holds
        # every command the bot answers but /start and the admins'
        assert [name for name in PRIVATE_COMMANDS if name != "help" and f"\n/{name} " not in help_text] == []
        assert set(PRIVATE_COMMANDS) == KNOWN_COMMANDS - {"start", *ADMIN_COMMANDS}
        # what inline mode's "why nothing" button opens (t.me/<bot>?start=help): the help
        await h.write(chat, ZH_USER, "/start help")
        assert h.texts(chat)[-1] == help_text
        # and the 口径 of every figure the reports show
        figures = ("两融余额 =", "融资净买入 =", "两融交易占比 =", "节奏 =", "拐点 =", "HHI =", "稳定性 =",
                   "急升 =", "拥挤 =")
        assert [term for term in figures if term not in help_text] == []

        # /balance: chart + caption (the report of 2026-11-20 in Chinese) + details as a second message
        await h.write(chat, ZH_USER, "/balance")
        want = expected(shared_reports, "balance")
        photo = h.photos(chat)[-1]
        assert photo.caption == want.caption
        assert "数据日期 2026-11-20" in photo.caption
        assert f"{want.data['rzrqye'] / 1e12:.2f} 万亿元" in photo.caption
        assert h.texts(chat)[-1] == want.details and "分市场" in want.details
        assert buttons(photo.reply_markup) == [("20日", "w:balance:20:"), ("• 60日 •", "w:balance:60:"),
                                               ("250日", "w:balance:250:")]
        assert h.server.calls_for("sendPhoto", chat)[-1].media_source == "upload"

        # /ratio then /ratio 250: the same chart (default window 250), uploaded once then sent by file_id
        await h.write(chat, ZH_USER, "/ratio")
        want = expected(shared_reports, "ratio")
        first = h.photos(chat)[-1]
        assert first.caption == want.caption and want.data["days"] == 250
        assert f"<b>两融交易占比 {want.data['ratio_pct']:.2f}%</b>" in first.caption
        assert yi(want.data["turnover"]) in first.caption and "数据日期 2026-11-20" in first.caption
        uploads = h.server.uploads
        await h.write(chat, ZH_USER, "/ratio 250")
        second = h.photos(chat)[-1]
        assert second.message_id != first.message_id and second.caption == want.caption
        assert h.server.calls_for("sendPhoto", chat)[-1].media_source == "file_id"
        assert second.photo_file_id == first.photo_file_id and h.server.uploads == uploads

        await h.write(chat, ZH_USER, "/sectors 20")
        want = expected(shared_reports, "sectors", days=20)
        caption = h.photos(chat)[-1].caption
        top = want.data["sectors"][0]
        assert caption == want.caption and "近20日" in caption
        assert f"{top['name']} +{top['change'] / 1e8:,.2f} 亿元" in caption
        assert "数据日期 2026-11-20" in caption

        await h.write(chat, ZH_USER, "/signals")
        want = expected(shared_reports, "signals")
        assert h.photos(chat)[-1].caption == want.caption and "两融信号" in want.caption
        assert "数据日期 2026-11-20" in want.caption

        await h.write(chat, ZH_USER, f"/stock {stock_code}")
        want = expected(shared_reports, "stock", code=stock_code)
        caption = h.photos(chat)[-1].caption
        assert caption == want.caption
        assert f"{want.data['name']}（{stock_code}）融资余额 {yi(want.data['rzye'])}" in caption
        assert buttons(h.photos(chat)[-1].reply_markup)[0] == ("20日", f"w:stock:20:{stock_code}")

        await h.write(chat, ZH_USER, "/stock")
        assert h.texts(chat)[-1] == t("zh", "bot.need_code")

        # subscribe / unsubscribe, answered and stored
        await h.write(chat, ZH_USER, "/subscribe")
        assert h.texts(chat)[-1] == t("zh", "bot.subscribed", time="00:00")
        assert stored_chat(demo_db, chat).subscribed is True
        await h.write(chat, ZH_USER, "/subscribe")
        assert h.texts(chat)[-1] == t("zh", "bot.already_subscribed")
        await h.write(chat, ZH_USER, "/unsubscribe")
        assert h.texts(chat)[-1] == t("zh", "bot.unsubscribed")
        assert stored_chat(demo_db, chat).subscribed is False
        await h.write(chat, ZH_USER, "/unsubscribe")
        assert h.texts(chat)[-1] == t("zh", "bot.not_subscribed")
        # a command that takes no arguments is given some: they are said to be ignored, not obeyed
        await h.write(chat, ZH_USER, "/subscribe 20:00 <b>")
        assert h.texts(chat)[-1] == "\n".join([t("zh", "bot.subscribed", time="00:00"),
                                               t("zh", "bot.ignored_arguments_settings", words="20:00 &lt;b&gt;")])
        await h.write(chat, ZH_USER, "/unsubscribe")
        assert h.texts(chat)[-1] == t("zh", "bot.unsubscribed")  # no arguments, no note
        await h.write(chat, ZH_USER, "/help me")  # ignored too, with no word of /settings
        assert h.texts(chat)[-1].endswith("\n（这个命令不带参数，已忽略“me”。）")

        # unknown command in the user's language (zh-hans -> zh)
        await h.write(chat, ZH_USER, "/foo")
        assert h.texts(chat)[-1] == t("zh", "bot.unknown_command", command="/foo")
        assert h.texts(chat)[-1].startswith("不认识这个命令")
        # one of ours named for another bot: in a private chat no other bot hears it, so it is told,
        # with the command meant
        await h.write(chat, ZH_USER, "/ratio@other_bot")
        assert h.texts(chat)[-1] == "不认识这个命令：/ratio@other_bot。是不是想发 <code>/ratio</code>？"
        await h.write(chat, ZH_USER, f"/subscribe@{BOT_USERNAME}")  # ours, named for us: the command
        assert h.texts(chat)[-1] == t("zh", "bot.subscribed", time="00:00")

        # nothing went wrong on the way: no apology, no admin report
        assert t("zh", "bot.error") not in h.texts(chat)
        assert h.server.sent_messages(ADMIN_CHAT) == []
        assert all(c.ok for c in h.server.calls if c.method != "getUpdates")


async def test_settings_buttons_switch_language_and_store_push_time(
    demo_db: Engine, shared_reports: ReportService
) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        chat = ZH_USER
        await h.write(chat, ZH_USER, "/settings")
        menu = h.bot_messages(chat)[-1]
        assert menu.text == t("zh", "bot.settings", language="中文", push_time="00:00")
        assert buttons(menu.reply_markup) == [("中文", "s:lang:zh"), ("English", "s:lang:en"),
                                              ("00:00", "s:time:default"), ("12:00", "s:time:12:00"),
                                              ("15:30", "s:time:15:30"), ("20:00", "s:time:20:00")]

        query = await h.press(chat, ZH_USER, menu.message_id, "s:lang:en")
        assert h.server.callback_answers[query]["text"] == "Language set to English."
        assert stored_chat(demo_db, chat).language == "en"
        menu = h.bot_messages(chat)[-1]
        assert menu.edits == 1 and menu.text == t("en", "bot.settings", language="English", push_time="00:00")

        # the next report is in English although the user's Telegram language is Chinese
        await h.write(chat, ZH_USER, "/ratio")
        want = expected(shared_reports, "ratio", lang="en")
        caption = h.photos(chat)[-1].caption
        assert caption == want.caption
        assert f"Margin share of turnover {want.data['ratio_pct']:.2f}%" in caption
        assert "Data date 2026-11-20" in caption
        assert buttons(h.photos(chat)[-1].reply_markup)[0] == ("20d", "w:ratio:20:")

        query = await h.press(chat, ZH_USER, menu.message_id, "s:time:12:00")
        assert h.server.callback_answers[query]["text"] == t("en", "bot.settings_time", push_time="12:00")
        assert stored_chat(demo_db, chat).push_time == time(12, 0)
        assert h.bot_messages(chat)[0].text == t("en", "bot.settings", language="English", push_time="12:00")
        await h.write(chat, ZH_USER, "/subscribe")
        assert h.texts(chat)[-1] == t("en", "bot.subscribed", time="12:00")


async def test_english_user_gets_english(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/start")
        await h.write(EN_USER, EN_USER, "/foo")
        await h.write(EN_USER, EN_USER, "/ratio 0")
        assert h.texts(EN_USER) == [
            t("en", "bot.start"),
            "Unknown command: /foo. Send /help for the list.",
            t("en", "bot.bad_window", value="0", max=2500, example="/ratio 250"),
        ]
        assert stored_chat(demo_db, EN_USER).language == "en"


async def test_plain_text_and_bare_codes_in_private_chats(demo_db: Engine, shared_reports: ReportService) -> None:
    """Private chats: a bare 6-digit code is /stock CODE, other text gets a hint, never silence; a bad
    window names an example of the same command. Groups: plain text is not for the bot."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        code = sample_stock(demo_db)
        await h.write(ZH_USER, ZH_USER, f" {code} ")
        [photo] = h.photos(ZH_USER)
        assert photo.caption == expected(shared_reports, "stock", code=code).caption
        await h.write(ZH_USER, ZH_USER, "hello")
        await h.write(ZH_USER, ZH_USER, "12345")  # five digits: not a code
        await h.write(ZH_USER, ZH_USER, "/sectors 9999")
        await h.write(ZH_USER, ZH_USER, f"/stock {code} x")
        assert h.texts(ZH_USER)[-4:] == [
            "请发送命令，例如 /ratio 或 /stock 600519（直接发证券代码或名称也可以）；/help 查看全部命令。",
            t("zh", "bot.plain_text"),
            "天数 “9999” 无效，请输入 1 到 250 之间的整数，例如 /sectors 20。",
            "天数 “x” 无效，请输入 1 到 2500 之间的整数，例如 /stock 600519 60。",
        ]
        # its name, part of it or the code as other sites write it are the same; a shared part lists them
        name = expected(shared_reports, "stock", code=code).data["name"]
        for text in (name, f"{code}.SH" if code.startswith("6") else f"{code}.SZ", f"{name[-3:]} 60"):
            await h.write(ZH_USER, ZH_USER, text)
        assert [p.caption for p in h.photos(ZH_USER)[1:]] == [
            photo.caption, photo.caption, expected(shared_reports, "stock", code=code, days=60).caption]
        await h.write(ZH_USER, ZH_USER, name[:-1])  # "演示股份002": ten names hold it
        assert h.texts(ZH_USER)[-1].startswith(f"名称含 “{name[:-1]}” 的证券有 10 只：")
        # the first eight as buttons, two a row; one pressed sends that stock's report
        choice = h.bot_messages(ZH_USER)[-1]
        picks = buttons(choice.reply_markup)
        assert len(picks) == 8 and [len(row) for row in choice.reply_markup["inline_keyboard"]] == [2, 2, 2, 2]  # type: ignore[index]
        label, data = picks[1]
        picked = data.split(":")[3]
        assert label.endswith(f" ({picked})") and data == f"p:stock:60:{picked}"
        await h.press(ZH_USER, ZH_USER, choice.message_id, data)
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "stock", code=picked).caption
        assert h.bot_messages(ZH_USER)[-1].message_id > choice.message_id  # a new message, the list stays
        await h.write(GROUP, MEMBER, code)
        await h.write(GROUP, MEMBER, "hello")
        assert h.bot_messages(GROUP) == []


async def test_an_edited_command_is_answered_as_sent(demo_db: Engine, shared_reports: ReportService,
                                                    stock_code: str) -> None:
    """A command corrected in place is answered as a new one (in a group, quoting it); an edit that
    asks for nothing gets no second hint; a plain-text code edited in is its report."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        typo = await h.write(ZH_USER, ZH_USER, f"/stokc {stock_code}")
        assert h.texts(ZH_USER) == [f"不认识这个命令：/stokc。是不是想发 <code>/stock {stock_code}</code>？"]
        await h.inject(h.server.inject_edit, ZH_USER, typo["message_id"], f"/stock {stock_code}")
        [photo] = h.photos(ZH_USER)
        assert photo.caption == expected(shared_reports, "stock", code=stock_code).caption

        hello = await h.write(ZH_USER, ZH_USER, "hello")
        answered = len(h.bot_messages(ZH_USER))
        await h.inject(h.server.inject_edit, ZH_USER, hello["message_id"], "hello there")
        assert len(h.bot_messages(ZH_USER)) == answered
        await h.inject(h.server.inject_edit, ZH_USER, hello["message_id"], stock_code)
        assert h.photos(ZH_USER)[-1].caption == photo.caption and len(h.photos(ZH_USER)) == 2

        asked = await h.write(GROUP, MEMBER, "/ratio x")
        await h.inject(h.server.inject_edit, GROUP, asked["message_id"], "/ratio 60")
        error, chart, details = h.bot_messages(GROUP)
        assert error.plain_text() == "天数 “x” 无效，请输入 1 到 2500 之间的整数，例如 /ratio 250。"
        assert error.reply_to_message_id == asked["message_id"] == chart.reply_to_message_id
        assert chart.caption == expected(shared_reports, "ratio", days=60).caption
        assert details.reply_to_message_id == chart.message_id
        # another member's chatter edited in a group is not for the bot
        chatter = await h.write(GROUP, MEMBER, "hi")
        await h.inject(h.server.inject_edit, GROUP, chatter["message_id"], "600519")
        assert len(h.bot_messages(GROUP)) == 3
        # Telegram reports a message's first reaction as an edit with its text as it was: no second answer
        await h.inject(h.server.inject_edit, GROUP, asked["message_id"])
        await h.inject(h.server.inject_edit, ZH_USER, typo["message_id"])
        assert (len(h.bot_messages(GROUP)), len(h.photos(ZH_USER))) == (3, 2)
        # a message read before a restart is not remembered: its edit is not answered (once, not twice)
        await h.restart_bot()
        await h.inject(h.server.inject_edit, ZH_USER, typo["message_id"], f"/stock {stock_code} 20")
        assert len(h.photos(ZH_USER)) == 2
        fresh = await h.write(ZH_USER, ZH_USER, "/stokc")
        await h.inject(h.server.inject_edit, ZH_USER, fresh["message_id"], "/ratio 20")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "ratio", days=20).caption


# ------------------------------------------------------------------------------------------------
# Groups
# ------------------------------------------------------------------------------------------------


async def test_group_commands_addressing(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, MEMBER, f"/ratio@{BOT_USERNAME}")
        [photo] = h.photos(GROUP)
        assert photo.caption == expected(shared_reports, "ratio").caption
        assert h.server.calls_for("sendPhoto", GROUP)[0].params["chat_id"] == GROUP

        # commands for another bot, and unknown commands not addressed to us: silence in groups
        before = len(h.bot_messages(GROUP))
        await h.write(GROUP, MEMBER, "/foo@otherbot")
        await h.write(GROUP, MEMBER, "/ratio@otherbot")
        await h.write(GROUP, MEMBER, "/foo")
        assert len(h.bot_messages(GROUP)) == before
        await h.write(GROUP, MEMBER, f"/foo@{BOT_USERNAME}")
        assert h.texts(GROUP)[-1] == t("zh", "bot.unknown_command", command=f"/foo@{BOT_USERNAME}")
        assert len(h.bot_messages(GROUP)) == before + 1

        # /help in a group lists the group commands
        await h.write(GROUP, MEMBER, f"/help@{BOT_USERNAME}")
        assert [n for n in GROUP_COMMANDS if n != "help" and f"\n/{n} " not in h.texts(GROUP)[-1]] == []


async def test_every_report_command_in_a_group(demo_db: Engine, shared_reports: ReportService,
                                               stock_code: str) -> None:
    """/start, /balance, /signals and /stock CODE from a member, plain and addressed: the same reports
    as in a private chat (the group's language), each quoting its command."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        asked = await h.write(GROUP, MEMBER, f"/start@{BOT_USERNAME}")
        assert h.texts(GROUP)[-1] == t("zh", "bot.start")
        for command, kind, code in ((f"/balance@{BOT_USERNAME}", "balance", None), ("/signals", "signals", None),
                                    (f"/stock {stock_code}", "stock", stock_code),
                                    (f"/stock@{BOT_USERNAME} {stock_code} 60", "stock", stock_code)):
            asked = await h.write(GROUP, MEMBER, command)
            chart = h.photos(GROUP)[-1]
            want = expected(shared_reports, kind, code=code, days=60 if command.endswith(" 60") else None)
            assert chart.caption == want.caption, command
            assert chart.reply_to_message_id == asked["message_id"]
            assert buttons(chart.reply_markup) == [(label, f"w:{kind}:{days}:{code or ''}") for label, days in (
                ("20日", 20), ("• 60日 •", 60), ("250日", 250))], command
        assert t("zh", "bot.error") not in h.texts(GROUP)


async def test_a_report_picked_from_a_choice_in_a_group_quotes_the_choice(
        demo_db: Engine, shared_reports: ReportService, stock_code: str) -> None:
    """/stock with a name several securities hold, in a group: the choice quotes the command, and the
    report a member picks quotes the choice, so that in a busy group it is tied to what it answers."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        name = expected(shared_reports, "stock", code=stock_code).data["name"]
        asked = await h.write(GROUP, MEMBER, f"/stock@{BOT_USERNAME} {name[:-1]}")
        choice = h.bot_messages(GROUP)[-1]
        assert choice.reply_to_message_id == asked["message_id"] and choice.reply_markup is not None
        label, data = buttons(choice.reply_markup)[0]
        await h.press(GROUP, MEMBER, choice.message_id, data)
        chart = h.bot_messages(GROUP)[-1]
        assert chart.caption == expected(shared_reports, "stock", code=data.split(":")[3]).caption
        assert chart.reply_to_message_id == choice.message_id


async def test_a_burst_of_reports_in_a_private_chat_keeps_each_chart_with_its_details(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """Eight /sectors at once (rendered at the same moment, sent concurrently): every chart is followed
    by its own details message, never by another report's chart (private chats quote nothing, so
    order is all that pairs them)."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write_many(EN_USER, EN_USER, ["/sectors", "/sectors 5", "/sectors 20", "/sectors 60"] * 2)
        sent = h.bot_messages(EN_USER)
        charts = [m for m in sent if m.photo]
        assert len(charts) >= 4  # the rest may be told to slow down
        for chart in charts:
            after = sent[sent.index(chart) + 1]
            assert after.text is not None and after.text.startswith("<b>All sectors (by"), after.text


async def test_groups_get_answers_quoted_and_topics_in_their_topic(
    demo_db: Engine, shared_reports: ReportService
) -> None:
    """In a group the report quotes the command it answers; in a forum supergroup every answer (chart,
    details, a one-line error, the settings menu) goes to the topic the command came from,
    not to General; a window button edits the chart where it is."""
    forum, topic = -100555, 42
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        asked = await h.write(GROUP, MEMBER, "/sectors")
        chart, details = h.bot_messages(GROUP)
        assert chart.photo and chart.reply_to_message_id == asked["message_id"] and chart.message_thread_id is None
        assert details.reply_to_message_id == chart.message_id  # the details quote their chart

        h.server.add_chat(forum, "supergroup", title="两融论坛", members=[MEMBER], is_forum=True)
        asked = await h.inject(h.server.inject_message, forum, MEMBER, "/sectors", thread_id=topic)
        for bad in ("/ratio x", "/settings"):
            await h.inject(h.server.inject_message, forum, MEMBER, bad, thread_id=topic)
        await h.inject(h.server.inject_message, forum, MEMBER, "/ratio 20")  # in General
        chart, details, error, menu, general, general_details = h.bot_messages(forum)
        assert [m.message_thread_id for m in (chart, details, error, menu)] == [topic] * 4
        assert chart.reply_to_message_id == asked["message_id"] and details.reply_to_message_id == chart.message_id
        assert chart.caption == expected(shared_reports, "sectors").caption
        assert error.plain_text() == "天数 “x” 无效，请输入 1 到 2500 之间的整数，例如 /ratio 250。"
        assert general.photo and (general.message_thread_id, general_details.message_thread_id) == (None, None)
        await h.press(forum, MEMBER, chart.message_id, "w:sectors:60:")
        edited = h.server.history(forum)[chart.message_id - 1]
        assert edited.message_id == chart.message_id and edited.edits == 1 and edited.message_thread_id == topic


async def test_group_subscription_admins_only_and_membership(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, MEMBER, "/subscribe")
        assert h.texts(GROUP)[-1] == t("zh", "bot.admins_only")
        member_check = h.server.calls_for("getChatMember", GROUP)[-1]
        assert member_check.params["user_id"] == MEMBER and member_check.result["status"] == "member"
        assert stored_chat(demo_db, GROUP).subscribed is False
        await h.write(GROUP, MEMBER, "/unsubscribe")
        assert h.texts(GROUP)[-1] == t("zh", "bot.admins_only")

        await h.write(GROUP, ADMIN, "/subscribe")
        assert h.texts(GROUP)[-1] == t("zh", "bot.subscribed", time="00:00")
        assert h.server.calls_for("getChatMember", GROUP)[-1].result["status"] == "administrator"
        group = stored_chat(demo_db, GROUP)
        assert (group.subscribed, group.active, group.chat_type, group.title) == (True, True, "group", "两融讨论")
        # an admin unsubscribes (a member could not), and subscribes again
        await h.write(GROUP, ADMIN, f"/unsubscribe@{BOT_USERNAME}")
        assert h.texts(GROUP)[-1] == t("zh", "bot.unsubscribed")
        assert stored_chat(demo_db, GROUP).subscribed is False
        await h.write(GROUP, ADMIN, "/subscribe")
        assert stored_chat(demo_db, GROUP).subscribed is True

        # the bot is removed: the chat is deactivated (and so no longer pushed to), and unsubscribed
        await h.inject(h.server.inject_my_chat_member, GROUP, "member", "left", from_user=ADMIN)
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed, group.deactivated_reason) == (False, False, "bot left")
        assert chats.subscriber_count(demo_db) == 0

        # added again (by anyone): active, but not subscribed until an admin says so; then kicked
        await h.inject(h.server.inject_my_chat_member, GROUP, "left", "member", from_user=MEMBER)
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed) == (True, False)
        await h.inject(h.server.inject_my_chat_member, GROUP, "member", "kicked", from_user=ADMIN)
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed, group.deactivated_reason) == (False, False, "bot kicked")

        # a private user blocking the bot is the same update in a private chat; their subscription
        # waits for them (counted again once they unblock it)
        await h.write(EN_USER, EN_USER, "/subscribe")
        await h.inject(h.server.inject_my_chat_member, EN_USER, "member", "kicked")
        user = stored_chat(demo_db, EN_USER)
        assert (user.active, user.subscribed, user.deactivated_reason) == (False, True, "bot kicked")
        assert chats.subscriber_count(demo_db) == 0
        await h.inject(h.server.inject_my_chat_member, EN_USER, "kicked", "member")
        assert chats.subscriber_count(demo_db) == 1


async def test_group_migration_moves_subscription(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, CREATOR, "/subscribe")
        assert h.texts(GROUP)[-1] == t("zh", "bot.subscribed", time="00:00")
        new_id = await h.inject(h.server.inject_migration, GROUP)
        old, new = stored_chat(demo_db, GROUP), stored_chat(demo_db, new_id)
        assert (old.subscribed, old.active, old.deactivated_reason) == (False, False, f"migrated to {new_id}")
        assert (new.subscribed, new.active, new.chat_type, new.language) == (True, True, "supergroup", "zh")

        await h.write(new_id, MEMBER, f"/ratio@{BOT_USERNAME}")
        assert len(h.photos(new_id)) == 1
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        assert len(h.photos(new_id)) == 2 and h.photos(GROUP) == []


async def test_a_group_upgrade_met_while_the_database_is_away_still_asks_again(
        demo_db: Engine, shared_reports: ReportService, debug_logs: RecordAll,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The subscription cannot be moved at that moment (the database is away): the supergroup is
    still asked to send the command again, in the default language, and the failure is a warning."""
    from sqlalchemy.exc import OperationalError

    def away(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("UPDATE chat", {}, Exception("database is locked"))

    new_id = -1004002
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(new_id, "supergroup", title="两融讨论", members=[MEMBER], admins=[ADMIN])
        monkeypatch.setattr(chats, "migrate", away)
        monkeypatch.setattr(chats, "get_chat", away)
        h.server.fail_next("sendPhoto", 400, migrate_to_chat_id=new_id, chat_id=GROUP)
        await h.write(GROUP, MEMBER, "/ratio")
        assert h.texts(new_id) == [t("zh", "bot.group_upgraded")]
        warnings = [r.getMessage() for r in debug_logs.records if r.levelno == logging.WARNING]
        assert f"chat {GROUP}: subscription not moved to {new_id} now" in warnings
        assert h.server.sent_messages(ADMIN_CHAT) == []


async def test_a_group_that_became_a_supergroup_while_answered_keeps_its_subscription(
        demo_db: Engine, shared_reports: ReportService, debug_logs: RecordAll) -> None:
    """The answer to /ratio meets "group chat was upgraded to a supergroup chat" (400 with
    migrate_to_chat_id): the error handler moves the subscription to the new id; the group's doing,
    not a bug: no apology and no report to the admins. The supergroup is asked, in one line in its
    language, to send the command again (bot.handlers.errors._ask_again), rather than the member
    getting silence; the next push reaches the supergroup."""
    new_id = -1004001
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, ADMIN, "/subscribe")
        assert h.texts(GROUP) == [t("zh", "bot.subscribed", time="00:00")]
        h.server.add_chat(new_id, "supergroup", title="两融讨论", members=[MEMBER], admins=[ADMIN])
        h.server.clear_calls()
        h.server.fail_next("sendPhoto", 400, migrate_to_chat_id=new_id, chat_id=GROUP)
        await h.write(GROUP, MEMBER, "/ratio")

        [refused] = h.server.calls_for("sendPhoto")
        assert (refused.chat_id, refused.status) == (GROUP, 400)
        assert refused.error_parameters == {"migrate_to_chat_id": new_id}
        # nothing else was sent: no details, no apology, no admin report, no second try of the
        # photo; one line in the supergroup asking for the command again
        assert [c.method for c in h.server.calls if c.method != "getUpdates"] == ["sendPhoto", "sendMessage"]
        assert h.bot_messages(GROUP)[-1].text == t("zh", "bot.subscribed", time="00:00")
        assert len(h.bot_messages(GROUP)) == 1
        assert h.texts(new_id) == [t("zh", "bot.group_upgraded")]
        assert h.texts(new_id)[0] == "本群刚升级为超级群组，上一条命令没能回答：请再发送一次。"
        assert h.server.sent_messages(ADMIN_CHAT) == []
        old, new = stored_chat(demo_db, GROUP), stored_chat(demo_db, new_id)
        assert (old.subscribed, old.active) == (False, False)
        assert old.deactivated_reason == f"migrated to {new_id}"
        assert (new.subscribed, new.active, new.chat_type) == (True, True, "supergroup")
        assert (new.language, new.title) == ("zh", "两融讨论")
        assert chats.subscriber_count(demo_db) == 1
        assert f"chat {GROUP} became supergroup {new_id} while answering it" in [
            r.getMessage() for r in debug_logs.records if r.name == "bot.handlers.errors"]
        assert not [r for r in debug_logs.records if r.levelno >= logging.ERROR]

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed) == (1, 0)
        [pushed] = h.photos(new_id)
        assert pushed.caption == expected(shared_reports, "summary", on=DATA_DATE).caption
        assert h.photos(GROUP) == []


# ------------------------------------------------------------------------------------------------
# Buttons under a report, inline mode, command menus
# ------------------------------------------------------------------------------------------------


async def test_a_press_or_inline_query_too_old_to_answer_is_still_done(
        demo_db: Engine, shared_reports: ReportService, debug_logs: RecordAll) -> None:
    """Updates queued while the bot was down: Telegram refuses an answer to a button press or an
    inline query older than about 15 seconds. The press still redraws its chart; neither is an
    error: no apology in the chat, no report to the admins."""
    stale = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratio")
        [report] = h.photos(ZH_USER)
        messages = len(h.server.history(ZH_USER))
        h.server.fail_next("answerCallbackQuery", 400, description=stale)
        await h.press(ZH_USER, ZH_USER, report.message_id, "w:ratio:60:")
        [refused] = [c for c in h.server.calls_for("answerCallbackQuery") if not c.ok]
        assert refused.status == 400
        [edited] = h.photos(ZH_USER)
        assert edited.edits == 1 and edited.caption == expected(shared_reports, "ratio", days=60).caption
        assert len(h.server.history(ZH_USER)) == messages  # redrawn in place, no apology

        h.server.fail_next("answerInlineQuery", 400, description=stale)
        await h.inline(EN_USER, "ratio")
        assert [c.ok for c in h.server.calls_for("answerInlineQuery")] == [False]
        assert h.bot_messages(ADMIN_CHAT) == [] and h.bot_messages(EN_USER) == []
        assert not [r for r in debug_logs.records if r.levelno >= logging.WARNING and r.name.startswith("bot")]


async def test_a_group_that_takes_no_photos_gets_text_and_a_muted_one_no_apology(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """A group whose permissions do not let the bot send photos: a report's caption comes as text with
    a line saying why the chart is missing (then its details), and so does the daily push. A group
    where the bot may send nothing is its own choice, not a bug: no apology tried, no admin report."""
    no_photos = "Bad Request: not enough rights to send photos to the chat"
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.fail_next("sendPhoto", 400, description=no_photos, chat_id=GROUP, times=2)
        asked = await h.write(GROUP, MEMBER, "/sectors")
        text, details = h.bot_messages(GROUP)
        want = expected(shared_reports, "sectors")
        assert text.text == f"{want.caption}\n{t('zh', 'bot.no_photo_rights')}" and text.reply_markup is None
        assert text.reply_to_message_id == asked["message_id"] and details.text == want.details
        assert h.server.sent_messages(ADMIN_CHAT) == [] and t("zh", "bot.error") not in h.texts(GROUP)

        await h.write(GROUP, ADMIN, "/subscribe")
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        pushed = h.bot_messages(GROUP)[-1]
        summary = expected(shared_reports, "summary")
        assert pushed.photo is None and pushed.text == f"{summary.caption}\n{t('zh', 'bot.no_photo_rights')}"
        assert delivery_rows(demo_db)[GROUP].status == DeliveryStatus.SENT

        # muted altogether: nothing can be sent, so no apology is tried and the admins are not bothered
        h.server.fail_next("sendPhoto", 400, description="Bad Request: have no rights to send a message",
                           chat_id=GROUP)
        before = len(h.bot_messages(GROUP))
        await h.write(GROUP, MEMBER, "/ratio")
        assert len(h.bot_messages(GROUP)) == before and h.server.sent_messages(ADMIN_CHAT) == []
        assert [c.params.get("text") for c in h.server.calls_for("sendMessage", GROUP)
                if c.params.get("text") == t("zh", "bot.error")] == []


async def test_window_buttons_edit_the_same_message(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        chat = ZH_USER
        await h.write(chat, ZH_USER, "/ratio")
        [report] = h.photos(chat)
        assert buttons(report.reply_markup) == [("20日", "w:ratio:20:"), ("60日", "w:ratio:60:"),
                                                ("• 250日 •", "w:ratio:250:")]
        first_file = report.photo_file_id
        messages = len(h.server.history(chat))

        query = await h.press(chat, ZH_USER, report.message_id, "w:ratio:60:")
        want = expected(shared_reports, "ratio", days=60)
        [edit] = h.ok_calls("editMessageMedia", chat)
        assert edit.params["message_id"] == report.message_id
        assert edit.media_source == "upload"  # a new chart for the new window
        assert h.server.callback_answers[query] == {"callback_query_id": query}  # answered, silently
        [edited] = h.photos(chat)
        assert edited.message_id == report.message_id and edited.edits == 1
        assert edited.caption == want.caption and "数据日期 2026-11-20" in edited.caption
        assert edited.photo_file_id != first_file
        assert buttons(edited.reply_markup) == [("20日", "w:ratio:20:"), ("• 60日 •", "w:ratio:60:"),
                                                ("250日", "w:ratio:250:")]
        assert len(h.server.history(chat)) == messages  # edited in place, nothing new

        # a window whose caption names it: the caption follows the window
        await h.write(chat, ZH_USER, "/sectors")
        sectors = h.photos(chat)[-1]
        [table] = [m for m in h.bot_messages(chat) if m.message_id > sectors.message_id]
        assert "近20日" in sectors.caption and "按近20日变化排序" in table.text  # type: ignore[operator]
        await h.press(chat, ZH_USER, sectors.message_id, "w:sectors:60:")
        sixty = expected(shared_reports, "sectors", days=60)
        sectors = h.photos(chat)[-1]
        assert sectors.caption == sixty.caption
        assert "近60日" in sectors.caption and sectors.edits == 1  # type: ignore[operator]
        # the table under the chart follows the window: the same message, redrawn
        [table] = [m for m in h.bot_messages(chat) if m.message_id > sectors.message_id]
        assert table.text == sixty.details and table.edits == 1 and "按近60日变化排序" in table.text

        # tapping the window already shown: Telegram answers "message is not modified"; no crash
        h.server.fail_next("editMessageMedia", 400, description="Bad Request: message is not modified: "
                           "specified new message content and reply markup are exactly the same", chat_id=chat)
        query = await h.press(chat, ZH_USER, report.message_id, "w:ratio:60:")
        assert h.server.callback_answers[query] == {"callback_query_id": query}  # answered, silently
        # and the same tap answered normally (the stand-in accepts identical media): still one message
        query = await h.press(chat, ZH_USER, report.message_id, "w:ratio:60:")
        assert h.server.callback_answers[query] == {"callback_query_id": query}  # answered, silently
        assert h.photos(chat)[0].caption == want.caption
        assert [m.message_id for m in h.photos(chat)] == [report.message_id, sectors.message_id]
        assert t("zh", "bot.error") not in h.texts(chat) and h.server.sent_messages(ADMIN_CHAT) == []
        # the chart deleted while the press was on its way: nothing to redraw, no error
        h.server.fail_next("editMessageMedia", 400, description="Bad Request: message to edit not found",
                           chat_id=chat)
        query = await h.press(chat, ZH_USER, report.message_id, "w:ratio:20:")
        assert h.server.callback_answers[query] == {"callback_query_id": query}  # answered, silently
        assert t("zh", "bot.error") not in h.texts(chat) and h.server.sent_messages(ADMIN_CHAT) == []

        # garbage callback data is answered and ignored
        query = await h.press(chat, ZH_USER, report.message_id, "w:nonsense:abc:")
        assert query in h.server.callback_answers and h.photos(chat)[0].caption == want.caption


async def test_reports_of_a_past_day(demo_db: Engine, shared_reports: ReportService) -> None:
    """A date argument shows that day's report; its window buttons stay on that day; a day without data
    is answered with the trade date before it, a date that is not one with the format to use."""
    day = date(2025, 9, 30)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        chat = ZH_USER
        await h.write(chat, ZH_USER, "/ratio 60 2025-09-30")
        [report] = h.photos(chat)
        want = expected(shared_reports, "ratio", days=60, on=day)
        assert report.caption == want.caption and "数据日期 2025-09-30" in want.caption
        assert want.caption != expected(shared_reports, "ratio", days=60).caption
        assert buttons(report.reply_markup) == [("20日", "w:ratio:20::20250930"), ("• 60日 •", "w:ratio:60::20250930"),
                                                ("250日", "w:ratio:250::20250930")]
        await h.press(chat, ZH_USER, report.message_id, "w:ratio:250::20250930")
        [edited] = h.photos(chat)
        assert edited.caption == expected(shared_reports, "ratio", days=250, on=day).caption
        assert "数据日期 2025-09-30" in edited.caption  # type: ignore[operator]

        # the same in other forms: the date first, eight digits, a stock in a private chat by its bare code
        await h.write(chat, ZH_USER, "/sectors 20250930 20")
        assert h.photos(chat)[-1].caption == expected(shared_reports, "sectors", days=20, on=day).caption
        code = sample_stock(demo_db)
        await h.write(chat, ZH_USER, f"{code} 2025-09-30")
        stock = h.photos(chat)[-1]
        assert stock.caption == expected(shared_reports, "stock", code=code, on=day).caption
        assert buttons(stock.reply_markup) == [("20日", f"w:stock:20:{code}:20250930"),
                                               ("• 60日 •", f"w:stock:60:{code}:20250930"),
                                               ("250日", f"w:stock:250:{code}:20250930")]
        await h.write(EN_USER, EN_USER, "/balance 2025/9/30")
        assert h.photos(EN_USER)[-1].caption == expected(shared_reports, "balance", lang="en", on=day).caption

        texts_before = len(h.texts(chat))
        await h.write(chat, ZH_USER, "/balance 2025-10-03")  # the National Day holiday
        await h.write(chat, ZH_USER, "/ratio 2025-02-30")
        await h.write(chat, ZH_USER, "/ratio 2000-01-04")
        await h.write(chat, ZH_USER, "/ratio 2030-01-02")
        await h.write(chat, ZH_USER, "/sectors 20 60")
        await h.write(chat, ZH_USER, f"/stock {code} 2025-09-30 2025-09-29")
        assert h.texts(chat)[texts_before:] == [
            "2025-10-03 不是有数据的交易日（周末、节假日或未发布）；此前最近的数据日期是 2025-09-30。",
            "“2025-02-30” 这一天不存在，请检查月份和日期，例如 2024-09-30。",
            "2000-01-04 早于已存数据的起点 2023-01-02。",
            "2030-01-02 没有两融数据（非交易日或尚未发布）。最新数据日期：2026-11-20。",
            "参数太多：最多一个天数和一个日期（/stock 先写代码），例如 /sectors 20 2024-09-30。",
            "参数太多：最多一个天数和一个日期（/stock 先写代码），例如 /stock 600519 60 2024-09-30。",
        ]
        await h.write(EN_USER, EN_USER, "/ratio 2025-10-04")
        assert h.texts(EN_USER)[-1] == ("2025-10-04 is not a trading day with data (weekend, holiday or not "
                                        "published); the nearest one before it is 2025-09-30.")

        # inline: the date picks the day; a bad date offers nothing
        query = await h.inline(ZH_USER, "ratio 2025-09-30")
        [result] = h.server.inline_answers[query]["results"]
        assert result["caption"] == expected(shared_reports, "ratio", on=day).caption
        assert result["title"] == "两融交易占比（2025-09-30）" and result["id"] == "ratio-2025-09-30-zh"
        query = await h.inline(ZH_USER, "ratio 2025-02-30")
        assert h.server.inline_answers[query]["results"] == []
        assert t("zh", "bot.error") not in h.texts(chat) and h.server.sent_messages(ADMIN_CHAT) == []


async def test_top_ranking_with_its_own_windows(demo_db: Engine, shared_reports: ReportService) -> None:
    """/top: the stocks whose 融资余额 rose and fell most, chart and caption, the full lists in a second
    message, and buttons of 1, 5 and 20 days (a ranking reads best over days)."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/top")
        [photo] = h.photos(ZH_USER)
        want = expected(shared_reports, "top")
        assert photo.caption == want.caption and "融资余额变化排行 近5日" in want.caption
        assert h.texts(ZH_USER)[-1] == want.details  # the two lists of ten
        assert buttons(photo.reply_markup) == [("1日", "w:top:1:"), ("• 5日 •", "w:top:5:"), ("20日", "w:top:20:")]
        await h.press(ZH_USER, ZH_USER, photo.message_id, "w:top:1:")
        assert h.photos(ZH_USER)[0].caption == expected(shared_reports, "top", days=1).caption
        await h.write(GROUP, MEMBER, f"/top@{BOT_USERNAME} 20 2025-09-30")
        assert h.photos(GROUP)[-1].caption == expected(shared_reports, "top", days=20, on=date(2025, 9, 30)).caption

        # within one sector: its buttons keep the sector (by code: callback data is short)
        await h.write(ZH_USER, ZH_USER, "/top 电子 20")
        sector = h.photos(ZH_USER)[-1]
        assert sector.caption == expected(shared_reports, "top", code="电子", days=20).caption
        assert sector.caption.startswith("<b>电子 · 融资余额变化排行 近20日</b>")  # type: ignore[union-attr]
        assert buttons(sector.reply_markup)[0] == ("1日", "w:top:1:270000")
        await h.press(ZH_USER, ZH_USER, sector.message_id, "w:top:1:270000")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "top", code="270000", days=1).caption
        await h.write(ZH_USER, ZH_USER, "/top 电")
        assert h.texts(ZH_USER)[-1] == "名称含 “电” 的行业不止一个：电子、家用电器、电力设备。请写全名，例如 电子。"
        choice = h.bot_messages(ZH_USER)[-1]
        assert buttons(choice.reply_markup) == [("电子", "p:top:5:270000"), ("家用电器", "p:top:5:330000"),
                                                ("电力设备", "p:top:5:630000")]
        await h.press(ZH_USER, ZH_USER, choice.message_id, "p:top:5:330000")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "top", code="家用电器").caption


async def test_one_sector_with_its_own_buttons_and_inline(demo_db: Engine, shared_reports: ReportService) -> None:
    """/sectors 医药: that sector alone (balance, its index, net buying), window buttons that keep it,
    and inline `行业 医药` offers the same chart."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/sectors 医药")
        photo = h.photos(ZH_USER)[-1]
        want = expected(shared_reports, "sectors", code="医药")
        assert photo.caption == want.caption and want.data["code"] == "370000"
        assert "💡 融资先于价格（行业见底信号）" in want.caption  # the demo's bottoming sector
        assert h.texts(ZH_USER)[-1] == want.details
        assert buttons(photo.reply_markup) == [("• 20日 •", "w:sectors:20:370000"), ("60日", "w:sectors:60:370000"),
                                               ("250日", "w:sectors:250:370000")]
        await h.press(ZH_USER, ZH_USER, photo.message_id, "w:sectors:60:370000")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "sectors", code="370000", days=60).caption
        query = await h.inline(ZH_USER, "行业 医药")
        [result] = h.server.inline_answers[query]["results"]
        assert result["id"] == "sectors-370000-2026-11-20-zh" and result["caption"] == want.caption


async def test_deep_links_open_a_report(demo_db: Engine, shared_reports: ReportService) -> None:
    """t.me/<bot>?start=<payload> (the button under a shared chart) arrives as /start <payload>: the
    report it names, in the chat's language; a payload the bot did not make gets the welcome."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        code = sample_stock(demo_db)
        await h.write(EN_USER, EN_USER, f"/start stock_{code}")
        assert h.photos(EN_USER)[-1].caption == expected(shared_reports, "stock", lang="en", code=code).caption
        await h.write(EN_USER, EN_USER, "/start sectors_370000_20261119")
        assert h.photos(EN_USER)[-1].caption == expected(
            shared_reports, "sectors", lang="en", code="370000", on=date(2026, 11, 19)).caption
        await h.write(EN_USER, EN_USER, "/start summary")
        assert h.photos(EN_USER)[-1].caption == expected(shared_reports, "summary", lang="en").caption
        await h.write(EN_USER, EN_USER, "/start <b>nonsense")
        assert h.texts(EN_USER)[-1] == t("en", "bot.start")


async def test_inline_query_answers_cached_photos(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        query = await h.inline(ZH_USER, "ratio")
        answer = h.server.inline_answers[query]
        [result] = answer["results"]
        want = expected(shared_reports, "ratio")
        assert result["type"] == "photo" and result["photo_file_id"] in h.server.files
        assert result["caption"] == want.caption and result["parse_mode"] == "HTML"
        assert result["title"] == "两融交易占比（2026-11-20）"
        # under the shared chart, a link that opens the report in a chat with the bot
        assert result["reply_markup"] == {"inline_keyboard": [[
            {"text": "在两融雷达中查看", "url": f"https://t.me/{BOT_USERNAME}?start=ratio"}]]}
        # uploaded once, to the storage chat, silently
        [upload] = h.ok_calls("sendPhoto")
        assert upload.chat_id == STORAGE_CHAT and upload.media_source == "upload"
        assert upload.params.get("disable_notification") is True
        assert h.server.sent_messages(STORAGE_CHAT)[0].photo_file_id == result["photo_file_id"]

        # asked again (another user, English): the zh chart is not uploaded again; en gets its own
        query = await h.inline(ZH_USER, "占比")
        assert h.server.inline_answers[query]["results"][0]["photo_file_id"] == result["photo_file_id"]
        query = await h.inline(EN_USER, "ratio")
        [en] = h.server.inline_answers[query]["results"]
        assert en["caption"] == expected(shared_reports, "ratio", lang="en").caption
        assert en["photo_file_id"] in h.server.files and en["photo_file_id"] != result["photo_file_id"]
        assert h.server.uploads == 2
        # a /ratio in a chat now reuses the uploaded chart
        await h.write(ZH_USER, ZH_USER, "/ratio")
        assert h.server.calls_for("sendPhoto", ZH_USER)[-1].media_source == "file_id"
        assert h.server.uploads == 2

        # a security code offers that security's chart; an unknown code offers nothing
        code = sample_stock(demo_db)
        query = await h.inline(ZH_USER, f"stock {code}")
        [stock] = h.server.inline_answers[query]["results"]
        want = expected(shared_reports, "stock", code=code)
        assert stock["id"] == f"stock-{code}-2026-11-20-zh" and stock["caption"] == want.caption
        assert stock["title"] == f"{want.data['name']} {code}（2026-11-20）"
        assert h.server.uploads == 3
        query = await h.inline(ZH_USER, "999999")
        assert h.server.inline_answers[query]["results"] == []
        # its name offers the same chart, already uploaded
        query = await h.inline(ZH_USER, want.data["name"])
        assert [r["id"] for r in h.server.inline_answers[query]["results"]] == [stock["id"]]
        assert h.server.uploads == 3
        # the ranking inside a sector
        query = await h.inline(ZH_USER, "top 电子")
        [ranking] = h.server.inline_answers[query]["results"]
        assert ranking["id"] == "top-270000-2026-11-20-zh"
        assert ranking["title"] == "电子 · 融资余额变化排行（2026-11-20）"
        assert ranking["caption"] == expected(shared_reports, "top", code="电子").caption
        query = await h.inline(ZH_USER, "排行 没有这个行业")
        assert h.server.inline_answers[query]["results"] == []
        # the same ranking asked with a window (left out: a shared chart has its own) or by the code
        for asked in ("top 5 电子", "top 270000", "排行 801080"):
            query = await h.inline(ZH_USER, asked)
            assert [r["id"] for r in h.server.inline_answers[query]["results"]] == [ranking["id"]], asked


async def test_inline_codes_in_any_form_bad_dates_and_the_chosen_language(
        demo_db: Engine, shared_reports: ReportService) -> None:
    code = sample_stock(demo_db)
    suffix = ".SH" if code.startswith("6") else ".SZ"
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code)  # full-width digits, as a Chinese keyboard types them
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        for asked in (f"{code}{suffix}", f"stock {code}{suffix.lower()}", wide):
            query = await h.inline(ZH_USER, asked)
            assert [r["id"] for r in h.server.inline_answers[query]["results"]] == [
                f"stock-{code}-2026-11-20-zh"], asked
        # a bad date: nothing to offer, and the reason on the results button (its short form)
        query = await h.inline(EN_USER, "ratio 2024-02-30")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["cache_time"] == 0
        assert answer["button"]["text"] == "“2024-02-30” is not a day of the calendar"
        query = await h.inline(EN_USER, "ratio 2024-9")
        assert h.server.inline_answers[query]["button"]["text"] == ("“2024-9” is not a date: use YYYY-MM-DD,"
                                                                    " e.g. 2024-09-30")
        # two dates: one at a time
        query = await h.inline(EN_USER, "ratio 2024-09-30 2024-10-08")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["button"]["text"] == "One date at a time, e.g. ratio 2024-09-30"
        # a day without data: the report's reason in short, the day to ask instead kept on the one line
        query = await h.inline(EN_USER, "ratio 2024-09-28")
        assert h.server.inline_answers[query]["button"]["text"] == "No data for 2024-09-28 · nearest before: 2024-09-27"
        # the language chosen in /settings, not Telegram's
        await h.write(ZH_USER, ZH_USER, "/settings")
        await h.press(ZH_USER, ZH_USER, h.bot_messages(ZH_USER)[-1].message_id, "s:lang:en")
        query = await h.inline(ZH_USER, "ratio")
        [result] = h.server.inline_answers[query]["results"]
        assert result["id"] == "ratio-2026-11-20-en"


async def test_typing_an_inline_query_costs_only_the_charts_it_makes(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """Each keystroke is a query: typing over a chart already made (here 20 times, four times the
    allowance of 5) is never told to slow down, and leaves the private chat its allowance; only
    queries that make new charts count (the sixth new date is refused)."""
    code = sample_stock(demo_db)
    async with running(demo_db, ReportService(demo_db), commands_per_minute=5) as h:
        add_people(h)
        for _ in range(20):
            query = await h.inline(ZH_USER, f"stock {code}")
            assert len(h.server.inline_answers[query]["results"]) == 1
        await h.write(ZH_USER, ZH_USER, "/ratio")
        [ratio] = h.photos(ZH_USER)  # the private chat kept its allowance: the report, no slow-down
        want = expected(shared_reports, "ratio")
        assert ratio.caption == want.caption and h.texts(ZH_USER) == [want.details]
        days = ["2026-11-13", "2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
        for day in days[:3]:  # with /stock and /ratio: five renders
            query = await h.inline(ZH_USER, f"ratio {day}")
            assert len(h.server.inline_answers[query]["results"]) == 1, day
        query = await h.inline(ZH_USER, f"ratio {days[3]}")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["button"]["text"] == t("zh", "bot.inline_slow_down")
        query = await h.inline(ZH_USER, f"ratio {days[0]}")  # made already: offered still
        assert len(h.server.inline_answers[query]["results"]) == 1


async def test_inline_charts_out_of_time_are_offered_in_the_bot(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts of a past date are made one by one; past INLINE_RENDER_SECONDS the answer offers what is
    made and a button that opens the rest in the bot (Telegram keeps a query for about 10 s)."""
    import bot.handlers.inline as inline_module

    monkeypatch.setattr(inline_module, "INLINE_RENDER_SECONDS", -1.0)  # out of time from the start
    async with running(demo_db, ReportService(demo_db)) as h:
        add_people(h)
        query = await h.inline(ZH_USER, "2026-11-19")
        answer = h.server.inline_answers[query]
        first = inline_module.INLINE_REPORTS[0]
        assert answer["results"] == [] and answer["cache_time"] == 0
        assert answer["button"] == {"text": t("zh", "bot.inline_open_in_bot"), "start_parameter": f"{first}_20261119"}


async def test_inline_offers_what_is_ready_and_uploads_the_rest_for_next_time(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage chat is slow (its uploads are paced): the answer does not wait past
    INLINE_WAIT_SECONDS, offers a button into the bot instead and is not cached; the upload goes on
    and the next query offers the chart."""
    import bot.handlers.inline as inline_module

    monkeypatch.setattr(inline_module, "INLINE_WAIT_SECONDS", 0.05)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.hold_answers("sendPhoto")  # the upload is answered when the test says so
        query = await h.inline(ZH_USER, "ratio")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["cache_time"] == 0
        assert answer["button"] == {"text": "图表生成中：点此在机器人中查看", "start_parameter": "ratio"}
        await h.until(lambda: h.server.held("sendPhoto") == 1)  # the upload goes on
        h.server.release_answers("sendPhoto")
        services = services_of(h.app)
        await h.until(lambda: not services.uploads)  # the upload the answer did not wait for has ended
        query = await h.inline(ZH_USER, "ratio")
        [result] = h.server.inline_answers[query]["results"]
        assert result["photo_file_id"] in h.server.files and h.server.uploads == 1


async def test_the_latest_charts_are_uploaded_ahead_for_inline_mode(
        demo_db: Engine, shared_reports: ReportService) -> None:
    from bot.arguments import INLINE_REPORTS
    from bot.handlers.inline import upload_latest

    async with running(demo_db, shared_reports) as h:
        add_people(h)
        assert await upload_latest(h.app) == 2 * len(INLINE_REPORTS)  # type: ignore[arg-type]
        assert {c.chat_id for c in h.ok_calls("sendPhoto")} == {STORAGE_CHAT}
        assert await upload_latest(h.app) == 0  # type: ignore[arg-type]
        query = await h.inline(EN_USER, "")
        answer = h.server.inline_answers[query]
        assert len(answer["results"]) == len(INLINE_REPORTS) and "button" not in answer
        assert h.server.uploads == 2 * len(INLINE_REPORTS)


async def test_a_channel_subscribes_by_posting_and_gets_the_push(demo_db: Engine,
                                                                  shared_reports: ReportService) -> None:
    """Only admins post in a channel: /subscribe, /unsubscribe and /settings posted there are theirs;
    its buttons may be pressed by any subscriber, and only an admin's press counts. Other commands
    get a line on what a channel can do; another bot's commands and ordinary posts, nothing."""
    channel = -1007001
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(channel, "channel", title="两融日报频道", admins=[ADMIN], members=[MEMBER],
                          bot_status="administrator")
        await h.inject(h.server.inject_channel_post, channel, "/subscribe")
        when = services_of(h.app).settings.push_time.strftime("%H:%M")
        assert h.texts(channel) == [t("zh", "bot.subscribed", time=when)]
        row = stored_chat(demo_db, channel)
        assert (row.chat_type, row.subscribed) == ("channel", True)
        for post in ("/ratio", "/ratio@other_bot", "今日两融数据如下", f"/ratio@{BOT_USERNAME}"):
            await h.inject(h.server.inject_channel_post, channel, post)
        assert h.texts(channel)[1:] == [t("zh", "bot.channel_help")] * 2
        # its discussion group, where the bot is a member too, gets each post copied (an automatic
        # forward): the copy is not a command of the group's, and is not answered there
        discussion = -1007002
        h.server.add_chat(discussion, "supergroup", title="两融日报讨论", admins=[ADMIN], members=[MEMBER])
        for post in ("/subscribe", "/ratio"):
            await h.inject(h.server.inject_channel_post, channel, post, discussion=discussion)
        assert h.bot_messages(discussion) == [] and len(h.server.history(discussion)) == 2
        assert chats.get_chat(demo_db, discussion) is None  # nothing there was for the bot: not even stored
        await h.inject(h.server.inject_channel_post, channel, "/settings")
        menu = h.bot_messages(channel)[-1]
        query = await h.press(channel, MEMBER, menu.message_id, "s:lang:en")  # a subscriber: refused
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.admins_only_settings")
        await h.press(channel, ADMIN, menu.message_id, "s:lang:en")
        assert stored_chat(demo_db, channel).language == "en"

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        assert h.photos(channel)[-1].caption == expected(shared_reports, "summary", lang="en", on=DATA_DATE).caption
        await h.inject(h.server.inject_channel_post, channel, "/unsubscribe")
        assert h.texts(channel)[-1] == t("en", "bot.unsubscribed")
        assert stored_chat(demo_db, channel).subscribed is False


async def test_status_for_admins_only(demo_db: Engine, shared_reports: ReportService) -> None:
    """/status answers in the admins' chats (ADMIN_CHAT_IDS) with what is stored, subscribed and
    pushed; anywhere else it is an unknown command."""
    async with running(demo_db, shared_reports, admin_chat_ids=[ZH_USER]) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/subscribe")
        await h.write(ZH_USER, ZH_USER, "/status")
        status = h.server.sent_messages(ZH_USER)[-1].plain_text()  # what the admin reads
        assert status is not None
        assert status.startswith("运行状态 · ⚠️ 演示数据\n报告默认日期 2026-11-20 · 采集完整的最新日期 —")
        assert "两融汇总：2023-01-02 至 2026-11-20" in status and "个股明细：2023-01-02 至 2026-11-20" in status
        assert "没有采集记录（数据来自演示或导入）" in status
        assert "订阅：私聊 1 · 群组 0" in status and "还没有推送过" in status
        await h.write(EN_USER, EN_USER, "/status")
        await h.write(GROUP, ADMIN, f"/status@{BOT_USERNAME}")  # a group admin is not the bot's admin
        assert h.texts(EN_USER)[-1] == "Unknown command: /status. Send /help for the list."
        assert h.texts(GROUP)[-1] == f"不认识这个命令：/status@{BOT_USERNAME}。发送 /help 查看全部命令。"


async def test_command_menus_registered(demo_db: Engine, shared_reports: ReportService) -> None:
    from bot.handlers.admin import ADMIN_COMMANDS
    from bot.handlers.chat import KNOWN_COMMANDS

    # none answered "unknown"; /status is the admins' and in no menu
    assert set(PRIVATE_COMMANDS) | set(GROUP_COMMANDS) | {"start", *ADMIN_COMMANDS} == KNOWN_COMMANDS
    async with running(demo_db, shared_reports) as h:
        private, groups = {"type": "all_private_chats"}, {"type": "all_group_chats"}
        for scope, names in ((private, PRIVATE_COMMANDS), (groups, GROUP_COMMANDS)):
            for lang in ("zh", "en"):
                menu = h.server.commands(scope, lang)
                assert [c["command"] for c in menu] == list(names)
                assert [c["description"] for c in menu] == [t(lang, f"commands.{n}") for n in names]
            # every other language (de, ja, ...) is answered in English: its menu too
            assert h.server.commands(scope) == h.server.commands(scope, "en")
        assert "settings" in [c["command"] for c in h.server.commands(groups, "zh")]  # admins set a group's language
        assert h.server.commands(private, "en")[1] == {"command": "ratio",
                                                       "description": "Margin share of turnover"}


# ------------------------------------------------------------------------------------------------
# The daily push
# ------------------------------------------------------------------------------------------------


def json_list(value: object) -> list[object]:
    """A list parameter as the stand-in recorded it (JSON text on the wire, or already decoded)."""
    import json

    return json.loads(value) if isinstance(value, str) else list(value)  # type: ignore[arg-type]


async def test_daily_push_once_per_chat_upload_once(engine: Engine, shared_reports: ReportService) -> None:
    """Runs on SQLite and PostgreSQL: the deliveries table is the push's memory."""
    third = 1006
    async with running(engine, shared_reports) as h:
        add_people(h)
        h.server.add_user(third, "王五", language_code="zh-hk")
        h.server.add_chat(third)
        for chat, user in ((ZH_USER, ZH_USER), (EN_USER, EN_USER), (third, third), (GROUP, ADMIN)):
            await h.write(chat, user, "/subscribe")
        assert chats.subscriber_count(engine) == 4
        h.server.clear_calls()

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed, result.deactivated) == (4, 0, 0)
        summary = {lang: expected(shared_reports, "summary", lang=lang, on=DATA_DATE) for lang in ("zh", "en")}
        for chat, lang in ((ZH_USER, "zh"), (EN_USER, "en"), (third, "zh"), (GROUP, "zh")):
            [photo] = h.photos(chat)
            assert photo.caption == summary[lang].caption
            assert ("2026-11-20" in photo.caption) and (("数据日期" in photo.caption) == (lang == "zh"))  # type: ignore[operator]
        # what the chats received: the day's headline and the ratio of the day's data, as rendered
        pushed = {lang: h.photos(chat)[0] for chat, lang in ((ZH_USER, "zh"), (EN_USER, "en"))}
        assert pushed["zh"].caption.startswith("<b>两融雷达 · 2026-11-20</b>\n两融余额 <b>")  # type: ignore[union-attr]
        assert pushed["en"].caption.startswith("<b>Margin Radar · 2026-11-20</b>\nMargin balance <b>")  # type: ignore[union-attr]
        ratio_pct = summary["zh"].data["ratio"]["ratio_pct"]
        assert f"\n两融交易占比 <b>{ratio_pct:.2f}%</b>" in pushed["zh"].caption  # type: ignore[operator]
        assert f"\nMargin share of turnover <b>{ratio_pct:.2f}%</b>" in pushed["en"].caption  # type: ignore[operator]
        assert pushed["zh"].photo_file_id != pushed["en"].photo_file_id  # one chart per language
        sends = h.server.calls_for("sendPhoto")
        assert len(sends) == 4 and all(c.ok for c in sends)
        assert sorted(c.media_source or "" for c in sends) == ["file_id", "file_id", "upload", "upload"]
        assert h.server.uploads == 2  # one chart per language
        assert services_of(h.app).upload_locks == {}  # each lock went with its last holder
        with Session(engine) as session:
            assert session.execute(select(func.count()).select_from(models.ChartUpload)).scalar() == 2
        rows = delivery_rows(engine)
        assert {cid: r.status for cid, r in rows.items()} == dict.fromkeys((ZH_USER, EN_USER, third, GROUP),
                                                                         DeliveryStatus.SENT)
        assert all(r.message_id == h.photos(cid)[0].message_id and r.attempts == 1 for cid, r in rows.items())

        # again (a second tick, or a second worker): nothing more is sent
        again = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert again is not None and again.sent == 0
        assert len(h.server.calls_for("sendPhoto")) == 4
        assert deliveries.delivery_counts(engine, DATA_DATE) == {DeliveryStatus.SENT: 4}


async def test_a_forum_subscribed_from_a_topic_gets_its_push_there(
    demo_db: Engine, shared_reports: ReportService
) -> None:
    """/subscribe in a forum topic: the push goes to that topic; once the topic is deleted, the next
    push goes to General (and the stored topic is forgotten), none is lost."""
    forum, topic = -100666, 42
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(forum, "supergroup", title="两融论坛", members=[MEMBER], admins=[ADMIN], is_forum=True)
        await h.inject(h.server.inject_message, forum, ADMIN, "/subscribe", thread_id=topic)
        [confirmed] = h.bot_messages(forum)
        assert confirmed.message_thread_id == topic and confirmed.plain_text() == t(
            "zh", "bot.subscribed_topic", time="00:00")
        assert stored_chat(demo_db, forum).push_thread_id == topic

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        [pushed] = h.photos(forum)
        assert pushed.message_thread_id == topic
        assert pushed.caption == expected(shared_reports, "summary", on=DATA_DATE).caption

        h.server.delete_topic(forum, topic)
        earlier = date(2026, 11, 19)
        result = await push_now(h.app, earlier)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed, result.retried) == (1, 0, 0)
        refused, general = h.server.calls_for("sendPhoto", forum)[-2:]
        assert not refused.ok and refused.params["message_thread_id"] == topic
        assert general.ok and "message_thread_id" not in general.params
        assert h.photos(forum)[-1].message_thread_id is None
        assert stored_chat(demo_db, forum).push_thread_id is None
        assert deliveries.delivery_counts(demo_db, earlier) == {DeliveryStatus.SENT: 1}


async def test_watch_list_rides_under_the_daily_push(demo_db: Engine, shared_reports: ReportService) -> None:
    """/watch CODE or name adds a security to the chat's list (/watch alone shows it, /unwatch takes
    one off); in a group only admins change it; the daily push carries the list's lines under the
    summary's caption, in the chat's language, the chart still uploaded once."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        code = sample_stock(demo_db)
        name = expected(shared_reports, "stock", code=code).data["name"]
        await h.write(ZH_USER, ZH_USER, "/watch")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.watch_empty")
        await h.write(ZH_USER, ZH_USER, f"/watch {code}.SH" if code.startswith("6") else f"/watch {code}.SZ")
        assert h.texts(ZH_USER)[-1] == (t("zh", "bot.watch_added", name=name, code=code) + "\n"
                                        + t("zh", "bot.watch_subscribe"))  # not subscribed yet
        await h.write(ZH_USER, ZH_USER, "/watch 600519")
        await h.write(ZH_USER, ZH_USER, f"/watch {name}")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.watch_already", name=name, code=code)
        await h.write(ZH_USER, ZH_USER, "/watch 没有这只")
        assert h.texts(ZH_USER)[-1].startswith("没有找到代码或名称为 “没有这只” 的证券")
        # a code with no margin detail is refused as /stock refuses it: it takes no place in the list
        await h.write(ZH_USER, ZH_USER, "/watch 999999")
        assert h.texts(ZH_USER)[-1] == t("zh", "error.unknown_code", code="999999")
        # full-width digits (a Chinese keyboard's full-width mode) are the same code
        wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code)
        await h.write(ZH_USER, ZH_USER, f"/watch {wide}")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.watch_already", name=name, code=code)
        await h.write(ZH_USER, ZH_USER, f"/stock {wide}")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "stock", code=code).caption
        await h.write(ZH_USER, ZH_USER, "/watch")
        lines = shared_reports.watch_text([code, "600519"], on=None, lang="zh")
        assert h.texts(ZH_USER)[-1] == f"{lines}\n{t('zh', 'bot.watch_hint')}"
        assert f"（{code}）融资余额" in lines and "（600519）融资余额" in lines
        await h.write(ZH_USER, ZH_USER, "/unwatch 600519")
        await h.write(ZH_USER, ZH_USER, "/unwatch 600519")
        assert h.texts(ZH_USER)[-2:] == [
            t("zh", "bot.unwatched", name=expected(shared_reports, "stock", code="600519").data["name"], code="600519"),
            t("zh", "bot.not_watched", code="600519")]
        await h.write(GROUP, MEMBER, f"/watch {code}")  # a member may not change the group's list
        assert h.texts(GROUP)[-1] == t("zh", "bot.admins_only_watch")
        await h.write(GROUP, ADMIN, "/subscribe")
        await h.write(EN_USER, EN_USER, "/subscribe")
        await h.write(EN_USER, EN_USER, "/watch 600519")
        await h.write(ZH_USER, ZH_USER, "/subscribe")

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed) == (3, 0)
        summary = {lang: expected(shared_reports, "summary", lang=lang, on=DATA_DATE) for lang in ("zh", "en")}
        # under the caption without the date the summary names already
        zh_lines = shared_reports.watch_text([code], on=DATA_DATE, lang="zh", dated=False)
        en_lines = shared_reports.watch_text(["600519"], on=DATA_DATE, lang="en", dated=False)
        assert zh_lines.splitlines()[0] == "<b>⭐ 关注</b>" and en_lines.splitlines()[0] == "<b>⭐ Watching</b>"
        assert h.photos(ZH_USER)[-1].caption == f"{summary['zh'].caption}\n\n{zh_lines}"
        assert h.photos(EN_USER)[-1].caption == f"{summary['en'].caption}\n\n{en_lines}"
        assert h.photos(GROUP)[-1].caption == summary["zh"].caption  # the group follows none
        assert h.server.uploads == 1 + 2  # the /stock chart; one summary chart per language, whatever the captions


async def test_a_long_watch_list_comes_whole_right_after_the_push(demo_db: Engine,
                                                                  shared_reports: ReportService) -> None:
    """Ten followed securities do not fit under the summary's caption: the caption goes alone and the
    whole list follows in a message of its own; nothing is left out."""
    codes = subscribed_with_ten_watches(demo_db)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 1
        summary = expected(shared_reports, "summary", lang="en", on=DATA_DATE)
        lines = shared_reports.watch_text(codes, on=DATA_DATE, lang="en")  # dated: a message of its own
        assert lines.splitlines()[0] == f"<b>⭐ Watching</b> · data date {DATA_DATE.isoformat()}"
        chart, apart = h.bot_messages(EN_USER)
        assert chart.caption == summary.caption and apart.text is not None
        assert apart.plain_text() == to_plain(lines) and len(lines.splitlines()) == 1 + len(codes)
        assert all(f"({code})" in apart.text for code in codes)


QUICK_RETRIES = (0.1, 0.2, 0.3, 0.4)
PUSH_START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # where the push's clock stands still


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after 0.1-0.4 s instead of 30 s to 30 min (a push waits only for retries due within
    90 s): the same backoff, shorter."""
    import bot.push

    monkeypatch.setattr(bot.push, "RETRY_DELAYS", QUICK_RETRIES)


def retry_waits(delays: tuple[float, ...]) -> list[float]:
    """What the push sleeps before each retry on a clock that stands still between its sleeps: the
    retry's backoff, and the 0.05 s more bot.push adds so that it wakes with the retry due."""
    return pytest.approx([delay + 0.05 for delay in delays])  # type: ignore[no-any-return]


async def test_daily_push_faults(demo_db: Engine, shared_reports: ReportService, quick_retries: None,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocked, limited, flaky, broken, fine, dropped = 2001, 2002, 2003, 2004, 2005, 2006
    old_group, new_group, deleted, muted = -4002, -1004002, -4003, -4004
    privates = [blocked, limited, flaky, broken, fine, dropped]
    subscribe_directly(demo_db, [*privates, old_group, deleted, muted],
                       lambda cid: "en" if cid in (limited, broken) else "zh")
    limiter, push = limiter_sleeps(monkeypatch), push_sleeps(monkeypatch, PUSH_START)
    async with running(demo_db, shared_reports) as h:
        s = h.server
        for cid in privates:
            s.add_chat(cid)
        s.add_chat(old_group, "group", title="old group", admins=[ADMIN])
        s.block_chat(blocked)
        s.fail_next("sendPhoto", 429, retry_after=1, chat_id=limited)
        s.fail_next("sendPhoto", 400, migrate_to_chat_id=new_group, chat_id=old_group)
        s.fail_next("sendPhoto", 502, description="Bad Gateway", chat_id=flaky, times=MAX_ATTEMPTS - 1)
        s.fail_next("sendPhoto", 500, chat_id=broken, times=100)
        s.fail_next("sendPhoto", 0, chat_id=dropped)  # the connection dies with the request sent
        for group, refusal in ((deleted, "Bad Request: chat not found"),
                               (muted, "Bad Request: have no rights to send a message")):
            s.add_chat(group, "supergroup", title="gone", admins=[ADMIN])
            s.fail_next("sendPhoto", 400, description=refusal, chat_id=group, times=100)

        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None
        assert (result.sent, result.failed, result.deactivated, result.migrated, result.unconfirmed) == (4, 3, 2, 1, 1)
        rows = delivery_rows(demo_db)

        # blocked (403): deactivated, nothing sent, the others still served
        assert h.photos(blocked) == [] and rows[blocked].status == DeliveryStatus.FAILED
        assert rows[blocked].error == "forbidden: Forbidden: bot was blocked by the user"
        assert stored_chat(demo_db, blocked).active is False
        assert len(h.photos(fine)) == 1 and rows[fine].status == DeliveryStatus.SENT and rows[fine].attempts == 1
        # 429 retry_after=1: the rate limiter waited retry_after (and its 0.1 s), then exactly one message
        assert [c.status for c in s.calls_for("sendPhoto", limited)] == [429, 200]
        assert limiter.delays == [pytest.approx(1.1)]
        assert len(h.photos(limited)) == 1 and rows[limited].status == DeliveryStatus.SENT
        # migrated during the push: the subscription and the delivery moved to the supergroup
        assert h.photos(old_group) == [] and len(h.photos(new_group)) == 1
        assert rows[new_group].status == DeliveryStatus.SENT and old_group not in rows
        assert stored_chat(demo_db, new_group).subscribed is True
        assert stored_chat(demo_db, old_group).subscribed is False
        # 5xx four times then fine: retried after growing delays, exactly one message
        flaky_calls = s.calls_for("sendPhoto", flaky)
        assert [c.status for c in flaky_calls] == [502] * (MAX_ATTEMPTS - 1) + [200]
        assert push.delays == retry_waits(QUICK_RETRIES)  # each retry after its backoff (flaky and broken in step)
        assert len(h.photos(flaky)) == 1 and rows[flaky].status == DeliveryStatus.SENT
        assert rows[flaky].attempts == MAX_ATTEMPTS
        # 5xx every time: bounded retries, then recorded as failed
        assert [c.status for c in s.calls_for("sendPhoto", broken)] == [500] * MAX_ATTEMPTS
        assert h.photos(broken) == [] and rows[broken].status == DeliveryStatus.FAILED
        assert rows[broken].attempts == MAX_ATTEMPTS and "Internal Server Error" in rows[broken].error
        assert stored_chat(demo_db, broken).active is True  # a server error is not a block
        # no answer to a request that went out: it may have arrived, so it is recorded and never repeated
        assert len(s.calls_for("sendPhoto", dropped)) == 1
        assert rows[dropped].status == DeliveryStatus.UNCONFIRMED and "RemoteProtocolError" in rows[dropped].error
        # refusals that retrying cannot change: one attempt, failed; a deleted chat is deactivated, a
        # group that muted the bot stays (its admins may give the rights back)
        for group, active in ((deleted, False), (muted, True)):
            assert len(s.calls_for("sendPhoto", group)) == 1 and rows[group].status == DeliveryStatus.FAILED
            assert rows[group].attempts == 1 and stored_chat(demo_db, group).active is active
        assert s.uploads == 2

        # a later run sends nothing more: failed stays failed, sent stays sent
        s.clear_faults()
        s.unblock_chat(blocked)
        await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert sum(len(h.photos(cid)) for cid in [*privates, new_group]) == 4
        assert len(s.calls_for("sendPhoto", dropped)) == 1


async def test_an_outage_during_the_push_delays_it_and_loses_no_one(demo_db: Engine, shared_reports: ReportService,
                                                                      quick_retries: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Telegram answers 502 to every photo for a while: each chat waits out its backoff and gets
    the summary once when the service is back; none is given up after a few quick failures."""
    ids = list(range(2101, 2113))
    subscribe_directly(demo_db, ids)
    push = push_sleeps(monkeypatch, PUSH_START)
    async with running(demo_db, shared_reports, push_rate=1000) as h:  # 48 sends: the rate is not under test
        for cid in ids:
            h.server.add_chat(cid)
        h.server.fail_next("sendPhoto", 502, description="Bad Gateway", times=3 * len(ids))
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.failed, result.retried) == (len(ids), 0, 3 * len(ids))
        assert {cid: len(h.photos(cid)) for cid in ids} == dict.fromkeys(ids, 1)
        assert {r.attempts for r in delivery_rows(demo_db).values()} == {4}
        assert push.delays == retry_waits(QUICK_RETRIES[:3])  # three outages of every chat at once, waited out


async def test_a_push_answer_later_than_the_timeout_is_not_sent_twice(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Telegram takes longer than the client waits: the photo is in the chat but the bot never hears
    so. It is recorded as unconfirmed and never sent again, by this push or a later one."""
    import bot.push

    monkeypatch.setattr(bot.push, "PUSH_READ_TIMEOUT", 0.1)
    chat = 2201
    subscribe_directly(demo_db, [chat])
    async with running(demo_db, shared_reports) as h:
        h.server.add_chat(chat)
        h.server.hold_answers("sendPhoto")  # answered once the client has given up waiting
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.unconfirmed) == (0, 1)
        assert h.server.held("sendPhoto") == 1 and h.photos(chat) == []
        h.server.release_answers("sendPhoto")
        await h.until(lambda: len(h.photos(chat)) == 1)  # the stand-in delivered it after all
        await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert len(h.server.calls_for("sendPhoto", chat)) == 1 and len(h.photos(chat)) == 1
        row = delivery_rows(demo_db)[chat]
        assert row.status == DeliveryStatus.UNCONFIRMED and "TimedOut" in row.error


async def test_a_stopping_bot_starts_no_push(engine: Engine, shared_reports: ReportService) -> None:
    """A tick that reaches the push after the stop began (the job queue stops after the push does)
    plans and sends nothing: the next start does it."""
    subscribe_directly(engine, [3201, 3202], lambda cid: "zh")
    async with running(engine, shared_reports) as h:
        for cid in (3201, 3202):
            h.server.add_chat(cid)
        h.app.bot_data["stopping"] = True  # as MarginApplication.stop sets it first
        assert await push_now(h.app, DATA_DATE) is None  # type: ignore[arg-type]
        assert deliveries.delivery_counts(engine, DATA_DATE) == {} and h.server.calls_for("sendPhoto") == []
        await h.stop_bot()
        await h.start_bot()  # a start clears it
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 2


async def test_stopping_the_bot_in_the_middle_of_a_push(engine: Engine, shared_reports: ReportService) -> None:
    """The bot is stopped (as on SIGTERM: Application.stop) while its scheduled job is pushing; a new
    bot on the same database completes the push.

    120 chats, 16 concurrent senders: the stand-in holds the answers to sendPhoto until all 16 sends
    are in flight and the stop has begun. PTB's stop waits for running jobs; the bot's stops the push
    first: the sends in flight finish and are recorded, the claims not started are handed back, and
    no send starts after the stop.
    """
    ids = list(range(3001, 3121))
    subscribe_directly(engine, ids, lambda cid: "en" if cid % 3 == 0 else "zh")
    async with running(engine, shared_reports, push_rate=1000) as h:  # 120 photos: the rate is not under test
        await held_push(h, ids)
        first = h.app
        assert first.job_queue is not None

        async def push_job(context: object) -> None:
            await push_now(first, DATA_DATE)  # type: ignore[arg-type]

        first.job_queue.run_once(push_job, 0, name="push")
        await h.until(lambda: h.server.held("sendPhoto") == SENDERS)  # every sender busy with one chat
        [push] = first.bot_data["push_tasks"]
        stopping = asyncio.create_task(h.stop_bot())
        await h.until(lambda: push.cancelling() > 0)  # the stop has told the push to end
        h.server.release_answers("sendPhoto")  # the sends in flight are answered
        await asyncio.wait_for(stopping, 10)
        done_before = sum(1 for cid in ids if h.photos(cid))
        assert done_before == SENDERS
        assert sum(len(h.server.calls_for("sendPhoto", cid)) for cid in ids) == SENDERS  # none started later
        states = deliveries.delivery_counts(engine, DATA_DATE)
        # nothing left in limbo: every send started was recorded, the rest is pending again
        assert states == {DeliveryStatus.SENT: SENDERS, DeliveryStatus.PENDING: len(ids) - SENDERS}

        await h.start_bot()  # a new Application (and Pusher) on the same database and server
        assert h.app is not first
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == len(ids) - SENDERS
        assert {cid: len(h.photos(cid)) for cid in ids} == dict.fromkeys(ids, 1)
        assert deliveries.delivery_counts(engine, DATA_DATE) == {DeliveryStatus.SENT: len(ids)}
        assert all(r.attempts == 1 for r in delivery_rows(engine).values())
        assert h.server.uploads == 2  # the two summaries, before the push: every send went by file_id


async def test_cancelling_a_push_hands_back_what_it_holds(engine: Engine, shared_reports: ReportService) -> None:
    """The push task itself is cancelled (a worker's task killed) with 16 sends in flight: the same
    guarantees."""
    ids = list(range(3201, 3241))
    subscribe_directly(engine, ids)
    async with running(engine, shared_reports, push_rate=1000) as h:  # 40 photos: the rate is not under test
        await held_push(h, ids)
        task = asyncio.create_task(push_now(h.app, DATA_DATE))  # type: ignore[arg-type]
        await h.until(lambda: h.server.held("sendPhoto") == SENDERS)
        task.cancel()  # cancels the push it awaits at once: no send starts after this
        h.server.release_answers("sendPhoto")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        done_before = sum(1 for cid in ids if h.photos(cid))
        assert done_before == SENDERS
        assert sum(len(h.server.calls_for("sendPhoto", cid)) for cid in ids) == SENDERS
        assert deliveries.delivery_counts(engine, DATA_DATE) == {DeliveryStatus.SENT: SENDERS,
                                                                 DeliveryStatus.PENDING: len(ids) - SENDERS}
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == len(ids) - SENDERS
        assert {cid: len(h.photos(cid)) for cid in ids} == dict.fromkeys(ids, 1)


# ------------------------------------------------------------------------------------------------
# Abuse and accidents: floods, HTML in arguments, an unexpected error
# ------------------------------------------------------------------------------------------------


async def test_flood_is_throttled_with_one_warning(demo_db: Engine, shared_reports: ReportService) -> None:
    limit = 5
    async with running(demo_db, shared_reports, commands_per_minute=limit) as h:
        add_people(h)
        await h.write_many(ZH_USER, ZH_USER, ["/ratio"] * 30)
        reports = h.photos(ZH_USER)
        assert len(reports) == limit  # a fresh chat gets its whole allowance
        warnings = [text_ for text_ in h.texts(ZH_USER) if text_.startswith("请求太频繁了")]
        assert len(warnings) == 1 and "秒后再试" in warnings[0]
        # every message of the chat is a report, its details, or the one warning
        assert len(h.bot_messages(ZH_USER)) == 2 * limit + 1
        # another chat is not affected
        await h.write(EN_USER, EN_USER, "/ratio")
        assert len(h.photos(EN_USER)) == 1

        # inline lookups of securities not rendered yet (a render and an upload each) draw on the same
        # allowance
        code = sample_stock(demo_db)
        days = ("2026-11-13", "2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19")
        answers = [h.server.inline_answers[await h.inline(EN_USER, f"{code} {day}")] for day in days]
        assert [len(a["results"]) for a in answers] == [1] * (limit - 1) + [0]
        assert answers[-1]["cache_time"] == 0 and answers[-1]["is_personal"] is True
        # the market charts stay on offer (rendered once per data version, not per asker)
        assert len(h.server.inline_answers[await h.inline(EN_USER, "ratio")]["results"]) == 1


async def test_html_in_arguments_is_escaped(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        assert h.server.strict_parse  # malformed HTML would be refused with 400, like Telegram does
        await h.write(ZH_USER, ZH_USER, "/stock <b>x</b>")
        await h.write(ZH_USER, ZH_USER, "/ratio <script>")
        await h.write(EN_USER, EN_USER, "/stock a&b<i>")
        await h.write(EN_USER, EN_USER, "/ratio 2024-01-01<b>")
        sent = h.server.calls_for("sendMessage", ZH_USER) + h.server.calls_for("sendMessage", EN_USER)
        assert len(sent) == 4 and all(c.ok for c in sent)
        stock, ratio, english, dated = (c.params["text"] for c in sent)
        assert dated == '“2024-01-01&lt;b&gt;” is not a date; use YYYY-MM-DD, e.g. 2024-09-30.'
        assert "没有找到代码或名称为 “&lt;b&gt;x&lt;/b&gt;” 的证券" in stock and "<b>" not in stock
        assert "“&lt;script&gt;”" in ratio and "<script>" not in ratio
        assert "a&amp;b&lt;i&gt;" in english
        # what the user sees is the text they typed
        assert "没有找到代码或名称为 “<b>x</b>” 的证券" in h.server.sent_messages(ZH_USER)[0].plain_text()  # type: ignore[operator]


async def test_unexpected_error_apology_trace_and_admin_report(
    demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch, debug_logs: RecordAll
) -> None:
    original = ReportService.render
    failures: list[str] = []

    def render_failing_once(self: ReportService, *args: object, **kwargs: object) -> RenderedReport:
        if not failures:
            # an error whose text carries the token, as an HTTP library's error may carry a request URL
            failures.append("raised")
            raise RuntimeError(f"chart backend exploded at https://api.telegram.org/bot{TOKEN}/sendPhoto")
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    async with running(demo_db, shared_reports) as h:
        add_people(h)
        monkeypatch.setattr(ReportService, "render", render_failing_once)
        await h.write(EN_USER, EN_USER, "/balance")
        assert failures == ["raised"]
        assert h.texts(EN_USER) == [t("en", "bot.error")] and h.photos(EN_USER) == []
        [report] = h.server.sent_messages(ADMIN_CHAT)
        assert report.text is not None and "marginbot error" in report.text
        assert "RuntimeError: chart backend exploded" in report.text and "Traceback" in report.text
        assert SECRET not in report.text and "&lt;token&gt;" in report.text

        # the log has the traceback (and not the token: checked for every test by debug_logs)
        traced = [r for r in debug_logs.records if r.name == "bot.handlers.errors" and r.levelno == logging.ERROR]
        assert len(traced) == 1, "the error was not logged once"
        logged = [text_ for text_ in debug_logs.texts if "unhandled error" in text_]
        assert any("Traceback" in text_ and "RuntimeError" in text_ for text_ in logged)

        # the next request works (the error was once), and a Chinese user gets a Chinese apology
        await h.write(EN_USER, EN_USER, "/balance")
        assert h.photos(EN_USER)[-1].caption == expected(shared_reports, "balance", lang="en").caption
        failures.clear()
        await h.write(ZH_USER, ZH_USER, "/ratio")
        assert h.texts(ZH_USER) == [t("zh", "bot.error")]
        # the same failure (type and place) again: logged, not reported to the admins again within 10 minutes
        assert len(h.server.sent_messages(ADMIN_CHAT)) == 1
        assert any("already reported to the admins" in text_ for text_ in debug_logs.texts)

    # nothing the bot sent, and no request it made, carries the token
    for call in h.server.calls:
        assert SECRET not in repr(call.params) and SECRET not in repr(call.result)


async def test_a_file_id_telegram_refuses_is_replaced_by_a_new_upload(demo_db: Engine,
                                                                       shared_reports: ReportService) -> None:
    """File ids are stored per bot (another token on the same database uploads its own); one that
    Telegram refuses ("wrong file identifier") is forgotten and the chart uploaded again, once."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratio")
        [first] = h.photos(ZH_USER)
        services = services_of(h.app)
        key = expected(shared_reports, "ratio").chart_key
        assert chats.get_file_id(demo_db, f"{services.bot_id}/{key}") == first.photo_file_id
        assert chats.get_file_id(demo_db, key) is None and services.bot_id != 0
        services.file_ids[key] = "AgACAgQAAxkBAAI-not-a-file-of-this-bot"
        await h.write(ZH_USER, ZH_USER, "/ratio")
        refused, resent = h.server.calls_for("sendPhoto", ZH_USER)[1:]
        assert refused.status == 400 and resent.ok and resent.files  # uploaded again
        new_id = h.photos(ZH_USER)[-1].photo_file_id
        assert chats.get_file_id(demo_db, f"{services.bot_id}/{key}") == new_id != first.photo_file_id
        assert t("zh", "bot.error") not in h.texts(ZH_USER)


async def test_failures_under_buttons_and_inline_queries_are_answered_and_a_blocked_chat_is_deactivated(
    demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error while redrawing a window answers the button (it stops spinning) and
    apologises; one in an inline query answers it empty. A user who blocked the bot while it was
    answering is no bug: the chat is deactivated, the admins are not bothered."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratio")
        [chart] = h.photos(ZH_USER)

        def failing(self: ReportService, *args: object, **kwargs: object) -> RenderedReport:
            raise RuntimeError("renderer broke")

        monkeypatch.setattr(ReportService, "render", failing)
        query = await h.press(ZH_USER, ZH_USER, chart.message_id, "w:ratio:60:")
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.error")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.error")
        inline = await h.inline(EN_USER, "ratio")
        await h.until(lambda: inline in h.server.inline_answers)
        assert json_list(h.server.inline_answers[inline]["results"]) == []
        assert h.server.inline_answers[inline]["button"]["text"] == t("en", "bot.inline_error")  # not silence
        # a button under a channel's post: the apology goes to the presser alone, not to the channel
        channel = -1007003
        h.server.add_chat(channel, "channel", title="频道", admins=[ADMIN], members=[MEMBER],
                          bot_status="administrator")
        monkeypatch.undo()
        await h.inject(h.server.inject_channel_post, channel, "/subscribe")
        await h.inject(h.server.inject_channel_post, channel, "/settings")
        menu = h.bot_messages(channel)[-1]
        monkeypatch.setattr(ReportService, "render", failing)
        monkeypatch.setattr(chats, "set_language", failing)
        query = await h.press(channel, ADMIN, menu.message_id, "s:lang:en")
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.error")
        assert h.server.callback_answers[query]["show_alert"] is True
        assert t("zh", "bot.error") not in h.texts(channel)
        monkeypatch.undo()

        reported = len(h.server.sent_messages(ADMIN_CHAT))
        h.server.block_chat(EN_USER)
        await h.write(EN_USER, EN_USER, "/balance")
        await h.until(lambda: not stored_chat(demo_db, EN_USER).active)
        assert stored_chat(demo_db, EN_USER).deactivated_reason == "forbidden: Forbidden: bot was blocked by the user"
        assert len(h.server.sent_messages(ADMIN_CHAT)) == reported


# ------------------------------------------------------------------------------------------------
# The daily pipeline tick: cache warming, and no demo push from a live bot
# ------------------------------------------------------------------------------------------------


async def test_pipeline_tick_warms_reports_once_per_data_version(demo_db: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import storage.ingest
    from bot.pipeline import WARM_REPORTS, warm_reports

    ingests: list[object] = []

    def offline_ingest(engine: Engine, settings: object, **kwargs: object) -> SimpleNamespace:
        ingests.append(kwargs)  # the exchanges are unreachable: the demo data stay
        return SimpleNamespace(summary=lambda: "offline: nothing fetched")

    monkeypatch.setattr(storage.ingest, "run_ingest", offline_ingest)

    async with running(demo_db, ReportService(demo_db)) as h:
        assert h.app is not None
        services = h.services
        assert await warm_reports(h.app) is True
        rendered = services.reports.stats["misses"]
        assert rendered == len(WARM_REPORTS) * 2  # every report, zh and en
        assert await warm_reports(h.app) is False  # same data version: nothing to do
        with session_scope(demo_db) as session:
            bump_data_version(session)
        # a render that fails unexpectedly: logged, and the warm-up of that version tried again later
        real_render = services.reports.render

        def failing(*args: object, **kwargs: object) -> object:
            raise RuntimeError("disk full")

        monkeypatch.setattr(services.reports, "render", failing)
        assert await warm_reports(h.app) is False
        monkeypatch.setattr(services.reports, "render", real_render)
        assert await warm_reports(h.app) is True
        # A live bot (this one has a token) never pushes demo data, even when subscribers are due.
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/subscribe")
        await tick(h.app)
        assert len(ingests) == 1  # it tried to replace the demo data with real data
        assert h.photos(ZH_USER) == []
        assert deliveries.delivery_counts(demo_db, DATA_DATE) == {}


async def test_push_waits_for_the_whole_market_and_admins_hear_what_is_missing(
    demo_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day T's ingestion is complete (margin data, sectors) but SZSE's turnover is not in: the ratio
    would be double, so the push waits; at the cut-off the admins are told what is missing, once.
    When the turnover lands, the push of T goes out."""
    from datetime import datetime as real_datetime
    from types import SimpleNamespace

    import bot.pipeline
    import bot.push
    import storage.ingest
    from marginbot.settings import TIMEZONE
    from storage.database import set_meta
    from storage.ingest import required_steps

    new_day, previous = date(2026, 11, 23), DATA_DATE
    ingests: list[object] = []
    monkeypatch.setattr(storage.ingest, "run_ingest",
                        lambda *a, **k: ingests.append(k) or SimpleNamespace(summary=lambda: "offline"))

    class Tuesday(real_datetime):  # 2026-11-24, after the 10:30 cut-off, Beijing time
        @classmethod
        def now(cls, tz: object = None) -> real_datetime:  # type: ignore[override]
            return real_datetime(2026, 11, 24, 10, 45, tzinfo=TIMEZONE)

    monkeypatch.setattr(bot.pipeline, "datetime", Tuesday)
    monkeypatch.setattr(bot.push, "datetime", Tuesday)

    def copy_day(table: type, session: Session) -> None:
        columns = [c.name for c in table.__table__.columns if c.name not in ("id", "trade_date")]  # type: ignore[attr-defined]
        rows = session.execute(select(table).where(table.trade_date == previous)).scalars().all()  # type: ignore[attr-defined]
        session.add_all(table(trade_date=new_day, **{c: getattr(r, c) for c in columns}) for r in rows)

    with session_scope(demo_db) as session:
        set_meta(session, "demo", "false")  # a live bot never pushes demo data: these stand for real data
        # the calendar reaches today (a calendar that ends before it has run out: another warning)
        session.add_all([models.TradingDay(trade_date=new_day), models.TradingDay(trade_date=date(2026, 11, 24))])
        for table in (models.MarginSummary, models.SectorDaily):
            copy_day(table, session)
        session.add_all(models.IngestStatus(trade_date=new_day, source=s, status="done")
                        for s in required_steps(new_day))
        session.add(models.Turnover(trade_date=new_day, exchange="SSE", amount=600e9, a_share_only=False))
        bump_data_version(session)

    # the second admin has talked to the bot in English: the warning comes in their language
    async with running(demo_db, ReportService(demo_db), admin_chat_ids=[ADMIN_CHAT, EN_USER]) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/subscribe")
        await h.write(EN_USER, EN_USER, "/start")
        await tick(h.app)  # type: ignore[arg-type]
        await tick(h.app)  # type: ignore[arg-type]
        assert h.texts(ADMIN_CHAT) == [
            "⚠️ 2026-11-23 的两融数据截至 10:30 仍未齐全（缺：深市成交额），本次推送暂缓。"]
        assert h.texts(EN_USER)[-1] == (
            "⚠️ Margin data for 2026-11-23 still incomplete at 10:30 (missing: Shenzhen turnover);"
            " today's push is on hold.")
        # it tried to fetch the rest (once: the second tick is within ingest_retry_minutes); nothing was pushed
        assert ingests == [{"progress": False, "lending": False}] and h.photos(ZH_USER) == []
        assert deliveries.delivery_counts(demo_db, new_day) == {}
        # the reports, too, stay on the last whole day
        await h.write(ZH_USER, ZH_USER, "/ratio")
        assert "数据日期 2026-11-20" in h.photos(ZH_USER)[-1].caption  # type: ignore[operator]

        with session_scope(demo_db) as session:
            session.add(models.Turnover(trade_date=new_day, exchange="SZSE", amount=500e9, a_share_only=False))
            bump_data_version(session)
        await tick(h.app)  # type: ignore[arg-type]
        pushed = h.photos(ZH_USER)[-1]
        assert pushed.caption is not None and "数据日期 2026-11-23" in pushed.caption
        assert pushed.caption == expected(h.services.reports, "summary", on=new_day).caption
        assert deliveries.delivery_counts(demo_db, new_day) == {DeliveryStatus.SENT: 1}
        assert len(h.texts(ADMIN_CHAT)) == 1


async def test_the_scheduled_push_reaches_each_chat_at_its_own_time_once(
    demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The minute job on Monday morning (Beijing): a chat on the default time gets Friday's summary
    at once; one that chose 09:00 and one that chose 12:30 get nothing before their time, then
    theirs, and no tick sends anything twice."""

    from marginbot.settings import TIMEZONE

    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 23, 8, 0, tzinfo=TIMEZONE))
    default, nine, half_past_twelve = 2301, 2302, 2303
    subscribe_directly(demo_db, [default, nine, half_past_twelve])
    chats.set_push_time(demo_db, nine, time(9, 0))
    chats.set_push_time(demo_db, half_past_twelve, time(12, 30))
    async with running(demo_db, shared_reports) as h:
        for cid in (default, nine, half_past_twelve):
            h.server.add_chat(cid)

        async def tick_at(hour: int, minute: int) -> dict[int, int]:
            clock["now"] = datetime(2026, 11, 23, hour, minute, tzinfo=TIMEZONE)
            await tick(h.app)  # type: ignore[arg-type]
            return {cid: len(h.photos(cid)) for cid in (default, nine, half_past_twelve)}

        assert await tick_at(8, 0) == {default: 1, nine: 0, half_past_twelve: 0}
        assert await tick_at(8, 59) == {default: 1, nine: 0, half_past_twelve: 0}
        assert await tick_at(9, 0) == {default: 1, nine: 1, half_past_twelve: 0}
        assert await tick_at(12, 29) == {default: 1, nine: 1, half_past_twelve: 0}
        assert await tick_at(12, 30) == {default: 1, nine: 1, half_past_twelve: 1}
        assert await tick_at(15, 0) == {default: 1, nine: 1, half_past_twelve: 1}
        assert h.photos(nine)[0].caption == expected(shared_reports, "summary", on=DATA_DATE).caption
        assert deliveries.delivery_counts(demo_db, DATA_DATE) == {DeliveryStatus.SENT: 3}



async def test_a_retry_due_after_midnight_is_still_sent(
    demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat on 23:50 whose send failed waits for its retry past midnight, when the next trade
    date is expected and not in yet: the retry still goes out; nothing new is planned for the old day
    (a chat that subscribed at 23:55 gets the next day's summary in the morning, not Friday's at night)."""

    import bot.pipeline
    import bot.push
    from marginbot.settings import TIMEZONE

    clock = live_clock(monkeypatch, demo_db, datetime(2026, 11, 23, 23, 50, tzinfo=TIMEZONE))
    monkeypatch.setattr(bot.push, "RETRY_DELAYS", (3600.0,) * 4)  # later than the push waits for
    late, newcomer = 2401, 2402
    subscribe_directly(demo_db, [late])
    chats.set_push_time(demo_db, late, time(23, 50))
    async with running(demo_db, shared_reports) as h:
        for cid in (late, newcomer):
            h.server.add_chat(cid)
        h.server.fail_next("sendPhoto", 502, description="Bad Gateway", chat_id=late)
        await tick(h.app)  # type: ignore[arg-type]
        assert h.photos(late) == [] and deliveries.delivery_counts(demo_db, DATA_DATE) == {DeliveryStatus.PENDING: 1}
        subscribe_directly(demo_db, [newcomer])
        with session_scope(demo_db) as session:
            session.add(models.TradingDay(trade_date=date(2026, 11, 23)))  # Monday traded; its data come Tuesday
            session.execute(update(models.Delivery).values(not_before=None))  # the retry falls due
        clock["now"] = datetime(2026, 11, 24, 0, 5, tzinfo=TIMEZONE)
        await tick(h.app)  # type: ignore[arg-type]
        assert len(h.photos(late)) == 1 and h.photos(newcomer) == []
        assert deliveries.delivery_counts(demo_db, DATA_DATE) == {DeliveryStatus.SENT: 1}
        await tick(h.app)  # type: ignore[arg-type]
        assert len(h.photos(late)) == 1 and deliveries.delivery_counts(demo_db, date(2026, 11, 23)) == {}


# --- floods, stale buttons, Telegram's own limits -------------------------------------------------------


async def test_a_group_flooding_cheap_commands_never_stalls_other_chats(demo_db: Engine,
                                                                         shared_reports: ReportService) -> None:
    """300 bad commands in a group: 20 answers (Telegram's per-group minute) and one "slow down";
    the rest is dropped before any handler, so a private /start is answered as usual."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        flood = h.inject_many(GROUP, MEMBER, ["/ratio x"] * 300)
        await h.until(lambda: not h.server.pending_updates())  # every update fetched by the bot
        await h.write(ZH_USER, ZH_USER, "/start")
        assert h.texts(ZH_USER) == [t("zh", "bot.start")]
        # every one of the 300 finished (answered or dropped): nothing is still on its way
        await h.all_handled(flood)
        texts = h.texts(GROUP)  # answered concurrently: the notice need not come last
        slow = t("zh", "bot.slow_down", seconds=60)
        bad_days = "天数 “x” 无效，请输入 1 到 2500 之间的整数，例如 /ratio 250。"
        assert len(texts) == GROUP_ANSWERS_PER_MINUTE + 1 == 21
        assert sorted(texts) == sorted([bad_days] * GROUP_ANSWERS_PER_MINUTE + [slow])
        assert len(h.bot_messages(GROUP)) == 21  # nothing but those texts


async def test_a_group_asking_many_reports_stays_within_its_minute(demo_db: Engine,
                                                                    shared_reports: ReportService) -> None:
    """Each report is two messages (chart, details): 15 report commands at once in a group get 10
    answers, 20 messages (Telegram's per-group minute), and one "slow down"; each details message
    quotes its own chart, however the answers interleave."""
    async with running(demo_db, shared_reports, commands_per_minute=100) as h:
        add_people(h)
        await h.write_many(GROUP, MEMBER, ["/balance", "/ratio 20", "/sectors"] * 5)  # all 15 finished
        sent = h.bot_messages(GROUP)
        slow = [m for m in sent if m.text == t("zh", "bot.slow_down", seconds=60)]
        charts = {m.message_id: m for m in sent if m.photo}
        details = [m for m in sent if not m.photo and m not in slow]
        assert (len(sent), len(slow), len(charts), len(details)) == (21, 1, 10, 10)
        assert sorted(d.reply_to_message_id for d in details) == sorted(charts)  # type: ignore[type-var]


async def test_a_private_chat_over_its_answer_budget_is_told_once(demo_db: Engine,
                                                                  shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write_many(EN_USER, EN_USER, ["/foo"] * 45)  # all 45 finished: answered or dropped
        texts = sorted(h.texts(EN_USER))  # answered concurrently: the notice need not come last
        assert len(texts) == PRIVATE_ANSWERS_PER_MINUTE + 1 == 41
        assert texts == sorted([t("en", "bot.unknown_command", command="/foo")] * PRIVATE_ANSWERS_PER_MINUTE
                               + [t("en", "bot.slow_down", seconds=60)])
        assert len(h.bot_messages(EN_USER)) == 41


async def test_plain_text_naming_a_security_costs_a_report_of_the_budget(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """A code typed alone in a private chat is answered with its report (two messages' worth of the
    budget, as /stock): 25 at once get 20 reports and one "slow down"."""
    async with running(demo_db, shared_reports, commands_per_minute=100) as h:
        add_people(h)
        await h.write_many(EN_USER, EN_USER, ["600519"] * 25)
        assert len(h.photos(EN_USER)) == PRIVATE_ANSWERS_PER_MINUTE // 2 == 20
        assert h.texts(EN_USER).count(t("en", "bot.slow_down", seconds=60)) == 1


async def test_settings_buttons_pressed_twice_forged_or_stale(demo_db: Engine, shared_reports: ReportService,
                                                              debug_logs: RecordAll) -> None:
    """The language already set, a second tap, forged data, a window button on the settings text and
    a button no handler knows: each answered (no spinning button), none an error or an apology."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/settings")
        menu = h.bot_messages(ZH_USER)[-1]
        answers = []
        for data in ("s:lang:zh", "s:lang:zh", "s:time:default", "s:lang", "s:", "w:ratio:20:", "x:y", "w"):
            query = await h.press(ZH_USER, ZH_USER, menu.message_id, data)
            answers.append(h.server.callback_answers[query].get("text"))
        # what is set is confirmed again; the rest only stops the button spinning
        set_again = [t("zh", "bot.settings_language")] * 2 + [t("zh", "bot.settings_time", push_time="00:00")]
        assert answers == [*set_again, None, None, None, None, None] and set_again[0] == "语言已切换为中文。"
        assert h.texts(ZH_USER) == [h.texts(ZH_USER)[0]]  # the menu alone: no apology
        assert h.server.sent_messages(ADMIN_CHAT) == []
        assert not [r for r in debug_logs.records if r.name == "bot.handlers.errors"]


async def test_a_member_may_not_change_a_groups_settings_or_watch_list(demo_db: Engine,
                                                                       shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, ADMIN, "/settings")
        menu = h.bot_messages(GROUP)[-1]
        query = await h.press(GROUP, MEMBER, menu.message_id, "s:lang:en")
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.admins_only_settings")
        assert stored_chat(h.engine, GROUP).language == "zh"


async def test_a_group_speaks_the_language_of_whoever_added_the_bot(demo_db: Engine,
                                                                    shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(-4002, "group", title="Margin club", members=[EN_USER], admins=[])
        h.server.inject_my_chat_member(-4002, "left", "member", from_user=EN_USER)
        await h.handled_by_bot(h._last_update_id())
        await h.write(-4002, EN_USER, "/help")
        assert h.texts(-4002) == [t("en", "bot.help", bot=BOT_USERNAME)]


async def test_status_in_a_group_is_another_bots_unless_addressed(demo_db: Engine,
                                                                  shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, MEMBER, "/status")
        assert h.texts(GROUP) == []
        await h.write(GROUP, MEMBER, f"/status@{BOT_USERNAME}")
        assert h.texts(GROUP) == [t("zh", "bot.unknown_command", command=f"/status@{BOT_USERNAME}")]


async def test_telegram_refusing_for_a_while_is_no_error(demo_db: Engine, shared_reports: ReportService,
                                                         debug_logs: RecordAll,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """429 on every attempt (the rate limiter's retries included): a warning in the log; no apology
    (it would meet the same limit) and no report to the admins."""
    limiter = limiter_sleeps(monkeypatch)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        # the rate limiter retries three times after retry_after (1 s): four 429s reach the handler
        h.server.fail_next("sendMessage", 429, retry_after=1, chat_id=EN_USER, times=4)
        await h.write(EN_USER, EN_USER, "/help")
        assert h.texts(EN_USER) == [] and h.server.sent_messages(ADMIN_CHAT) == []
        assert [c.status for c in h.server.calls_for("sendMessage")] == [429] * 4
        assert limiter.delays == [pytest.approx(1.1)] * 3  # retry_after and 0.1 s, before each retry
        assert any("Telegram could not take an answer now: Flood control exceeded. Retry in 1 seconds" in text_
                   for text_ in debug_logs.texts)
        h.server.clear_faults()
        await h.write(EN_USER, EN_USER, "/help")
        assert len(h.texts(EN_USER)) == 1


async def test_a_sticker_in_a_private_chat_gets_the_hint(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.inject_media(EN_USER, EN_USER, "sticker", {
            "file_id": "CAAC", "file_unique_id": "u1", "type": "regular", "width": 512, "height": 512,
            "is_animated": False, "is_video": False})
        await h.handled_by_bot(h._last_update_id())
        assert h.texts(EN_USER) == [t("en", "bot.plain_text")]


async def test_other_bots_commands_do_not_use_up_a_groups_allowance(demo_db: Engine,
                                                                    shared_reports: ReportService) -> None:
    """/roll (another bot's) and /ratio@otherbot, 30 of each, cost the group nothing: /help is answered."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write_many(GROUP, MEMBER, ["/roll", "/ratio@otherbot"] * 30)  # every one of them finished
        assert h.bot_messages(GROUP) == []
        await h.write(GROUP, MEMBER, "/help")
        assert h.texts(GROUP) == [t("zh", "bot.help", bot=BOT_USERNAME)]
        # the 21st command of this bot's within the minute is the one told to slow down
        for _ in range(19):
            await h.write(GROUP, MEMBER, "/help")
        await h.write(GROUP, MEMBER, "/help")
        assert h.texts(GROUP)[-1] == t("zh", "bot.slow_down", seconds=60) and len(h.texts(GROUP)) == 21

