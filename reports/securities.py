"""What the reports accept for a security (its 6-digit code, the code as other sites write it:
600519.SH, SH600519, sz.000001, or its name or part of it: 贵州茅台, 茅台) and for a Shenwan level-1
sector (its name or part of it in Chinese or English, its code 270000 or its index 801080)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from sqlalchemy import Engine

from reports.errors import ReportError
from reports.fmt import clipped
from reports.i18n import LANGUAGES, t
from storage import queries
from storage.industries import exchange_of

# A code with an exchange prefix or suffix: sh600519, SH.600519, 600519.SH, 000001.SZ, 830799.BJ, 600519.SS.
_EXCHANGE_FORM = re.compile(r"^(?:(?P<prefix>sh|sz|bj)\.?)?(?P<code>\d{6})(?:\.?(?P<suffix>sh|sz|bj|ss))?$",
                            re.IGNORECASE | re.ASCII)
# The exchange a prefix or suffix names (SS: Yahoo's Shanghai).
_TYPED_EXCHANGE = {"sh": "SSE", "ss": "SSE", "sz": "SZSE", "bj": "BSE"}
MAX_NAME_LENGTH = 20  # longer text is not a security name (the longest stored names have ~10 characters)
# A security as the bot itself lists it, name then code in brackets: 演示股份0028(600519), "茅台 (600519)"
# (a watch list, a choice): pasted back, it is that code.
_LISTED_FORM = re.compile(rf"^[^()]{{0,{MAX_NAME_LENGTH}}}?\s*\((\d{{6}})\)$", re.ASCII)
MAX_CANDIDATES = 8  # an ambiguous name lists this many matches
# An ambiguous name's matches are counted up to this many (more than the market has): "540 matched"
MAX_COUNTED = 100_000
QUERY_ECHO = 32  # characters of what was typed that an answer echoes ("no security named ...")


def normalized(text: str) -> str:
    """`text` as typed, with full-width digits, letters and punctuation (a Chinese keyboard in its
    full-width mode: ６００５１９．ＳＨ) read as their ASCII forms (NFKC), and no outer spaces."""
    return unicodedata.normalize("NFKC", text).strip()


def code_form(text: str) -> str | None:
    """The 6-digit code in `text` when it is a code in one of the usual forms, or a name followed by
    its code in brackets as the bot lists securities; else None."""
    shown = normalized(text)
    match = _EXCHANGE_FORM.match(shown)
    if match:
        return match.group("code")
    match = _LISTED_FORM.match(shown)
    return match.group(1) if match else None


def exchange_mismatch(text: str) -> tuple[str, str, str] | None:
    """(code, exchange it is listed on, exchange typed) when `text` is a code whose prefix or suffix
    names another exchange (storage.industries.exchange_of tells a code's exchange from its digits):
    sh000001 is how sites write the Shanghai Composite index, not Shenzhen's 000001. Else None."""
    match = _EXCHANGE_FORM.match(normalized(text))
    if match is None:
        return None
    typed = match.group("prefix") or match.group("suffix")
    code = match.group("code")
    listed = exchange_of(code)
    if typed is None or _TYPED_EXCHANGE[typed.lower()] == listed:
        return None
    return code, listed, _TYPED_EXCHANGE[typed.lower()]


def candidates(engine: Engine, text: str, on: date | None) -> list[tuple[str, str]]:
    """The (code, name) pairs `text` may stand for: the code itself when it is one, else the securities
    whose name on the latest detail day (on or before `on`) contains it, up to MAX_CANDIDATES + 1;
    an exact name comes alone."""
    code = code_form(text)
    if code is not None:
        return [(code, "")]
    fragment = normalized(text)
    if not fragment or len(fragment) > MAX_NAME_LENGTH:
        return []
    found = queries.securities_named(engine, fragment, on, MAX_CANDIDATES + 1)
    if found and found[0][1].lower() == fragment.lower():
        return found[:1]
    return found


def count_named(engine: Engine, text: str, on: date | None) -> int:
    """How many securities' names (on the latest detail day on or before `on`) contain `text`: what
    an answer to an ambiguous name says ("540 matched"), where candidates() stops past MAX_CANDIDATES."""
    return len(queries.securities_named(engine, normalized(text), on, MAX_COUNTED))


def check_exchange(text: str) -> None:
    """ReportError index_code (sh000001: the Shanghai Composite, as sites write it) or
    exchange_mismatch where `text` is a code written for another exchange than the one it trades on
    (exchange_mismatch()); nothing otherwise."""
    mismatch = exchange_mismatch(text)
    if mismatch is None:
        return
    code, listed, typed = mismatch
    if typed == "SSE" and code.startswith("000"):  # SSE's indices: 000001 上证指数, 000300 沪深300
        raise ReportError("index_code", typed=clipped(text.strip(), QUERY_ECHO), code=code)
    raise ReportError("exchange_mismatch", typed=clipped(text.strip(), QUERY_ECHO), code=code,
                      exchange={lang: t(lang, f"exchange.{listed}") for lang in LANGUAGES})


def resolve(engine: Engine, text: str, on: date | None) -> str:
    """The 6-digit code `text` names; ReportError bad_code (empty text), index_code or
    exchange_mismatch (a code written for another exchange: exchange_mismatch()), no_such_security
    (nothing matches) or ambiguous_security (several names contain it: the first MAX_CANDIDATES are
    listed)."""
    if not text.strip():
        raise ReportError("bad_code", code="")
    check_exchange(text)
    found = candidates(engine, text, on)
    if not found:
        raise ReportError("no_such_security", query=clipped(text.strip(), QUERY_ECHO))
    if len(found) > 1:
        shown = found[:MAX_CANDIDATES]
        listed = [f"{name} ({code})" for code, name in shown]
        # how many matched: the first MAX_CANDIDATES + 1 tell only that there are more
        count = len(found) if len(found) <= MAX_CANDIDATES else count_named(engine, text, on)
        # choices: what a chat can offer to pick from (code, label); a tuple, so the message leaves it out.
        # The example code is one of the matches (a code that is not, 600519, reads as the answer).
        raise ReportError("ambiguous_security", query=clipped(text.strip(), QUERY_ECHO), count=count,
                          example=shown[0][0], candidates=listed + ["…"] * (count > MAX_CANDIDATES),
                          choices=tuple(zip((code for code, _ in shown), listed, strict=True)))
    return found[0][0]


def resolve_known(engine: Engine, text: str) -> str:
    """As :func:`resolve`, for a security that has stored detail: a code that never had any (not
    eligible for margin trading, or no such security) is ReportError unknown_code."""
    code = resolve(engine, text, None)
    if queries.last_stock_date(engine, code) is None:
        raise ReportError("unknown_code", code=code)
    return code


def sector_code(engine: Engine, text: str) -> str:
    """The level-1 code (270000) of the sector `text` names: its code, its index symbol, its Chinese
    or English name (any case), else the one name that contains it; ReportError no_such_sector or
    ambiguous_sector (the names that contain it, listed)."""
    wanted = normalized(text).lower()
    names = queries.industry_names(engine)
    if not wanted or names.empty:
        raise ReportError("no_such_sector", query=clipped(text.strip(), QUERY_ECHO))
    rows = [(code, str(r["name_zh"]), str(r["name_en"]), str(r["index_symbol"])) for code, r in names.iterrows()]
    for code, zh, en, index in rows:
        if wanted in (code, index, zh.lower(), en.lower()):
            return str(code)
    found = sorted((str(code), zh, en) for code, zh, en, _ in rows if wanted in zh.lower() or wanted in en.lower())
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise ReportError("no_such_sector", query=clipped(text.strip(), QUERY_ECHO))
    shown, more = found[:MAX_CANDIDATES], ["…"] * (len(found) > MAX_CANDIDATES)
    # names and buttons in the asker's language (ReportError.param)
    raise ReportError("ambiguous_sector", query=clipped(text.strip(), QUERY_ECHO),
                      candidates={"zh": [zh for _, zh, _ in shown] + more, "en": [en for _, _, en in shown] + more},
                      choices={"zh": tuple((code, zh) for code, zh, _ in shown),
                               "en": tuple((code, en) for code, _, en in shown)})


def name_of(engine: Engine, code: str) -> str:
    """A security's name on the latest day it has detail; the code itself when it never had any."""
    latest = queries.last_stock_date(engine, code)
    return queries.stock_names(engine, [code], latest).get(code, code) if latest else code
