"""Spacing sends to a rate, shared by the outbox senders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Lets callers through at most ``rate`` times per second, in arrival order."""

    __slots__ = ("_interval", "_next", "_lock", "_now")

    def __init__(self, rate: float, now: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._now = now

    async def wait(self) -> None:
        async with self._lock:
            now = self._now()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval
