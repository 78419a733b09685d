"""Jinja2 text for Telegram's HTML parse mode: autoescaped, one folder of templates per language."""

from __future__ import annotations

import html
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from reports import fmt
from reports.i18n import TEMPLATES_DIR, t

if TYPE_CHECKING:
    from storage.status import Status

CAPTION_LIMIT = 1024
FLAGS = ("⚠️", "💡")  # a caption's warnings and signals open with these
MESSAGE_LIMIT = 4096
_TAG = re.compile(r"<[^>]+>")


def visible_length(html_text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units of the text after tags and entities are decoded."""
    return len(html.unescape(_TAG.sub("", html_text)).encode("utf-16-le")) // 2


def to_plain(html_text: str) -> str:
    """Plain text for the terminal: tags removed, entities decoded."""
    return html.unescape(_TAG.sub("", html_text))


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader([str(TEMPLATES_DIR / lang), str(TEMPLATES_DIR)]),
        autoescape=True,  # Telegram HTML: user text and names must never become markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.do"],  # {% do rows.append(...) %} builds a table's rows
    )
    env.filters.update(
        money=lambda v, signed=False: fmt.money(v, lang, signed),
        smoney=lambda v, signed=False: fmt.security_money(v, lang, signed),
        amount=lambda v, signed=False: fmt.amount(v, lang, signed),
        table=fmt.table,
        hmoney=lambda v: fmt.headline_money(v, lang),
        pct=fmt.pct,
        spct=lambda v: fmt.pct(v, signed=True),
        pp=fmt.pp,
        num=fmt.number,
        arrow=lambda v: fmt.money_arrow(v, lang),
        sarrow=lambda v: fmt.security_arrow(v, lang),
        ordinal=fmt.ordinal,
        pctile=fmt.percentile_shown,
        iso=fmt.iso,
    )
    env.globals.update(
        t=lambda key, **kw: t(lang, key, **kw),
        lang=lang,
        pace=lambda d: fmt.pace(d["pace_class"], d["pace_direction"], lang),
        # the sectors' concentration trend (figures.sectors._concentration_trend); nothing when unknown
        concentration_words=lambda trend: t(lang, f"concentration.{trend}") if trend else "",
        unjudged=lambda items, day: _unjudged(items, day, lang),
        # the percentiles' look-back: "近三年" / "of 3 years", or "自 D 以来" / "since D" on a shorter history
        span=lambda since: t(lang, "span.since", date=since) if since else t(lang, "span.three_years"),
    )
    return env


def _unjudged(items: list[dict[str, str]], day: str, lang: str) -> str:
    """One line naming the signals not judged, grouped by why: "未判断：拥挤、去杠杆（上证指数缺 D 收盘）。";
    "" when every signal was judged."""
    if not items:
        return ""
    by_reason: dict[str, list[str]] = {}
    for item in items:
        by_reason.setdefault(item["reason"], []).append(t(lang, f"unjudged.{item['signal']}"))
    sep, open_, close, join = ("、", "（", "）", "；") if lang == "zh" else (", ", " (", ")", "; ")
    parts = [sep.join(names) + open_ + t(lang, f"unjudged.{reason}", date=day) + close
             for reason, names in by_reason.items()]
    return t(lang, "unjudged.line", items=join.join(parts))


def _squeeze(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line == "" and out and out[-1] == "":
            continue
        out.append(line)
    return "\n".join(out)


def render(kind: str, lang: str, data: dict[str, Any]) -> tuple[str, str]:
    """(caption, details) HTML of a report; details may be "" when the caption says it all."""
    template = environment(lang).get_template(f"{kind}.html.j2")
    context = template.new_context({"d": data})
    caption = _squeeze("".join(template.blocks["caption"](context)))
    details = _squeeze("".join(template.blocks["details"](context))) if "details" in template.blocks else ""
    return fit_telegram(caption, details)


def fit_telegram(caption: str, details: str) -> tuple[str, str]:
    """Caption and details within Telegram's limits (1,024 and 4,096 visible characters).

    A caption too long (many warnings, long names) gives its last lines above the footer, whole, to
    the top of the details, in their order. The headline, the footer and the 口径 notes (lines in
    <i>, which qualify a figure of the caption) stay while any other line can go, and the warnings
    and signals (lines opening with ⚠️ or 💡: what the read-out is for) while any plain line can; a
    note on a figure marked "*" goes with the line of that figure. Details too
    long lose their last lines to an ellipsis. Every template line opens and closes its own tags, so
    whole lines move and go without breaking the HTML.
    """
    lines = list(enumerate(caption.splitlines()))  # (line number, line): moved lines keep their order

    def too_long() -> bool:
        return visible_length("\n".join(line for _, line in lines)) > CAPTION_LIMIT

    moved: list[tuple[int, str]] = []
    for kept in (("<i>", *FLAGS), ("<i>",), ()):  # plain lines first, then the flagged, the notes last
        for position in range(len(lines) - 2, 0, -1):
            if not too_long():
                break
            if not lines[position][1].startswith(kept):
                moved.append(lines.pop(position))
    # A note on a figure marked "*" (a line ending in it) goes where that line went.
    if any(not line.startswith("<i>") and to_plain(line).rstrip().endswith("*") for _, line in moved):
        for position in range(len(lines) - 2, 0, -1):
            if lines[position][1].startswith("<i>*"):
                moved.append(lines.pop(position))
    caption = "\n".join(line for _, line in lines)
    if visible_length(caption) > CAPTION_LIMIT:
        raise ValueError(f"caption of {visible_length(caption)} characters even alone (limit {CAPTION_LIMIT})")
    if moved:
        in_order = [line for _, line in sorted(moved)]
        details = "\n".join(in_order + ([""] + [details] if details else [])).strip("\n")
    return caption, _fit_message(details)


def _fit_message(text: str) -> str:
    """`text` within one message (MESSAGE_LIMIT): whole lines dropped from the end (every tag opens
    and closes on its own line), and "…" in their place."""
    lines = text.splitlines()
    while visible_length("\n".join(lines)) > MESSAGE_LIMIT - 2:
        lines.pop()
    return "\n".join(lines) + ("\n…" if len(lines) < len(text.splitlines()) else "")


def render_status(lang: str, status: Status) -> str:
    """The operator's status (storage.status.Status) as Telegram HTML in `lang`, one message: lines
    past the 4,096-character limit (long failure messages on many days) give way to an ellipsis."""
    return _fit_message(_squeeze(environment(lang).get_template("status.html.j2").render(s=status)))


def render_watch(lang: str, stocks: list[dict[str, Any]], dated: bool = True) -> str:
    """The lines of the securities a chat follows (stock figures' data, or {code, date, missing}) as
    Telegram HTML in `lang`, under a header with their data date (`dated`) or without."""
    return _squeeze(environment(lang).get_template("watch.html.j2").render(d={"stocks": stocks, "dated": dated}))


def caption_with(caption: str, block: str) -> str | None:
    """`caption` with `block` below it when both fit in Telegram's 1,024 characters; None when they
    do not (the block then goes in a message of its own: no line of it is dropped)."""
    joined = caption + "\n\n" + block
    return joined if visible_length(joined) <= CAPTION_LIMIT else None
