"""At most one notice per room per interval, in bounded memory.

Anyone can invite the bot into rooms or send it unreadable messages; what the bot remembers
about that (when it last answered each room) must not grow without bound, and one notice per
room is enough however many messages earned it.
"""

from __future__ import annotations

from collections import OrderedDict


class NoticeThrottle:
    """Remembers when each room was last sent a notice, for ``interval`` seconds, ``capacity`` rooms at most."""

    __slots__ = ("_interval", "_capacity", "_last")

    def __init__(self, interval: float, capacity: int = 10_000) -> None:
        self._interval = interval
        self._capacity = capacity
        self._last: OrderedDict[str, float] = OrderedDict()

    def allow(self, room_id: str, now: float) -> bool:
        """Whether a notice may go to ``room_id`` now; if so, it counts as sent."""
        self._forget_older_than(now - self._interval)
        if room_id in self._last:
            return False
        self._last[room_id] = now
        while len(self._last) > self._capacity:
            self._last.popitem(last=False)  # the oldest: its interval is nearly over anyway
        return True

    def _forget_older_than(self, cutoff: float) -> None:
        while self._last:
            room_id, at = next(iter(self._last.items()))
            if at > cutoff:
                break
            del self._last[room_id]

    def __len__(self) -> int:
        return len(self._last)
