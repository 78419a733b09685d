"""融券 structure: where the short positions sit (ETFs, CSI 300 constituents, the rest).

The buckets: ``etf`` (every fund, even one an index lists), ``hs300`` (stocks in the CSI 300 list in
force on the day), ``other``. The day's 融券余额 is summed per bucket where it is stored (in SQL,
storage.queries.short_sums); this module turns the sums into shares. A rising share in ETFs and
constituents points to hedging and arbitrage (对冲和套利) rather than one-way bets. ``rqye``
(融券余额) is in 元; shares are percent numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

BUCKETS = ("etf", "hs300", "other")


def hedging_rising(now: Mapping[str, float], then: Mapping[str, float], min_change_pp: float = 0.0) -> bool:
    """True when the share of 融券余额 in ETFs and CSI 300 constituents together rose (对冲和套利) by
    more than ``min_change_pp`` percentage points.

    Formula: ``(now.etf + now.hs300) - (then.etf + then.hs300) > min_change_pp``, shares in percent;
    False when either is unknown (nan).
    """
    return bool((now["etf"] + now["hs300"]) - (then["etf"] + then["hs300"]) > min_change_pp)


def shares_of_sums(sums: Mapping[str, float]) -> dict[str, float]:
    """Shares of 融券余额 from its sums by bucket (元; a missing bucket counts as 0).

    Formula: ``share_b = sums[b] / sum(sums) x 100``.

    Returns
    -------
    dict
        ``{"etf": %, "hs300": %, "other": %}`` summing to 100; all nan when the total is not positive.
    """
    total = float(sum(sums.get(b, 0.0) for b in BUCKETS))
    if not total > 0:
        return {b: math.nan for b in BUCKETS}
    return {b: float(sums.get(b, 0.0)) / total * 100.0 for b in BUCKETS}
