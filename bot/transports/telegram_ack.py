"""When a Telegram update may be acknowledged: only once it was handled (its turn committed).

Telegram forgets every update below the ``offset`` of the next ``getUpdates`` call, and a
webhook delivery once it got a 2xx. Confirming at fetch time (as PTB's updater does) loses
whatever was fetched but not yet handled when the process dies. Here the offset only moves past
updates whose handling finished; updates of other chats finish out of order, so the offset is
the oldest one still in flight, and updates Telegram hands out again meanwhile are recognised and
skipped. The core's dedupe (by event id, committed with the turn) makes a redelivery after a
crash harmless: delivery is exactly once.
"""

from __future__ import annotations

import asyncio


class AckTracker:
    """Update ids fetched, in flight and done, and the offset that confirms only finished ones."""

    __slots__ = ("_highest", "_in_flight", "_done", "_progress")

    def __init__(self) -> None:
        self._highest: int | None = None
        self._in_flight: set[int] = set()
        self._done: set[int] = set()  # finished, but above an update still in flight
        self._progress = asyncio.Event()

    @property
    def offset(self) -> int | None:
        """What to send as ``offset``: confirms everything below it. None before the first update."""
        if self._in_flight:
            return min(self._in_flight)
        return None if self._highest is None else self._highest + 1

    def fetched(self, update_id: int) -> bool:
        """Record a fetched update; False if it is one already in flight or done (a re-delivery)."""
        offset = self.offset
        if update_id in self._in_flight or update_id in self._done or (offset is not None and update_id < offset):
            return False
        self._in_flight.add(update_id)
        self._highest = update_id if self._highest is None else max(self._highest, update_id)
        return True

    def finished(self, update_id: int) -> None:
        """Handling ended (committed, answered, or deliberately dropped)."""
        if update_id not in self._in_flight:
            return
        self._in_flight.discard(update_id)
        self._done.add(update_id)
        offset = self.offset
        if offset is not None:
            self._done = {done for done in self._done if done >= offset}
        self._progress.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def wait_for_progress(self, timeout: float) -> None:
        """Until some update finishes (or ``timeout``): no point asking Telegram again before."""
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), timeout)
        except TimeoutError:
            pass
