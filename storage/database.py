"""Engine, sessions, schema upgrades (alembic) and the dialect-aware upsert every writer uses."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Integer, String, cast, create_engine, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from storage import models

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Rows per executemany batch: bounds memory; SQLAlchemy splits further for parameter limits.
UPSERT_CHUNK = 5000
SQLITE_BUSY_MS = 10_000  # a writer waits this long for another one's transaction

_KEYS: dict[type[SQLModel], tuple[str, ...]] = {
    models.MarginSummary: ("trade_date", "exchange"),
    models.StockMargin: ("trade_date", "code"),
    models.Turnover: ("trade_date", "exchange"),
    models.IndexDaily: ("symbol", "trade_date"),
    models.IndustryClass: ("code", "start_date"),
    models.IndustryName: ("sw_l1_code",),
    models.SectorDaily: ("trade_date", "sw_l1_code"),
    models.StockSpikeDaily: ("trade_date", "code"),
    models.TradingDay: ("trade_date",),
    models.IngestStatus: ("trade_date", "source"),
    models.DatasetMeta: ("key",),
    models.ChartUpload: ("cache_key",),
    models.IndexMember: ("symbol", "as_of", "code"),
}


class DatabaseUnavailable(Exception):
    """The database cannot be opened or brought to the schema asked for (its message says why)."""


def shown_url(url: str) -> str:
    """The database address as it may be printed or logged: its password as ***. An address that
    does not parse is shown as "DATABASE_URL" only, since any part of it may be the password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "DATABASE_URL"


def hide_password(text: str, url: str) -> str:
    """`text` (a driver's error message) with the password of `url` replaced by ***, should the
    driver have repeated it."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return text
    return text.replace(str(password), "***") if password else text


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite files get their folder, WAL and foreign keys.

    Raises DatabaseUnavailable, with a message that never holds the password, for an address that
    does not parse, names no installed driver, carries a bad option, or whose SQLite folder cannot
    be made.
    """
    try:
        make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable("DATABASE_URL is not a database address "
                                  "(dialect://user:password@host:port/database)") from None
    except ValueError:
        # sqlalchemy reads the port as a number; its message repeats the text after "host:", which
        # is the password in an address missing its "@host" (postgresql://user:password/db).
        raise DatabaseUnavailable("DATABASE_URL is not a usable database address: "
                                  "its port (after host:) is not a number") from None
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            in_the_way = isinstance(exc, (FileExistsError, NotADirectoryError))  # "File exists" said too little
            raise DatabaseUnavailable(f"cannot create the folder {folder} for the SQLite file: "
                                      + ("a file is in the way" if in_the_way else f"{exc.strerror or exc}")) from None
    # postgresql:// means psycopg 3 here (sqlalchemy's default would be psycopg2, not installed)
    driver_url = "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url
    try:
        engine = create_engine(driver_url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError, TypeError) as exc:
        # ValueError, TypeError: an option of the address that is not of its type (?timeout=abc)
        raise DatabaseUnavailable(f"DATABASE_URL {shown_url(url)} is not a usable database address: "
                                  f"{hide_password(str(exc), url)}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.close()

    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with alembic (the only way the schema is created)."""
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            _one_upgrade_at_a_time(conn)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except CommandError as exc:  # e.g. a revision that does not exist
        raise DatabaseUnavailable(f"cannot upgrade the schema to {revision!r}: {exc}") from None


def schema_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at (None: never upgraded)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


UPGRADE_LOCK = 0x6D617267696E  # PostgreSQL advisory lock key of schema upgrades ("margin")
UPGRADE_WAIT_MS = 600_000  # how long a SQLite upgrade waits for another one to end


def _one_upgrade_at_a_time(conn: Connection) -> None:
    """Two processes starting at once (the bot and a push worker) upgrade one after the other: the
    second then reads the revision the first reached and has nothing left to do. On SQLite the whole
    upgrade is also one transaction: pysqlite runs DDL outside any by itself, so a failed or
    interrupted step would leave its half (a batch copy's temporary table) behind."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA busy_timeout={UPGRADE_WAIT_MS}")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upsert(session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]] | Iterable[dict[str, Any]]) -> int:
    """Insert rows, updating the non-key columns of rows whose natural key exists. Returns the row count.

    One statement executed for many rows (SQLAlchemy batches them), which is far cheaper than a
    statement per chunk with inlined values. All rows must have the same columns.
    """
    rows = list(rows)
    if not rows:
        return 0
    keys = _KEYS[model]
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = list(rows[0].keys())
    stmt = insert(table)
    update_cols = {c: stmt.excluded[c] for c in columns if c not in keys and c != "id"}
    if update_cols:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=update_cols)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    for start in range(0, len(rows), UPSERT_CHUNK):
        session.execute(stmt, rows[start : start + UPSERT_CHUNK])
    return len(rows)


def get_meta(session: Session, key: str, default: str | None = None) -> str | None:
    row = session.get(models.DatasetMeta, key)
    return row.value if row else default


def set_meta(session: Session, key: str, value: str) -> None:
    upsert(session, models.DatasetMeta, [{"key": key, "value": value}])


def bump_data_version(session: Session) -> int:
    """Increase `data_version`; report caches are keyed on it, so every data write must call this.

    One statement that reads and writes the row (insert, or add one to the stored value): two
    writers committing at once on PostgreSQL get two versions, never the same one twice.
    """
    session.flush()  # writes the session holds go first, as they would with any statement
    table = models.DatasetMeta.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(key="data_version", value="1")
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"], set_={"value": cast(cast(table.c.value, Integer) + 1, String)}
    ).returning(table.c.value)
    version = int(session.execute(stmt).scalar_one())
    for loaded in list(session.identity_map.values()):  # a copy this session loaded earlier is stale now
        if isinstance(loaded, models.DatasetMeta) and loaded.key == "data_version":
            session.expire(loaded)
    return version


def data_version(engine: Engine) -> int:
    with Session(engine) as session:
        return int(get_meta(session, "data_version", "0") or 0)


def is_demo(engine: Engine) -> bool:
    with Session(engine) as session:
        return get_meta(session, "demo", "false") == "true"


def is_empty(engine: Engine) -> bool:
    """True when no margin summary is stored yet."""
    with Session(engine) as session:
        return session.execute(select(models.MarginSummary.id).limit(1)).first() is None

