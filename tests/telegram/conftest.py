"""Fixtures for the Telegram tier: the local Bot API server and transports pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botapi_server import LocalBotApi
from telegram_support import FAST_RETRY, Inbox, TransportFactory

from bot.transports.telegram import TelegramOptions, TelegramTransport


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.telegram)


@pytest.fixture
async def bot_api() -> AsyncIterator[LocalBotApi]:
    api = LocalBotApi()
    await api.start()
    try:
        yield api
    finally:
        await api.close()


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

