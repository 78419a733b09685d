"""Reports on demand: figures -> text + chart + JSON, cached by (report, arguments, language, data version).

The data version is bumped by every write to the stored data, so a new trading day invalidates
every cached report without any explicit purge. Thread-safe: the bot renders in worker threads.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine

from reports import charts, securities, text
from reports.errors import ReportError
from reports.figures import CODE_RE, SECTOR_KINDS, Figures, build, resolve_date
from reports.figures.stocks import watch_figures
from storage.database import data_version

CACHE_SIZE = 256
# Watch-list lines remembered: every security with margin detail (~4,500) on two days, in a few MB.
WATCH_CACHE_SIZE = 10_000


def freeze_long_lived() -> None:
    """Move every object alive now out of the cyclic garbage collector's view (gc.freeze).

    Call once after start-up and a first round of renders: modules, fonts and the matplotlib and
    pandas internals (~160,000 objects) are then no longer walked by every full collection, which
    otherwise lands in the middle of a render now and then and adds ~80 ms to it.
    """
    gc.collect()
    gc.freeze()


@dataclass
class RenderedReport:
    """One report in one language: HTML caption (<= 1024 visible chars), optional details, PNG, JSON data."""

    kind: str
    lang: str
    data: dict[str, Any]
    caption: str
    details: str
    png: bytes | None = None
    chart_key: str = ""
    on: date | None = None  # the date asked for; None: the latest day with data

    def json_text(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=2)

    def text_plain(self) -> str:
        parts = [text.to_plain(self.caption)]
        if self.details:
            parts.append(text.to_plain(self.details))
        return "\n\n".join(parts)


class _CollectorPause:
    """The cyclic garbage collector paused while any render runs, and its youngest generation
    collected as each render ends.

    A render builds a matplotlib figure of ~6,500 objects in reference cycles. Collections during
    the render walk them again and again and promote them to the oldest generation, where, dead,
    they wait for a full collection that then lands in some later render (+10 ms in one render of
    five). Collected young, right after the render, they cost ~1.5 ms, every time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._resume:
                gc.enable()
        gc.collect(0)  # also while other renders run: what they still use is reachable and stays


_collector_paused = _CollectorPause()


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], count_miss: bool = True) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                self.hits += 1
                return self.items[key]
            if count_miss:
                self.misses += 1
            return None

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class ReportService:
    """Builds and caches reports over one database."""

    def __init__(self, engine: Engine, cache_size: int = CACHE_SIZE) -> None:
        self.engine = engine
        self._figures = _LRU(cache_size)
        self._rendered = _LRU(cache_size)
        self._names = _LRU(cache_size)  # names and codes as typed -> the code they stand for
        self._watch = _LRU(WATCH_CACHE_SIZE)  # (code, day, version) -> its watch-list line figures
        # One lock per key being rendered, so that concurrent identical requests render once; with the
        # number of requests holding or waiting for it, so that the last one out removes it.
        self._key_locks: dict[tuple[Any, ...], list[Any]] = {}
        self._locks_guard = threading.Lock()

    @contextmanager
    def _rendering(self, key: tuple[Any, ...]) -> Iterator[None]:
        """Hold the key's lock: one render (or figures build) of a key at a time. The table holds only
        keys in use."""
        with self._locks_guard:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[key]

    def data_day_on_or_before(self, on: date) -> date:
        """The latest day with data on or before `on` (the report date a word such as 昨天 means: a
        weekend's or an unpublished day's answer is the day before with data); `on` itself where
        there is none, for the report to say why."""
        try:
            return resolve_date(self.engine, on)
        except ReportError as exc:
            nearest = exc.params.get("nearest") or exc.params.get("latest")
            return date.fromisoformat(str(nearest)) if nearest else on

    def figures(self, kind: str, *, code: str | None, on: date | None, days: int | None, version: int) -> Figures:
        key = (kind, code, on, days, version)
        found = self._figures.get(key, count_miss=False)
        if found is not None:
            return found
        # one build of a key at a time: the zh and en renders of a report, or the summary and the
        # signals it holds, asked at once, build the figures they share once (the reports a build
        # asks for never ask for it back: the locks cannot wait on each other in a circle)
        with self._rendering(("figures", *key)):
            found = self._figures.get(key)
            if found is None:
                def sub(sub_kind: str, day: date, sub_days: int) -> Figures:
                    return self.figures(sub_kind, code=None, on=day, days=sub_days, version=version)

                found = build(self.engine, kind, on, days, code, sub)
                self._figures.put(key, found)
        return found

    def render(
        self,
        kind: str,
        *,
        code: str | None = None,
        on: date | None = None,
        days: int | None = None,
        lang: str = "zh",
        chart: bool = True,
    ) -> RenderedReport:
        """A report, from the cache when the same request was rendered for the current data version.

        Raises reports.errors.ReportError for bad codes, dates or windows.
        """
        key = self._key(kind, code, on, days, lang, chart)
        kind, code, on, days, lang, chart, version = key
        # the first look does not count a miss: the look under the lock counts it (one per request)
        found = self._rendered.get(key, count_miss=False)
        if found is not None:
            return found
        with self._rendering(key), _collector_paused:
            found = self._rendered.get(key)
            if found is not None:
                return found
            figs = self.figures(kind, code=code, on=on, days=days, version=version)
            caption, details = text.render(figs.kind, lang, figs.data)  # /sectors 电子 is the "sector" text
            png = charts.render_chart(figs, lang) if chart else None
            data = figs.data
            chart_key = f"{kind}:{data.get('code', '')}:{data['date']}:{data.get('days', '')}:{lang}:v{version}"
            report = RenderedReport(kind, lang, figs.data, caption, details, png, chart_key, on=on)
            self._rendered.put(key, report)
            return report

    def is_cached(self, kind: str, *, code: str | None = None, on: date | None = None, days: int | None = None,
                  lang: str = "zh", chart: bool = True) -> bool:
        """Whether render() with these arguments would answer from the cache (no figures, no chart to
        make). A name that does not resolve counts as cached: its answer is a quick error line."""
        try:
            key = self._key(kind, code, on, days, lang, chart)
        except ReportError:
            return True
        return self._rendered.get(key, count_miss=False) is not None

    def _key(self, kind: str, code: str | None, on: date | None, days: int | None, lang: str,
             chart: bool) -> tuple[Any, ...]:
        """The rendered-report cache's key: the request, its name resolved to a code (a security or a
        sector, as typed), and the data version. ReportError for a name that resolves to nothing."""
        version = data_version(self.engine)
        if code is not None and (kind in SECTOR_KINDS or (kind == "stock" and not CODE_RE.match(code))):
            code = self._resolved(kind, code, on, version)
        return (kind, code, on, days, lang, chart, version)

    def _resolved(self, kind: str, text: str, on: date | None, version: int) -> str:
        """The code a name stands for, remembered per data version like the reports: a security
        (600519.SH, 贵州茅台, 茅台 -> 600519) or a sector (电子, Electronics, 801080 -> 270000)."""
        key = ("resolve", kind == "stock", text, on, version)
        found = self._names.get(key)
        if found is None:
            found = (securities.resolve(self.engine, text, on) if kind == "stock"
                     else securities.sector_code(self.engine, text))
            self._names.put(key, found)
        return str(found)

    def watch_text(self, codes: list[str] | tuple[str, ...], *, on: date | None, lang: str,
                   dated: bool = True) -> str:
        """The lines of the securities a chat follows (its /watch list) for day `on` (None: the latest),
        as Telegram HTML: each from the stock report's cached figures; a security without detail that
        day says so, with the day (the list's header names it, as every report does; not `dated`:
        under the daily summary's caption, which names it already)."""
        try:
            day: date | None = resolve_date(self.engine, on)
        except ReportError:  # no data at all: every line says it has none
            day = None
        found = self.watch_lines(codes, day) if day else {}
        # a code without detail that day: suspended, or no longer a margin security
        stocks = [found.get(code) or {"code": code, "date": day.isoformat() if day else None, "missing": True}
                  for code in codes]
        return text.render_watch(lang, stocks, dated=dated)

    def watch_lines(self, codes: Iterable[str], day: date) -> dict[str, dict[str, Any]]:
        """The watch-list line figures (figures.watch_figures) of `codes` on `day`, those not yet known
        for the current data version read in one batch: a push whose chats follow thousands of
        securities reads each once, not once per chat (the figure cache would churn). Codes without
        detail that day are absent."""
        version = data_version(self.engine)
        wanted = list(dict.fromkeys(codes))
        known = {code: self._watch.get((code, day, version), count_miss=False) for code in wanted}
        missing = [code for code, line in known.items() if line is None]
        if missing:
            read = watch_figures(self.engine, day, missing)
            for code in missing:  # no detail: remembered as such ({}), not read again
                known[code] = read.get(code, {})
                self._watch.put((code, day, version), known[code])
        return {code: line for code, line in known.items() if line}

    @property
    def stats(self) -> dict[str, int]:
        return {"hits": self._rendered.hits, "misses": self._rendered.misses}

    def clear(self) -> None:
        self._figures.clear()
        self._rendered.clear()
        self._names.clear()
        self._watch.clear()
