"""Errors a user can cause when asking for a report; each renders as one line in their language."""

from __future__ import annotations

from reports.i18n import t


class ReportError(Exception):
    """A report cannot be produced for a reason the user can fix (bad code, date, window)."""

    def __init__(self, kind: str, **params: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.params = params

    def message(self, lang: str) -> str:
        return t(lang, f"error.{self.kind}", **self.params)
