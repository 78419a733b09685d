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

from reports.figures import Figures  # noqa: E402
from reports.fmt import HEADLINE_MIN, headline_scale, money_scale, up_down_colors  # noqa: E402
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
    png_bytes,
    series_line,
    text_width,
)

log = logging.getLogger(__name__)


# Reports drawn from the market totals alone: no industry classification behind them.
MARKET_ONLY = ("balance", "ratio")
# The dashboard's ratio panel is half a chart wide: its legend in one column, a smaller type.
DASHBOARD_LEGEND_SIZE = 8.5


def _finish(fig: Figure, figures: Figures, lang: str) -> bytes:
    """Footer with data date and source; a diagonal watermark on demo data; PNG bytes."""
    data = figures.data
    # demo data names no exchange: none of it came from one; imported market figures owe Shenwan nothing
    sectors_shown = figures.kind not in MARKET_ONLY and not (figures.kind == "summary" and data.get("sectors") is None)
    imported = "chart.source_import_sectors" if sectors_shown else "chart.source_import"
    source = {"demo": "chart.demo", "import": imported}.get(data.get("origin", ""), "chart.source")
    footer = f"{t(lang, 'chart.data_date')} {data['date']} · {t(lang, source)}"
    if data.get("demo"):
        fig.text(0.5, 0.5, t(lang, "chart.demo"), fontsize=54, color="#d62728", alpha=0.12,
                 ha="center", va="center", rotation=25, zorder=100)
    fig.text(0.5, EDGE / fig.bbox.height, footer, fontsize=FOOTER_SIZE, color="#666666", ha="center",
             va="bottom")
    flatten_ticks(fig)
    return png_bytes(fig)


def _bar_colors(values: Any, lang: str) -> list[str]:
    up, down = up_down_colors(lang)
    return [up if v >= 0 else down for v in values]


def _date_nums(index: pd.Index) -> np.ndarray:
    return np.asarray(mdates.date2num(pd.DatetimeIndex(index).to_numpy()), dtype=float)


def _plot_balance(ax_level: Axes, ax_change: Axes | None, series: dict[str, Any], lang: str) -> None:
    # in 万亿 / trn as the headline, or, where the balance stays under 0.1 万亿 (the first years of margin
    # trading), in 亿元 / bn as the headline then is too
    small = bool(series["level"].abs().max() < HEADLINE_MIN)
    level = series["level"] / (money_scale(lang) if small else headline_scale(lang))
    series_line(ax_level, level.index, level.to_numpy(), color=LINE, linewidth=2)
    ax_level.set_ylabel(t(lang, "chart.rzrqye_small" if small else "chart.rzrqye"))
    _mark_turning_point(ax_level, level, series.get("turning_point"), lang)
    if ax_change is not None:
        change = series["daily_change"] / money_scale(lang)
        width = 0.8 if len(change) < 80 else 1.0
        draw_bars(ax_change, _date_nums(change.index), change.to_numpy(), _bar_colors(change.to_numpy(), lang), width)
        ax_change.set_ylabel(t(lang, "chart.daily_change"))
        ax_change.axhline(0, color="#444444", linewidth=0.8)
    date_axis(ax_level, lang)  # shared x: one set of ticks for both axes


def _mark_turning_point(ax: Axes, level: pd.Series, turning: dict[str, Any] | None, lang: str) -> None:
    """The last turning point of the 20-day change, when it falls inside the window: a triangle on
    the line in the up or down colour, with a short label (由减转增 / turned up)."""
    if not turning:
        return
    day = pd.Timestamp(turning["date"])
    if day not in level.index:
        return
    up = turning["direction"] == "up"
    color = up_down_colors(lang)[0 if up else 1]
    y = float(level.loc[day])
    ax.plot([day], [y], marker="^" if up else "v", color=color, markersize=9, linestyle="none", zorder=5)
    # beside the marker on the side the line leaves (below a turn up, above a turn down), to the
    # right unless the turn is near the window's end, where the label would run off the chart
    right = level.index.get_loc(day) < 0.75 * len(level)
    ax.annotate(t(lang, f"chart.turn_{turning['direction']}"), (day, y), xytext=(8 if right else -8, -16 if up else 6),
                textcoords="offset points", ha="left" if right else "right", fontsize=TICK_SIZE, color=color)


def balance_chart(figures: Figures, lang: str) -> bytes:
    fig, (ax_level, ax_change) = axes_grid(6.0, 2, sharex=True, height_ratios=(2, 1))
    _plot_balance(ax_level, ax_change, figures.series, lang)
    arrange(fig, [[Cell(ax_level, t(lang, "chart.balance_title"), xticks=False)], [Cell(ax_change)]], [2, 1])
    return _finish(fig, figures, lang)


def _plot_ratio(ax: Axes, series: dict[str, Any], lang: str, with_index: bool = True,
                legend_size: float | None = None) -> Axes | None:
    """The ratio, its 3-year percentile band and 20-day average; the index on a twin axis. Returns the twin.

    `legend_size`: the legend's font size where the panel is narrower than a full chart (dashboard).
    """
    ratio = series["ratio"]
    band = series["band"].reindex(ratio.index)
    if {"q10", "q90"} <= set(band.columns) and band["q10"].notna().any():
        since = series.get("percentile_since")
        if legend_size is None:
            band_label = t(lang, "chart.ratio_band", span=t(lang, "span.since", date=since) if since
                           else t(lang, "span.three_years"))
        else:
            band_label = t(lang, "chart.ratio_band_short", span=t(lang, "span.since", date=since) if since
                           else t(lang, "span.three_years_short"))
        ax.fill_between(ratio.index, band["q10"].to_numpy(dtype=float), band["q90"].to_numpy(dtype=float),
                        color=BAND, label=band_label)
    series_line(ax, ratio.index, ratio.to_numpy(), color=LINE, linewidth=1.8, label=t(lang, "chart.ratio"))
    if "ma" in series and series["ma"].notna().any():  # under 20 days of history there is none to draw
        series_line(ax, series["ma"].index, series["ma"].to_numpy(), color=ACCENT, linewidth=1.2,
                label=t(lang, "chart.ratio_ma"))
    ax.set_ylabel(t(lang, "chart.ratio"))
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
    date_axis(ax, lang)
    _legend_on_top(ax, twin, handles, labels, legend_size)
    return twin


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
    twin = _plot_ratio(ax, figures.series, lang)
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
                  lang: str) -> _BarLabels:
    """Horizontal bars of money changes (元, shown in 亿元 / CNY bn), the first on top, each with its
    label at the bar's end; limits from the largest fall to the largest rise (not symmetric: a chart
    of rises alone would give half its width to nothing)."""
    names, changes, labels = names[::-1], changes[::-1], labels[::-1]  # barh draws bottom up
    unit = money_scale(lang)
    values = np.array([(c or 0.0) / unit for c in changes])
    y = np.arange(len(values))
    draw_bars(ax, y, values, _bar_colors(values, lang), 0.7, horizontal=True)
    _names(ax, names)
    if len(values):
        ax.axvline(0, color="#444444", linewidth=0.8)
    span = max(float(np.abs(values).max()) if len(values) else 1.0, 1e-9)
    texts, starts, spots, sides = [], [], [], []
    for yi, value, label in zip(y, values, labels, strict=True):
        if label is None:
            continue
        start = value + (0.02 * span if value >= 0 else -0.02 * span)
        texts.append(label)
        starts.append(start)
        spots.append((start, float(yi)))
        sides.append("left" if value >= 0 else "right")
    add_labels(ax, spots, texts, ha=sides, va="center", size=8.0, color="#555555")
    low = float(values.min()) if len(values) else 0.0
    high = float(values.max()) if len(values) else 0.0
    ax.set_xlim(min(low, 0.0) - 0.05 * span, max(high, 0.0) + 0.05 * span)
    ax.grid(axis="y", visible=False)
    return _BarLabels(ax, names, starts, texts, 8.0, True)


def _plot_sectors(ax: Axes, rows: list[dict[str, Any]], lang: str, limit: int | None = None) -> _BarLabels:
    """Sector shifts, largest inflow on top, labelled with the share change (pp)."""
    if limit and len(rows) > limit:
        half = limit // 2
        rows = rows[:half] + rows[-half:]
    return _plot_changes(
        ax, [r["name"] if lang == "zh" else r["name_en"] for r in rows], [r["change"] for r in rows],
        [None if r.get("share_change_pp") is None else _share_change(r["share_change_pp"], lang) for r in rows], lang)


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


def _empty_note(ax: Axes, text: str) -> None:
    """A panel with nothing to draw says why, where its bars would be."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", size=LABEL_SIZE, color="#777777")
    ax.set_xticks([])
    ax.set_xlabel("")  # no axis to name


def _no_spikes_note(ax: Axes, signals: dict[str, Any], lang: str) -> None:
    if not signals["spikes"]:
        _empty_note(ax, t(lang, "chart.no_spikes" if signals.get("stock_detail", True) else "chart.no_stock_detail"))


def top_chart(figures: Figures, lang: str) -> bytes:
    """Risers on top, fallers below (largest fall at the bottom), labelled with the % change."""
    rows = [*figures.series["risers"], *reversed(figures.series["fallers"])]
    fig, (ax,) = axes_grid(max(4.0, 0.3 * len(rows) + 1.6))
    percents = [None if r["change_pct"] is None else fmt_pct(r["change_pct"], signed=True) for r in rows]
    labels = _plot_changes(ax, [f"{r['name']} {r['code']}" for r in rows], [r["change"] for r in rows], percents,
                           lang)
    days = figures.data["days"]
    labels.ax.set_xlabel(t(lang, "chart.sector_change", days=days))
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
    fig, (ax_ratio, ax_spikes) = axes_grid(7.0, 2, height_ratios=(1, 1.2))
    _plot_ratio(ax_ratio, figures.series, lang, with_index=False)
    labels = _plot_spikes(ax_spikes, figures.series["spikes"], lang)
    _no_spikes_note(ax_spikes, figures.data, lang)
    arrange(fig, [[Cell(ax_ratio, t(lang, "chart.ratio_title"))],
                   [Cell(ax_spikes, t(lang, "chart.signals_title"), xlabel=True, names=labels.names)]], [1, 1.2])
    _fit_bar_labels(labels)
    return _finish(fig, figures, lang)


def stock_chart(figures: Figures, lang: str) -> bytes:
    history: pd.DataFrame = figures.series["history"]
    data = figures.data
    unit = money_scale(lang)
    fig, (ax_level, ax_buy) = axes_grid(5.5, 2, sharex=True, height_ratios=(2, 1))
    series_line(ax_level, history.index, history["rzye"].to_numpy(dtype=float) / unit, color=LINE, linewidth=2)
    ax_level.set_ylabel(t(lang, "chart.stock_rzye"))
    buys = history["rzmre"].to_numpy(dtype=float) / unit
    draw_bars(ax_buy, _date_nums(history.index), buys, ACCENT, 0.8)
    ax_buy.set_ylabel(t(lang, "chart.stock_rzmre"))
    date_axis(ax_level, lang)
    title = t(lang, "chart.stock_title", name=data["name"], code=data["code"])
    arrange(fig, [[Cell(ax_level, title, xticks=False)], [Cell(ax_buy)]], [2, 1])
    return _finish(fig, figures, lang)


def sector_chart(figures: Figures, lang: str) -> bytes:
    """One sector: its financing balance with its Shenwan index on the right (money ahead of price
    shows as the line turning before the index), and its daily 融资净买入 below."""
    series, data = figures.series, figures.data
    unit = money_scale(lang)
    fig, (ax_level, ax_net) = axes_grid(5.5, 2, sharex=True, height_ratios=(2, 1))
    level = series["rzye"] / unit
    series_line(ax_level, level.index, level.to_numpy(), color=LINE, linewidth=2, label=t(lang, "chart.stock_rzye"))
    ax_level.set_ylabel(t(lang, "chart.stock_rzye"))
    twin = None
    index = series["index"]
    if len(index):
        twin = ax_level.twinx()
        series_line(twin, index.index, index.to_numpy(dtype=float), color="#888888", linewidth=1.0, alpha=0.8,
                  label=t(lang, "chart.sector_index"))
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        handles, labels = ax_level.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        _legend_on_top(ax_level, twin, handles + h2, labels + l2)
    net = series["net_buy"] / unit
    draw_bars(ax_net, _date_nums(net.index), net.to_numpy(), _bar_colors(net.to_numpy(), lang), 0.8)
    ax_net.axhline(0, color="#444444", linewidth=0.8)
    ax_net.set_ylabel(t(lang, "chart.net_buy"))
    date_axis(ax_level, lang)
    name = data["sector"]["name" if lang == "zh" else "name_en"]
    title = t(lang, "chart.sector_title", name=name)
    arrange(fig, [[Cell(ax_level, title, xticks=False, twin=twin)], [Cell(ax_net)]], [2, 1])
    return _finish(fig, figures, lang)


def summary_chart(figures: Figures, lang: str) -> bytes:
    """The push dashboard: balance, ratio band, sector shifts (top and bottom 5), financing spikes."""
    fig, (ax_balance, ax_ratio, ax_sectors, ax_spikes) = axes_grid(9.5, 2, 2)
    series = figures.series
    _plot_balance(ax_balance, None, series["balance"], lang)
    _plot_ratio(ax_ratio, series["ratio"], lang, with_index=False, legend_size=DASHBOARD_LEGEND_SIZE)
    sector_figures = figures.data["sectors"]  # None on a day without per-stock detail
    sectors = _plot_sectors(ax_sectors, series["sectors"]["table"] if sector_figures else [], lang, limit=10)
    if not sector_figures:
        _empty_note(ax_sectors, t(lang, "chart.no_stock_detail"))
    # as many as the caption names and counts (figures.summary_figures' spikes_charted)
    spikes = _plot_spikes(ax_spikes, series["signals"]["spikes"][: figures.data["spikes_charted"]], lang)
    _no_spikes_note(ax_spikes, figures.data["signals"], lang)
    cells = [
        [Cell(ax_balance, t(lang, "chart.balance_title"), 12.0),
         Cell(ax_ratio, t(lang, "chart.ratio_title"), 12.0)],
        [_sector_cell(sectors, sector_figures["days"] if sector_figures else min(20, figures.data["days"]), lang, 11.0,
                      narrow=True, empty=not sector_figures),
         Cell(ax_spikes, t(lang, "chart.signals_title"), 11.0, xlabel=True, names=spikes.names)],
    ]
    arrange(fig, cells, suptitle=(f"{t(lang, 'chart.summary_title')} · {figures.data['date']}", 16.0))
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
