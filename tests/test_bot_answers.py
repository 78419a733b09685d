"""What the bot answers, as a user test read it: a typo of a command gets the command meant, an echo
of what was typed that is cut says so ("…"), the examples agree, a name matching several securities
offers buttons under /watch as under /stock and says how many matched, the watch list names its
day, /signals counts what it flags, an ETF ranks among funds, and the follow-up commands a report
suggests can be used as they are (whole in <code>, with the report's date when it is not the
latest). The bot's answers end to end as in test_bot_e2e (the real Application against the stand-in
Bot API server, demo data of 2026-11-20); the reports' texts through the shared ReportService.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.arguments import parse_report_args
from bot.handlers.chat import KNOWN_COMMANDS, suggested_command
from bot.handlers.watch import unwatch_data, watch_data
from reports import securities
from reports import text as report_text
from reports.fmt import clipped
from reports.i18n import TEMPLATES_DIR, t
from reports.service import ReportService
from storage import chats, queries
from tests.bot_fixtures import (
    ADMIN,
    EN_USER,
    GROUP,
    MEMBER,
    ZH_USER,
    add_people,
    buttons,
    expected,
    running,
)
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import BOT_USERNAME, DATA_DATE

# PTB warns when it builds RetryAfter from an int retry_after (its own deprecation, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

PAST = date(2026, 11, 13)  # a week before the demo's latest day


# ------------------------------------------------------------------------------------------------
# 1. An unknown command close to a known one: the command meant, with the arguments typed
# ------------------------------------------------------------------------------------------------


def test_the_closest_known_command_is_suggested_with_the_arguments() -> None:
    public = KNOWN_COMMANDS - {"status"}
    assert suggested_command("ratoi", "", ["20"], public) == "/ratio 20"
    assert suggested_command("Stokc", "", ["600519", "60"], public) == "/stock 600519 60"
    assert suggested_command("sector", BOT_USERNAME, ["医药"], public) == f"/sectors@{BOT_USERNAME} 医药"
    # a command glued to a number: the number kept, as the command's first argument
    assert suggested_command("top10", "", [], public) == "/top 10"
    assert suggested_command("top5", "", ["电子"], public) == "/top 5 电子"
    assert suggested_command("ratio250", "", [], public) == "/ratio 250"
    assert suggested_command("sectors20", BOT_USERNAME, ["医药"], public) == f"/sectors@{BOT_USERNAME} 20 医药"
    assert suggested_command("stock600519", "", [], public) == "/stock 600519"
    assert suggested_command("ratoi60", "", [], public) == "/ratio 60"  # a typo too
    assert suggested_command("help2", "", [], public) == "/help"  # a command without arguments: dropped
    assert suggested_command("ratio", "", [], public) == "/ratio"  # ours, named for another bot
    # nothing close: no guess (a shared letter or two is not enough)
    assert [suggested_command(name, "", [], public) for name in ("foo", "chart", "menu", "sub")] == [None] * 4
    # the operators' command only where it exists
    assert suggested_command("statu", "", [], public) == "/start"
    assert suggested_command("statu", "", [], KNOWN_COMMANDS) == "/status"


async def test_an_unknown_command_gets_the_command_meant(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratoi 20")
        await h.write(ZH_USER, ZH_USER, "/stokc 600519 <b>")  # the arguments as typed, escaped
        await h.write(ZH_USER, ZH_USER, "/ratio@other_bot 60")  # ours, named for a bot not in this chat
        await h.write(ZH_USER, ZH_USER, "/foo 20")  # nothing close: the plain answer
        assert h.texts(ZH_USER) == [
            "不认识这个命令：/ratoi。是不是想发 <code>/ratio 20</code>？",
            "不认识这个命令：/stokc。是不是想发 <code>/stock 600519 &lt;b&gt;</code>？",
            "不认识这个命令：/ratio@other_bot。是不是想发 <code>/ratio 60</code>？",
            "不认识这个命令：/foo。发送 /help 查看全部命令。",
        ]
        await h.write(EN_USER, EN_USER, "/balanc 250 2025-09-30")
        await h.write(EN_USER, EN_USER, "/statu")  # /status is only the operators'
        assert h.texts(EN_USER) == ["Unknown command: /balanc. Did you mean <code>/balance 250 2025-09-30</code>?",
                                    "Unknown command: /statu. Did you mean <code>/start</code>?"]
        # in a group, one named for this bot keeps the name; one named for nobody is another bot's
        await h.write(GROUP, MEMBER, f"/ratoi@{BOT_USERNAME} 20")
        await h.write(GROUP, MEMBER, "/ratoi 20")
        assert h.texts(GROUP) == [f"不认识这个命令：/ratoi@{BOT_USERNAME}。是不是想发 "
                                  f"<code>/ratio@{BOT_USERNAME} 20</code>？"]
        # the suggestion, sent as it is, is the report
        await h.write(ZH_USER, ZH_USER, "/ratio 20")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "ratio", days=20).caption


async def test_the_operators_are_suggested_their_command(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports, admin_chat_ids=[ZH_USER]) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/statu")
        assert h.texts(ZH_USER) == ["不认识这个命令：/statu。是不是想发 <code>/status</code>？"]


# ------------------------------------------------------------------------------------------------
# 2. A cut echo ends in "…"
# ------------------------------------------------------------------------------------------------


def test_clipped_marks_a_cut() -> None:
    assert clipped("演示", 32) == "演示"
    assert clipped("x" * 32, 32) == "x" * 32
    assert clipped("x" * 33, 32) == "x" * 31 + "…"
    assert len(clipped("演示" * 1500, 32)) == 32


async def test_a_long_argument_is_echoed_cut_with_an_ellipsis(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/stock " + "演示" * 1500)
        await h.write(ZH_USER, ZH_USER, "/" + "a" * 64)  # a command of 65 characters: cut to 64
        await h.write(ZH_USER, ZH_USER, "/subscribe " + "b" * 100)
        await h.write(EN_USER, EN_USER, "/top 5 " + "Bank" * 100)
        assert h.texts(ZH_USER) == [
            "没有找到代码或名称为 “" + "演示" * 15 + "演…” 的证券。"
            "请输入 6 位代码或名称，例如 /stock 600519 或 /stock 茅台。",
            "不认识这个命令：/" + "a" * 62 + "…。发送 /help 查看全部命令。",
            t("zh", "bot.subscribed", time="00:00") + "\n"
            + t("zh", "bot.ignored_arguments_settings", words="b" * 31 + "…"),
        ]
        # (a report's error goes out escaped, its quotes too: what the user reads is the plain text)
        assert [m.plain_text() for m in h.bot_messages(EN_USER)] == [
            'No sector named “' + "Bank" * 7 + 'Ban…”. Name a Shenwan level-1 sector or give its code, e.g. '
            "Electronics, 电子 or 270000."]


# ------------------------------------------------------------------------------------------------
# 3. The examples agree
# ------------------------------------------------------------------------------------------------


def test_every_example_names_the_same_security() -> None:
    """The strings and templates of both languages give one code and one name as examples (600519,
    茅台), never another spelling of it (贵州茅台)."""
    placeholders = {"CODE", "代码", "代码或名称", "先写代码", "one", "取消一只", "ratio", "top"}
    for lang in ("zh", "en"):
        texts = [path.read_text(encoding="utf-8") for path in (TEMPLATES_DIR / lang).iterdir()]
        named = {match for body in texts
                 for match in re.findall(r"(?:/stock|/watch|/unwatch|@\{bot\}) ([^\s,。.)(、;:\"，；：（）]+)", body)}
        # a {placeholder} is filled with one of the chat's own securities, not a fixed example
        filled = {word for word in named if word.startswith("{") and word.endswith("}")}
        assert named - placeholders - filled == {"600519", "茅台"}, lang
        assert not any("贵州茅台" in body for body in texts)


# ------------------------------------------------------------------------------------------------
# 4. A name matching several securities: how many, an example among them, buttons under /watch too
# ------------------------------------------------------------------------------------------------

FRAGMENT = "演示股份002"  # 演示股份0020 ... 演示股份0029


def ambiguous_answer(engine: Engine, lang: str) -> tuple[str, list[tuple[str, str]]]:
    """The answer to FRAGMENT and its eight choices (label, code), from what is stored."""
    named = queries.securities_named(engine, FRAGMENT, None, 100)
    assert len(named) == 10
    listed = [f"{name} ({code})" for code, name in named[:8]]
    joiner = "、" if lang == "zh" else ", "
    if lang == "zh":
        # the list cut with "…": the ellipsis ends the sentence, no 。 after it
        answer = (f"名称含 “{FRAGMENT}” 的证券有 10 只：{joiner.join([*listed, '…'])}"
                  f"请改用 6 位代码，例如 {named[0][0]}。")
    else:
        answer = (f'10 securities have “{FRAGMENT}” in their name ({joiner.join([*listed, "…"])}):'
                  f" use the 6-digit code instead, e.g. {named[0][0]}.")
    return answer, [(label, code) for label, (code, _) in zip(listed, named, strict=False)]


async def test_a_name_matching_several_says_how_many_under_stock_and_watch(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        zh, choices = ambiguous_answer(demo_db, "zh")
        await h.write(ZH_USER, ZH_USER, f"/stock {FRAGMENT}")
        await h.write(ZH_USER, ZH_USER, f"/watch {FRAGMENT}")
        stock, watch = h.bot_messages(ZH_USER)
        assert (stock.text, watch.text) == (zh, zh)
        assert buttons(stock.reply_markup) == [(label, f"p:stock:60:{code}") for label, code in choices]
        assert buttons(watch.reply_markup) == [(f"⭐ {label}", f"watch:{code}") for label, code in choices]
        assert [len(row) for row in watch.reply_markup["inline_keyboard"]] == [2, 2, 2, 2]  # type: ignore[index]
        en, _ = ambiguous_answer(demo_db, "en")
        await h.write(EN_USER, EN_USER, f"/watch {FRAGMENT}")
        assert [m.plain_text() for m in h.bot_messages(EN_USER)] == [en]

        # pressed, a button watches that one: the question becomes the answer, without buttons
        label, code = choices[1]
        name = label.split(" (")[0]
        await h.press(ZH_USER, ZH_USER, watch.message_id, watch_data(code))
        [_, answered] = h.bot_messages(ZH_USER)
        assert answered.message_id == watch.message_id and answered.reply_markup is None
        assert answered.text == (t("zh", "bot.watch_added", name=name, code=code) + "\n"
                                 + t("zh", "bot.watch_subscribe"))
        assert chats.watches(demo_db, [ZH_USER]) == {ZH_USER: [code]}
        # forged data is answered and does nothing
        query = await h.press(EN_USER, EN_USER, h.bot_messages(EN_USER)[-1].message_id, "watch：演示")
        assert "text" not in h.server.callback_answers[query] or not h.server.callback_answers[query]["text"]
        assert chats.watches(demo_db, [EN_USER]) == {}


async def test_unwatch_looks_for_a_name_among_what_the_chat_follows(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """Ten securities hold FRAGMENT, the chat follows one: /unwatch FRAGMENT stops following that one.
    Following two of them, it names both (the chat's own, not the market's ten) and asks for the code."""
    named = queries.securities_named(demo_db, FRAGMENT, None, 100)
    (first, first_name), (second, second_name) = named[0], named[1]
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        assert chats.watch(demo_db, ZH_USER, first) == "added"
        await h.write(ZH_USER, ZH_USER, f"/unwatch {FRAGMENT}")
        assert h.texts(ZH_USER) == [t("zh", "bot.unwatched", name=first_name, code=first)]
        assert chats.watches(demo_db, [ZH_USER]) == {}
        # following none of them now: said so, not the market's ten
        await h.write(ZH_USER, ZH_USER, f"/unwatch {FRAGMENT}")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.not_watched_named", query=FRAGMENT)
        for code in (second, first):
            chats.watch(demo_db, EN_USER, code)
        await h.write(EN_USER, EN_USER, f"/unwatch {FRAGMENT}")
        assert h.texts(EN_USER) == [t("en", "bot.unwatch_several", query=FRAGMENT, example=second,
                                      listed=f"{second_name} ({second}), {first_name} ({first})")]
        assert chats.watches(demo_db, [EN_USER]) == {EN_USER: [second, first]}
        # one button each, as the list has them: pressed, it stops following that one, in place
        [question] = h.bot_messages(EN_USER)
        assert buttons(question.reply_markup) == [(f"✖ {second_name} ({second})", f"unwatch:{second}"),
                                                  (f"✖ {first_name} ({first})", f"unwatch:{first}")]
        await h.press(EN_USER, EN_USER, question.message_id, unwatch_data(first))
        [answered] = h.bot_messages(EN_USER)
        assert answered.message_id == question.message_id and answered.reply_markup is None
        assert answered.text == t("en", "bot.unwatched", name=first_name, code=first)
        assert chats.watches(demo_db, [EN_USER]) == {EN_USER: [second]}
        await h.press(EN_USER, EN_USER, question.message_id, unwatch_data(first))  # pressed again: said so
        assert h.bot_messages(EN_USER)[0].text == t("en", "bot.not_watched", code=first)


async def test_in_a_group_only_an_admin_watches_by_button(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        zh, choices = ambiguous_answer(demo_db, "zh")
        await h.write(GROUP, MEMBER, f"/watch {FRAGMENT}")  # a member may not change the group's list
        await h.write(GROUP, ADMIN, f"/watch {FRAGMENT}")
        refused, offered = h.bot_messages(GROUP)
        assert (refused.text, offered.text) == (t("zh", "bot.admins_only_watch"), zh)
        label, code = choices[0]
        query = await h.press(GROUP, MEMBER, offered.message_id, watch_data(code))
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.admins_only_watch")
        assert chats.watches(demo_db, [GROUP]) == {} and h.bot_messages(GROUP)[-1].text == zh
        await h.press(GROUP, ADMIN, offered.message_id, watch_data(code))
        assert chats.watches(demo_db, [GROUP]) == {GROUP: [code]}
        assert h.bot_messages(GROUP)[-1].text == (t("zh", "bot.watch_added", name=label.split(" (")[0], code=code)
                                                  + "\n" + t("zh", "bot.watch_subscribe"))
        # nor may a member stop following one by /unwatch's button
        query = await h.press(GROUP, MEMBER, offered.message_id, unwatch_data(code))
        assert h.server.callback_answers[query]["text"] == t("zh", "bot.admins_only_watch")
        assert chats.watches(demo_db, [GROUP]) == {GROUP: [code]}


# ------------------------------------------------------------------------------------------------
# 5. The watch list names its data date; a spike is "⚠️ 急升"
# ------------------------------------------------------------------------------------------------


async def test_the_watch_list_names_its_day(demo_db: Engine, shared_reports: ReportService) -> None:
    spiking = shared_reports.render("signals", lang="zh", chart=False).data["spikes"][0]
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, f"/watch {spiking['code']}")
        await h.write(ZH_USER, ZH_USER, "/watch")
        await h.write(EN_USER, EN_USER, f"/watch {spiking['code']}")
        await h.write(EN_USER, EN_USER, "/watch")
    d = expected(shared_reports, "stock", code=spiking["code"]).data
    shown = report_text.environment("zh").filters  # the figures as the reports print them
    assert d["spiking"] is True
    assert h.texts(ZH_USER)[-1].splitlines() == [
        "<b>⭐ 关注</b> · 数据日期 2026-11-20",
        f"{d['name']}（{d['code']}）融资余额 {shown['smoney'](d['rzye'])} {shown['sarrow'](d['change_1d'])} "
        f"{shown['smoney'](d['change_1d'], True)}，近5日 {shown['spct'](d['change_5d_pct'])} ⚠️ 急升",
        t("zh", "bot.watch_hint"),
    ]
    english = h.texts(EN_USER)[-1].splitlines()
    assert english[0] == "<b>⭐ Watching</b> · data date 2026-11-20" and english[1].endswith("% ⚠️ spike")


# ------------------------------------------------------------------------------------------------
# 6. /signals counts the lines it flags
# ------------------------------------------------------------------------------------------------

FLAG = re.compile(r"^(⚠️|💡)")


def flagged_lines(caption: str, details: str) -> list[str]:
    return [line for line in (caption + "\n" + details).splitlines() if FLAG.match(line)]


def test_signals_count_what_they_flag(shared_reports: ReportService) -> None:
    """The demo day flags deleveraging, the spikes (⚠️) and a bottoming sector (💡): "3 项提示"."""
    for lang, header in (("zh", "<b>两融信号</b> · 3 项提示"), ("en", "<b>Margin signals</b> · 3 to watch")):
        report = shared_reports.render("signals", lang=lang, chart=False)
        assert report.data["flagged"] == ["deleveraging", "spikes", "bottoming"]
        assert report.caption.splitlines()[0] == header
        assert len(flagged_lines(report.caption, report.details)) == 3


def test_every_counted_signal_is_flagged(shared_reports: ReportService) -> None:
    """A sharp pace and amplification count too, and are flagged where they are listed."""
    d = dict(shared_reports.render("signals", lang="zh", chart=False).data)
    d.update(pace_class="sharp", pace_direction="up", amplification_corr=0.62, amplifying=True,
             warnings=["pace_sharp", "deleveraging", "amplification", "spikes"])
    d["flagged"] = [*d["warnings"], "bottoming"]
    caption, details = report_text.render("signals", "zh", d)
    assert caption.splitlines()[0] == "<b>两融信号</b> · 5 项提示"
    lines = flagged_lines(caption, details)
    assert len(lines) == 5
    assert lines[0].startswith("⚠️ 量：余额急剧增长（z = ")
    assert "⚠️ 放大效应：两融交易占比与指数波动率的60日相关系数 0.62，杠杆正在放大波动。" in lines
    caption, details = report_text.render("signals", "en", d)
    assert caption.splitlines()[0] == "<b>Margin signals</b> · 5 to watch"
    assert len(flagged_lines(caption, details)) == 5


# ------------------------------------------------------------------------------------------------
# 7. An ETF ranks among funds and ETFs, a stock among stocks
# ------------------------------------------------------------------------------------------------


def _count(engine: Engine, funds: bool) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM stock_margin WHERE trade_date = :d AND is_fund = :f"
                                     " AND rzye IS NOT NULL"), {"d": DATA_DATE, "f": funds}).scalar_one())


def test_an_etf_ranks_among_funds(shared_reports: ReportService) -> None:
    engine = shared_reports.engine
    funds, stocks = _count(engine, True), _count(engine, False)
    assert 0 < funds < stocks
    etf = shared_reports.render("stock", code="演示ETF01", lang="zh", chart=False)
    d = etf.data
    assert (d["is_fund"], d["rank_among"], d["of"]) == (True, "funds", funds) and 1 <= d["rank"] <= funds
    assert f"\n基金/ETF融资余额排名 第 {d['rank']} / {funds}\n" in etf.caption
    en = shared_reports.render("stock", code="演示ETF01", lang="en", chart=False)
    assert f"\nRank by financing balance: {d['rank']} of {funds} funds/ETFs\n" in en.caption
    stock = shared_reports.render("stock", code="600519", lang="zh", chart=False).data
    assert (stock["is_fund"], stock["rank_among"], stock["of"]) == (False, "stocks", stocks)


# ------------------------------------------------------------------------------------------------
# 8. Follow-up commands: whole in <code>, with the report's date when it is not the latest
# ------------------------------------------------------------------------------------------------


def _details(reports: ReportService, kind: str, lang: str, **kw: Any) -> str:
    return reports.render(kind, lang=lang, chart=False, **kw).details


def test_follow_up_commands_are_whole_and_dated(shared_reports: ReportService) -> None:
    r = shared_reports
    assert r.render("sectors", code="银行", days=5, chart=False).data["latest"] is True
    assert r.render("sectors", code="银行", days=5, on=PAST, chart=False).data["latest"] is False
    assert "看行业内个股：<code>/top 5 银行</code>\n" in _details(r, "sectors", "zh", code="银行", days=5)
    assert "看行业内个股：<code>/top 5 银行 2026-11-13</code>\n" in _details(r, "sectors", "zh", code="银行", days=5,
                                                                           on=PAST)
    assert "The sector's stocks: <code>/top 5 Banks 2026-11-13</code>\n" in _details(
        r, "sectors", "en", code="Banks", days=5, on=PAST)
    then = r.render("sectors", on=PAST, chart=False).data["sectors"][0]["name"]
    now = r.render("sectors", chart=False).data["sectors"][0]["name"]
    assert f"\n看行业内个股：<code>/top 20 {then} 2026-11-13</code>\n" in _details(r, "sectors", "zh", on=PAST)
    assert f"\n看行业内个股：<code>/top 20 {now}</code>\n" in _details(r, "sectors", "zh")
    stock = r.render("stock", code="600519", on=PAST, chart=False)
    sector = stock.data["sector"]["name"]
    assert f"所属行业：{sector}（申万一级）· <code>/sectors {sector} 2026-11-13</code>\n" in stock.caption
    assert f"· <code>/sectors {sector}</code>\n" in r.render("stock", code="600519", chart=False).caption
    signals = _details(r, "signals", "en")
    assert signals.startswith("Bottoming sectors in detail: <code>/sectors Pharma &amp; Biotech</code>\n")


async def test_a_suggested_command_sent_as_it_is_is_that_report(demo_db: Engine,
                                                                shared_reports: ReportService) -> None:
    """What /sectors 5 银行 2026-11-13 suggests, copied and sent, is that day's ranking of the sector."""
    details = _details(shared_reports, "sectors", "zh", code="银行", days=5, on=PAST)
    [command] = re.findall(r"<code>(/top [^<]+)</code>", details)
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, command)
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "top", code="银行", days=5, on=PAST).caption
    assert "数据日期 2026-11-13" in expected(shared_reports, "top", code="银行", days=5, on=PAST).caption


def test_securities_echo_a_cut_query_with_an_ellipsis(shared_reports: ReportService) -> None:
    with pytest.raises(securities.ReportError) as info:
        securities.resolve(shared_reports.engine, "演示" * 1500, None)
    assert info.value.params == {"query": "演示" * 15 + "演…"}


@pytest.mark.parametrize(("typed", "code"), [
    ("演示股份0028(600519)", "600519"), ("演示股份0028（600519）", "600519"), ("演示股份0028 (600519)", "600519"),
    ("600519.SH", "600519"), ("茅台", None), ("(600519)", "600519"), ("ST 某某 (600001)", "600001"),
    ("演示股份0028(60051)", None), ("a(b)(600519)", None),
])
def test_a_security_as_the_bot_lists_it_is_its_code(typed: str, code: str | None) -> None:
    """A watch list or a choice shows 演示股份0028(600519): pasted back into /unwatch or /stock, it is
    that code, not a name to look for."""
    assert securities.code_form(typed) == code


async def test_unwatch_takes_a_line_of_the_watch_list(demo_db: Engine, shared_reports: ReportService) -> None:
    named = queries.securities_named(demo_db, FRAGMENT, None, 100)
    code, name = named[0]
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        chats.watch(demo_db, ZH_USER, code)
        await h.write(ZH_USER, ZH_USER, f"/unwatch {name}({code})")
        assert h.texts(ZH_USER) == [t("zh", "bot.unwatched", name=name, code=code)]
        assert chats.watches(demo_db, [ZH_USER]) == {}


# ------------------------------------------------------------------------------------------------
# 9. What a Chinese keyboard types, a line pasted back, a code written for another exchange
# ------------------------------------------------------------------------------------------------


async def test_a_chinese_keyboards_date_and_a_pasted_security_are_read_as_meant(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """２０２６－１１－１３ (full-width) and 2026年11月13日 are that date, as inline mode reads them; a
    security pasted back as the bot lists it, 演示股份0020 (600xxx) with its space, is that security."""
    code, name = queries.securities_named(demo_db, FRAGMENT, None, 1)[0]
    past_ratio = expected(shared_reports, "ratio", on=PAST).caption
    stock = expected(shared_reports, "stock", code=code).caption
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        for typed in ("/ratio ２０２６－１１－１３", "/ratio 2026年11月13日"):
            await h.write(ZH_USER, ZH_USER, typed)
            assert h.photos(ZH_USER)[-1].caption == past_ratio, typed
        for typed in (f"/stock {name} ({code})", f"{name} ({code})", f"/stock 60 {name} ({code})"):
            await h.write(ZH_USER, ZH_USER, typed)
            assert h.photos(ZH_USER)[-1].caption == stock, typed
        assert len(h.photos(ZH_USER)) == 5 and not any("无效" in text for text in h.texts(ZH_USER))


async def test_a_code_written_for_another_exchange_is_refused_with_the_one_it_trades_on(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """sh600519 is 600519; bj600519 or 600519.SZ name the wrong exchange, and sh000001 is how sites
    write the Shanghai Composite index: no report of Shenzhen's 000001 passes for it, silently."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/stock sh600519")
        assert h.photos(ZH_USER)[-1].caption == expected(shared_reports, "stock", code="600519").caption
        await h.write(ZH_USER, ZH_USER, "/stock bj600519")
        assert h.bot_messages(ZH_USER)[-1].plain_text() == ("“bj600519” 的交易所与代码不符：600519 在沪市上市。"
                                                            "要看它，请发 /stock 600519。")
        await h.write(EN_USER, EN_USER, "/stock 600519.SZ")
        assert h.bot_messages(EN_USER)[-1].plain_text() == (
            '“600519.SZ” names the wrong exchange: 600519 is listed in Shanghai. For it, send /stock 600519.')
        await h.write(ZH_USER, ZH_USER, "sh000001")  # bare, in a private chat
        assert h.bot_messages(ZH_USER)[-1].plain_text() == t("zh", "error.index_code", typed="sh000001",
                                                              code="000001")
        assert "上证指数" in h.texts(ZH_USER)[-1]
        query = await h.inline(EN_USER, "sh000001")
        answer = h.server.inline_answers[query]
        assert answer["results"] == [] and answer["button"]["text"] == "“sh000001” is an index: no margin data"
        query = await h.inline(ZH_USER, "bj600519")
        assert h.server.inline_answers[query]["button"]["text"] == "“bj600519”：600519 在沪市上市，不在所写的交易所"
        assert len(h.photos(ZH_USER)) == 1
        # /unwatch answers so too: the index is not Shenzhen's 000001 the chat follows, kept
        assert chats.watch(demo_db, ZH_USER, "000001") == "added"
        await h.write(ZH_USER, ZH_USER, "/unwatch sh000001")  # its advice: /unwatch, not /stock
        assert h.bot_messages(ZH_USER)[-1].plain_text() == (
            "“sh000001” 是沪市指数的写法（sh000001 即上证指数），指数没有两融数据。"
            "深市的 000001 请发 /unwatch 000001。")
        await h.write(ZH_USER, ZH_USER, "/unwatch 000001.SH")
        assert "000001" in h.texts(ZH_USER)[-1] and chats.watches(demo_db, [ZH_USER]) == {ZH_USER: ["000001"]}
        await h.write(ZH_USER, ZH_USER, "/unwatch 000001.SZ")
        assert chats.watches(demo_db, [ZH_USER]) == {}


async def test_a_name_that_matches_nothing_is_told_so_in_a_private_chat(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """茅台 typed alone (the demo's names are invented) is answered as a name that matches nothing,
    not with "send a command"; a word with no Chinese in it (hello) or a sentence gets the hint."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "茅台")
        await h.write(EN_USER, EN_USER, "<b>茅台</b> 60")
        await h.write(EN_USER, EN_USER, "hello")
        await h.write(EN_USER, EN_USER, "茅台 的 两融 余额 是 多少")
        assert h.texts(ZH_USER) == [t("zh", "bot.plain_text_no_match", query="茅台")]
        assert h.texts(EN_USER) == [t("en", "bot.plain_text_no_match", query="&lt;b&gt;茅台&lt;/b&gt;"),
                                    t("en", "bot.plain_text"), t("en", "bot.plain_text")]


def test_names_that_match_are_listed_by_name(demo_db: Engine) -> None:
    """/stock 演示ETF lists 演示ETF01, 02, 03 first (by name, not by code: ETF11 may have the lowest);
    an exact name comes first, then the names that begin with what was typed."""
    assert [name for _, name in queries.securities_named(demo_db, "演示ETF", None, 3)] == [
        "演示ETF01", "演示ETF02", "演示ETF03"]
    assert [name for _, name in queries.securities_named(demo_db, "ETF1", None, 2)] == ["演示ETF10", "演示ETF11"]
    assert queries.securities_named(demo_db, "演示股份0028", None, 5)[0][1] == "演示股份0028"


# ------------------------------------------------------------------------------------------------
# 5. A user audit: the help, /watch's advice, glued numbers and suffixes, cut lists, plurals, language
# ------------------------------------------------------------------------------------------------


async def test_the_help_says_who_may_change_a_group_and_how_much_a_chat_follows(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """A member's /watch, /unwatch and /settings buttons are refused in a group as /subscribe is: the
    help says so of all of them; it says how many securities a chat follows at most, and the units
    the reports show (the market's balance in 万亿元 / CNY trn, other money in 亿元 / CNY bn)."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/help")
        await h.write(EN_USER, EN_USER, "/help")
        zh, en = h.texts(ZH_USER)[-1].split("\n"), h.texts(EN_USER)[-1].split("\n")
        assert chats.MAX_WATCHES == 10
        assert "/watch 代码或名称 关注证券，每日推送中附带其数据（每个聊天最多 10 只；不带参数：查看关注列表）" in zh
        assert "/subscribe 订阅每日推送" in zh
        assert ("在群里，订阅、退订、关注、取消关注和更改设置（/subscribe、/unsubscribe、/watch、/unwatch、/settings）"
                "只有管理员可以做；查看关注列表（不带参数的 /watch）人人可用。") in zh
        assert zh[-1] == ("数据日期为交易日 T，T+1 日早上发布；全市场余额以万亿元显示，其余金额与变化以亿元显示"
                          "（单只证券不足 1 亿元时以万元显示）。")
        assert ("/watch CODE or name follow a security in the daily push (at most 10 a chat; no argument:"
                " show the list)") in en
        assert "/subscribe daily push" in en
        assert ("In groups only admins can subscribe, unsubscribe, watch, unwatch and change the settings"
                " (/subscribe, /unsubscribe, /watch, /unwatch, /settings); anyone can see the watch list"
                " (/watch, with no argument).") in en
        assert en[-1] == ("The data date is trading day T, published on the morning of T+1. The market's balance"
                          " is in CNY trn, other amounts and changes in CNY bn (one security's figures under"
                          " CNY 1 bn in CNY mn).")
        # what the help says of groups is what a member meets there
        await h.write(GROUP, MEMBER, "/watch 600519")
        await h.write(GROUP, MEMBER, "/unwatch 600519")
        assert h.texts(GROUP) == ["只有群管理员可以更改本群关注的证券。"] * 2


async def test_watch_advises_watch_and_takes_one_security_at_a_time(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/watch sh000001")
        await h.write(EN_USER, EN_USER, "/watch 600519 000775")
        await h.write(EN_USER, EN_USER, "/watch no-such-thing")
        await h.write(EN_USER, EN_USER, "/watch sz600519")
        await h.write(EN_USER, EN_USER, "/unwatch 600519 000775")
        assert [m.plain_text() for m in h.bot_messages(EN_USER)] == [
            '“sh000001” is how an SSE index is written (sh000001: the Shanghai Composite), and indices have no'
            " margin data. For Shenzhen's 000001, send /watch 000001.",
            "One security at a time, e.g. /watch 600519.",
            'No security with the code or name “no-such-thing”. Send a 6-digit code or a name, e.g. /watch 600519'
            " or /watch 茅台.",
            '“sz600519” names the wrong exchange: 600519 is listed in Shanghai. Send /watch 600519.',
            "One security at a time, e.g. /unwatch 600519.",
        ]
        await h.write(ZH_USER, ZH_USER, "/watch sh000001")
        await h.write(ZH_USER, ZH_USER, "/watch 600519 000775")
        await h.write(ZH_USER, ZH_USER, "/watch 没有这只")
        assert [m.plain_text() for m in h.bot_messages(ZH_USER)] == [
            "“sh000001” 是沪市指数的写法（sh000001 即上证指数），指数没有两融数据。深市的 000001 请发 /watch 000001。",
            "一次只能写一只证券，例如 /watch 600519。",
            "没有找到代码或名称为 “没有这只” 的证券。请输入 6 位代码或名称，例如 /watch 600519 或 /watch 茅台。",
        ]
        assert chats.watches(demo_db, [EN_USER, ZH_USER]) == {}
        # /stock keeps its own advice; a security pasted as the bot lists it is one security
        await h.write(EN_USER, EN_USER, "/stock sh000001")
        assert h.bot_messages(EN_USER)[-1].plain_text().endswith(
            "For Shenzhen's 000001, send /stock 000001; for the whole market, /balance or /ratio.")
        name = securities.name_of(demo_db, "600519")
        await h.write(ZH_USER, ZH_USER, f"/watch {name} (600519)")
        assert h.texts(ZH_USER)[-1].startswith(t("zh", "bot.watch_added", name=name, code="600519"))


async def test_a_command_glued_to_a_number_is_suggested_with_the_number(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        for typed in ("/top5", "/ratio250", "/sectors20 医药", "/TOP10"):
            await h.write(ZH_USER, ZH_USER, typed)
        await h.write(EN_USER, EN_USER, "/top5")
        assert h.texts(ZH_USER) == [
            "不认识这个命令：/top5。是不是想发 <code>/top 5</code>？",
            "不认识这个命令：/ratio250。是不是想发 <code>/ratio 250</code>？",
            "不认识这个命令：/sectors20。是不是想发 <code>/sectors 20 医药</code>？",
            "不认识这个命令：/TOP10。是不是想发 <code>/top 10</code>？",
        ]
        assert h.texts(EN_USER) == ["Unknown command: /top5. Did you mean <code>/top 5</code>?"]


@pytest.mark.parametrize(("typed", "word"), [
    ("600519SH", "600519.SH"), ("600519sh", "600519.SH"), ("600519Sh", "600519.SH"), ("600519ss", "600519.SS"),
    ("000001sz", "000001.SZ"), ("830799BJ", "830799.BJ"), ("６００５１９ＳＨ", "600519.SH"),
    ("6005190SH", "6005190SH"), ("600519SHA", "600519SHA"), ("600519", "600519")])
def test_a_code_with_its_exchange_glued_is_the_code(typed: str, word: str) -> None:
    """600519SH is read as 600519.SH (reports.securities.code_form, the CLI's and the bot's lookup)."""
    from reports.securities import code_form, exchange_mismatch

    assert code_form(typed) == code_form(word)
    assert exchange_mismatch(typed) == exchange_mismatch(word)
    assert parse_report_args("stock", [typed, "60"]).days == 60


async def test_a_code_with_its_exchange_glued_gets_its_report(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        want = expected(shared_reports, "stock", code="600519").caption
        await h.write(ZH_USER, ZH_USER, "/stock 600519SH")
        await h.write(ZH_USER, ZH_USER, "600519sh")  # bare, in a private chat
        assert [p.caption for p in h.photos(ZH_USER)] == [want, want]
        await h.write(ZH_USER, ZH_USER, "/stock 600519BJ")  # the wrong exchange, refused as 600519.BJ is
        assert h.bot_messages(ZH_USER)[-1].plain_text() == ("“600519BJ” 的交易所与代码不符：600519 在沪市上市。"
                                                            "要看它，请发 /stock 600519。")
        await h.write(EN_USER, EN_USER, "/watch 600519sh")
        assert chats.watches(demo_db, [EN_USER]) == {EN_USER: ["600519"]}
        await h.write(EN_USER, EN_USER, "/unwatch 600519SH")
        assert chats.watches(demo_db, [EN_USER]) == {}


async def test_a_list_cut_with_an_ellipsis_ends_the_sentence(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """More sectors hold "e" than are listed: the list ends with "…", and no full stop doubles it."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/sectors e")
        await h.write(EN_USER, EN_USER, "/sectors 电")  # not cut: its full stop
        assert [m.plain_text() for m in h.bot_messages(EN_USER)] == [
            'Several sectors have “e” in their name: Agriculture, Basic Chemicals, Steel, Non-ferrous Metals,'
            " Electronics, Home Appliances, Food & Beverage, Textiles & Apparel, … Write the whole name,"
            " e.g. Electronics.",
            'Several sectors have “电” in their name: Electronics, Home Appliances, Power Equipment.'
            " Write the whole name, e.g. Electronics."]
        await h.write(ZH_USER, ZH_USER, "/top 5 e")
        assert h.texts(ZH_USER)[-1].startswith("名称含 “e” 的行业不止一个：")
        assert h.texts(ZH_USER)[-1].endswith("、…请写全名，例如 电子。")


async def test_a_day_named_by_a_word_is_answered_with_the_latest_data_on_or_before_it(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """/ratio 今天 (whatever today is: the demo's data end on 2026-11-20, and today's data come out
    tonight) is the latest day's report, not "no data for today"; inline too."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/ratio 今天")
        [photo] = h.photos(ZH_USER)
        assert photo.caption == expected(shared_reports, "ratio").caption
        query = await h.inline(ZH_USER, "ratio today")
        [result] = h.server.inline_answers[query]["results"]
        assert result["caption"] == expected(shared_reports, "ratio").caption


async def test_a_one_day_window_is_one_day(demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(EN_USER, EN_USER, "/top 1 2023-01-02")  # the first day of the data: no day before it
        await h.write(ZH_USER, ZH_USER, "/top 1 2023-01-02")
        assert h.texts(EN_USER) == ["2023-01-02 is the first trading day of the data: nothing before it to compare"
                                    " with, so no 1-day window."]
        assert h.texts(ZH_USER) == ["2023-01-02 是数据的第一个交易日，之前没有可比的日子，无法计算 1 日窗口。"]


async def test_a_private_chat_follows_the_users_telegram_language_until_settings_picks_one(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        await h.write(ZH_USER, ZH_USER, "/start")
        h.server.add_user(ZH_USER, "李雷", username="lilei", language_code="en")  # their Telegram now speaks English
        await h.write(ZH_USER, ZH_USER, "/start")
        await h.write(ZH_USER, ZH_USER, "/help")
        assert h.texts(ZH_USER) == [t("zh", "bot.start"), t("en", "bot.start"), t("en", "bot.help", bot=BOT_USERNAME)]
        # a language picked in /settings stays, whatever Telegram's
        await h.write(ZH_USER, ZH_USER, "/settings")
        await h.press(ZH_USER, ZH_USER, h.bot_messages(ZH_USER)[-1].message_id, "s:lang:zh")
        h.server.add_user(ZH_USER, "李雷", username="lilei", language_code="en")
        await h.write(ZH_USER, ZH_USER, "/start")
        assert h.texts(ZH_USER)[-1] == t("zh", "bot.start")
