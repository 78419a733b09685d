"""The `marginbot` command line: db, ingest, import, demo, report, status, run, bench."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from marginbot.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:  # sqlalchemy is imported with the commands that need it (a quick --help)
    from sqlalchemy import Engine

log = logging.getLogger("marginbot")
USAGE_ERROR = 2
# reports.figures.KINDS, spelled out: importing the reports (pandas, matplotlib) would slow every command
REPORT_KINDS = ("balance", "ratio", "sectors", "signals", "summary", "stock", "top")
IMPORT_KINDS = ("margin", "turnover", "stocks", "industries", "index")  # storage.importer.KINDS


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UsageError(Exception):
    """A mistake the user can fix: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its usage block buried the reason), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parse_date(text: str) -> date:
    # date.fromisoformat also takes 20240930 and 2024-W40-1: only the documented form is a date here
    try:
        if not _DATE_RE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def configure_logging(level: str) -> None:
    from marginbot.logging_setup import setup_logging

    setup_logging(level)


def _engine(settings: Settings, upgrade: bool = True) -> Engine:
    from storage.database import make_engine
    from storage.database import upgrade as upgrade_schema

    engine = make_engine(settings.database_url)
    if upgrade:
        # Quietly: a report's output is the report (and one line when it fails), not alembic's steps.
        alembic_log = logging.getLogger("alembic")
        level = alembic_log.level
        alembic_log.setLevel(logging.WARNING)
        try:
            upgrade_schema(engine)
        finally:
            alembic_log.setLevel(level)
    return engine


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from storage.database import make_engine, schema_revision, upgrade

    engine = make_engine(settings.database_url)
    before = schema_revision(engine)
    upgrade(engine, args.revision)
    after = schema_revision(engine)
    if args.revision != "head" and before is not None and after != args.revision:
        # alembic's upgrade to an older revision does nothing: say so, not "at revision X"
        raise UsageError(f"the database is at revision {after}, later than {args.revision}: "
                         "an upgrade never goes back")
    print(f"database at revision {after}" + ("" if before != after else " (nothing to do)"))
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from storage.ingest import run_ingest

    if args.start and args.end and args.start > args.end:
        raise UsageError(f"--start {args.start} is after --end {args.end}")
    engine = _engine(settings)
    result = run_ingest(engine, settings, start=args.start, end=args.end, progress=not args.quiet)
    print(result.summary())
    return 0 if result.ok else 1


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from storage.importer import CsvImportError, import_file

    engine = _engine(settings)
    try:
        count, warnings = import_file(engine, args.kind, Path(args.file))
    except CsvImportError as exc:
        raise UsageError(str(exc)) from None
    print(f"imported {count} {args.kind} rows from {args.file}")
    for line in warnings:  # imported all the same: a disagreement is worth a look, not a refusal
        print(f"warning: {line}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from reports.gallery import render_gallery
    from storage.demo import seed_demo

    out = Path(args.out)
    # Made before seeding (about 20 s): a folder that cannot be made is told at once, as --chart is.
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write the reports to {args.out}: {_why_not(exc)}") from None
    engine = _engine(settings)
    seeded = seed_demo(engine, force=args.force)
    print("demo data seeded" if seeded else "database already holds data; demo not seeded (use --force)")
    try:
        paths = render_gallery(engine, out)
    except OSError as exc:
        if exc.filename is None or Path(str(exc.filename)).parent != out:  # not a gallery file: not the user's to fix
            raise
        raise UsageError(f"cannot write the reports to {args.out}: {_why_not(exc)} ({exc.filename})") from None
    for path in paths:
        print(path)
    return 0


def _why_not(exc: OSError) -> str:
    """Why a folder or file cannot be written, in words ("File exists" said too little)."""
    if isinstance(exc, FileExistsError):
        return "it is a file, not a folder"
    if isinstance(exc, NotADirectoryError):
        return "a file is in its path"
    return str(exc.strerror or exc)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from reports.errors import ReportError
    from reports.i18n import t
    from reports.service import ReportService

    if args.code is not None and args.kind not in ("stock", "top", "sectors"):
        raise UsageError(f"{args.kind} takes no code or name (only stock, top and sectors do): {args.code!r}")
    if args.kind == "stock" and not args.code:
        # the chat's answer, with the command line's own example
        raise UsageError(t(args.lang, "bot.need_code").replace("/stock", "marginbot report stock"))
    chart = Path(args.chart) if args.chart else None
    if chart is not None and (chart.is_dir() or not chart.parent.is_dir()):
        raise UsageError(f"cannot write the chart to {args.chart}: "
                         + ("it is a folder" if chart.is_dir() else f"no folder {chart.parent}"))
    engine = _engine(settings)
    service = ReportService(engine)
    try:
        result = service.render(
            args.kind, code=args.code, on=args.date, days=args.days, lang=args.lang, chart=bool(args.chart)
        )
    except ReportError as exc:
        message = exc.message(args.lang)
        if exc.kind == "no_data":  # the chat's answer, with what the operator can do about it
            message += " " + t(args.lang, "error.no_data_hint")
        raise UsageError(message) from None
    if chart is not None:
        try:
            chart.write_bytes(result.png or b"")
        except OSError as exc:
            raise UsageError(f"cannot write the chart to {args.chart}: {exc.strerror or exc}") from None
    if args.json:
        print(result.json_text())
    else:
        print(result.text_plain())
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from reports.text import render_status, to_plain
    from storage.status import read_status

    print(to_plain(render_status(args.lang, read_status(_engine(settings), days=args.days))))
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from marginbot.runner import run

    if args.push_only and settings.telegram_bot_token is None:
        raise UsageError("a push worker needs TELEGRAM_BOT_TOKEN (the bot it pushes for)")
    return run(settings, push_only=args.push_only)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "reports":
        from bench.reports import main as bench_reports

        return bench_reports(args)
    from bench.push import main as bench_push

    return bench_push(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="marginbot", description="两融雷达: margin-trading reports")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("ingest", help="fetch margin data from the exchanges (akshare)")
    p.add_argument("--start", type=_parse_date, help="first trade date to backfill (YYYY-MM-DD)")
    p.add_argument("--end", type=_parse_date, help="last trade date (default: latest published)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("import", help="import CSV history (see README)")
    p.add_argument("kind", choices=IMPORT_KINDS)
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("demo", help="seed demo data (if empty) and render every report")
    p.add_argument("--out", default="out/demo", help="folder for the rendered reports")
    p.add_argument("--force", action="store_true", help="replace stored data with demo data")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="print a report as text or JSON, optionally with its chart")
    p.add_argument("kind", choices=REPORT_KINDS)
    p.add_argument("code", nargs="?", help="for `stock`: a code (600519, 600519.SH) or a name or part of one; "
                   "for `top`: a sector (电子, Banks) to rank its stocks only; for `sectors`: one sector")
    p.add_argument("--date", type=_parse_date, help="trade date (default: the latest day with data)")
    p.add_argument("--days", type=_positive_int, default=None, help="window in trade days")
    p.add_argument("--lang", choices=["zh", "en"], default=None)
    p.add_argument("--chart", metavar="PATH", help="write the chart PNG here")
    p.add_argument("--json", action="store_true", help="print machine-readable figures")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="what data is stored, recent ingestion, subscriptions and pushes")
    p.add_argument("--days", type=_positive_int, default=5, help="recent trade dates of ingestion to list")
    p.add_argument("--lang", choices=["zh", "en"], default=None)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("run", help="run the bot (without a token: local chat page on loopback)")
    p.add_argument("--push-only", action="store_true",
                   help="a worker that only sends the daily push, beside the bot on the same PostgreSQL database")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    p.add_argument("what", choices=["reports", "push"])
    p.add_argument("--small", action="store_true", help="a quick, smaller run")
    p.add_argument("--chats", type=_positive_int, help="push: subscribed chats (default 10000)")
    p.add_argument("--rate", type=float, help="push: messages per second (default PUSH_RATE)")
    p.add_argument("--profile", action="store_true", help="reports: also print a cProfile of each report")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse (_Parser) already printed one line and exits 2 on errors
        return int(exc.code or 0)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"marginbot: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if getattr(args, "lang", "x") is None:
        args.lang = settings.default_language
    configure_logging("WARNING" if args.quiet else settings.log_level)
    try:
        return int(args.func(args, settings))
    except UsageError as exc:
        print(f"marginbot: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("marginbot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`marginbot report ratio | head -3`): say nothing more, and keep the
        # interpreter's final flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        problem = _database_problem(exc, settings.database_url)
        if problem is None:
            raise
        print(f"marginbot: {problem}", file=sys.stderr)
        return USAGE_ERROR


def _database_problem(exc: Exception, url: str) -> str | None:
    """One line for an error of the configured database (None for any other error), its password as
    ***. Imported here: sqlalchemy is loaded by the commands that use it, not by `marginbot --help`."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from storage.database import DatabaseUnavailable, hide_password, shown_url

    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    # An OperationalError is the database's (unreachable, locked, full); any other driver error
    # without a statement was raised while connecting: an option of the address the driver refused
    # (PostgreSQL's ?connect_timeout=abc is a ProgrammingError).
    if not isinstance(exc, OperationalError) and not (isinstance(exc, DBAPIError) and exc.statement is None):
        return None
    reason = (str(exc.orig or exc).strip().splitlines() or ["unknown error"])[0]
    return f"cannot use the database {shown_url(url)}: {hide_password(reason, url)}"


if __name__ == "__main__":
    sys.exit(main())
