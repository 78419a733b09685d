"""The per-chat allowance (bot.services.Throttle) on an injected clock, and the log's token redaction."""

from __future__ import annotations

import logging
import sys

from bot.services import Throttle
from marginbot.logging_setup import RedactingFormatter

TOKEN = "123456789:E2E_secret-TOKEN_for-marginbot_tests_0123456789"  # shaped like a token, never a real one


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_chat_gets_its_limit_per_window_then_waits_for_the_oldest() -> None:
    clock = Clock()
    throttle = Throttle(3, period=60.0, clock=clock)
    for step in range(3):
        clock.now = 1000.0 + step * 10
        assert throttle.check(7) == 0.0
    clock.now = 1025.0
    assert throttle.check(7) == 35.0  # the first, at 1000, leaves the window at 1060
    assert throttle.check(8) == 0.0  # another chat has its own allowance
    clock.now = 1060.0
    assert throttle.check(7) == 0.0


def test_a_refused_request_is_not_counted_and_the_wait_is_at_least_a_second() -> None:
    clock = Clock()
    throttle = Throttle(1, period=60.0, clock=clock)
    assert throttle.check(7) == 0.0
    clock.now = 1059.5
    assert throttle.check(7) == 1.0
    clock.now = 1060.0
    assert throttle.check(7) == 0.0


def test_slow_down_is_said_once_per_period() -> None:
    clock = Clock()
    throttle = Throttle(1, period=60.0, clock=clock)
    assert throttle.should_warn(7) is True
    clock.now = 1030.0
    assert throttle.should_warn(7) is False
    clock.now = 1060.0
    assert throttle.should_warn(7) is True


def test_idle_chats_are_forgotten() -> None:
    clock = Clock()
    throttle = Throttle(5, period=60.0, clock=clock)
    for chat in range(1000):
        throttle.check(chat)
        throttle.should_warn(chat)
    clock.now = 1061.0
    assert throttle.check(5000) == 0.0
    assert list(throttle.events) == [5000]
    assert throttle.warned == {}


def test_a_traceback_with_the_token_is_redacted() -> None:
    try:
        raise RuntimeError(f"GET https://api.telegram.org/bot{TOKEN}/getMe failed")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "request failed", None, sys.exc_info())
    line = RedactingFormatter("%(message)s").format(record)
    assert "RuntimeError" in line and "<token>" in line
    assert TOKEN.split(":")[1] not in line


def test_a_request_may_cost_several_and_waits_until_they_all_fit() -> None:
    clock = Clock()
    throttle = Throttle(5, period=60.0, clock=clock)
    assert throttle.check(7, cost=2) == 0.0  # 1000: two
    clock.now = 1010.0
    assert throttle.check(7, cost=2) == 0.0  # 1010: four
    assert throttle.check(7, cost=2) == 50.0  # one fits; two once the first pair (1000) has left
    assert throttle.check(7) == 0.0  # one does fit: five
    clock.now = 1060.0
    assert throttle.check(7, cost=2) == 0.0
    assert throttle.check(8, cost=6) == 60.0  # more than the limit never fits: a whole period
