"""Helpers shared by the Matrix tests (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix_peer import Peer, Received, eventually
from synapse_server import RegisteredUser, SynapseServer

from bot.config import DatabaseSettings, MatrixSettings, SecuritySettings, Settings
from bot.core.model import Choice, Inbound, Outbound
from bot.transports.matrix import MatrixOptions, MatrixTransport


def bot_settings(synapse: SynapseServer, bot: RegisteredUser, tmp_path: Path, **sections: Any) -> Settings:
    """civicbot's settings for the Matrix account ``bot`` on the suite's Synapse, with its SQLite
    database, key file and Matrix store in ``tmp_path``; other settings sections as given."""
    return Settings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"),
        security=SecuritySettings(key_file=tmp_path / "keys.json"),
        matrix=MatrixSettings(homeserver=synapse.url, user_id=bot.user_id, password=bot.password,  # type: ignore[arg-type]
                              store_path=tmp_path / "matrix-store"),
        **sections,
    )


NOTICES = {
    "enable_encryption": "Please turn on encryption in this chat; I only answer in encrypted chats.",
    "undecryptable": "I could not read your last message. Please send it again.",
    "not_private": "Others can read this room; please start a new direct chat with me.",
}


def notice(kind: str, language: str | None) -> str:
    return NOTICES[kind]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class EchoCore:
    """A minimal core for transport tests: records inbound and answers with choices."""

    transport: MatrixTransport | None = None
    inbound: list[Inbound] = field(default_factory=list)

    async def __call__(self, inbound: Inbound) -> None:
        self.inbound.append(inbound)
        assert self.transport is not None
        await self.transport.send(inbound.address, Outbound(
            text=f"echo: {inbound.text}" if inbound.text else f"got: {inbound.kind.value}",
            choices=(Choice("yes", "Yes"), Choice("no", "No")),
        ))


@dataclass
class BotHandle:
    transport: MatrixTransport
    core: EchoCore
    user: RegisteredUser
    options: MatrixOptions

    @property
    def user_id(self) -> str:
        return self.user.user_id


MakeBot = Callable[..., Awaitable[BotHandle]]
MakePeer = Callable[[], Awaitable[Peer]]


FAST = {"sync_timeout_ms": 1000, "backoff_initial": 0.2, "backoff_max": 1.0, "connect_timeout": 30.0}
"""Matrix transport options for tests: short long-polls and backoffs."""


class Conversation:
    """One person's encrypted direct chat with the bot, read as the person reads it."""

    def __init__(self, peer: Peer, room_id: str, bot_user_id: str) -> None:
        self.peer, self.room_id, self.bot_user_id = peer, room_id, bot_user_id

    @property
    def messages(self) -> list[Received]:
        return self.peer.from_bot(self.room_id, self.bot_user_id)

    async def expect(self, *texts: str, since: int, timeout: float = 30.0) -> list[Received]:
        """Wait until bot messages after ``since`` contain ``texts``, in that order (one each)."""
        def arrived() -> list[Received] | None:
            new = self.messages[since:]
            position = 0
            for text in texts:
                position = next((i for i in range(position, len(new)) if text in new[i].body), -1) + 1
                if position == 0:
                    return None
            return new[:position]
        found: list[Received] = await eventually(arrived, timeout, what=f"bot messages containing {texts!r}")
        return found

    async def say(self, text: str, *expected: str, timeout: float = 30.0) -> list[Received]:
        """Type ``text``; return the bot's new messages up to the one containing the last of ``expected``
        (so ``[-1]`` is that message)."""
        before = len(self.messages)
        await self.peer.send_text(self.room_id, text, to=self.bot_user_id)
        return await self.expect(*expected, since=before, timeout=timeout)


async def open_conversation(peer: Peer, bot_user_id: str) -> Conversation:
    room_id = await peer.create_dm(bot_user_id)
    await peer.wait_joined(room_id, bot_user_id, timeout=60)
    return Conversation(peer, room_id, bot_user_id)
