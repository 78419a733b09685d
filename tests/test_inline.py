"""Inline mode (`@bot ...` typed in any chat), end to end through the stand-in Bot API: the window
asked is the window shown (as the commands read it), a name that matches nothing or several
securities says so on the results button, and the button's reasons are short enough for its one line.

The bot's answers are read from what it sent to the stand-in (`answerInlineQuery`): its results
(ids, titles, captions, the deep link under each chart) and the results button above them.
"""

from __future__ import annotations

import string
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, text

import bot.handlers.inline as inline_module
from bot.arguments import INLINE_REPORTS, parse_inline_query
from bot.handlers.inline import BUTTON_TEXT_LIMIT, _reason
from reports import securities
from reports.errors import ReportError
from reports.figures import DEFAULT_DAYS
from reports.i18n import LANGUAGES, strings, t
from reports.service import ReportService
from storage import queries
from tests.bot_fixtures import EN_USER, ZH_USER, add_people, expected, running
from tests.bot_fixtures import debug_logs as debug_logs  # autouse: DEBUG logs, no token in them
from tests.bot_fixtures import demo_db as demo_db
from tests.bot_fixtures import shared_reports as shared_reports
from tests.bot_fixtures import stock_code as stock_code
from tests.bot_fixtures import template_db as template_db
from tests.bot_harness import BOT_USERNAME, BotHarness

# PTB warns when it builds RetryAfter from an int retry_after (its own deprecation, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

LATEST = "2026-11-20"  # the demo data's last trade date


def link(payload: str) -> str:
    """The deep link under a shared chart: opens the report with this payload in a chat with the bot."""
    return f"https://t.me/{BOT_USERNAME}?start={payload}"


async def answer_to(h: BotHarness, user: int, query: str) -> dict[str, Any]:
    """What the bot answered to `@bot <query>` typed by `user`: results, button, cache_time."""
    answer: dict[str, Any] = h.server.inline_answers[await h.inline(user, query)]
    return answer


def ids(answer: dict[str, Any]) -> list[str]:
    return [r["id"] for r in answer["results"]]


def button_text(answer: dict[str, Any]) -> str | None:
    """The results button's text; None without a button."""
    return answer["button"]["text"] if answer.get("button") else None


# ------------------------------------------------------------------------------------------------
# Reading the query
# ------------------------------------------------------------------------------------------------


def test_a_window_is_read_where_another_word_says_what_to_show() -> None:
    """`top 20 电子`, `ratio 20`, `600519 250`: the number is the window. Alone, or after `stock`, a
    number is a code being typed (each keystroke is a query: `6005` must not become a window)."""
    top = parse_inline_query("top 20 电子")
    assert (top.wanted, top.days, top.refusal) == ((("top", "电子"),), 20, None)
    assert parse_inline_query("ratio 20").days == 20 and parse_inline_query("20 ratio").days == 20
    stock = parse_inline_query("600519 250 2024-09-30")
    assert (stock.wanted, stock.days, stock.on) == ((("stock", "600519"),), 250, date(2024, 9, 30))
    named = parse_inline_query("茅台 60")
    assert (named.name, named.days) == ("茅台", 60)
    for typing in ("6", "6005", "stock 6005", "个股 60"):
        request = parse_inline_query(typing)
        assert request.days is None and request.name == typing.split()[-1], typing
    # the report's own window is the chart warmed ahead for everyone
    assert parse_inline_query("top 5 电子").days == DEFAULT_DAYS["top"]


def test_a_bad_window_is_refused_as_the_commands_refuse_it() -> None:
    refusals = {query: parse_inline_query(query).refusal for query in
                ("sectors 300", "ratio 0", "ratio -5", "600519 3000", "top 20 60 电子", "summary 20", "概览 20")}
    assert {query: (r.key, r.params) for query, r in refusals.items() if r is not None} == {
        "sectors 300": ("bot.inline_bad_window", {"value": "300", "max": 250, "example": "sectors 20"}),
        "ratio 0": ("bot.inline_bad_window", {"value": "0", "max": 2500, "example": "ratio 250"}),
        "ratio -5": ("bot.inline_bad_window", {"value": "-5", "max": 2500, "example": "ratio 250"}),
        "600519 3000": ("bot.inline_bad_window", {"value": "3000", "max": 2500, "example": "stock 600519 60"}),
        "top 20 60 电子": ("bot.inline_one_window", {"example": "top 5"}),
        "summary 20": ("bot.inline_no_window", {}),
        "概览 20": ("bot.inline_no_window", {}),
    }
    # a list of reports takes a window that one of them takes (sectors stop at 250, the others do not)
    assert parse_inline_query("s 300").days == 300


def test_words_the_query_does_not_use_are_refused_not_ignored() -> None:
    """`ratio foo` is not `ratio`: the word that means nothing is named, with the report's example;
    the refusals' examples are the report's asked (`ratio 20 60`: ratio's, not the ranking's). A
    window with its unit (`余额 250日`, the buttons' label) is the window."""
    refusals = {query: parse_inline_query(query).refusal for query in
                ("ratio foo", "ratio 250 xyz", "两融余额 60 abc", "ratio 20 60", "balance 2024-09-30 2024-10-08")}
    assert {query: (r.key, r.params) for query, r in refusals.items() if r is not None} == {
        "ratio foo": ("bot.inline_extra_words", {"words": "foo", "example": "ratio 250"}),
        "ratio 250 xyz": ("bot.inline_extra_words", {"words": "xyz", "example": "ratio 250"}),
        "两融余额 60 abc": ("bot.inline_extra_words", {"words": "abc", "example": "balance 60"}),
        "ratio 20 60": ("bot.inline_one_window", {"example": "ratio 250"}),
        "balance 2024-09-30 2024-10-08": ("bot.inline_one_date", {"example": "balance 2024-09-30"}),
    }
    with_unit = parse_inline_query("余额 250日")
    assert (with_unit.wanted, with_unit.days) == ((("balance", None),), 250)
    assert parse_inline_query("stock 600519 20d").days == 20


@pytest.mark.parametrize(("query", "kind"), [("两融余额", "balance"), ("两融交易占比", "ratio"), ("交易占比", "ratio"),
                                             ("每日概览", "summary"), ("排名", "top"), ("板块", "sectors")])
def test_the_reports_chinese_names_name_them(query: str, kind: str) -> None:
    """The titles on the results (两融余额, 两融交易占比, 每日概览) typed back offer that report."""
    request = parse_inline_query(query)
    assert (request.wanted, request.name, request.refusal) == (((kind, None),), None, None)


async def test_a_sectors_name_offers_that_sector(demo_db: Engine, shared_reports: ReportService) -> None:
    """`@bot 电子`, `@bot Banks`: no security's name holds them, a sector's does: that sector alone
    and its ranking, not "nothing matched"."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        for user, name, lang in ((ZH_USER, "电子", "zh"), (EN_USER, "Banks", "en")):
            answer = await answer_to(h, user, name)
            assert [r["caption"] for r in answer["results"]] == [
                expected(shared_reports, "sectors", code=name, lang=lang).caption,
                expected(shared_reports, "top", code=name, lang=lang).caption]
            assert "button" not in answer


# ------------------------------------------------------------------------------------------------
# 1. The window asked is the window shown
# ------------------------------------------------------------------------------------------------


async def test_inline_honours_the_window_as_the_commands_do(
        demo_db: Engine, shared_reports: ReportService, stock_code: str) -> None:
    """`@bot top 20 电子` is `/top 20 电子`: its caption, a title that names the window, an id of its
    own and a link that opens the same window in the bot; `ratio 20`, `balance 250`, `600519 250` too."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        answer = await answer_to(h, ZH_USER, "top 20 电子")
        [top] = answer["results"]
        want = expected(shared_reports, "top", code="电子", days=20)
        assert top["caption"] == want.caption and want.caption.startswith("<b>电子 · 融资余额变化排行 近20日</b>")
        assert top["title"] == f"电子 · 融资余额变化排行 · 20日（{LATEST}）"
        assert top["id"] == f"top-270000-20d-{LATEST}-zh"
        assert top["reply_markup"]["inline_keyboard"][0][0]["url"] == link("top_270000_20d")
        assert "button" not in answer and answer["cache_time"] == 300

        [ratio] = (await answer_to(h, ZH_USER, "ratio 20"))["results"]
        want = expected(shared_reports, "ratio", days=20)
        assert ratio["caption"] == want.caption and "图表区间 20 日" in want.caption
        assert ratio["title"] == f"两融交易占比 · 20日（{LATEST}）" and ratio["id"] == f"ratio-20d-{LATEST}-zh"

        [balance] = (await answer_to(h, EN_USER, "balance 250"))["results"]
        assert balance["caption"] == expected(shared_reports, "balance", lang="en", days=250).caption
        assert balance["title"] == f"Margin balance · 250d ({LATEST})"
        assert balance["reply_markup"]["inline_keyboard"][0][0]["url"] == link("balance_250d")

        [stock] = (await answer_to(h, ZH_USER, f"{stock_code} 250"))["results"]
        want = expected(shared_reports, "stock", code=stock_code, days=250)
        assert stock["caption"] == want.caption and stock["id"] == f"stock-{stock_code}-250d-{LATEST}-zh"
        assert stock["title"] == f"{want.data['name']} {stock_code} · 250日（{LATEST}）"

        # a window and a date: both, in the id and the link
        [dated] = (await answer_to(h, ZH_USER, "ratio 20 2025-09-30"))["results"]
        assert dated["caption"] == expected(shared_reports, "ratio", days=20, on=date(2025, 9, 30)).caption
        assert dated["id"] == "ratio-20d-2025-09-30-zh"
        assert dated["reply_markup"]["inline_keyboard"][0][0]["url"] == link("ratio_20d_20250930")

        # the report's own window is its usual chart: the same id, title and link as without one
        [plain] = (await answer_to(h, ZH_USER, "ratio"))["results"]
        [own] = (await answer_to(h, ZH_USER, "ratio 250"))["results"]
        assert own == plain and own["title"] == f"两融交易占比（{LATEST}）"
        assert own["reply_markup"]["inline_keyboard"][0][0]["url"] == link("ratio")

        # the link under the shared chart opens the same report, window included
        await h.write(EN_USER, EN_USER, "/start top_270000_20d")
        assert h.photos(EN_USER)[-1].caption == expected(shared_reports, "top", lang="en", code="270000",
                                                         days=20).caption


async def test_a_bad_window_gets_its_reason_and_nothing_is_left_out_unsaid(
        demo_db: Engine, shared_reports: ReportService) -> None:
    """A window no asked report takes, two windows, a window for the summary (it has none): nothing
    is offered, the button says why. A list where one report stops short of the window offers the
    others and says which was left out."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        cases = [
            (ZH_USER, "sectors 300", "窗口 “300” 无效：请输入 1 到 250 个交易日，例如 sectors 20"),
            (EN_USER, "ratio 0", "Window “0”: type 1 to 2500 trading days, e.g. ratio 250"),
            (EN_USER, "600519 3000", "Window “3000”: type 1 to 2500 trading days, e.g. stock 600519 60"),
            (EN_USER, "top 20 60 电子", "One window at a time, e.g. top 5"),
            (EN_USER, "summary 20", "The daily summary takes no window: type summary alone"),
            (ZH_USER, "概览 20", "每日概览不带窗口：只输入 概览 即可"),
        ]
        for user, query, reason in cases:
            answer = await answer_to(h, user, query)
            assert (answer["results"], button_text(answer), answer["cache_time"]) == ([], reason, 0), query

        # "s": summary, sectors, signals; 300 days: signals alone (the summary has no window, sectors stop at 250)
        answer = await answer_to(h, ZH_USER, "s 300")
        assert ids(answer) == [f"signals-300d-{LATEST}-zh"]
        assert button_text(answer) == "行业融资变化最多 250 个交易日，没有 300 日图表"
        answer = await answer_to(h, EN_USER, "s 300")
        assert button_text(answer) == "Financing by sector: at most 250 days, so no 300-day chart"


# ------------------------------------------------------------------------------------------------
# 2. Names: none, one, several
# ------------------------------------------------------------------------------------------------


async def test_a_name_that_matches_nothing_says_so(demo_db: Engine, shared_reports: ReportService) -> None:
    """The report charts are still offered; the button says that no security's name holds what was
    typed (as typed: the button is plain text, nothing to escape) and what to type instead."""
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        latest = [f"{kind}-{LATEST}-zh" for kind in INLINE_REPORTS]
        answer = await answer_to(h, ZH_USER, "茅台")  # the demo's names are invented: 演示股份0001, ...
        assert ids(answer) == latest
        assert button_text(answer) == "没有名称含 “茅台” 的证券 · 可输入代码，例如 600519"
        answer = await answer_to(h, EN_USER, "xyz")
        assert ids(answer) == [f"{kind}-{LATEST}-en" for kind in INLINE_REPORTS]
        assert button_text(answer) == "No security's name holds “xyz” · type a code, e.g. 600519"
        answer = await answer_to(h, EN_USER, "<b>")
        assert button_text(answer) == "No security's name holds “<b>” · type a code, e.g. 600519"
        answer = await answer_to(h, EN_USER, "Xyz")  # as typed, not as looked up
        assert button_text(answer) == "No security's name holds “Xyz” · type a code, e.g. 600519"
        # with a window: the reports that take one, at that window (the summary has none)
        answer = await answer_to(h, ZH_USER, "茅台 120")
        assert ids(answer) == [f"{kind}-120d-{LATEST}-zh" for kind in INLINE_REPORTS if kind != "summary"]
        assert button_text(answer) == "没有名称含 “茅台” 的证券 · 可输入代码，例如 600519"


async def test_a_name_that_matches_several_offers_their_charts(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to 8 securities' charts, in the order reports.securities.candidates gives them; past 8, the
    button says how many match and what to type. (Time is not what is tested here: the budget is
    lifted so that a slow host still makes all eight.)"""
    monkeypatch.setattr(inline_module, "INLINE_RENDER_SECONDS", 60.0)
    monkeypatch.setattr(inline_module, "INLINE_WAIT_SECONDS", 30.0)
    # three securities whose names hold 测试甲 (this test's copy of the database only)
    three = [code for code, _ in securities.candidates(demo_db, "演示股份03", None)[:3]]
    with demo_db.begin() as conn:
        for i, code in enumerate(three):
            conn.execute(text("UPDATE stock_margin SET name = :name WHERE code = :code"),
                         {"name": f"测试甲{i + 1}号", "code": code})
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        answer = await answer_to(h, ZH_USER, "测试甲")
        assert ids(answer) == [f"stock-{code}-{LATEST}-zh" for code in three]
        assert "button" not in answer and answer["cache_time"] == 300
        # and at a window
        answer = await answer_to(h, ZH_USER, "测试甲 20")
        assert ids(answer) == [f"stock-{code}-20d-{LATEST}-zh" for code in three]
        assert [r["caption"] for r in answer["results"]] == [
            expected(shared_reports, "stock", code=code, days=20).caption for code in three]

        matches = securities.candidates(demo_db, "演示", None)
        count = len(queries.securities_named(demo_db, "演示", None, 100_000))
        assert len(matches) == 9 and count > 9  # the demo: 演示股份0001..., 演示ETF01...
        answer = await answer_to(h, ZH_USER, "演示")
        assert ids(answer) == [f"stock-{code}-{LATEST}-zh" for code, _ in matches[:8]]
        assert button_text(answer) == f"名称含 “演示” 的证券有 {count} 只：请多输入几个字或改用代码"
        answer = await answer_to(h, EN_USER, "演示")
        assert button_text(answer) == f"{count} match “演示”: type more, or the code"

        # digits alone are a code being typed: never the several names that hold them, one chart each
        answer = await answer_to(h, EN_USER, "20")
        assert answer["results"] == [] and button_text(answer) == "Several securities hold “20”: type the code"


async def test_several_securities_are_several_renders(demo_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chart a query makes counts against the user's allowance (here 5 a minute): of the eight
    securities of `演示`, five are made and offered, and the button says to slow down; the private
    chat's allowance is the same one, and is used up."""
    monkeypatch.setattr(inline_module, "INLINE_RENDER_SECONDS", 60.0)
    monkeypatch.setattr(inline_module, "INLINE_WAIT_SECONDS", 30.0)
    matches = securities.candidates(demo_db, "演示", None)
    async with running(demo_db, ReportService(demo_db), commands_per_minute=5) as h:
        add_people(h)
        answer = await answer_to(h, ZH_USER, "演示")
        assert ids(answer) == [f"stock-{code}-{LATEST}-zh" for code, _ in matches[:5]]
        assert button_text(answer) == t("zh", "bot.inline_slow_down") and answer["cache_time"] == 0
        # typed again: the five made are offered at no cost, the others still wait
        answer = await answer_to(h, ZH_USER, "演示")
        assert len(answer["results"]) == 5 and button_text(answer) == t("zh", "bot.inline_slow_down")
        await h.write(ZH_USER, ZH_USER, "/ratio")
        assert h.photos(ZH_USER) == [] and "请求太频繁" in h.texts(ZH_USER)[-1]


async def test_a_name_out_of_time_opens_in_the_bot_at_its_window(
        demo_db: Engine, shared_reports: ReportService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of INLINE_RENDER_SECONDS before the first security: the button opens it in the bot, at
    the window asked."""
    monkeypatch.setattr(inline_module, "INLINE_RENDER_SECONDS", -1.0)  # out of time from the start
    first = securities.candidates(demo_db, "演示", None)[0][0]
    async with running(demo_db, ReportService(demo_db)) as h:
        add_people(h)
        answer = await answer_to(h, ZH_USER, "演示 20")
        assert answer["results"] == []
        assert answer["button"] == {"text": t("zh", "bot.inline_open_in_bot"), "start_parameter": f"stock_{first}_20d"}
        # a sector asked by name opens that sector's report: its code in the link, not the market's
        answer = await answer_to(h, ZH_USER, "top 20 电子")
        assert answer["button"]["start_parameter"] == "top_270000_20d"
        answer = await answer_to(h, EN_USER, "sectors Banks")
        assert answer["button"]["start_parameter"] == "sectors_480000"


# ------------------------------------------------------------------------------------------------
# 3. Short reasons on the results button
# ------------------------------------------------------------------------------------------------


async def test_report_errors_get_short_reasons_with_the_useful_part_first(
        demo_db: Engine, shared_reports: ReportService) -> None:
    async with running(demo_db, shared_reports) as h:
        add_people(h)
        cases = [
            (EN_USER, "ratio 2099-01-01", f"No data for 2099-01-01 · latest {LATEST}"),
            (ZH_USER, "ratio 2099-01-01", f"2099-01-01 无数据 · 最新 {LATEST}"),
            (EN_USER, "balance 2025-10-04", "No data for 2025-10-04 · nearest before: 2025-09-30"),
            (ZH_USER, "balance 2025-10-04", "2025-10-04 无数据 · 此前最近 2025-09-30"),
            (EN_USER, "ratio 2000-01-04", "No data for 2000-01-04 · data start 2023-01-02"),
            (EN_USER, "999999", "999999: no margin detail (not a margin security?)"),
            (ZH_USER, "top 没有这个行业", "没有行业 “没有这个行业” · 例如 电子 或 270000"),
            (EN_USER, "top 电", "Sectors with “电”: Electronics, Home Appliances, Power Equipment"),
            (ZH_USER, "top 电", "名称含 “电” 的行业：电子、家用电器、电力设备"),
            (EN_USER, "sectors 250 2023-03-01", "History before 2023-03-01 too short for a 250-day window"),
            (EN_USER, "top 1 2023-01-02", "2023-01-02 is the data's first day: nothing to compare"),  # 1 day
            (ZH_USER, "ratio 2024-02-30", "“2024-02-30” 这一天不存在"),
            (ZH_USER, "ratio 2024-9", "“2024-9” 不是日期：请用 YYYY-MM-DD，例如 2024-09-30"),
        ]
        for user, query, reason in cases:
            answer = await answer_to(h, user, query)
            assert (answer["results"], button_text(answer)) == ([], reason), query
            assert len(reason) <= BUTTON_TEXT_LIMIT, query


def _sample(field: str) -> object:
    """A parameter of an error as long as it gets in practice (a sector's longest English name, ...);
    one not listed here, a code's length."""
    samples: dict[str, object] = {
        "code": "600519", "query": "贵州茅台", "date": "2024-09-30", "latest": "2026-11-20",
        "nearest": "2024-09-27", "first": "2023-01-02", "days": 2500, "min": 1, "max": 2500,
        "sector": {"zh": "石油石化", "en": "Oil & Petrochemicals"},
        "candidates": {"zh": ["电子", "家用电器"], "en": ["Electronics", "Home Appliances"]},
        "count": 540, "example": "600519",
    }
    return samples.get(field, "600519")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_report_error_has_a_short_reason_that_fits_the_button(lang: str) -> None:
    """Every ReportError kind (an error.* string) has its inline_reason_<kind> in both languages, with
    no parameter its error lacks, and fits the button's one line with parameters of usual length."""
    kinds = [k for k in strings(lang)["error"] if k != "no_data_hint"]  # a hint, not an error's kind
    missing = [k for k in kinds if f"inline_reason_{k}" not in strings(lang)["bot"]]
    assert missing == []
    for kind in kinds:
        fields = {f for _, f, _, _ in string.Formatter().parse(t(lang, f"error.{kind}")) if f}
        short = {f for _, f, _, _ in string.Formatter().parse(t(lang, f"bot.inline_reason_{kind}")) if f}
        assert short <= fields, kind
        reason = _reason(ReportError(kind, **{f: _sample(f) for f in fields}), lang)
        assert len(reason) <= BUTTON_TEXT_LIMIT, (kind, reason)


def test_an_error_without_a_short_reason_falls_back_to_its_line() -> None:
    error = ReportError("no_data_hint")  # a string of error.* that has no short form
    assert _reason(error, "en") == t("en", "error.no_data_hint")
