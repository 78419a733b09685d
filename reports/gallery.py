"""Render every report in both languages into a folder (what `marginbot demo` shows)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Engine

from reports.errors import ReportError
from reports.figures import KINDS
from reports.service import ReportService
from storage import queries

REPORTS = ("summary", *(k for k in KINDS if k != "summary"))  # the daily summary first


def sample_stock(engine: Engine) -> str | None:
    """The stock with the largest financing balance on the latest day (for the stock report)."""
    day = queries.latest_data_date(engine)
    if day is None:
        return None
    frame = queries.stocks_on(engine, day)
    frame = frame[~frame["is_fund"].astype(bool)]
    return None if frame.empty else str(frame.sort_values("rzye", ascending=False)["code"].iloc[0])


def render_gallery(engine: Engine, out: Path, languages: tuple[str, ...] = ("zh", "en")) -> list[Path]:
    """Write <report>.<lang>.png, .txt (Telegram HTML) and .json for every report (and sector.<lang>.*
    for one sector alone); return the paths. `out` is made if missing; an OSError naming the folder or
    file says what could not be written (the command line turns it into one line)."""
    out.mkdir(parents=True, exist_ok=True)
    service = ReportService(engine)
    code = sample_stock(engine)
    # (file name, report, code): every report, and one sector alone (the largest N-day balance change)
    requests = [(kind, kind, code if kind == "stock" else None) for kind in REPORTS if kind != "stock" or code]
    with contextlib.suppress(ReportError):  # no per-stock detail: no sector to show alone
        requests.append(("sector", "sectors", service.render("sectors", chart=False).data["sectors"][0]["code"]))
    paths: list[Path] = []
    for name, kind, asked in requests:
        for lang in languages:
            report = service.render(kind, code=asked, lang=lang)
            # not Path.with_suffix: it would replace ".zh" / ".en", and the languages overwrite each other
            stem = f"{name}.{lang}"
            png = out / f"{stem}.png"
            png.write_bytes(report.png or b"")
            html = out / f"{stem}.html.txt"
            html.write_text(report.caption + ("\n\n" + report.details if report.details else "") + "\n", "utf-8")
            js = out / f"{stem}.json"
            js.write_text(report.json_text() + "\n", "utf-8")
            paths += [png, html, js]
    return paths
