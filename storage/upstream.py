"""How every upstream call is made: a socket timeout, a deadline, retries with backoff, and its
failure classified.

A call ends in one of three exceptions when it gives no usable data:

- NotPublished: the exchange has not published that day yet (akshare raises a column-length
  mismatch or returns an empty frame): ask again later;
- UpstreamError: timeout or connection failure after the retries, or an answer in the wrong format
  (HTML where an xlsx or JSON was expected, a key missing);
- ValidationFailed: an answer in the right format whose figures are implausible (units, identities,
  dates, detail against summary; storage.plausibility).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests

if TYPE_CHECKING:
    from marginbot.settings import Settings

# Retries are logged as the sources' lines: they are part of the fetch that asked.
log = logging.getLogger("storage.sources")
T = TypeVar("T")


class UpstreamProblem(Exception):
    """One upstream call gave no usable data; str() is a one-line reason. `status` is what ingestion records."""

    status = "failed"


class NotPublished(UpstreamProblem):
    """The day is not published yet ("not yet", not an error): ask again later."""

    status = "pending"


class UpstreamError(UpstreamProblem):
    """Transport failure after the retries, or an answer in the wrong format."""


class ValidationFailed(UpstreamProblem):
    """An answer in the right format whose figures are implausible."""


class DeadlinePassed(UpstreamError):
    """A call that gave no complete answer within its deadline: not asked again at once (the same
    slow server would take as long again)."""


# --- timeout -----------------------------------------------------------------------------------------

_TIMEOUT: ContextVar[float | None] = ContextVar("upstream_timeout", default=None)
# Set by _within_deadline in its worker thread: once it is set, every further request of that attempt
# fails at once, so an abandoned attempt (a paginated call keeps asking) stops at its next request.
_ABANDONED: ContextVar[threading.Event | None] = ContextVar("upstream_abandoned", default=None)
_HOOK_LOCK = threading.Lock()
_hook_installed = False
_TIMEOUT_POSITION = 6  # Session.request(method, url, params, data, headers, cookies, files, auth, timeout, ...)


def _install_timeout_hook() -> None:
    """Wrap requests.Session.request once; the wrapper only acts inside `upstream_timeout`."""
    global _hook_installed
    with _HOOK_LOCK:
        if _hook_installed:
            return
        original = requests.Session.request

        def request(self: requests.Session, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
            abandoned = _ABANDONED.get()
            if abandoned is not None and abandoned.is_set():
                raise requests.Timeout("the call's deadline has passed: no further request")
            seconds = _TIMEOUT.get()
            if seconds is not None:
                if len(args) > _TIMEOUT_POSITION:
                    args = (*args[:_TIMEOUT_POSITION], seconds, *args[_TIMEOUT_POSITION + 1 :])
                else:
                    kwargs["timeout"] = seconds
            return original(self, method, url, *args, **kwargs)

        requests.Session.request = request  # type: ignore[method-assign]
        _hook_installed = True


@contextmanager
def upstream_timeout(seconds: float) -> Iterator[None]:
    """Give every `requests` call made in this context (this thread only) a socket timeout of `seconds`.

    akshare calls bare requests.get without a timeout; its own `timeout=30` (BSE) is replaced too, so
    the project's setting is the one in force. The timeout applies to connecting and to each read.
    """
    _install_timeout_hook()
    token = _TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _TIMEOUT.reset(token)


# --- calling with retries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CallPolicy:
    """Socket timeout (seconds, for connecting and each read), deadline of one whole attempt
    (seconds: a server that drips its answer never trips the socket timeout), retries after the
    first attempt, and the first backoff pause (doubled each time)."""

    timeout: float = 20.0
    retries: int = 3
    backoff: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    deadline: float = 180.0

    @classmethod
    def from_settings(cls, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> CallPolicy:
        return cls(timeout=settings.upstream_timeout_seconds, retries=settings.upstream_retries, sleep=sleep,
                   deadline=settings.upstream_deadline_seconds)


def _within_deadline(name: str, func: Callable[[], T], policy: CallPolicy) -> T:
    """func() under the socket timeout, in a worker thread given `policy.deadline` seconds in all.

    Past the deadline the attempt is abandoned: each further request it makes fails at once (a
    paginated call would otherwise go on asking), its thread (a daemon) ends, and whatever it
    returns is dropped; ingestion only ever stores what a call returned in time.
    """
    outcome: dict[str, Any] = {}
    abandoned = threading.Event()

    def attempt() -> None:
        _ABANDONED.set(abandoned)
        try:
            with upstream_timeout(policy.timeout):
                outcome["value"] = func()
        except BaseException as exc:  # handed to the caller's thread, classified there
            outcome["error"] = exc

    worker = threading.Thread(target=copy_context().run, args=(attempt,), name=f"upstream-{name}", daemon=True)
    worker.start()
    worker.join(policy.deadline)
    if worker.is_alive():
        abandoned.set()
        raise DeadlinePassed(f"no complete answer within {policy.deadline:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


_EMPTY_AXIS = re.compile(r"Length mismatch: Expected axis has 0 elements")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def classify(exc: BaseException, timeout: float) -> UpstreamProblem:
    """Map what akshare (or requests, pandas) raised to NotPublished or UpstreamError."""
    if isinstance(exc, UpstreamProblem):
        return exc
    if isinstance(exc, requests.Timeout):
        return UpstreamError(f"timed out (no answer within {timeout:g} s)")
    if isinstance(exc, requests.ConnectionError):
        return UpstreamError(f"connection failed: {_short(exc)}")
    if isinstance(exc, requests.RequestException) and not isinstance(exc, requests.JSONDecodeError):
        return UpstreamError(f"request failed: {_short(exc)}")
    if isinstance(exc, zipfile.BadZipFile):
        return UpstreamError("answer is not an xlsx workbook (an HTML error page?)")
    if isinstance(exc, json.JSONDecodeError | requests.JSONDecodeError):
        return UpstreamError("answer is not valid JSON (an HTML error page?)")
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return UpstreamError(f"answer lacks the key {key!r}")
    if isinstance(exc, ValueError):
        if _EMPTY_AXIS.search(str(exc)):
            return NotPublished("no rows in the answer: not published yet")
        if "Excel file format cannot be determined" in str(exc):
            return UpstreamError("answer is not an Excel workbook (an HTML error page?)")
    return UpstreamError(f"unexpected answer ({type(exc).__name__}: {_short(exc)})")


def call(name: str, func: Callable[[], T], policy: CallPolicy) -> T:
    """Run one akshare call under the policy's timeout and deadline; retry UpstreamError with
    exponential backoff.

    NotPublished is raised at once (asking again within seconds would not help).
    """
    attempts = policy.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return _within_deadline(name, func, policy)
        except Exception as exc:  # every failure of a foreign call is classified, none escapes raw
            problem = classify(exc, policy.timeout)
            if isinstance(problem, NotPublished | DeadlinePassed):
                raise problem from exc
            if attempt == attempts:
                if attempts > 1:
                    problem = type(problem)(f"{problem} (after {attempts} attempts)")
                raise problem from exc
            pause = policy.backoff * 2 ** (attempt - 1)
            log.debug("%s: %s; retrying in %g s (attempt %d of %d)", name, problem, pause, attempt, attempts)
            policy.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
