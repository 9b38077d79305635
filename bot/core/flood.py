"""Per-person flood limit: a sliding window, one notice, then silence until it clears."""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable


class Verdict(enum.Enum):
    ACCEPT = "accept"
    NOTICE = "notice"  # first message over the limit: tell the person once
    DROP = "drop"


class FloodGuard:
    """In-process window per pseudonym; bounded, so a flood of new ids cannot grow it without limit."""

    __slots__ = ("_limit", "_window", "_now", "_hits", "_noticed", "_max_tracked")

    def __init__(self, limit: int, window_seconds: float, now: Callable[[], float] = time.monotonic,
                 max_tracked: int = 100_000) -> None:
        self._limit = limit
        self._window = window_seconds
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self._noticed: set[str] = set()
        self._max_tracked = max_tracked

    def check(self, key: str) -> Verdict:
        now = self._now()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_tracked:
                self._prune(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) < self._limit:
            hits.append(now)
            self._noticed.discard(key)
            return Verdict.ACCEPT
        if key in self._noticed:
            return Verdict.DROP
        self._noticed.add(key)
        return Verdict.NOTICE

    def _prune(self, now: float) -> None:
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= now - self._window]
        for key in stale:
            del self._hits[key]
            self._noticed.discard(key)
