"""The read-outs made of the other reports: signals (量 and 质 with their warnings) and the daily
summary the push sends."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from analytics import amplification, stocks
from reports.errors import ReportError
from reports.figures.common import (
    AMPLIFYING_CORR,
    SPIKE_TOP,
    SPIKE_Z,
    SPIKES_NAMED,
    SUMMARY_SPIKES_CHARTED,
    SUMMARY_SPIKES_NAMED,
    Figures,
    SubReport,
    _base,
    _direct,
    _num,
)
from reports.figures.sectors import _bottoming
from reports.figures.stocks import _short_structure, _spikes, _spikes_scored
from storage import queries
from storage.aggregate import SPIKE_KEEP


def signals_figures(engine: Engine, day: date, days: int, sub: SubReport | None = None) -> Figures:
    """Signals: pace, turning point, crowding / deleveraging, amplification, sector bottoming, spikes,
    融券 structure."""
    sub = sub or _direct(engine)
    # The ratio first: it reads the longest history, which the balance's is then cut from (queries.shared_span).
    rat = sub("ratio", day, max(days, 60))
    bal = sub("balance", day, days).data
    spikes = _spikes(engine, day)
    names = queries.stock_names(engine, list(spikes.index), day)
    # The ratio report loaded three years of the ratio and the index: reuse them.
    ratio_history, index = rat.series["ratio_history"], rat.series["index_history"]
    amp = amplification.amplification(ratio_history, index) if len(index) > 80 else float("nan")
    short = _short_structure(engine, day)
    bottoming = _bottoming(engine, day)
    unjudged = list(rat.data["unjudged"])
    if bottoming is None:
        unjudged.append({"signal": "bottoming", "reason": "sector_index_missing"})
    warnings = []
    if bal["pace_class"] == "sharp":
        warnings.append("pace_sharp")
    if rat.data["crowding"]:
        warnings.append("crowding")
    if rat.data["deleveraging"]:
        warnings.append("deleveraging")
    amplifying = not math.isnan(amp) and amp > AMPLIFYING_CORR
    if amplifying:
        warnings.append("amplification")
    if len(spikes):
        warnings.append("spikes")
    data = _base(engine, "signals", day)
    data.update(
        days=days,
        pace_z=bal["pace_z"],
        pace_class=bal["pace_class"],
        pace_direction=bal["pace_direction"],
        turning_point=bal["turning_point"],
        ratio_pct=rat.data["ratio_pct"],
        # the ratio's own 口径 notes: where 融券卖出额 or a turnover is not in it
        rqmce_included=rat.data["rqmce_included"],
        turnover_a_share_only=rat.data["turnover_a_share_only"],
        turnover_missing=rat.data["turnover_missing"],
        percentile_since=rat.data["percentile_since"],
        crowding=rat.data["crowding"],
        crowding_days=rat.data["crowding_days"],
        crowding_since=rat.data["crowding_since"],
        deleveraging=rat.data["deleveraging"],
        days_shown=bal["days_shown"],  # the chart's dates with data, where the history is shorter
        amplification_corr=_num(amp),
        amplifying=amplifying,
        # under a year of history (no 3-year percentile: PERCENTILE_MIN_DAYS) the pace and the
        # crowding threshold cannot be computed: "nothing unusual" would claim more than the data show
        partial=bal["percentile_3y"] is None,
        bottoming=bottoming,  # all signals needs of the sectors report
        unjudged=unjudged,  # signals whose inputs are missing on the day, with why
        spikes=[
            {"code": code, "name": names.get(code, code), "rzye": _num(r["rzye"]),
             "change_pct": _num(r["change_pct"]), "zscore": _num(r["zscore"])}
            for code, r in spikes.iterrows()
        ],
        # the spikes the caption names; the rest of the list only the chart names, and the text counts them
        spikes_named=min(len(spikes), SPIKES_NAMED),
        # every stock the rule flags that day, of which the list holds the SPIKE_TOP largest z-scores
        # (capped: the stored candidates, SPIKE_KEEP a day, all qualify, so there may be more)
        **_spikes_total(engine, day, spikes),
        short_structure=short,
        spike_z=SPIKE_Z,
        spike_min_balance=stocks.SPIKE_MIN_BALANCE,
        stock_detail=queries.has_stock_rows(engine, day),  # spikes and structure need it
        # False where no stock has a spike z-score yet (too short a history of per-stock detail): an
        # empty list then says nothing about spikes
        spikes_scored=_spikes_scored(engine, day, spikes),
        warnings=warnings,
        # what the caption flags, one line each (⚠️ a warning, 💡 a sector bottoming), and its header
        # counts ("3 项提示"): a count of the warnings alone left a flagged line uncounted
        flagged=warnings + ["bottoming"] * bool(bottoming),
    )
    # the ratio was read over at least 60 days (its signals need them); the chart shows the window asked
    return Figures("signals", data, {"spikes": data["spikes"], "ratio": rat.series["ratio"].iloc[-days:],
                                     "band": rat.series["band"].iloc[-days:],
                                     "percentile_since": data["percentile_since"]})


def _spikes_total(engine: Engine, day: date, listed: pd.DataFrame) -> dict[str, Any]:
    """spikes_total: the stocks the spike rule flags on `day` (the list shows the first SPIKE_TOP of
    them); spikes_total_capped: every stored candidate qualifies, so the count may stand for more."""
    total = queries.count_stored_spikes(engine, day, SPIKE_Z)
    if total < len(listed):  # the list came from stock rows, nothing stored for the day (figures.stocks._spikes)
        return {"spikes_total": len(listed), "spikes_total_capped": len(listed) >= SPIKE_TOP}
    return {"spikes_total": total, "spikes_total_capped": total >= SPIKE_KEEP}


def summary_figures(engine: Engine, day: date, days: int, sub: SubReport | None = None) -> Figures:
    """The daily push: balance, ratio, top sector shifts and warnings in one read-out."""
    sub = sub or _direct(engine)
    rat = sub("ratio", day, days)  # first, as in signals_figures: the balance's history is cut from the ratio's
    bal = sub("balance", day, days)
    try:
        sec: Figures | None = sub("sectors", day, min(20, days))
    except ReportError as exc:  # a day without per-stock detail: the read-out goes without its sectors
        if exc.kind not in ("no_sector_data", "no_sector_data_on", "not_enough_history", "first_day_only"):
            raise
        # the first day is a history too short as any other
        sec, sectors_missing = None, "not_enough_history" if exc.kind == "first_day_only" else exc.kind
    else:
        sectors_missing = None
    sig = sub("signals", day, days)
    data = _base(engine, "summary", day)
    # The dashboard draws the first spikes of the signals' list and the caption names the first of
    # those, counting the rest ("另有 3 只见图"): the caption never says less than the chart shows.
    spikes_charted = min(len(sig.data["spikes"]), SUMMARY_SPIKES_CHARTED)
    data.update(days=days, balance=bal.data, ratio=rat.data, sectors=sec.data if sec else None, signals=sig.data,
                sectors_missing=sectors_missing, spikes_charted=spikes_charted,
                spikes_named=min(spikes_charted, SUMMARY_SPIKES_NAMED))
    series = {"balance": bal.series, "ratio": rat.series, "sectors": sec.series if sec else None,
              "signals": sig.series}
    return Figures("summary", data, series)
