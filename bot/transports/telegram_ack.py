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
import heapq


class AckTracker:
    """Update ids fetched, in flight and done, and the offset that confirms only finished ones.

    The offset is asked for once per fetched update, so it is kept cheap: the oldest id in flight
    sits on top of a heap (ids that finished are dropped from the top lazily)."""

    __slots__ = ("_highest", "_in_flight", "_oldest", "_done", "_finished", "_progress")

    def __init__(self) -> None:
        self._highest: int | None = None
        self._in_flight: set[int] = set()
        self._oldest: list[int] = []  # a heap of the ids in flight, and some that finished since
        self._done: set[int] = set()  # finished, but above an update still in flight
        self._finished = 0
        self._progress = asyncio.Event()

    @property
    def offset(self) -> int | None:
        """What to send as ``offset``: confirms everything below it. None before the first update."""
        oldest = self._oldest
        while oldest and oldest[0] not in self._in_flight:
            heapq.heappop(oldest)
        if oldest:
            return oldest[0]
        return None if self._highest is None else self._highest + 1

    def fetched(self, update_id: int) -> bool:
        """Record a fetched update; False if it is one already in flight or done (a re-delivery)."""
        if update_id in self._in_flight or update_id in self._done:
            return False
        offset = self.offset
        if offset is not None and update_id < offset:
            return False
        self._in_flight.add(update_id)
        heapq.heappush(self._oldest, update_id)
        self._highest = update_id if self._highest is None else max(self._highest, update_id)
        return True

    def finished(self, update_id: int) -> None:
        """Handling ended (committed, answered, or deliberately dropped)."""
        if update_id not in self._in_flight:
            return
        self._in_flight.discard(update_id)
        self._finished += 1
        offset = self.offset
        if offset is not None and offset > update_id:  # the oldest moved on: forget what it passed
            self._done = {done for done in self._done if done >= offset}
        else:
            self._done.add(update_id)
        self._progress.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def finished_count(self) -> int:
        """How many updates finished so far (to wait for a number of them, see :meth:`wait_for`)."""
        return self._finished

    async def wait_for(self, finished_count: int, timeout: float) -> None:
        """Until ``finished_count`` updates have finished in all (or ``timeout`` passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._finished < finished_count and self._in_flight:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return
