"""Figures of each report: load frames from storage, compute with analytics, return JSON-ready data.

A `Figures` holds `data` (what `--json` prints: money in 元, percentages as percent numbers) and
`series` (frames the charts draw). Nothing here is language-specific. One module per family of
reports: `market` (balance, ratio), `sectors`, `stocks` (a security, the ranking), `digest`
(signals, summary), on what they share (`common`); `build` picks the one asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import Engine

from reports.errors import ReportError
from reports.figures.common import (
    CODE_RE,
    DEFAULT_DAYS,
    KINDS,
    MAX_DAYS,
    MIN_DAYS,
    SECTOR_KINDS,
    SECTOR_MAX_DAYS,
    SPIKE_TOP,
    SPIKE_Z,
    Figures,
    SubReport,
    resolve_date,
    resolve_days,
    window_limit,
)
from reports.figures.digest import signals_figures, summary_figures
from reports.figures.market import balance_figures, ratio_figures
from reports.figures.sectors import sector_figures, sectors_figures
from reports.figures.stocks import stock_figures, top_figures
from storage import queries

BUILDERS: dict[str, Callable[..., Figures]] = {
    "balance": balance_figures,
    "ratio": ratio_figures,
    "sectors": sectors_figures,
    "signals": signals_figures,
    "summary": summary_figures,
    "top": top_figures,
}


def build(
    engine: Engine, kind: str, day: date | None, days: int | None, code: str | None = None,
    sub: SubReport | None = None,
) -> Figures:
    """Figures of one report for `day` (default: latest data date) over a window of `days` trade days.

    `sub` lets summary and signals reuse cached figures of the reports they are made of.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}")
    window = resolve_days(kind, days)
    if kind == "stock" and (not code or not CODE_RE.match(code)):
        raise ReportError("bad_code", code=code or "")
    with queries.shared_reads():  # sub-reports built through `sub` share the reads of this one
        on = resolve_date(engine, day)
        if kind == "stock":
            return stock_figures(engine, on, window, code)
        if kind == "top":
            return top_figures(engine, on, window, code)
        if kind == "sectors" and code is not None:  # one sector of the table
            return sector_figures(engine, on, window, code, sub)
        if kind in ("signals", "summary"):
            return BUILDERS[kind](engine, on, window, sub)
        return BUILDERS[kind](engine, on, window)


__all__ = [
    "BUILDERS", "CODE_RE", "DEFAULT_DAYS", "KINDS", "MAX_DAYS", "MIN_DAYS", "SECTOR_KINDS", "SECTOR_MAX_DAYS",
    "SPIKE_TOP", "SPIKE_Z", "Figures", "SubReport", "balance_figures", "build", "ratio_figures", "resolve_date",
    "resolve_days", "sector_figures", "sectors_figures", "signals_figures", "stock_figures", "summary_figures",
    "top_figures", "window_limit",
]
