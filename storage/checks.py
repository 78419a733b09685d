"""Consistency checks of stored data, as lines for the logs and the command line."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from storage import queries

_SHOWN = 5  # lines per check; the rest are counted


def cross_check_notes(engine: Engine, start: date | None = None, end: date | None = None) -> list[str]:
    """Where the exchanges' sum and a market-wide source disagree beyond queries.CROSS_CHECK_TOLERANCE
    (money in CNY bn, the difference relative to the market-wide figure)."""
    found = queries.market_disagreements(engine, start, end)
    lines = [
        f"cross-check {day}: {figure} of the exchanges {summed / 1e9:,.2f} bn vs market-wide (ALL) "
        f"{whole / 1e9:,.2f} bn ({(summed - whole) / whole * 100:+.2f}%)"
        for day, figure, summed, whole in found[:_SHOWN]
    ]
    if len(found) > _SHOWN:
        lines.append(f"cross-check: {len(found) - _SHOWN} more disagreements")
    return lines
