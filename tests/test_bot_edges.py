"""Edge cases of the bot found by an audit, end to end as in test_bot_e2e: the real Application
against the stand-in Bot API server (sandbox/botapi/), with the demo data of 2026-11-20.

Membership (a muted bot removed; 403 in groups), the flood gate (choice buttons, deep links), words
that look like codes rather than dates, admin checks of messages sent on behalf of a chat, the
language of an inline error, a refused file_id on a window edit, a database failure after a photo
was accepted (no second push), and /status rendered off the event loop.
"""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from telegram.ext import AIORateLimiter

from bot.app import build_application
from bot.arguments import ReportArgs, looks_like_date, parse_inline_query, parse_report_args
from bot.handlers.inline import BUTTON_TEXT_LIMIT
from bot.push import push_now
from bot.services import GROUP_ANSWERS_PER_MINUTE, services_of
from reports.errors import ReportError
from reports.i18n import t
from reports.service import RenderedReport, ReportService
from storage import chats
from storage.models import DeliveryStatus
from tests.bot_fixtures import (
    ADMIN,
    ADMIN_CHAT,
    EN_USER,
    GROUP,
    MEMBER,
    ZH_USER,
    add_people,
    buttons,
    delivery_rows,
    expected,
    running,
    stored_chat,
)
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import stock_code as stock_code
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import BOT_USERNAME, DATA_DATE, GROUP_TIME_PERIOD, RecordAll, make_settings

# PTB warns when it builds RetryAfter from an int retry_after (its own deprecation, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


# ------------------------------------------------------------------------------------------------
# 1. Membership: a muted bot removed is gone; 403 in a group or channel unsubscribes
# ------------------------------------------------------------------------------------------------


async def test_a_muted_bot_removed_is_gone_and_a_plain_member_adding_it_back_does_not_resubscribe(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, ADMIN, "/subscribe")
        assert stored_chat(demo_db, GROUP).subscribed is True and chats.subscriber_count(demo_db) == 1
        # muted: still a member (restricted, is_member true): nothing changes
        await h.inject(h.server.inject_my_chat_member, GROUP, "member", "restricted", from_user=ADMIN)
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed) == (True, True)
        # then removed: Telegram keeps the restrictions, "restricted" with is_member false
        update = await h.inject(h.server.inject_my_chat_member, GROUP, "restricted", "restricted",
                                from_user=ADMIN, is_member=False)
        assert update["new_chat_member"]["is_member"] is False
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed) == (False, False)
        assert group.deactivated_reason == "bot removed while restricted"
        assert chats.subscriber_count(demo_db) == 0
        # a plain member adds it back: active, but the push waits for an admin's /subscribe
        await h.inject(h.server.inject_my_chat_member, GROUP, "left", "member", from_user=MEMBER)
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed) == (True, False)
        assert chats.subscriber_count(demo_db) == 0
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and result.sent == 0 and h.photos(GROUP) == []


async def test_a_403_unsubscribes_a_group_but_keeps_a_users_subscription(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """The push meeting 403 in a group (removed without the bot seeing the update) ends its
    subscription, as the membership update does; a user who blocked the bot keeps theirs. The same
    for a 403 met while answering a command (the error handler)."""
    pushed_group, user = -4005, 2007
    for cid, kind in ((pushed_group, "group"), (user, "private")):
        chats.ensure_chat(demo_db, cid, kind, f"chat {cid}", "zh")
        assert chats.set_subscribed(demo_db, cid, True)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(pushed_group, "group", title="gone", admins=[ADMIN])
        h.server.add_chat(user)
        h.server.block_chat(pushed_group)
        h.server.block_chat(user)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None and (result.sent, result.deactivated) == (0, 2)
        group, blocked = stored_chat(demo_db, pushed_group), stored_chat(demo_db, user)
        assert (group.active, group.subscribed) == (False, False)
        assert (blocked.active, blocked.subscribed) == (False, True)
        assert group.deactivated_reason == "forbidden: Forbidden: bot was kicked from the group chat"
        assert blocked.deactivated_reason == "forbidden: Forbidden: bot was blocked by the user"

        # answering a member's command in a subscribed group: 403 (the bot was kicked meanwhile)
        await h.write(GROUP, ADMIN, "/subscribe")
        h.server.fail_next("sendPhoto", 403, description="Forbidden: bot was kicked from the group chat",
                           chat_id=GROUP)
        await h.write(GROUP, MEMBER, "/ratio")
        group = stored_chat(demo_db, GROUP)
        assert (group.active, group.subscribed) == (False, False)
        assert group.deactivated_reason == "forbidden: Forbidden: bot was kicked from the group chat"
        assert h.server.sent_messages(ADMIN_CHAT) == []  # the group's doing, not a bug


# ------------------------------------------------------------------------------------------------
# 2. The flood gate: choice buttons and deep links send reports, and are charged for them
# ------------------------------------------------------------------------------------------------


async def test_choice_buttons_and_commands_in_a_group_stay_within_its_minute(
        demo_db: Engine, shared_reports: ReportService, stock_code: str) -> None:
    """A name matching several securities answers with choice buttons; each press sends a report
    (charged two: chart and details). 1 command (charged 2) + 9 presses fill the group's 20; the 10th
    press is told to slow down (once), the 11th and a later command are dropped."""
    name = expected(shared_reports, "stock", code=stock_code).data["name"]
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(GROUP, MEMBER, f"/stock {name[:-1]}")
        choice = h.bot_messages(GROUP)[-1]
        assert choice.text is not None and re.match(f"名称含 “{name[:-1]}” 的证券有 \\d+ 只：", choice.text)
        picks = [data for _, data in buttons(choice.reply_markup)]
        assert len(picks) == 8 and all(data.startswith("p:stock:60:") for data in picks)
        presses = [picks[i % len(picks)] for i in range(11)]
        queries = [await h.press(GROUP, MEMBER, choice.message_id, data) for data in presses]
        await h.write(GROUP, MEMBER, "/help")

        sent = h.bot_messages(GROUP)
        charts = [m for m in sent if m.photo]
        assert len(charts) == 9
        assert [m.caption for m in charts] == [
            expected(shared_reports, "stock", code=data.split(":")[3]).caption for data in presses[:9]]
        # the choices and 9 reports (a stock's is its chart alone: the gate charges what a report may send)
        assert [bool(expected(shared_reports, "stock", code=data.split(":")[3]).details) for data in presses] == [
            False] * 11
        assert len(sent) == 1 + 9 <= GROUP_ANSWERS_PER_MINUTE
        slow = t("zh", "bot.slow_down", seconds=60)
        answers = [h.server.callback_answers[q].get("text") for q in queries]
        assert answers[:9] == [None] * 9  # answered silently, then the report
        assert answers[9] == slow and answers[10] is None  # told once; the next one only stops spinning
        assert slow not in h.texts(GROUP) and t("zh", "bot.help", bot=BOT_USERNAME) not in h.texts(GROUP)


async def test_deep_links_in_a_group_are_charged_as_reports(demo_db: Engine, shared_reports: ReportService) -> None:
    """/start <payload> sends a report (two messages: chart and details): ten fill the group's
    minute, the eleventh is told to slow down. A bare /start (the welcome) is one."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write_many(GROUP, MEMBER, [f"/start@{BOT_USERNAME} balance"] * 11)
        sent = h.bot_messages(GROUP)
        slow = [m for m in sent if m.text == t("zh", "bot.slow_down", seconds=60)]
        charts = [m for m in sent if m.photo]
        want = expected(shared_reports, "balance")
        assert (len(sent), len(charts), len(slow)) == (21, 10, 1)
        assert {m.caption for m in charts} == {want.caption}
        assert [m.text for m in sent if not m.photo and m not in slow] == [want.details] * 10

        other = -4006
        h.server.add_chat(other, "group", title="welcome", members=[MEMBER])
        await h.write_many(other, MEMBER, ["/start"] * 21)
        texts = h.texts(other)
        assert sorted(texts) == sorted([t("zh", "bot.start")] * 20 + [t("zh", "bot.slow_down", seconds=60)])


def test_the_rate_limiter_keeps_a_groups_minute_and_tests_only_shorten_it(demo_db: Engine) -> None:
    """The rate limiter holds a group to Telegram's 20 messages a minute; the harness passes a
    shorter period (GROUP_TIME_PERIOD) for the same 20, so that a test's 21st message in a group
    does not wait 3 s. The bot's own allowance (GROUP_ANSWERS_PER_MINUTE) keeps its minute."""
    for kwargs, period in (({}, 60.0), ({"group_time_period": GROUP_TIME_PERIOD}, GROUP_TIME_PERIOD)):
        app = build_application(make_settings(), demo_db, schedule=False, **kwargs)  # type: ignore[arg-type]
        limiter = app.bot.rate_limiter
        assert isinstance(limiter, AIORateLimiter)
        group = limiter._get_group_limiter(GROUP)
        assert (group.max_rate, group.time_period) == (GROUP_ANSWERS_PER_MINUTE, period)
        services_of(app).executor.shutdown()
    assert (services_of(app).group_answers.limit, services_of(app).group_answers.period) == (20, 60.0)


# ------------------------------------------------------------------------------------------------
# 3. Codes with a foreign exchange's suffix are securities to look up, not dates
# ------------------------------------------------------------------------------------------------


def test_codes_with_a_suffix_are_not_dates() -> None:
    for word in ("00700.HK", "600519.HK", "000001.XSHE"):
        assert not looks_like_date(word), word
    for word in ("2024-09-30", "2024/9/3", "2024.09.30", "20240930", "2024-9", "2024-02-30"):
        assert looks_like_date(word), word
    assert parse_report_args("stock", ["00700.HK"]) == ReportArgs(code="00700.HK")
    assert parse_report_args("stock", ["00700.HK", "2024-09-30"]).code == "00700.HK"
    request = parse_inline_query("600519.HK")
    assert request.refusal is None and request.name == "600519.HK"  # a name keeps the case it was typed in


async def test_a_code_of_another_market_is_no_such_security(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/stock 00700.HK")
        answer = h.server.sent_messages(EN_USER)[0].plain_text()
        assert answer == ReportError("no_such_security", query="00700.HK").message("en")
        assert answer.startswith('No security with the code or name “00700.HK”.') and len(h.texts(EN_USER)) == 1

        query = await h.inline(EN_USER, "600519.HK")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["cache_time"] == 0
        # the reason in short, on the button's one line (BUTTON_TEXT_LIMIT), the code as typed
        assert answer["button"]["text"] == "No security “600519.HK” · type a 6-digit code or a name"
        assert len(answer["button"]["text"]) <= BUTTON_TEXT_LIMIT


# ------------------------------------------------------------------------------------------------
# 4. Admin checks of messages sent on behalf of a chat
# ------------------------------------------------------------------------------------------------


async def test_admin_checks_of_messages_sent_as_a_chat(demo_db: Engine, shared_reports: ReportService) -> None:
    """An anonymous admin (sent as the group) may subscribe; a member posting as their own channel
    may not; the group's linked channel may, once its posts have shown it is linked (the copy of a
    post in the discussion group). None of these asks getChatMember (the sender is a placeholder)."""
    own_channel, linked, discussion = -1007010, -1007020, -1004020
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        s = h.server
        s.add_chat(own_channel, "channel", title="a member's channel", admins=[MEMBER])
        s.add_chat(linked, "channel", title="两融频道", admins=[ADMIN], bot_status="administrator")
        s.add_chat(discussion, "supergroup", title="两融频道讨论", members=[MEMBER], admins=[ADMIN])

        message = await h.inject(s.inject_message, GROUP, ADMIN, "/subscribe", sender_chat=GROUP)
        assert message["sender_chat"]["id"] == GROUP and message["from"]["username"] == "GroupAnonymousBot"
        assert h.texts(GROUP) == [t("zh", "bot.subscribed", time="00:00")]
        assert stored_chat(demo_db, GROUP).subscribed is True

        message = await h.inject(s.inject_message, GROUP, MEMBER, "/unsubscribe", sender_chat=own_channel)
        assert message["from"]["username"] == "Channel_Bot"
        assert h.texts(GROUP)[-1] == t("zh", "bot.admins_only")
        assert stored_chat(demo_db, GROUP).subscribed is True

        # the linked channel, not known yet: refused
        await h.inject(s.inject_message, discussion, ADMIN, "/subscribe", sender_chat=linked)
        assert h.texts(discussion) == [t("zh", "bot.admins_only")]
        # one of its posts is copied into the group: now known, accepted
        await h.inject(s.inject_channel_post, linked, "今日两融", discussion=discussion)
        assert services_of(h.app).linked_channels == {discussion: linked}  # type: ignore[arg-type]
        await h.inject(s.inject_message, discussion, ADMIN, "/subscribe", sender_chat=linked)
        assert h.texts(discussion)[-1] == t("zh", "bot.subscribed", time="00:00")
        assert stored_chat(demo_db, discussion).subscribed is True
        # another channel in the same group is still a stranger
        await h.inject(s.inject_message, discussion, MEMBER, "/unsubscribe", sender_chat=own_channel)
        assert h.texts(discussion)[-1] == t("zh", "bot.admins_only")
        assert stored_chat(demo_db, discussion).subscribed is True

        assert s.calls_for("getChatMember") == []


# ------------------------------------------------------------------------------------------------
# 5. An inline error speaks the language the user chose
# ------------------------------------------------------------------------------------------------


async def test_an_inline_error_speaks_the_users_chosen_language(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/settings")  # Telegram says zh; the user chooses English
        await h.press(ZH_USER, ZH_USER, h.bot_messages(ZH_USER)[-1].message_id, "s:lang:en")
        assert stored_chat(demo_db, ZH_USER).language == "en"

        def failing(self: ReportService, *args: object, **kwargs: object) -> RenderedReport:
            raise RuntimeError("renderer broke")

        monkeypatch.setattr(ReportService, "render", failing)
        query = await h.inline(ZH_USER, "ratio")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["button"]["text"] == t("en", "bot.inline_error")
        # a user who never chose: their Telegram language
        query = await h.inline(MEMBER, "ratio")
        assert h.server.inline_answers[query]["button"]["text"] == t("zh", "bot.inline_error")


# ------------------------------------------------------------------------------------------------
# 6. A window edit whose stored chart id Telegram refuses uploads the chart instead
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["Bad Request: wrong file identifier/HTTP URL specified",
                                     "Bad Request: FILE_REFERENCE_EXPIRED"])
async def test_a_window_edit_with_a_refused_file_id_uploads_the_chart(
        demo_db: Engine, shared_reports: ReportService, refusal: str) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratio 60")  # the 60-day chart uploaded: its id is known
        await h.write(ZH_USER, ZH_USER, "/ratio")
        first, report = h.photos(ZH_USER)
        services = services_of(h.app)  # type: ignore[arg-type]
        key = expected(shared_reports, "ratio", days=60).chart_key
        assert await services.file_id(key) == first.photo_file_id

        h.server.fail_next("editMessageMedia", 400, description=refusal, chat_id=ZH_USER)
        query = await h.press(ZH_USER, ZH_USER, report.message_id, "w:ratio:60:")
        refused, redone = h.server.calls_for("editMessageMedia", ZH_USER)
        assert refused.status == 400 and first.photo_file_id in str(refused.params["media"])  # the stored id
        assert (redone.ok, redone.media_source) == (True, "upload")
        edited = h.photos(ZH_USER)[1]
        assert edited.message_id == report.message_id and edited.edits == 1
        assert edited.caption == expected(shared_reports, "ratio", days=60).caption
        assert buttons(edited.reply_markup) == [("20日", "w:ratio:20:"), ("• 60日 •", "w:ratio:60:"),
                                                ("250日", "w:ratio:250:")]
        # the new id replaces the refused one, in memory and in the database
        assert edited.photo_file_id != first.photo_file_id
        assert await services.file_id(key) == edited.photo_file_id
        assert chats.get_file_id(demo_db, f"{services.bot_id}/{key}") == edited.photo_file_id
        assert h.server.callback_answers[query].get("text") is None
        assert t("zh", "bot.error") not in h.texts(ZH_USER) and h.server.sent_messages(ADMIN_CHAT) == []


# ------------------------------------------------------------------------------------------------
# 7. A database failure after Telegram took the photo sends nothing twice
# ------------------------------------------------------------------------------------------------


async def test_a_file_id_not_stored_after_the_push_photo_sends_nothing_twice(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch,
        debug_logs: RecordAll) -> None:
    """The summary's first upload is accepted, then storing its file_id meets a locked database
    (OperationalError): the delivery is sent all the same (never pending again, never resent), the
    id is kept in memory and the next chat gets the chart by it."""
    other = 2008
    for cid in (ZH_USER, other):
        chats.ensure_chat(demo_db, cid, "private", f"chat {cid}", "zh")
        assert chats.set_subscribed(demo_db, cid, True)
    original = chats.save_file_id
    failures: list[str] = []

    def locked_once(engine: Engine, key: str, file_id: str) -> None:
        if not failures:
            failures.append(key)
            raise OperationalError("INSERT INTO chart_uploads ...", {}, sqlite3.OperationalError("database is locked"))
        original(engine, key, file_id)

    async with running(demo_db, shared_reports) as h:
        add_people(h)
        h.server.add_chat(other)
        monkeypatch.setattr(chats, "save_file_id", locked_once)
        result = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert result is not None
        assert (result.sent, result.retried, result.failed, result.unconfirmed) == (2, 0, 0, 0)
        assert len(failures) == 1
        for cid in (ZH_USER, other):
            assert len(h.server.calls_for("sendPhoto", cid)) == 1
        assert h.server.uploads == 1  # the other chat got the chart by the id kept in memory
        summary = expected(shared_reports, "summary", on=DATA_DATE)
        [pushed] = h.photos(ZH_USER)
        assert pushed.caption == summary.caption
        services = services_of(h.app)  # type: ignore[arg-type]
        assert services.file_ids[failures[0].split("/", 1)[1]] == pushed.photo_file_id
        assert chats.get_file_id(demo_db, failures[0]) is None  # the database never learnt it
        rows = delivery_rows(demo_db)
        assert {cid: (r.status, r.attempts) for cid, r in rows.items()} == {
            ZH_USER: (DeliveryStatus.SENT, 1), other: (DeliveryStatus.SENT, 1)}
        assert any("file_id not stored" in text_ and "database is locked" in text_ for text_ in debug_logs.texts)

        again = await push_now(h.app, DATA_DATE)  # type: ignore[arg-type]
        assert again is not None and again.sent == 0
        assert len(h.server.calls_for("sendPhoto", ZH_USER)) == 1


# ------------------------------------------------------------------------------------------------
# 8. /status is rendered in the worker pool, not on the event loop
# ------------------------------------------------------------------------------------------------


async def test_status_is_rendered_off_the_event_loop(demo_db: Engine, shared_reports: ReportService,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.handlers.admin

    original = bot.handlers.admin.render_status
    threads: list[int] = []
    rendered: list[str] = []

    def recording(lang: str, status: object) -> str:
        threads.append(threading.get_ident())
        rendered.append(original(lang, status))  # type: ignore[arg-type]
        return rendered[-1]

    monkeypatch.setattr(bot.handlers.admin, "render_status", recording)
    loop_thread = threading.get_ident()  # the test runs on the bot's event loop
    async with running(demo_db, shared_reports, admin_chat_ids=[ZH_USER]) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/status")
        assert len(threads) == 1 and threads[0] != loop_thread
        assert h.texts(ZH_USER) == rendered and rendered[0].startswith("<b>")
    with pytest.raises(KeyError):
        t("en", "bot.push_asap")  # removed: nothing used it


@pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
async def test_an_answer_telegram_never_took_is_followed_by_a_request_to_send_again(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """A 5xx on the chart (Telegram refused it: it is not in the chat) is not silence: one line in
    the chat's language asks for the command again, and the admins get no trace (not a bug); the
    command sent again is answered."""
    async with running(demo_db, shared_reports, admin_chat_ids=[ADMIN_CHAT]) as h:
        add_people(h)
        h.server.fail_next("sendPhoto", 502, description="Bad Gateway", chat_id=EN_USER)
        await h.write(EN_USER, EN_USER, "/ratio")
        assert h.photos(EN_USER) == []
        assert h.texts(EN_USER) == [t("en", "bot.not_taken")]
        assert h.server.sent_messages(ADMIN_CHAT) == []
        await h.write(EN_USER, EN_USER, "/ratio")
        [ratio] = h.photos(EN_USER)
        assert ratio.caption == expected(shared_reports, "ratio", lang="en").caption
