"""SSE's per-security 融券余额, which SSE does not publish: its 融券余量 valued at the day's close.

Eastmoney's quotes carry no date: they are taken as the day's closes only where they agree with the
closes SZSE's own detail implies (融券余额 / 融券余量: SZSE values its lending at the close), and the
valued lending must add up to SSE's summary 融券余额. The "sse_rqye" step of storage.ingest.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage import models
from storage._steps import sector_days_ready
from storage.database import bump_data_version, get_meta, session_scope, set_meta
from storage.sources import Sources
from storage.upstream import ValidationFailed

log = logging.getLogger(__name__)

LENDING_TRIED = "sse_rqye_tried"  # DatasetMeta key: "<trade date>@<day>" the quotes were last asked for
# Quotes are taken as a day's closes where they agree, within QUOTE_TOLERANCE, with the closes SZSE's
# detail implies for QUOTE_AGREEMENT of at least QUOTE_CHECKS securities lent at least QUOTE_MIN_LENT
# shares.
QUOTE_TOLERANCE = 0.002
QUOTE_AGREEMENT = 0.9
QUOTE_CHECKS = 20
QUOTE_MIN_LENT = 1000
# The SSE detail's lending valued at the closes must add up to within this of SSE's summary 融券余额
# (the detail covers the current eligible list only, and a suspended security may have no close).
LENDING_TOLERANCE = 0.10


def _closes_column(quotes: pd.DataFrame, implied: dict[str, float], day: date) -> str:
    """The column of `quotes` (indexed by code) that holds `day`'s closes: "last" or "prev_close",
    whichever agrees with the closes SZSE's detail implies; ValidationFailed when neither does."""
    common = [code for code in implied if code in quotes.index]
    if len(common) < QUOTE_CHECKS:
        raise ValidationFailed(f"quotes: {len(common)} securities to check against SZSE's closes of {day}, "
                               f"fewer than {QUOTE_CHECKS}")
    expected = pd.Series({code: implied[code] for code in common})
    for column in ("last", "prev_close"):
        agree = ((quotes.loc[common, column].astype(float) / expected - 1).abs() <= QUOTE_TOLERANCE).mean()
        if agree >= QUOTE_AGREEMENT:
            return column
    raise ValidationFailed(f"quotes: neither 最新价 nor 昨收 holds the closes of {day} (SZSE's disagree)")


def _check_lending(session: Session, day: date, valued: float) -> None:
    """ValidationFailed unless SSE's per-security 融券余额 of `day` (stored, plus `valued` 元 about
    to be) adds up to within LENDING_TOLERANCE of SSE's summary 融券余额."""
    sm = models.StockMargin
    summary = session.execute(select(models.MarginSummary).where(
        models.MarginSummary.trade_date == day, models.MarginSummary.exchange == "SSE")).scalar_one_or_none()
    if summary is None or summary.rqye is None or not summary.rqye > 0:
        raise ValidationFailed(f"SSE's summary of {day} gives no 融券余额 to check the estimate against")
    known = session.execute(select(func.coalesce(func.sum(sm.rqye), 0.0)).where(
        sm.trade_date == day, sm.exchange == "SSE", sm.rqye.is_not(None))).scalar()
    total = float(known) + valued
    if abs(total / summary.rqye - 1) > LENDING_TOLERANCE:
        raise ValidationFailed(f"SSE's lending valued at the closes of {day}, {total / 1e8:.2f} 亿元, is "
                               f"{total / summary.rqye - 1:+.1%} off its summary's {summary.rqye / 1e8:.2f} 亿元")


def value_sse_lending(engine: Engine, sources: Sources, latest: date, today: date) -> int | None:
    """SSE's per-security 融券余额, which SSE does not publish, for `latest` (the last published
    trade date): 融券余量 x that day's close (rqye_estimated), then the day's sectors again.

    Eastmoney's quotes carry no date; on the morning after `latest` its closes sit in 最新价 (before
    the open) or 昨收 (once the session runs). They are used only where they agree with the closes
    SZSE's own detail implies for the same day; quotes that hold no day's closes of `latest` (asked
    days later) are refused. The quotes are asked for once a day at most, whatever comes of it.
    Returns the rows valued; None when there was nothing to value.
    """
    sm = models.StockMargin
    unvalued = (sm.trade_date == latest, sm.exchange == "SSE", sm.rqye.is_(None), sm.rqyl > 0)
    with Session(engine) as session:
        if not session.execute(select(func.count()).where(*unvalued)).scalar():
            return None
        if get_meta(session, LENDING_TRIED) == f"{latest}@{today}":
            return None
        implied = {code: rqye / rqyl for code, rqye, rqyl in session.execute(
            select(sm.code, sm.rqye, sm.rqyl).where(sm.trade_date == latest, sm.exchange == "SZSE", sm.rqye > 0,
                                                    sm.rqyl >= QUOTE_MIN_LENT))}
    if len(implied) < QUOTE_CHECKS:
        return None  # SZSE's detail of the day is not stored yet: nothing to tell the quotes' day by
    with session_scope(engine) as session:
        # Once a day, whatever comes of it (used, refused, or a failure to fetch): 60 pages of quotes
        # are not asked for again every minute while Eastmoney is down.
        set_meta(session, LENDING_TRIED, f"{latest}@{today}")
    quotes = sources.quotes().set_index("code")
    valued = 0
    with session_scope(engine) as session:
        column = _closes_column(quotes, implied, latest)
        closes = quotes[column].dropna()
        rows = list(session.execute(select(sm).where(*unvalued)).scalars())
        values = {row.code: round(float(row.rqyl) * float(closes[row.code]), 2) for row in rows if row.code in closes}
        _check_lending(session, latest, sum(values.values()))
        for row in rows:
            if row.code in values:
                row.rqye = values[row.code]
                row.rqye_estimated = True
                valued += 1
        if valued:
            from storage.aggregate import rebuild_sector_daily

            session.flush()
            if sector_days_ready(session, [latest]):  # else the sectors step builds them once the day is whole
                rebuild_sector_daily(session, [latest])
            bump_data_version(session)
    log.info("SSE 融券余额 of %s estimated for %d securities (closes from %s)", latest, valued, column)
    return valued
