"""The benchmark database of `marginbot bench reports`: generated from its parameters, cached under var/bench/.

The database (10 years, 5,000 stocks plus ETFs: about 12 million StockMargin rows, with per-exchange
and ALL summaries, turnover, the market and 31 sector indexes, point-in-time industry classes and
pre-aggregated SectorDaily and StockSpikeDaily) is generated with vectorised numpy and loaded with
raw sqlite3 executemany in one transaction with journaling off. `ensure_database` generates it in a
child process (`python -m bench.data`), so that the memory figures of the benchmark's process
concern the reports only, and keeps the file under var/bench/, named by its parameters, so the next
run reuses it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from storage.demo import ar1, open_weekdays
from storage.industries import SW_L1_2021

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE_DIR = PROJECT_ROOT / "var" / "bench"
# Bump when the generated data change shape, so that stale cached files are not reused.
GENERATOR_VERSION = 2
SOURCE = "bench"
# Summary = detail sum x factor: exchange totals cover securities outside the detail lists.
_SUMMARY_FACTOR = {"SSE": 1.011, "SZSE": 1.009, "BSE": 1.006}
# Stock boards: exchange, share of the stocks, code ranges [lo, hi), size multiplier.
_BOARDS: tuple[tuple[str, float, tuple[tuple[int, int], ...], float], ...] = (
    ("SSE", 0.34, ((600000, 602000), (603000, 604000), (605000, 606000)), 1.3),
    ("SSE", 0.11, ((688000, 689000),), 0.8),
    ("SZSE", 0.29, ((1, 1000), (2001, 3000), (3001, 3100)), 1.0),
    ("SZSE", 0.20, ((300001, 301700),), 0.7),
    ("BSE", 0.06, ((830000, 840000), (870000, 874000), (920000, 921000)), 0.05),
)
_FUND_RANGES = (("SSE", (510000, 519000)), ("SZSE", (159000, 160000)))
# Lunar new year's day; the exchanges close around it (the demo calendar is approximate anyway).
_LUNAR_NEW_YEAR = {
    2014: date(2014, 1, 31), 2015: date(2015, 2, 19), 2016: date(2016, 2, 8), 2017: date(2017, 1, 28),
    2018: date(2018, 2, 16), 2019: date(2019, 2, 5), 2020: date(2020, 1, 25), 2021: date(2021, 2, 12),
    2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29),
    2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
}
# (month, day) spans closed every year: new year, Qingming, labour day, dragon boat, mid-autumn, national day.
_FIXED_CLOSED = (((1, 1), (1, 1)), ((4, 4), (4, 6)), ((5, 1), (5, 5)), ((6, 10), (6, 10)), ((9, 15), (9, 15)),
                 ((10, 1), (10, 7)))
_STOCK_COLUMNS = ("trade_date", "code", "exchange", "name", "is_fund", "rzye", "rzmre", "rzche", "rqyl", "rqmcl",
                  "rqchl", "rqye", "rqye_estimated")


@dataclass(frozen=True)
class BenchParams:
    """What the generated database holds; its file name is derived from these."""

    years: int = 10
    stocks: int = 5000
    funds: int = 100
    seed: int = 20260101
    end: str = "2026-11-20"  # the last trade date (a Friday)

    @property
    def end_date(self) -> date:
        return date.fromisoformat(self.end)

    def file_name(self) -> str:
        return (f"reports-{self.years}y-{self.stocks}s-{self.funds}f-seed{self.seed}-{self.end}"
                f"-g{GENERATOR_VERSION}-{_schema_head()}.db")


FULL = BenchParams()
SMALL = BenchParams(years=1, stocks=300, funds=20)


def _schema_head() -> str:
    """The newest alembic revision, so that a schema change invalidates cached files."""
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # alembic logs its plugin set-up at INFO when first imported
    try:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        from storage.database import MIGRATIONS_DIR

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        return "-".join(sorted(ScriptDirectory.from_config(cfg).get_heads())) or "none"
    finally:
        quiet.setLevel(level)


# --------------------------------------------------------------------------------------------- data


def trade_calendar(start: date, end: date) -> list[date]:
    """Weekdays from start to end (inclusive) minus approximate exchange holidays."""

    def spans(year: int) -> list[tuple[date, date]]:
        found = [(date(year, *a), date(year, *b)) for a, b in _FIXED_CLOSED]
        lny = _LUNAR_NEW_YEAR.get(year, date(year, 2, 5))
        found.append((lny - timedelta(days=1), lny + timedelta(days=5)))
        return found

    return open_weekdays(start, end, spans)


@dataclass
class Universe:
    codes: list[str]  # sorted, so that each day's rows are inserted in key order
    names: list[str]
    exchange: np.ndarray  # str
    is_fund: np.ndarray  # bool
    sector0: np.ndarray  # position in SW_L1_2021, -1 for funds
    base: np.ndarray  # financing balance at the start (元)
    activity: np.ndarray  # daily purchases / balance, relative
    short_frac: np.ndarray  # 融券余额 / 融资余额
    p0: np.ndarray  # first price
    beta: np.ndarray  # price sensitivity to its sector


def _universe(rng: np.random.Generator, p: BenchParams) -> Universe:
    codes: list[int] = []
    exch: list[str] = []
    mult: list[float] = []
    shares = np.array([b[1] for b in _BOARDS])
    counts = np.floor(shares / shares.sum() * p.stocks).astype(int)
    counts[0] += p.stocks - counts.sum()
    for (exchange, _share, ranges, size), count in zip(_BOARDS, counts, strict=True):
        pool = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
        codes += rng.choice(pool, size=int(count), replace=False).tolist()
        exch += [exchange] * int(count)
        mult += [size] * int(count)
    fund_counts = (p.funds - p.funds // 2, p.funds // 2)
    for (exchange, (lo, hi)), count in zip(_FUND_RANGES, fund_counts, strict=True):
        codes += rng.choice(np.arange(lo, hi), size=count, replace=False).tolist()
        exch += [exchange] * count
        mult += [1.0] * count
    n_sec = len(codes)
    is_fund = np.arange(n_sec) >= p.stocks
    order = np.argsort([f"{c:06d}" for c in codes], kind="stable")
    code_text = [f"{codes[i]:06d}" for i in order]
    exchange = np.array(exch)[order]
    is_fund = is_fund[order]
    multiplier = np.array(mult)[order]
    n_k = len(SW_L1_2021)
    # Every sector gets a few stocks; the rest follow uneven sector weights.
    minimum = min(4, p.stocks // n_k)
    weights = rng.dirichlet(np.full(n_k, 1.5))
    assign = np.concatenate([np.repeat(np.arange(n_k), minimum),
                             rng.choice(n_k, size=p.stocks - minimum * n_k, p=weights)])
    sector0 = np.full(n_sec, -1)
    sector0[~is_fund] = rng.permutation(assign)
    size = rng.lognormal(0.0, 1.1, size=n_sec) * multiplier
    total = 0.9e12  # 两融 financing balance ten years before the end, whatever the universe's size
    base = np.where(is_fund, 0.0, size)
    base = base / base.sum() * total * 0.98
    fund_size = np.where(is_fund, size, 0.0)
    if is_fund.any():
        base += fund_size / fund_size.sum() * total * 0.02
    names = []
    stock_no = fund_no = 0
    for fund in is_fund:
        if fund:
            fund_no += 1
            names.append(f"基准ETF{fund_no:03d}")
        else:
            stock_no += 1
            names.append(f"基准股份{stock_no:04d}")
    activity = rng.lognormal(0.0, 0.35, size=n_sec) * np.where(is_fund, 0.6, 1.0)
    short_frac = rng.lognormal(np.log(0.005), 0.6, size=n_sec) * np.where(is_fund, 6.0, 1.0)
    p0 = np.where(is_fund, rng.uniform(0.8, 5.0, size=n_sec), rng.lognormal(np.log(15.0), 0.8, size=n_sec))
    beta = rng.uniform(0.6, 1.4, size=n_sec)
    return Universe(code_text, names, exchange, is_fund, sector0, base, activity, short_frac, p0, beta)


@dataclass
class Chunk:
    """Stored days [start, stop) of the per-security arrays (rows = days, columns = securities)."""

    start: int
    days: list[date]
    member: np.ndarray  # industry position in force per (day, security), -1 for funds
    rzye: np.ndarray
    rzmre: np.ndarray
    rzche: np.ndarray
    rqyl: np.ndarray
    rqmcl: np.ndarray
    rqchl: np.ndarray
    rqye: np.ndarray
    price: np.ndarray


@dataclass
class Plan:
    """Everything but the per-security detail, which `chunks()` produces a few months at a time."""

    params: BenchParams
    days: list[date]
    uni: Universe
    mkt: np.ndarray  # log market factor, positions 0..n (0 = the unstored day before the first)
    sector: np.ndarray  # log sector factors, (n + 1, 31)
    spike: np.ndarray  # log boost of the spikers' balances, (n + 1, len(spikers))
    spikers: np.ndarray  # a few stocks whose balance jumps over five days near the end
    switchers: np.ndarray
    new_sector: np.ndarray
    switch_at: int  # stored-day index from which the switchers carry their new class
    rng: np.random.Generator


def plan(p: BenchParams) -> Plan:
    rng = np.random.default_rng(p.seed)
    end = p.end_date
    days = trade_calendar(date(end.year - p.years, end.month, end.day) + timedelta(days=1), end)
    n = len(days)
    uni = _universe(rng, p)
    n_k = len(SW_L1_2021)
    trend = np.linspace(0.0, np.log(2.0), n + 1)  # the balance roughly doubles over the period
    mkt = trend + ar1(rng, n + 1, 0.998, 0.006)[:, 0]
    sector = ar1(rng, n + 1, 0.995, 0.008, n_k)
    stocks = np.flatnonzero(~uni.is_fund)
    spikers = rng.choice(stocks, size=min(4, len(stocks)), replace=False)
    spike = np.zeros((n + 1, len(spikers)))
    for j in range(len(spikers)):
        stop = n if j < 3 else n - 15  # three spike into the last day, one three weeks earlier
        ramp = np.clip((np.arange(n + 1) - (stop - 5)) / 5.0, 0.0, 1.0)
        spike[:, j] = np.log(rng.uniform(1.35, 1.6)) * ramp
    switchers = rng.choice(stocks, size=max(1, len(stocks) // 50), replace=False)
    new_sector = (uni.sector0[switchers] + rng.integers(1, n_k, size=len(switchers))) % n_k
    return Plan(p, days, uni, mkt, sector, spike, spikers, switchers, new_sector, n // 2, rng)


def chunks(pl: Plan, size: int = 120) -> Iterator[Chunk]:
    """The per-security detail, `size` stored days at a time (bounded memory), in date order.

    Identities hold exactly: rzye(T) = rzye(T-1) + rzmre(T) - rzche(T) and
    rqyl(T) = rqyl(T-1) + rqmcl(T) - rqchl(T); money is whole 元, so sums are exact in float64.
    """
    rng, uni = pl.rng, pl.uni
    n = len(pl.days)
    n_sec = len(uni.codes)
    k_of = np.where(uni.sector0 < 0, 0, uni.sector0)
    log_base = np.log(uni.base)
    idio = price_noise = None
    prev_rzye = prev_rqyl = None
    for lo in range(0, n + 1, size):  # positions; position 0 only seeds the previous day
        hi = min(n + 1, lo + size)
        length = hi - lo
        idio = ar1(rng, length, 0.995, 0.02, n_sec, None if idio is None else idio[-1])
        price_noise = ar1(rng, length, 0.98, 0.012, n_sec, None if price_noise is None else price_noise[-1])
        level = log_base + (pl.mkt[lo:hi, None] - pl.mkt[0]) + (pl.sector[lo:hi][:, k_of] - pl.sector[0][k_of]) + idio
        level[:, pl.spikers] += pl.spike[lo:hi]
        rzye = np.round(np.exp(level))
        move = (pl.mkt[lo:hi, None] - pl.mkt[0]) + (pl.sector[lo:hi][:, k_of] - pl.sector[0][k_of])
        price = np.maximum(np.round(uni.p0 * np.exp(uni.beta * move + price_noise), 2), 0.5)
        rqyl = np.round(rzye * uni.short_frac / price / 100.0) * 100.0
        prev = np.vstack([prev_rzye, rzye[:-1]]) if prev_rzye is not None else None
        prev_q = np.vstack([prev_rqyl, rqyl[:-1]]) if prev_rqyl is not None else None
        prev_rzye, prev_rqyl = rzye[-1], rqyl[-1]
        if prev is None:  # the first block: drop position 0, the unstored day before the first
            prev, prev_q = rzye[:-1], rqyl[:-1]
            rzye, rqyl, price = rzye[1:], rqyl[1:], price[1:]
            first = 0
        else:
            first = lo - 1
        rows = len(rzye)
        if rows == 0:
            continue
        pre = prev * 0.055 * uni.activity * np.exp(0.25 * rng.normal(size=(rows, n_sec)))
        rzmre = np.round(np.maximum(pre, (rzye - prev) + 0.25 * pre))
        rzche = prev + rzmre - rzye
        rqmcl = np.round(prev_q * 0.05 * np.exp(0.3 * rng.normal(size=(rows, n_sec))) / 100.0) * 100.0
        rqchl = prev_q + rqmcl - rqyl
        short = rqchl < 0
        rqmcl[short] -= rqchl[short]
        rqchl[short] = 0.0
        rqye = np.round(rqyl * price)
        member = np.tile(uni.sector0, (rows, 1))
        after = np.arange(first, first + rows) >= pl.switch_at
        member[np.ix_(after, pl.switchers)] = pl.new_sector
        yield Chunk(first, pl.days[first : first + rows], member, rzye, rzmre, rzche, rqyl, rqmcl, rqchl, rqye,
                    price)


def sector_sums(chunk: Chunk, is_fund: np.ndarray) -> list[tuple[Any, ...]]:
    """SectorDaily rows of a chunk, as storage.aggregate.rebuild_sector_daily computes them.

    Funds excluded, the class in force on each day, sectors without stocks absent; money sums are of
    whole 元 (exact in float64, whatever the order of summation).

    Not storage.aggregate.sector_rows itself: over the full benchmark's 12 million rows its pandas
    frame, point-in-time class join and group-by take about 7.3 s against 0.6 s for these bincounts
    of the generator's own class of each day (about a tenth of the whole generation, ~71 s);
    test_bench_smoke checks that the rows equal a rebuild's exactly.
    """
    n_k = len(SW_L1_2021)
    rows_n = len(chunk.days)
    stocks = ~is_fund
    slot = (np.arange(rows_n)[:, None] * n_k + chunk.member)[:, stocks].ravel()
    width = rows_n * n_k
    count = np.bincount(slot, minlength=width)
    sums = [np.bincount(slot, weights=getattr(chunk, c)[:, stocks].ravel(), minlength=width)
            for c in ("rzye", "rzmre", "rzche", "rqye")]
    out = []
    for s in np.flatnonzero(count):
        t, k = divmod(int(s), n_k)
        out.append((chunk.days[t].isoformat(), SW_L1_2021[k].sw_l1_code, float(sums[0][s]), float(sums[1][s]),
                    float(sums[2][s]), float(sums[3][s]), int(count[s])))
    return out


def spike_rows(chunk: Chunk, stocks: np.ndarray, carry: pd.DataFrame | None,
               codes: list[str]) -> tuple[list[tuple[Any, ...]], pd.DataFrame]:
    """StockSpikeDaily rows of a chunk, by the functions storage.aggregate.rebuild_stock_spikes uses
    (storage.spikes.spike_scores, then storage.aggregate.spike_rows).

    `carry` holds the previous chunks' last SPIKE_LOOKBACK rows of the stocks' 融资余额 (None for the
    first chunk); spike_scores scores each day from those rows alone, so the figures equal a
    rebuild's to the last bit. Returns the rows and the carry for the next chunk.
    """
    from storage.aggregate import SPIKE_LOOKBACK
    from storage.aggregate import spike_rows as stored_spike_rows
    from storage.spikes import SPIKE_DAYS, SPIKE_HISTORY, spike_scores

    wide = pd.DataFrame(chunk.rzye[:, stocks], index=pd.DatetimeIndex(chunk.days, name="trade_date"),
                        columns=[codes[i] for i in np.flatnonzero(stocks)])
    rows = wide if carry is None else pd.concat([carry, wide])
    scores = spike_scores(rows, SPIKE_DAYS, SPIKE_HISTORY, start=wide.index[0])
    out = [(r["trade_date"].isoformat(), r["code"], r["rzye"], r["change_pct"], r["zscore"])
           for r in stored_spike_rows(scores)]
    return out, rows.iloc[-SPIKE_LOOKBACK:]


def generate(path: Path, params: BenchParams) -> dict[str, Any]:
    """Write the benchmark database to `path` (replaced); returns counts and timings."""
    from storage.database import make_engine, upgrade
    from storage.industries import industry_name_rows

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)  # the schema exactly as the application creates it
    engine.dispose()

    pl = plan(params)
    uni = pl.uni
    n, n_sec = len(pl.days), len(uni.codes)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the index builds sort 12 million keys
    con.execute("BEGIN")
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('stock_margin', 'stock_spike_daily')"
        " AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:  # built once at the end: several times faster than kept up to date
        con.execute(f'DROP INDEX "{name}"')

    exch_list = uni.exchange.tolist()
    fund_list = [int(f) for f in uni.is_fund]
    masks = {e: uni.exchange == e for e in _SUMMARY_FACTOR}
    per_exchange: dict[str, dict[str, list[np.ndarray]]] = {e: {} for e in _SUMMARY_FACTOR}
    rqmce_parts: list[np.ndarray] = []
    sector_rows: list[tuple[Any, ...]] = []
    spike_count = 0
    spike_carry = None
    spike_insert = "INSERT INTO stock_spike_daily (trade_date, code, rzye, change_pct, zscore) VALUES (?, ?, ?, ?, ?)"
    # The date is a literal of each day's statement: one bound parameter fewer per row (binding dominates).
    insert = f"INSERT INTO stock_margin ({', '.join(_STOCK_COLUMNS)}) VALUES ('{{day}}', {', '.join('?' * 11)}, 0)"
    gen_time = 0.0
    last_rzye = None
    blocks = chunks(pl)
    while True:
        t0 = time.perf_counter()
        chunk = next(blocks, None)
        if chunk is None:
            break
        for e, mask in masks.items():
            for col in ("rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl"):
                per_exchange[e].setdefault(col, []).append(getattr(chunk, col)[:, mask].sum(axis=1))
        rqmce_parts.append(np.round((chunk.rqmcl * chunk.price).sum(axis=1) * 1.01))
        sector_rows += sector_sums(chunk, uni.is_fund)
        spikes, spike_carry = spike_rows(chunk, ~uni.is_fund, spike_carry, uni.codes)
        columns = [getattr(chunk, c).tolist() for c in ("rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqchl", "rqye")]
        gen_time += time.perf_counter() - t0
        con.executemany(spike_insert, spikes)  # in key order (date, code), like the stock rows
        spike_count += len(spikes)
        for t, day in enumerate(chunk.days):
            con.executemany(
                insert.format(day=day.isoformat()),
                zip(uni.codes, exch_list, uni.names, fund_list, *(col[t] for col in columns), strict=True),
            )
        last_rzye = chunk.rzye[-1]
    loaded = time.perf_counter()
    for _name, sql in indexes:
        con.execute(sql)
    indexed = time.perf_counter()

    # Per-exchange summaries (detail x factor), ALL rows with 融券卖出额, turnover, indexes.
    summary_rows: list[tuple[Any, ...]] = []
    totals: dict[str, np.ndarray] = {}
    ratio = np.clip(0.085 * np.exp(ar1(pl.rng, n, 0.97, 0.03)[:, 0]), 0.05, 0.13)
    iso = [d.isoformat() for d in pl.days]
    for e, factor in _SUMMARY_FACTOR.items():
        cols = {c: np.round(np.concatenate(v) * factor) for c, v in per_exchange[e].items()}
        # rzche(T) = rzye(T-1) + rzmre(T) - rzye(T) on the summary's own figures; day one from the detail.
        cols["rzche"][1:] = cols["rzye"][:-1] + cols["rzmre"][1:] - cols["rzye"][1:]
        cols["rzrqye"] = cols["rzye"] + cols["rqye"]
        for c, v in cols.items():
            totals[c] = totals.get(c, 0.0) + v
        summary_rows += [
            (d, e, cols["rzye"][t], cols["rzmre"][t], cols["rzche"][t], 0, cols["rqye"][t], cols["rqyl"][t],
             cols["rqmcl"][t], None, cols["rzrqye"][t], SOURCE)
            for t, d in enumerate(iso)
        ]
    rqmce = np.concatenate(rqmce_parts)
    summary_rows += [
        (d, "ALL", totals["rzye"][t], totals["rzmre"][t], totals["rzche"][t], 0, totals["rqye"][t],
         totals["rqyl"][t], totals["rqmcl"][t], rqmce[t], totals["rzrqye"][t], SOURCE)
        for t, d in enumerate(iso)
    ]
    summary_rows = [tuple(float(v) if isinstance(v, np.floating) else v for v in row) for row in summary_rows]
    con.executemany(
        "INSERT INTO margin_summary (trade_date, exchange, rzye, rzmre, rzche, rzche_derived, rqye, rqyl, rqmcl, "
        "rqmce, rzrqye, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        summary_rows,
    )
    total_turnover = np.round((totals["rzmre"] + rqmce) / ratio)
    sse = np.round(total_turnover * (0.45 + ar1(pl.rng, n, 0.9, 0.004)[:, 0]))
    bse = np.round(total_turnover * (0.012 + ar1(pl.rng, n, 0.9, 0.0005)[:, 0]))
    szse = total_turnover - sse - bse
    con.executemany(
        "INSERT INTO turnover (trade_date, exchange, amount, a_share_only, source) VALUES (?, ?, ?, 1, ?)",
        [(d, e, float(a[t]), SOURCE) for e, a in (("SSE", sse), ("SZSE", szse), ("BSE", bse))
         for t, d in enumerate(iso)],
    )
    index_rows: list[tuple[Any, ...]] = []
    market = np.round(3000.0 * np.exp(pl.mkt[1:] - pl.mkt[0] - np.linspace(0, 0.3, n)), 2)
    index_rows += [("sh000001", d, float(market[t]), float(np.round(sse[t] * 1.004))) for t, d in enumerate(iso)]
    levels = pl.rng.uniform(1500.0, 9000.0, size=len(SW_L1_2021))
    for k, industry in enumerate(SW_L1_2021):
        close = np.round(levels[k] * np.exp(pl.mkt[1:] - pl.mkt[0] + pl.sector[1:, k] - pl.sector[0, k]), 2)
        index_rows += [(industry.index_symbol, d, float(close[t]), None) for t, d in enumerate(iso)]
    con.executemany("INSERT INTO index_daily (symbol, trade_date, close, amount) VALUES (?, ?, ?, ?)", index_rows)
    con.executemany(
        "INSERT INTO industry_name (sw_l1_code, name_zh, name_en, index_symbol) VALUES (?, ?, ?, ?)",
        [(r["sw_l1_code"], r["name_zh"], r["name_en"], r["index_symbol"]) for r in industry_name_rows()],
    )
    con.executemany(
        "INSERT INTO industry_class (code, start_date, sw_code, sw_l1_code) VALUES (?, ?, ?, ?)",
        _class_rows(pl),
    )
    con.executemany(
        "INSERT INTO sector_daily (trade_date, sw_l1_code, rzye, rzmre, rzche, rqye, stock_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        sector_rows,
    )
    con.executemany("INSERT INTO trading_day (trade_date) VALUES (?)", [(d,) for d in iso])
    stock_code = _pick_stock(uni, last_rzye)
    meta = {"demo": "false", "data_version": "1", "bench_params": json.dumps(asdict(params)),
            "bench_stock": stock_code}
    con.executemany("INSERT INTO dataset_meta (key, value) VALUES (?, ?)", list(meta.items()))
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")  # as the application runs it
    con.close()
    finished = time.perf_counter()
    return {
        "trade_days": n,
        "securities": n_sec,
        "stock_rows": n * n_sec,
        "sector_rows": len(sector_rows),
        "spike_rows": spike_count,
        "first_day": pl.days[0],
        "last_day": pl.days[-1],
        "stock_code": stock_code,
        "seconds_total": finished - started,
        "seconds_numpy": gen_time,
        "seconds_stock_insert": loaded - started,
        "seconds_indexes": indexed - loaded,
    }


def _class_rows(pl: Plan) -> list[tuple[str, str, str, str]]:
    """Point-in-time classes: one from listing (before the first day), a second for reclassified stocks."""
    uni, rng = pl.uni, pl.rng
    first = pl.days[0]
    earliest = date(2000, 1, 1)
    listed = rng.integers(0, (first - earliest).days, size=len(uni.codes))
    sub = rng.integers(1, 4, size=len(uni.codes))
    new_of = dict(zip(pl.switchers.tolist(), pl.new_sector.tolist(), strict=True))
    switch_day = pl.days[pl.switch_at].isoformat()
    rows = []
    for i in np.flatnonzero(~uni.is_fund).tolist():
        l1 = SW_L1_2021[int(uni.sector0[i])].sw_l1_code
        start = (earliest + timedelta(days=int(listed[i]))).isoformat()
        rows.append((uni.codes[i], start, f"{l1[:2]}{int(sub[i]):02d}01", l1))
        if i in new_of:
            l1 = SW_L1_2021[new_of[i]].sw_l1_code
            rows.append((uni.codes[i], switch_day, f"{l1[:2]}0101", l1))
    return rows


def _pick_stock(uni: Universe, last_rzye: np.ndarray | None) -> str:
    """A large SSE main-board stock: the `stock` report's subject."""
    candidates = np.flatnonzero(~uni.is_fund & (uni.exchange == "SSE"))
    if last_rzye is None or not len(candidates):
        return uni.codes[int(np.flatnonzero(~uni.is_fund)[0])]
    return uni.codes[int(candidates[np.argmax(last_rzye[candidates])])]


def ensure_database(params: BenchParams, cache_dir: Path, *, in_process: bool = False) -> tuple[Path, bool, float]:
    """The cached database file for `params`: (path, reused, seconds spent generating)."""
    path = cache_dir / params.file_name()
    if path.exists():
        return path, True, 0.0
    tmp = path.with_name(path.name + ".tmp")
    started = time.perf_counter()
    if in_process:
        info = generate(tmp, params)
        _print_generation(info)
    else:
        # A child process: the memory generating takes must not count as the reports' memory.
        env = dict(os.environ,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, "-m", "bench.data", "--generate", str(tmp), "--params", json.dumps(asdict(params))]
        subprocess.run(cmd, check=True, cwd=PROJECT_ROOT, env=env)
    tmp.replace(path)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    return path, False, time.perf_counter() - started


def _print_generation(info: dict[str, Any]) -> None:
    print(
        f"generated {info['stock_rows']:,} stock rows"
        f" ({info['trade_days']} trade days {info['first_day']}..{info['last_day']}"
        f" x {info['securities']} securities), {info['sector_rows']:,} sector rows, {info['spike_rows']:,} spike rows"
        f" in {info['seconds_total']:.1f} s"
        f" (numpy {info['seconds_numpy']:.1f} s, stock rows loaded after {info['seconds_stock_insert']:.1f} s,"
        f" indexes {info['seconds_indexes']:.1f} s)",
        flush=True,
    )


def _cli(argv: list[str] | None = None) -> int:
    """The generating child process of `ensure_database`: write one database, print its counts."""
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__.splitlines()[0])
    parser.add_argument("--generate", metavar="PATH", required=True, help="the database file to write (replaced)")
    parser.add_argument("--params", help="BenchParams as JSON (default: the full benchmark's)")
    args = parser.parse_args(argv)
    params = BenchParams(**json.loads(args.params)) if args.params else FULL
    _print_generation(generate(Path(args.generate), params))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
