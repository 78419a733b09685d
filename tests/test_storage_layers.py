"""Storage stands below the analytics: it imports none of the later layers; analytics does no I/O
(it imports no database, network or Telegram module); and the spike statistic storage pre-computes
(storage.spikes) is the very one the analytics layer reports."""

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


ANALYTICS = Path(__file__).resolve().parents[1] / "analytics"
# analytics is pure: numbers in, numbers out. The one module of storage it reads is the spike
# statistic that storage pre-computes (numpy and pandas only, checked below).
PURE = ("numpy", "pandas", "math", "statistics", "dataclasses", "typing", "collections", "__future__")
SHARED_STATISTIC = "storage.spikes"


@pytest.mark.parametrize("path", sorted(ANALYTICS.rglob("*.py")) + [STORAGE / "spikes.py"],
                         ids=lambda p: str(p.relative_to(p.parents[1])))
def test_analytics_imports_nothing_that_does_io(path: Path) -> None:
    impure = [m for m in _imported_modules(path)
              if m.split(".")[0] not in (*PURE, "analytics") and m != SHARED_STATISTIC]
    assert impure == [], f"{path.relative_to(path.parents[1])} imports {impure}"


def test_the_reported_spike_is_the_stored_one() -> None:
    """What a report shows for a stock's last day (analytics.stocks.stock_spikes) is the row storage
    stores for that day (storage.spikes.spike_scores, as storage.aggregate runs it), to the last bit,
    and both are z = (c[T] - mean(c[T-60..T-1])) / std(same, ddof=1) of c = 5-day % change, computed
    here with pandas, through a suspension (unknown changes left out)."""
    from analytics import stocks

    rng = np.random.default_rng(3)
    days = pd.bdate_range("2024-01-02", periods=90, name="trade_date")
    wide = pd.DataFrame(np.round(1e8 * np.exp(np.cumsum(rng.normal(0, 0.02, (90, 12)), axis=0))), index=days,
                        columns=[f"{600000 + i:06d}" for i in range(12)])
    wide.iloc[23:29, 2] = np.nan  # a suspension inside the last day's 60-change window
    stored = spikes.spike_scores(wide, spikes.SPIKE_DAYS, spikes.SPIKE_HISTORY, start=days[70])
    shown = stocks.stock_spikes(wide, top=100, min_balance=0)
    last = stored.xs(days[-1], level="trade_date")
    assert len(shown) > 0
    for code, row in shown.iterrows():
        assert row["change_pct"] == last.loc[code, "change_pct"]
        assert row["zscore"] == last.loc[code, "zscore"]
    change = (wide / wide.shift(5) - 1) * 100
    for code in wide.columns:
        past = change[code].iloc[-61:-1].dropna()
        expected = (change[code].iloc[-1] - past.mean()) / past.std(ddof=1)
        if len(past) < spikes.SPIKE_HISTORY:  # the suspended stock: 60 changes not all known
            assert code == "600002" and len(past) == 55 and np.isnan(last.loc[code, "zscore"])
            continue
        assert last.loc[code, "zscore"] == pytest.approx(expected, rel=1e-9), code
