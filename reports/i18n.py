"""Per-language user-facing strings, read from templates/<lang>/strings.toml."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
LANGUAGES = ("zh", "en")


@cache
def strings(lang: str) -> dict[str, Any]:
    """All strings of one language (nested tables as in the TOML file)."""
    if lang not in LANGUAGES:
        lang = "zh"
    with (TEMPLATES_DIR / lang / "strings.toml").open("rb") as fh:
        return tomllib.load(fh)


def t(lang: str, key: str, **params: object) -> str:
    """Look up "section.name" and format it with params; a missing key raises KeyError (caught by tests)."""
    node: Any = strings(lang)
    for part in key.split("."):
        node = node[part]
    return str(node).format(**params) if params else str(node)


def pick_language(telegram_code: str | None, default: str = "zh") -> str:
    """zh for zh-*, en for anything else Telegram reports; `default` when unknown."""
    if not telegram_code:
        return default
    return "zh" if telegram_code.lower().startswith("zh") else "en"
