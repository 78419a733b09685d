"""The drawing engine under the report charts: fonts, a layout in pixels from measured text, tick
labels, names and values drawn in batches from cached glyph images, bars as one collection, and a
fast PNG encoder (reports.charts draws each report's chart with it).

Speed: text is what costs (every label is shaped with the large CJK font), so the layout is done
here in pixels instead of by matplotlib's constrained layout, which measures every artist twice:
margins come from the font sizes and the measured widths of the tick labels, ticks are computed
once and frozen, axis labels and titles are placed directly, bars are one collection per axes, tick
labels, names and bar values are drawn in batches (Labels) from cached glyph images, the axes of
each layout are copied from a pickled blank, and the PNG is written with fast deflate settings.
"""

from __future__ import annotations

import logging
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.markers import TICKDOWN, TICKLEFT, TICKRIGHT, TICKUP  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedFormatter,
    FixedLocator,
    Locator,
    NullFormatter,
    NullLocator,
    ScalarFormatter,
)
from matplotlib.transforms import Transform, offset_copy  # noqa: E402
from zlib_ng import zlib_ng  # noqa: E402

from reports.i18n import strings  # noqa: E402

log = logging.getLogger(__name__)

CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
)
CJK_FAMILY = "Noto Sans CJK SC"
DPI = 120
WIDTH_IN = 8.0  # 960 px at 120 dpi: sharp on a phone, small enough to send fast
LINE = "#1f4e79"
ACCENT = "#e08214"
BAND = "#c6dbef"
GRID = "#dddddd"
# Deflate level of the PNGs (zlib-ng, which writes the same format as zlib at twice its speed):
# 3 gives files 20% smaller than 1 for 1 ms more; 6, the usual default, takes twice as long for 7% less.
PNG_LEVEL = 3

# Layout, in pixels (1 pt = DPI / 72 px). Font sizes in points match the rcParams of setup_fonts.
PT = DPI / 72
EDGE = 10.0  # free border around the figure
TICK_SIZE, LABEL_SIZE, TITLE_SIZE, FOOTER_SIZE = 10.0, 11.0, 14.0, 9.0
TICK_SPACE = (3.5 + 3.5) * PT  # tick length + pad between tick and label (matplotlib defaults)
LABEL_PAD = 4.0 * PT  # between tick labels and the axis label (matplotlib default labelpad)
TITLE_PAD = 6.0 * PT  # between the axes and its title (matplotlib default)
OFFSET_PAD = 3.0 * PT  # between date tick labels and the year below them (matplotlib default)
GAP = 18.0  # extra room between stacked axes and between columns
FOOTER_GAP = 10.0  # between the lowest axis text and the footer
MIN_TITLE_SIZE = 8.0
NOTE_SIZE = LABEL_SIZE  # the line saying why a panel is left out (arrange's note)
NOTE_COLOR = "#777777"


def _line(size: float) -> float:
    """Height in pixels of one line of text at `size` points (CJK glyphs reach ~1.15 em)."""
    return 1.2 * size * PT


def line_height(size: float) -> float:
    """Height in pixels the layout gives one line of text at `size` points (1.2 em)."""
    return _line(size)


@cache
def setup_fonts() -> str:
    """Register Noto Sans CJK and make it the default family; returns the family used."""
    found = False
    for path in CJK_FONT_FILES:
        if Path(path).exists():
            font_manager.fontManager.addfont(path)
            found = True
    if not found:
        # Also accept any installed font that covers Chinese (e.g. a system package elsewhere).
        for entry in font_manager.fontManager.ttflist:
            if "CJK" in entry.name or "WenQuanYi" in entry.name:
                found = True
                family = entry.name
                break
        else:
            log.warning("no CJK font found: Chinese chart labels will not render (run scripts/setup.sh)")
            family = "DejaVu Sans"
    else:
        family = CJK_FAMILY
    matplotlib.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [family, "DejaVu Sans"],
            "axes.unicode_minus": False,  # CJK fonts lack U+2212; use "-" so negative ticks render
            # Whole values on every tick: an offset ("+3.016e1" in a corner) turns a flat balance
            # into ticks of 0.004 that read as the balance itself.
            "axes.formatter.useoffset": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            # Gridlines (and tick marks) under the bars and lines: grey lines crossing every bar of a
            # bar chart read as stripes in the data (flatten_ticks draws them at the axis' zorder too).
            "axes.axisbelow": True,
            "grid.color": GRID,
            "grid.linewidth": 0.6,
            "axes.titlesize": TITLE_SIZE,
            "axes.titleweight": "bold",
            "axes.labelsize": LABEL_SIZE,
            "xtick.labelsize": TICK_SIZE,
            "ytick.labelsize": TICK_SIZE,
            "legend.fontsize": 10,
            # a light box: a legend over a line (a ratio near its highs) stays readable
            "legend.frameon": True,
            "legend.framealpha": 0.85,
            "legend.edgecolor": "none",
            "legend.fancybox": False,
        }
    )
    return family


def _figure(height: float) -> Figure:
    """A figure WIDTH_IN wide with an Agg canvas; the chart functions place its axes themselves."""
    setup_fonts()
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    _Canvas(fig)
    return fig


def axes_grid(height: float, rows: int = 1, cols: int = 1, *, sharex: bool = False,
               height_ratios: tuple[float, ...] | None = None) -> tuple[Figure, list[Axes]]:
    """A figure (see _figure) with a grid of axes, row by row.

    Copied from a pickled blank of the same layout: unpickling restores the axes' state directly
    (~4 ms for four axes) where building them runs all of matplotlib's set-up again (~14 ms), and
    that set-up is the same for every chart of a layout.
    """
    fig = pickle.loads(_blank(height, rows, cols, sharex, height_ratios))
    _Canvas(fig)  # a pickled figure comes back with a plain canvas
    return fig, list(fig.axes)


@lru_cache(maxsize=32)
def _blank(height: float, rows: int, cols: int, sharex: bool, height_ratios: tuple[float, ...] | None) -> bytes:
    fig = _figure(height)
    fig.subplots(rows, cols, sharex=sharex, squeeze=False,
                 height_ratios=list(height_ratios) if height_ratios else None)
    return pickle.dumps(fig, protocol=pickle.HIGHEST_PROTOCOL)


@cache
def _measurer() -> RendererAgg:
    return RendererAgg(1, 1, DPI)


@lru_cache(maxsize=8192)
def _metrics(text: str, props: font_manager.FontProperties) -> tuple[float, float, float]:
    """(width, height, descent) in pixels at DPI; shaping a string with the CJK font costs ~1 ms."""
    return _measurer().get_text_width_height_descent(text, props, ismath=False)


@lru_cache(maxsize=64)
def _height_metrics(props: font_manager.FontProperties) -> tuple[float | None, float | None, float | None]:
    """(ascent, descent, line gap) in pixels of the font's nominal line, as matplotlib.text computes them
    for every text it lays out (two font-table reads each time); None where the font has no such table."""
    font = font_manager.get_font(font_manager.fontManager._find_fonts_by_props(props))
    scale = props.get_size_in_points() * DPI / 72 / font.get_sfnt_table("head")["unitsPerEm"]
    for table_name, gap, ascent, descent in (("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
                                            ("hhea", "lineGap", "ascent", "descent")):
        table = font.get_sfnt_table(table_name)
        if table is not None:
            return table[ascent] * scale, -table[descent] * scale, table[gap] * scale
    return None, None, None


@dataclass(frozen=True)
class _Ink:
    """A string rasterised once: its coverage (0-255) and where it sits relative to the text origin."""

    coverage: np.ndarray  # rows x columns, uint8
    left: int  # pixels from the origin to the first column
    bottom: int  # pixels from the origin down to the row below the last one (canvas y grows downwards)


@lru_cache(maxsize=4096)
def _ink(text: str, props: font_manager.FontProperties, angle: float, antialiased: bool) -> _Ink:
    """Rasterise `text` through matplotlib's own text path on a scratch canvas and keep the coverage.

    Laying out and rendering a string glyph by glyph with the large CJK font costs ~0.5 ms per text
    and a chart draws 30 to 80 of them, most of which (tick labels, names, titles, footer) recur from
    chart to chart; each is drawn once and then blitted. The origin is snapped to a whole pixel.
    """
    width, height, descent = _metrics(text, props)
    reach = int(np.ceil(max(width, height) + props.get_size_in_points() * PT)) + 4
    scratch = RendererAgg(2 * reach, 2 * reach, DPI)
    gc = scratch.new_gc()
    gc.set_foreground((0.0, 0.0, 0.0, 1.0), isRGBA=True)
    gc.set_antialiased(antialiased)
    RendererAgg.draw_text(scratch, gc, float(reach), float(reach), text, props, angle)
    gc.restore()
    alpha = np.asarray(scratch.buffer_rgba())[:, :, 3]
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if not len(rows):
        return _Ink(np.zeros((0, 0), dtype=np.uint8), 0, 0)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return _Ink(np.ascontiguousarray(alpha[top:bottom, left:right]), int(left) - reach, int(bottom) - reach)


class _Renderer(RendererAgg):
    """Agg renderer whose text measurements and text bitmaps outlive it.

    matplotlib caches text metrics per renderer, and every chart has a new one: tick labels, sector
    names, titles and the footer would be measured and rendered again for every chart.
    """

    def get_text_width_height_descent(self, s: str, prop: font_manager.FontProperties,
                                      ismath: Any) -> tuple[float, float, float]:
        if ismath or self.dpi != DPI:
            return super().get_text_width_height_descent(s, prop, ismath)
        return _metrics(s, prop.copy())  # a copy: FontProperties are mutable, their hash is not stable

    def _get_font_height_metrics(self, prop: font_manager.FontProperties) -> tuple[Any, Any, Any]:
        if self.dpi != DPI:
            return None, None, None
        return _height_metrics(prop.copy())

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: font_manager.FontProperties, angle: float,
                  ismath: Any = False, mtext: Text | None = None) -> None:
        if ismath or self.dpi != DPI or (mtext is not None and (mtext.get_fontfeatures() or mtext.get_language())):
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        ink = _ink(s, prop.copy(), float(angle), bool(gc.get_antialiased()))
        if ink.coverage.size:
            # draw_text_image takes the left column and the row below the bitmap, canvas y downwards
            self._renderer.draw_text_image(ink.coverage, round(x) + ink.left, round(y) + ink.bottom, 0, gc)
        return None


class _Canvas(FigureCanvasAgg):
    def get_renderer(self) -> RendererAgg:
        width, height = self.get_width_height(physical=True)
        key = (width, height, self.figure.dpi)
        if getattr(self, "_renderer_key", None) != key:
            self.renderer = _Renderer(width, height, self.figure.dpi)
            self._renderer_key = key
        return self.renderer


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in pixels of one line of text in the default family."""
    return float(_metrics(text, _props(size, bold))[0])


@lru_cache(maxsize=64)
def _props(size: float, bold: bool) -> font_manager.FontProperties:
    return font_manager.FontProperties(size=size, weight="bold" if bold else "normal")


# ----------------------------------------------------------------------------------------------
# Layout: axes placed in pixels from the sizes of the text around them
# ----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One axes of a chart and the text around it that the layout must leave room for."""

    ax: Axes
    title: str = ""
    title_size: float = TITLE_SIZE
    xticks: bool = True  # tick labels under the axes (False for the upper axes of a shared x)
    xlabel: bool = False
    twin: Axes | None = None  # a twinx on the right, with tick labels
    names: Sequence[str] = ()  # category labels left of the axes (drawn as texts, see _names)
    year_row: bool = False  # set by the layout: the date ticks print the year on a row of its own
    two_rows: bool = False  # set by the layout: the date tick labels alternate between two rows
    title_artist: Text | None = field(default=None, repr=False)  # set by the layout

    def top(self) -> float:
        return TITLE_PAD + _line(self.title_size) if self.title else 0.0

    def bottom(self) -> float:
        room = 0.0
        if self.xticks:
            room += TICK_SPACE + _line(TICK_SIZE) * (2 if self.two_rows else 1)
            if self.year_row:
                room += OFFSET_PAD + _line(TICK_SIZE)
        if self.xlabel:
            room += LABEL_PAD + _line(LABEL_SIZE)
        return room

    def tick_width(self) -> float:
        if self.names:
            return max(text_width(s, TICK_SIZE) for s in self.names)
        return _tick_labels_width(self.ax.yaxis)

    def left(self) -> float:
        room = TICK_SPACE + self.tick_width()
        if self.ax.get_ylabel():
            room += LABEL_PAD + _line(LABEL_SIZE)
        return room

    def right(self) -> float:
        if self.twin is None:
            return 14.0  # the last date / value label may stick out by half its width
        room = TICK_SPACE + _tick_labels_width(self.twin.yaxis)
        if self.twin.get_ylabel():
            room += LABEL_PAD + _line(LABEL_SIZE)
        return room


class _DayFormatter(FixedFormatter):
    """The fixed labels of ticks on days (_fix_day_ticks) and the two formats they can be written in:
    month and day (11月8日, Nov 8), or the day alone (8日, 8) where the month is the previous tick's,
    when the labels in full do not fit (_fit_date_ticks)."""

    def __init__(self, seq: Sequence[str], formats: tuple[str, str]) -> None:
        super().__init__(seq)
        self.formats = formats


def _fix_ticks(axis: Axis, locs: Any, labels: list[str], offset: str,
               day_formats: tuple[str, str] | None = None) -> None:
    """Fixed ticks: drawing then no longer runs the locator and formatter again and again.
    `day_formats`: the ticks are on days, written in the first format; see _DayFormatter."""
    axis.set_major_locator(FixedLocator(locs))
    fixed = _DayFormatter(labels, day_formats) if day_formats else FixedFormatter(labels)
    fixed.set_offset_string(offset)
    axis.set_major_formatter(fixed)


def _freeze(axis: Axis) -> None:
    """Compute the ticks the axis would get now (its size and limits must be final) and fix them."""
    locator, formatter = axis.get_major_locator(), axis.get_major_formatter()
    locs = np.asarray(locator(), dtype=float)
    labels = formatter.format_ticks(locs)
    _fix_ticks(axis, locs, labels, formatter.get_offset())


def refreeze_y(ax: Axes, low: float, high: float, locator: Locator) -> None:
    """New y limits for an axes already arranged (its ticks frozen): ticks from `locator` again,
    formatted as matplotlib's default formatter would."""
    ax.set_ylim(low, high)
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    _freeze(ax.yaxis)


def _tick_labels_width(axis: Axis) -> float:
    """Width in pixels of the widest tick label inside the view (the ticks are frozen first)."""
    return max((text_width(s, TICK_SIZE) for s in _read_ticks(axis.axes, axis).labels), default=0.0)


# Days shown around a chart's only date (a window holding one day of data: the first day of the
# history, a security just admitted to margin trading): its own date as the tick, not hours of it.
ONE_DAY_SPAN = 3.0
# Trade dates up to which every one gets a tick (a short window: the data date is labelled, and no
# tick falls on a weekend): a window of 10 days, and the base day before it where a chart draws it
# too (a stock's balance and purchases). Above it, ticks on days fall on every k-th trade date back
# from the last. Where the labels of every date would touch, they are written shorter and smaller
# (DAY_TICK_STYLES), never left out.
EVERY_DATE_MAX = 11
# How the ticks of a short window are written, tried in turn until neighbours keep TICK_GAP pixels
# apart: (the day alone where the month is the previous tick's, font size in points, rows). On two
# rows (a dashboard's narrow panel) the labels alternate, the data date's on the upper one; a label
# of the lower row starts with a line break (LOWER_ROW), as matplotlib would draw it too.
DAY_TICK_STYLES = ((False, TICK_SIZE, 1), (True, TICK_SIZE, 1), (True, 9.0, 1), (True, 8.0, 1),
                   (True, 9.0, 2), (True, 8.0, 2))
LOWER_ROW = "\n"
DAY_TICKS_MAX = 6  # ticks on days at most (matplotlib's locator gets minticks=3, maxticks=6 too)
MONTH_DAYS = 28.0  # ticks closer than this (in days) name days; farther apart, months or years
TICK_GAP = 8.0  # pixels at least between two date tick labels (see _fit_date_ticks)


def date_axis(ax: Axes, lang: str, dates: Any = None) -> None:
    """Date ticks computed once for the final limits of the x axis; a window with data on one date
    only shows ONE_DAY_SPAN days either side of it.

    `dates`: the trade dates drawn (datetimes or date numbers). Up to EVERY_DATE_MAX of them inside
    the view get a tick each; more, where ticks name days, every k-th back from the last (k =
    ceil(n / DAY_TICKS_MAX)), so the data date is labelled and no tick falls on a weekend. Without
    `dates`, or over months, matplotlib's AutoDateLocator picks 3 to 6 ticks.

    A tick on a day names its month too (11月8日, "Nov 8": a bare "08" reads as August, "4月" as a
    month), the year under the axis (two years: "2025–2026"); ticks on months or years are
    matplotlib's concise ones ("2026 · 4月 · 7月").
    """
    # The data's own span (of the axes sharing x too): matplotlib widens a single date's limits by
    # two years either side, which would read as a long empty history.
    spans = [sibling.dataLim.intervalx for sibling in ax.get_shared_x_axes().get_siblings(ax)]
    known = [(lo, hi) for lo, hi in spans if np.isfinite(lo) and np.isfinite(hi) and lo <= hi]
    chart = strings(lang)["chart"]
    formats = chart["dates"]
    day_formats = (str(formats["day"]), str(chart["day_only"]))
    if known and max(hi for _, hi in known) - min(lo for lo, _ in known) < 1.0:  # one date (bars: 0.8 wide)
        day = float(np.floor((min(lo for lo, _ in known) + max(hi for _, hi in known)) / 2.0 + 0.5))
        ax.set_xlim(day - ONE_DAY_SPAN, day + ONE_DAY_SPAN)
        _fix_day_ticks(ax, np.array([day]), day_formats)  # 3月31日 and the year below, as every day tick
        return
    low, high = ax.get_xlim()
    trade = _date_nums(dates, low, high)
    if trade is not None and 0 < len(trade) <= EVERY_DATE_MAX:
        _fix_day_ticks(ax, trade, day_formats)
        return
    locator = mdates.AutoDateLocator(minticks=3, maxticks=DAY_TICKS_MAX)
    ticks = np.asarray(locator.tick_values(mdates.num2date(low), mdates.num2date(high)), dtype=float)
    # Daily data: a tick between two days (12:00 on a window of a few days) names no trade date.
    ticks = ticks[ticks == np.floor(ticks)]
    if len(ticks) < 2:
        ticks = np.arange(np.ceil(low), np.floor(high) + 1.0)
    shown = ticks[(ticks >= low) & (ticks <= high)]
    if len(shown) < 2 or float(np.diff(shown).min()) < MONTH_DAYS:  # ticks on days
        if trade is not None and len(trade):
            step = int(np.ceil(len(trade) / DAY_TICKS_MAX))
            shown = trade[::-1][::step][::-1]  # every step-th trade date back from the data date
        _fix_day_ticks(ax, shown, day_formats)
        return
    concise = {key: formats[key] for key in ("formats", "zero_formats", "offset_formats")}
    formatter = mdates.ConciseDateFormatter(locator, **concise)
    labels = formatter.format_ticks(ticks)  # before get_offset: formatting sets the offset (the year)
    _fix_ticks(ax.xaxis, ticks, labels, formatter.get_offset())


def _date_nums(dates: Any, low: float, high: float) -> np.ndarray | None:
    """The distinct date numbers of `dates` inside [low, high], ascending; None without dates."""
    if dates is None:
        return None
    values = np.asarray(dates)
    if values.dtype.kind != "f":
        values = np.asarray(mdates.date2num(np.asarray(values, dtype="datetime64[ns]")), dtype=float)
    values = np.unique(values[np.isfinite(values)])
    return values[(values >= low) & (values <= high)]


def _fix_day_ticks(ax: Axes, ticks: np.ndarray, day_formats: tuple[str, str]) -> None:
    """Ticks on days, each labelled with its month and day; the year (or the two years the ticks
    span) below the axis. `day_formats`: month and day, the day alone (see _DayFormatter)."""
    days = [mdates.num2date(x) for x in ticks]
    years = sorted({d.year for d in days})
    offset = "" if not years else str(years[0]) if len(years) == 1 else f"{years[0]}\u2013{years[-1]}"
    _fix_ticks(ax.xaxis, np.asarray(ticks, dtype=float), _day_labels(ticks, day_formats, short=False), offset,
               day_formats)


def _day_labels(ticks: Sequence[float], day_formats: tuple[str, str], short: bool) -> list[str]:
    """Labels of ticks on days: month and day each; `short`, the day alone where the month is the
    previous tick's (3月31日 · 4月1日 · 2日 · 6日 · 7日), so every label still reads as a date."""
    labels: list[str] = []
    previous = None
    for x in ticks:
        day = mdates.num2date(float(x))
        same_month = previous is not None and (day.year, day.month) == (previous.year, previous.month)
        labels.append(day.strftime(day_formats[1] if short and same_month else day_formats[0]))
        previous = day
    return labels


def _fits(spots: np.ndarray, labels: Sequence[str], size: float, rows: int = 1) -> bool:
    """Whether labels centred on `spots` (pixels) keep TICK_GAP pixels between neighbours on their
    row (`rows` 2: every other label, counted back from the last, on a second row)."""
    widths = np.array([text_width(s, size) for s in labels])
    for row in range(rows):
        on_row = np.arange(len(labels) - 1 - row, -1, -rows)[::-1]
        room = np.diff(spots[on_row]) - (widths[on_row][:-1] + widths[on_row][1:]) / 2
        if not (room >= TICK_GAP).all():
            return False
    return True


def _on_rows(labels: list[str], rows: int) -> list[str]:
    """The labels with those of the lower row (every other one, counted back from the last) after a
    line break (LOWER_ROW)."""
    count = len(labels)
    return [LOWER_ROW + s if rows == 2 and (count - 1 - i) % 2 else s for i, s in enumerate(labels)]


def _fit_date_ticks(cell: Cell, width: float) -> None:
    """Date tick labels that would touch (a narrow panel, a long English month, the 10 dates of a
    short window) are written so that they do not. A short window's ticks on days (EVERY_DATE_MAX
    dates or fewer) keep a tick on every date: their labels are written shorter, then smaller
    (DAY_TICK_STYLES). Otherwise, or where even that does not fit, ticks are dropped: every k-th is
    kept, counted back from the last (the data date), with the smallest k that leaves TICK_GAP
    pixels between neighbours. `width`: the axes' width in pixels."""
    axis = cell.ax.xaxis
    formatter = axis.get_major_formatter()
    if not cell.xticks or not isinstance(formatter, FixedFormatter):
        return
    locs = np.asarray(axis.get_major_locator()(), dtype=float)
    labels = [s.removeprefix(LOWER_ROW) for s in formatter.seq]  # written again below (a second pass)
    low, high = sorted(cell.ax.get_xlim())
    inside = [(x, s) for x, s in zip(locs, labels, strict=False) if low <= x <= high]
    if len(inside) < 2 or high <= low:
        return
    spots = np.array([(x - low) / (high - low) * width for x, _ in inside])
    if isinstance(formatter, _DayFormatter) and len(inside) <= EVERY_DATE_MAX:
        days = [x for x, _ in inside]
        for short, size, rows in DAY_TICK_STYLES:
            written = _day_labels(days, formatter.formats, short)
            if _fits(spots, written, size, rows):
                written = _on_rows(written, rows)
                cell.two_rows = rows == 2
                if written != [s for _, s in inside] or size != TICK_SIZE:
                    _fix_ticks(axis, np.array(days), written, formatter.get_offset(), formatter.formats)
                    cell.ax.tick_params(axis="x", labelsize=size)  # matplotlib's own ticks too (flatten_ticks)
                return
    widths = np.array([text_width(s, TICK_SIZE) for _, s in inside])
    for step in range(1, len(inside)):
        keep = np.arange(len(inside) - 1, -1, -step)[::-1]
        room = np.diff(spots[keep]) - (widths[keep][:-1] + widths[keep][1:]) / 2
        if (room >= TICK_GAP).all():
            break
    if len(keep) == len(inside):
        return
    _fix_ticks(axis, np.array([inside[i][0] for i in keep]), [inside[i][1] for i in keep],
               formatter.get_offset())


def _title(cell: Cell) -> None:
    if cell.title:
        # an explicit y: matplotlib then skips measuring every tick label to place the title
        cell.title_artist = cell.ax.set_title(cell.title, loc="left", fontsize=cell.title_size, y=1.0, pad=6.0)


def arrange(fig: Figure, grid: Sequence[Sequence[Cell]], height_ratios: Sequence[float] | None = None,
             suptitle: tuple[str, float] | None = None, note: str = "") -> None:
    """Place the axes of `grid` (rows of cells; every row has the same number of cells) in pixels.

    Columns share their left and right edges, rows their top and bottom, as a grid of subplots does.
    `note`: one line of grey text between the axes and the footer (why a panel is left out).
    """
    width, height = fig.bbox.width, fig.bbox.height
    rows, cols = len(grid), len(grid[0])
    ratios = list(height_ratios or [1.0] * rows)
    top = EDGE + (_line(suptitle[1]) + 4 if suptitle else 0.0)
    bottom = EDGE + _line(FOOTER_SIZE) + FOOTER_GAP
    if note:
        _note(fig, note, bottom)
        bottom += _line(NOTE_SIZE) + FOOTER_GAP
    for row in grid:
        for cell in row:
            _title(cell)
            formatter = cell.ax.xaxis.get_major_formatter()
            cell.year_row = cell.xticks and isinstance(formatter, FixedFormatter) and bool(formatter.get_offset())
    # Twice where date tick labels need a second row (known once the widths are): the rows above
    # make room for it. The y ticks stay those of the first pass (one line of difference).
    for _ in range(2):
        two_rows = [cell.two_rows for row in grid for cell in row]
        tops = [max(c.top() for c in row) for row in grid]
        bottoms = [max(c.bottom() for c in row) for row in grid]
        free = height - top - bottom - sum(tops) - sum(bottoms) - GAP * (rows - 1)
        heights = [free * r / sum(ratios) for r in ratios]
        # vertical layout first: y ticks depend on the height of the axes, the left margins on y ticks
        y = height - top
        spans = []
        for i in range(rows):
            y -= tops[i]
            spans.append((y - heights[i], heights[i]))
            y -= heights[i] + bottoms[i] + GAP
        for i, row in enumerate(grid):
            for cell in row:
                _set_px(cell.ax, fig, 0.15 * width, spans[i][0], 0.7 * width / cols, spans[i][1])
                for ax in (cell.ax, cell.twin):
                    if ax is not None and not isinstance(ax.yaxis.get_major_formatter(), FixedFormatter):
                        _freeze(ax.yaxis)
        lefts = [max(grid[i][j].left() for i in range(rows)) for j in range(cols)]
        rights = [max(grid[i][j].right() for i in range(rows)) for j in range(cols)]
        col_width = (width - 2 * EDGE - sum(lefts) - sum(rights) - GAP * (cols - 1)) / cols
        x = EDGE
        starts = []
        for j in range(cols):
            x += lefts[j]
            starts.append(x)
            for i in range(rows):
                cell = grid[i][j]
                _set_px(cell.ax, fig, x, spans[i][0], col_width, spans[i][1])
                _fit_date_ticks(cell, col_width)
                _place_labels(cell, col_width, spans[i][1])
            x += col_width + rights[j] + GAP
        if [cell.two_rows for row in grid for cell in row] == two_rows:
            break
    # Titles start at the left edge of their axes; when one would run past the right edge of the
    # figure (long English titles in the dashboard), all start at the left edge of their column, and
    # only a title that still does not fit is set smaller.
    cells = [(cell, j) for row in grid for j, cell in enumerate(row) if cell.title]
    wide = any(text_width(c.title, c.title_size, bold=True) > width - EDGE - starts[j] for c, j in cells)
    for cell, j in cells:
        shift = lefts[j] if wide else 0.0
        if shift and cell.title_artist is not None:
            cell.title_artist.set_x(-shift / col_width)
        _fit_title(cell, width - EDGE - starts[j] + shift)
    if suptitle:
        fig.text(0.5, 1 - EDGE / height, suptitle[0], fontsize=suptitle[1], fontweight="bold",
                 ha="center", va="top")


def _note(fig: Figure, text: str, bottom: float) -> Text:
    """One line of grey text centred `bottom` pixels above the figure's lower edge, set smaller
    (down to MIN_TITLE_SIZE) where it would be wider than the figure."""
    width = fig.bbox.width
    size = NOTE_SIZE
    needed = text_width(text, size)
    if needed > width - 2 * EDGE:
        size = max(MIN_TITLE_SIZE, size * (width - 2 * EDGE) / needed)
    return fig.text(0.5, bottom / fig.bbox.height, text, fontsize=size, color=NOTE_COLOR, ha="center", va="bottom")


def _set_px(ax: Axes, fig: Figure, x: float, y: float, w: float, h: float) -> None:
    fw, fh = fig.bbox.width, fig.bbox.height
    ax.set_position((x / fw, y / fh, w / fw, h / fh))


def _place_labels(cell: Cell, width: float, height: float) -> None:
    """Axis labels at fixed spots: matplotlib then skips measuring the tick labels to place them."""
    ax = cell.ax
    if ax.get_ylabel():
        ax.yaxis.set_label_coords(-(TICK_SPACE + cell.tick_width() + LABEL_PAD) / width, 0.5)
    if cell.twin is not None and cell.twin.get_ylabel():
        cell.twin.yaxis.set_label_coords(1 + (TICK_SPACE + _tick_labels_width(cell.twin.yaxis) + LABEL_PAD) / width,
                                         0.5)
    if ax.get_xlabel():
        below = (TICK_SPACE + _line(TICK_SIZE) * (2 if cell.two_rows else 1)
                 + (OFFSET_PAD + _line(TICK_SIZE) if cell.year_row else 0.0))
        ax.xaxis.set_label_coords(0.5, -(below + LABEL_PAD) / height)


def _fit_title(cell: Cell, room: float) -> None:
    """Shrink a title that would run past the right edge of the figure (long English titles)."""
    if cell.title_artist is None:
        return
    needed = text_width(cell.title, cell.title_size, bold=True)
    if needed > room:
        cell.title_artist.set_fontsize(max(MIN_TITLE_SIZE, cell.title_size * room / needed))


# ----------------------------------------------------------------------------------------------
# Drawing helpers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ticks:
    """One axis' ticks inside its view, read before any axis is flattened (shared axes share a ticker)."""

    ax: Axes
    axis: Axis
    locs: np.ndarray
    labels: list[str]
    offset: str


def _read_ticks(ax: Axes, axis: Axis) -> _Ticks:
    if not isinstance(axis.get_major_formatter(), FixedFormatter):
        _freeze(axis)  # limits are final now (bar labels widened them)
    locs = np.asarray(axis.get_major_locator()(), dtype=float)
    formatter = axis.get_major_formatter()
    labels = formatter.format_ticks(locs)
    low, high = sorted(axis.get_view_interval())
    slack = (high - low) * 1e-9
    inside = (locs >= low - slack) & (locs <= high + slack)
    return _Ticks(ax, axis, locs[inside], [s for s, keep in zip(labels, inside, strict=True) if keep],
                  formatter.get_offset())


def flatten_ticks(fig: Figure) -> None:
    """Draw every axis' ticks as a few plain artists instead of matplotlib's Tick objects.

    matplotlib makes each tick of five artists (two marks, a gridline, two labels) and builds most
    of them while drawing, at ~0.5 ms a tick; a dashboard has ~50. Here an axis gets one collection
    of gridlines, one line of tick marks and one text per label, styled from the same rcParams and
    placed where matplotlib would place them (labels `tick length + pad` away, the year of a date
    axis on a row below them).
    """
    found = [_read_ticks(ax, axis) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) if axis.get_visible()]
    for ticks in found:
        _draw_ticks(fig, ticks)
    for ticks in found:
        ticks.axis.set_major_locator(NullLocator())
        ticks.axis.set_major_formatter(NullFormatter())


def _draw_ticks(fig: Figure, ticks: _Ticks) -> None:
    ax, axis, locs = ticks.ax, ticks.axis, ticks.locs
    rc = matplotlib.rcParams
    kw = axis._major_tick_kw  # what grid(), tick_right() and label_outer() set: gridOn, tick1On, label1On...
    is_x = axis is ax.xaxis
    name = "xtick" if is_x else "ytick"
    blended = ax.get_xaxis_transform() if is_x else ax.get_yaxis_transform()  # data along, axes across

    def at(across: float) -> tuple[np.ndarray, np.ndarray]:
        spots = np.full_like(locs, across)
        return (locs, spots) if is_x else (spots, locs)

    if not len(locs):
        return
    if kw.get("gridOn", False):
        lines = [((v, 0.0), (v, 1.0)) if is_x else ((0.0, v), (1.0, v)) for v in locs]
        ax.add_collection(LineCollection(lines, colors=rc["grid.color"], linewidths=rc["grid.linewidth"],
                                         linestyles=rc["grid.linestyle"], alpha=rc["grid.alpha"],
                                         transform=blended, zorder=axis.get_zorder()), autolim=False)
    for side, marker in ((0.0, TICKDOWN if is_x else TICKLEFT), (1.0, TICKUP if is_x else TICKRIGHT)):
        if kw.get("tick1On" if side == 0.0 else "tick2On", False):
            xs, ys = at(side)
            ax.add_line(Line2D(xs, ys, transform=blended, linestyle="none", marker=marker,
                               markersize=rc[f"{name}.major.size"], markeredgewidth=rc[f"{name}.major.width"],
                               color=rc[f"{name}.color"], clip_on=False, zorder=axis.get_zorder()))
    pad = rc[f"{name}.major.size"] + rc[f"{name}.major.pad"]  # points
    size = float(kw.get("labelsize", TICK_SIZE))  # smaller where the dates of a short window need it
    color = rc[f"{name}.labelcolor"]
    color = rc[f"{name}.color"] if color == "inherit" else color
    for side, label_on in ((0, "label1On"), (1, "label2On")):
        if not kw.get(label_on, False):
            continue
        if is_x:
            transform, va, ha = ax.get_xaxis_text1_transform(pad) if side == 0 else ax.get_xaxis_text2_transform(pad)
        else:
            transform, va, ha = ax.get_yaxis_text1_transform(pad) if side == 0 else ax.get_yaxis_text2_transform(pad)
        lower = [label.startswith(LOWER_ROW) for label in ticks.labels]  # date labels on a second row
        upper = [label for label, low in zip(ticks.labels, lower, strict=True) if not low]
        add_labels(ax, [(v, float(side)) if is_x else (float(side), v) for v, low in zip(locs, lower, strict=True)
                        if not low], upper, transform, ha=ha, va=va, size=size, color=color)
        drop = 0.0
        if any(lower):
            second = [label.removeprefix(LOWER_ROW) for label in ticks.labels if label.startswith(LOWER_ROW)]
            drop = _row_drop(second, _props(size, False))
            add_labels(ax, [(v, float(side)) for v, low in zip(locs, lower, strict=True) if low], second,
                       offset_copy(transform, fig=fig, y=-drop if side == 0 else drop, units="dots"),
                       ha=ha, va=va, size=size, color=color)
        if is_x and side == 0 and ticks.offset:  # the year below the dates, at the right end
            # where matplotlib puts it: OFFSET_PAD under the lowest edge of the tick labels' boxes
            below = TICK_SPACE + _line_box(upper or ticks.labels, _props(size, False)) + drop + OFFSET_PAD
            add_labels(ax, [(1.0, 0.0)], [ticks.offset], offset_copy(ax.transAxes, fig=fig, y=-below, units="dots"),
                    ha="right", va="top", size=TICK_SIZE, color=color)


def _row_drop(texts: Sequence[str], props: font_manager.FontProperties) -> float:
    """Pixels from one row of tick labels down to the next, as matplotlib sets the second line of a
    text: 1.2 times the taller of the font's nominal ascent and these texts' own."""
    ascent, _descent, _gap = _height_metrics(props)
    own = max((_metrics(text, props)[1] - _metrics(text, props)[2] for text in texts), default=0.0)
    return 1.2 * max(own, ascent or 0.0)


def _line_box(texts: Sequence[str], props: font_manager.FontProperties) -> float:
    """Height in pixels of the tallest box matplotlib's Text gives one line of these texts: ascent and
    descent as measured, each at least the font's nominal one."""
    ascent, descent, _gap = _height_metrics(props)
    tallest = 0.0
    for text in texts:
        _width, height, below = _metrics(text, props)
        box = max(height - below, ascent if ascent is not None else 0.0) + max(below, descent or 0.0)
        tallest = max(tallest, box)
    return tallest


class _Labels(Artist):
    """One-line texts of one font drawn by one artist (in one colour, or one each): tick labels, names, bar values.

    A chart has ~100 of them; as matplotlib Text artists each costs more to make and to lay out than
    to draw. Here they are laid out as Text lays out one line (box from the string's measured width,
    height and descent, and the font's nominal ascent and descent; then aligned on its anchor) and
    drawn through the renderer's cached glyph images. No mathtext: a "$" is a dollar sign.
    """

    def __init__(self, xy: Sequence[tuple[float, float]], texts: Sequence[str], transform: Transform, *,
                 ha: str | Sequence[str] = "left", va: str = "baseline", size: float = TICK_SIZE,
                 color: Any = "black") -> None:
        super().__init__()
        self._xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        self._texts = [s.replace("\n", " ") for s in texts]
        self._ha = [ha] * len(self._texts) if isinstance(ha, str) else list(ha)
        self._va = va
        self._prop = _props(size, False)
        # one colour, or a list of one a text (bar values coloured by their own sign)
        self._rgba = [to_rgba(c) for c in color] if isinstance(color, list) else [to_rgba(color)] * len(self._texts)
        self.set_transform(transform)
        self.set_zorder(3)  # where Text artists sit
        self.set_clip_on(False)

    def draw(self, renderer: Any) -> None:
        if not self.get_visible() or not self._texts:
            return
        points = self.get_transform().transform(self._xy)
        _, canvas_height = renderer.get_canvas_width_height()
        font_heights = getattr(renderer, "_get_font_height_metrics", None)  # Agg has it, as Text assumes
        min_ascent, min_descent, _gap = font_heights(self._prop) if font_heights else (None, None, None)
        if min_ascent is None:  # no size tables in the font, or another renderer: as Text does
            _, h, min_descent = renderer.get_text_width_height_descent("lp", self._prop, False)
            min_ascent = h - min_descent
        gc = renderer.new_gc()
        gc.set_antialiased(matplotlib.rcParams["text.antialiased"])
        for (x, y), text, ha, rgba in zip(points, self._texts, self._ha, self._rgba, strict=True):
            if not text or not (np.isfinite(x) and np.isfinite(y)):
                continue
            gc.set_foreground(rgba, isRGBA=True)
            width, height, descent = renderer.get_text_width_height_descent(text, self._prop, False)
            ascent = max(height - descent, min_ascent)  # Text's line box: at least the font's own
            descent = max(descent, min_descent)
            left = x - (width if ha == "right" else width / 2 if ha == "center" else 0.0)
            # the baseline, from the anchor: box top at the anchor ("top"), box bottom ("bottom")...
            baseline = y - {"top": ascent, "bottom": -descent, "center": (ascent - descent) / 2,
                            "baseline": 0.0, "center_baseline": ascent / 2}[self._va]
            renderer.draw_text(gc, left, canvas_height - baseline, text, self._prop, 0.0, ismath=False)
        gc.restore()
        self.stale = False


def add_labels(ax: Axes, xy: Sequence[tuple[float, float]], texts: Sequence[str], transform: Transform | None = None,
            **kwargs: Any) -> _Labels:
    """Add a _Labels to `ax` (data coordinates unless `transform` is given)."""
    labels = _Labels(xy, texts, transform or ax.transData, **kwargs)
    labels.axes = ax
    labels.set_figure(ax.get_figure(root=False))
    ax._children.append(labels)  # what add_artist does, without the clip path it would set up
    labels._remove_method = ax._children.remove
    ax.stale = True
    return labels


def series_line(ax: Axes, x: Any, y: Any, **kwargs: Any) -> Line2D:
    """ax.plot of a series, plus a dot on each known value with no known neighbour: a line joins
    known values only, and a lone one (the only day in the window, a day between gaps) would not show."""
    (line,) = ax.plot(x, y, **kwargs)
    values = np.asarray(y, dtype=float)
    known = np.isfinite(values)
    padded = np.concatenate(([False], known, [False]))
    lone = known & ~padded[:-2] & ~padded[2:]
    if lone.any():
        xs = np.asarray(x)[lone]
        ax.plot(xs, values[lone], marker="o", markersize=max(3.0, 2.0 * float(kwargs.get("linewidth", 1.5))),
                linestyle="none", color=line.get_color(), alpha=kwargs.get("alpha"), zorder=line.get_zorder())
    return line


def draw_bars(ax: Axes, positions: Any, values: Any, colors: Any, width: float, horizontal: bool = False) -> None:
    """Bars from 0 to each value as one collection (one draw call instead of one patch per bar)."""
    pos = np.asarray(positions, dtype=float)
    val = np.nan_to_num(np.asarray(values, dtype=float))
    lo, hi = pos - width / 2, pos + width / 2
    zero = np.zeros_like(val)
    if horizontal:
        verts = np.stack([np.column_stack(c) for c in ((zero, lo), (zero, hi), (val, hi), (val, lo))], axis=1)
    else:
        verts = np.stack([np.column_stack(c) for c in ((lo, zero), (hi, zero), (hi, val), (lo, val))], axis=1)
    bars = PolyCollection(list(verts), facecolors=colors, edgecolors="none", linewidths=0)
    (bars.sticky_edges.x if horizontal else bars.sticky_edges.y).append(0.0)
    ax.add_collection(bars, autolim=True)


def png_bytes(fig: Figure) -> bytes:
    """Draw the figure and encode it as an 8-bit RGB PNG (the background is opaque: alpha carries nothing).

    Written here rather than by Pillow, which tries five row filters on every row: on these flat-colour
    charts unfiltered rows compress as well, and the PNG takes a third of the time.
    """
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    height, width = rgba.shape[:2]
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter type 0 (none), then RGB
    rows[:, 0] = 0
    pixels = rows[:, 1:].reshape(height, width, 3)
    for channel in range(3):  # a plane at a time: 4x faster than one copy of the (h, w, 3) slice
        pixels[..., channel] = rgba[..., channel]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib_ng.compress(rows, PNG_LEVEL)), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
