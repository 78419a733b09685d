"""Charts with matplotlib (Agg, no pyplot): one style, readable on a phone, CJK labels, footer, demo mark.

Every function takes a report's Figures and a language and returns PNG bytes. Colours follow the
reader's convention: red up / green down in Chinese, green up / red down in English.
"""

from __future__ import annotations

import io
import logging
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.figures import Figures  # noqa: E402
from reports.fmt import up_down_colors  # noqa: E402
from reports.i18n import t  # noqa: E402

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
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": GRID,
            "grid.linewidth": 0.6,
            "axes.titlesize": 14,
            "axes.titleweight": "bold",
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 10,
            "legend.frameon": False,
        }
    )
    return family


def _figure(height: float) -> Figure:
    setup_fonts()
    return Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")


def _finish(fig: Figure, figures: Figures, lang: str) -> bytes:
    """Footer with data date and source; a diagonal watermark on demo data; PNG bytes."""
    data = figures.data
    footer = f"{t(lang, 'chart.data_date')} {data['date']} · {t(lang, 'chart.source')}"
    if data.get("demo"):
        footer += f" · {t(lang, 'chart.demo')}"
        fig.text(0.5, 0.5, t(lang, "chart.demo"), fontsize=54, color="#d62728", alpha=0.12,
                 ha="center", va="center", rotation=25, zorder=100)
    fig.get_layout_engine().set(h_pad=0.08)  # type: ignore[union-attr]
    fig.supxlabel(footer, fontsize=9, color="#666666")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _dates(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _bar_colors(values: Any, lang: str) -> list[str]:
    up, down = up_down_colors(lang)
    return [up if v >= 0 else down for v in values]


def _plot_balance(ax_level: Axes, ax_change: Axes | None, series: dict[str, Any], lang: str) -> None:
    level = series["level"] / 1e12
    ax_level.plot(level.index, level.to_numpy(), color=LINE, linewidth=2)
    ax_level.set_ylabel(t(lang, "chart.rzrqye"))
    ax_level.set_title(t(lang, "chart.balance_title"), loc="left")
    _dates(ax_level)
    if ax_change is not None:
        change = series["daily_change"] / (1e8 if lang == "zh" else 1e9)
        width = 0.8 if len(change) < 80 else 1.0
        ax_change.bar(change.index, change.to_numpy(), color=_bar_colors(change.to_numpy(), lang), width=width)
        ax_change.set_ylabel(t(lang, "chart.daily_change"))
        ax_change.axhline(0, color="#444444", linewidth=0.8)
        _dates(ax_change)


def balance_chart(figures: Figures, lang: str) -> bytes:
    fig = _figure(6.0)
    ax_level, ax_change = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    _plot_balance(ax_level, ax_change, figures.series, lang)
    return _finish(fig, figures, lang)


def _plot_ratio(ax: Axes, series: dict[str, Any], lang: str, with_index: bool = True) -> None:
    ratio = series["ratio"]
    band = series["band"].reindex(ratio.index)
    if {"q10", "q90"} <= set(band.columns) and band["q10"].notna().any():
        ax.fill_between(ratio.index, band["q10"].to_numpy(dtype=float), band["q90"].to_numpy(dtype=float),
                        color=BAND, label=t(lang, "chart.ratio_band"), step="mid")
    ax.plot(ratio.index, ratio.to_numpy(), color=LINE, linewidth=1.8, label=t(lang, "chart.ratio"))
    if "ma" in series:
        ax.plot(series["ma"].index, series["ma"].to_numpy(), color=ACCENT, linewidth=1.2,
                label=t(lang, "chart.ratio_ma"))
    ax.set_ylabel(t(lang, "chart.ratio"))
    ax.set_title(t(lang, "chart.ratio_title"), loc="left")
    _dates(ax)
    handles, labels = ax.get_legend_handles_labels()
    index = series.get("index")
    if with_index and index is not None and len(index):
        twin = ax.twinx()
        twin.plot(index.index, index.to_numpy(), color="#888888", linewidth=1.0, alpha=0.8,
                  label=t(lang, "chart.index"))
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", ncols=2)


def ratio_chart(figures: Figures, lang: str) -> bytes:
    fig = _figure(5.0)
    _plot_ratio(fig.subplots(), figures.series, lang)
    return _finish(fig, figures, lang)


def _plot_sectors(ax: Axes, rows: list[dict[str, Any]], days: int, lang: str, limit: int | None = None) -> None:
    if limit and len(rows) > limit:
        half = limit // 2
        rows = rows[:half] + rows[-half:]
    rows = list(reversed(rows))  # largest inflow on top
    names = [r["name"] if lang == "zh" else r["name_en"] for r in rows]
    unit = 1e8 if lang == "zh" else 1e9
    values = np.array([(r["change"] or 0.0) / unit for r in rows])
    y = np.arange(len(rows))
    ax.barh(y, values, color=_bar_colors(values, lang), height=0.7)
    ax.set_yticks(y, names)
    ax.axvline(0, color="#444444", linewidth=0.8)
    span = max(float(np.abs(values).max()) if len(values) else 1.0, 1e-9)
    for yi, value, row in zip(y, values, rows, strict=True):
        pp = row.get("share_change_pp")
        label = "" if pp is None else f"{pp:+.2f}pp"
        ax.text(value + (0.02 * span if value >= 0 else -0.02 * span), yi, label, va="center",
                ha="left" if value >= 0 else "right", fontsize=8, color="#555555")
    ax.set_xlim(-span * 1.3, span * 1.3)
    ax.set_xlabel(t(lang, "chart.sector_change", days=days))
    ax.set_title(t(lang, "chart.sectors_title", days=days), loc="left")
    ax.grid(axis="y", visible=False)


def sectors_chart(figures: Figures, lang: str) -> bytes:
    rows = figures.series["table"]
    fig = _figure(max(5.0, 0.28 * len(rows) + 1.6))
    _plot_sectors(fig.subplots(), rows, figures.data["days"], lang)
    return _finish(fig, figures, lang)


def _plot_spikes(ax: Axes, spikes: list[dict[str, Any]], lang: str) -> None:
    spikes = list(reversed(spikes[:10]))
    labels = [f"{s['name']} {s['code']}" for s in spikes]
    values = [s["zscore"] or 0.0 for s in spikes]
    up, _ = up_down_colors(lang)
    y = np.arange(len(spikes))
    ax.barh(y, values, color=up, height=0.6)
    ax.set_yticks(y, labels)
    for yi, s in zip(y, spikes, strict=True):
        ax.text((s["zscore"] or 0) * 1.01, yi, f" {s['change_pct']:+.1f}%", va="center", fontsize=9)
    ax.set_xlabel(t(lang, "chart.spike_z"))
    ax.set_title(t(lang, "chart.signals_title"), loc="left")
    ax.grid(axis="y", visible=False)


def signals_chart(figures: Figures, lang: str) -> bytes:
    fig = _figure(7.0)
    ax_ratio, ax_spikes = fig.subplots(2, 1, height_ratios=[1, 1.2])
    _plot_ratio(ax_ratio, figures.series, lang, with_index=False)
    _plot_spikes(ax_spikes, figures.series["spikes"], lang)
    return _finish(fig, figures, lang)


def stock_chart(figures: Figures, lang: str) -> bytes:
    history: pd.DataFrame = figures.series["history"]
    data = figures.data
    unit = 1e8 if lang == "zh" else 1e9
    fig = _figure(5.5)
    ax_level, ax_buy = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax_level.plot(history.index, history["rzye"].to_numpy(dtype=float) / unit, color=LINE, linewidth=2)
    ax_level.set_ylabel(t(lang, "chart.stock_rzye"))
    ax_level.set_title(t(lang, "chart.stock_title", name=data["name"], code=data["code"]), loc="left")
    buys = history["rzmre"].to_numpy(dtype=float) / unit
    ax_buy.bar(history.index, buys, color=ACCENT, width=0.8)
    ax_buy.set_ylabel(t(lang, "chart.stock_rzmre"))
    _dates(ax_level)
    _dates(ax_buy)
    return _finish(fig, figures, lang)


def summary_chart(figures: Figures, lang: str) -> bytes:
    """The push dashboard: balance, ratio band, sector shifts (top and bottom 5), financing spikes."""
    fig = _figure(9.5)
    fig.suptitle(f"{t(lang, 'chart.summary_title')} · {figures.data['date']}", fontsize=16, fontweight="bold")
    grid = fig.subplots(2, 2)
    series = figures.series
    _plot_balance(grid[0][0], None, series["balance"], lang)
    _plot_ratio(grid[0][1], series["ratio"], lang, with_index=False)
    grid[0][1].legend().remove() if grid[0][1].get_legend() else None
    _plot_sectors(grid[1][0], series["sectors"]["table"], figures.data["sectors"]["days"], lang, limit=10)
    _plot_spikes(grid[1][1], series["signals"]["spikes"][:6], lang)
    for ax in (grid[1][0], grid[1][1]):
        ax.title.set_fontsize(11)
    for ax in (grid[0][0], grid[0][1]):
        ax.title.set_fontsize(12)
    return _finish(fig, figures, lang)


CHARTS = {
    "balance": balance_chart,
    "ratio": ratio_chart,
    "sectors": sectors_chart,
    "signals": signals_chart,
    "stock": stock_chart,
    "summary": summary_chart,
}


def render_chart(figures: Figures, lang: str) -> bytes:
    return CHARTS[figures.kind](figures, lang)
