"""The seeded demo database for tests: seeded once per session, cached between runs.

Seeding takes ~20 s, so the file is kept in pytest's cache, keyed on a hash of everything the seed
depends on (storage code, migrations, numpy/pandas/Python versions). Tests copy it, never write it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.database import make_engine, upgrade

_ROOT = Path(__file__).resolve().parents[1]
_SOURCES = ("demo", "aggregate", "database", "models", "importer", "industries")
_SESSION: dict[str, Path] = {}


def _key() -> str:
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    sources = [_ROOT / "storage" / f"{name}.py" for name in _SOURCES]
    for path in [*sources, *sorted((_ROOT / "storage" / "migrations").rglob("*.py"))]:
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update(f"{np.__version__} {pd.__version__} {sys.version_info[:2]}".encode())
    return digest.hexdigest()[:20]


def _seed(path: Path) -> None:
    from storage.demo import seed_demo

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    assert seed_demo(engine) is True
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()


def demo_db_file(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> Path:
    """A seeded demo SQLite file (copy it; never write to it). Seeded at most once per session."""
    if "file" in _SESSION:
        return _SESSION["file"]
    cache = getattr(config, "cache", None)
    cached = Path(cache.mkdir("marginbot-demo-db")) / f"demo-{_key()}.db" if cache is not None else None
    target = tmp_path_factory.mktemp("demo") / "demo.db"
    if cached is not None and cached.exists():
        shutil.copyfile(cached, target)
    else:
        _seed(target)
        if cached is not None:
            for old in cached.parent.glob("demo-*.db"):
                old.unlink(missing_ok=True)
            partial = cached.with_suffix(f".{os.getpid()}.part")
            shutil.copyfile(target, partial)
            os.replace(partial, cached)
    _SESSION["file"] = target
    return target
