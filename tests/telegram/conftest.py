"""Fixtures for the Telegram tier: the local Bot API server and transports pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from botapi_server import LocalBotApi
from bot.core.model import Inbound, Outbound
from bot.transports.telegram import TelegramOptions, TelegramTransport
from bot.transports.telegram_delivery import RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, backoff_seconds=0.05, max_backoff_seconds=0.2)


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


@pytest.fixture
async def bot_api() -> AsyncIterator[LocalBotApi]:
    api = LocalBotApi()
    await api.start()
    try:
        yield api
    finally:
        await api.close()


TransportFactory = Callable[..., Awaitable[TelegramTransport]]


@pytest.fixture
async def start_transport(bot_api: LocalBotApi) -> AsyncIterator[TransportFactory]:
    """``await start_transport(handler, **option_overrides)`` -> a started transport, stopped at teardown."""
    started: list[TelegramTransport] = []

    async def factory(handler: Inbox, **overrides: Any) -> TelegramTransport:
        values: dict[str, Any] = {
            "token": bot_api.token, "api_base_url": bot_api.base_url, "poll_timeout_seconds": 2,
            "retry": FAST_RETRY, "per_chat_interval_seconds": 0.0, "rate_per_second": 1000.0,
            "shutdown_grace_seconds": 2.0,
        }
        values.update(overrides)
        transport = TelegramTransport(TelegramOptions(**values))
        handler.transport = transport
        await transport.start(handler)
        started.append(transport)
        return transport

    yield factory
    for transport in started:
        await transport.stop()

