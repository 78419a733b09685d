"""The records behind injected faults and emulated flood limits (sliding-window counters)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


class _Window:
    """Sliding-window counter: at most ``limit`` events in any ``period`` seconds."""

    __slots__ = ("limit", "period", "stamps")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.stamps: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        stamps = self.stamps
        while stamps and now - stamps[0] >= self.period:
            stamps.popleft()
        if len(stamps) < self.limit:
            return 0.0
        return self.period - (now - stamps[0])


@dataclass(slots=True)
class _Fault:
    method: str | None
    chat_id: int | str | None
    status: int
    description: str
    parameters: dict[str, Any] | None
    times: int


@dataclass(slots=True)
class _RateLimits:
    per_chat_per_second: int | None
    group_per_minute: int | None
    global_per_second: int | None
    chat_windows: dict[int, _Window] = field(default_factory=dict)
    group_windows: dict[int, _Window] = field(default_factory=dict)
    global_window: _Window | None = None
