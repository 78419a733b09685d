"""Number and date formatting at the edge: 元 inside, 亿元 / 万亿 (zh) or bn / trn (en) on screen
(the scales and unit words are each language's, in templates/<lang>/strings.toml [units])."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from datetime import date

from reports.i18n import strings, t

HEADLINE_MIN = 1e11  # 元, 0.1 万亿: smaller headline balances are shown in 亿元 / bn


def money_scale(lang: str) -> float:
    """元 per on-screen money unit: 1e8 (亿元) in Chinese, 1e9 (bn) in English."""
    return float(strings(lang)["units"]["money_scale"])


def headline_scale(lang: str) -> float:
    """元 per headline unit (万亿 / trillion): 1e12."""
    return float(strings(lang)["units"]["headline_scale"])


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _shown(value: float, digits: int = 2) -> float:
    """`value` as it prints with `digits` decimals, without a negative zero: -0.004 shows as 0.00,
    never "-0.00", and is neither up nor down."""
    return round(value, digits) + 0.0


def _sign(value: float, signed: bool) -> str:
    return "+" if signed and value > 0 else ""


def amount(value: float | None, lang: str, signed: bool = False) -> str:
    """元 -> the bare number in the language's money unit: "7,077.67" (亿元, zh) or "707.77" (bn, en),
    two decimals; "—" when unknown. For tables whose header names the unit."""
    if _missing(value):
        return "—"
    shown = _shown(value / money_scale(lang))  # type: ignore[operator]
    return f"{_sign(shown, signed)}{shown:,.2f}"


def money(value: float | None, lang: str, signed: bool = False) -> str:
    """元 -> "7,077.67 亿元" (zh) or "707.77 bn" (en), two decimals; "—" when unknown."""
    shown = amount(value, lang, signed)
    return shown if shown == "—" else t(lang, "units.money", value=shown)


def security_money(value: float | None, lang: str, signed: bool = False) -> str:
    """One security's figure, each in its own unit: as money() from one money unit up (1 亿元 / 1 bn),
    below it in the language's small unit ("674.29 万元", "6.74 mn"), where two decimals of 亿元 or bn
    would round a stock's balance or change to 0.00. Figure by figure, as exchange and broker pages
    print them: one unit for a whole list would print its small figures as 0.00."""
    if _missing(value) or abs(value) >= money_scale(lang):  # type: ignore[arg-type]
        return money(value, lang, signed)
    units = strings(lang)["units"]
    shown = _shown(value / float(units["small_scale"]))  # type: ignore[operator]
    return t(lang, "units.small", value=f"{_sign(shown, signed)}{shown:,.2f}")


def axis_unit(values: Sequence[float], lang: str) -> tuple[float, str]:
    """The unit of a chart axis of one security's (or sector's) money figures, as security_money
    chooses it for one figure: (元 per unit, the unit's name). The money unit (亿元 / CNY bn) where the
    largest |value| reaches one of it, else the small unit (万元 / CNY mn): a stock's 3,000 万元
    balance on an axis of 0.295 · 0.300 · 0.305 亿元 reads as noise. NaN values are ignored."""
    units = strings(lang)["units"]
    finite = [abs(v) for v in values if not _missing(v) and not math.isinf(v)]
    if finite and max(finite) >= money_scale(lang):
        return money_scale(lang), str(units["money_unit"])
    return float(units["small_scale"]), str(units["small_unit"])


def headline_money(value: float | None, lang: str) -> str:
    """The headline balance: 万亿 (zh) or trillion (en), two decimals; under 0.1 万亿 (the first
    years of margin trading), where two decimals of 万亿 would show 0.00, in 亿元 or bn."""
    if _missing(value):
        return "—"
    if abs(value) < HEADLINE_MIN:  # type: ignore[arg-type]
        return t(lang, "units.headline_small", value=amount(value, lang))
    return t(lang, "units.headline", value=f"{_shown(value / headline_scale(lang)):.2f}")  # type: ignore[operator]


def pct(value: float | None, signed: bool = False) -> str:
    """12.3456 -> "12.35%"; signed adds "+" to positive values."""
    if _missing(value):
        return "—"
    shown = _shown(value)  # type: ignore[arg-type]
    return f"{_sign(shown, signed)}{shown:.2f}%"


def pp(value: float | None) -> str:
    """Percentage points, signed: "+0.35pp", "-0.12pp", "0.00pp"."""
    if _missing(value):
        return "—"
    shown = _shown(value)  # type: ignore[arg-type]
    return f"{_sign(shown, True)}{shown:.2f}pp"


def number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if _missing(value):
        return "—"
    shown = _shown(value, digits)  # type: ignore[arg-type]
    return f"{_sign(shown, signed)}{shown:,.{digits}f}"


def arrow(value: float | None, scale: float = 1.0) -> str:
    """▲ for up, ▼ for down, • for neither, judged on the value as it prints: ``value / scale`` to two
    decimals (a change of 300,000 元 prints 0.00 亿元, and must not read as up). Colour is applied by
    charts, not text."""
    if _missing(value):
        return "•"
    shown = _shown(value / scale)  # type: ignore[operator]
    return "•" if shown == 0 else "▲" if shown > 0 else "▼"


def money_arrow(value: float | None, lang: str) -> str:
    """arrow() of a money() figure."""
    return arrow(value, money_scale(lang))


def security_arrow(value: float | None, lang: str) -> str:
    """arrow() of a security_money() figure."""
    if _missing(value) or abs(value) >= money_scale(lang):  # type: ignore[arg-type]
        return money_arrow(value, lang)
    return arrow(value, float(strings(lang)["units"]["small_scale"]))


def pace(class_: str, direction: str | None, lang: str) -> str:
    """The pace of the balance with its direction: 节奏平稳, 增长加快, 急剧下降 ... (strings [pace]); a
    steady or unknown pace has none (nor, never seen, a pace without the day's change)."""
    if class_ in ("steady", "unknown") or direction is None:
        return t(lang, f"pace.{class_}")
    return t(lang, f"pace.{class_}_{direction}")


def iso(day: date | str | None) -> str:
    if day is None:
        return "—"
    return day if isinstance(day, str) else day.isoformat()


def up_down_colors(lang: str) -> tuple[str, str]:
    """(up, down) colours: red-up/green-down in Chinese, green-up/red-down in English."""
    red, green = "#d62728", "#2ca02c"
    return (red, green) if lang == "zh" else (green, red)


def percentile_shown(value: float | None) -> int | None:
    """A percentile that is not the window's extreme (those read 最高 / 最低) as a whole number,
    1 to 99: 99.84 rounds to 100 and would read as the top, which only the highest value is."""
    if _missing(value):
        return None
    return min(99, max(1, int(round(value))))  # type: ignore[arg-type]


def ordinal(value: float | None) -> str:
    """51 -> "51st", 12 -> "12th" (English percentiles)."""
    if _missing(value):
        return "—"
    n = int(round(value))  # type: ignore[arg-type]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def display_width(text: str) -> int:
    """Columns `text` takes in a monospace font: East Asian wide and full-width characters (汉字,
    full-width punctuation) take two, everything else one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(rows: Sequence[Sequence[str]], align: str) -> str:
    """Rows of cells as lines of a monospace table, one space between columns.

    ``align`` has one letter per column: "l" pads the cell on the right, "r" on the left, each to
    the column's widest cell by `display_width`, so Chinese names line up with the numbers.
    """
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(align))]
    lines = []
    for row in rows:
        cells = []
        for cell, width, side in zip(row, widths, align, strict=True):
            pad = " " * (width - display_width(cell))
            cells.append(cell + pad if side == "l" else pad + cell)
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


ELLIPSIS = "…"


def clipped(text: str, limit: int) -> str:
    """User text echoed back (a code, a name, a command, words ignored), at most `limit` characters:
    a cut one ends in "…", so that nobody takes the echo for all they typed (and copies it as such).
    Cut before it is escaped for HTML, so no entity is ever cut in two."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS
