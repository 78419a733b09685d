"""CSV import (`marginbot import`): exact values, refusal of bad files, idempotence, real history."""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlmodel import Session

from storage import models
from storage.database import data_version, get_meta, is_demo, make_engine, session_scope, set_meta
from storage.demo import MARKET_TABLES
from storage.importer import DEMO_REPLACED, CsvImportError, import_file
from storage.industries import SW_L1_2021
from tests.demo_db import demo_db_file

MARGIN_HEADER = "date,exchange,rzye,rzmre,rzche,rqye,rqyl,rqmcl,rqmce,rzrqye"
TURNOVER_HEADER = "date,exchange,amount"
STOCK_HEADER = "date,code,name,rzye,rzmre,rzche,rqyl,rqmcl,rqchl,rqye"
INDUSTRY_HEADER = "code,start_date,sw_code"
INDEX_HEADER = "date,symbol,close,amount"

MARGIN_OK = [
    "2024-04-11,SSE,805311386298,44363451113,43960611127,63492538974,6653688732,639965435,,868803925272",
    "2024-04-11,ALL,1513000000000,76500000000,,16000000000,9000000000,700000000,1200000000,",
    "2024-04-12,SZSE,707767000000,32108000000,,15730000000,2434000000,28000000,,723497000000",
]
TURNOVER_OK = ["2024-04-11,SSE,382500000000.5", "2024-04-11,SZSE,534000000000", "2024-04-11,BSE,2100000000"]
INDUSTRY_OK = ["600036,2014-01-01,480301", "000001,2014-02-21,480101", "300750,2019-01-01,640101",
               "300750,2024-04-12,630101"]
STOCK_OK = [
    "2024-04-11,600036,招商银行,5000000000,300000000,200000000,1000000,20000,10000,33000000",
    "2024-04-11,000001,平安银行,4000000000,100000000,150000000,,,,",
    "2024-04-11,300750,宁德时代,9000000000,700000000,650000000,500000,1000,0,95000000",
    "2024-04-11,510300,沪深300ETF,2000000000,50000000,40000000,300000000,1000000,900000,1050000000",
    "2024-04-12,600036,招商银行,5100000000,400000000,300000000,1000000,0,0,33500000",
    "2024-04-12,300750,宁德时代,9100000000,600000000,500000000,500000,0,0,96000000",
    "2024-04-12,920001,演示北交,60000000,5000000,4000000,,,,",
]
INDEX_OK = ["2024-04-11,sh000001,3034.25,382500000000", "2024-04-11,801780,3120.5,", "2024-04-12,SZ399001,9318.5,"]
GOOD = {"margin": (MARGIN_HEADER, MARGIN_OK), "turnover": (TURNOVER_HEADER, TURNOVER_OK),
        "stocks": (STOCK_HEADER, STOCK_OK), "industries": (INDUSTRY_HEADER, INDUSTRY_OK),
        "index": (INDEX_HEADER, INDEX_OK)}
SNAPSHOT_MODELS = (models.MarginSummary, models.Turnover, models.StockMargin, models.IndustryClass,
                   models.IndustryName, models.SectorDaily, models.StockSpikeDaily, models.TradingDay,
                   models.IndexDaily)


def write(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def good_file(tmp_path: Path, kind: str) -> Path:
    header, lines = GOOD[kind]
    return write(tmp_path / f"{kind}.csv", header, lines)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored market row (ids left out) and the metadata, in a comparable form."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with Session(engine) as s:
        for model in SNAPSHOT_MODELS:
            table = model.__table__
            cols = [c for c in table.columns if c.name != "id"]
            out[table.name] = sorted(tuple(r) for r in s.execute(select(*cols)).all())
        out["meta"] = sorted(tuple(r) for r in s.execute(select(models.DatasetMeta.key, models.DatasetMeta.value)))
    return out


def margin_rows(engine: Engine) -> dict[tuple[date, str], models.MarginSummary]:
    with Session(engine) as s:
        return {(r.trade_date, r.exchange): r for r in s.execute(select(models.MarginSummary)).scalars()}


# --- each kind imports with exact values -------------------------------------------------------


def test_margin_import_exact_values(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        set_meta(s, "demo", "true")
    assert import_file(engine, "margin", good_file(tmp_path, "margin"))[0] == 3
    rows = margin_rows(engine)
    assert set(rows) == {(date(2024, 4, 11), "SSE"), (date(2024, 4, 11), "ALL"), (date(2024, 4, 12), "SZSE")}
    sse = rows[(date(2024, 4, 11), "SSE")]
    assert (sse.rzye, sse.rzmre, sse.rzche) == (805311386298.0, 44363451113.0, 43960611127.0)
    assert (sse.rqye, sse.rqyl, sse.rqmcl, sse.rzrqye) == (63492538974.0, 6653688732.0, 639965435.0, 868803925272.0)
    assert sse.rqmce is None and sse.source == "csv" and sse.rzche_derived is False
    whole = rows[(date(2024, 4, 11), "ALL")]
    assert whole.rzche is None  # left unknown: the reports derive it
    assert whole.rzrqye == 1513000000000.0 + 16000000000.0  # filled from rzye + rqye
    assert whole.rqmce == 1200000000.0
    assert rows[(date(2024, 4, 12), "SZSE")].rzrqye == 723497000000.0  # given, kept
    with Session(engine) as s:
        days = s.execute(select(models.TradingDay.trade_date)).scalars().all()
    assert sorted(days) == [date(2024, 4, 11), date(2024, 4, 12)]
    assert data_version(engine) == 1 and not is_demo(engine)


def test_turnover_import_exact_values(engine: Engine, tmp_path: Path) -> None:
    assert import_file(engine, "turnover", good_file(tmp_path, "turnover"))[0] == 3
    with Session(engine) as s:
        rows = {r.exchange: r for r in s.execute(select(models.Turnover)).scalars()}
    assert {e: r.amount for e, r in rows.items()} == {"SSE": 382500000000.5, "SZSE": 534e9, "BSE": 2.1e9}
    assert all(r.trade_date == date(2024, 4, 11) and not r.a_share_only and r.source == "csv" for r in rows.values())
    assert data_version(engine) == 1
    with Session(engine) as s:
        assert get_meta(s, "demo") == "false"


def test_index_import_exact_values(engine: Engine, tmp_path: Path) -> None:
    assert import_file(engine, "index", good_file(tmp_path, "index"))[0] == 3
    with Session(engine) as s:
        rows = sorted((r.symbol, r.trade_date, r.close, r.amount)
                      for r in s.execute(select(models.IndexDaily)).scalars())
    assert rows == [  # symbols in akshare's lower case; an empty amount is unknown
        ("801780", date(2024, 4, 11), 3120.5, None),
        ("sh000001", date(2024, 4, 11), 3034.25, 382500000000.0),
        ("sz399001", date(2024, 4, 12), 9318.5, None),
    ]
    assert data_version(engine) == 1


def test_industries_import_names_and_level1(engine: Engine, tmp_path: Path) -> None:
    assert import_file(engine, "industries", good_file(tmp_path, "industries"))[0] == 4
    with Session(engine) as s:
        classes = sorted(
            (r.code, r.start_date, r.sw_code, r.sw_l1_code) for r in s.execute(select(models.IndustryClass)).scalars()
        )
        names = {r.sw_l1_code: r for r in s.execute(select(models.IndustryName)).scalars()}
    assert classes == [
        ("000001", date(2014, 2, 21), "480101", "480000"),
        ("300750", date(2019, 1, 1), "640101", "640000"),
        ("300750", date(2024, 4, 12), "630101", "630000"),
        ("600036", date(2014, 1, 1), "480301", "480000"),
    ]
    assert len(names) == 32 == len(SW_L1_2021) + 1  # and 采掘 of the 2014 scheme, for classes before 2021-07-30
    assert (names["480000"].name_zh, names["480000"].index_symbol) == ("银行", "801780")
    assert (names["210000"].name_zh, names["210000"].name_en) == ("采掘", "Mining")


def sectors(engine: Engine) -> dict[tuple[date, str], tuple[float, float, float, float, int]]:
    with Session(engine) as s:
        return {(r.trade_date, r.sw_l1_code): (r.rzye, r.rzmre, r.rzche, r.rqye, r.stock_count)
                for r in s.execute(select(models.SectorDaily)).scalars()}


def test_stocks_import_exact_values_and_sectors(engine: Engine, tmp_path: Path) -> None:
    import_file(engine, "industries", good_file(tmp_path, "industries"))
    assert import_file(engine, "stocks", good_file(tmp_path, "stocks"))[0] == 7
    with Session(engine) as s:
        rows = {(r.trade_date, r.code): r for r in s.execute(select(models.StockMargin)).scalars()}
    cmb = rows[(date(2024, 4, 11), "600036")]
    assert (cmb.exchange, cmb.name, cmb.is_fund) == ("SSE", "招商银行", False)
    assert (cmb.rzye, cmb.rzmre, cmb.rzche, cmb.rqyl, cmb.rqmcl, cmb.rqchl, cmb.rqye) == (
        5e9, 3e8, 2e8, 1e6, 2e4, 1e4, 3.3e7)
    pab = rows[(date(2024, 4, 11), "000001")]
    assert pab.exchange == "SZSE" and pab.rqyl is None and pab.rqye is None
    etf = rows[(date(2024, 4, 11), "510300")]
    assert etf.exchange == "SSE" and etf.is_fund
    assert rows[(date(2024, 4, 12), "920001")].exchange == "BSE"
    assert rows[(date(2024, 4, 11), "300750")].exchange == "SZSE"
    # sectors: point in time (300750 moves from 640000 to 630000 on 2024-04-12), ETF left out
    assert sectors(engine) == {
        (date(2024, 4, 11), "480000"): (9e9, 4e8, 3.5e8, 3.3e7, 2),
        (date(2024, 4, 11), "640000"): (9e9, 7e8, 6.5e8, 9.5e7, 1),
        (date(2024, 4, 12), "480000"): (5.1e9, 4e8, 3e8, 3.35e7, 1),
        (date(2024, 4, 12), "630000"): (9.1e9, 6e8, 5e8, 9.6e7, 1),
    }
    assert data_version(engine) == 2


def test_missing_repayment_is_derived_per_stock_and_a_reclassified_stock_is_not_buying(
        engine: Engine, tmp_path: Path) -> None:
    """SZSE's detail has no 融资偿还额: left empty in the file, each stock's is derived from its own
    previous trade day, rzye(T-1) + rzmre(T) - rzye(T) (a stock absent the day before had no
    financing); 300750 moving from 640000 to 630000 on 04-12 moves its balance, not buying.
    A file's first day has no previous day: its repayment stays unknown."""
    import_file(engine, "industries", good_file(tmp_path, "industries"))
    lines = [
        "2024-04-11,000001,平安银行,4000000000,100000000,,,,,",
        "2024-04-11,300750,宁德时代,9000000000,700000000,,,,,",
        "2024-04-12,000001,平安银行,4050000000,120000000,,,,,",  # 40.0 + 1.2 - 40.5 = 0.7 亿
        "2024-04-12,300750,宁德时代,9100000000,600000000,,,,,",  # 90 + 6 - 91 = 5 亿
        "2024-04-12,002001,新进标的,30000000,30000000,,,,,",  # newly eligible: 0 + 0.3 - 0.3 = 0
    ]
    import_file(engine, "stocks", write(tmp_path / "szse.csv", STOCK_HEADER, lines))
    with Session(engine) as s:
        rzche = {(r.trade_date.day, r.code): r.rzche for r in s.execute(select(models.StockMargin)).scalars()}
    assert rzche == {(11, "000001"): None, (11, "300750"): None,
                     (12, "000001"): pytest.approx(0.7e8), (12, "300750"): pytest.approx(5e8), (12, "002001"): 0.0}
    got = sectors(engine)
    assert got[(date(2024, 4, 11), "640000")][2] is None  # the first day: unknown
    assert got[(date(2024, 4, 12), "630000")][1:3] == (6e8, pytest.approx(5e8))  # net buying +1 亿, not +91 亿
    # The day before arrives later (a second file): the first file's day is completed from it.
    import_file(engine, "stocks", write(tmp_path / "before.csv", STOCK_HEADER, [
        "2024-04-10,000001,平安银行,3950000000,80000000,,,,,"]))
    with Session(engine) as s:
        row = s.execute(select(models.StockMargin).where(
            models.StockMargin.code == "000001", models.StockMargin.trade_date == date(2024, 4, 11))).scalar_one()
    assert row.rzche == pytest.approx(0.5e8)  # 39.5 + 1.0 - 40.0 = 0.5 亿


def test_industries_after_stocks_rebuild_sectors(engine: Engine, tmp_path: Path) -> None:
    import_file(engine, "stocks", good_file(tmp_path, "stocks"))
    assert sectors(engine) == {}  # no classes yet: nothing to aggregate
    import_file(engine, "industries", good_file(tmp_path, "industries"))
    got = sectors(engine)
    assert got[(date(2024, 4, 11), "480000")] == (9e9, 4e8, 3.5e8, 3.3e7, 2)
    assert got[(date(2024, 4, 12), "630000")] == (9.1e9, 6e8, 5e8, 9.6e7, 1)


# --- bad files are refused with the line and the reason, and nothing is written ------------------

BAD = [
    ("margin", "date,exchange,rzye,rzmre,rzche,rqye,rqyl,rqmcl,rzrqye", MARGIN_OK[:1], 1, "missing column(s) rqmce"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,8.1e11,4.4x10,,,,,,"], 3,
     "rzmre '4.4x10' is not a number"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024/04/12,SSE,8.1e11,,,,,,,"], 3, "date '2024/04/12' is not a date"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "20240412,SSE,8.1e11,,,,,,,"], 3, "is not a date (YYYY-MM-DD)"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-02-30,SSE,8.1e11,,,,,,,"], 3, "is not a valid date"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,HKEX,8.1e11,,,,,,,"], 3, "unknown exchange 'HKEX'"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], MARGIN_OK[1], MARGIN_OK[0]], 4, "duplicate row for (2024-04-11, SSE)"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,-8.1e11,,,,,,,"], 3, "rzye is negative"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,nan,,,,,,,"], 3, "not a finite number"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,8.1e11"], 3, "expected 10 fields, found 3"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,8.1e11,,,6.3e9,,,,8163"], 3,
     "rzrqye 8163 is not rzye + rqye = 816300000000 (a column in another unit?)"),
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2024-04-11,ALL,9e11"], 3, "unknown exchange 'ALL'"),
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2024-04-12,SZSE,"], 3, "amount is empty"),
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2024-04-12,SZSE,-1"], 3, "amount is negative"),
    ("turnover", "date,amount", TURNOVER_OK[:1], 1, "missing column(s) exchange"),
    # units: the ingest's bounds (storage.plausibility), per exchange and date
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,80531138.6298,4436345.1113,,,,,,"], 3,
     "rzye 80531138.6298 is not a plausible balance in 元 for SSE (亿元 or 万元?)"),  # 万元
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,BSE,2e14,,,,,,,"], 3,
     "rzye 2e14 is not a plausible balance in 元 for BSE (a unit smaller than 元?)"),
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2011-01-04,ALL,5000,,,,,,,"], 3,
     "rzye 5000 is not a plausible balance in 元 for ALL (亿元 or 万元?)"),  # from 2011 on, billions
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2010-04-01,ALL,1371.4038,,,,,,,"], 3,
     "rzye 1371.4038 is not a plausible balance in 元 for ALL"),  # in 2010 a floor of 1 万元 only
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-12,SSE,8.1e11,4.4e12,,,,,,"], 3,
     "SSE 2024-04-12: 融资买入额 4.4e+12 元 is implausible next to 融资余额 (a column in another unit?)"),
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2024-04-12,SZSE,53400000"], 3,
     "amount 53400000 is not a plausible turnover in 元 for SZSE (亿元 or 万元?)"),  # 万元
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2024-04-12,BSE,6e12"], 3,
     "amount 6e12 is not a plausible turnover in 元 for BSE (a unit smaller than 元?)"),
    ("stocks", STOCK_HEADER, [*STOCK_OK, "2024-04-12,000001,平安银行,4e12,1,1,,,,"], 9,
     "rzye 4e12 is not a plausible balance in 元 for one security (a unit smaller than 元?)"),
    ("stocks", STOCK_HEADER, [*STOCK_OK, "2024-04-12,60003,招商银行,1,1,1,1,1,1,1"], 9,
     "code '60003' is not a six-digit"),
    ("stocks", STOCK_HEADER, [*STOCK_OK, "2024-04-12,000001,平安银行,1,1,1,-5,1,1,1"], 9, "rqyl is negative"),
    ("stocks", STOCK_HEADER, [*STOCK_OK, STOCK_OK[4]], 9,
     "duplicate row for (2024-04-12, 600036), first given on line 6"),
    ("stocks", STOCK_HEADER, [*STOCK_OK, "2024-13-01,000001,平安银行,1,1,1,1,1,1,1"], 9, "is not a valid date"),
    # a date that would enter the trading calendar must be one: a weekday, not in the future
    ("margin", MARGIN_HEADER, [MARGIN_OK[0], "2024-04-13,SZSE,707767000000,,,,,,,"], 3,
     "date 2024-04-13 is a Saturday: the exchanges do not trade at weekends"),
    ("turnover", TURNOVER_HEADER, [TURNOVER_OK[0], "2052-04-12,SSE,382500000000"], 3,
     "date 2052-04-12 is in the future"),
    ("industries", "code,start_date", INDUSTRY_OK, 1, "missing column(s) sw_code"),
    ("industries", INDUSTRY_HEADER, [*INDUSTRY_OK, "600000,,480301"], 6, "start_date is empty"),
    ("industries", INDUSTRY_HEADER, [*INDUSTRY_OK, INDUSTRY_OK[0]], 6, "duplicate row for (600036, 2014-01-01)"),
    ("industries", INDUSTRY_HEADER, [*INDUSTRY_OK, "600000,2020-01-01,48"], 6, "sw_code '48' is not a six-digit"),
    ("index", INDEX_HEADER, [*INDEX_OK, "2024-04-12,hs300,3500,"], 5, "symbol 'hs300' is not an index symbol"),
    ("index", INDEX_HEADER, [*INDEX_OK, "2024-04-12,sh000300,,"], 5, "close is empty"),
    ("index", INDEX_HEADER, [*INDEX_OK, "2024-04-12,sh000300,0,"], 5, "close '0' is not a positive number"),
    ("index", INDEX_HEADER, [*INDEX_OK, "2024-04-11,SH000001,3000,"], 5, "duplicate row for (2024-04-11, sh000001)"),
    ("index", "date,symbol,close", INDEX_OK, 1, "missing column(s) amount"),
]


@pytest.mark.parametrize(("kind", "header", "lines", "line", "reason"), BAD,
                         ids=[f"{b[0]}-{b[4][:28]}" for b in BAD])
def test_bad_file_is_refused_and_nothing_written(engine: Engine, tmp_path: Path, kind: str, header: str,
                                                 lines: list[str], line: int, reason: str) -> None:
    for good in ("industries", "margin", "turnover", "stocks", "index"):
        import_file(engine, good, good_file(tmp_path, good))
    before = snapshot(engine)
    bad = write(tmp_path / "bad.csv", header, lines)
    with pytest.raises(CsvImportError) as info:
        import_file(engine, kind, bad)
    assert str(info.value).startswith(f"{bad}: line {line}: ")
    assert reason in str(info.value)
    assert (info.value.line, info.value.path) == (line, str(bad))
    assert snapshot(engine) == before


def test_a_corrected_stock_row_makes_its_derived_figures_again(engine: Engine, tmp_path: Path) -> None:
    """300750 on 04-12 is stored with 融资偿还额 derived from its balances (9.0e9 + 6e8 - 9.1e9 = 5e8
    here given) and an estimated 融券余额. A file corrects its 融资余额 to 9.05e9 and leaves the rest
    empty: the 融资偿还额 is derived again from the new balance (9.0e9 + 6e8 - 9.05e9 = 5.5e8), and the
    kept 融券余额 keeps its "estimated" mark."""
    lines = [*STOCK_OK[:5], "2024-04-12,300750,宁德时代,9100000000,600000000,,500000,0,0,96000000", STOCK_OK[6]]
    import_file(engine, "stocks", write(tmp_path / "stocks.csv", STOCK_HEADER, lines))
    with session_scope(engine) as session:
        session.execute(update(models.StockMargin).where(models.StockMargin.code == "300750",
                                                         models.StockMargin.trade_date == date(2024, 4, 12))
                        .values(rqye_estimated=True))
    fix = write(tmp_path / "fix.csv", STOCK_HEADER, ["2024-04-12,300750,宁德时代,9050000000,,,,,,"])
    assert import_file(engine, "stocks", fix)[0] == 1
    with Session(engine) as session:
        row = session.execute(select(models.StockMargin).where(
            models.StockMargin.code == "300750", models.StockMargin.trade_date == date(2024, 4, 12))).scalar_one()
    assert (row.rzye, row.rzmre, row.rzche) == (9.05e9, 6e8, 5.5e8)
    assert (row.rqye, row.rqye_estimated) == (96000000.0, True)


def test_a_file_saved_in_gbk_is_refused_at_its_line(engine: Engine, tmp_path: Path) -> None:
    """Excel on a Chinese system saves CSV as GBK: refused at the first line that is not UTF-8 (the
    names come far down a long file), with what to do about it."""
    lines = [f"2024-04-11,{600000 + i},Stock {i},5000000000,300000000,200000000,1000000,20000,10000,33000000"
             for i in range(300)] + ["2024-04-11,600519,贵州茅台,5000000000,300000000,200000000,1000000,20000,10000,1"]
    path = tmp_path / "gbk.csv"
    path.write_bytes(("\n".join([STOCK_HEADER, *lines]) + "\n").encode("gbk"))
    with pytest.raises(CsvImportError) as info:
        import_file(engine, "stocks", path)
    assert info.value.line == 302 and "not UTF-8 text (GBK? save the file as UTF-8)" in str(info.value)
    assert data_version(engine) == 0


def test_an_empty_cell_keeps_a_figure_already_stored(engine: Engine, tmp_path: Path) -> None:
    """A later file that leaves 融券 figures empty (unknown) fills in what it knows and erases nothing."""
    import_file(engine, "margin", good_file(tmp_path, "margin"))
    version = data_version(engine)
    partial = write(tmp_path / "partial.csv", MARGIN_HEADER, ["2024-04-11,SSE,805311386298,44363451113,,,,,,"])
    assert import_file(engine, "margin", partial)[0] == 1
    assert data_version(engine) == version  # nothing changed: no new data version
    fuller = write(tmp_path / "fuller.csv", MARGIN_HEADER, ["2024-04-12,SZSE,707767000000,,42000000000,,,,,"])
    import_file(engine, "margin", fuller)
    assert data_version(engine) == version + 1
    with Session(engine) as session:
        rows = {(r.trade_date.isoformat(), r.exchange): r
                for r in session.execute(select(models.MarginSummary)).scalars()}
    sse, szse = rows["2024-04-11", "SSE"], rows["2024-04-12", "SZSE"]
    assert (sse.rqye, sse.rzche, sse.rzrqye) == (63492538974.0, 43960611127.0, 868803925272.0)
    assert (szse.rzmre, szse.rzche, szse.rqye) == (32108000000.0, 42000000000.0, 15730000000.0)
    # a corrected 融资余额 with the rest left empty: the total follows it (never stale)
    corrected = write(tmp_path / "corrected.csv", MARGIN_HEADER, ["2024-04-11,SSE,805000000000,,,,,,,"])
    import_file(engine, "margin", corrected)
    with Session(engine) as session:
        sse = session.execute(select(models.MarginSummary).where(models.MarginSummary.exchange == "SSE")).scalar_one()
    assert (sse.rzye, sse.rqye, sse.rzrqye) == (805e9, 63492538974.0, 805e9 + 63492538974.0)


def test_unreadable_or_empty_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(CsvImportError, match="nope.csv: cannot read file"):
        import_file(engine, "margin", missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CsvImportError, match="empty.csv: line 1: empty file"):
        import_file(engine, "margin", empty)
    with pytest.raises(CsvImportError, match="unknown kind 'prices'"):
        import_file(engine, "prices", good_file(tmp_path, "margin"))
    assert data_version(engine) == 0


def test_header_only_and_bom_are_accepted(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("\ufeff" + TURNOVER_HEADER.upper().replace(",", " , ") + "\n\n" + TURNOVER_OK[0] + "\n",
                    encoding="utf-8")
    assert import_file(engine, "turnover", path)[0] == 1
    assert import_file(engine, "margin", write(tmp_path / "header.csv", MARGIN_HEADER, []))[0] == 0


# --- importing twice changes nothing --------------------------------------------------------------


def test_importing_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    kinds = ("industries", "margin", "turnover", "stocks", "index")
    for kind in kinds:
        import_file(engine, kind, good_file(tmp_path, kind))
    first = snapshot(engine)
    for kind in kinds:
        import_file(engine, kind, good_file(tmp_path, kind))
    second = snapshot(engine)
    # the second time, nothing is written: the data version (the report caches' key) stays
    assert dict(first["meta"])["data_version"] == dict(second["meta"])["data_version"] == "5"
    first.pop("meta")
    second.pop("meta")
    assert second == first
    # each table as the five files make it: the rows of each file; the SW names (the 31 level-1 industries of
    # 2021 and the retired one); one trade day per margin date (04-11, 04-12); the classified stocks' sectors
    # per day (04-11: 银行 480000 with 600036 and 000001, 640000 with 300750; 04-12: 银行 with 600036, 630000
    # with 300750, whose class changed that day; the ETF and the unclassified 920001 in none); and no spike
    # (two days of detail, no 5-day change)
    assert {table: len(rows) for table, rows in first.items()} == {
        "margin_summary": 3, "turnover": 3, "stock_margin": 7,
        "industry_class": 4, "industry_name": 32, "sector_daily": 4, "stock_spike_daily": 0, "trading_day": 2,
        "index_daily": 3}


# --- real history: the README's facts from the database ------------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, header: str, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(header.split(","))
        out.writerows(rows)
    return path


def _cell(value: str) -> str:
    return "" if value in ("-", "") else value


def convert_realdata(realdata: Path, out: Path) -> dict[str, list[Path]]:
    """Turn the shared real files into our four CSV formats."""
    market = [
        [r["date"], "ALL", _cell(r["rzye_yuan"]), _cell(r["rzmre_yuan"]), _cell(r["rzche_yuan"]), _cell(r["rqye_yuan"]),
         _cell(r["rqyl_shares"]), _cell(r["rqmcl_shares"]), "", _cell(r["rzrqye_yuan"])]
        for r in _read(realdata / "market_margin_sse_szse_2010_2018.csv")
    ]
    sse = [
        [r["opDate"], "SSE", r["rzye"], r["rzmre"], "", "", r["rqyl"], r["rqmcl"], "", ""]
        for r in _read(realdata / "sse_margin_2014_2016.csv")
    ]
    turnover = [
        [r["date"], exchange, r["amount"]]
        for exchange, name in (("SSE", "index_sh000001_2010_2018.csv"), ("SZSE", "index_sz399001_2010_2018.csv"))
        for r in _read(realdata / name)
    ]
    industries = [[r["stock_code"], r["in_date"], r["sw_code"]] for r in _read(realdata / "sw_industry_pit.csv")]
    index = [
        [r["date"], symbol, r["close"], r["amount"]]
        for symbol in ("sh000001", "sz399001")
        for r in _read(realdata / f"index_{symbol}_2010_2018.csv")
    ]
    return {
        "margin": [_write_rows(out / "market.csv", MARGIN_HEADER, market),
                   _write_rows(out / "sse.csv", MARGIN_HEADER, sse)],
        "turnover": [_write_rows(out / "turnover.csv", TURNOVER_HEADER, turnover)],
        "industries": [_write_rows(out / "industries.csv", INDUSTRY_HEADER, industries)],
        "index": [_write_rows(out / "index.csv", INDEX_HEADER, index)],
    }


def test_realdata_reproduces_readme_facts(engine: Engine, tmp_path: Path, realdata: Path) -> None:
    counts = {kind: sum(import_file(engine, kind, p)[0] for p in paths)
              for kind, paths in convert_realdata(realdata, tmp_path).items()}
    assert counts == {"margin": 2123 + 426, "turnover": 2 * 2187, "industries": 12790, "index": 2 * 2187}
    rows = margin_rows(engine)
    whole = sorted((d, r) for (d, e), r in rows.items() if e == "ALL")

    peak_day, peak = max(((d, r.rzrqye) for d, r in whole), key=lambda x: x[1])
    assert (peak_day, peak) == (date(2015, 6, 18), 2273035261015.0)

    day = date(2015, 11, 23)
    sse, total = rows[(day, "SSE")], rows[(day, "ALL")]
    assert sse.rzye / 1e9 == pytest.approx(724.9, abs=0.05)
    assert sse.rzmre / 1e9 == pytest.approx(56.5, abs=0.05)
    # 490.148 bn: the README rounds the difference of its own rounded figures (1215.1 - 724.9)
    assert (total.rzye - sse.rzye) / 1e9 == pytest.approx(490.2, abs=0.06)
    assert (total.rzmre - sse.rzmre) / 1e9 == pytest.approx(53.8, abs=0.05)

    turnover: dict[date, float] = defaultdict(float)
    with Session(engine) as s:
        for d, amount in s.execute(select(models.Turnover.trade_date, models.Turnover.amount)):
            turnover[d] += amount
    assert turnover[date(2015, 5, 28)] / 1e12 == pytest.approx(2.36, abs=0.005)

    gaps = [abs(prev.rzye + r.rzmre - r.rzche - r.rzye) / r.rzye
            for (_, prev), (_, r) in zip(whole, whole[1:], strict=False) if r.rzche is not None]
    assert len(gaps) == 2122 and max(gaps) < 0.0025

    by_year: dict[int, list[float]] = defaultdict(list)
    for d, r in whole:
        if d in turnover:
            by_year[d.year].append(r.rzmre / turnover[d] * 100)
    mean = {y: sum(v) / len(v) for y, v in by_year.items()}
    assert mean[2014] == pytest.approx(11.5, abs=0.3)
    assert mean[2015] == pytest.approx(12.7, abs=0.3)

    with Session(engine) as s:
        classes = s.execute(select(models.IndustryClass).where(models.IndustryClass.code == "000001")).scalars().all()
        n_days = len(s.execute(select(models.TradingDay.trade_date)).scalars().all())
    in_force = max((c for c in classes if c.start_date <= day), key=lambda c: c.start_date)
    assert (in_force.start_date, in_force.sw_code, in_force.sw_l1_code) == (date(2014, 2, 21), "480101", "480000")
    assert n_days == 2123  # every SSE day is also in the two-market table

    # with the index closes in, the ratio's warnings read 2014-15 as it happened: crowded in the
    # December 2014 rally, deleveraging in the July 2015 crash
    from reports.service import ReportService

    service = ReportService(engine)
    crowded = service.render("ratio", on=date(2014, 12, 5), chart=False).data
    crash = service.render("ratio", on=date(2015, 7, 8), chart=False).data
    assert (crowded["crowding"], crowded["deleveraging"]) == (True, False)
    assert (crash["crowding"], crash["deleveraging"]) == (False, True)
    assert crash["ratio_pct"] == pytest.approx(5.03, abs=0.005)
    assert crash["origin"] == "import"  # the chart's footer names the CSV, not the exchanges


def test_a_market_row_that_disagrees_with_the_exchanges_is_imported_and_named(engine: Engine, tmp_path: Path) -> None:
    """ALL is the exchanges' cross-check: 5% above their sum it is still imported (the market stays the
    sum), and the import says where they disagree; within 1% it says nothing."""
    from storage.importer import import_file

    rows = ["2024-04-11,SSE,800000000000,40000000000,,,,,,", "2024-04-11,SZSE,700000000000,35000000000,,,,,,",
            "2024-04-11,ALL,1575000000000,75300000000,,,,,,",  # rzye +5%, rzmre +0.4%
            "2024-04-12,SSE,801000000000,40000000000,,,,,,", "2024-04-12,SZSE,701000000000,35000000000,,,,,,",
            "2024-04-12,ALL,1505000000000,75000000000,,,,,,"]  # rzye +0.2%
    count, warnings = import_file(engine, "margin", write(tmp_path / "m.csv", MARGIN_HEADER, rows))
    assert count == 6
    assert warnings == ["cross-check 2024-04-11: rzye of the exchanges 1,500.00 bn vs market-wide (ALL) "
                        "1,575.00 bn (-4.76%)"]
    with Session(engine) as s:
        assert s.get(models.MarketDaily, date(2024, 4, 11)).rzye == 1.5e12
    assert import_file(engine, "turnover", good_file(tmp_path, "turnover"))[1] == []


# --- units: a file in 亿元 is refused, not stored as 元 ---------------------------------------------

MARGIN_YI = [  # SZSE's own 亿元 figures, pasted as they came: rzrqye = rzye + rqye holds in any unit
    "2024-04-11,SZSE,7077.67,321.08,,157.3,24.34,0.28,,7234.97",
    "2024-04-12,SZSE,7080.1,300.5,,157.9,24.4,0.3,,7238",
]
TURNOVER_YI = ["2024-04-11,SSE,3825.5", "2024-04-11,SZSE,5340"]


@pytest.mark.parametrize(("kind", "header", "lines", "message"), [
    ("margin", MARGIN_HEADER, MARGIN_YI,
     "line 2: rzye 7077.67 is not a plausible balance in 元 for SZSE (亿元 or 万元?)"),
    ("turnover", TURNOVER_HEADER, TURNOVER_YI,
     "line 2: amount 3825.5 is not a plausible turnover in 元 for SSE (亿元 or 万元?)"),
], ids=["margin", "turnover"])
def test_a_file_in_yi_yuan_is_refused_and_nothing_written(engine: Engine, tmp_path: Path, kind: str, header: str,
                                                          lines: list[str], message: str) -> None:
    import_file(engine, kind, good_file(tmp_path, kind))
    before = snapshot(engine)
    bad = write(tmp_path / "yi.csv", header, lines)
    with pytest.raises(CsvImportError) as info:
        import_file(engine, kind, bad)
    assert str(info.value) == f"{bad}: {message}"
    assert info.value.line == 2
    assert snapshot(engine) == before  # nothing written: data version and demo flag included


def test_unit_bounds_follow_the_exchange_and_the_date(engine: Engine, tmp_path: Path) -> None:
    """What the ingest accepts imports: margin trading's first days (2010, balances of a few million
    元), BSE's small figures, and an exchange's turnover before margin trading began."""
    margin = ["2010-03-31,ALL,6495609.0,6550885.0,,95037.0,3900.0,4000.0,,6590646.0",  # the real first day
              "2024-04-11,BSE,5000000000,150000000,,1000000,,,,5001000000"]
    turnover = ["2005-06-03,SSE,4100000000", "2024-04-11,BSE,2100000000"]
    assert import_file(engine, "margin", write(tmp_path / "m.csv", MARGIN_HEADER, margin))[0] == 2
    assert import_file(engine, "turnover", write(tmp_path / "t.csv", TURNOVER_HEADER, turnover))[0] == 2
    assert margin_rows(engine)[(date(2010, 3, 31), "ALL")].rzye == 6495609.0


# --- demo data: an import replaces them, in its own transaction -----------------------------------


def table_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (*MARKET_TABLES, models.MarketDaily, models.ChartUpload, models.Chat)}


def meta(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        return dict(s.execute(select(models.DatasetMeta.key, models.DatasetMeta.value)).all())


def add_bystanders(engine: Engine) -> None:
    """A chat (kept by the import), a chart upload and a once-a-day mark (demo state: they go)."""
    with session_scope(engine) as s:
        s.add(models.Chat(chat_id=42, subscribed=True))
        s.add(models.ChartUpload(cache_key="balance|zh|v1", file_id="demo-chart"))
        set_meta(s, "sw_class_checked", "2026-11-20")


def assert_only_imported(engine: Engine, keys: set[tuple[date, str]]) -> None:
    rows = margin_rows(engine)
    assert set(rows) == keys and {r.source for r in rows.values()} == {"csv"}
    days = {d for d, _ in keys}
    with Session(engine) as s:
        assert set(s.execute(select(models.TradingDay.trade_date)).scalars()) == days
        assert set(s.execute(select(models.MarketDaily.trade_date)).scalars()) == days
    counts = table_counts(engine)
    assert (counts.pop("margin_summary") == len(keys)
            and counts.pop("trading_day") == counts.pop("market_daily") == len(days))
    assert counts == dict.fromkeys(counts, 0) | {"chat": 1}  # the chat stays; the demo's market data go
    assert not is_demo(engine) and "sw_class_checked" not in meta(engine)


@pytest.fixture
def demo_engine(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Engine]:
    """A copy of the seeded demo database (SQLite; seeded once per session)."""
    path = tmp_path / "demo.db"
    shutil.copyfile(demo_db_file(tmp_path_factory, pytestconfig), path)
    eng = make_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


def test_import_into_the_demo_database_replaces_the_demo_data(demo_engine: Engine, tmp_path: Path) -> None:
    engine = demo_engine
    add_bystanders(engine)
    before = table_counts(engine)
    assert is_demo(engine)
    days = 948  # storage.demo's trade dates (tests/test_demo.py)
    assert {m.__tablename__: before[m.__tablename__] for m in MARKET_TABLES} == {
        "margin_summary": 4 * days, "turnover": 3 * days, "trading_day": days, "stock_margin": 540 * days,
        "index_daily": 34 * days, "sector_daily": 31 * days, "stock_spike_daily": 30 * (days - 5),
        "industry_class": 526, "industry_name": 32, "index_member": 300, "ingest_status": 0}
    version = data_version(engine)
    with Session(engine) as s:  # a demo trade date with all its exchanges: the file gives SSE's alone
        demo_day = s.execute(select(func.max(models.TradingDay.trade_date))).scalar_one()
    lines = [  # real figures (shared realdata: 2015-11-23) and one SSE row on a demo date
        "2015-11-20,ALL,1218924378985,136159468248,126557184676,3154985824,509671823,25702001,,1222079364809",
        "2015-11-23,ALL,1215091902051,110305893244,114138370178,3108155364,496073906,23160260,,1218200057415",
        "2015-11-23,SSE,724944067772,56462012238,,,374923464,20020203,,",
        f"{demo_day},SSE,805311386298,44363451113,43960611127,63492538974,6653688732,639965435,,868803925272",
    ]
    count, notes = import_file(engine, "margin", write(tmp_path / "real.csv", MARGIN_HEADER, lines))
    assert (count, notes) == (4, [DEMO_REPLACED])
    assert_only_imported(engine, {(date(2015, 11, 20), "ALL"), (date(2015, 11, 23), "ALL"),
                                  (date(2015, 11, 23), "SSE"), (demo_day, "SSE")})
    assert margin_rows(engine)[(demo_day, "SSE")].rzye == 805311386298.0  # the demo's SZSE/BSE/ALL rows are gone
    assert data_version(engine) == version + 1
    # a second file adds to the imported data: the demo is gone already
    assert import_file(engine, "turnover", good_file(tmp_path, "turnover")) == (3, [])


def test_a_refused_file_leaves_the_demo_data(demo_engine: Engine, tmp_path: Path) -> None:
    engine = demo_engine
    before, before_meta = table_counts(engine), meta(engine)
    bad = write(tmp_path / "yi.csv", MARGIN_HEADER, MARGIN_YI)
    with pytest.raises(CsvImportError, match="line 2: rzye 7077.67 is not a plausible balance"):
        import_file(engine, "margin", bad)
    empty = write(tmp_path / "empty.csv", MARGIN_HEADER, [])
    assert import_file(engine, "margin", empty) == (0, [])  # no rows: nothing to replace the demo with
    assert (table_counts(engine), meta(engine)) == (before, before_meta)
    assert is_demo(engine)


def small_demo(engine: Engine, tmp_path: Path) -> None:
    """A small stand-in for the demo data, on either database: every kind stored, marked demo."""
    for kind in ("industries", "margin", "turnover", "stocks", "index"):
        import_file(engine, kind, good_file(tmp_path, kind))
    add_bystanders(engine)
    with session_scope(engine) as s:
        s.add(models.IndexMember(symbol="000300", code="600036", as_of=date(2024, 4, 11)))
        s.add(models.IngestStatus(trade_date=date(2024, 4, 12), source="sse_summary", status="done"))
        set_meta(s, "demo", "true")


def test_demo_replacement_is_part_of_the_import_transaction(engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo rows are deleted in the import's own transaction: a write that fails after the
    deletion leaves them all; one that succeeds leaves the imported rows alone (PostgreSQL too)."""
    import storage.importer as importer

    small_demo(engine, tmp_path)
    before, before_meta = table_counts(engine), meta(engine)

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "bump_data_version", broken)  # the last write before the commit
    path = write(tmp_path / "one.csv", MARGIN_HEADER, [MARGIN_OK[0]])
    with pytest.raises(RuntimeError, match="disk full"):
        import_file(engine, "margin", path)
    assert (table_counts(engine), meta(engine)) == (before, before_meta)
    monkeypatch.undo()
    assert import_file(engine, "margin", path) == (1, [DEMO_REPLACED])
    assert_only_imported(engine, {(date(2024, 4, 11), "SSE")})


def test_a_corrected_day_makes_the_next_day_s_derived_repayment_and_sectors_again(
        engine: Engine, tmp_path: Path) -> None:
    """000001 imported for 04-11 and 04-12 without 融资偿还额: 04-12's is derived, 40.0 + 1.2 - 40.5 =
    0.7 亿. A file correcting 04-11's 融资余额 to 40.2 亿 makes it again, 40.2 + 1.2 - 40.5 = 0.9 亿, and
    04-12's sector with it; 600036's 融资偿还额, given by the file, stays as given. The same
    correction imported twice changes nothing."""
    import_file(engine, "industries", good_file(tmp_path, "industries"))
    import_file(engine, "stocks", write(tmp_path / "two_days.csv", STOCK_HEADER, [
        "2024-04-11,000001,平安银行,4000000000,100000000,,,,,",
        "2024-04-12,000001,平安银行,4050000000,120000000,,,,,",
        "2024-04-11,600036,招商银行,5000000000,300000000,200000000,,,,",
        "2024-04-12,600036,招商银行,5100000000,400000000,300000000,,,,",
    ]))

    def rzche(day: int, code: str) -> tuple[float | None, bool]:
        with Session(engine) as s:
            row = s.execute(select(models.StockMargin).where(
                models.StockMargin.code == code, models.StockMargin.trade_date == date(2024, 4, day))).scalar_one()
            return row.rzche, row.rzche_derived

    assert rzche(12, "000001") == (pytest.approx(0.7e8), True)
    assert sectors(engine)[(date(2024, 4, 12), "480000")][2] == pytest.approx(0.7e8 + 3e8)  # with 600036's
    fix = write(tmp_path / "fix.csv", STOCK_HEADER, ["2024-04-11,000001,平安银行,4020000000,,,,,,",
                                                     "2024-04-11,600036,招商银行,5050000000,,,,,,"])
    assert import_file(engine, "stocks", fix)[0] == 2
    assert rzche(12, "000001") == (pytest.approx(0.9e8), True)
    assert rzche(12, "600036") == (3e8, False)  # given: not derived from the corrected balance
    got = sectors(engine)
    assert got[(date(2024, 4, 12), "480000")][2] == pytest.approx(0.9e8 + 3e8)
    assert got[(date(2024, 4, 11), "480000")][0] == 4.02e9 + 5.05e9
    version = data_version(engine)
    import_file(engine, "stocks", fix)
    assert data_version(engine) == version


def test_rows_stored_before_the_mark_existed_are_taken_by_their_exchange(engine: Engine, tmp_path: Path) -> None:
    """Migration 0010 left the mark NULL on rows stored before it (no rewrite of the table). Such a
    Shenzhen row's 融资偿还额 was derived (SZSE publishes none) and is made again when the day before
    is corrected; a Shanghai row's came from the exchange and stays."""
    from sqlalchemy import update

    import_file(engine, "stocks", write(tmp_path / "two_days.csv", STOCK_HEADER, [
        "2024-04-11,000001,平安银行,4000000000,100000000,,,,,",
        "2024-04-12,000001,平安银行,4050000000,120000000,,,,,",
        "2024-04-11,600036,招商银行,5000000000,300000000,200000000,,,,",
        "2024-04-12,600036,招商银行,5100000000,400000000,300000000,,,,",
    ]))
    sm = models.StockMargin
    with session_scope(engine) as session:  # as stored before revision 0010
        session.execute(update(sm).values(rzche_derived=None))

    def rzche(code: str) -> tuple[float | None, bool | None]:
        with Session(engine) as s:
            row = s.execute(select(sm).where(sm.code == code, sm.trade_date == date(2024, 4, 12))).scalar_one()
            return row.rzche, row.rzche_derived

    assert rzche("000001") == (pytest.approx(0.7e8), None) and rzche("600036") == (3e8, None)
    import_file(engine, "stocks", write(tmp_path / "fix.csv", STOCK_HEADER, [
        "2024-04-11,000001,平安银行,4020000000,,,,,,", "2024-04-11,600036,招商银行,5050000000,,,,,,"]))
    assert rzche("000001") == (pytest.approx(0.9e8), True)
    assert rzche("600036") == (3e8, None)


def test_a_corrected_margin_day_makes_the_next_day_s_derived_repayment_again(engine: Engine, tmp_path: Path) -> None:
    """The same for the exchanges' totals: 04-12's SZSE 融资偿还额 derived (as the ingest marks it) is
    made again from 04-11's corrected 融资余额; a given one (SSE's) is left."""
    import_file(engine, "margin", write(tmp_path / "m.csv", MARGIN_HEADER, [
        "2024-04-11,SZSE,706812000000,31845000000,,15802000000,,,,",
        "2024-04-12,SZSE,707767000000,32108000000,,15730000000,,,,",
    ]))
    with session_scope(engine) as s:  # as the ingest stores it: derived from 04-11's balance
        s.execute(update(models.MarginSummary).where(models.MarginSummary.trade_date == date(2024, 4, 12))
                  .values(rzche=706_812_000_000 + 32_108_000_000 - 707_767_000_000, rzche_derived=True))
    import_file(engine, "margin", write(tmp_path / "fix.csv", MARGIN_HEADER, [
        "2024-04-11,SZSE,706912000000,,,,,,,"]))
    row = margin_rows(engine)[(date(2024, 4, 12), "SZSE")]
    assert (row.rzche, row.rzche_derived) == (706_912_000_000 + 32_108_000_000 - 707_767_000_000, True)
    with Session(engine) as s:
        market = s.get(models.MarketDaily, date(2024, 4, 12))
        assert market is not None and market.rzche == row.rzche  # the market totals follow


def test_two_writers_replacing_the_demo_data_at_once_replace_it_once(engine: Engine, tmp_path: Path) -> None:
    """A first ingest and an import at the same moment: the demo flag is claimed by one conditional
    UPDATE. The second writer waits for the first's commit, then finds the flag gone and deletes
    nothing the first stored (SQLite included, where a locking read does nothing).

    That the second's UPDATE really ran while the first was uncommitted is observed, not slept on: a
    cursor event marks the worker's statement starting (and, on PostgreSQL, gives its backend, then
    seen waiting in pg_locks), and the worker's UPDATE finishes only after the first commits."""
    import threading
    import time

    from sqlalchemy import event

    from storage.ingest import drop_demo_data

    small_demo(engine, tmp_path)
    first = Session(engine)
    assert drop_demo_data(first)  # uncommitted: the demo rows are deleted in its transaction
    first.add(models.TradingDay(trade_date=date(2024, 4, 15)))  # what the first writer brings
    first.flush()
    outcome: dict[str, object] = {}
    events: list[str] = []
    backend: list[int] = []
    started = threading.Event()

    def second() -> None:
        try:
            with session_scope(engine) as s:
                outcome["dropped"] = drop_demo_data(s)
        except Exception as exc:  # reported below
            outcome["error"] = exc
        finally:
            started.set()  # never leave the main thread waiting

    worker = threading.Thread(target=second)

    def claims(statement: str) -> bool:
        return threading.get_ident() == worker.ident and statement.lstrip().upper().startswith("UPDATE")

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if claims(statement):
            if engine.dialect.name == "postgresql":
                backend.append(conn.connection.dbapi_connection.info.backend_pid)
            events.append("second claiming")
            started.set()

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if claims(statement):
            events.append("second claimed")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        worker.start()
        assert started.wait(10), "the second writer never sent its UPDATE"
        assert events == ["second claiming"], (events, outcome)
        if engine.dialect.name == "postgresql":  # its backend waits on the first's row lock
            waiting = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
            deadline = time.monotonic() + 10
            with engine.connect() as watcher:
                while watcher.execute(waiting, {"pid": backend[0]}).scalar_one() == 0:
                    assert time.monotonic() < deadline, "the second writer never waited on a lock"
                    assert events == ["second claiming"], (events, outcome)  # it may not get past the lock
                    time.sleep(0.02)
        assert worker.is_alive() and outcome == {}  # waits for the first writer's transaction
        events.append("first committed")
        first.commit()
    finally:
        first.close()
        worker.join(15)
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    assert events == ["second claiming", "first committed", "second claimed"]
    assert outcome == {"dropped": False}
    assert not is_demo(engine)
    with Session(engine) as s:
        assert s.execute(select(models.TradingDay.trade_date)).scalars().all() == [date(2024, 4, 15)]
