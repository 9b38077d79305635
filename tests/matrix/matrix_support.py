"""Helpers shared by the Matrix tests (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from matrix_peer import Peer
from synapse_server import RegisteredUser

from bot.core.model import Choice, Inbound, Outbound
from bot.transports.matrix import MatrixOptions, MatrixTransport

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
