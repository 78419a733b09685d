"""The command line, in process: `marginbot report ...`, `demo`, `ingest` and `status`, exit codes and messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from marginbot import cli
from marginbot.settings import get_settings
from storage.database import make_engine, upgrade
from tests.test_reports import LAST, demo_db_file, populate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENV_VARS = ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "DEFAULT_LANGUAGE", "LOG_LEVEL", "ADMIN_CHAT_IDS")


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "small.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    populate(eng)
    eng.dispose()
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment (no .env, no real settings) and the root logger restored afterwards."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file is read from the project folder
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def small_env(env: pytest.MonkeyPatch, small_db: Path) -> pytest.MonkeyPatch:
    env.setenv("DATABASE_URL", f"sqlite:///{small_db}")
    return env


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("marginbot: ")
    return lines[0]


def test_report_kinds_are_the_reports() -> None:
    from reports.figures import KINDS
    from storage.importer import KINDS as IMPORT_KINDS

    assert cli.REPORT_KINDS == KINDS
    assert cli.IMPORT_KINDS == IMPORT_KINDS


def test_import_warns_where_the_market_row_disagrees(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    path = tmp_path / "m.csv"
    path.write_text("date,exchange,rzye,rzmre,rzche,rqye,rqyl,rqmcl,rqmce,rzrqye\n"
                    "2024-04-11,SSE,800000000000,40000000000,,,,,,\n2024-04-11,SZSE,700000000000,35000000000,,,,,,\n"
                    "2024-04-11,ALL,1575000000000,75000000000,,,,,,\n", encoding="utf-8")
    code, out, err = run(capsys, "--quiet", "import", "margin", str(path))
    assert code == 0 and out == f"imported 3 margin rows from {path}\n"
    assert err == ("warning: cross-check 2024-04-11: rzye of the exchanges 1,500.00 bn vs market-wide (ALL) "
                   "1,575.00 bn (-4.76%)\n")


def test_report_ratio_json(small_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--quiet", "report", "ratio", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("report", "date", "scope", "demo", "ratio_pct", "numerator", "turnover", "rqmce_included",
                "percentile_3y", "series"):
        assert key in data
    assert data["report"] == "ratio"
    assert data["date"] == LAST.isoformat()
    assert data["scope"] == ["SSE", "SZSE", "BSE"]
    assert data["ratio_pct"] == pytest.approx(10.4)
    assert len(data["series"]) == 30


def test_commands_log_migrations_only_when_they_run(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """Without --quiet: `db upgrade` on a new file names each migration it runs; on a database at head
    no command repeats alembic's per-connection preamble ("Context impl ...")."""
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    code, out, err = run(capsys, "db", "upgrade")
    assert code == 0, err
    assert "Running upgrade  -> 0001" in err and "0001 -> 0002" in err
    assert "Context impl" not in err and "Will assume" not in err
    assert out == "database at revision 0011\n"
    code, out, err = run(capsys, "db", "upgrade")
    assert code == 0 and "Running upgrade" not in err and "Context impl" not in err, err
    assert out == "database at revision 0011 (nothing to do)\n"
    # an older revision than the database's: alembic does nothing, and the command says so
    code, out, err = run(capsys, "db", "upgrade", "0005")
    assert (code, out) == (2, "")
    assert "the database is at revision 0011, later than 0005: an upgrade never goes back" in err


def test_report_text_and_chart(small_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    chart = tmp_path / "ratio.png"
    code, out, err = run(capsys, "--quiet", "report", "ratio", "--lang", "en", "--days", "20",
                         "--chart", str(chart))
    assert code == 0, err
    png = chart.read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000
    assert "Margin share of turnover 10.40%" in out
    assert f"Data date {LAST.isoformat()}" in out
    assert "<b>" not in out and "&amp;" not in out  # plain text on the terminal
    code, out, err = run(capsys, "--quiet", "report", "stock", "600001", "--lang", "zh")
    assert code == 0, err
    assert "样本电子甲（600001）融资余额 25.00 亿元" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("report", "stock", "999999"), "999999"),
        (("report", "stock", "abc"), "abc"),
        (("report", "stock", "--lang", "en"), "code or name after the command, e.g. marginbot report stock 600519"),
        (("report", "stock", "--lang", "zh"), "请在命令后写证券代码或名称，例如 marginbot report stock 600519"),
        (("report", "balance", "--date", "2000-01-03"), "2000-01-03"),
        (("report", "sectors", "--days", "251"), "251"),
        (("report", "ratio", "--days", "99999"), "99999"),
        (("report", "ratio", "600001"), "ratio takes no code or name"),
        (("report", "top", "钢铁"), "钢铁"),  # not a stored sector
    ],
)
def test_report_errors_are_one_line(small_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    args: tuple[str, ...], needle: str) -> None:
    code, out, err = run(capsys, "--quiet", *args)
    assert code == 2
    assert out == ""
    line = assert_one_clear_line(err)
    assert needle in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("report", "balance", "--date", "2024-13-45"), "2024-13-45"),
        (("report", "balance", "--days", "0"), "at least 1"),
        (("report", "balance", "--days", "ten"), "ten"),
        (("report", "weekly"), "weekly"),
    ],
)
def test_bad_arguments_exit_2(small_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              args: tuple[str, ...], needle: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert needle in err.splitlines()[-1]  # argparse: usage, then the one line that says what is wrong


def test_empty_database_says_what_to_do(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _out, err = run(capsys, "--quiet", "report", "balance")
    assert code == 2
    assert "marginbot demo" in assert_one_clear_line(err)


def test_a_report_on_a_new_database_is_one_line_even_while_it_migrates(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Without --quiet, the schema a report creates on its way is not news: the answer is one line."""
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, _out, err = run(capsys, "report", "balance")
    assert code == 2 and "marginbot demo" in assert_one_clear_line(err)


@pytest.mark.parametrize(("url", "args", "needle"), [
    ("postgresql://someone:pw-SECRET@127.0.0.1:1/x", ("report", "balance"),
     "cannot use the database postgresql://someone:***@127.0.0.1:1/x: "),
    ("sqlite:////proc/no-such-folder/x.db", ("report", "ratio"), "cannot create the folder /proc/no-such-folder"),
    ("sqlite:///{tmp}/m.db", ("db", "upgrade", "nosuchrevision"),
     "cannot upgrade the schema to 'nosuchrevision': Can't locate revision"),
    ("sqlite:///{tmp}/m.db", ("ingest", "--start", "2026-11-20", "--end", "2026-11-01"),
     "--start 2026-11-20 is after --end 2026-11-01"),
])
def test_database_and_range_problems_are_one_line(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, url: str, args: tuple[str, ...],
                                                  needle: str) -> None:
    """An unreachable server (its password never shown), a folder that cannot be made, a revision
    that does not exist, a backwards range: one line each, exit 2, no traceback."""
    env.setenv("DATABASE_URL", url.format(tmp=tmp_path))
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    line = assert_one_clear_line(err)
    assert needle in line and "SECRET" not in line


BAD_PORT = "marginbot: DATABASE_URL is not a usable database address: its port (after host:) is not a number"
NOT_AN_ADDRESS = "marginbot: invalid settings:\n  DATABASE_URL: Value error, must start with sqlite:/// or postgresql://"
IN_MEMORY = ("marginbot: invalid settings:\n  DATABASE_URL: Value error, names no database file "
             "(sqlite:///var/marginbot.db is the default): an in-memory database keeps nothing")


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://u:pw-SECRET@h:notaport/db", BAD_PORT),
    ("postgresql://u:pw-SECRET@h:/db", BAD_PORT),
    # No "@host": sqlalchemy reads the password as the port, and its own message would repeat it.
    ("postgresql://someone:SECRET/db", BAD_PORT),
    ("nonsense", NOT_AN_ADDRESS),
    ("sqlite:", NOT_AN_ADDRESS),
    ("mysql://u:pw-SECRET@h/db", NOT_AN_ADDRESS),
    ("postgresql+nodriver://u:pw-SECRET@h/db", "marginbot: DATABASE_URL postgresql+nodriver://u:***@h/db is not a "
     "usable database address: Can't load plugin: sqlalchemy.dialects:postgresql.nodriver"),
    ("sqlite:///{tmp}/m.db?timeout=abc", "marginbot: DATABASE_URL sqlite:///{tmp}/m.db?timeout=abc is not a usable "
     "database address: could not convert string to float: 'abc'"),
    # refused by the driver as it connects (a ProgrammingError, not an OperationalError)
    ("postgresql://u:pw-SECRET@127.0.0.1:1/x?connect_timeout=abc", "marginbot: cannot use the database "
     "postgresql://u:***@127.0.0.1:1/x?connect_timeout=abc: bad value for connect_timeout: 'abc'"),
    ("sqlite:///{tmp}/a-file/m.db", "marginbot: cannot create the folder {tmp}/a-file for the SQLite file: "
     "a file is in the way"),
    # SQLite's in-memory database: an ingest into it would be lost at exit without a word
    *((url, IN_MEMORY) for url in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:")),
])
def test_a_malformed_database_url_is_one_clear_line(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, url: str, said: str) -> None:
    """A DATABASE_URL that does not parse, names no driver, carries a bad option or a folder that
    cannot be made: its own message, exit 2, no traceback, never the password."""
    (tmp_path / "a-file").write_text("not a folder")
    env.setenv("DATABASE_URL", url.format(tmp=tmp_path))
    code, out, err = run(capsys, "--quiet", "status")
    assert (code, out) == (2, "")
    assert err == said.format(tmp=tmp_path) + "\n"
    assert "SECRET" not in err and "pw-" not in err


def test_demo_out_that_cannot_be_a_folder_is_one_line_before_any_work(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`demo --out` naming a file, a path through a file, or a folder that cannot be made: one line,
    exit 2, and nothing seeded (the database is not even created)."""
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.db'}")
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder")
    for out_dir, said in ((a_file, f"cannot write the reports to {a_file}: it is a file, not a folder"),
                          (a_file / "sub", f"cannot write the reports to {a_file / 'sub'}: a file is in its path"),
                          (Path("/proc/x"), "cannot write the reports to /proc/x: No such file or directory")):
        code, out, err = run(capsys, "--quiet", "demo", "--out", str(out_dir))
        assert (code, out, err) == (2, "", f"marginbot: {said}\n")
    assert not (tmp_path / "demo.db").exists()


def test_demo_report_that_cannot_be_written_is_one_line(small_env: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A report file of the gallery that cannot be written (a folder of its name is in the way): one
    line naming it, exit 2."""
    import reports.charts

    small_env.setattr(reports.charts, "render_chart", lambda figures, lang: PNG_MAGIC)  # the real one: test_charts
    out_dir = tmp_path / "gallery"
    (out_dir / "summary.zh.png").mkdir(parents=True)
    code, out, err = run(capsys, "--quiet", "demo", "--out", str(out_dir))
    assert (code, out) == (2, "database already holds data; demo not seeded (use --force)\n")
    assert err == f"marginbot: cannot write the reports to {out_dir}: Is a directory ({out_dir / 'summary.zh.png'})\n"


@pytest.mark.parametrize("token", ["not-a-token-SECRET123", "123456:tooShortSECRET", "1234567:" + "A" * 29 + "!"])
def test_malformed_token_is_named_never_shown(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, token: str) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    env.setenv("TELEGRAM_BOT_TOKEN", token)
    code, out, err = run(capsys, "report", "balance")
    assert code == 2
    assert "TELEGRAM_BOT_TOKEN" in err
    assert token not in err and token not in out
    assert "SECRET" not in err and token.split(":")[-1] not in err
    assert "Traceback" not in err


def test_demo_seeds_an_empty_database_and_renders_everything(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config,
) -> None:
    """`marginbot demo --out DIR`: every report in both languages, each as PNG, HTML text and JSON.

    The real seed_demo takes ~20 s and is exercised once per session by the demo fixture; here it
    is replaced by a stand-in that copies that seeded data into the empty database (and checks it
    is called only because the database is empty), and charts by a recorder (test_charts checks
    the real PNGs), so that this test proves the command's wiring in a few seconds.
    """
    import reports.charts
    import storage.demo
    from storage.database import is_empty

    seeded = demo_db_file(tmp_path_factory, pytestconfig)
    calls: list[bool] = []

    def fake_seed(engine: Engine, force: bool = False, **_kw: object) -> bool:
        calls.append(force)
        if not force and not is_empty(engine):
            return False
        _copy_market_data(engine, seeded)
        return True

    charted: list[tuple[str, str]] = []

    def fake_chart(figures: object, lang: str) -> bytes:
        charted.append((figures.kind, lang))  # type: ignore[attr-defined]
        return PNG_MAGIC + figures.kind.encode()  # type: ignore[attr-defined]

    env.setattr(storage.demo, "seed_demo", fake_seed)
    env.setattr(reports.charts, "render_chart", fake_chart)
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    out_dir = tmp_path / "gallery"

    code, out, err = run(capsys, "--quiet", "demo", "--out", str(out_dir))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "demo data seeded"
    assert calls == [False]
    paths = [Path(line) for line in lines[1:]]
    kinds = ("summary", "balance", "ratio", "sectors", "signals", "stock", "top", "sector")  # and one sector alone
    expected = {out_dir / f"{k}.{lang}{suffix}" for k in kinds for lang in ("zh", "en")
                for suffix in (".png", ".html.txt", ".json")}
    assert set(paths) == expected
    assert sorted(charted) == sorted((k, lang) for k in kinds for lang in ("zh", "en"))
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
    for kind in kinds:
        assert (out_dir / f"{kind}.zh.png").read_bytes() == PNG_MAGIC + kind.encode()
        zh = json.loads((out_dir / f"{kind}.zh.json").read_text("utf-8"))
        en = json.loads((out_dir / f"{kind}.en.json").read_text("utf-8"))
        assert zh == en  # figures do not depend on the language
        assert zh["report"] == kind and zh["demo"] is True and zh["date"]
        assert "演示数据" in (out_dir / f"{kind}.zh.html.txt").read_text("utf-8")
        assert "DEMO DATA" in (out_dir / f"{kind}.en.html.txt").read_text("utf-8")


def _copy_market_data(engine: Engine, source: Path) -> None:
    """Copy every table of a seeded SQLite file into `engine`'s (same schema, empty tables); the
    triggers on margin_summary fill market_daily."""
    with engine.connect() as conn:
        conn.exec_driver_sql("ATTACH DATABASE ? AS seeded", (str(source),))
        tables = [r[0] for r in conn.execute(text(
            "SELECT name FROM seeded.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT IN ('alembic_version', 'market_daily')"))]
        for table in tables:
            conn.exec_driver_sql(f"INSERT INTO main.{table} SELECT * FROM seeded.{table}")
        conn.commit()
        conn.exec_driver_sql("DETACH DATABASE seeded")


def test_runs_with_the_shipped_env_example_as_dotenv(small_env: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The README's first step, `cp .env.example .env`, leaves every command working."""
    (tmp_path / ".env").write_text((Path(__file__).resolve().parents[1] / ".env.example").read_text("utf-8"), "utf-8")
    code, out, err = run(capsys, "--quiet", "report", "balance", "--json")
    assert code == 0, err
    assert json.loads(out)["date"] == LAST.isoformat()


def _ingest_result(*, failed: bool) -> Any:
    """A run over 2024-04-10 and -11: the first day complete, the second pending (SZSE's detail not
    published yet) or failed (SSE's summary timed out); one history step done."""
    from storage._steps import DONE, FAILED, PENDING, DayResult, IngestResult, StepOutcome

    second = (StepOutcome("sse_summary", FAILED, 0, "ReadTimeout") if failed
              else StepOutcome("szse_detail", PENDING, 0, "not published"))
    return IngestResult(
        days=[DayResult(date(2024, 4, 10), [StepOutcome("sse_summary", DONE, 1)], complete=True),
              DayResult(date(2024, 4, 11), [second])],
        history=[StepOutcome("index_sh000001", DONE, 3)])


@pytest.mark.parametrize(("failed", "status", "summary"), [
    (True, 1, "ingest 2024-04-10..2024-04-11: 1 days done, 0 pending, 1 failed; history 1 ok, 0 failed"),
    (False, 0, "ingest 2024-04-10..2024-04-11: 1 days done, 1 pending, 0 failed; history 1 ok, 0 failed"),
])
def test_ingest_prints_its_summary_and_fails_when_a_step_failed(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, failed: bool, status: int,
        summary: str) -> None:
    """`marginbot ingest` prints the run's one-line summary; its exit status is 1 when a step failed (a
    cron job notices), 0 when every day is done or only waits for publication."""
    import storage.ingest

    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ingest.db'}")
    calls: list[dict[str, Any]] = []

    def fake_run_ingest(engine: Engine, settings: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return _ingest_result(failed=failed)

    env.setattr(storage.ingest, "run_ingest", fake_run_ingest)
    code, out, err = run(capsys, "--quiet", "ingest", "--start", "2024-04-10", "--end", "2024-04-11")
    assert (code, out) == (status, summary + "\n"), err
    assert calls == [{"start": date(2024, 4, 10), "end": date(2024, 4, 11), "progress": False}]


def test_ingest_that_could_not_start_exits_1(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    import storage.ingest
    from storage._steps import IngestResult

    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ingest.db'}")
    env.setattr(storage.ingest, "run_ingest", lambda *a, **k: IngestResult(fatal="trade calendar unavailable"))
    code, out, err = run(capsys, "--quiet", "ingest")
    assert (code, out) == (1, "ingest failed: trade calendar unavailable\n"), err


def test_status_lists_what_is_stored(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    """`marginbot status --lang en` on the small database (30 trade days, 2024-01-02 .. 2024-02-12, one
    data version), the day before LAST ingested completely, LAST part way, and one private subscriber."""
    from storage import chats, models
    from storage.database import session_scope
    from tests.test_reports import DAYS

    path = tmp_path / "status.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    populate(engine)
    required = ("sse_summary", "szse_summary", "bse_summary", "sse_detail", "szse_detail", "bse_detail",
                "sector_daily")
    with session_scope(engine) as session:
        session.add_all([models.IngestStatus(trade_date=DAYS[28], source=s, status="done") for s in required])
        session.add_all([
            models.IngestStatus(trade_date=LAST, source="sse_summary", status="done"),
            models.IngestStatus(trade_date=LAST, source="szse_summary", status="done"),
            models.IngestStatus(trade_date=LAST, source="bse_detail", status="pending"),
            models.IngestStatus(trade_date=LAST, source="szse_detail", status="failed", message="ReadTimeout"),
        ])
    chats.ensure_chat(engine, 7, "private", "x", "en")
    chats.set_subscribed(engine, 7, True)
    engine.dispose()
    env.setenv("DATABASE_URL", f"sqlite:///{path}")
    code, out, err = run(capsys, "--quiet", "status", "--lang", "en")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Status"  # not the demo
    assert lines[1] == "Reports' default day 2024-02-12 · latest day fully ingested 2024-02-09 · data version 1"
    for name in ("margin summary", "per-stock detail", "sector figures", "turnover", "index closes"):
        assert f"{name}: 2024-01-02 to 2024-02-12" in lines
    recent = [lines.index("2024-02-12: 2 done; not yet published: Beijing detail; failed: Shenzhen detail "
                          "(ReadTimeout)"), lines.index("2024-02-09: 7 done")]
    assert recent[0] + 1 == recent[1]  # newest first
    assert "Subscriptions: private 1 · groups 0" in lines
    assert lines[-1] == "No push yet"


def test_a_push_worker_without_a_token_is_one_line(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """`run --push-only` sends for a bot: without a token there is none (the sandbox is `run`'s)."""
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'push.db'}")
    code, out, err = run(capsys, "--quiet", "run", "--push-only")
    assert code == 2 and out == ""
    assert assert_one_clear_line(err) == "marginbot: a push worker needs TELEGRAM_BOT_TOKEN (the bot it pushes for)"
