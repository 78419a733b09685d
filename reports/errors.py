"""Errors a user can cause when asking for a report; each renders as one line in their language."""

from __future__ import annotations

import re
from datetime import date

from reports.i18n import t


def not_enough_history(day: date, days: int, longest: int) -> ReportError:
    """A window of `days` trade days reaching past the first stored date: the data allow `longest`
    (0: `day` is the first date, nothing before it to compare with)."""
    if longest < 1:
        return ReportError("first_day_only", date=day.isoformat(), days=days)
    return ReportError("not_enough_history", date=day.isoformat(), days=days, longest=longest)


class ReportError(Exception):
    """A report cannot be produced for a reason the user can fix (bad code, date, window)."""

    def __init__(self, kind: str, **params: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.params = params

    def param(self, name: str, lang: str) -> object:
        """A parameter as `lang` shows it: one given per language ({"zh": 电子, "en": Electronics})
        is that language's."""
        value = self.params.get(name)
        return value.get(lang, value.get("zh")) if isinstance(value, dict) else value

    def params_for(self, lang: str) -> dict[str, object]:
        """Every parameter as `lang` shows it (param()), a list joined the language's way (、 or , )."""
        joiner = t(lang, "scope.joiner")
        params = {k: self.param(k, lang) for k in self.params}
        return {k: joiner.join(v) if isinstance(v, list) else v for k, v in params.items()}

    def message(self, lang: str) -> str:
        """The one line in `lang`."""
        return end_cut_list(t(lang, f"error.{self.kind}", **self.params_for(lang)))


# A list cut with its "…" item ("A、B、…") where the sentence then ends: the ellipsis ends it, a full
# stop after it would only double it ("…。请改用", "…. Write").
_CUT_LIST_STOP = re.compile(r"…[.。]")


def end_cut_list(text: str) -> str:
    """`text` without a full stop right after an ellipsis."""
    return _CUT_LIST_STOP.sub("…", text)
