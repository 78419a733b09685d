"""Arguments of the report commands: `/ratio 250`, `/sectors 20 2024-09-30`, `/stock 600519 60 2024-09-30`,
`/top 5 电子`.

After the code (for /stock), at most one window (trade days) and one date, in either order; /top and
/sectors also take a sector (its words are those that are neither a number nor a date: "Food & Beverage").
A word that looks like a date (see looks_like_date) is read as one; any other word as a window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from marginbot.settings import TIMEZONE
from reports.figures import KINDS, MIN_DAYS, SECTOR_KINDS, window_limit
from reports.fmt import clipped
from reports.securities import code_form, exchange_mismatch, normalized

# What an answer to bad arguments offers to copy, per command.
EXAMPLES = {"balance": "/balance 60", "ratio": "/ratio 250", "sectors": "/sectors 20",
            "signals": "/signals 60", "stock": "/stock 600519 60", "top": "/top 5"}
DATE_EXAMPLE = "2024-09-30"
_DATE_RE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})|(\d{4})(\d{2})(\d{2})|(\d{4})年(\d{1,2})月(\d{1,2})[日号]?")
# digits, a separator, then a digit or another separator ("2024-09-30", "2024--09-30", not "00700.HK")
_DATE_SHAPE = re.compile(r"\d+[-/.][-/.\d]")
_CHINESE_DATE_SHAPE = re.compile(r"\d{2,4}年")  # 2024年9月30日, and its near misses (2024年9月)
# A security's code in brackets, the end of a security as the bot lists it: 演示股份0241 (000053)
_BRACKETED_CODE = re.compile(r"\(\d{6}\)")
# A date without its year, as people write this year's: 9/30, 9-30, 9月30日 (or 9月30号)
_MONTH_DAY = re.compile(r"(\d{1,2})[-/](\d{1,2})|(\d{1,2})月(\d{1,2})[日号]?")
# Days named by a word, counted back from today in Asia/Shanghai (昨天: the day before today)
RELATIVE_DAYS = {"今天": 0, "今日": 0, "today": 0, "昨天": 1, "昨日": 1, "yesterday": 1, "前天": 2}
# A window with its unit, as the window buttons label it: 20日, 20d (and 20天, 20 days, 20交易日)
_WINDOW_WITH_UNIT = re.compile(r"([+-]?\d+)(?:个?交易日|日|天|d|days?)", re.IGNORECASE)


@dataclass(frozen=True)
class ReportArgs:
    code: str | None = None
    days: int | None = None
    on: date | None = None
    # `on` named by a word (今天, 昨天): the answer is the latest day with data on or before it (the
    # data of a day come out that evening; yesterday may be a Sunday), not "no data that day"
    nearest: bool = False


class NoSuchDay(ValueError):
    """A date written in a known form that is not a day of the calendar (2024-02-30, 2024-13-01)."""


class ArgumentError(Exception):
    """Arguments a user got wrong; `key` names the answer in the per-language strings."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def is_relative_day(word: str) -> bool:
    """A word naming a day relative to today (今天, 昨天, yesterday: RELATIVE_DAYS)."""
    return word.lower() in RELATIVE_DAYS


def looks_like_date(word: str) -> bool:
    """Meant as a date: YYYY-MM-DD (also with / or .), YYYYMMDD, or a near miss of those (2024-9,
    24-09-30, 2024-02-30: answered as a bad date, not as a bad window). That is: eight digits, or six
    characters or more that start with digits and a separator followed by a digit or another
    separator. So "6.5" or "-5" is a bad window, "no-such" a word, and digits with an exchange's
    suffix (00700.HK, 600519.HK) a security to look up."""
    if len(word) == 8 and word.isdigit():
        return True
    if is_relative_day(word):
        return True
    if _CHINESE_DATE_SHAPE.match(word) or _MONTH_DAY.fullmatch(word):
        return True
    return _DATE_SHAPE.match(word) is not None and len(word) >= 6


def parse_date(word: str, today: date | None = None) -> date:
    """YYYY-MM-DD (also with / or . as separator, YYYYMMDD, or 2024年9月30日/号), a month and day
    without the year (9/30, 9-30, 9月30日): the latest such date not after `today` (default: today in
    Asia/Shanghai), this year's or last year's; or a day named relative to today (今天, 昨天, 前天,
    today, yesterday: RELATIVE_DAYS). NoSuchDay for a known form that names no day (2024-02-30),
    ValueError for anything else."""
    today = today or datetime.now(TIMEZONE).date()
    if word.lower() in RELATIVE_DAYS:
        return today - timedelta(days=RELATIVE_DAYS[word.lower()])
    match = _DATE_RE.fullmatch(word)
    if match is not None:
        year, month, day = (int(g) for g in match.groups() if g is not None)
        return _calendar_day(word, year, month, day)
    match = _MONTH_DAY.fullmatch(word)
    if match is None:
        raise ValueError(word)
    month, day = (int(g) for g in match.groups() if g is not None)
    _calendar_day(word, 2000, month, day)  # a day of some year (2000 is a leap year: 2/29 is one)
    this_year = date(today.year, month, day) if (month, day) != (2, 29) or _leap(today.year) else None
    if this_year is not None and this_year <= today:
        return this_year
    year = today.year - 1
    while (month, day) == (2, 29) and not _leap(year):  # 2/29: the last leap year's
        year -= 1
    return date(year, month, day)


def _calendar_day(word: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise NoSuchDay(word) from None


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_days(kind: str, word: str) -> int:
    """A window: a whole number of trade days from MIN_DAYS (1) to the command's limit; ValueError otherwise."""
    days = int(word)
    if not MIN_DAYS <= days <= window_limit(kind):
        raise ValueError(word)
    return days


def typed_words(words: list[str]) -> list[str]:
    """The words of a command as meant: full-width digits and punctuation as ASCII (a Chinese
    keyboard's ２０２４－０９－３０ is 2024-09-30), a window with its unit as the number (20日, 20d:
    the window buttons' labels), and a security pasted back as the bot lists it,
    name then bracketed code ("演示股份0241 (000053)"), as one word, whose code it is."""
    joined: list[str] = []
    for word in (w for w in map(normalized, words) if w):
        with_unit = _WINDOW_WITH_UNIT.fullmatch(word)
        if with_unit is not None:  # 20日, 20d: the window 20
            word = with_unit.group(1)
        if _BRACKETED_CODE.fullmatch(word):
            name: list[str] = []  # the words of the name before it: neither a window nor a date
            while joined and not _is_window_word(joined[-1]) and not looks_like_date(joined[-1]):
                name.insert(0, joined.pop())
            word = " ".join([*name, word])
        joined.append(word)
    return joined


def _security_word(words: list[str]) -> str:
    """The word of /stock that names the security: the first that is neither a date nor a window
    ("/stock 2024-09-30 600519", "/stock 60 茅台"); with none such, the first that is not a date (digits
    of a name, or a wrong code: the report answers). A word naming a day (今天) alone is the start of
    a name (今天国际), not a date. Only dates: ArgumentError need_code."""
    undated = [w for w in words if not (looks_like_date(w) and code_form(w) is None)]
    if not undated:
        relative = [w for w in words if is_relative_day(w)]
        if relative:
            return relative[0]
        raise ArgumentError("bot.need_code")
    named = [w for w in undated if not _is_window_word(w)]
    return (named or undated)[0]


def parse_report_args(kind: str, words: list[str]) -> ReportArgs:
    """The code (for `stock`; for `top` and `sectors`, the sector), window and date of a report command;
    ArgumentError for bad ones."""
    code: str | None = None
    words = typed_words(words)
    if kind == "stock":
        code = _security_word(words)
        words = list(words)
        words.remove(code)  # that word alone: "/stock 1 1" keeps its second "1" (a window)
    days: int | None = None
    on: date | None = None
    example = EXAMPLES[kind]
    for word in words:
        shown = clipped(word, 32)  # echoed back, escaped by the caller
        if looks_like_date(word):
            if on is not None:
                raise ArgumentError("bot.too_many_arguments", example=f"{example} {DATE_EXAMPLE}")
            try:
                on = parse_date(word)
            except NoSuchDay:
                raise ArgumentError("bot.no_such_day", date=shown, example=DATE_EXAMPLE) from None
            except ValueError:
                raise ArgumentError("error.bad_date", date=shown) from None
        elif kind in SECTOR_KINDS and not _is_window_word(word):
            # a sector's name (电子, Food & Beverage) or six digits: its code (270000) or index (801080),
            # never a window (at most 2500 trade days); as inline mode reads it
            code = word if code is None else f"{code} {word}"
        else:
            if days is not None:
                raise ArgumentError("bot.too_many_arguments", example=f"{example} {DATE_EXAMPLE}")
            try:
                days = parse_days(kind, word)
            except ValueError:
                raise ArgumentError("bot.bad_window", value=shown, max=window_limit(kind), example=example) from None
    return ReportArgs(code, days, on, nearest=any(is_relative_day(w) for w in words if looks_like_date(w)))


# Inline mode: the reports a chat can share, and the Chinese words that name them.
INLINE_REPORTS = ("summary", "balance", "ratio", "sectors", "signals", "top")
INLINE_ALIASES = {"两融": "balance", "余额": "balance", "两融余额": "balance", "占比": "ratio", "交易占比": "ratio",
                  "两融交易占比": "ratio", "行业": "sectors", "板块": "sectors", "信号": "signals", "预警": "signals",
                  "概览": "summary", "每日概览": "summary", "日报": "summary", "排行": "top", "排名": "top"}
STOCK_WORDS = ("stock", "个股")
UNWINDOWED = ("summary",)  # the daily push's report: no command asks it for a window, nor does inline mode
REPORT_COMMANDS = tuple(k for k in KINDS if k not in UNWINDOWED)  # a command each: all but the push's summary


def takes_window(kind: str, days: int) -> bool:
    """Whether a report takes `days` as its window: parse_days's range, and never the summary's."""
    return kind not in UNWINDOWED and MIN_DAYS <= days <= window_limit(kind)


def _inline_example(kind: str) -> str:
    """EXAMPLES' command as typed inline: "ratio 250", "stock 600519 60"."""
    return EXAMPLES[kind].lstrip("/")


def _is_window_word(word: str) -> bool:
    """A number shorter than a code ("20", "-5", "+60"): a window, where the query says what to show."""
    return word.lstrip("+-").isdigit() and len(word) < 6


@dataclass(frozen=True)
class InlineRequest:
    """What an inline query asks for: `wanted` (kind, target) pairs to offer, in order, where target
    is a security's code or a sector's name; `name`, part of a security's name still to be looked up
    (its matches replace `wanted`); `on`, the date asked; `days`, the window asked (the reports of
    `wanted` that take no such window are left out: see takes_window); `refusal`, what is wrong with
    the query (a bad date or window, two of them): nothing is offered, the reason is."""

    wanted: tuple[tuple[str, str | None], ...]
    name: str | None = None
    on: date | None = None
    days: int | None = None
    refusal: ArgumentError | None = None
    nearest: bool = False  # as ReportArgs.nearest: `on` came from 今天, 昨天, ...

    @property
    def asks_render(self) -> bool:
        """True when the query asks for more than the latest charts that are warmed for everyone."""
        return (self.on is not None or self.days is not None or self.name is not None
                or any(target for _, target in self.wanted))


def _refused(key: str, **params: object) -> InlineRequest:
    return InlineRequest((), refusal=ArgumentError(key, **params))


def _with_window(request: InlineRequest, word: str | None) -> InlineRequest:
    """`request` with the window `word`, validated as the commands validate it (parse_days) for the
    reports it would apply to: a name's securities, or the reports of `wanted`. A window that none of
    them takes is refused, with the range of the one that takes the longest."""
    if word is None:
        return request
    kinds = ["stock"] if request.name is not None else [kind for kind, _ in request.wanted]
    windowed = [kind for kind in kinds if kind not in UNWINDOWED]
    if not windowed:  # the summary alone: it has no window (a command never gives it one either)
        return _refused("bot.inline_no_window")
    for kind in windowed:
        try:
            days = parse_days(kind, word)
        except ValueError:
            continue
        return InlineRequest(request.wanted, request.name, request.on, days)
    widest = max(windowed, key=window_limit)
    return _refused("bot.inline_bad_window", value=clipped(word, 32), max=window_limit(widest),
                    example=_inline_example(widest))


def parse_inline_query(text: str) -> InlineRequest:
    """_parse_inline_query, with `nearest` where the date asked is a word naming a day (昨天)."""
    request = _parse_inline_query(text)
    typed = typed_words(text.split())
    if request.on is not None and len(typed) > 1 and any(is_relative_day(w) for w in typed):
        return replace(request, nearest=True)
    return request


def _parse_inline_query(text: str) -> InlineRequest:
    """Read `@bot ratio`, `@bot 600519` (a code in any usual form: 600519.SH), `@bot 茅台`, `@bot top 电子`,
    `@bot sectors 270000`, `@bot ratio 2024-09-30`, `@bot top 20 电子`, `@bot 600519 250` and their
    Chinese aliases (两融, 占比, 行业, ...).

    A code comes before a date (600519.SH holds a dot, as dates may). A number shorter than a code is a
    window (trade days) when another word says what to show; alone, or after `stock`, it is a code
    being typed ("6005" on the way to 600519) and is looked up as one. Six digits after `top` or
    `sectors` are a sector's code or index (801080), elsewhere a security's code. No word that names a
    report: every report whose name starts with the first word, or all of them. A name keeps the
    case it was typed in (the lookup ignores case; a reason quotes it as typed).
    """
    typed = typed_words(text.split())
    dates = [w for w in typed if looks_like_date(w) and code_form(w) is None]
    if len(typed) == 1 and dates and is_relative_day(dates[0]):
        dates = []  # "今天" alone: the start of a name being typed (今天国际), as any other word
    typed = [w for w in typed if w not in dates]
    on: date | None = None
    if len(dates) > 1:
        # the report's word and a date ("ratio 2024-09-30"; a stock's with its code)
        words = _example_of(typed).split()
        return _refused("bot.inline_one_date", example=" ".join([*words[:2 if words[0] == "stock" else 1],
                                                                 DATE_EXAMPLE]))
    if dates:
        try:
            on = parse_date(dates[0])
        except NoSuchDay:
            return _refused("bot.inline_reason_no_such_day", date=clipped(dates[0], 32))
        except ValueError:
            return _refused("bot.inline_reason_bad_date", date=clipped(dates[0], 32))
    numbers = [w for w in typed if _is_window_word(w)]
    others = [w for w in typed if not _is_window_word(w)]
    if any(w.lower() not in STOCK_WORDS for w in others):
        typed = others  # "top 20 电子", "600519 250": the numbers are windows
    else:
        numbers = []  # "6005", "stock 6005": a code on its way
    if len(numbers) > 1:
        return _refused("bot.inline_one_window", example=_example_of(typed))
    window = numbers[0] if numbers else None
    words = [w.lower() for w in typed]
    asked = INLINE_ALIASES.get(words[0], words[0]) if words else None
    if asked in SECTOR_KINDS:
        sector = " ".join(words[1:]) or None
        return _with_window(InlineRequest(((str(asked), sector),), on=on), window)
    coded = next((w for w in typed if code_form(w)), None)
    if coded is not None:
        # a code in another exchange's form (sh000001: an index) goes as typed, for the report to refuse
        code = coded if exchange_mismatch(coded) else code_form(coded)
        return _with_window(InlineRequest((("stock", code),), on=on), window)
    names = typed[1:] if words and words[0] in STOCK_WORDS else typed
    reports = [k for k in INLINE_REPORTS if not words or k.startswith(words[0])]
    if words and words[0] in INLINE_ALIASES:
        reports = [INLINE_ALIASES[words[0]]]
    first = names[0].lower() if names else ""
    names_a_report = bool(names) and first not in STOCK_WORDS and (
        first in INLINE_ALIASES or any(k.startswith(first) for k in INLINE_REPORTS))
    wanted = tuple((k, None) for k in (reports or INLINE_REPORTS))
    if names and not names_a_report:
        return _with_window(InlineRequest(wanted, name=names[0], on=on), window)
    if len(names) > 1:  # "ratio foo": a word after the report's that means nothing to it, not ignored
        return _refused("bot.inline_extra_words", words=clipped(" ".join(names[1:]), 32),
                        example=_example_of(typed))
    return _with_window(InlineRequest(wanted, on=on), window)


def _example_of(typed: list[str]) -> str:
    """The example an inline refusal offers: that of the report the query's first word names
    (_inline_example), a stock's where it names none."""
    for word in typed:
        lowered = word.lower()
        kind = INLINE_ALIASES.get(lowered) or next((k for k in INLINE_REPORTS if k.startswith(lowered)), None)
        if kind is not None and kind not in UNWINDOWED:
            return _inline_example(kind)
        if not _is_window_word(word):
            break
    return _inline_example("stock")
