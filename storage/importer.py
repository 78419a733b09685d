"""CSV import of margin history: `marginbot import {margin,turnover,stocks,industries} FILE`.

Formats (UTF-8, header row first, money in 元, quantities in 股, dates YYYY-MM-DD, empty = unknown):

- margin:     date,exchange,rzye,rzmre,rzche,rqye,rqyl,rqmcl,rqmce,rzrqye   (exchange SSE, SZSE, BSE or ALL)
- turnover:   date,exchange,amount                                         (exchange SSE, SZSE or BSE)
- stocks:     date,code,name,rzye,rzmre,rzche,rqyl,rqmcl,rqchl,rqye
- industries: code,start_date,sw_code

A file is checked completely before anything is written, then written in one transaction, so a bad
file leaves the database as it was. Besides structure and numbers, margin, turnover and stock rows
get the unit checks of `marginbot ingest` (storage.plausibility): a figure in 亿元 or 万元 is refused, not
stored as 元. Rows are upserted by their natural key: importing a file twice stores the same data as
importing it once. Imported into a database holding the embedded demo data, a file replaces them:
the demo market data are deleted in the import's own transaction (a refused file leaves them as
they were), as the first real ingest does.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage import models
from storage._steps import sector_days_ready, upsert_changed
from storage.database import bump_data_version, session_scope, set_meta, upsert
from storage.industries import exchange_of, industry_name_rows, is_fund_code, level1_code
from storage.ingest import MARGIN_START, drop_demo_data
from storage.plausibility import (
    IDENTITY_RTOL,
    RZYE_MAX,
    SECURITY_RZYE_MAX,
    SUMMARY_UNIT,
    TURNOVER_MAX,
    derive_rzche,
    derive_stock_rzche,
    rounding_tolerance,
    summary_row_problem,
    turnover_problem,
)

log = logging.getLogger(__name__)

KINDS = ("margin", "turnover", "stocks", "industries", "index")
SOURCE = "csv"

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE_RE = re.compile(r"^\d{6}$")
_INDEX_SYMBOL_RE = re.compile(r"^(?:sh|sz|bj)?\d{6}$")  # exchange indexes as akshare names them; Shenwan bare

MARGIN_COLUMNS = ("date", "exchange", "rzye", "rzmre", "rzche", "rqye", "rqyl", "rqmcl", "rqmce", "rzrqye")
TURNOVER_COLUMNS = ("date", "exchange", "amount")
STOCK_COLUMNS = ("date", "code", "name", "rzye", "rzmre", "rzche", "rqyl", "rqmcl", "rqchl", "rqye")
INDUSTRY_COLUMNS = ("code", "start_date", "sw_code")
INDEX_COLUMNS = ("date", "symbol", "close", "amount")
COLUMNS: dict[str, tuple[str, ...]] = {
    "margin": MARGIN_COLUMNS,
    "turnover": TURNOVER_COLUMNS,
    "stocks": STOCK_COLUMNS,
    "industries": INDUSTRY_COLUMNS,
    "index": INDEX_COLUMNS,
}
_MARGIN_NUMBERS = MARGIN_COLUMNS[2:]
_STOCK_NUMBERS = STOCK_COLUMNS[3:]
_NAME_MAX = 32
# Turnover under TURNOVER_MIN is refused for SSE and SZSE only: BSE trades less than that a day.
_TURNOVER_FLOOR_EXCHANGES = ("SSE", "SZSE")
DEMO_REPLACED = "demo data removed: the imported data replace the embedded demo data"


class CsvImportError(Exception):
    """A file that cannot be imported; str() names the file, the line (1 = header) and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}: line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


class _Reader:
    """Reads one CSV file into rows keyed by column name, refusing malformed structure."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns

    def fail(self, line: int | None, reason: str) -> CsvImportError:
        return CsvImportError(self.path, line, reason)

    def _undecodable_line(self) -> int:
        """The line of the first byte that is not UTF-8: the text reader decodes ahead of the CSV
        reader, so its line count does not tell."""
        data = self.path.read_bytes()
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return data[: exc.start].count(b"\n") + 1
        return 1

    def rows(self) -> Iterator[_Row]:
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise self.fail(None, f"cannot read file: {exc.strerror or exc}") from None
        with handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if header is None:
                    raise self.fail(1, "empty file: expected a header row " + ",".join(self.columns))
                names = [h.strip().lower() for h in header]
                missing = [c for c in self.columns if c not in names]
                if missing:
                    raise self.fail(1, f"missing column(s) {', '.join(missing)}; expected " + ",".join(self.columns))
                repeated = sorted({n for n in names if n and names.count(n) > 1})
                if repeated:
                    raise self.fail(1, f"column(s) named twice: {', '.join(repeated)}")
                index = {c: names.index(c) for c in self.columns}
                for fields in reader:
                    line = reader.line_num
                    if not fields or all(not f.strip() for f in fields):
                        continue
                    if len(fields) != len(names):
                        raise self.fail(line, f"expected {len(names)} fields, found {len(fields)}")
                    yield _Row(line, {c: fields[i].strip() for c, i in index.items()})
            except UnicodeDecodeError:
                raise self.fail(self._undecodable_line(), "not UTF-8 text (GBK? save the file as UTF-8)") from None
            except csv.Error as exc:
                raise self.fail(reader.line_num, f"malformed CSV: {exc}") from None


def _today() -> date:
    from marginbot.settings import TIMEZONE

    return datetime.now(TIMEZONE).date()


def _parse_date(reader: _Reader, row: _Row, column: str, trade_date: bool = True) -> date:
    """A YYYY-MM-DD date; a `trade_date` is a weekday not after today (Beijing): a typo there would
    enter the trading calendar (a day in 2052 would stop its refresh, a Saturday would stay pending)."""
    text = row.values[column]
    if not text:
        raise reader.fail(row.line, f"{column} is empty")
    if not _DATE_RE.match(text):
        raise reader.fail(row.line, f"{column} {text!r} is not a date (YYYY-MM-DD)")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise reader.fail(row.line, f"{column} {text!r} is not a valid date") from None
    if trade_date and day.weekday() >= 5:
        raise reader.fail(row.line, f"{column} {text} is a {day:%A}: the exchanges do not trade at weekends")
    if trade_date and day > _today():
        raise reader.fail(row.line, f"{column} {text} is in the future")
    return day


def _parse_number(reader: _Reader, row: _Row, column: str, required: bool = False) -> float | None:
    """A non-negative finite number (元 or 股), or None for an empty cell."""
    text = row.values[column]
    if not text:
        if required:
            raise reader.fail(row.line, f"{column} is empty")
        return None
    try:
        value = float(text)
    except ValueError:
        raise reader.fail(row.line, f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise reader.fail(row.line, f"{column} {text!r} is not a finite number")
    if value < 0:
        raise reader.fail(row.line, f"{column} is negative ({text})")
    return value


def _parse_exchange(reader: _Reader, row: _Row, allowed: tuple[str, ...]) -> str:
    text = row.values["exchange"].upper()
    if text not in allowed:
        shown = row.values["exchange"] or "(empty)"
        raise reader.fail(row.line, f"unknown exchange {shown!r}; expected one of {', '.join(allowed)}")
    return text


def _parse_code(reader: _Reader, row: _Row, column: str) -> str:
    text = row.values[column]
    if not _CODE_RE.match(text):
        raise reader.fail(row.line, f"{column} {text!r} is not a six-digit code")
    return text


def _check_unique(reader: _Reader, seen: dict[tuple[Any, ...], int], key: tuple[Any, ...], line: int) -> None:
    first = seen.setdefault(key, line)
    if first != line:
        shown = ", ".join(str(k) for k in key)
        raise reader.fail(line, f"duplicate row for ({shown}), first given on line {first}")


def _read_margin(reader: _Reader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for row in reader.rows():
        day = _parse_date(reader, row, "date")
        exchange = _parse_exchange(reader, row, models.SUMMARY_SCOPES)
        _check_unique(reader, seen, (day.isoformat(), exchange), row.line)
        rec: dict[str, Any] = {c: _parse_number(reader, row, c) for c in _MARGIN_NUMBERS}
        if rec["rzye"] is not None and rec["rqye"] is not None:
            expected = rec["rzye"] + rec["rqye"]
            if rec["rzrqye"] is None:
                rec["rzrqye"] = expected
            elif abs(rec["rzrqye"] - expected) > rounding_tolerance(expected, IDENTITY_RTOL, SUMMARY_UNIT[exchange]):
                raise reader.fail(row.line, f"rzrqye {row.values['rzrqye']} is not rzye + rqye = {expected:.0f} "
                                            "(a column in another unit?)")
        _check_margin_units(reader, row, rec, day, exchange)
        rec.update(trade_date=day, exchange=exchange, rzche_derived=False, source=SOURCE)
        out.append(rec)
    return out


def _unit_hint(too_large: bool) -> str:
    return "(a unit smaller than 元?)" if too_large else "(亿元 or 万元?)"


def _check_margin_units(reader: _Reader, row: _Row, rec: dict[str, Any], day: date, exchange: str) -> None:
    """The ingest's checks of a summary row (storage.plausibility.summary_row_problem): 融资余额 within the
    bounds of its exchange (before 2011, when margin trading was new, only a floor of 1 万元) and
    融资买入额 not far above it. A row without 融资余额 has nothing to check against."""
    if rec["rzye"] is None:
        return
    # summary_row_problem reads attributes (a frame's row upstream): the row as a namespace
    blank = dict.fromkeys(_MARGIN_NUMBERS)
    if summary_row_problem(SimpleNamespace(trade_date=day, **(blank | {"rzye": rec["rzye"]})), exchange) is not None:
        hint = _unit_hint(rec["rzye"] > RZYE_MAX[exchange])
        raise reader.fail(row.line, f"rzye {row.values['rzye']} is not a plausible balance in 元 for {exchange} {hint}")
    # A file may carry an exchange's printed figures (SZSE's 0.01 亿元): the identity allows their rounding.
    problem = summary_row_problem(SimpleNamespace(trade_date=day, **{c: rec[c] for c in _MARGIN_NUMBERS}), exchange,
                                  SUMMARY_UNIT[exchange])
    if problem is not None:
        raise reader.fail(row.line, f"{problem} (a column in another unit?)")


def _check_turnover_units(reader: _Reader, row: _Row, day: date, exchange: str, amount: float) -> None:
    """The ingest's bounds of one exchange's daily turnover (storage.plausibility.turnover_problem), the
    floor for SSE and SZSE from the first day of margin trading on (the ratio reads no turnover
    before it; exchange turnover of the early 2000s was below it)."""
    floor = exchange in _TURNOVER_FLOOR_EXCHANGES and day >= MARGIN_START
    if turnover_problem(amount, with_floor=floor) is not None:
        hint = _unit_hint(amount > TURNOVER_MAX)
        raise reader.fail(row.line, f"amount {row.values['amount']} is not a plausible turnover in 元 "
                                    f"for {exchange} {hint}")


def _read_turnover(reader: _Reader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for row in reader.rows():
        day = _parse_date(reader, row, "date")
        exchange = _parse_exchange(reader, row, models.EXCHANGES)
        _check_unique(reader, seen, (day.isoformat(), exchange), row.line)
        amount = _parse_number(reader, row, "amount", required=True)
        assert amount is not None  # required
        _check_turnover_units(reader, row, day, exchange, amount)
        out.append(
            {"trade_date": day, "exchange": exchange, "amount": amount, "a_share_only": False, "source": SOURCE}
        )
    return out


def _read_stocks(reader: _Reader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for row in reader.rows():
        day = _parse_date(reader, row, "date")
        code = _parse_code(reader, row, "code")
        _check_unique(reader, seen, (day.isoformat(), code), row.line)
        name = row.values["name"]
        if len(name) > _NAME_MAX:
            raise reader.fail(row.line, f"name longer than {_NAME_MAX} characters")
        rec: dict[str, Any] = {c: _parse_number(reader, row, c) for c in _STOCK_NUMBERS}
        if rec["rzye"] is not None and rec["rzye"] > SECURITY_RZYE_MAX:
            raise reader.fail(row.line, f"rzye {row.values['rzye']} is not a plausible balance in 元 for one "
                                        f"security {_unit_hint(True)}")
        rec.update(
            trade_date=day,
            code=code,
            name=name,
            exchange=exchange_of(code),
            is_fund=is_fund_code(code),
            rzche_derived=False,  # as given; an empty cell is derived later (_derive_stock_rzche)
            rqye_estimated=False,
        )
        out.append(rec)
    return out


def _read_industries(reader: _Reader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for row in reader.rows():
        code = _parse_code(reader, row, "code")
        start = _parse_date(reader, row, "start_date", trade_date=False)  # a class may start any day
        _check_unique(reader, seen, (code, start.isoformat()), row.line)
        sw_code = _parse_code(reader, row, "sw_code")
        out.append({"code": code, "start_date": start, "sw_code": sw_code, "sw_l1_code": level1_code(sw_code)})
    return out


def _read_index(reader: _Reader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for row in reader.rows():
        day = _parse_date(reader, row, "date")
        symbol = row.values["symbol"].lower()
        if not _INDEX_SYMBOL_RE.match(symbol):
            raise reader.fail(row.line, f"symbol {row.values['symbol']!r} is not an index symbol "
                                        "(sh000001, sz399001, sh000300, or a Shenwan code such as 801010)")
        _check_unique(reader, seen, (day.isoformat(), symbol), row.line)
        close = _parse_number(reader, row, "close", required=True)
        if close is not None and close <= 0:
            raise reader.fail(row.line, f"close {row.values['close']!r} is not a positive number")
        out.append({"symbol": symbol, "trade_date": day, "close": close,
                    "amount": _parse_number(reader, row, "amount")})
    return out


_READERS: dict[str, Callable[[_Reader], list[dict[str, Any]]]] = {
    "margin": _read_margin,
    "turnover": _read_turnover,
    "stocks": _read_stocks,
    "industries": _read_industries,
    "index": _read_index,
}


def _rebuild_sectors(session: Session, dates: list[date]) -> None:
    if not dates:
        return
    from storage.aggregate import rebuild_sector_daily  # the aggregate module pulls in the report-side joins

    # the file brings the days' detail: their sectors are built whatever the ingest made of them
    rebuild_sector_daily(session, sorted(dates))


def _rebuild_spikes(session: Session, dates: list[date]) -> None:
    """Spike figures of the imported dates and of the 65 stored stock dates after each (they read them)."""
    from storage.aggregate import rebuild_stock_spikes, spike_dates_after_write

    rebuild_stock_spikes(session, spike_dates_after_write(session, dates))


def _stock_calendar(session: Session) -> list[date]:
    """The trade dates known to the database: those of margin summaries and of stock detail."""
    margin = session.execute(select(models.TradingDay.trade_date)).scalars()
    stocks = session.execute(select(models.StockMargin.trade_date).distinct()).scalars()
    return sorted({*margin, *stocks})


def _derive_stock_rzche(session: Session, dates: list[date]) -> list[date]:
    """Stock rows of `dates`, and of the trade date after each, whose 融资偿还额 is unknown or was
    derived (rzche_derived) get it, again, from the previous trade date's rows of the same exchange:
    rzye(T-1) + rzmre(T) - rzye(T) (derive_stock_rzche: a security absent there had no financing),
    as the ingest does for SZSE and BSE, which omit it. So a day whose balances changed never leaves
    the next day's derived figures stale; a figure a file or an exchange gave is left as given. Rows
    whose previous trade date has no detail of their exchange stay as they are. Returns the dates
    whose rows changed."""
    calendar = _stock_calendar(session)
    position = {day: i for i, day in enumerate(calendar)}
    targets = set(dates) | {calendar[position[d] + 1] for d in dates if position[d] + 1 < len(calendar)}
    sm = models.StockMargin
    changed: set[date] = set()
    for day in sorted(targets):
        if position[day] == 0:
            continue
        previous_day = calendar[position[day] - 1]
        derivable = session.execute(select(sm).where(
            sm.trade_date == day, models.stock_rzche_derivable())).scalars().all()
        for exchange in {row.exchange for row in derivable}:
            previous = dict(session.execute(select(sm.code, sm.rzye).where(
                sm.trade_date == previous_day, sm.exchange == exchange)).all())
            if not previous:
                continue
            for row in derivable:
                if row.exchange != exchange:
                    continue
                rzche = derive_stock_rzche(row.rzye, row.rzmre, previous.get(row.code))
                if (rzche, rzche is not None) != (row.rzche, row.rzche_derived):
                    row.rzche, row.rzche_derived = rzche, rzche is not None
                    changed.add(day)
    session.flush()
    return sorted(changed)


def _derive_summary_rzche(session: Session, rows: list[dict[str, Any]]) -> None:
    """Margin rows written, and the next trade date's row of the same exchange, whose 融资偿还额 was
    derived (rzche_derived: the ingest's, for SZSE, BSE and SSE) get it again from the previous
    trade date's 融资余额: rzye(T-1) + rzmre(T) - rzye(T), unknown where a term is. A figure given
    (by a file, by an exchange) and an unknown one are left as they are."""
    if not rows:
        return
    calendar = _stock_calendar(session)
    position = {day: i for i, day in enumerate(calendar)}
    ms = models.MarginSummary
    targets: set[tuple[date, str]] = set()
    for row in rows:
        at = position[row["trade_date"]]
        targets.add((row["trade_date"], row["exchange"]))
        if at + 1 < len(calendar):
            targets.add((calendar[at + 1], row["exchange"]))
    # two reads for all of them: the rows with a derived figure, and the balances of the days before
    first, last = min(day for day, _ in targets), max(day for day, _ in targets)
    since = calendar[max(position[first] - 1, 0)]
    derived = {(row.trade_date, row.exchange): row for row in session.execute(select(ms).where(
        ms.trade_date >= first, ms.trade_date <= last, ms.rzche_derived)).scalars()}
    balances = {(day, exchange): rzye for day, exchange, rzye in session.execute(select(
        ms.trade_date, ms.exchange, ms.rzye).where(ms.trade_date >= since, ms.trade_date <= last)).all()}
    for day, exchange in sorted(targets):
        stored = derived.get((day, exchange))
        if stored is None:
            continue
        before = None if position[day] == 0 else balances.get((calendar[position[day] - 1], exchange))
        rzche = derive_rzche(stored.rzye, stored.rzmre, before)
        if rzche != stored.rzche:
            stored.rzche, stored.rzche_derived = rzche, rzche is not None
    session.flush()


# What each kind writes: the table and its natural key.
_TABLES: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "margin": (models.MarginSummary, ("trade_date", "exchange")),
    "turnover": (models.Turnover, ("trade_date", "exchange")),
    "index": (models.IndexDaily, ("symbol", "trade_date")),
    "stocks": (models.StockMargin, ("trade_date", "code")),
    "industries": (models.IndustryClass, ("code", "start_date")),
}


def _merged(kind: str) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """How an imported row meets the stored one: an empty cell (unknown) keeps the stored figure, and
    what depends on the figures the file changes is made again, never kept stale: a margin row's
    两融余额 (rzye + rqye) where the file leaves it empty; a stock's 融资偿还额 derived from an older
    balance (made again from the new one, _derive_stock_rzche); a kept 融券余额's "estimated" mark."""

    def merge(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        row = {k: stored[k] if v is None and stored.get(k) is not None else v for k, v in new.items()}
        if kind == "margin" and new["rzrqye"] is None:
            row["rzrqye"] = None if row["rzye"] is None or row["rqye"] is None else row["rzye"] + row["rqye"]
        if kind in ("margin", "stocks") and new["rzche"] is None:
            row["rzche_derived"] = stored["rzche_derived"]  # a kept figure keeps its mark
        if kind == "stocks":
            if new["rzche"] is None and (row["rzye"], row["rzmre"]) != (stored["rzye"], stored["rzmre"]):
                row["rzche"], row["rzche_derived"] = None, False  # made again from the new figures
            if new["rqye"] is None:
                row["rqye_estimated"] = stored["rqye_estimated"]
        return row

    return merge


_DAYS_PER_WRITE = 40  # a long file is compared with the stored rows a few weeks at a time


def _write(session: Session, kind: str, rows: list[dict[str, Any]], replaced_demo: bool) -> int:
    """Write the rows that are new or differ from the stored ones (_merged: an empty cell keeps a
    figure already stored). The aggregates the written rows feed are rebuilt, and the data version
    bumped, only when something changed: importing a file again changes nothing. Returns rows written."""
    model, keys = _TABLES[kind]
    days = sorted({r["trade_date"] for r in rows}) if "trade_date" in keys else []
    written: list[dict[str, Any]] = []
    if not days:
        written = upsert_changed(session, model, rows, keys, merge=_merged(kind))
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in rows if days else ():
        by_day.setdefault(row["trade_date"], []).append(row)
    for start in range(0, len(days), _DAYS_PER_WRITE):
        some = days[start : start + _DAYS_PER_WRITE]
        part = [row for day in some for row in by_day[day]]
        written += upsert_changed(session, model, part, keys, where=model.trade_date.between(some[0], some[-1]),
                                  merge=_merged(kind))
    changed_days = sorted({r["trade_date"] for r in written}) if days else []
    if kind == "margin":
        upsert(session, models.TradingDay, [{"trade_date": d} for d in days])  # inserts the new ones only
        _derive_summary_rzche(session, written)
    elif kind == "stocks" and changed_days:
        # The next trade dates whose derived 融资偿还额 moved with the file's balances: their sectors
        # (where ingestion is not still bringing the day in) and spikes are made again too.
        later = sorted(set(_derive_stock_rzche(session, changed_days)) - set(changed_days))
        _rebuild_sectors(session, [*changed_days, *sector_days_ready(session, later)])
        _rebuild_spikes(session, sorted({*changed_days, *later}))
    elif kind == "industries" and written:
        upsert(session, models.IndustryName, industry_name_rows())
        stock_days = session.execute(select(models.StockMargin.trade_date).distinct()).scalars().all()
        _rebuild_sectors(session, list(stock_days))
    if written or replaced_demo:
        bump_data_version(session)
        set_meta(session, "demo", "false")
    return len(written)


def read_csv(kind: str, path: Path) -> list[dict[str, Any]]:
    """Parse and check a whole file of `kind` without touching the database; rows ready for upsert."""
    if kind not in _READERS:
        raise CsvImportError(path, None, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return _READERS[kind](_Reader(Path(path), COLUMNS[kind]))


def import_file(engine: Engine, kind: str, path: Path) -> tuple[int, list[str]]:
    """Import a CSV file of `kind` (margin, turnover, stocks, industries, index): the number of rows
    and the warnings it leaves: DEMO_REPLACED where the file replaced the embedded demo data, and for
    margin files the imported dates on which the exchanges' rows and a market-wide row disagree
    (storage.checks.cross_check_notes). A file without rows writes nothing (demo data stay).

    Money is read in 元 and quantities in 股, exactly as given. Raises CsvImportError (nothing
    written) when any row is bad.
    """
    rows = read_csv(kind, path)
    if not rows:
        return 0, []
    with session_scope(engine) as session:
        replaced = drop_demo_data(session)
        _write(session, kind, rows, replaced)
    notes: list[str] = []
    if replaced:
        log.info("%s (import of %s)", DEMO_REPLACED, path)
        notes.append(DEMO_REPLACED)
    if kind != "margin":
        return len(rows), notes
    from storage.checks import cross_check_notes

    days = [r["trade_date"] for r in rows]
    return len(rows), notes + cross_check_notes(engine, min(days), max(days))
