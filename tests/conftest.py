"""Shared fixtures: a migrated empty database on SQLite and on PostgreSQL, and the realdata path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from storage.database import make_engine, upgrade
from tests.netguard import install as install_network_guard

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


install_network_guard()


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
