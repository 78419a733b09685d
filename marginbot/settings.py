"""Typed settings from the environment or `.env`, validated once at start."""

from __future__ import annotations

import re
from datetime import time
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

TIMEZONE = ZoneInfo("Asia/Shanghai")
DEFAULT_DATABASE_URL = "sqlite:///var/marginbot.db"


class Settings(BaseSettings):
    """Every setting of the product; `.env.example` documents each one."""

    # An empty value (`ADMIN_CHAT_IDS=` as in .env.example) means "not set", i.e. the default.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    telegram_bot_token: SecretStr | None = Field(default=None)
    telegram_base_url: str = "https://api.telegram.org/bot"
    database_url: str = DEFAULT_DATABASE_URL
    # NoDecode: the value is "1, 2" (commas), not JSON; _split_ids reads it.
    admin_chat_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    push_time: time = time(8, 50)
    ingest_start_time: time = time(8, 45)
    ingest_cutoff_time: time = time(10, 30)
    ingest_retry_minutes: int = Field(default=10, ge=1, le=120)
    default_language: str = "zh"
    sandbox_port: int = Field(default=8765, ge=1, le=65535)
    sandbox_open_browser: bool = True
    upstream_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    upstream_deadline_seconds: float = Field(default=180.0, gt=0, le=3600)
    upstream_retries: int = Field(default=3, ge=0, le=10)
    commands_per_minute: int = Field(default=12, ge=1, le=1000)
    render_workers: int = Field(default=2, ge=1, le=32)
    push_rate: float = Field(default=30.0, gt=0, le=1000)
    storage_chat_id: int | None = None
    log_level: str = "INFO"

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        if value in (None, ""):
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if not re.fullmatch(r"\d{5,12}:[A-Za-z0-9_-]{30,}", text.strip()):
            # The message never repeats the value: it is a secret even when malformed.
            raise ValueError("does not look like a bot token (digits:secret from @BotFather)")
        return text.strip()

    @field_validator("admin_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            try:
                return [int(p) for p in parts]
            except ValueError as exc:
                raise ValueError("must be chat ids (integers) separated by commas") from exc
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("default_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in ("zh", "en"):
            raise ValueError("must be zh or en")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if re.fullmatch(r"sqlite(\+\w+)?://(/(:memory:)?)?(\?.*)?", value):
            # SQLite's in-memory database: everything stored would be lost when the process ends
            raise ValueError("names no database file (sqlite:///var/marginbot.db is the default): "
                             "an in-memory database keeps nothing")
        return value


class SettingsError(Exception):
    """Raised with one readable line per bad setting."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise SettingsError listing every bad value by its variable name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "SETTINGS"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except SourceError as exc:
        # pydantic-settings could not read a value at all (its message names the variable).
        raise SettingsError(f"invalid settings:\n  {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
