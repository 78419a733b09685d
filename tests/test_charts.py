"""Charts: every report's PNG in both languages, readable on a phone, and Chinese text that renders.

The PNGs come from the demo reports rendered once per session (see tests/test_reports.py).
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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
    ax.set_ylabel("两融交易占比(%)")
    ax.set_xlabel("近20日融资余额变化(亿元)")
    ax.legend(["上证指数"])
    fig.supxlabel("数据日期 2026-11-20 · 数据:上交所、深交所、北交所 · 演示数据 ▲▼")
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
    ax.set_ylabel("两融交易占比(%)")  # rotated 90 degrees
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
    assert {"两融余额 Margin balance", "两融交易占比(%)", "演示数据"} <= set(drawn)
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


@pytest.mark.parametrize(("origin", "source"), [("exchanges", "数据:上交所"), ("import", "用户导入"), ("demo", None)])
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


@pytest.mark.parametrize(("kind", "source"), [("balance", "数据:用户导入(CSV)"), ("ratio", "数据:用户导入(CSV)"),
                                              ("sectors", "数据:用户导入(CSV),申万行业分类")])
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
    shows three days either side, one tick naming the date, and the value as a dot."""
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
    assert list(ax.xaxis.get_major_formatter().seq) == ["2023-01-02"]  # type: ignore[attr-defined]
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


@pytest.mark.parametrize(("lang", "first"), [("zh", "10月22日"), ("en", "Oct-22")])
def test_day_ticks_name_the_first_ticks_month(lang: str, first: str) -> None:
    """Ticks from 22 October to 15 November: the month is otherwise named only at 1 November, and
    "22" read before "11月" and an offset of 2026-11 would be taken for November's."""
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, 4.8), dpi=100)
    ax = fig.add_subplot()
    index = pd.date_range("2026-10-22", "2026-11-20")
    ax.plot(index, np.arange(len(index), dtype=float))
    ax.set_xlim(float(mdates_num("2026-10-21")), float(mdates_num("2026-11-21")))
    layout.date_axis(ax, lang)
    labels = list(ax.xaxis.get_major_formatter().seq)  # type: ignore[attr-defined]
    locs = np.asarray(ax.xaxis.get_major_locator()(), dtype=float)
    assert labels[int(np.flatnonzero(locs >= mdates_num("2026-10-21"))[0])] == first, labels
    assert ax.xaxis.get_major_formatter().get_offset() == "2026-11"


def mdates_num(day: str) -> float:
    import matplotlib.dates as mdates
    import pandas as pd

    return float(mdates.date2num(pd.Timestamp(day).to_pydatetime()))


SPIKE_LINE = {"zh": ("⚠️ 融资余额急升:", "⚠️ 融资急升:"), "en": ("⚠️ Financing spikes: ",)}
MORE = {"zh": re.compile(r"另有 (\d+) 只见图"), "en": re.compile(r"and (\d+) more in the chart")}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(("kind", "charted"), [("signals", 10), ("summary", 6)])
def test_the_text_accounts_for_every_spike_the_chart_draws(demo: Engine, monkeypatch: pytest.MonkeyPatch,
                                                           kind: str, charted: int, lang: str) -> None:
    """The demo's last day has 10 spikes (figures.SPIKE_TOP): /signals draws all ten and names five
    (figures.SPIKES_NAMED), "另有 5 只见图"; the push's dashboard draws six and its caption names
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
    named = re.findall(r"\((\d{6})\)", line)
    more = MORE[lang].search(line)
    assert more is not None, line
    assert len(named) + int(more.group(1)) == charted
    assert named == drawn[0][: len(named)] and len(named) == (5 if kind == "signals" else 3)
    assert report_text.visible_length(report.caption) <= report_text.CAPTION_LIMIT


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_more_is_claimed_when_the_text_names_every_spike(demo: Engine, lang: str) -> None:
    """Two spikes: both named, nothing "more" (the signals chart draws the two)."""
    data = dict(demo_report(demo, "signals", lang).data)
    data.update(spikes=data["spikes"][:2], spikes_named=2)
    caption, _ = report_text.render("signals", lang, data)
    [line] = [line for line in report_text.to_plain(caption).splitlines() if line.startswith(SPIKE_LINE[lang])]
    assert len(re.findall(r"\((\d{6})\)", line)) == 2 and MORE[lang].search(line) is None
