"""Recorded upstream answers, built in the exact wire formats that akshare 1.19.5 parses.

Each builder returns what the server sends (JSON text, JSONP, xlsx or xls bytes), so tests run
akshare's own parsing code on it. Formats, as akshare reads them:

- SSE queryMargin.do: JSON whose `result` rows have 13 keys that akshare maps BY POSITION, in this
  (alphabetical) order; the names at positions 0 and 6 are not known and play no part, so they are
  placeholders here. Summary rows leave securityAbbr/stockCode empty; detail rows leave
  rqylje/rzrqjyzl empty. Money in 元, quantities in 股, opDate "YYYYMMDD".
- SZSE ShowReport/data (summary): a JSON array; `[0]["data"]` holds one row with jrrzmr, jrrzye,
  jrrjmc, jrrjyl, jrrjye, jrrzrjye as strings with thousands separators, in 亿元 / 亿股.
- SZSE ShowReport (detail, SHOWTYPE=xlsx): a workbook whose first row is the header and whose
  number cells are TEXT with commas (元, 股).
- SSE commonQuery.do (stock_sse_deal_daily): JSON `result`, one dict per product in the order asked
  (PRODUCT_CODE "01,02,03,11,17": 主板A, 主板B, 科创板, 股票回购, 股票), values strings, 成交金额 in 亿元.
  akshare transposes it and labels the 11 keys BY POSITION (市价总值, 成交量, 平均市盈率, 换手率,
  成交金额, -, 流通市值, 流通换手率, 报告日期, 挂牌数, -), so only their order counts here; the names
  are those SSE uses where known. An unpublished day is an empty `result`.
- SZSE ShowReport (overview, CATALOGID=1803_sczm, http): a workbook with the header 证券类别, 数量,
  成交金额(元), 总市值(元), 流通市值(元); the money cells are TEXT with commas (akshare strips them).
- BSE: JSONP `cb([...,'YYYY-MM-DD'])`; the summary's first element is a list of row dicts with
  *Round fields in 万元 / 万股; the detail's is a list holding one page dict (content, totalPages) in 元 / 股.
- Eastmoney datacenter (account history): JSON `result.pages` and `result.data`, money in 亿元.
- Eastmoney kline (index history): JSON `data.klines`, strings "date,open,close,high,low,volume,amount,amplitude".
- Shenwan: index history JSON `data` rows; the classification is a BIFF8 .xls workbook (OLE2 container).
- CSI (csindex) constituents, `{symbol}cons.xls`: a BIFF8 .xls (OLE2) with one sheet named after the
  file; a bilingual header and one row per constituent, EVERY cell text: date "YYYYMMDD", index code
  "000300", names, constituent code "600519", exchange in Chinese and English. pandas picks xlrd.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from openpyxl import Workbook

from storage.industries import SW_L1_2021

SSE_KEYS = (
    "unnamed0", "opDate", "rqchl", "rqmcl", "rqyl", "rqylje", "unnamed6", "rzche", "rzmre", "rzrqjyzl", "rzye",
    "securityAbbr", "stockCode",
)
SZSE_DETAIL_HEADER = (
    "证券代码", "证券简称", "融资买入额(元)", "融资余额(元)", "融券卖出量(股/份)", "融券余量(股/份)", "融券余额(元)",
    "融资融券余额(元)",
)
SW_CLASS_HEADER = ("股票代码", "计入日期", "行业代码", "更新日期")
CSINDEX_CONS_HEADER = (
    "日期Date", "指数代码 Index Code", "指数名称 Index Name", "指数英文名称Index Name(Eng)",
    "成份券代码Constituent Code", "成份券名称Constituent Name", "成份券英文名称Constituent Name(Eng)",
    "交易所Exchange", "交易所英文名称Exchange(Eng)",
)

HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>系统繁忙</title></head>"
    "<body><h1>系统繁忙，请稍后再试</h1></body></html>"
)


# --- SSE ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SseSummary:
    """One SSE summary day (元, 股); rzche is in the wire format although akshare drops it."""

    day: date
    rzye: int
    rzmre: int
    rzche: int
    rqyl: int
    rqylje: int
    rqmcl: int
    rzrqjyzl: int | None = None  # default: rzye + rqylje


@dataclass(frozen=True)
class SseDetail:
    code: str
    name: str
    rzye: int
    rzmre: int
    rzche: int
    rqyl: int
    rqmcl: int
    rqchl: int


def _sse_row(values: dict[str, object]) -> dict[str, object]:
    return {key: values.get(key, "") for key in SSE_KEYS}


def _sse_envelope(rows: list[dict[str, object]]) -> str:
    return json.dumps({
        "actionErrors": [], "actionMessages": [], "errorMessages": [], "fieldErrors": {},
        "isPagination": "true", "jsonCallBack": None, "locale": "zh_CN",
        "pageHelp": {"beginPage": 1, "cacheSize": 1, "data": rows, "endPage": None, "objectResult": None,
                     "pageCount": 1, "pageNo": 1, "pageSize": 5000, "searchDate": None, "sort": None,
                     "total": len(rows)},
        "result": rows, "texts": None, "type": "", "validateCode": "",
    }, ensure_ascii=False)


def sse_summary_json(rows: Iterable[SseSummary]) -> str:
    """queryMargin.do summary answer, newest first as SSE sends it."""
    out = []
    for r in sorted(rows, key=lambda r: r.day, reverse=True):
        total = r.rzrqjyzl if r.rzrqjyzl is not None else r.rzye + r.rqylje
        out.append(_sse_row({
            "unnamed0": "", "opDate": r.day.strftime("%Y%m%d"), "rqchl": "", "rqmcl": r.rqmcl, "rqyl": r.rqyl,
            "rqylje": r.rqylje, "unnamed6": "", "rzche": r.rzche, "rzmre": r.rzmre, "rzrqjyzl": total,
            "rzye": r.rzye,
        }))
    return _sse_envelope(out)


def sse_detail_json(day: date, rows: Iterable[SseDetail]) -> str:
    """queryMargin.do detail answer (tabType=mxtype) for one day; [] = not published yet."""
    out = [_sse_row({
        "opDate": day.strftime("%Y%m%d"), "rqchl": r.rqchl, "rqmcl": r.rqmcl, "rqyl": r.rqyl, "rzche": r.rzche,
        "rzmre": r.rzmre, "rzye": r.rzye, "securityAbbr": r.name, "stockCode": r.code,
    }) for r in rows]
    return _sse_envelope(out)


# --- SZSE --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SzseSummary:
    """SZSE summary as published: strings in 亿元 / 亿股, e.g. "7,077.67"."""

    rzmre: str
    rzye: str
    rqmcl: str
    rqyl: str
    rqye: str
    rzrqye: str


def yi(value: float) -> str:
    """元 -> the 亿 string SZSE prints (two decimals, thousands separators)."""
    return f"{value / 1e8:,.2f}"


def szse_summary_json(day: date, summary: SzseSummary | None) -> str:
    """ShowReport/data answer: tab1 (总量) and tab2 (明细, first page); None = no data for the day."""
    data = [] if summary is None else [{
        "jrrzmr": summary.rzmre, "jrrzye": summary.rzye, "jrrjmc": summary.rqmcl, "jrrjyl": summary.rqyl,
        "jrrjye": summary.rqye, "jrrzrjye": summary.rzrqye,
    }]
    return json.dumps([
        {"metadata": {"catalogid": "1837_xxpl", "name": "融资融券交易总量", "excel": "xlsx", "pagetype": "1",
                      "pageno": 1, "pagesize": 20, "pagecount": 1, "recordcount": len(data),
                      "subname": day.isoformat(), "tabkey": "tab1",
                      "cols": {"jrrzmr": "融资买入额(亿元)", "jrrzye": "融资余额(亿元)",
                               "jrrjmc": "融券卖出量(亿股/亿份)", "jrrjyl": "融券余量(亿股/亿份)",
                               "jrrjye": "融券余额(亿元)", "jrrzrjye": "融资融券余额(亿元)"}},
         "data": data, "error": None},
        {"metadata": {"catalogid": "1837_xxpl", "name": "融资融券交易明细", "excel": "xlsx", "pagetype": "2",
                      "pageno": 1, "pagesize": 20, "pagecount": 0, "recordcount": 0,
                      "subname": day.isoformat(), "tabkey": "tab2"},
         "data": [], "error": None},
    ], ensure_ascii=False)


@dataclass(frozen=True)
class ExchangeDetail:
    """One security in the SZSE or BSE detail (元, 股)."""

    code: str
    name: str
    rzmre: int
    rzye: int
    rqmcl: int
    rqyl: int
    rqye: int

    @property
    def rzrqye(self) -> int:
        return self.rzye + self.rqye


def _text_workbook(title: str, header: Iterable[str], rows: Iterable[list[str]]) -> bytes:
    """An xlsx of one sheet with every cell stored as TEXT, as SZSE's exports store them."""
    book = Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(list(header))
    for cells in rows:
        sheet.append(cells)
    for row in sheet.iter_rows():
        for cell in row:
            cell.data_type = "s"
            cell.number_format = "@"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def szse_detail_xlsx(rows: Iterable[ExchangeDetail], cells: Mapping[str, Mapping[str, str]] | None = None) -> bytes:
    """The detail workbook; every number cell is TEXT with commas, as SZSE writes it. `cells` replaces
    the text of single cells, {code: {header: text}} (e.g. a dash where a number belongs)."""
    def line(r: ExchangeDetail) -> list[str]:
        values = [r.code, r.name, f"{r.rzmre:,}", f"{r.rzye:,}", f"{r.rqmcl:,}", f"{r.rqyl:,}", f"{r.rqye:,}",
                  f"{r.rzrqye:,}"]
        for header, text in (cells or {}).get(r.code, {}).items():
            values[SZSE_DETAIL_HEADER.index(header)] = text
        return values

    return _text_workbook("融资融券交易明细", SZSE_DETAIL_HEADER, (line(r) for r in rows))


# --- official turnover -------------------------------------------------------------------------------

SSE_DEAL_KEYS = (
    "TOTAL_VALUE", "TRADE_VOL", "AVG_PE_RATE", "TOTAL_TO_RATE", "TRADE_AMT", "PRODUCT_CODE", "NEGO_VALUE",
    "NEGO_TO_RATE", "TRADE_DATE", "LIST_NUM", "unnamed10",
)
SSE_DEAL_PRODUCTS = ("01", "02", "03", "11", "17")  # 主板A, 主板B, 科创板, 股票回购, 股票
SZSE_OVERVIEW_HEADER = ("证券类别", "数量", "成交金额(元)", "总市值(元)", "流通市值(元)")


@dataclass(frozen=True)
class SseDeal:
    """One SSE day's 成交金额 per product, in 亿元 as SSE prints it (two decimals)."""

    day: date
    main_a: float
    main_b: float
    star: float
    buyback: float = 0.0

    @property
    def stocks(self) -> float:
        return round(self.main_a + self.main_b + self.star, 2)


def sse_deal_daily_json(deal: SseDeal | None) -> str:
    """commonQuery.do answer of COMMON_SSE_SJ_GPSJ_CJGK_MRGK_C; None = not published (empty result)."""
    rows: list[dict[str, object]] = []
    if deal is not None:
        amounts = (deal.main_a, deal.main_b, deal.star, deal.buyback, deal.stocks)
        for code, amount in zip(SSE_DEAL_PRODUCTS, amounts, strict=True):
            values = {
                "TOTAL_VALUE": "512345.67", "TRADE_VOL": f"{amount / 10:.2f}", "AVG_PE_RATE": "13.28",
                "TOTAL_TO_RATE": "0.71", "TRADE_AMT": f"{amount:.2f}", "PRODUCT_CODE": code,
                "NEGO_VALUE": "448912.27", "NEGO_TO_RATE": "0.80", "TRADE_DATE": deal.day.strftime("%Y%m%d"),
                "LIST_NUM": "1735", "unnamed10": "",
            }
            rows.append({key: values[key] for key in SSE_DEAL_KEYS})
    return json.dumps({"actionErrors": [], "actionMessages": [], "errorMessages": [], "fieldErrors": {},
                       "isPagination": "false", "jsonCallBack": None, "locale": "zh_CN", "pageHelp": None,
                       "result": rows, "texts": None, "type": "", "validateCode": ""}, ensure_ascii=False)


@dataclass(frozen=True)
class SzseCategory:
    """One 证券类别 row of SZSE's overview: count, 成交金额 (元, cents), 总市值 and 流通市值 (元)."""

    name: str
    count: int
    amount: float
    market_value: float
    float_value: float


def szse_overview_xlsx(rows: Iterable[SzseCategory]) -> bytes:
    """The overview workbook: money cells TEXT with thousands separators and cents, as SZSE writes them."""
    return _text_workbook("证券类别统计", SZSE_OVERVIEW_HEADER, (
        [r.name, str(r.count), f"{r.amount:,.2f}", f"{r.market_value:,.2f}", f"{r.float_value:,.2f}"] for r in rows))


def szse_overview_rows(main_a: float, chinext: float, main_b: float = 61_234_567.89,
                       sme: float | None = None) -> list[SzseCategory]:
    """A plausible overview: 股票 = the boards; funds and bonds besides (they are no A shares)."""
    boards = [SzseCategory("主板A股", 1505, main_a, 1.957898e13, 1.741032e13),
              SzseCategory("主板B股", 41, main_b, 4.797426e10, 4.781622e10)]
    if sme is not None:
        boards.append(SzseCategory("中小板", 960, sme, 1.130741e13, 8.669555e12))
    boards.append(SzseCategory("创业板A股", 1333, chinext, 1.137339e13, 8.206234e12))
    total = round(sum(b.amount for b in boards), 2)
    return [
        SzseCategory("股票", sum(b.count for b in boards), total, 3.100035e13, 2.566437e13), *boards,
        SzseCategory("基金", 654, 23_660_800_000.12, 5.414342e11, 5.331753e11),
        SzseCategory("ETF", 350, 23_100_180_000.34, 4.877119e11, 4.877119e11),
        SzseCategory("债券回购", 13, 218_416_000_000.56, 0.0, 0.0),
    ]


# --- BSE ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BseSummary:
    """BSE summary in 万元 / 万股 (the *Round fields)."""

    rzmre: float
    rzye: float
    rqmcl: float
    rqyl: float
    rqye: float

    @property
    def rzrqye(self) -> float:
        return round(self.rzye + self.rqye, 2)


def _jsonp(payload: list[object], day: date) -> str:
    body = json.dumps(payload, ensure_ascii=False)
    # BSE closes the array with the date in single quotes: not JSON, which is why akshare fixes it up.
    return f"cb({body[:-1]},'{day.isoformat()}'])"


def bse_summary_jsonp(day: date, summary: BseSummary | None) -> str:
    rows = [] if summary is None else [{
        "rzmreRound": summary.rzmre, "rzyeRound": summary.rzye, "rqmclRound": summary.rqmcl,
        "rqylRound": summary.rqyl, "rqyeRound": summary.rqye, "rzrqyeRound": summary.rzrqye,
        "jyrq": day.isoformat(),
    }]
    return _jsonp([rows], day)


def bse_detail_jsonp(day: date, rows: Sequence[ExchangeDetail], page: int = 0, total_pages: int = 1) -> str:
    content = [{"zqdm": r.code, "zqjc": r.name, "rzmre": r.rzmre, "rzye": r.rzye, "rqmcl": r.rqmcl,
                "rqyl": r.rqyl, "rqye": r.rqye, "rzrqye": r.rzrqye, "jyrq": day.isoformat()} for r in rows]
    page_info = {"content": content, "firstPage": page == 0, "lastPage": page == total_pages - 1,
                 "number": page, "numberOfElements": len(content), "size": 20, "sort": None,
                 "totalElements": len(content), "totalPages": total_pages}
    return _jsonp([[page_info]], day)


# --- Eastmoney ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountDay:
    """Eastmoney whole-market day, money in 亿元; None is sent as null (a figure Eastmoney lacks)."""

    day: date
    fin_balance: float
    loan_balance: float | None
    fin_buy: float | None
    loan_sell: float | None


def eastmoney_account_json(rows: Sequence[AccountDay], pages: int = 1) -> str:
    data = [{
        "STATISTICS_DATE": f"{r.day.isoformat()} 00:00:00", "FIN_BALANCE": r.fin_balance,
        "LOAN_BALANCE": r.loan_balance, "FIN_BUY_AMT": r.fin_buy, "LOAN_SELL_AMT": r.loan_sell,
        "SECURITY_ORG_NUM": 96, "OPERATEDEPT_NUM": 11253, "PERSONAL_INVESTOR_NUM": 7256.41,
        "ORG_INVESTOR_NUM": 3.57, "INVESTOR_NUM": 48.52, "MARGINLIAB_INVESTOR_NUM": 509.71,
        "TOTAL_GUARANTEE": 43512.66, "AVG_GUARANTEE_RATIO": 247.83,
    } for r in rows]
    return json.dumps({"version": "b6f1d3", "result": {"pages": pages, "data": data, "count": len(data)},
                       "success": True, "message": "ok", "code": 0})


@dataclass(frozen=True)
class Bar:
    day: date
    open: float
    close: float
    high: float
    low: float
    volume: int
    amount: float  # 元


def em_kline_json(code: str, market: int, name: str, bars: Sequence[Bar]) -> str:
    klines = [f"{b.day.isoformat()},{b.open:.2f},{b.close:.2f},{b.high:.2f},{b.low:.2f},{b.volume},"
              f"{b.amount:.1f},{(b.high - b.low) / b.open * 100:.2f}" for b in bars]
    return json.dumps({"rc": 0, "rt": 17, "svr": 177617930, "lt": 1, "full": 1, "dlmkts": "",
                       "data": {"code": code, "market": market, "name": name, "decimal": 2,
                                "dktotal": len(klines), "preKPrice": bars[0].open if bars else 0,
                                "klines": klines}}, ensure_ascii=False)


# --- Eastmoney quote lists (push2 .../api/qt/clist/get) ------------------------------------------------


@dataclass(frozen=True)
class Quote:
    code: str
    name: str
    last: float | None  # 最新价; None: "-" (suspended, or no trade yet)
    prev_close: float


# The A-share list's "diff" objects hold their keys in field-number order, and akshare names the
# columns of stock_zh_a_spot_em BY POSITION: f2 is 最新价, f12 代码, f14 名称, f18 昨收 (f19 is absent).
A_SHARE_FIELDS = (*(f"f{i}" for i in range(1, 19)), "f20", "f21", "f22", "f23", "f24", "f25",
                  "f62", "f115", "f128", "f140", "f141", "f136", "f152")
# The fund list's keys, which fund_etf_spot_em renames by name (f297 is the data date, f124 a Unix time).
FUND_FIELDS = ("f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f12", "f13", "f14", "f15", "f16",
               "f17", "f18", "f20", "f21", "f23", "f24", "f25", "f22", "f11", "f30", "f31", "f32", "f33", "f34",
               "f35", "f38", "f62", "f63", "f64", "f65", "f66", "f69", "f72", "f75", "f78", "f81", "f84", "f87",
               "f115", "f124", "f128", "f136", "f152", "f184", "f297", "f402", "f441")


def _quote_values(q: Quote, market: int, data_day: date) -> dict[str, object]:
    last: object = "-" if q.last is None else q.last
    change = "-" if q.last is None else round(q.last - q.prev_close, 3)
    pct = "-" if q.last is None else round((q.last / q.prev_close - 1) * 100, 2)
    return {"f1": 2, "f2": last, "f3": pct, "f4": change, "f12": q.code, "f13": market, "f14": q.name,
            "f18": q.prev_close, "f152": 2, "f297": int(data_day.strftime("%Y%m%d")), "f124": 1712800000,
            "f128": "-", "f140": "-", "f141": "-", "f136": "-"}


def em_quote_list_json(quotes: Sequence[Quote], fields: Sequence[str], data_day: date) -> str:
    """One page holding every quote (total = the rows sent: akshare asks no second page)."""
    diff = []
    for q in quotes:
        market = 1 if q.code[0] in "56" else 0
        values = _quote_values(q, market, data_day)
        diff.append({f: values.get(f, 0) for f in fields})
    return json.dumps({"rc": 0, "rt": 6, "svr": 180606397, "lt": 1, "full": 1, "dlmkts": "",
                       "data": {"total": len(diff), "diff": diff}}, ensure_ascii=False)


def sw_index_json(symbol: str, bars: Sequence[Bar]) -> str:
    data = [{"swindexcode": symbol, "bargaindate": b.day.isoformat(), "openindex": b.open,
             "maxindex": b.high, "minindex": b.low, "closeindex": b.close, "hike": round(b.close - b.open, 2),
             "markup": round((b.close / b.open - 1) * 100, 2), "bargainamount": b.volume / 1e8,
             "bargainsum": b.amount / 1e8} for b in bars]
    return json.dumps({"code": 200, "message": "success", "data": data})


# --- Shenwan classification: a real BIFF8 .xls ---------------------------------------------------------

_END, _FREE, _FATSECT = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
_SECTOR = 512
_MINI_CUTOFF = 4096


def _record(code: int, body: bytes) -> bytes:
    return struct.pack("<HH", code, len(body)) + body


def _unicode(text: str, length_bytes: int) -> bytes:
    """BIFF8 string: character count, option flags (1 = UTF-16LE), characters."""
    return struct.pack("<H" if length_bytes == 2 else "<B", len(text)) + b"\x01" + text.encode("utf-16-le")


def _biff_workbook(sheet_name: str, rows: Sequence[Sequence[str]]) -> bytes:
    """A workbook stream: globals (BOF, BOUNDSHEET, EOF) then one sheet of LABEL (text) cells."""
    bof = struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 0x0006)
    sheet = bytearray(_record(0x0809, bof[:2] + struct.pack("<H", 0x0010) + bof[4:]))
    width = max(len(r) for r in rows)
    sheet += _record(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, width, 0))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet += _record(0x0204, struct.pack("<HHH", r, c, 0) + _unicode(str(value), 2))
    sheet += _record(0x000A, b"")
    name = _unicode(sheet_name, 1)
    eof = _record(0x000A, b"")
    sheet_offset = 4 + len(bof) + 4 + 6 + len(name) + len(eof)
    globals_ = _record(0x0809, bof) + _record(0x0085, struct.pack("<IBB", sheet_offset, 0, 0) + name) + eof
    # Streams under the mini-stream cutoff would live in the mini stream: pad to keep one layout.
    return (globals_ + bytes(sheet)).ljust(_MINI_CUTOFF, b"\x00")


def _dir_entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
    raw = (name + "\x00").encode("utf-16-le") if name else b""
    return (raw.ljust(64, b"\x00") + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", _FREE, _FREE, child) + bytes(16) + struct.pack("<I", 0) + bytes(16)
            + struct.pack("<III", start, size, 0))


def _compound_file(stream: bytes) -> bytes:
    """OLE2 compound file (v3, 512-byte sectors) holding one stream named Workbook."""
    data_sectors = -(-len(stream) // _SECTOR)
    fat_sectors = 1
    while fat_sectors * 128 < fat_sectors + 1 + data_sectors:
        fat_sectors += 1
    first_data = fat_sectors + 1
    fat = [_FATSECT] * fat_sectors + [_END]
    fat += [first_data + i + 1 for i in range(data_sectors - 1)] + [_END]
    fat += [_FREE] * (fat_sectors * 128 - len(fat))
    difat = list(range(fat_sectors)) + [_FREE] * (109 - fat_sectors)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + bytes(6) + struct.pack("<9I", 0, fat_sectors, fat_sectors, 0, _MINI_CUTOFF, _END, 0, _END, 0)
              + struct.pack("<109I", *difat))
    directory = (_dir_entry("Root Entry", 5, 1, _END, 0) + _dir_entry("Workbook", 2, _FREE, first_data, len(stream))
                 + _dir_entry("", 0, _FREE, 0, 0) * 2)
    return header + struct.pack(f"<{len(fat)}I", *fat) + directory + stream.ljust(data_sectors * _SECTOR, b"\x00")


@dataclass(frozen=True)
class SwClass:
    code: str
    start: date
    sw_code: str
    updated: str = "2021-07-30 10:15"


def sw_class_xls(rows: Iterable[SwClass]) -> bytes:
    """StockClassifyUse_stock.xls: 股票代码, 计入日期, 行业代码, 更新日期 (text cells)."""
    table = [list(SW_CLASS_HEADER)] + [[r.code, r.start.isoformat(), r.sw_code, r.updated] for r in rows]
    return _compound_file(_biff_workbook("Sheet1", table))


# --- CSI constituents (csindex.com.cn): a real BIFF8 .xls ------------------------------------------------

_EXCHANGE_NAMES = {"SSE": ("上海证券交易所", "Shanghai Stock Exchange"),
                   "SZSE": ("深圳证券交易所", "Shenzhen Stock Exchange")}


@dataclass(frozen=True)
class Constituent:
    code: str
    name: str
    name_en: str = ""

    @property
    def exchange(self) -> str:
        return "SSE" if self.code.startswith("6") else "SZSE"


def csindex_cons_xls(members: Iterable[Constituent], as_of: date | None, symbol: str = "000300",
                     index_name: tuple[str, str] = ("沪深300", "CSI 300")) -> bytes:
    """`{symbol}cons.xls` as csindex serves it (rows by code, every cell text); `as_of` None: empty date cells."""
    day = as_of.strftime("%Y%m%d") if as_of else ""
    table = [list(CSINDEX_CONS_HEADER)]
    for m in sorted(members, key=lambda m: m.code):
        zh, en = _EXCHANGE_NAMES[m.exchange]
        table.append([day, symbol, index_name[0], index_name[1], m.code, m.name, m.name_en or f"Constituent {m.code}",
                      zh, en])
    return _compound_file(_biff_workbook(f"{symbol}cons.xls", table))


# The sample market's stocks that are CSI 300 constituents (funds and small caps are not).
CSI300_NAMED = [Constituent("600519", "贵州茅台", "Kweichow Moutai Co., Ltd."),
                Constituent("601318", "中国平安", "Ping An Insurance (Group) Company of China, Ltd."),
                Constituent("600036", "招商银行", "China Merchants Bank Co., Ltd."),
                Constituent("688981", "中芯国际", "Semiconductor Manufacturing International Corporation"),
                Constituent("000001", "平安银行", "Ping An Bank Co., Ltd."),
                Constituent("000858", "五粮液", "Wuliangye Yibin Co., Ltd."),
                Constituent("300750", "宁德时代", "Contemporary Amperex Technology Co., Limited"),
                Constituent("002594", "比亚迪", "BYD Company Limited")]


def csi300_members(count: int = 300, salt: int = 0) -> list[Constituent]:
    """`count` constituents: the named ones, then invented codes outside the sample market's other codes.

    A different `salt` swaps the last invented members for others (a semiannual review).
    """
    fillers = [Constituent(f"{601000 + i:06d}", f"成份股{i:03d}") for i in range(150)]
    fillers += [Constituent(f"{2000 + i:06d}", f"成份股{150 + i:03d}") for i in range(150)]
    out = CSI300_NAMED + fillers[:count - len(CSI300_NAMED) - salt]
    out += [Constituent(f"{603000 + i:06d}", f"新调入{i:02d}") for i in range(salt)]
    return out[:count]


# --- a consistent market -----------------------------------------------------------------------------

SSE_NAMED = [("600519", "贵州茅台"), ("601318", "中国平安"), ("600036", "招商银行"), ("688981", "中芯国际"),
             ("510300", "沪深300ETF"), ("510050", "上证50ETF")]
SZSE_NAMED = [("000001", "平安银行"), ("000858", "五&nbsp;粮&nbsp;液"), ("300750", "宁德时代"), ("002594", "比亚迪"),
              ("159919", "沪深300ETF"), ("159915", "创业板ETF")]
BSE_NAMED = [("830799", "艾融软件"), ("835185", "贝特瑞"), ("833819", "颖泰生物"), ("832982", "锦波生物")]
FILLERS = {"SSE": 24, "SZSE": 24, "BSE": 6}
# The summary also counts securities that left the 标的 list: the detail sums to 99% of it.
DETAIL_SHARE = 0.99


def _codes(exchange: str) -> list[tuple[str, str]]:
    named = {"SSE": SSE_NAMED, "SZSE": SZSE_NAMED, "BSE": BSE_NAMED}[exchange]
    first = {"SSE": 600100, "SZSE": 1200, "BSE": 870100}[exchange]
    return named + [(f"{first + i:06d}", f"{exchange}样本{i:02d}") for i in range(FILLERS[exchange])]


def _split(total: float, count: int, salt: int) -> list[int]:
    """Deterministic uneven integer shares of `total` that add up to round(total)."""
    weights = [1 + ((i + 1) * 7919 + salt * 104729) % 97 / 24 for i in range(count)]
    scale = total / sum(weights)
    parts = [int(w * scale) for w in weights]
    parts[0] += round(total) - sum(parts)
    return parts


@dataclass
class ExchangeDay:
    """One exchange on one day: the summary figures (元, 股) and the per-security detail behind them."""

    exchange: str
    day: date
    rzye: int
    rzmre: int
    rzche: int
    rqye: int
    rqyl: int
    rqmcl: int
    detail: list[ExchangeDetail | SseDetail] = field(default_factory=list)

    @property
    def rzrqye(self) -> int:
        return self.rzye + self.rqye


def exchange_day(exchange: str, day: date, rzye: int, rzmre: int, rzche: int, rqye: int, rqyl: int,
                 rqmcl: int) -> ExchangeDay:
    codes = _codes(exchange)
    salt = day.toordinal()
    n = len(codes)
    rz = _split(rzye * DETAIL_SHARE, n, salt)
    buy = _split(rzmre * DETAIL_SHARE, n, salt + 1)
    repay = _split(rzche * DETAIL_SHARE, n, salt + 2)
    lent = _split(rqyl * DETAIL_SHARE, n, salt + 3)
    sold = _split(rqmcl * DETAIL_SHARE, n, salt + 4)
    lent_value = _split(rqye * DETAIL_SHARE, n, salt + 5)
    detail: list[ExchangeDetail | SseDetail] = []
    for i, (code, name) in enumerate(codes):
        if exchange == "SSE":
            detail.append(SseDetail(code, name, rz[i], buy[i], repay[i], lent[i], sold[i], sold[i] // 2))
        else:
            detail.append(ExchangeDetail(code, name, buy[i], rz[i], sold[i], lent[i], lent_value[i]))
    return ExchangeDay(exchange, day, rzye, rzmre, rzche, rqye, rqyl, rqmcl, detail)


def sw_classes() -> list[SwClass]:
    """Classes for every non-fund code of the sample market; 600519 changed class in 2021."""
    from storage.industries import is_fund_code

    out = [SwClass("600519", date(2014, 2, 21), "340501", "2015-10-27 15:29")]
    level1 = [i.sw_l1_code for i in SW_L1_2021]
    k = 0
    for exchange in ("SSE", "SZSE", "BSE"):
        for code, _name in _codes(exchange):
            if is_fund_code(code):
                continue
            sw = "340501" if code == "600519" else f"{level1[k % len(level1)][:2]}0{k % 3 + 1}01"
            out.append(SwClass(code, date(2021, 7, 30), sw))
            k += 1
    return out
