"""Shared fixtures: a migrated empty database on SQLite and on PostgreSQL, and the realdata path."""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from storage.database import make_engine, upgrade
from tests.netguard import install as install_network_guard

install_network_guard()  # first, before anything in this file or a test module can open a connection

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
PG_URL = os.environ.get("MARGINBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _local_pg_host(host: str | None) -> bool:
    """True for a PostgreSQL host on this machine: none or a socket directory, localhost, a loopback address."""
    if not host or host.startswith("/"):
        return True
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def pg_url_off_machine(url: str) -> str | None:
    """The reason not to use `url` when it names a host off this machine (libpq connects from C code,
    which the network guard does not see), else None."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL is a skip with the reason
        return f"MARGINBOT_TEST_PG is not a database URL ({type(exc).__name__})"
    hosts: list[str | None] = [parsed.host]
    if not parsed.host and not ({"host", "hostaddr"} & set(parsed.query)):  # libpq reads its environment
        hosts += [os.environ.get("PGHOST"), os.environ.get("PGHOSTADDR")]
    for key in ("host", "hostaddr"):  # libpq's own parameters, comma-separated lists allowed
        values = parsed.query.get(key) or ()
        for value in [values] if isinstance(values, str) else values:
            hosts += value.split(",")
    hosts = [h for value in hosts for h in (value or "").split(",")]
    remote = [h for h in hosts if not _local_pg_host(h)]
    if remote:
        return f"MARGINBOT_TEST_PG names a host off this machine ({', '.join(remote)}): tests use loopback only"
    return None


def _pg_available(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else the reason to skip."""
    reason = pg_url_off_machine(url)
    if reason:
        return reason
    safe = make_url(url).render_as_string(hide_password=True)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver/connection error means: skip with the reason
        return f"PostgreSQL not reachable at {safe}: {type(exc).__name__}"


@pytest.fixture(scope="session")
def pg_skip_reason() -> str | None:
    """Probed once, and only when a test asks for PostgreSQL (so `-m "not postgres"` never probes)."""
    return _pg_available(PG_URL)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A freshly migrated database; PostgreSQL runs in a private schema so parallel runs never collide."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    reason = request.getfixturevalue("pg_skip_reason")
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    eng = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"realdata not found at {REALDATA}")
    return REALDATA
