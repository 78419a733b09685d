"""Settings from `.env` and the environment: the shipped `.env.example` loads as it is, list values
are read the way `.env.example` documents them, and every bad value is named on one line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import pytest

from marginbot.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No setting in the environment, and a working folder without a `.env`."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    yield monkeypatch


def test_the_shipped_env_example_loads_as_the_defaults(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copyfile(ROOT / ".env.example", tmp_path / ".env")
    settings = load_settings()
    assert settings.telegram_bot_token is None
    assert settings.admin_chat_ids == []
    assert settings.storage_chat_id is None
    assert settings.push_time == time(8, 50)
    assert settings.database_url == "sqlite:///var/marginbot.db"
    # Everything the example sets is the code's default: the example documents, it does not change.
    assert settings == Settings(_env_file=None)  # type: ignore[call-arg]


def test_every_setting_is_documented_in_the_example() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert documented == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize(("value", "expected"), [
    ("123", [123]),
    ("1,2", [1, 2]),
    ("1, 2 -1001234567890", [1, 2, -1001234567890]),
])
def test_admin_chat_ids_are_comma_or_space_separated(clean_env: pytest.MonkeyPatch, tmp_path: Path,
                                                     value: str, expected: list[int]) -> None:
    (tmp_path / ".env").write_text(f"ADMIN_CHAT_IDS={value}\n", encoding="utf-8")
    assert load_settings().admin_chat_ids == expected
    clean_env.setenv("ADMIN_CHAT_IDS", value)  # the environment reads the same way
    assert load_settings(_env_file=None).admin_chat_ids == expected


def test_every_bad_value_is_named_on_its_own_line(clean_env: pytest.MonkeyPatch) -> None:
    bad = {
        "ADMIN_CHAT_IDS": "12,abc",
        "PUSH_TIME": "25:00",
        "DATABASE_URL": "mysql://localhost/x",
        "SANDBOX_PORT": "0",
        "DEFAULT_LANGUAGE": "fr",
        "STORAGE_CHAT_ID": "channel",
        "LOG_LEVEL": "LOUD",
    }
    for name, value in bad.items():
        clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert sorted(line.split(":", 1)[0].strip() for line in lines[1:]) == sorted(bad)


def test_an_empty_value_means_the_default(clean_env: pytest.MonkeyPatch) -> None:
    for name in ("ADMIN_CHAT_IDS", "STORAGE_CHAT_ID", "PUSH_TIME", "TELEGRAM_BOT_TOKEN"):
        clean_env.setenv(name, "")
    settings = load_settings(_env_file=None)
    assert (settings.admin_chat_ids, settings.storage_chat_id, settings.push_time) == ([], None, time(8, 50))
    assert settings.telegram_bot_token is None
