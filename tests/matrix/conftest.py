"""Fixtures of the Matrix tier: one real Synapse per test session, fresh users per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from matrix_peer import Peer
from matrix_support import BotHandle, EchoCore, MakeBot, MakePeer, notice, unique
from synapse_server import RegisteredUser, SynapseServer

from bot.core.security import KeyRing
from bot.transports.matrix import MatrixOptions, MatrixTransport


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.matrix)
            # One worker runs the whole tier, so pytest-xdist starts one Synapse, not one per worker.
            item.add_marker(pytest.mark.xdist_group("matrix"))


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
async def make_bot(synapse: SynapseServer, keyring: KeyRing, tmp_path: Path) -> AsyncIterator[MakeBot]:
    """Start a bot transport; ``make_bot(user=..., store=...)`` restarts one on the same store."""
    started: list[MatrixTransport] = []

    async def make(user: RegisteredUser | None = None, store: Path | None = None, start: bool = True,
                   keys: KeyRing | None = None, **overrides: Any) -> BotHandle:
        user = user or synapse.register(unique("bot"))
        values: dict[str, Any] = {
            "homeserver": synapse.url, "user_id": user.user_id, "password": user.password,
            "store_path": store or tmp_path / unique("store"), "undecryptable_grace": 3.0,
            "sync_timeout_ms": 1000, "backoff_initial": 0.2, "backoff_max": 1.0,
            "send_retry_budget": 5.0, "connect_timeout": 30.0,
        }
        values.update(overrides)
        options = MatrixOptions(**values)
        transport = MatrixTransport(options, keys or keyring, notice)
        core = EchoCore(transport)
        if start:
            await transport.start(core)
            started.append(transport)
        return BotHandle(transport, core, user, options)

    yield make
    for transport in started:
        with contextlib.suppress(Exception):
            await transport.stop()


@pytest.fixture
async def make_peer(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[MakePeer]:
    peers: list[Peer] = []

    async def make() -> Peer:
        peer = Peer(synapse.url, synapse.register(unique("person")), tmp_path / unique("peer"))
        await peer.start()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.stop(), 10)
