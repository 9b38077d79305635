"""Shared helpers of the Telegram tier (imported by its conftest and tests)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from botapi_server import LocalBotApi, SentMessage, SimUser

from bot.app import Bot, build_platform_transports, running
from bot.config import Settings
from bot.conversation.feature import Clock
from bot.core.model import Inbound, Outbound
from bot.core.security import KeyRing
from bot.transports.telegram import TelegramTransport
from bot.transports.telegram_delivery import RetryPolicy
from tests.support import with_clock


def process_environment(api: LocalBotApi, tmp_path: Path, *, database_url: str | None = None,
                        **settings: str) -> dict[str, str]:
    """The environment of a ``civicbot run`` process against ``api``: none of this process's
    ``CIVICBOT_`` variables, then the token, the server, the database (an SQLite file in
    ``tmp_path`` unless ``database_url``) and ``tmp_path/keys.json`` (made if missing), then
    ``settings`` (``CIVICBOT_...`` names)."""
    key_file = tmp_path / "keys.json"
    if not key_file.exists():
        KeyRing.generate().save(key_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({
        "CIVICBOT_TELEGRAM__TOKEN": api.token,
        "CIVICBOT_TELEGRAM__API_BASE_URL": api.base_url,
        "CIVICBOT_DATABASE__URL": database_url or f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}",
        "CIVICBOT_SECURITY__KEY_FILE": str(key_file),
        **settings,
    })
    return env


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


@asynccontextmanager
async def running_bot(settings: Settings, keys: KeyRing, *, outbox_loop: bool = False,
                      clock: Clock | None = None) -> AsyncIterator[tuple[Bot, TelegramTransport]]:
    """The application's own wiring (``bot.app.running``, as ``civicbot run``) around a Telegram
    transport with short timeouts; with ``outbox_loop`` also the outbox senders running; ``clock``
    for the timed features (check-ins)."""
    options = {"retry": FAST_RETRY, "poll_timeout_seconds": 2, "shutdown_grace_seconds": 5.0}
    async with running(settings, keys=keys, upgrade=True, senders=outbox_loop, features=with_clock(clock),
                       transports=lambda services: build_platform_transports(services, telegram=options)) as bot:
        transport = bot.transports["telegram"]
        assert isinstance(transport, TelegramTransport)
        yield bot, transport


class Conversation:
    """One simulated person and what the bot has shown them so far."""

    def __init__(self, api: LocalBotApi, user: SimUser) -> None:
        self.api, self.user, self.seen, self.presses = api, user, 0, 0

    async def replies(self, count: int = 1, timeout: float = 10.0) -> list[SentMessage]:
        new = await self.api.next_messages(self.user.id, self.seen, count, timeout)
        self.seen += count
        return new

    async def say(self, text: str, count: int = 1) -> list[SentMessage]:
        self.user.say(text)
        return await self.replies(count)

    async def press(self, prompt: SentMessage, label: str | None = None, index: int | None = None,
                    count: int = 1) -> list[SentMessage]:
        self.user.press(prompt, index, label=label)
        self.presses += 1
        return await self.replies(count)
