"""Storage stands below the analytics: it imports none of the later layers, and the spike statistic it
pre-computes (storage.spikes) is the very one the analytics layer reports."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage import spikes

STORAGE = Path(__file__).resolve().parents[1] / "storage"
# Data flow sources -> storage -> analytics -> reports -> bot: storage reads none of what follows it.
LATER_LAYERS = ("analytics", "reports", "bot", "sandbox", "marginbot", "bench")
# The settings (and their time zone) are everyone's: read by every layer, they depend on none.
EVERYONES = ("marginbot.settings",)


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at its top or inside a function."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


@pytest.mark.parametrize("path", sorted(STORAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(STORAGE)))
def test_storage_imports_no_later_layer(path: Path) -> None:
    later = [m for m in _imported_modules(path) if m.split(".")[0] in LATER_LAYERS and m not in EVERYONES]
    assert later == [], f"{path.relative_to(STORAGE.parent)} imports {later}"


def test_the_analytics_spike_is_the_stored_one() -> None:
    """The report's read-out (analytics.stocks) and the stored table (storage.spikes) share one
    definition: the same constants, and the same figures to the last bit."""
    from analytics import stocks

    for name in ("SPIKE_DAYS", "SPIKE_HISTORY", "SPIKE_MIN_BALANCE", "SPIKE_DATES_BEFORE"):
        assert getattr(stocks, name) == getattr(spikes, name), name
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2024-01-02", periods=90, name="trade_date")
    wide = pd.DataFrame(np.round(1e8 * np.exp(np.cumsum(rng.normal(0, 0.02, (90, 12)), axis=0))), index=days,
                        columns=[f"{600000 + i:06d}" for i in range(12)])
    wide.iloc[3:9, 2] = np.nan  # a suspension: its changes are unknown
    stored = spikes.spike_scores(wide, spikes.SPIKE_DAYS, spikes.SPIKE_HISTORY, start=days[70])
    pd.testing.assert_frame_equal(stocks.spike_scores(wide, start=days[70]), stored, check_exact=True)
    assert stored["zscore"].notna().any()
    # and what a report shows for the last day agrees with the stored row
    shown = stocks.stock_spikes(wide, top=100, min_balance=0)
    last = stored.xs(days[-1], level="trade_date")
    for code, row in shown.iterrows():
        assert row["change_pct"] == last.loc[code, "change_pct"]
        assert row["zscore"] == last.loc[code, "zscore"]
