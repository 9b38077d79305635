"""Shared helpers of the Telegram tier (imported by its conftest and tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.core.model import Inbound, Outbound
from bot.transports.telegram import TelegramTransport
from bot.transports.telegram_delivery import RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, backoff_seconds=0.05, max_backoff_seconds=0.2)

TransportFactory = Callable[..., Awaitable[TelegramTransport]]


class Inbox:
    """An inbound handler that records what the transport delivered.

    With ``reply``, it also answers each event with ``reply(event)`` through ``transport``
    (set by the ``start_transport`` fixture), as the core's router would.
    """

    def __init__(self, reply: Callable[[Inbound], Outbound | None] | None = None) -> None:
        self.events: list[Inbound] = []
        self.transport: TelegramTransport | None = None
        self.errors: list[Exception] = []
        self._reply = reply
        self._changed = asyncio.Event()

    async def __call__(self, inbound: Inbound) -> None:
        self.events.append(inbound)
        self._changed.set()
        answer = self._reply(inbound) if self._reply is not None else None
        if answer is not None and self.transport is not None:
            try:
                await self.transport.send(inbound.address, answer)
            except Exception as exc:  # recorded for the test to inspect, as the router would log it
                self.errors.append(exc)

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[Inbound]:
        async def reached() -> None:
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), timeout)
        return self.events
