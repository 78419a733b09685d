"""Arguments of the report commands (bot.arguments): windows, dates and what is wrong with them."""

from __future__ import annotations

import inspect
import os
import re
from datetime import date
from typing import Any

import pytest

from bot.arguments import ArgumentError, NoSuchDay, ReportArgs, looks_like_date, parse_date, parse_report_args
from bot.sending import parse_start_payload, parse_window_data, pick_data, start_payload, window_data


@pytest.mark.parametrize(
    ("word", "day"),
    [("2024-09-30", date(2024, 9, 30)), ("2024/9/3", date(2024, 9, 3)), ("2024.09.30", date(2024, 9, 30)),
     ("20240930", date(2024, 9, 30)), ("2024-02-29", date(2024, 2, 29)), ("2024年9月30日", date(2024, 9, 30)),
     ("2024年9月3日", date(2024, 9, 3)), ("2024年09月30", date(2024, 9, 30)), ("2024年9月30号", date(2024, 9, 30))],
)
def test_dates_in_the_forms_people_type(word: str, day: date) -> None:
    assert looks_like_date(word)
    assert parse_date(word) == day


@pytest.mark.parametrize(("word", "day"), [
    ("9/30", date(2026, 9, 30)), ("9-30", date(2026, 9, 30)), ("9月30日", date(2026, 9, 30)),
    ("11月20号", date(2026, 11, 20)), ("11/22", date(2026, 11, 22)), ("11/23", date(2025, 11, 23)),
    ("12/31", date(2025, 12, 31)), ("2/29", date(2024, 2, 29))])
def test_a_date_without_its_year_is_the_latest_one_not_after_today(word: str, day: date) -> None:
    """As people write this year's dates: the latest such date up to today (2026-11-22 here), so
    that in January "12/31" is last year's; 2/29 the last leap year's."""
    assert looks_like_date(word)
    assert parse_date(word, today=date(2026, 11, 22)) == day


@pytest.mark.parametrize("word", ["13/1", "2/30", "0/5", "9月32日", "4/31"])
def test_a_month_and_day_that_do_not_exist_are_no_day(word: str) -> None:
    assert looks_like_date(word)
    with pytest.raises(NoSuchDay):
        parse_date(word, today=date(2026, 11, 22))


@pytest.mark.parametrize(("word", "day"), [("今天", date(2026, 11, 22)), ("今日", date(2026, 11, 22)),
                                           ("Today", date(2026, 11, 22)), ("昨天", date(2026, 11, 21)),
                                           ("yesterday", date(2026, 11, 21)), ("前天", date(2026, 11, 20))])
def test_days_named_relative_to_today(word: str, day: date) -> None:
    """今天, 昨天, 前天 (today, yesterday): counted back from today in Asia/Shanghai; the report then
    says when such a day has no data (a weekend, or not yet published) and which day does."""
    assert looks_like_date(word)
    assert parse_date(word, today=date(2026, 11, 22)) == day


@pytest.mark.parametrize("word", ["20日", "20d", "20D", "20天", "20days", "20交易日", "20个交易日"])
def test_a_window_with_its_unit_is_the_window(word: str) -> None:
    """The window buttons' labels (20日, 20d) typed back: the window 20, for every command."""
    assert parse_report_args("ratio", [word]) == ReportArgs(days=20)
    assert parse_report_args("top", [word, "电子"]) == ReportArgs(code="电子", days=20)


def test_a_day_word_alone_after_stock_or_inline_is_a_name_and_otherwise_the_nearest_data_day() -> None:
    """今天 alone is the start of a name people type (今天国际, 300532): /stock 今天 and the inline query
    "今天" look it up. With a report it names a day, answered with the latest day with data on or
    before it (nearest): the data of a day come out that evening, and yesterday may be a Sunday."""
    from bot.arguments import parse_inline_query

    assert parse_report_args("stock", ["今天"]) == ReportArgs(code="今天")
    request = parse_inline_query("今天")
    assert (request.name, request.on, request.nearest) == ("今天", None, False)
    args = parse_report_args("ratio", ["昨天"])
    assert args.nearest is True and args.on is not None
    assert parse_report_args("stock", ["600519", "今天"]).nearest is True
    assert parse_report_args("ratio", ["2024-09-30"]).nearest is False
    assert parse_inline_query("ratio 昨天").nearest is True and parse_inline_query("ratio 2024-09-30").nearest is False


@pytest.mark.parametrize("word", ["2024-02-30", "2023-02-29", "2024-13-01", "2024-00-10", "99999999", "2024年2月30日"])
def test_dates_in_a_known_form_that_name_no_day(word: str) -> None:
    assert looks_like_date(word)
    with pytest.raises(NoSuchDay):
        parse_date(word)


@pytest.mark.parametrize("word", ["24-09-30", "2024-09-30x", "2024--09-30", "2024-9", "2024年9月"])
def test_malformed_dates(word: str) -> None:
    assert looks_like_date(word)
    with pytest.raises(ValueError) as info:
        parse_date(word)
    assert not isinstance(info.value, NoSuchDay)


@pytest.mark.parametrize(
    "word", ["250", "1", "600519", "abc", "<b>", "1234567", "6.5", "-5", "1.5.3", "no-such-report"])
def test_windows_and_codes_are_not_dates(word: str) -> None:
    assert not looks_like_date(word)


@pytest.mark.parametrize(
    ("kind", "words", "want"),
    [
        ("ratio", [], ReportArgs()),
        ("ratio", ["250"], ReportArgs(days=250)),
        ("ratio", ["2024-09-30"], ReportArgs(on=date(2024, 9, 30))),
        ("ratio", ["60", "2024-09-30"], ReportArgs(days=60, on=date(2024, 9, 30))),
        ("ratio", ["20240930", "60"], ReportArgs(days=60, on=date(2024, 9, 30))),  # either order
        ("sectors", ["250"], ReportArgs(days=250)),
        ("balance", ["2500"], ReportArgs(days=2500)),
        ("stock", ["600519"], ReportArgs(code="600519")),
        ("stock", ["600519", "2024-09-30", "20"], ReportArgs(code="600519", days=20, on=date(2024, 9, 30))),
        ("stock", ["abc"], ReportArgs(code="abc")),  # the report answers for a bad code (it knows which exist)
        ("stock", ["2024-09-30", "600519"], ReportArgs(code="600519", on=date(2024, 9, 30))),  # date first
        ("stock", ["60", "600519.SH"], ReportArgs(code="600519.SH", days=60)),  # a window first
        ("stock", ["255", "60"], ReportArgs(code="255", days=60)),  # digits of a name, then a window
        ("stock", ["1", "1"], ReportArgs(code="1", days=1)),  # the same word twice: a name, then a window
        ("stock", ["600519.SH", "2024-09-30"], ReportArgs(code="600519.SH", on=date(2024, 9, 30))),
        ("top", ["5", "电子"], ReportArgs(code="电子", days=5)),  # /top takes a sector, in any position
        ("top", ["Banks", "2024-09-30"], ReportArgs(code="Banks", on=date(2024, 9, 30))),
        ("top", ["x"], ReportArgs(code="x")),  # a word: a sector the report looks up (and may not find)
        ("top", ["food", "&", "beverage", "20"], ReportArgs(code="food & beverage", days=20)),  # several words
        ("sectors", ["60", "医药"], ReportArgs(code="医药", days=60)),  # one sector alone
        ("top", ["270000", "5"], ReportArgs(code="270000", days=5)),  # six digits: a sector's code...
        ("sectors", ["801080"], ReportArgs(code="801080")),  # ...or its index, never a window
        # a Chinese keyboard: full-width digits and dashes, and 年月日
        ("ratio", ["２０２４－０９－３０"], ReportArgs(on=date(2024, 9, 30))),
        ("ratio", ["2024－09－30", "２５０"], ReportArgs(days=250, on=date(2024, 9, 30))),
        ("ratio", ["2024年9月30日"], ReportArgs(on=date(2024, 9, 30))),
        ("stock", ["600519", "２０２４－０９－３０"], ReportArgs(code="600519", on=date(2024, 9, 30))),
        # a security pasted back as the bot lists it, with its space: one security, not a window
        ("stock", ["演示股份0241", "(000053)"], ReportArgs(code="演示股份0241 (000053)")),
        ("stock", ["60", "演示股份0241", "(000053)", "2024-09-30"],
         ReportArgs(code="演示股份0241 (000053)", days=60, on=date(2024, 9, 30))),
        ("stock", ["ST", "某某", "(600001)"], ReportArgs(code="ST 某某 (600001)")),  # a name with a space
        ("stock", ["(000053)"], ReportArgs(code="(000053)")),
    ],
)
def test_report_arguments(kind: str, words: list[str], want: ReportArgs) -> None:
    assert parse_report_args(kind, words) == want


@pytest.mark.parametrize(
    ("kind", "words", "key", "params"),
    [
        ("stock", [], "bot.need_code", {}),
        ("stock", ["2024-09-30"], "bot.need_code", {}),  # a date, but no security
        ("ratio", ["0"], "bot.bad_window", {"value": "0", "max": 2500, "example": "/ratio 250"}),
        ("ratio", ["2501"], "bot.bad_window", {"value": "2501", "max": 2500, "example": "/ratio 250"}),
        ("sectors", ["251"], "bot.bad_window", {"value": "251", "max": 250, "example": "/sectors 20"}),
        ("balance", ["6.5"], "bot.bad_window", {"value": "6.5", "max": 2500, "example": "/balance 60"}),
        ("balance", ["-5"], "bot.bad_window", {"value": "-5", "max": 2500, "example": "/balance 60"}),
        ("balance", ["2024-9"], "error.bad_date", {"date": "2024-9"}),
        ("balance", ["x" * 40], "bot.bad_window", {"value": "x" * 31 + "…", "max": 2500, "example": "/balance 60"}),
        ("ratio", ["2024-02-30"], "bot.no_such_day", {"date": "2024-02-30", "example": "2024-09-30"}),
        ("ratio", ["60", "20"], "bot.too_many_arguments", {"example": "/ratio 250 2024-09-30"}),
        ("stock", ["600519", "2024-09-30", "2024-09-27"], "bot.too_many_arguments",
         {"example": "/stock 600519 60 2024-09-30"}),
        ("top", ["0"], "bot.bad_window", {"value": "0", "max": 2500, "example": "/top 5"}),
    ],
)
def test_bad_arguments_name_the_answer(kind: str, words: list[str], key: str, params: dict[str, object]) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_report_args(kind, words)
    assert (info.value.key, info.value.params) == (key, params)


def test_window_button_data_round_trip() -> None:
    assert window_data("ratio", 60, None, None) == "w:ratio:60:"
    assert window_data("stock", 250, "600519", date(2024, 9, 30)) == "w:stock:250:600519:20240930"
    assert parse_window_data("w:ratio:60:") == ("ratio", 60, None, None)
    assert parse_window_data("w:stock:250:600519:20240930") == ("stock", 250, "600519", date(2024, 9, 30))
    assert max(len(window_data(k, 2500, "600519", date(2024, 9, 30)).encode()) for k in ("balance", "sectors",
                                                                                         "signals", "stock")) <= 64
    assert parse_window_data(window_data("top", 20, "270000", None)) == ("top", 20, "270000", None)  # a sector
    # a choice button: the same fields under its own prefix, never read as a window button
    assert pick_data("stock", 60, "600519", None) == "p:stock:60:600519"
    assert parse_window_data("p:stock:60:600519", prefix="p") == ("stock", 60, "600519", None)
    with pytest.raises(ValueError):
        parse_window_data("p:stock:60:600519")
    for bad in ("w:nonsense:60:", "w:ratio:x:", "x:ratio:60:", "w:ratio:60", "w:ratio:60::2024-09-30",
                "w:ratio:60::20240230", "w:ratio:60:::",
                # windows no report takes (a forged or stale button): refused here, not by the report
                "w:ratio:0:", "w:ratio:2501:", "w:sectors:251:", "w:top:-5:"):
        with pytest.raises(ValueError):
            parse_window_data(bad)
    with pytest.raises(ValueError):
        parse_window_data("p:top:9999:", prefix="p")
    assert parse_window_data("w:sectors:250:") == ("sectors", 250, None, None)


def test_deep_link_payload_round_trip() -> None:
    """t.me/<bot>?start=<payload>: the report, its code (a security or a sector), its window and its
    date, in the characters Telegram allows (letters, digits, _ and -; 64 at most)."""
    cases = [("ratio", None, None, None), ("summary", None, None, None), ("stock", "600519", None, None),
             ("sectors", "370000", None, date(2024, 9, 30)), ("top", None, None, date(2024, 9, 30)),
             ("top", "270000", 20, None), ("sectors", "370000", 250, date(2024, 9, 30)),
             ("stock", "600519", 2500, None)]
    for kind, code, days, on in cases:
        payload = start_payload(kind, code, on, days)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload), payload
        assert parse_start_payload(payload) == (kind, code, days, on)
    assert start_payload("sectors", "370000", date(2024, 9, 30)) == "sectors_370000_20240930"
    assert start_payload("top", "270000", None, 20) == "top_270000_20d"
    for bad in ("", "nonsense", "stock", "stock_abc", "ratio_600519_20240930_x", "ratio_2024093", "ratio_20240230",
                "balance_12345", "ratio_0d", "ratio_020d", "ratio_2501d", "sectors_251d", "summary_20d",
                "ratio_20d_20d", "ratio_20240930_20d", "stock_20d"):
        with pytest.raises(ValueError):
            parse_start_payload(bad)


def test_admin_reports_tell_errors_apart_by_project_line_and_telegram_text() -> None:
    from telegram.error import BadRequest

    from bot.arguments import parse_days
    from bot.handlers.errors import _kind

    def raised(fn: Any) -> BaseException:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - the error itself is what is examined
            return exc
        raise AssertionError("nothing raised")

    def bad(text: str) -> None:
        raise BadRequest(text)

    # a ValueError: its type and the deepest line of the project's code it passed (int() in parse_days);
    # no text (the same line fails with every bad word)
    lines, first = inspect.getsourcelines(parse_days)
    int_line = first + next(i for i, line in enumerate(lines) if "int(word)" in line)
    raise_line = first + next(i for i, line in enumerate(lines) if "raise ValueError" in line)
    source = parse_days.__code__.co_filename
    assert source.endswith(f"{os.sep}bot{os.sep}arguments.py")
    assert _kind(raised(lambda: parse_days("ratio", "x"))) == f"ValueError {source}:{int_line}"
    assert _kind(raised(lambda: parse_days("ratio", "y"))) == f"ValueError {source}:{int_line}"
    assert _kind(raised(lambda: parse_days("ratio", "0"))) == f"ValueError {source}:{raise_line}"  # out of range
    # Telegram's errors, raised here (no project line): the type and the text, cut to 100 characters
    assert _kind(raised(lambda: bad("Message is too long"))) == "BadRequest  Message is too long"
    assert _kind(raised(lambda: bad("Can't parse entities"))) == "BadRequest  Can't parse entities"
    assert _kind(raised(lambda: bad("x" * 150))) == "BadRequest  " + "x" * 100
    assert _kind(ValueError("never raised")) == "ValueError "  # no traceback: type alone
