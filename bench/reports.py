"""`marginbot bench reports`: report latency and memory over a large generated database.

The database (10 years, 5,000 stocks plus ETFs: about 12 million StockMargin rows) comes from
bench.data, generated in a child process so that the memory figures of this process concern
the reports only, and kept under var/bench/, so the next run reuses it.

Then for every report (zh, the report's default window) it prints: uncached latency (cache cleared
before each render), cached latency, the floor (a bare matplotlib PNG of the report's pixel size),
the ratio uncached p95 / floor p95, the tracemalloc peak of one uncached render and the process's
peak RSS, with the aims marked PASS or MISS. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import resource
import statistics
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DEFAULT_CACHE_DIR, FULL, SMALL, ensure_database
from reports.figures import KINDS

REPORTS: tuple[str, ...] = KINDS
AIM_FLOOR_RATIO = 2.0
AIM_CACHED_MS = 5.0
AIM_MEMORY_MB = 500.0


@dataclass(frozen=True)
class Iterations:
    uncached: int
    cached: int
    floor: int
    phases: int  # uncached renders timed step by step
    # The tracemalloc render doubles as the warm-up: one render fewer per report, but the allocator may
    # keep some of tracemalloc's bookkeeping, which then shows in the RSS figure (negligible when small).
    traced_warmup: bool = False


# 30 uncached renders: the p95 is then the second slowest, not the slowest, which one hiccup of the
# host would decide.
FULL_ITERATIONS = Iterations(uncached=30, cached=300, floor=30, phases=3)
SMALL_ITERATIONS = Iterations(uncached=2, cached=20, floor=2, phases=0, traced_warmup=True)


# ---------------------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between order statistics."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def png_size(png: bytes) -> tuple[int, int]:
    """Pixel width and height from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def floor_png(width: int, height: int, dpi: int) -> bytes:
    """The least a chart of this size costs: one empty axes, saved as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.add_subplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _timed_in_turns(first: Callable[[], Any], first_times: int, second: Callable[[], Any],
                    second_times: int) -> tuple[tuple[list[float], list[float]], tuple[list[float], list[float]]]:
    """_timed of two functions, one call of each in turn (which goes first alternates), then the rest
    of whichever is asked more often."""
    results: tuple[tuple[list[float], list[float]], ...] = (([], []), ([], []))
    order = [(first, results[0]), (second, results[1])]
    rounds = min(first_times, second_times)
    for i in range(rounds):
        for fn, (wall, cpu) in (order if i % 2 else order[::-1]):
            w, c = _timed(fn, 1)
            wall += w
            cpu += c
    for fn, (wall, cpu), times in ((second, results[1], second_times), (first, results[0], first_times)):
        w, c = _timed(fn, times - rounds)
        wall += w
        cpu += c
    return results[0], results[1]


def _timed(fn: Callable[[], Any], times: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of `times` calls."""
    wall, cpu = [], []
    for _ in range(times):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return wall, cpu


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: /proc/self/clear_refs), so ru_maxrss covers what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class ReportTiming:
    kind: str
    label: str
    uncached: list[float]
    uncached_cpu: list[float]
    cached: list[float]
    floor: list[float]
    floor_cpu: list[float]
    size: tuple[int, int]
    py_peak_mb: float
    rss_mb: float
    rss_is_per_report: bool
    phases: dict[str, float]  # median ms of the figures (queries + analytics), text and chart steps

    @property
    def ratio(self) -> float:
        return percentile(self.uncached, 95) / percentile(self.floor, 95)

    @property
    def cpu_ratio(self) -> float:
        return percentile(self.uncached_cpu, 95) / percentile(self.floor_cpu, 95)


def _phases(engine: Any, kind: str, code: str | None, lang: str, times: int) -> dict[str, float]:
    """Median ms of the steps ReportService.render takes, each run uncached in a fresh service."""
    from reports import charts, text
    from reports.service import ReportService
    from storage.database import data_version

    steps: dict[str, list[float]] = {"figures": [], "text": [], "chart": []}
    if times < 1:
        return {}
    try:
        for _ in range(times):
            service = ReportService(engine)
            t0 = time.perf_counter()
            figs = service.figures(kind, code=code, on=None, days=None, version=data_version(engine))
            t1 = time.perf_counter()
            text.render(figs.kind, lang, figs.data)
            t2 = time.perf_counter()
            charts.render_chart(figs, lang)
            t3 = time.perf_counter()
            for name, ms in (("figures", t1 - t0), ("text", t2 - t1), ("chart", t3 - t2)):
                steps[name].append(ms * 1000.0)
    except (AttributeError, TypeError) as exc:  # the service's internals moved: the totals still stand
        print(f"  ({kind}: no step breakdown: {exc})")
        return {}
    return {name: statistics.median(values) for name, values in steps.items()}


def measure(engine: Any, kind: str, code: str | None, it: Iterations, lang: str = "zh") -> ReportTiming:
    """Every figure of one report: latencies, floor, steps, memory."""
    from reports import layout
    from reports.service import ReportService

    def traced() -> tuple[bytes | None, float]:
        """One uncached render in a fresh service under tracemalloc: (png, Python-side peak in MB)."""
        gc.collect()
        tracemalloc.start()
        try:
            png = ReportService(engine).render(kind, code=code, lang=lang).png
            return png, tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        finally:
            tracemalloc.stop()

    # Warm-up (SQLite pages, fonts), untimed; then the RSS mark is reset so that it covers this report.
    if it.traced_warmup:
        png, py_peak = traced()
    else:
        png = ReportService(engine).render(kind, code=code, lang=lang).png
    if not png:
        raise RuntimeError(f"{kind}: no chart rendered")
    gc.collect()
    per_report = _reset_peak_rss()
    service = ReportService(engine)

    def uncached() -> None:
        service.clear()
        service.render(kind, code=code, lang=lang)

    width, height = png_size(png)
    floor_png(width, height, layout.DPI)
    # Uncached renders and floor renders take turns, so that both see the same moments of the host
    # (other load comes and goes by the second). The uncached renders leave the report cached.
    (uncached_ms, uncached_cpu), (floor_ms, floor_cpu) = _timed_in_turns(
        uncached, it.uncached, lambda: floor_png(width, height, layout.DPI), it.floor)
    cached_ms, _ = _timed(lambda: service.render(kind, code=code, lang=lang), it.cached)
    phases = _phases(engine, kind, code, lang, it.phases)
    rss = _rss_mb()
    if not it.traced_warmup:  # last, so that tracemalloc's bookkeeping stays out of the RSS figure
        _png, py_peak = traced()
    label = f"{kind} {code}" if code else kind
    return ReportTiming(kind, label, uncached_ms, uncached_cpu, cached_ms, floor_ms, floor_cpu, (width, height),
                        py_peak, rss, per_report, phases)


def print_table(rows: list[ReportTiming], it: Iterations) -> None:
    head = (f"{'report':<14}{'px':>9}{'unc p50':>9}{'unc p95':>9}{'cch p50':>9}{'cch p95':>9}"
            f"{'flr p50':>9}{'flr p95':>9}{'unc/flr':>9}{'py MB':>8}{'rss MB':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.label:<14}{f'{r.size[0]}x{r.size[1]}':>9}"
            f"{percentile(r.uncached, 50):>9.1f}{percentile(r.uncached, 95):>9.1f}"
            f"{percentile(r.cached, 50):>9.3f}{percentile(r.cached, 95):>9.3f}"
            f"{percentile(r.floor, 50):>9.1f}{percentile(r.floor, 95):>9.1f}{r.ratio:>8.2f}x"
            f"{r.py_peak_mb:>8.1f}{r.rss_mb:>8.0f}"
        )
    rss_note = ("peak RSS of the process during this report's timed renders (mark reset per report;"
                " it includes the ~150-200 MB of the loaded libraries and whatever the allocator kept)"
                if rows and rows[0].rss_is_per_report else "peak RSS of the process so far")
    print(f"(wall-clock ms; unc = cache cleared before each render, {it.uncached} renders; cch = cached, {it.cached}"
          f" renders; flr = bare PNG of the same pixel size, one empty axes, {it.floor} renders;"
          f" py MB = tracemalloc peak of one uncached render; rss MB = ru_maxrss, {rss_note})")
    print()
    head = (f"{'report':<14}{'unc cpu p95':>12}{'flr cpu p95':>12}{'cpu ratio':>10}"
            f"{'figures':>10}{'text':>8}{'chart':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        steps = "".join(f"{r.phases[k]:>{w}.1f}" if k in r.phases else f"{'n/a':>{w}}"
                        for k, w in (("figures", 10), ("text", 8), ("chart", 8)))
        print(f"{r.label:<14}{percentile(r.uncached_cpu, 95):>12.1f}{percentile(r.floor_cpu, 95):>12.1f}"
              f"{r.cpu_ratio:>9.2f}x{steps}")
    steps_note = (f"medians of {it.phases} uncached renders, wall-clock ms" if it.phases
                  else "not measured in this run")
    print(f"(CPU ms of this process, less sensitive to other load than wall-clock; figures = queries + analytics,"
          f" text = captions, chart = matplotlib PNG: {steps_note})")


def print_aims(rows: list[ReportTiming]) -> None:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print(f"\naims: uncached p95 <= {AIM_FLOOR_RATIO:g}x floor p95, cached p95 < {AIM_CACHED_MS:g} ms,"
          f" peak memory < {AIM_MEMORY_MB:g} MB (tracemalloc and RSS)")
    for r in rows:
        unc95, flr95, cch95 = percentile(r.uncached, 95), percentile(r.floor, 95), percentile(r.cached, 95)
        mem_ok = r.py_peak_mb < AIM_MEMORY_MB and r.rss_mb < AIM_MEMORY_MB
        print(f"  {r.label:<14} uncached p95 {unc95:9.1f} ms <= {AIM_FLOOR_RATIO:g} x floor p95 {flr95:7.1f} ms"
              f"  ({r.ratio:5.2f}x)   {mark(r.ratio <= AIM_FLOOR_RATIO)}")
        print(f"  {r.label:<14} cached p95   {cch95:9.3f} ms <  {AIM_CACHED_MS:g} ms{'':>30}"
              f"{mark(cch95 < AIM_CACHED_MS)}")
        print(f"  {r.label:<14} peak memory  python {r.py_peak_mb:6.1f} MB, process {r.rss_mb:5.0f} MB"
              f" < {AIM_MEMORY_MB:g} MB{'':>8}{mark(mem_ok)}")


def profile_report(engine: Any, kind: str, code: str | None, top: int = 25) -> None:
    """cProfile of one uncached render, by cumulative time."""
    from reports.service import ReportService

    service = ReportService(engine)
    service.render(kind, code=code)
    service.clear()
    prof = cProfile.Profile()
    prof.enable()
    service.render(kind, code=code)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n=== profile: {kind} {code or ''} ===")
    print(out.getvalue())


def run(small: bool = False, *, cache_dir: Path | None = None, profile: bool = False,
        in_process: bool = False, kinds: tuple[str, ...] = REPORTS) -> list[ReportTiming]:
    """Generate (or reuse) the database, measure every report, print the table and the aims."""
    from storage.database import get_meta, make_engine

    params, it = (SMALL, SMALL_ITERATIONS) if small else (FULL, FULL_ITERATIONS)
    cache_dir = cache_dir or Path(os.environ.get("MARGINBOT_BENCH_DIR", DEFAULT_CACHE_DIR))
    print(f"benchmark database: {params.years} years, {params.stocks} stocks + {params.funds} ETFs"
          f" (seed {params.seed}, last day {params.end})", flush=True)
    path, reused, seconds = ensure_database(params, cache_dir, in_process=in_process)
    if reused:
        print(f"reused cached database {path} (no generation)")
    else:
        print(f"generated {path} in {seconds:.1f} s")
    print(f"database size: {path.stat().st_size / (1024 * 1024):,.0f} MB", flush=True)

    engine = make_engine(f"sqlite:///{path}")
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        code = get_meta(session, "bench_stock")
    # As the bot does after start-up (bot.pipeline.warm_reports): one render of each report, then the
    # objects alive are frozen out of the garbage collector's walks.
    from reports.service import ReportService, freeze_long_lived

    warm = ReportService(engine)
    requests = [(kind, code if kind == "stock" else None) for kind in kinds]
    if {"sectors", "top"} & set(kinds):
        # one sector alone and the ranking inside it: the sector with the largest balance change
        sector = warm.render("sectors", chart=False).data["sectors"][0]["code"]
        requests += [(kind, sector) for kind in ("sectors", "top") if kind in kinds]
    for kind, asked in requests:
        warm.render(kind, code=asked)
    del warm
    freeze_long_lived()
    load_before = _load()
    rows = []
    for kind, asked in requests:
        rows.append(measure(engine, kind, asked, it))
        print(f"  measured {rows[-1].label}", flush=True)
    print()
    print_table(rows, it)
    print_aims(rows)
    print("\n(the process warmed every report once and then froze its start-up objects out of the garbage"
          " collector, as the bot does after its first warm-up: bot.pipeline.warm_reports)")
    print(f"\nload average at the start {load_before}, at the end {_load()} ({os.cpu_count()} CPUs): other load"
          f" inflates wall-clock figures; the floor is measured under the same load")
    if profile:
        for kind, asked in requests:
            profile_report(engine, kind, asked)
    engine.dispose()
    return rows


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(args: argparse.Namespace) -> int:
    """Entry point of `marginbot bench reports` (args.small: a tiny, few-second run)."""
    profile = bool(getattr(args, "profile", False)) or os.environ.get("MARGINBOT_BENCH_PROFILE") == "1"
    run(bool(getattr(args, "small", False)), profile=profile)
    return 0


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick, smaller run")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each report")
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_cli())
