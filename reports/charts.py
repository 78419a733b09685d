"""Charts with matplotlib (Agg, no pyplot): one per report, one style, readable on a phone, CJK
labels, footer, demo mark.

Every function takes a report's Figures and a language and returns PNG bytes. Colours follow the
reader's convention: red up / green down in Chinese, green up / red down in English. The layout,
fonts and PNG encoding are reports.layout's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox, Transform  # noqa: E402

from analytics.stocks import SPIKE_DATES_BEFORE  # noqa: E402
from reports.figures import Figures  # noqa: E402
from reports.fmt import HEADLINE_MIN, axis_unit, headline_scale, money_scale, up_down_colors  # noqa: E402
from reports.fmt import number as fmt_number  # noqa: E402
from reports.fmt import pct as fmt_pct  # noqa: E402
from reports.fmt import pp as fmt_pp  # noqa: E402
from reports.i18n import t  # noqa: E402
from reports.layout import (  # noqa: E402
    ACCENT,
    BAND,
    EDGE,
    FOOTER_SIZE,
    LABEL_SIZE,
    LINE,
    PT,
    TICK_SIZE,
    TICK_SPACE,
    TITLE_SIZE,
    Cell,
    add_labels,
    arrange,
    axes_grid,
    date_axis,
    draw_bars,
    flatten_ticks,
    line_height,
    png_bytes,
    refreeze_y,
    series_line,
    text_width,
)

log = logging.getLogger(__name__)


# Reports drawn from the market totals alone: no industry classification behind them.
MARKET_ONLY = ("balance", "ratio")
# The dashboard's ratio panel is half a chart wide: its legend in one column, a smaller type.
DASHBOARD_LEGEND_SIZE = 8.5
# Bars of a day's figure are 0.8 of a day wide; from this many on, a day wide (touching): at under
# ~3 px a day, 0.8 of a day rounds to 1 px for some bars and 2 for others (solid bars beside hairlines).
WIDE_BARS = 80
# A daily bar is at most this share of the days the x axis spans (first date drawn to last): the
# one change of a two-date window (the first days of a history) would otherwise be a bar 0.8 of a
# day wide on an axis 1.1 days wide, half the chart. Windows of 5 days or more (7 days spanned at
# least) keep bars 0.8 of a day wide.
BAR_SPAN_SHARE = 0.12
# The balance axis is in 万亿 / trn only where the level moves at least this much (元, 0.1 万亿) over
# the window: with ~10 ticks at most, steps of 0.01 万亿 or more, two decimals. A flatter level (a few
# days, a quiet month) is drawn in 亿元 / bn, where its ticks are still whole or nearly so.
HEADLINE_SPAN_MIN = 1e11
# Tick steps of a money axis: 1, 2 or 5 (x 10^k), where they give MONEY_MIN_TICKS ticks; else also
# 2.5, matplotlib's default, unless that needs more than MONEY_DECIMALS decimals (0.025: 2.325 万亿).
MONEY_STEPS = (1, 2, 5, 10)
MONEY_MIN_TICKS = 4
MONEY_DECIMALS = 2
LABEL_GREY = "#555555"  # the values at the ends of bars
# Heights (inches) of the charts that leave their empty panels out: the dashboard with its upper row
# alone, the signals chart with the ratio alone (a line under them says why).
SUMMARY_ONE_ROW_HEIGHT = 5.4
SIGNALS_ONE_PANEL_HEIGHT = 4.6
BALANCE_ONE_PANEL_HEIGHT = 4.6  # the balance chart without a daily change to draw (the first day)
# A money axis gets at least this many ticks in view (a short panel of bars from -9 to 3 got 0 and -5).
MONEY_LEAST_TICKS = 3
# Trade dates of per-stock detail a spike z-score needs: the day's own and the 65 before it (the
# 5-day changes of the previous 60, analytics.stocks).
SPIKE_DETAIL_DAYS = SPIKE_DATES_BEFORE + 1


def _finish(fig: Figure, figures: Figures, lang: str) -> bytes:
    """Footer with data date and source; a diagonal watermark on demo data; PNG bytes."""
    data = figures.data
    # demo data names no exchange: none of it came from one; imported market figures owe Shenwan nothing
    imported = "chart.source_import_sectors" if _shows_sectors(figures) else "chart.source_import"
    source = {"demo": "chart.demo", "import": imported}.get(data.get("origin", ""), "chart.source")
    footer = f"{t(lang, 'chart.data_date')} {data['date']} · {t(lang, source)}"
    if data.get("demo"):
        fig.text(0.5, 0.5, t(lang, "chart.demo"), fontsize=54, color="#d62728", alpha=0.12,
                 ha="center", va="center", rotation=25, zorder=100)
    fig.text(0.5, EDGE / fig.bbox.height, footer, fontsize=FOOTER_SIZE, color="#666666", ha="center",
             va="bottom")
    flatten_ticks(fig)
    return png_bytes(fig)


def _shows_sectors(figures: Figures) -> bool:
    """Whether the report rests on the Shenwan classification: not the market totals, nor a summary
    without its sectors, nor signals without per-stock detail (then only the market's ratio)."""
    data = figures.data
    if figures.kind in MARKET_ONLY:
        return False
    if figures.kind == "summary":
        return data.get("sectors") is not None
    if figures.kind == "signals":
        return bool(data.get("stock_detail", True))
    return True


def _bar_colors(values: Any, lang: str) -> list[str]:
    up, down = up_down_colors(lang)
    return [up if v >= 0 else down for v in values]


def _date_nums(index: pd.Index) -> np.ndarray:
    return np.asarray(mdates.date2num(pd.DatetimeIndex(index).to_numpy()), dtype=float)


def _bar_width(count: int, span: float = 0.0) -> float:
    """Bar width in days for `count` daily bars (see WIDE_BARS) on an x axis spanning `span` days
    from its first date to its last (see BAR_SPAN_SHARE; 0: one date, shown a week wide)."""
    width = 0.8 if count < WIDE_BARS else 1.0
    return min(width, BAR_SPAN_SHARE * span) if span > 0 else width


def _span(*indexes: pd.Index) -> float:
    """Days from the first date of `indexes` to the last."""
    days = np.concatenate([_date_nums(index) for index in indexes if len(index)] or [np.zeros(0)])
    return float(days.max() - days.min()) if len(days) else 0.0


def _start_at_bars(ax: Axes, days: np.ndarray, width: float) -> None:
    """Start the (shared) x axis at the first bar, with the margin the right end has: a level line
    beginning on the window's base day (the day the first change is from) would otherwise leave an
    empty strip before the bars, a third of a 5-day chart. One bar alone keeps both days in view."""
    if len(days) < 2:
        return
    low, high = ax.get_xlim()
    margin = max(high - (float(days[-1]) + width / 2), 0.0)
    ax.set_xlim(max(low, float(days[0]) - width / 2 - margin), high)


class _MoneyLocator(MaxNLocator):
    """Ticks of a money axis on steps of MONEY_STEPS (16150 · 16155 · 16160, not 16152.5), or with
    matplotlib's 2.5 too where those give fewer than MONEY_MIN_TICKS ticks in view and the step
    needs no more than MONEY_DECIMALS decimals (0.75 · 1.00 · 1.25 万亿)."""

    def __init__(self) -> None:
        super().__init__(nbins="auto", steps=list(MONEY_STEPS))

    def tick_values(self, vmin: float, vmax: float) -> Any:
        ticks = super().tick_values(vmin, vmax)
        low, high = sorted((vmin, vmax))

        def shown(values: Any) -> int:
            return int(((values >= low) & (values <= high)).sum())

        if shown(ticks) >= MONEY_MIN_TICKS:
            return ticks
        denser = self._finer(vmin, vmax, self._nbins)
        if denser is not None:
            ticks = denser
        # still fewer than MONEY_LEAST_TICKS in view (a short panel whose bars run from -9 to 3 got
        # -5 and 0): more bins, until there are
        bins = len(ticks) - 1
        while shown(ticks) < MONEY_LEAST_TICKS and bins < 12 and high > low:
            bins += 1
            denser = self._finer(vmin, vmax, bins)
            ticks = denser if denser is not None else MaxNLocator(nbins=bins, steps=list(MONEY_STEPS)).tick_values(
                vmin, vmax)
        return ticks

    def _finer(self, vmin: float, vmax: float, bins: Any) -> Any:
        """Ticks with 2.5 among the steps, or None where that step needs more than MONEY_DECIMALS decimals."""
        finer = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10])
        finer.set_axis(self.axis)
        denser = finer.tick_values(vmin, vmax)
        scaled = (denser[1] - denser[0]) * 10**MONEY_DECIMALS if len(denser) > 1 else 1.0
        return denser if abs(scaled - round(scaled)) < 1e-6 else None


def _money_ticks(ax: Axes) -> None:
    """Ticks of a money axis with at most two decimals where the window allows (_MoneyLocator)."""
    ax.yaxis.set_major_locator(_MoneyLocator())


def _plot_balance(ax_level: Axes, ax_change: Axes | None, series: dict[str, Any], lang: str) -> _TurnLabel | None:
    """The 两融余额 line (and its daily change as bars below, when `ax_change` is given), the last
    turning point marked. Returns the turning point's label, placed once the axes are (_place_turn_label)."""
    # In 万亿 / trn as the headline, unless the balance stays under 0.1 万亿 (the first years of
    # margin trading: the headline is in 亿元 / bn then too) or moves less than HEADLINE_SPAN_MIN
    # over the window (ticks of 1.61500 .. 1.61675 万亿 read as one number): then in 亿元 / bn.
    # A balance under 1 亿元 / 1 bn (the first days of 2010: 659 万元) in 万元 / CNY mn, as
    # fmt.axis_unit chooses for one security: 0.063 .. 0.069 亿元 reads as noise.
    values = series["level"].abs()
    small = bool(values.max() < HEADLINE_MIN or values.max() - values.min() < HEADLINE_SPAN_MIN)
    if values.max() < money_scale(lang):
        scale, unit = axis_unit(series["level"].to_numpy(dtype=float), lang)
        level = series["level"] / scale
        ax_level.set_ylabel(t(lang, "chart.rzrqye_unit", unit=unit))
    else:
        level = series["level"] / (money_scale(lang) if small else headline_scale(lang))
        ax_level.set_ylabel(t(lang, "chart.rzrqye_small" if small else "chart.rzrqye"))
    series_line(ax_level, level.index, level.to_numpy(), color=LINE, linewidth=2)
    _money_ticks(ax_level)
    dates = level.index
    if ax_change is not None:
        scale, unit = axis_unit(series["daily_change"].to_numpy(dtype=float), lang)
        change = series["daily_change"] / scale
        width = _bar_width(len(change), _span(level.index, change.index))
        days = _date_nums(change.index)
        draw_bars(ax_change, days, change.to_numpy(), _bar_colors(change.to_numpy(), lang), width)
        ax_change.set_ylabel(t(lang, "chart.daily_change") if scale == money_scale(lang)
                             else t(lang, "chart.daily_change_unit", unit=unit))
        ax_change.axhline(0, color="#444444", linewidth=0.8)
        _money_ticks(ax_change)
        _start_at_bars(ax_level, days, width)
        if len(change) > 1:  # one bar: the base day stays in view (_start_at_bars), and gets its tick
            dates = change.index
    date_axis(ax_level, lang, dates)  # shared x: one set of ticks for both axes
    return _mark_turning_point(ax_level, level, series.get("turning_point"), lang)


# The turning point's label: TURN_GAP points from the marker's centre (a 9 pt triangle reaches 4.5)
# to the label's box, which keeps TURN_CLEAR pixels from the line and TURN_INSIDE from the axes' edges.
TURN_MARKER = 9.0
TURN_GAP = 7.0
TURN_CLEAR = 3.0
TURN_INSIDE = 2.0


@dataclass
class _TurnLabel:
    """The label of a turning point (由减转增 / turned up) and what its place depends on."""

    ax: Axes
    x: float  # the turn's date number
    y: float  # the level there, in the axis' unit
    up: bool
    line: np.ndarray  # the level line, (date number, value) rows
    text: Annotation


def _mark_turning_point(ax: Axes, level: pd.Series, turning: dict[str, Any] | None, lang: str) -> _TurnLabel | None:
    """The last turning point of the 20-day change, when it falls inside the window: a triangle on
    the line in the up or down colour, and a short label (由减转增 / turned up) beside it, placed
    once the axes are (_place_turn_label)."""
    if not turning:
        return None
    day = pd.Timestamp(turning["date"])
    if day not in level.index:
        return None
    up = turning["direction"] == "up"
    color = up_down_colors(lang)[0 if up else 1]
    y = float(level.loc[day])
    ax.plot([day], [y], marker="^" if up else "v", color=color, markersize=TURN_MARKER, linestyle="none", zorder=5)
    text = ax.annotate(t(lang, f"chart.turn_{turning['direction']}"), (day, y), xytext=(0.0, 0.0),
                       textcoords="offset points", ha="left", va="bottom", fontsize=TICK_SIZE, color=color)
    line = np.column_stack([_date_nums(level.index), level.to_numpy(dtype=float)])
    return _TurnLabel(ax, float(_date_nums(pd.DatetimeIndex([day]))[0]), y, up, line, text)


def _turn_spots(label: _TurnLabel, to_px: Transform, frame: Bbox) -> list[tuple[Bbox, float, bool]]:
    """Where the label may go, in pixels, best first: (its box, its clearance from the line, inside
    the axes). Below a turn up (the line dips to it and rises after), above a turn down, then on the
    other side; centred on the marker, then right of it, then left; moved sideways into the axes."""
    px, py = to_px.transform((label.x, label.y))
    width, height = text_width(label.text.get_text(), TICK_SIZE), line_height(TICK_SIZE)
    gap = TURN_GAP * PT
    line = to_px.transform(label.line)
    spots = []
    for side in ((-1, 1) if label.up else (1, -1)):
        bottom = py + gap if side > 0 else py - gap - height
        # to the right or left: clear of the line's segment on the other side of the marker
        for left in (px - width / 2, px + TURN_INSIDE, px - width - TURN_INSIDE):
            left = min(max(left, frame.x0 + TURN_INSIDE), frame.x1 - TURN_INSIDE - width)
            box = Bbox.from_bounds(left, bottom, width, height)
            inside = box.y0 >= frame.y0 + TURN_INSIDE and box.y1 <= frame.y1 - TURN_INSIDE
            spots.append((box, _clearance(line, box), inside))
    return spots


def _clearance(line: np.ndarray, box: Bbox) -> float:
    """Vertical distance in pixels between a polyline (rows of x, y) and a box, over the box's
    width: 0 where the line crosses it, inf where no part of the line lies under or over it."""
    best = np.inf
    for (x0, y0), (x1, y1) in zip(line[:-1], line[1:], strict=True):
        left, right = max(min(x0, x1), box.x0), min(max(x0, x1), box.x1)
        if not np.isfinite([x0, y0, x1, y1]).all() or left > right:
            continue
        # the segment's y where it enters and leaves the box's width: a segment is straight
        ys = [y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0) for x in (left, right)]
        best = min(best, max(0.0, box.y0 - max(ys), min(ys) - box.y1))
    for x, y in line:  # a lone point (a line of one day) or a dot between gaps
        if np.isfinite([x, y]).all() and box.x0 <= x <= box.x1:
            best = min(best, max(0.0, box.y0 - y, y - box.y1))
    return float(best)


def _best_spot(spots: list[tuple[Bbox, float, bool]]) -> tuple[Bbox, float, bool]:
    """The first spot inside the axes and clear of the line; else the clearest inside; else the
    clearest of all."""
    for spot in spots:
        if spot[2] and spot[1] >= TURN_CLEAR:
            return spot
    inside = [spot for spot in spots if spot[2]]
    return max(inside or spots, key=lambda spot: spot[1])


def _place_turn_label(label: _TurnLabel | None) -> None:
    """Put the turning point's label on its spot (_turn_spots), now that the axes are placed. Where
    none is inside the axes and clear of the line (a turn at the top or bottom edge), the y limits
    are widened on the side of the first spot clear of the line, just enough, and their ticks
    computed again."""
    if label is None:
        return
    ax = label.ax
    spots = _turn_spots(label, ax.transData, ax.get_window_extent())
    if not any(inside and clear >= TURN_CLEAR for _, clear, inside in spots):
        clean = [spot for spot in spots if spot[1] >= TURN_CLEAR]
        box = (clean[0] if clean else max(spots, key=lambda spot: spot[1]))[0]
        low, high = ax.get_ylim()
        _, py = ax.transData.transform((label.x, label.y))
        # share of the axes' height from the marker to the far edge of the box (and a margin)
        need = min((max(box.y1 - py, py - box.y0) + 2 * TURN_INSIDE) / ax.get_window_extent().height, 0.5)
        if box.y1 > py:  # above: (high' - y) = need x (high' - low)
            high = max(high, (label.y - need * low) / (1 - need))
        else:  # below: (y - low') = need x (high - low')
            low = min(low, (label.y - need * high) / (1 - need))
        refreeze_y(ax, low, high, _MoneyLocator())
        spots = _turn_spots(label, ax.transData, ax.get_window_extent())
    box, _, _ = _best_spot(spots)
    px, py = ax.transData.transform((label.x, label.y))
    label.text.xyann = ((box.x0 - px) / PT, (box.y0 - py) / PT)  # offset points from the marker


def balance_chart(figures: Figures, lang: str) -> bytes:
    """The balance and its daily change below; where the window has no change to draw (the first day
    of the history; changes between days that sum different exchanges), the balance alone and one
    line saying why, not an empty panel."""
    series = figures.series
    if not np.isfinite(series["daily_change"].to_numpy(dtype=float)).any():
        fig, (ax_level,) = axes_grid(BALANCE_ONE_PANEL_HEIGHT)
        turn = _plot_balance(ax_level, None, series, lang)
        reason = "chart.no_daily_change" if len(series["level"]) < 2 else "chart.daily_change_unknown"
        arrange(fig, [[Cell(ax_level, t(lang, "chart.balance_title"))]], note=t(lang, reason))
        _place_turn_label(turn)
        return _finish(fig, figures, lang)
    fig, (ax_level, ax_change) = axes_grid(6.0, 2, sharex=True, height_ratios=(2, 1))
    turn = _plot_balance(ax_level, ax_change, figures.series, lang)
    arrange(fig, [[Cell(ax_level, t(lang, "chart.balance_title"), xticks=False)], [Cell(ax_change)]], [2, 1])
    _place_turn_label(turn)
    return _finish(fig, figures, lang)


def _plot_ratio(ax: Axes, series: dict[str, Any], lang: str, with_index: bool = True,
                legend_size: float | None = None, rzmre_only: bool = False) -> Axes | None:
    """The ratio, its 3-year percentile band and 20-day average; the index on a twin axis. Returns the twin.

    `legend_size`: the legend's font size where the panel is narrower than a full chart (dashboard).
    `rzmre_only`: the day's 融券卖出额 is unknown, and the ratio drawn is 融资买入额 / turnover alone
    (figures' rqmce_included false): its label says so, not 两融交易占比.
    """
    ratio = series["ratio"]
    name = t(lang, "chart.ratio_rzmre" if rzmre_only else "chart.ratio")
    band = series["band"].reindex(ratio.index)
    if {"q10", "q90"} <= set(band.columns) and band["q10"].notna().any():
        since = series.get("percentile_since")
        if legend_size is None:
            band_label = t(lang, "chart.ratio_band", span=t(lang, "span.since", date=since) if since
                           else t(lang, "span.three_years"))
        else:
            band_label = t(lang, "chart.ratio_band_short", span=t(lang, "span.since", date=since) if since
                           else t(lang, "span.three_years_short"))
        # under the gridlines (zorder 0.5, axes.axisbelow): the band is a background, not a bar
        ax.fill_between(ratio.index, band["q10"].to_numpy(dtype=float), band["q90"].to_numpy(dtype=float),
                        color=BAND, label=band_label, zorder=0.4)
    series_line(ax, ratio.index, ratio.to_numpy(), color=LINE, linewidth=1.8, label=name)
    if "ma" in series and series["ma"].notna().any():  # under 20 days of history there is none to draw
        series_line(ax, series["ma"].index, series["ma"].to_numpy(), color=ACCENT, linewidth=1.2,
                label=t(lang, "chart.ratio_ma"))
    ax.set_ylabel(name)
    _lone_ratio_from_zero(ax, ratio.to_numpy(dtype=float))
    handles, labels = ax.get_legend_handles_labels()
    index = series.get("index")
    twin = None
    if with_index and index is not None and len(index):
        twin = ax.twinx()
        series_line(twin, index.index, index.to_numpy(), color="#888888", linewidth=1.0, alpha=0.8,
                  label=t(lang, "chart.index"))
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        twin.set_ylabel(t(lang, "chart.index"))  # the right scale is the index's, in points
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    date_axis(ax, lang, ratio.index)
    _legend_on_top(ax, twin, handles, labels, legend_size)
    return twin


# Decimals a ratio tick may need: where the values are one, or closer together than RATIO_STEPS steps
# of this many decimals (the first days of 2010: 0.0030 .. 0.0035 %; one day: ticks 0.00285 ..
# 0.00315 around it), the axis runs from 0 in at most RATIO_STEPS steps instead.
RATIO_DECIMALS = 3
RATIO_STEPS = 5


def _lone_ratio_from_zero(ax: Axes, values: np.ndarray) -> None:
    """A ratio of one value, or of values too close for ticks of RATIO_DECIMALS decimals: the axis
    from 0 to a little above the highest value drawn, ticks on 1, 2 or 5 (x 10^k)."""
    known = values[np.isfinite(values)]
    if not len(known) or known.min() < 0:
        return
    if len(known) > 1 and known.max() - known.min() >= RATIO_STEPS * 10.0**-RATIO_DECIMALS:
        return
    top = float(np.nanmax([ax.dataLim.y1, known.max()]))
    if top <= 0:
        return
    ax.set_ylim(0.0, top * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=RATIO_STEPS, steps=list(MONEY_STEPS)))


def _legend_on_top(ax: Axes, twin: Axes | None, handles: list[Any], labels: list[str],
                   size: float | None = None) -> None:
    """The legend in the upper left, two entries a row (one in a narrow panel, `size` given), over a
    band of the axes that the lines leave free: the y limits (and the twin's) are raised by the rows'
    height, so no line runs under it."""
    columns = 2 if size is None else 1
    rows = -(-len(labels) // columns)
    free = (0.07 if size is None else 0.055) * rows + 0.04  # fraction of the axes' height the legend takes
    for axis in (ax, twin):
        if axis is not None:
            low, high = axis.get_ylim()
            axis.set_ylim(low, high + (high - low) * free / (1 - free))
    ax.legend(handles, labels, loc="upper left", ncols=columns, fontsize=size)


def ratio_chart(figures: Figures, lang: str) -> bytes:
    fig, (ax,) = axes_grid(5.0)
    twin = _plot_ratio(ax, figures.series, lang, rzmre_only=not figures.data["rqmce_included"])
    arrange(fig, [[Cell(ax, t(lang, "chart.ratio_title"), twin=twin)]])
    return _finish(fig, figures, lang)


@dataclass
class _BarLabels:
    """Value labels at the end of horizontal bars; the x limits are widened to fit them (see _fit_bar_labels)."""

    ax: Axes
    names: list[str]  # the bars' names, bottom to top
    starts: list[float]  # where each label starts, in data units
    texts: list[str]
    size: float
    two_sided: bool  # bars either side of 0 (sector shifts, rankings) or from 0 (spikes)


def _names(ax: Axes, names: Sequence[str]) -> None:
    """Category names left of horizontal bars where tick labels would be: one text each, no ticks
    (a tick is five artists and costs ~5 times as much as a text)."""
    transform, va, ha = ax.get_yaxis_text1_transform(TICK_SPACE / PT)
    add_labels(ax, [(0.0, float(yi)) for yi in range(len(names))], names, transform, ha=ha, va=va, size=TICK_SIZE)
    ax.set_yticks([])


def _plot_changes(ax: Axes, names: list[str], changes: list[float | None], labels: list[str | None],
                  lang: str, label_signs: list[float | None] | None = None) -> _BarLabels:
    """Horizontal bars of money changes (元, shown in 亿元 / CNY bn), the first on top, each with its
    label at the bar's end; limits from the largest fall to the largest rise (not symmetric: a chart
    of rises alone would give half its width to nothing).

    `label_signs`: where a label is another figure than its bar's (a sector's share change, which
    can fall while its balance rises), the value each label shows: the label is then coloured up or
    down by its own sign (grey at 0), so "-0.15" beside a red bar reads as a fall of something else.
    Otherwise the labels are grey."""
    names, changes, labels = names[::-1], changes[::-1], labels[::-1]  # barh draws bottom up
    signs = label_signs[::-1] if label_signs is not None else [None] * len(labels)
    unit = money_scale(lang)
    values = np.array([(c or 0.0) / unit for c in changes])
    y = np.arange(len(values))
    draw_bars(ax, y, values, _bar_colors(values, lang), 0.7, horizontal=True)
    _names(ax, names)
    if len(values):
        ax.axvline(0, color="#444444", linewidth=0.8)
    span = max(float(np.abs(values).max()) if len(values) else 1.0, 1e-9)
    texts, starts, spots, sides, colors = [], [], [], [], []
    up, down = up_down_colors(lang)
    for yi, value, label, sign in zip(y, values, labels, signs, strict=True):
        if label is None:
            continue
        start = value + (0.02 * span if value >= 0 else -0.02 * span)
        texts.append(label)
        starts.append(start)
        spots.append((start, float(yi)))
        sides.append("left" if value >= 0 else "right")
        colors.append(LABEL_GREY if sign is None or round(sign, 2) == 0 else up if sign > 0 else down)
    add_labels(ax, spots, texts, ha=sides, va="center", size=8.0, color=colors)
    low = float(values.min()) if len(values) else 0.0
    high = float(values.max()) if len(values) else 0.0
    ax.set_xlim(min(low, 0.0) - 0.05 * span, max(high, 0.0) + 0.05 * span)
    ax.grid(axis="y", visible=False)
    return _BarLabels(ax, names, starts, texts, 8.0, True)


def _plot_sectors(ax: Axes, rows: list[dict[str, Any]], lang: str, limit: int | None = None) -> _BarLabels:
    """Sector shifts, largest inflow on top, labelled with the share change (pp), each label in the
    colour of its own sign (a balance can rise while its share falls)."""
    if limit and len(rows) > limit:
        half = limit // 2
        rows = rows[:half] + rows[-half:]
    return _plot_changes(
        ax, [r["name"] if lang == "zh" else r["name_en"] for r in rows], [r["change"] for r in rows],
        [None if r.get("share_change_pp") is None else _share_change(r["share_change_pp"], lang) for r in rows], lang,
        label_signs=[r.get("share_change_pp") for r in rows])


def _share_change(points: float, lang: str) -> str:
    """A bar's share change: "+0.35pp" in English; in Chinese the bare number, its axis label
    naming the unit (百分点), as Chinese text never writes "pp"."""
    return fmt_pp(points) if lang == "en" else fmt_number(points, 2, signed=True)


def _sector_cell(labels: _BarLabels, days: int, lang: str, title_size: float = TITLE_SIZE,
                 narrow: bool = False, empty: bool = False) -> Cell:
    # the bars are money, the numbers beside them share points: the label says both (in fewer words
    # under a narrow panel, where the long label would run past the figure's edge); an empty panel
    # (no per-stock detail) names no axis
    if not empty:
        key = "chart.sector_axis_narrow" if narrow else "chart.sector_axis"
        labels.ax.set_xlabel(t(lang, key, days=days))
    return Cell(labels.ax, t(lang, "chart.sectors_title", days=days), title_size, xlabel=not empty,
                names=labels.names)


def _fit_bar_labels(labels: _BarLabels) -> None:
    """Widen the x limits so that every label ends inside the axes (call once the axes are placed):
    a label w px wide starting at x needs x + w * (data per px) on its side; widening changes the
    data per px, so a few rounds settle it (each moves the limit by a shrinking step)."""
    ax = labels.ax
    width = ax.get_window_extent().width
    low, high = ax.get_xlim()
    widths = [text_width(text, labels.size) + 4 for text in labels.texts]
    if width <= 0 or sum(w for w in widths if w * 2 >= width):
        return  # a label wider than half the axes: no limits would fit it
    for _ in range(6):
        per_px = (high - low) / width
        for start, w in zip(labels.starts, widths, strict=True):
            if start >= 0 or not labels.two_sided:
                high = max(high, start + w * per_px)
            else:
                low = min(low, start - w * per_px)
    ax.set_xlim(low, high)


def sectors_chart(figures: Figures, lang: str) -> bytes:
    rows = figures.series["table"]
    fig, (ax,) = axes_grid(max(5.0, 0.28 * len(rows) + 1.6))
    labels = _plot_sectors(ax, rows, lang)
    arrange(fig, [[_sector_cell(labels, figures.data["days"], lang)]])
    _fit_bar_labels(labels)
    return _finish(fig, figures, lang)


# Widest line (pixels) of the note in an empty panel: the dashboard's narrowest panel is ~290 px.
EMPTY_NOTE_WIDTH = 280.0


def _wrap(text: str, width: float, size: float) -> str:
    """`text` in lines of at most `width` pixels: in two after its comma or colon (a reason and what
    follows from it) where both fit, else between words; a Chinese part without spaces stays whole."""
    if text_width(text, size) <= width:
        return text
    for mark in ("，", "：", ": ", ","):
        head, found, tail = text.partition(mark)
        if found and text_width(head + mark.strip(), size) <= width and text_width(tail, size) <= width:
            return f"{head}{mark.strip()}\n{tail}"
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def _empty_note(ax: Axes, text: str) -> None:
    """A panel with nothing to draw says why, where its bars would be, in lines that fit the
    narrowest panel (EMPTY_NOTE_WIDTH)."""
    ax.text(0.5, 0.5, _wrap(text, EMPTY_NOTE_WIDTH, LABEL_SIZE), transform=ax.transAxes, ha="center", va="center",
            size=LABEL_SIZE, color="#777777", multialignment="center")
    ax.set_xticks([])
    ax.set_xlabel("")  # no axis to name


def _no_spikes_reason(signals: dict[str, Any], lang: str) -> str:
    """Why a day has no spikes to draw: no per-stock detail, too short a history of it for any
    z-score (SPIKE_DETAIL_DAYS; figures' spikes_scored), or none above the threshold."""
    if not signals.get("stock_detail", True):
        return t(lang, "chart.no_stock_detail")
    if not signals.get("spikes_scored", True):
        return t(lang, "chart.spikes_short", days=SPIKE_DETAIL_DAYS)
    return t(lang, "chart.no_spikes")


def _no_sectors_reason(data: dict[str, Any], lang: str) -> str:
    """Why the dashboard has no sector shifts: too short a history of per-stock detail, or none that day."""
    if data.get("sectors_missing") == "not_enough_history":
        return t(lang, "chart.sectors_short", days=min(20, data["days"]))
    return t(lang, "chart.no_stock_detail")


def top_chart(figures: Figures, lang: str) -> bytes:
    """Risers on top, fallers below (largest fall at the bottom), labelled with the % change."""
    rows = [*figures.series["risers"], *reversed(figures.series["fallers"])]
    fig, (ax,) = axes_grid(max(4.0, 0.3 * len(rows) + 1.6))
    percents = [None if r["change_pct"] is None else fmt_pct(r["change_pct"], signed=True) for r in rows]
    labels = _plot_changes(ax, [f"{r['name']} {r['code']}" for r in rows], [r["change"] for r in rows], percents,
                           lang)
    days = figures.data["days"]
    labels.ax.set_xlabel(t(lang, "chart.top_axis", days=days))  # the bars are money, their labels % changes
    title = t(lang, "chart.top_title", days=days)
    sector = figures.data.get("sector")
    if sector:  # the ranking inside one sector: name it first
        title = f"{sector['name'] if lang == 'zh' else sector['name_en']} · {title}"
    arrange(fig, [[Cell(ax, title, xlabel=True, names=labels.names)]])
    _fit_bar_labels(labels)
    return _finish(fig, figures, lang)


def _plot_spikes(ax: Axes, spikes: list[dict[str, Any]], lang: str) -> _BarLabels:
    """A bar of z-score for each spike given, the largest on top, labelled with its 5-day change. Draws
    every one: the caller cuts the list to what its text counts (signals: all; summary: spikes_charted)."""
    spikes = list(reversed(spikes))
    labels = [f"{s['name']} {s['code']}" for s in spikes]
    values = np.array([s["zscore"] or 0.0 for s in spikes], dtype=float)
    up, _ = up_down_colors(lang)
    y = np.arange(len(spikes))
    draw_bars(ax, y, values, up, 0.6, horizontal=True)
    _names(ax, labels)
    texts = [f" {fmt_pct(s['change_pct'], signed=True)}" for s in spikes]  # two decimals, as the text
    starts = [float(v) * 1.01 for v in values]
    add_labels(ax, [(start, float(yi)) for yi, start in zip(y, starts, strict=True)], texts, va="center", size=9.0)
    ax.set_xlabel(t(lang, "chart.spike_z"))
    ax.grid(axis="y", visible=False)
    return _BarLabels(ax, labels, starts, texts, 9.0, False)


def signals_chart(figures: Figures, lang: str) -> bytes:
    """The ratio over the window and the day's financing spikes; a day without spikes draws the ratio
    alone and says why in one line under it (an empty panel would take half the chart)."""
    data = figures.data
    rzmre_only = not data["rqmce_included"]
    if not figures.series["spikes"]:
        fig, (ax_ratio,) = axes_grid(SIGNALS_ONE_PANEL_HEIGHT)
        _plot_ratio(ax_ratio, figures.series, lang, with_index=False, rzmre_only=rzmre_only)
        reason = (t(lang, "chart.no_detail_signals") if not data.get("stock_detail", True)
                  else _no_spikes_reason(data, lang))
        arrange(fig, [[Cell(ax_ratio, t(lang, "chart.ratio_title"))]], note=reason)
        return _finish(fig, figures, lang)
    fig, (ax_ratio, ax_spikes) = axes_grid(7.0, 2, height_ratios=(1, 1.2))
    _plot_ratio(ax_ratio, figures.series, lang, with_index=False, rzmre_only=rzmre_only)
    labels = _plot_spikes(ax_spikes, figures.series["spikes"], lang)
    arrange(fig, [[Cell(ax_ratio, t(lang, "chart.ratio_title"))],
                   [Cell(ax_spikes, t(lang, "chart.signals_title"), xlabel=True, names=labels.names)]], [1, 1.2])
    _fit_bar_labels(labels)
    return _finish(fig, figures, lang)


def stock_chart(figures: Figures, lang: str) -> bytes:
    history: pd.DataFrame = figures.series["history"]
    data = figures.data
    fig, (ax_level, ax_buy) = axes_grid(5.5, 2, sharex=True, height_ratios=(2, 1))
    # each panel in its own unit, as the caption prints each figure (a stock's balance in 亿元, its
    # day's purchases in 万元)
    level = history["rzye"].to_numpy(dtype=float)
    scale, unit = axis_unit(level, lang)
    series_line(ax_level, history.index, level / scale, color=LINE, linewidth=2)
    ax_level.set_ylabel(t(lang, "chart.stock_rzye", unit=unit))
    _money_ticks(ax_level)
    buys = history["rzmre"].to_numpy(dtype=float)
    scale, unit = axis_unit(buys, lang)
    draw_bars(ax_buy, _date_nums(history.index), buys / scale, ACCENT, _bar_width(len(buys), _span(history.index)))
    ax_buy.set_ylabel(t(lang, "chart.stock_rzmre", unit=unit))
    _money_ticks(ax_buy)
    date_axis(ax_level, lang, history.index)
    title = t(lang, "chart.stock_title", name=data["name"], code=data["code"])
    arrange(fig, [[Cell(ax_level, title, xticks=False)], [Cell(ax_buy)]], [2, 1])
    return _finish(fig, figures, lang)


def sector_chart(figures: Figures, lang: str) -> bytes:
    """One sector: its financing balance with its Shenwan index on the right (money ahead of price
    shows as the line turning before the index), and its daily 融资净买入 below."""
    series, data = figures.series, figures.data
    fig, (ax_level, ax_net) = axes_grid(5.5, 2, sharex=True, height_ratios=(2, 1))
    scale, unit = axis_unit(series["rzye"].to_numpy(dtype=float), lang)
    level = series["rzye"] / scale
    label = t(lang, "chart.stock_rzye", unit=unit)
    series_line(ax_level, level.index, level.to_numpy(), color=LINE, linewidth=2, label=label)
    ax_level.set_ylabel(label)
    _money_ticks(ax_level)
    twin = None
    index = series["index"]
    if len(index):
        twin = ax_level.twinx()
        series_line(twin, index.index, index.to_numpy(dtype=float), color="#888888", linewidth=1.0, alpha=0.8,
                  label=t(lang, "chart.sector_index"))
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        twin.set_ylabel(t(lang, "chart.sector_index"))  # the right scale is the index's, in points
        handles, labels = ax_level.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        _legend_on_top(ax_level, twin, handles + h2, labels + l2)
    scale, unit = axis_unit(series["net_buy"].to_numpy(dtype=float), lang)
    net = series["net_buy"] / scale
    width, days = _bar_width(len(net), _span(level.index, net.index)), _date_nums(net.index)
    draw_bars(ax_net, days, net.to_numpy(), _bar_colors(net.to_numpy(), lang), width)
    ax_net.axhline(0, color="#444444", linewidth=0.8)
    ax_net.set_ylabel(t(lang, "chart.net_buy", unit=unit))
    _money_ticks(ax_net)
    _start_at_bars(ax_level, days, width)  # the balance line starts on the base day, the first change after it
    date_axis(ax_level, lang, net.index if len(net) > 1 else level.index)
    name = data["sector"]["name" if lang == "zh" else "name_en"]
    title = t(lang, "chart.sector_title", name=name)
    arrange(fig, [[Cell(ax_level, title, xticks=False, twin=twin)], [Cell(ax_net)]], [2, 1])
    return _finish(fig, figures, lang)


def summary_chart(figures: Figures, lang: str) -> bytes:
    """The push dashboard: balance, ratio band, sector shifts (top and bottom 5), financing spikes.
    Where neither sector shifts nor spikes are there to draw, the upper row alone and one line why."""
    series, data = figures.series, figures.data
    title = (f"{t(lang, 'chart.summary_title')} · {data['date']}", 16.0)
    sector_figures = data["sectors"]  # None on a day without per-stock detail, or too little of it
    # as many as the caption names and counts (figures.digest.summary_figures' spikes_charted)
    charted = series["signals"]["spikes"][: data["spikes_charted"]]
    rzmre_only = not data["ratio"]["rqmce_included"]
    if not sector_figures and not charted:
        fig, (ax_balance, ax_ratio) = axes_grid(SUMMARY_ONE_ROW_HEIGHT, 1, 2)
        turn = _plot_balance(ax_balance, None, series["balance"], lang)
        _plot_ratio(ax_ratio, series["ratio"], lang, with_index=False, legend_size=DASHBOARD_LEGEND_SIZE,
                    rzmre_only=rzmre_only)
        if not data["signals"].get("stock_detail", True):
            reason = t(lang, "chart.no_detail_summary")
        elif data.get("sectors_missing") == "not_enough_history" and not data["signals"].get("spikes_scored", True):
            # the first days of per-stock detail: one history too short for both, said once
            reason = t(lang, "chart.short_summary", sectors=min(20, data["days"]), spikes=SPIKE_DETAIL_DAYS)
        else:
            reason = f"{_no_sectors_reason(data, lang)} · {_no_spikes_reason(data['signals'], lang)}"
        arrange(fig, [[Cell(ax_balance, t(lang, "chart.balance_title"), 12.0),
                       Cell(ax_ratio, t(lang, "chart.ratio_title"), 12.0)]], suptitle=title, note=reason)
        _place_turn_label(turn)
        return _finish(fig, figures, lang)
    fig, (ax_balance, ax_ratio, ax_sectors, ax_spikes) = axes_grid(9.5, 2, 2)
    turn = _plot_balance(ax_balance, None, series["balance"], lang)
    _plot_ratio(ax_ratio, series["ratio"], lang, with_index=False, legend_size=DASHBOARD_LEGEND_SIZE,
                rzmre_only=rzmre_only)
    sectors = _plot_sectors(ax_sectors, series["sectors"]["table"] if sector_figures else [], lang, limit=10)
    if not sector_figures:
        _empty_note(ax_sectors, _no_sectors_reason(data, lang))
    spikes = _plot_spikes(ax_spikes, charted, lang)
    if not charted:
        _empty_note(ax_spikes, _no_spikes_reason(data["signals"], lang))
    cells = [
        [Cell(ax_balance, t(lang, "chart.balance_title"), 12.0),
         Cell(ax_ratio, t(lang, "chart.ratio_title"), 12.0)],
        [_sector_cell(sectors, sector_figures["days"] if sector_figures else min(20, data["days"]), lang, 11.0,
                      narrow=True, empty=not sector_figures),
         Cell(ax_spikes, t(lang, "chart.signals_title"), 11.0, xlabel=True, names=spikes.names)],
    ]
    arrange(fig, cells, suptitle=title)
    _place_turn_label(turn)
    _fit_bar_labels(sectors)
    _fit_bar_labels(spikes)
    return _finish(fig, figures, lang)


CHARTS = {
    "balance": balance_chart,
    "ratio": ratio_chart,
    "sectors": sectors_chart,
    "sector": sector_chart,
    "signals": signals_chart,
    "stock": stock_chart,
    "summary": summary_chart,
    "top": top_chart,
}


def render_chart(figures: Figures, lang: str) -> bytes:
    return CHARTS[figures.kind](figures, lang)
