"""Telegram's sending limits, enforced for every request PTB makes.

PTB's ``AIORateLimiter`` paces groups and the overall rate but not private chats (Telegram
asks for at most one message per second per chat), and it needs an extra dependency. This
limiter paces sends per chat (private: one per ``per_chat_interval``; groups: 20 a minute)
and overall (``rate_per_second``), keeps each chat's messages in order, and obeys
``RetryAfter`` a bounded number of times before letting it surface to the caller.

Limits hold where Telegram measures them, at its end, whatever the network's jitter: a
request is only released once the request it must be spaced from has been *answered*
(so has certainly arrived) at least one period ago.

Requests marked bulk (``rate_limit_args=True``, as the outbox's sends are) wait while any
other request waits for its turn, so an answer to a person who is waiting is not queued
behind a bulletin.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# Requests that create a message count against the per-chat limit; edits only overall.
_NEW_MESSAGE_PREFIXES = ("send", "copy", "forward")
_EDIT_PREFIX = "edit"
_NOT_A_MESSAGE = frozenset({"sendChatAction"})

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` as seconds, whichever type PTB hands out (int or timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


@dataclass(slots=True)
class _Window:
    """The last release times of one chat: at most ``size`` within ``period`` seconds."""

    size: int
    period: float
    times: deque[float] = field(default_factory=deque)

    def next_allowed(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        return self.times[0] + self.period if len(self.times) >= self.size else now

    def record(self, at: float) -> None:
        self.times.append(at)
        while len(self.times) > self.size:
            self.times.popleft()


@dataclass(slots=True)
class _Ticket:
    """One released request; ``done_at`` is when its answer (or failure) came back."""

    done_at: float | None = None
    _finished: asyncio.Event | None = None  # made only if someone has to wait for this answer

    def finish(self, at: float) -> None:
        self.done_at = at
        if self._finished is not None:
            self._finished.set()

    async def wait(self) -> None:
        if self.done_at is None:
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()


class _Turns:
    """A mutex whose waiters are served interactive first, then bulk, each in arrival order."""

    __slots__ = ("_busy", "_waiting")

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    async def acquire(self, bulk: bool) -> None:
        if not self._busy and not self._waiting[0] and not self._waiting[1]:
            self._busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[1 if bulk else 0].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the turn was handed over just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        for lane in self._waiting:
            while lane:
                future = lane.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._busy = False


@dataclass(slots=True)
class _ChatSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    window: _Window | None = None


class TelegramRateLimiter(BaseRateLimiter[bool | None]):
    """Per-chat and overall pacing plus bounded ``RetryAfter`` handling (see module doc)."""

    __slots__ = (
        "_burst",
        "_burst_period",
        "_chat_interval",
        "_chats",
        "_clock",
        "_group_period",
        "_group_size",
        "_interval",
        "_max_retries",
        "_max_retry_after",
        "_max_tracked",
        "_next_overall",
        "_turns",
        "_paused_until",
        "_recent",
        "retry_after_seen",
    )

    def __init__(
        self,
        rate_per_second: float = 30.0,
        per_chat_interval: float = 1.0,
        *,
        group_messages: int = 20,
        group_period: float = 60.0,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_tracked_chats: int = 10_000,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._interval = 1.0 / rate_per_second
        # At most ``_burst`` requests reach Telegram in any ``_burst_period`` (30 per second by default;
        # capped so that a lifted limit does not keep thousands of tickets around).
        self._burst = max(1, min(int(rate_per_second), 100))
        self._burst_period = self._burst / rate_per_second
        self._recent: deque[_Ticket] = deque()
        self._chat_interval = max(per_chat_interval, 0.0)
        self._group_size = group_messages
        self._group_period = group_period
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._clock = clock
        self._chats: dict[str, _ChatSlot] = {}
        self._turns = _Turns()
        self._next_overall = 0.0
        self._paused_until = 0.0
        self._max_tracked = max_tracked_chats
        self.retry_after_seen = 0  # 429 answers (for the operators' metrics)

    async def initialize(self) -> None:
        """Nothing to set up: all state is in memory."""

    async def shutdown(self) -> None:
        self._chats.clear()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: bool | None,
    ) -> JSONResult:
        new_message = endpoint.startswith(_NEW_MESSAGE_PREFIXES) and endpoint not in _NOT_A_MESSAGE
        if not (new_message or endpoint.startswith(_EDIT_PREFIX)) or "chat_id" not in data:
            return await callback(*args, **kwargs)
        key = str(data["chat_id"])
        slot = self._acquire_slot(key)
        try:
            async with slot.lock:  # FIFO: a chat's messages leave in the order they were sent
                return await self._send_paced(callback, args, kwargs, key, slot, new_message, bool(rate_limit_args))
        finally:
            self._release_slot(key, slot)

    async def _send_paced(self, callback: Callable[..., Coroutine[Any, Any, JSONResult]], args: Any,
                          kwargs: dict[str, Any], key: str, slot: _ChatSlot, new_message: bool,
                          bulk: bool) -> JSONResult:
        retries = 0
        if slot.window is None:
            slot.window = self._window_for(key)
        window = slot.window
        while True:
            if new_message:
                await self._sleep_until(window.next_allowed)
            ticket = await self._overall_ticket(bulk)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                self.retry_after_seen += 1
                delay = retry_after_seconds(exc)
                # Telegram's flood control covers the whole bot: hold every send, not just this chat.
                self._paused_until = max(self._paused_until, self._clock() + delay)
                retries += 1
                if retries > self._max_retries or delay > self._max_retry_after:
                    raise
                log.warning("telegram flood control: waiting %.1f s before retrying", delay)
            finally:
                done = self._clock()
                ticket.finish(done)
                if new_message:
                    window.record(done)

    def _window_for(self, key: str) -> _Window:
        is_group = key.startswith(("-", "@"))
        if is_group:
            return _Window(self._group_size, self._group_period)
        return _Window(1, self._chat_interval)

    async def _sleep_until(self, next_allowed: Callable[[float], float]) -> None:
        while True:
            now = self._clock()
            wait = max(next_allowed(now), self._paused_until) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _overall_ticket(self, bulk: bool) -> _Ticket:
        """Release a request: ``1/rate`` after the previous one, and ``burst_period`` after the
        request ``burst`` places earlier was answered. Interactive requests are served first."""
        await self._turns.acquire(bulk)
        try:
            while True:
                now = self._clock()
                if len(self._recent) >= self._burst:
                    head = self._recent[0]
                    if head.done_at is None:
                        await head.wait()
                        continue
                    if head.done_at + self._burst_period > now:
                        await asyncio.sleep(head.done_at + self._burst_period - now)
                        continue
                    self._recent.popleft()
                    continue
                wait = max(self._next_overall, self._paused_until) - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                break
            self._next_overall = now + self._interval
            ticket = _Ticket()
            self._recent.append(ticket)
            return ticket
        finally:
            self._turns.release()

    def _acquire_slot(self, key: str) -> _ChatSlot:
        slot = self._chats.get(key)
        if slot is None:
            if len(self._chats) >= self._max_tracked:
                self._prune()
            slot = self._chats[key] = _ChatSlot()
        slot.users += 1
        return slot

    def _release_slot(self, key: str, slot: _ChatSlot) -> None:
        slot.users -= 1

    def _prune(self) -> None:
        """Forget idle chats whose pacing window has passed, so memory stays bounded."""
        now = self._clock()
        idle = [k for k, s in self._chats.items()
                if s.users == 0 and (s.window is None or s.window.next_allowed(now) <= now)]
        for key in idle:
            del self._chats[key]

    @property
    def tracked_chats(self) -> int:
        return len(self._chats)
