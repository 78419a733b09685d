"""Shared fixtures: a migrated empty database on SQLite and on PostgreSQL, and the realdata path."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from storage.database import make_engine, upgrade

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
PG_URL = os.environ.get("MARGINBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver/connection error means: skip with the reason
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"


_PG_SKIP = _pg_available()


class NetworkBlocked(RuntimeError):
    """A test tried to reach a host other than this machine."""


def _local(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths (PostgreSQL's socket) stay on the machine
        return True
    host = str(address[0])
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _guard_network() -> None:
    """No test may touch the network: any connection to a non-loopback address fails loudly (the
    recorded upstream payloads and the stand-in Bot API are all on loopback or patched in-process)."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        if not _local(address):
            raise NetworkBlocked(f"test tried to connect to {address!r}")
        connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _local(address):
            raise NetworkBlocked(f"test tried to connect to {address!r}")
        return connect_ex(self, address)  # type: ignore[arg-type]

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]


_guard_network()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A freshly migrated database; PostgreSQL runs in a private schema so parallel runs never collide."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
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
