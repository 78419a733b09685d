"""Charts: every report's PNG in both languages, readable on a phone, and Chinese text that renders.

The PNGs come from the demo reports rendered once per session (see tests/test_reports.py).
"""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from PIL import Image
from sqlalchemy import Engine

from reports import charts, layout
from reports import text as report_text
from reports.figures import KINDS
from tests.test_reports import demo_engine, demo_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 500 * 1024
MIN_WIDTH = 900


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Engine:
    return demo_engine(tmp_path_factory, pytestconfig)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which always comes first."""
    assert png[:8] == PNG_MAGIC, png[:16]
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", [*KINDS, "sector"])
def test_chart_is_a_small_readable_png(demo: Engine, kind: str, lang: str) -> None:
    png = demo_report(demo, kind, lang).png
    assert png is not None
    width, height = png_size(png)
    assert width >= MIN_WIDTH, (width, height)
    assert 300 <= height <= 2000, (width, height)
    assert len(png) < MAX_BYTES, len(png)
    assert png.endswith(b"IEND\xaeB`\x82")  # complete file


def test_zh_and_en_charts_differ(demo: Engine) -> None:
    # labels and colours follow the language: the two PNGs cannot be the same picture
    assert demo_report(demo, "balance", "zh").png != demo_report(demo, "balance", "en").png


def _forget_rendered_text() -> None:
    """matplotlib warns about a missing glyph when it first measures or rasterises a string; the
    chart module keeps both for the life of the process, so start from nothing."""
    layout._metrics.cache_clear()
    layout._ink.cache_clear()


def test_missing_glyph_detection_works() -> None:
    """The check below would notice: DejaVu Sans alone has no Chinese and matplotlib warns."""
    layout.setup_fonts()
    _forget_rendered_text()
    fig = layout._figure(2.0)
    fig.text(0.1, 0.5, "两融余额", fontfamily="DejaVu Sans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    assert any(_is_glyph_warning(w) for w in caught), [str(w.message) for w in caught]


def _is_glyph_warning(w: warnings.WarningMessage) -> bool:
    text = str(w.message)
    return "missing from font" in text or "Glyph" in text


@pytest.mark.skipif(
    not any(Path(p).exists() for p in layout.CJK_FONT_FILES),
    reason=f"Noto Sans CJK not installed ({layout.CJK_FONT_FILES[0]}): run scripts/setup.sh",
)
def test_chinese_text_renders_without_missing_glyphs() -> None:
    assert layout.setup_fonts() == layout.CJK_FAMILY
    _forget_rendered_text()
    fig = layout._figure(3.0)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [-1.5, 0.0, 2.5])  # negative tick labels: the minus sign must render too
    ax.set_title("两融余额 融资融券 行业")
    ax.set_ylabel("两融交易占比（%）")
    ax.set_xlabel("近20日融资余额变化（亿元）")
    ax.legend(["上证指数"])
    fig.supxlabel("数据日期 2026-11-20 · 数据：上交所、深交所、北交所 · 演示数据 ▲▼")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    problems = [str(w.message) for w in caught if _is_glyph_warning(w)]
    assert not problems, problems
    assert buf.getvalue()[:8] == PNG_MAGIC


def _text_figure() -> Any:
    fig = layout._figure(3.0)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [-1.5, 0.0, 2.5])
    ax.set_title("两融余额 Margin balance")
    ax.set_ylabel("两融交易占比（%）")  # rotated 90 degrees
    fig.text(0.5, 0.5, "演示数据", fontsize=40, rotation=25, alpha=0.3, ha="center", va="center")
    fig.subplots_adjust(left=0.15, bottom=0.15)
    return fig


def _grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)


def test_blitted_text_matches_matplotlibs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strings are rasterised once and then blitted at whole pixels: the picture must be matplotlib's
    own up to sub-pixel antialiasing (same ink in the same place), rotated text included."""
    _forget_rendered_text()
    blitted = _grey(charts.png_bytes(_text_figure()))
    again = _grey(charts.png_bytes(_text_figure()))  # from the cache this time
    drawn: list[str] = []

    def own_draw_text(self: Any, gc: Any, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
        drawn.append(s)
        return layout.RendererAgg.draw_text(self, gc, x, y, s, *args, **kwargs)

    monkeypatch.setattr(layout._Renderer, "draw_text", own_draw_text)
    own = _grey(charts.png_bytes(_text_figure()))
    # matplotlib's own text drawing ran, for the title, the rotated axis label and the watermark at least
    assert {"两融余额 Margin balance", "两融交易占比（%）", "演示数据"} <= set(drawn)
    assert np.array_equal(blitted, again)
    assert blitted.shape == own.shape
    ink_blitted, ink_own = blitted < 128, own < 128
    # dark pixels: nearly the same set (a glyph edge may fall on either side of the threshold)
    assert abs(int(ink_blitted.sum()) - int(ink_own.sum())) <= 0.05 * ink_own.sum()
    assert (ink_blitted & ink_own).sum() >= 0.85 * ink_own.sum()
    assert np.abs(blitted - own).mean() < 1.5


@pytest.mark.parametrize(("kind", "code"), [("balance", None), ("ratio", None), ("sectors", None), ("summary", None),
                                           ("sectors", "370000")])
def test_flattened_ticks_match_matplotlibs_ticks(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                 code: str | None) -> None:
    """Ticks drawn as plain artists (charts.flatten_ticks) give matplotlib's own picture: shared x
    axes (balance), a twin axis on the right (ratio), category axes without ticks (sectors), four
    panels (summary) and a twin axis over a shared x (one sector). Only the year under the dates
    may sit a pixel off (where its place rounds the other way)."""
    from reports.service import ReportService

    figures = ReportService(demo).figures(kind, code=code, on=None, days=None, version=0)
    flat = _grey(charts.render_chart(figures, "zh"))
    skipped: list[Any] = []
    monkeypatch.setattr(charts, "flatten_ticks", skipped.append)  # the ticks stay matplotlib's
    own = _grey(charts.render_chart(figures, "zh"))
    assert len(skipped) == 1  # the render did go through the patched step
    assert flat.shape == own.shape
    assert (np.abs(flat - own) > 64).sum() <= 400, kind
    assert np.abs(flat - own).mean() < 0.1, kind


@pytest.mark.parametrize("kind", KINDS)
def test_axes_from_a_pickled_blank_draw_as_freshly_built_axes(
    demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """charts.axes_grid copies each layout's axes from a pickled blank: the PNG must be byte for byte
    the one drawn on axes built by matplotlib for this chart alone (shared x, twins, 2x2 grids)."""
    from reports.service import ReportService

    code = demo_report(demo, "stock", "zh").data["code"] if kind == "stock" else None
    figures = ReportService(demo).figures(kind, code=code, on=None, days=None, version=0)
    charts.render_chart(figures, "en")  # the blank is cached now: the next render copies it
    copied = charts.render_chart(figures, "en")
    grids: list[tuple[int, int]] = []

    def built(height: float, rows: int = 1, cols: int = 1, *, sharex: bool = False,
              height_ratios: tuple[float, ...] | None = None) -> tuple[Any, list[Any]]:
        grids.append((rows, cols))
        fig = layout._figure(height)
        fig.subplots(rows, cols, sharex=sharex, squeeze=False, height_ratios=height_ratios)
        return fig, list(fig.axes)

    monkeypatch.setattr(charts, "axes_grid", built)
    fresh = charts.render_chart(figures, "en")
    assert len(grids) == 1  # the chart's axes were built by matplotlib this time, not copied
    assert fresh == copied


@pytest.mark.parametrize("va", ["top", "bottom", "center", "baseline", "center_baseline"])
def test_batched_labels_draw_as_matplotlib_texts(va: str) -> None:
    """layout.add_labels lays out and draws one-line texts exactly as matplotlib's Text does, for every
    alignment: same PNG bytes as one ax.text per label."""
    texts = ["银行 801780", "-12.5%", "Pharma & Biotech", "gjpqy", "+0.35pp", "2026"]
    sides = ["left", "right", "center", "left", "right", "center"]
    spots = [(0.1 + 0.15 * i, 0.2 + 0.12 * i) for i in range(len(texts))]

    def draw(batched: bool) -> bytes:
        fig = layout._figure(3.0)
        ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
        if batched:
            layout.add_labels(ax, spots, texts, ax.transAxes, ha=sides, va=va, size=11.0, color="#555555")
        else:
            for (x, y), text, ha in zip(spots, texts, sides, strict=True):
                ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=11.0, color="#555555")
        return charts.png_bytes(fig)

    assert draw(batched=True) == draw(batched=False)


def _footer_of(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str, origin: str) -> tuple[Any, str]:
    """The demo's `kind` figures as if they came from `origin`, and the footer their zh chart draws."""
    from matplotlib.figure import Figure

    from reports.figures import Figures, build

    built = build(demo, kind, None, None)
    figures = Figures(kind, {**built.data, "origin": origin, "demo": origin == "demo"}, built.series)
    texts: list[str] = []
    real_text = Figure.text

    def record(self: Figure, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
        texts.append(s)
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Figure, "text", record)
    charts.render_chart(figures, "zh")
    monkeypatch.undo()
    return built, next(s for s in texts if s.startswith("数据日期"))


@pytest.mark.parametrize(("origin", "source"), [("exchanges", "数据：上交所"), ("import", "用户导入"), ("demo", None)])
def test_footer_names_where_the_data_came_from(demo: Engine, monkeypatch: pytest.MonkeyPatch, origin: str,
                                               source: str | None) -> None:
    """The footer names the exchanges for ingested data, the CSV for imported data, and no source at
    all for demo data (which carries its own mark)."""
    ratio, footer = _footer_of(demo, monkeypatch, "ratio", origin)
    if source is None:
        assert footer == f"数据日期 {ratio.data['date']} · 演示数据"
    else:
        assert source in footer and "演示" not in footer


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", [*KINDS, "sector"])
def test_every_text_stays_inside_the_picture(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                             lang: str) -> None:
    """Labels, titles, tick labels and the footer all end inside the PNG: none is cut at an edge
    (a long English axis label under a narrow dashboard panel once was). The watermark is exempt."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from reports.figures import build
    from reports.gallery import sample_stock

    cut: list[str] = []
    inspected: list[str] = []
    real_png = charts.png_bytes

    def check(fig: Figure) -> bytes:
        png = real_png(fig)  # draws: every text has its final place
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        width, height = fig.bbox.width, fig.bbox.height
        for text in fig.findobj(Text):
            if not text.get_visible() or not text.get_text().strip() or text.get_rotation() not in (0.0, 90.0):
                continue
            inspected.append(text.get_text())
            box = text.get_window_extent(renderer)
            if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
                cut.append(text.get_text())
        return png

    monkeypatch.setattr(charts, "png_bytes", check)
    code = sample_stock(demo) if kind == "stock" else "370000" if kind == "sector" else None
    figures = build(demo, "sectors" if kind == "sector" else kind, None, None, code=code)
    charts.render_chart(figures, lang)
    # the check ran on the chart: its footer (数据日期 / Data date ...) at least was measured
    assert any(t.startswith(("数据日期", "Data date")) for t in inspected), inspected
    assert cut == [], cut


@pytest.mark.parametrize(("kind", "source"), [("balance", "数据：用户导入（CSV）"), ("ratio", "数据：用户导入（CSV）"),
                                              ("sectors", "数据：用户导入（CSV），申万行业分类")])
def test_imported_market_charts_owe_shenwan_nothing(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                    source: str) -> None:
    assert _footer_of(demo, monkeypatch, kind, "import")[1].endswith(source)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("days", [1, 2, 3, 60])
def test_date_ticks_fall_on_days_and_the_year_reads_as_numbers(lang: str, days: int) -> None:
    """Daily data: a short window once got ticks at 12:00 and an offset "2018-Dec-21"; every tick is a
    day now, and the offset (year, month or date) is written as an ISO date."""
    import re

    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    index = pd.bdate_range(end="2026-11-20", periods=days + 1)
    ax.plot(index, np.arange(days + 1, dtype=float))
    layout.date_axis(ax, lang)
    locs = np.asarray(ax.xaxis.get_major_locator()(), dtype=float)
    labels = list(ax.xaxis.get_major_formatter().seq)  # type: ignore[attr-defined]
    assert len(locs) >= 2 and (locs == np.floor(locs)).all(), locs
    assert not any(":" in label for label in labels), labels
    offset = ax.xaxis.get_major_formatter().get_offset()
    assert offset == "" or re.fullmatch(r"\d{4}(-\d{2}){0,2}", offset), offset


@pytest.mark.parametrize("bars", [False, True])
def test_a_window_of_one_date_shows_that_date_and_its_value(bars: bool) -> None:
    """The first day of the history (or of a security's margin trading): one value. matplotlib would
    widen the axis to two years either side and draw a line of one point as nothing; the chart
    shows three days either side, one tick naming the date as every day tick does (month and day,
    the year below the axis; never an ISO date under a chart of month-day ticks), and the value as a dot."""
    import matplotlib.dates as mdates
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    day = pd.Timestamp("2023-01-02")
    line = layout.series_line(ax, pd.DatetimeIndex([day]), np.array([1.62]), color="#123456", linewidth=2)
    if bars:
        layout.draw_bars(ax, mdates.date2num([day.to_pydatetime()]), [1.9], "#e08214", 0.8)
    layout.date_axis(ax, "en")
    assert ax.get_xlim() == (mdates.date2num(day.to_pydatetime()) - 3.0, mdates.date2num(day.to_pydatetime()) + 3.0)
    assert list(ax.xaxis.get_major_formatter().seq) == ["Jan 2"]  # type: ignore[attr-defined]
    assert ax.xaxis.get_major_formatter().get_offset() == "2023"
    dots = [a for a in ax.lines if a is not line]
    assert len(dots) == 1 and dots[0].get_marker() == "o" and list(dots[0].get_ydata()) == [1.62]
    assert dots[0].get_color() == "#123456"


def test_a_line_gets_dots_only_where_a_value_has_no_known_neighbour() -> None:
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    layout.series_line(ax, np.arange(7.0), np.array([1.0, 2.0, np.nan, 3.0, np.nan, 4.0, 5.0]))
    [line, dots] = ax.lines
    assert list(dots.get_xdata()) == [3.0] and list(dots.get_ydata()) == [3.0]
    ax = Figure().add_subplot()
    layout.series_line(ax, np.arange(3.0), np.array([1.0, 2.0, 3.0]))
    assert len(ax.lines) == 1  # a line with no lone value: nothing added


def test_a_flat_balance_reads_as_its_value_not_an_offset() -> None:
    """Two days of a stock's balance that differ in the fifth digit: ticks of 30.16..., never 0.004
    with "+3.016e1" in a corner."""
    from matplotlib.figure import Figure

    layout.setup_fonts()
    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0.0, 1.0], [30.16794202, 30.16394160])
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(label.startswith("30.16") for label in labels), labels
    assert ax.yaxis.get_major_formatter().get_offset() == ""


DAY_LABEL = {"zh": re.compile(r"\d{1,2}月\d{1,2}日"), "en": re.compile(r"[A-Z][a-z]{2} \d{1,2}")}


def _date_ticks(ax: Any) -> tuple[list[str], np.ndarray, str]:
    """The labels, places (date numbers) and offset of an axes' x ticks, as layout.date_axis fixed them."""
    formatter = ax.xaxis.get_major_formatter()
    return list(formatter.seq), np.asarray(ax.xaxis.get_major_locator()(), dtype=float), formatter.get_offset()


@pytest.mark.parametrize(("lang", "october", "november"), [("zh", "10月", "11月"), ("en", "Oct ", "Nov ")])
@pytest.mark.parametrize("trade_dates", [False, True])
def test_day_ticks_name_month_and_day(lang: str, october: str, november: str, trade_dates: bool) -> None:
    """Ticks from 22 October to 20 November name their month and day each ("Nov 8", never a bare
    "08", which reads as August; "11月1日", never "11月", which reads as the month), and the year
    goes under the axis. Given the trade dates drawn, the ticks fall on them, the last on the data date."""
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    index = pd.bdate_range("2026-10-22", "2026-11-20")
    ax.plot(index, np.arange(len(index), dtype=float))
    ax.set_xlim(float(mdates_num("2026-10-21")), float(mdates_num("2026-11-21")))
    layout.date_axis(ax, lang, index if trade_dates else None)
    labels, locs, offset = _date_ticks(ax)
    assert 3 <= len(labels) <= layout.DAY_TICKS_MAX, labels
    assert all(DAY_LABEL[lang].fullmatch(label) for label in labels), labels
    assert offset == "2026"
    if trade_dates:
        assert set(locs) <= {mdates_num(str(d.date())) for d in index}  # weekdays of the data only
        assert locs[-1] == mdates_num("2026-11-20") and labels[-1] == ("11月20日" if lang == "zh" else "Nov 20")
        assert len(set(np.diff(locs).round())) <= 2  # every k-th trade date: a week apart (or a week and a day)
    else:
        assert labels[0].startswith(october) and labels[-1].startswith(november), labels


@pytest.mark.parametrize(("lang", "expected"), [("zh", ["3月31日", "4月1日", "4月2日"]),
                                                ("en", ["Mar 31", "Apr 1", "Apr 2"])])
def test_a_few_days_get_a_tick_each_with_month_and_day(lang: str, expected: list[str]) -> None:
    """Three trade dates across a month (2010-03-31 .. 04-02): April 1 reads "4月1日" / "Apr 1", not
    "4月" / "Apr", a month; one tick a date, the year below."""
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    index = pd.DatetimeIndex(["2010-03-31", "2010-04-01", "2010-04-02"])
    ax.plot(index, [1.0, 2.0, 1.5])
    layout.date_axis(ax, lang, index)
    labels, locs, offset = _date_ticks(ax)
    assert labels == expected and offset == "2010"
    assert list(locs) == [mdates_num(str(d.date())) for d in index]


def test_day_ticks_across_new_year_name_both_years() -> None:
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    index = pd.bdate_range("2025-12-15", "2026-01-09")
    ax.plot(index, np.arange(len(index), dtype=float))
    layout.date_axis(ax, "en", index)
    labels, _, offset = _date_ticks(ax)
    assert offset == "2025\u20132026" and labels[-1] == "Jan 9", (labels, offset)


def mdates_num(day: str) -> float:
    import matplotlib.dates as mdates
    import pandas as pd

    return float(mdates.date2num(pd.Timestamp(day).to_pydatetime()))


SPIKE_LINE = {"zh": ("⚠️ 融资余额急升 ", "⚠️ 融资急升 "), "en": ("⚠️ Financing spikes in ",)}
MORE = {"zh": re.compile(r"另有 (\d+) 只见图"), "en": re.compile(r"and (\d+) more in the chart")}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("kind", "charted"), [("signals", 10), ("summary", 6)])
def test_the_text_accounts_for_every_spike_the_chart_draws(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                           kind: str, charted: int, lang: str) -> None:
    """The demo's last day has 10 spikes (figures.SPIKE_TOP): /signals draws all ten and names five
    (figures.common.SPIKES_NAMED), "另有 5 只见图"; the push's dashboard draws six and its caption names
    three, "and 3 more in the chart". Named + more = drawn, and the names are the chart's first bars."""
    drawn: list[list[str]] = []
    real = charts._plot_spikes

    def record(ax: Any, spikes: list[dict[str, Any]], lang: str) -> Any:
        drawn.append([s["code"] for s in spikes])
        return real(ax, spikes, lang)

    monkeypatch.setattr(charts, "_plot_spikes", record)
    report = demo_report(demo, kind, lang)
    assert report.png is not None and len(drawn) == 1 and len(drawn[0]) == charted
    text = report_text.to_plain(report.caption + "\n" + report.details)
    [line] = [line for line in text.splitlines() if line.startswith(SPIKE_LINE[lang])]
    named = re.findall(r"[(（](\d{6})[)）]", line)
    more = MORE[lang].search(line)
    assert more is not None, line
    assert len(named) + int(more.group(1)) == charted
    assert named == drawn[0][: len(named)] and len(named) == (5 if kind == "signals" else 3)
    # and how many the rule flags in all (the stored candidates of the day with z >= 2): 29, not ten
    assert re.search(r"急升 29 只" if lang == "zh" else r"spikes in 29 stocks", line), line
    assert report_text.visible_length(report.caption) <= report_text.CAPTION_LIMIT


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_more_is_claimed_when_the_text_names_every_spike(demo: Engine, lang: str) -> None:
    """Two spikes: both named, nothing "more" (the signals chart draws the two)."""
    data = dict(demo_report(demo, "signals", lang).data)
    data.update(spikes=data["spikes"][:2], spikes_named=2, spikes_total=2)
    caption, _ = report_text.render("signals", lang, data)
    [line] = [line for line in report_text.to_plain(caption).splitlines() if line.startswith(SPIKE_LINE[lang])]
    assert len(re.findall(r"[(（](\d{6})[)）]", line)) == 2 and MORE[lang].search(line) is None


# ----------------------------------------------------------------------------------------------
# What the charts draw, read back from the matplotlib objects
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Drawn:
    """A rendered chart: its figure (drawn: every artist has its final place) and each axes' ticks
    as they were fixed before flatten_ticks turned them into plain artists."""

    fig: Any
    ticks: dict[tuple[int, str], tuple[list[float], list[str], str]]  # (axes, "x"/"y") -> places, labels, offset

    def texts(self) -> list[str]:
        from matplotlib.text import Text

        return [t.get_text() for t in self.fig.findobj(Text) if t.get_visible() and t.get_text()]


def _draw(figures: Any, lang: str, monkeypatch: pytest.MonkeyPatch) -> Drawn:
    ticks: dict[tuple[int, str], tuple[list[float], list[str], str]] = {}
    drawn: list[Any] = []
    real_flatten, real_png = charts.flatten_ticks, charts.png_bytes

    def flatten(fig: Any) -> None:
        for i, ax in enumerate(fig.axes):
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                read = layout._read_ticks(ax, axis)
                ticks[(i, name)] = (list(read.locs), list(read.labels), read.offset)
        real_flatten(fig)

    def png(fig: Any) -> bytes:
        drawn.append(fig)
        return real_png(fig)

    with monkeypatch.context() as patch:
        patch.setattr(charts, "flatten_ticks", flatten)
        patch.setattr(charts, "png_bytes", png)
        charts.render_chart(figures, lang)
    return Drawn(drawn[0], ticks)


def _figures(engine: Engine, kind: str, day: Any = None, days: int | None = None, code: str | None = None, /,
             **data: Any) -> Any:
    """The `kind` figures of `engine`'s data, with `data` laid over their data."""
    from reports.figures import Figures, build

    built = build(engine, kind, day, days, code=code)
    return Figures(built.kind, {**built.data, **data}, built.series)


def _trade_date(demo: Engine, n: int) -> Any:
    """The demo's n-th trade date (0: the first)."""
    from storage import queries

    return queries.trade_dates(demo)[n]


def _turn_label(drawn: Drawn) -> Any:
    from matplotlib.text import Annotation

    [label] = [a for a in drawn.fig.findobj(Annotation) if a.get_text()]
    return label


def _assert_clear_of_the_line(drawn: Drawn, axes: int = 0) -> None:
    """The turning point's label ends inside its axes and no segment of the balance line runs through it."""
    ax = drawn.fig.axes[axes]
    label = _turn_label(drawn)
    assert label.axes is ax
    renderer = drawn.fig.canvas.get_renderer()
    box, frame = label.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (box, frame)
    line = ax.lines[0]
    path = line.get_transform().transform_path(line.get_path())
    assert not path.intersects_bbox(box, filled=False), (label.get_text(), box)


@pytest.mark.parametrize(("kind", "days", "lang"), [("balance", 250, "zh"), ("balance", 250, "en"),
                                                    ("summary", None, "en"), ("balance", 60, "zh")])
def test_the_turning_points_label_keeps_off_the_line_and_inside(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                                 kind: str, days: int | None, lang: str) -> None:
    """The demo's last turn up sits on a steeply rising line: its label (由减转增 / turned up) once sat
    on the falling line to its left, and in the dashboard's narrow panel ran past its right edge."""
    figures = _figures(demo, kind, None, days)
    turning = (figures.data["balance"] if kind == "summary" else figures.data)["turning_point"]
    assert turning is not None and turning["direction"] == "up"
    drawn = _draw(figures, lang, monkeypatch)
    _assert_clear_of_the_line(drawn)
    assert _turn_label(drawn).get_text() == ("由减转增" if lang == "zh" else "turned up")


@pytest.mark.parametrize("where", ["bottom", "top"])
def test_a_turn_at_the_edge_of_the_chart_gets_room_for_its_label(where: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn down on the last days of a long fall, at the lowest point of the window and at its right
    end (the real 2018 history), or a turn up at the top: the label goes where the line is not and
    the axis makes room for it, not across the line or off the chart."""
    import pandas as pd

    from reports.figures import Figures

    dates = pd.bdate_range(end="2018-12-21", periods=400)
    fall = np.linspace(2.2e12, 0.77e12, len(dates))
    level = pd.Series(fall if where == "bottom" else fall[::-1], index=dates)
    level.iloc[-4:] = level.iloc[-5]  # flat at the edge, where the turn is marked
    turn = {"date": dates[-3].date().isoformat(), "direction": "down" if where == "bottom" else "up",
            "trade_days_ago": 2}
    figures = Figures("balance", {"date": "2018-12-21", "origin": "import", "demo": False, "turning_point": turn},
                      {"level": level, "daily_change": level.diff().iloc[1:], "turning_point": turn})
    drawn = _draw(figures, "zh", monkeypatch)
    _assert_clear_of_the_line(drawn)


def _decimals(label: str) -> int:
    return len(label.split(".")[1]) if "." in label else 0


@pytest.mark.parametrize(("days", "nth", "unit"), [(20, 2, "两融余额（亿元）"), (5, None, "两融余额（亿元）"),
                                                   (1, None, "两融余额（亿元）"), (250, None, "两融余额（万亿元）")])
def test_balance_ticks_have_two_decimals_at_most(demo: Engine, monkeypatch: pytest.MonkeyPatch, days: int,
                                                 nth: int | None, unit: str) -> None:
    """A level that moves little over the window (3 days: 1.61500 .. 1.61675 万亿) is drawn in 亿元,
    whose ticks are distinct numbers with at most two decimals; a year of it stays in 万亿."""
    day = None if nth is None else _trade_date(demo, nth)
    drawn = _draw(_figures(demo, "balance", day, days), "zh", monkeypatch)
    _, labels, _ = drawn.ticks[(0, "y")]
    assert drawn.fig.axes[0].get_ylabel() == unit
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert max(_decimals(label) for label in labels) <= 2, labels
    _, change_labels, _ = drawn.ticks[(1, "y")]
    assert max(_decimals(label) for label in change_labels) <= 2, change_labels


@pytest.mark.parametrize(("kind", "code"), [("balance", None), ("sectors", "480000"), ("stock", "sample")])
def test_a_short_window_labels_every_trade_date_and_starts_at_its_first_bar(
        demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str, code: str | None) -> None:
    """Five days: a tick on each trade date (the last one the data date), none on a weekend, and
    the x axis from the first bar (the balance line's base day, a weekend earlier, left out)."""
    import matplotlib.dates as mdates
    from matplotlib.collections import PolyCollection

    from reports.gallery import sample_stock

    figures = _figures(demo, kind, None, 5, sample_stock(demo) if code == "sample" else code)
    drawn = _draw(figures, "zh", monkeypatch)
    bars = [c for c in drawn.fig.axes[1].collections if type(c) is PolyCollection]
    centres = sorted({float(np.mean([v[0] for v in path.vertices[:4]])) for path in bars[0].get_paths()})
    locs, labels, offset = drawn.ticks[(1, "x")]
    assert locs == centres, (locs, centres)  # one tick a bar, on its date
    assert mdates.num2date(locs[-1]).date().isoformat() == figures.data["date"]
    assert all(mdates.num2date(x).weekday() < 5 for x in locs)
    assert all(DAY_LABEL["zh"].fullmatch(label) for label in labels) and offset
    low, _ = drawn.fig.axes[1].get_xlim()
    assert centres[0] - 1.0 < low < centres[0] - 0.4  # the first bar's left edge, and a margin


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("detail", [True, False])
def test_a_dashboard_with_nothing_below_draws_one_row_and_says_why(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                                    lang: str, detail: bool) -> None:
    """The demo's third day: too little per-stock history for sector shifts (20 days) and for any
    spike z-score (66); a day without per-stock detail (a market-only import): neither either. The
    dashboard then draws the balance and the ratio alone and one line of why, not two empty frames."""
    from reports.i18n import t

    day = _trade_date(demo, 2)
    base = _figures(demo, "summary", day)
    assert base.data["sectors_missing"] == "not_enough_history" and base.data["signals"]["spikes_scored"] is False
    over: dict[str, Any] = {} if detail else {
        "origin": "import", "demo": False, "sectors_missing": "no_sector_data",
        "signals": {**base.data["signals"], "stock_detail": False}}
    figures = _figures(demo, "summary", day, **over)
    drawn = _draw(figures, lang, monkeypatch)
    assert len(drawn.fig.axes) == 2
    if detail:
        note = t(lang, "chart.short_summary", sectors=20, spikes=66)
        assert ("20" in note and "66" in note) and note == (
            "个股明细不足20个交易日，暂无行业变化；融资急升 z 值需66个交易日" if lang == "zh" else
            "Under 20 trading days of per-stock detail: no sector changes yet; spike z-scores need 66")
    else:
        note = t(lang, "chart.no_detail_summary")
    assert note in drawn.texts() and "\n" not in note
    if not detail:  # nothing of the Shenwan classification is shown
        footer = next(s for s in drawn.texts() if s.startswith(("数据日期", "Data date")))
        assert footer.endswith(("数据：用户导入（CSV）", "Data: imported (CSV)")), footer


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_spikes_too_early_to_score_say_so_not_none(demo: Engine, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    """The demo's 30th day has sector shifts but no stock has a spike z-score yet (each needs 65 stock
    dates before the day): the dashboard's spike panel says so, never "no financing spikes", and the
    signals chart draws the ratio alone with that line under it. From the 66th day on, z-scores exist."""
    from reports.i18n import t

    day = _trade_date(demo, 30)
    figures = _figures(demo, "summary", day)
    assert figures.data["sectors"] is not None and figures.data["signals"]["spikes_scored"] is False
    drawn = _draw(figures, lang, monkeypatch)
    short = t(lang, "chart.spikes_short", days=66)
    assert len(drawn.fig.axes) == 4
    # the panel is narrow: the reason on lines of their own (broken after its comma, or between words)
    assert short in [text.replace("\n", "" if lang == "zh" else " ") for text in drawn.texts()], drawn.texts()
    assert t(lang, "chart.no_spikes") not in drawn.texts()
    signals = _figures(demo, "signals", day, 60)
    drawn = _draw(signals, lang, monkeypatch)
    assert len(drawn.fig.axes) == 1 and short in drawn.texts() and t(lang, "chart.no_spikes") not in drawn.texts()
    assert _figures(demo, "signals", _trade_date(demo, 64)).data["spikes_scored"] is False
    assert _figures(demo, "signals", _trade_date(demo, 65)).data["spikes_scored"] is True


@pytest.mark.parametrize(("kind", "code", "days", "width"), [
    ("stock", "sample", 250, 1.0), ("stock", "sample", 1000, 1.0), ("stock", "sample", 60, 0.8),
    ("sectors", "370000", 250, 1.0), ("sectors", "370000", 20, 0.8), ("balance", None, 250, 1.0)])
def test_daily_bars_touch_on_long_windows(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                          code: str | None, days: int, width: float) -> None:
    """From 80 bars on, a bar is a day wide: 0.8 of a day at 2-3 px a day draws some bars solid and
    some as hairlines."""
    from matplotlib.collections import PolyCollection

    from reports.gallery import sample_stock

    figures = _figures(demo, kind, None, days, sample_stock(demo) if code == "sample" else code)
    drawn = _draw(figures, "zh", monkeypatch)
    [bars] = [c for c in drawn.fig.axes[1].collections if type(c) is PolyCollection]
    widths = {round(float(np.ptp(path.vertices[:4, 0])), 6) for path in bars.get_paths()}
    assert widths == {width}, widths
    assert (len(bars.get_paths()) >= charts.WIDE_BARS) == (width == 1.0)


@pytest.mark.parametrize(("kind", "code"), [("balance", None), ("stock", "sample"), ("sectors", "370000"),
                                            ("sectors", None), ("top", None), ("signals", None), ("summary", None),
                                            ("ratio", None)])
def test_gridlines_run_under_the_bars(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                      code: str | None) -> None:
    """Grey gridlines once crossed every bar (drawn at 1.5 over bars at 1): they go under them now,
    and over the ratio's percentile band, a background."""
    from matplotlib.collections import FillBetweenPolyCollection, LineCollection, PolyCollection

    from reports.gallery import sample_stock

    figures = _figures(demo, kind, None, None, sample_stock(demo) if code == "sample" else code)
    drawn = _draw(figures, "zh", monkeypatch)
    grid = [c for ax in drawn.fig.axes for c in ax.collections
            if isinstance(c, LineCollection) and np.allclose(c.get_color()[0], to_rgba(layout.GRID))]
    bars = [c for ax in drawn.fig.axes for c in ax.collections if type(c) is PolyCollection]
    bands = [c for ax in drawn.fig.axes for c in ax.collections if isinstance(c, FillBetweenPolyCollection)]
    assert grid and (bars or bands)
    assert max(c.get_zorder() for c in grid) < min((c.get_zorder() for c in bars), default=np.inf)
    assert max((c.get_zorder() for c in bands), default=-np.inf) < min(c.get_zorder() for c in grid)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["ratio", "signals", "summary"])
def test_the_ratio_without_short_sales_is_labelled_as_financing_purchases(
        demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str, lang: str) -> None:
    """Where the day's 融券卖出额 is unknown (rqmce_included false: an imported market file) the
    numerator is 融资买入额 alone, and the axis and the legend say so, not 两融交易占比."""
    from reports.i18n import t

    both, alone = t(lang, "chart.ratio"), t(lang, "chart.ratio_rzmre")
    for included in (True, False):
        base = _figures(demo, kind)
        if kind == "summary":
            figures = _figures(demo, kind, **{"ratio": {**base.data["ratio"], "rqmce_included": included}})
        else:
            figures = _figures(demo, kind, rqmce_included=included)
        drawn = _draw(figures, lang, monkeypatch)
        ax = drawn.fig.axes[1 if kind == "summary" else 0]
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        expected = both if included else alone
        assert ax.get_ylabel() == expected and expected in legend
        assert (alone if included else both) not in legend


@pytest.mark.parametrize(("detail", "source"), [(True, "数据：用户导入（CSV），申万行业分类"),
                                               (False, "数据：用户导入（CSV）")])
def test_signals_without_stock_detail_owe_shenwan_nothing(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                          detail: bool, source: str) -> None:
    """An imported market history without per-stock detail: the signals chart draws the ratio alone,
    and its footer names the CSV, not the Shenwan classification it never used."""
    figures = _figures(demo, "signals", origin="import", demo=False, stock_detail=detail)
    if not detail:  # no detail, no spikes
        figures.data["spikes"] = figures.series["spikes"] = []
    drawn = _draw(figures, "zh", monkeypatch)
    footer = next(s for s in drawn.texts() if s.startswith("数据日期"))
    assert footer.endswith(source), footer
    assert len(drawn.fig.axes) == (2 if detail else 1)
    if not detail:
        assert "该日无个股两融明细，无法计算融资急升个股" in drawn.texts()


@pytest.mark.parametrize(("values", "lang", "expected"), [
    ([3.0e7, 2.9e7], "zh", (1e4, "万元")), ([1.5e8, float("nan")], "zh", (1e8, "亿元")),
    ([-1.2e8, 5e7], "zh", (1e8, "亿元")), ([5e8], "en", (1e6, "CNY mn")), ([1e9], "en", (1e9, "CNY bn")),
    ([float("nan")], "zh", (1e4, "万元")), ([], "en", (1e6, "CNY mn"))])
def test_an_axis_of_one_securitys_money_takes_the_unit_its_figures_print_in(
        values: list[float], lang: str, expected: tuple[float, str]) -> None:
    """From one money unit (1 亿元, 1 CNY bn) of the largest |value| up, the money unit; below, the
    small unit, as fmt.security_money prints one figure."""
    from reports.fmt import axis_unit

    assert axis_unit(values, lang) == expected


@pytest.mark.parametrize(("lang", "level_label", "buys_label"), [
    ("zh", "融资余额（万元）", "融资买入额（万元）"),
    ("en", "Financing balance (CNY mn)", "Margin buying (CNY mn)")])
def test_a_small_stocks_chart_reads_in_the_small_unit(demo: Engine, monkeypatch: pytest.MonkeyPatch, lang: str,
                                                      level_label: str, buys_label: str) -> None:
    """The demo's smallest financing balance (under 1,000 万元) on an axis of 亿元 would tick 0.065 ·
    0.070: in 万元 (CNY mn) its ticks are distinct numbers with two decimals at most."""
    from sqlalchemy import func, select

    from storage.models import StockMargin as sm

    with demo.connect() as conn:
        last = select(func.max(sm.trade_date)).scalar_subquery()
        code = conn.execute(select(sm.code).where(sm.trade_date == last, sm.rzye > 0, sm.is_fund.is_(False))
                            .order_by(sm.rzye).limit(1)).scalar()
    figures = _figures(demo, "stock", None, 60, code)
    assert figures.series["history"]["rzye"].max() < 1e8
    drawn = _draw(figures, lang, monkeypatch)
    assert [ax.get_ylabel() for ax in drawn.fig.axes[:2]] == [level_label, buys_label]
    for axis in (0, 1):
        _, labels, _ = drawn.ticks[(axis, "y")]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
        assert max(_decimals(label) for label in labels) <= 2, labels


# ----------------------------------------------------------------------------------------------
# Short windows, the first days of a history, the sector and ranking charts' labels
# ----------------------------------------------------------------------------------------------


def _tick_rows(drawn: Drawn, axes: int) -> list[list[tuple[float, str]]]:
    """The x tick labels of one axes as drawn: (left, right) pixel edges and text, by row (a label
    of the lower row starts with layout.LOWER_ROW)."""
    ax = drawn.fig.axes[axes]
    locs, labels, _ = drawn.ticks[(axes, "x")]
    size = float(ax.xaxis._major_tick_kw.get("labelsize", layout.TICK_SIZE))
    rows: list[list[Any]] = [[], []]
    for x, label in zip(locs, labels, strict=True):
        text = label.removeprefix(layout.LOWER_ROW)
        centre = float(ax.transData.transform((x, 0.0))[0])
        half = layout.text_width(text, size) / 2
        rows[1 if label.startswith(layout.LOWER_ROW) else 0].append((centre - half, centre + half, text))
    return [row for row in rows if row]


def _assert_every_date_ticked_apart(drawn: Drawn, axes: int, dates: Any, lang: str) -> None:
    """A tick on every date drawn, each label a date (month and day, or the day alone after a tick
    of the same month), neighbours on a row clear of each other."""
    import matplotlib.dates as mdates

    locs, labels, offset = drawn.ticks[(axes, "x")]
    expected = sorted({mdates_num(str(d.date())) for d in dates})
    assert locs == expected, ([mdates.num2date(x).date() for x in locs], len(expected))
    day_only = re.compile(r"\d{1,2}日" if lang == "zh" else r"\d{1,2}")
    texts = [label.removeprefix(layout.LOWER_ROW) for label in labels]
    assert DAY_LABEL[lang].fullmatch(texts[0]), texts  # the first names its month
    for previous, day, text in zip(locs, locs[1:], texts[1:], strict=False):
        same_month = mdates.num2date(previous).month == mdates.num2date(day).month
        assert DAY_LABEL[lang].fullmatch(text) or (same_month and day_only.fullmatch(text)), texts
    assert offset  # the year below
    for row in _tick_rows(drawn, axes):
        gaps = [right_left[0] - left_right[1] for left_right, right_left in zip(row, row[1:], strict=False)]
        assert all(gap >= layout.TICK_GAP - 0.5 for gap in gaps), (row, gaps)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("kind", "code"), [("ratio", None), ("balance", None), ("stock", "920150"),
                                            ("stock", "sample"), ("sectors", "480000"), ("summary", None)])
def test_ten_days_get_a_tick_on_every_trade_date(demo: Engine, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                 code: str | None, lang: str) -> None:
    """A window of 10 trade dates (a stock's 11: its base day is drawn too) has a tick on each: the
    ratio's 10 dates once got 5 and a stock's 11 got 6, every other one dropped as the labels in
    full touched. They are written shorter (11月6日 · 9日 · 10日), smaller, and in a dashboard's
    narrow panel on two rows, but never dropped."""
    from reports.gallery import sample_stock

    figures = _figures(demo, kind, None, 10, sample_stock(demo) if code == "sample" else code)
    drawn = _draw(figures, lang, monkeypatch)
    series = figures.series
    if kind == "summary":  # the balance's 11 dates (the base day too: no bars) and the ratio's 10
        checks = [(0, series["balance"]["level"].index), (1, series["ratio"]["ratio"].index)]
        assert len(checks[0][1]) == 11 and len(checks[1][1]) == 10
    else:
        dates = {"ratio": lambda: series["ratio"].index, "balance": lambda: series["daily_change"].index,
                 "stock": lambda: series["history"].index, "sectors": lambda: series["net_buy"].index}[kind]()
        checks = [(0 if kind == "ratio" else 1, dates)]
        assert len(dates) == (11 if kind == "stock" else 10)
    for axes, dates in checks:
        _assert_every_date_ticked_apart(drawn, axes, dates, lang)
    if kind == "ratio" and lang == "zh":  # 10 dates of 11月16日 would touch at 10 pt on this axis: written short
        _, labels, _ = drawn.ticks[(0, "x")]
        assert any(not DAY_LABEL[lang].fullmatch(label.removeprefix(layout.LOWER_ROW)) for label in labels), labels


def test_ten_real_dates_with_a_gap_get_a_tick_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported case: the ratio of 2018-12-05 .. 12-20 (ten trade dates, none on the 18th and
    19th, missing from the market file) got ticks on 5 of them."""
    import pandas as pd

    from reports.figures import Figures

    dates = pd.DatetimeIndex(["2018-12-05", "2018-12-06", "2018-12-07", "2018-12-10", "2018-12-11", "2018-12-12",
                              "2018-12-13", "2018-12-14", "2018-12-17", "2018-12-20"])
    ratio = pd.Series(np.linspace(7.5, 7.7, len(dates)), index=dates)
    index = pd.Series(np.linspace(2650.0, 2536.0, 12), index=pd.bdate_range("2018-12-05", "2018-12-20"))
    band = pd.DataFrame({"q10": 7.4, "q90": 10.5}, index=dates)
    for lang in ("zh", "en"):
        figures = Figures("ratio", {"date": "2018-12-20", "origin": "import", "demo": False, "rqmce_included": False},
                          {"ratio": ratio, "band": band, "ma": ratio.rolling(3).mean(), "index": index})
        drawn = _draw(figures, lang, monkeypatch)
        _assert_every_date_ticked_apart(drawn, 0, dates, lang)
        _, labels, _ = drawn.ticks[(0, "x")]
        assert labels[:3] == (["12月5日", "6日", "7日"] if lang == "zh" else ["Dec 5", "6", "7"]), labels


def _first_days(count: int) -> Any:
    """The balance figures of the first `count` days of the real history (2010-03-31: 659 万元)."""
    import pandas as pd

    from reports.figures import Figures

    dates = pd.DatetimeIndex(["2010-03-31", "2010-04-01", "2010-04-02"][:count])
    level = pd.Series([6_590_000.0, 13_750_000.0, 31_500_000.0][:count], index=dates)
    last = dates[-1].date().isoformat()
    return Figures("balance", {"date": last, "origin": "import", "demo": False, "turning_point": None},
                   {"level": level, "daily_change": level.diff().iloc[1:], "turning_point": None})


@pytest.mark.parametrize(("lang", "level_label", "note", "tick"), [
    ("zh", "两融余额（万元）", "历史首日，尚无日变化", "3月31日"),
    ("en", "Margin balance (CNY mn)", "First day of the history: no daily change yet", "Mar 31")])
def test_the_first_day_of_a_history_draws_its_balance_alone_in_its_unit(
        monkeypatch: pytest.MonkeyPatch, lang: str, level_label: str, note: str, tick: str) -> None:
    """2010-03-31, the first day of margin trading: no daily change (an empty panel once took a
    third of the chart: left out, one line says why), a balance of 659 万元 on an axis of 万元 / CNY
    mn (it read 0.063 .. 0.069 亿元), and its date written as every day tick, the year below."""
    drawn = _draw(_first_days(1), lang, monkeypatch)
    assert len(drawn.fig.axes) == 1
    assert note in drawn.texts()
    ax = drawn.fig.axes[0]
    assert ax.get_ylabel() == level_label
    _, labels, _ = drawn.ticks[(0, "y")]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert max(_decimals(label) for label in labels) <= 2, labels
    low, high = ax.get_ylim()
    value = 659.0 if lang == "zh" else 6.59
    assert low < value < high
    assert drawn.ticks[(0, "x")][1:] == ([tick], "2010")


@pytest.mark.parametrize(("lang", "labels"), [("zh", ("两融余额（万元）", "日变化（万元）")),
                                              ("en", ("Margin balance (CNY mn)", "Daily change (CNY mn)"))])
def test_the_second_day_draws_its_one_change_as_a_narrow_bar(monkeypatch: pytest.MonkeyPatch, lang: str,
                                                             labels: tuple[str, str]) -> None:
    """2010-04-01: the level of two days and one change. The bar, 0.8 of a day wide, once filled
    half of an axis 1.1 days wide; it is a narrow bar now, both axes in 万元 / CNY mn, two ticks."""
    from matplotlib.collections import PolyCollection

    drawn = _draw(_first_days(2), lang, monkeypatch)
    ax_level, ax_change = drawn.fig.axes[:2]
    assert (ax_level.get_ylabel(), ax_change.get_ylabel()) == labels
    [bars] = [c for c in ax_change.collections if type(c) is PolyCollection]
    [path] = bars.get_paths()
    left, right = ax_change.transData.transform(path.vertices[:2])[:, 0]
    assert 0 < abs(right - left) <= 0.15 * ax_change.get_window_extent().width
    assert drawn.ticks[(1, "x")][1] == (["3月31日", "4月1日"] if lang == "zh" else ["Mar 31", "Apr 1"])
    for axes in (0, 1):
        _, ticks, _ = drawn.ticks[(axes, "y")]
        assert len(ticks) >= 3 and max(_decimals(label) for label in ticks) <= 2, ticks


@pytest.mark.parametrize("count", [1, 2])
def test_a_ratio_of_one_or_two_days_ticks_in_few_decimals(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The first days of 2010: a ratio of 0.0030 % (0.0035 % the next day). One value got ticks of
    0.00285 .. 0.00315 around it; the axis now runs from 0, ticks of three decimals at most."""
    import pandas as pd

    from reports.figures import Figures

    dates = pd.DatetimeIndex(["2010-03-31", "2010-04-01"][:count])
    ratio = pd.Series([0.002994, 0.003486][:count], index=dates)
    band = pd.DataFrame({"q10": np.nan, "q90": np.nan}, index=dates)
    figures = Figures("ratio", {"date": dates[-1].date().isoformat(), "origin": "import", "demo": False,
                                "rqmce_included": False},
                      {"ratio": ratio, "band": band, "ma": ratio * np.nan,
                       "index": pd.Series([3109.1, 3147.4][:count], index=dates)})
    for lang in ("zh", "en"):
        drawn = _draw(figures, lang, monkeypatch)
        locs, labels, _ = drawn.ticks[(0, "y")]
        assert len(labels) >= 3 and max(_decimals(label) for label in labels) <= 3, labels
        assert locs[0] == 0.0 and max(locs) >= ratio.max()
        assert drawn.ticks[(0, "x")][1][0] == ("3月31日" if lang == "zh" else "Mar 31")


@pytest.mark.parametrize(("lang", "title", "index_label"), [("zh", "银行行业融资余额", "申万行业指数"),
                                                            ("en", "Banks: financing balance",
                                                             "Shenwan sector index")])
def test_one_sectors_chart_names_its_right_axis_and_ticks_its_net_buying(
        demo: Engine, monkeypatch: pytest.MonkeyPatch, lang: str, title: str, index_label: str) -> None:
    """银行 over 60 days: the title without a stray space ("银行 行业融资余额"), the index's axis on
    the right named, and the net-buy bars (-9 .. 3 亿元) with at least three ticks (they got -5, 0)."""
    figures = _figures(demo, "sectors", None, 60, "480000")
    drawn = _draw(figures, lang, monkeypatch)
    ax_level, ax_net, twin = drawn.fig.axes
    assert ax_level.get_title(loc="left") == title
    assert twin.get_ylabel() == index_label
    locs, labels, _ = drawn.ticks[(1, "y")]
    low, high = ax_net.get_ylim()
    assert len(labels) >= 3 and all(low <= x <= high for x in locs), labels
    assert max(_decimals(label) for label in labels) <= 2, labels
    net = figures.series["net_buy"]
    assert net.min() < 0 < net.max()


def _bar_value_labels(ax: Any, size: float = 8.0) -> Any:
    [labels] = [c for c in ax.get_children() if isinstance(c, layout._Labels) and c._prop.get_size() == size]
    return labels


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_sectors_share_change_is_coloured_by_its_own_sign(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                            lang: str) -> None:
    """A sector's balance can rise while its share falls (机械设备: a red bar, -0.01): each label is in
    the colour of its own sign (grey at 0.00), never in its bar's, so it reads as another figure."""
    from reports.fmt import up_down_colors

    figures = _figures(demo, "sectors", None, 20)
    drawn = _draw(figures, lang, monkeypatch)
    labels = _bar_value_labels(drawn.fig.axes[0])
    up, down = (to_rgba(c) for c in up_down_colors(lang))
    grey = to_rgba(charts.LABEL_GREY)
    rows = figures.series["table"][::-1]  # drawn bottom up
    changes = [r["change"] for r in rows if r.get("share_change_pp") is not None]
    seen = set()
    for text, rgba, change in zip(labels._texts, labels._rgba, changes, strict=True):
        value = float(text.removesuffix("pp"))
        assert rgba == (up if value > 0 else down if value < 0 else grey), (text, rgba)
        seen.add((change > 0, value < 0))
    assert (True, True) in seen  # a rise with a falling share is among them


@pytest.mark.parametrize(("lang", "axis"), [("zh", "近5日融资余额变化（亿元）· 条旁数字：变化率（%）"),
                                            ("en", "5-day change in financing balance (CNY bn) · labels: change (%)")])
def test_the_rankings_axis_says_its_labels_are_percent_changes(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                               lang: str, axis: str) -> None:
    """The top chart's bars are 亿元 and the numbers beside them each stock's % change: the axis says both."""
    drawn = _draw(_figures(demo, "top", None, 5), lang, monkeypatch)
    ax = drawn.fig.axes[0]
    assert ax.get_xlabel() == axis
    texts = _bar_value_labels(ax)._texts
    assert texts and all(text.endswith("%") for text in texts)
