"""The report benchmark's generator and its --small path: a consistent database, every report renders.

No timing is asserted: the benchmark only prints figures.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bench import data as benchdata
from bench import reports as bench
from reports import layout
from reports.service import ReportService
from storage import models, queries
from storage.aggregate import SPIKE_KEEP, rebuild_sector_daily, rebuild_stock_spikes
from storage.database import data_version, get_meta, is_demo, make_engine
from storage.spikes import SPIKE_DAYS

TINY = benchdata.BenchParams(years=1, stocks=120, funds=6, seed=7)
# The first caption line of each report on TINY (seeded, ending 2026-11-20), in Chinese.
FIRST_LINES = {
    "balance": "<b>两融余额 1.91 万亿元</b> ▼ 较上日 -119.26 亿元（-0.62%）",
    "ratio": "<b>两融交易占比 8.63%</b>（不足一年历史，无近三年分位，20日均值 9.50%）",
    "sectors": "<b>行业融资余额 近20日</b>",
    "signals": "<b>两融信号</b> · 1 项提示",
    "summary": "<b>两融雷达 · 2026-11-20</b>",
    "stock": "<b>基准股份0075（{code}）融资余额 1,988.79 亿元</b> ▼ 较上日 -20.09 亿元",
    "top": "<b>融资余额变化排行 近5日</b>（较 2026-11-13）",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, dict]:
    path = tmp_path_factory.mktemp("bench") / "tiny.db"
    info = benchdata.generate(path, TINY)
    engine = make_engine(f"sqlite:///{path}")
    yield engine, info
    engine.dispose()


def _sector_frame(session: Session, day: date) -> pd.DataFrame:
    s = models.SectorDaily
    rows = session.execute(
        select(s.sw_l1_code, s.rzye, s.rzmre, s.rzche, s.rqye, s.stock_count)
        .where(s.trade_date == day)
        .order_by(s.sw_l1_code)
    ).all()
    return pd.DataFrame(rows, columns=["sw_l1_code", "rzye", "rzmre", "rzche", "rqye", "stock_count"])


def _spike_frame(session: Session, day: date) -> pd.DataFrame:
    s = models.StockSpikeDaily
    rows = session.execute(
        select(s.code, s.rzye, s.change_pct, s.zscore).where(s.trade_date == day).order_by(s.code)
    ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["code", "rzye", "change_pct", "zscore"]).astype(
        {"rzye": float, "change_pct": float, "zscore": float})


def test_row_counts_and_meta(tiny: tuple[Engine, dict]) -> None:
    engine, info = tiny
    n, n_sec = info["trade_days"], info["securities"]
    assert n_sec == TINY.stocks + TINY.funds
    assert n == 244  # trade days from 2025-11-21 to 2026-11-20 on the generator's calendar
    with Session(engine) as session:
        count = lambda model: session.execute(select(func.count()).select_from(model)).scalar()  # noqa: E731
        assert count(models.StockMargin) == n * n_sec == info["stock_rows"]
        assert count(models.MarginSummary) == 4 * n  # SSE, SZSE, BSE, ALL
        assert count(models.Turnover) == 3 * n
        assert count(models.IndexDaily) == 32 * n  # sh000001 + 31 sector indexes
        assert count(models.IndustryName) == 31 + 1  # and 采掘 (2014 scheme)
        assert count(models.TradingDay) == n
        assert count(models.SectorDaily) == info["sector_rows"] == n * 31  # every SW L1 sector every day
        # SPIKE_KEEP a day once a 5-day change is known (each day has that many rising candidates)
        assert count(models.StockSpikeDaily) == info["spike_rows"] == (n - SPIKE_DAYS) * SPIKE_KEEP == 7170
        missing = session.execute(
            select(func.count()).select_from(models.MarginSummary).where(
                models.MarginSummary.exchange == "ALL", models.MarginSummary.rqmce.is_(None)
            )
        ).scalar()
        assert missing == 0
        assert get_meta(session, "bench_stock") == info["stock_code"]
        # The application's indexes were rebuilt after the bulk load.
        names = {r[0] for r in session.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))}
        assert {"ix_stock_margin_code_date", "ix_stock_margin_trade_date", "ix_stock_spike_daily_date_z"} <= names
    assert data_version(engine) == 1
    assert not is_demo(engine)


def test_identities(tiny: tuple[Engine, dict]) -> None:
    engine, info = tiny
    history = queries.stock_history(engine, info["stock_code"])
    assert len(history) == info["trade_days"]
    level = history["rzye"]
    assert (level.diff().iloc[1:] == (history["rzmre"] - history["rzche"]).iloc[1:]).all()
    assert (history[["rzmre", "rzche", "rqyl", "rqmcl", "rqye"]] >= 0).all().all()
    market = queries.margin_summary(engine)
    assert (market["exchanges"] == 3).all()
    assert market["rqmce"].notna().all()
    assert (market["rzrqye"] == market["rzye"] + market["rqye"]).all()
    turnover = queries.turnover(engine)
    ratio = (market["rzmre"] + market["rqmce"]) / turnover["amount"]
    assert ratio.between(0.03, 0.2).all()


def test_sector_daily_matches_rebuild(tiny: tuple[Engine, dict]) -> None:
    engine, _info = tiny
    with Session(engine) as session:
        switch = session.execute(
            select(func.max(models.IndustryClass.start_date))
        ).scalar()
        days = queries.trade_dates(engine)
        # One day before the reclassification, one after (point-in-time classes), the last day.
        probes = [max(d for d in days if d < switch), min(d for d in days if d >= switch), days[-1]]
        stored = {d: _sector_frame(session, d) for d in probes}
        rebuild_sector_daily(session, probes)
        session.flush()
        for day in probes:
            rebuilt = _sector_frame(session, day)
            assert len(rebuilt) == 31  # every SW L1 sector of the 2021 scheme holds generated stocks
            pd.testing.assert_frame_equal(stored[day], rebuilt, check_exact=True)
        session.rollback()


def test_spike_table_matches_rebuild(tiny: tuple[Engine, dict]) -> None:
    engine, _info = tiny
    days = queries.trade_dates(engine)
    # The first day with z-scores (65 days of history before it), one across a generator chunk, the last day.
    probes = [days[65], days[130], days[-1]]
    with Session(engine) as session:
        stored = {d: _spike_frame(session, d) for d in probes}
        rebuild_stock_spikes(session, probes)
        session.flush()
        for day in probes:
            rebuilt = _spike_frame(session, day)
            assert len(rebuilt) == SPIKE_KEEP and rebuilt["zscore"].notna().all()
            pd.testing.assert_frame_equal(stored[day], rebuilt, check_exact=True)
        early = _spike_frame(session, days[10])
        assert len(early) == SPIKE_KEEP and early["zscore"].isna().all()  # not 60 known changes yet
        session.rollback()
    # The generator's spikers: stocks whose balance jumps over the last five days are the top spikes.
    plan = benchdata.plan(TINY)
    into_last_day = {plan.uni.codes[i] for i in plan.spikers[:3]}  # the fourth spiked three weeks earlier
    spikes = ReportService(engine).render("signals", chart=False).data["spikes"]
    assert {s["code"] for s in spikes[:3]} == into_last_day
    assert all(s["zscore"] > 3 for s in spikes[:3])


def test_every_report_renders(tiny: tuple[Engine, dict]) -> None:
    engine, info = tiny
    service = ReportService(engine)
    for kind in bench.REPORTS:
        code = info["stock_code"] if kind == "stock" else None
        report = service.render(kind, code=code, lang="zh")
        assert report.png is not None and report.png.startswith(b"\x89PNG\r\n\x1a\n")
        assert report.caption.splitlines()[0] == FIRST_LINES[kind].format(code=info["stock_code"])
        width, height = bench.png_size(report.png)
        assert width == round(layout.WIDTH_IN * layout.DPI) == 960 and 480 <= height <= 1600
    # The floor is a PNG of exactly the report's pixel size.
    assert bench.png_size(bench.floor_png(width, height, 120)) == (width, height)


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def assert_verdicts(out: str, row: bench.ReportTiming) -> None:
    """The aims block: its header, then for the report exactly three verdict lines, each of the format
    print_aims writes and marked as the row's own figures say (whatever they are: nothing is timed)."""
    header = (f"aims: uncached p95 <= {bench.AIM_FLOOR_RATIO:g}x floor p95, cached p95 < {bench.AIM_CACHED_MS:g} ms,"
              f" peak memory < {bench.AIM_MEMORY_MB:g} MB (tracemalloc and RSS)")
    lines = out.splitlines()
    assert header in lines
    verdicts = lines[lines.index(header) + 1:][:3]
    label = re.escape(f"{row.label:<14}")
    number = r"\s*\d+\.\d+"
    formats = [
        rf"  {label} uncached p95 {number} ms <= {bench.AIM_FLOOR_RATIO:g} x floor p95 {number} ms"
        rf"  \({number}x\)   (PASS|MISS)",
        rf"  {label} cached p95   {number} ms <  {bench.AIM_CACHED_MS:g} ms {{30}}(PASS|MISS)",
        rf"  {label} peak memory  python {number} MB, process\s+\d+ MB < {bench.AIM_MEMORY_MB:g} MB {{8}}(PASS|MISS)",
    ]
    got = []
    for line, pattern in zip(verdicts, formats, strict=True):
        found = re.fullmatch(pattern, line)
        assert found, (line, pattern)
        got.append(found.group(1))
    cached95 = bench.percentile(row.cached, 95)
    memory_ok = row.py_peak_mb < bench.AIM_MEMORY_MB and row.rss_mb < bench.AIM_MEMORY_MB
    assert got == [mark(row.ratio <= bench.AIM_FLOOR_RATIO), mark(cached95 < bench.AIM_CACHED_MS), mark(memory_ok)]
    assert f"process {row.rss_mb:5.0f} MB" in verdicts[2] and f"({row.ratio:5.2f}x)" in verdicts[0]


def test_small_path_generates_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench, "SMALL", TINY)
    monkeypatch.setattr(bench, "SMALL_ITERATIONS", bench.Iterations(uncached=1, cached=2, floor=1, phases=1))
    rows = bench.run(small=True, cache_dir=tmp_path, in_process=True, kinds=("balance",))
    assert [r.kind for r in rows] == ["balance"]
    row = rows[0]
    assert len(row.uncached) == 1 and len(row.cached) == 2 and len(row.floor) == 1
    # Memory figures are the host's (its allocator, kernel, libraries): only what holds anywhere is
    # asserted, that both are measured and that the process holds more than one render allocates
    # (its resident set includes the interpreter and the loaded libraries besides).
    assert 0 < row.py_peak_mb < row.rss_mb and row.size[0] == 960
    assert set(row.phases) == {"figures", "text", "chart"}
    out = capsys.readouterr().out
    assert ("\ngenerated 30,744 stock rows (244 trade days 2025-11-21..2026-11-20 x 126 securities), 7,564 sector"
            " rows, 7,170 spike rows in ") in out  # 244 x (120 + 6)
    assert re.search(rf"^generated {re.escape(str(tmp_path / TINY.file_name()))} in \d+\.\d s$", out, re.M), out
    # the table's row, ending with both memory figures as measured
    assert re.search(rf"^balance {{9}}960x{row.size[1]} .*{row.py_peak_mb:>8.1f}{row.rss_mb:>8.0f}$", out, re.M)
    assert_verdicts(out, row)
    assert len(list(tmp_path.glob("*.db"))) == 1 and not list(tmp_path.glob("*.tmp"))
    # The second run finds the cached file and generates nothing.
    path, reused, seconds = benchdata.ensure_database(TINY, tmp_path, in_process=True)
    assert reused and seconds == 0.0 and path.parent == tmp_path
    # the sectors and the ranking are measured twice: whole, and for the sector with the largest inflow
    rows = bench.run(small=True, cache_dir=tmp_path, in_process=True, kinds=("sectors", "top"))
    labels = [r.label for r in rows]
    assert labels[:2] == ["sectors", "top"] and labels[2] == f"sectors {labels[3][4:]}"
    assert re.fullmatch(r"top \d{6}", labels[3]) and all(set(r.phases) == {"figures", "text", "chart"} for r in rows)
    capsys.readouterr()
    # --profile adds a cProfile of each report, read from the render's own functions.
    bench.run(small=True, cache_dir=tmp_path, in_process=True, kinds=("balance",), profile=True)
    out = capsys.readouterr().out
    assert "reused cached database" in out and "=== profile: balance" in out and "render_chart" in out


def test_push_benchmark_runs_small(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The push benchmark end to end on 40 chats (a fifth with watch lists): both rounds (whole, and
    killed halfway then restarted) deliver to every chat once, uploading one chart per language."""
    import asyncio
    import shutil

    from bench import push as push_bench
    from tests.demo_db import demo_db_file

    template = demo_db_file(tmp_path_factory, pytestconfig)

    def database() -> Path:
        target = tmp_path / "push.db"
        shutil.copy(template, target)
        return target

    monkeypatch.setattr(push_bench, "_demo_database", database)
    assert asyncio.run(push_bench._run(40, 400.0, 2)) == 0  # 0: no duplicate, nobody missed
    out = capsys.readouterr().out
    assert "40 chats (4 groups, 8 following 5 securities each, 40 distinct)" in out
    rounds = [line for line in out.splitlines() if line.startswith(("full push", "killed"))]
    assert len(rounds) == 2 and all("{'sent': 40}" in line for line in rounds)
    # messages: one chart per chat, plus a second message for each watch list too long for the caption;
    # then uploads 2, dups 0, missed 0
    full = re.search(r"full push\s+\S+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+2\s+0\s+0\s", out)
    assert full and 40 <= int(full.group(1)) <= 48
    assert re.search(r"killed \+ restarted\s+\S+\s+\S+\s+\S+\s+\d+\s+\S+\s+\S+\s+\d\s+0\s+0\s", out)
