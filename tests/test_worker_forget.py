"""With several workers, only the leader runs the Matrix transport. An erasure handled elsewhere
(a Telegram webhook turn on a follower, for a person who also has a Matrix room) leaves its
forget request in the database, and the leader's scheduled ``forget-erased`` job does it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import build_scheduler, running
from bot.core.model import Address, Capabilities, Platform
from bot.core.security import KeyRing
from bot.core.transport import ChatErasure, TransientDeliveryError
from bot.operations.duties import TransportSlot
from bot.services.forget import ForgetJob, request_forget
from bot.storage.models import ForgetRequest
from tests.support import RecordingTransport, make_settings

MATRIX = Platform("matrix")
ROOM = "!room-of-an-erased-person:example.org"


@dataclass
class ForgettingTransport(RecordingTransport):
    """A recording transport that also forgets people and clears chats, as Matrix does."""

    forgotten: list[str] = field(default_factory=list)

    async def forget(self, address: Address) -> None:
        self.forgotten.append(address.value)

    async def erase_chat(self, address: Address) -> ChatErasure:
        return ChatErasure(removed=3)


async def test_a_forget_request_waits_for_the_leaders_transport(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    slot = TransportSlot(MATRIX, Capabilities(buttons=False), 10.0)
    async with running(make_settings(sqlite_url, tmp_path), keys=keys, transports=lambda services: [slot],
                       upgrade=True, senders=False) as bot:
        database = bot.services.database
        async with database.sessions.begin() as session:
            await request_forget(session, keys, Address(MATRIX, ROOM))
        job = ForgetJob(database, keys, {"matrix": slot})

        assert await job() == 0, "no leader's transport here: nothing done"
        async with database.sessions() as session:
            (waiting,) = list(await session.scalars(select(ForgetRequest)))
        assert waiting.attempts == 1 and ROOM.encode() not in waiting.address_enc

        leaders = ForgettingTransport(platform=MATRIX)
        slot.attach(leaders)  # this worker became the leader
        assert await job() == 1
        assert leaders.forgotten == [ROOM]
        async with database.sessions() as session:
            assert list(await session.scalars(select(ForgetRequest))) == []
        assert (await slot.erase_chat(Address(MATRIX, ROOM))).removed == 3, "/panic reaches the leader's transport"

        slot.detach()
        with pytest.raises(TransientDeliveryError):  # a follower's slot clears no chat
            await slot.erase_chat(Address(MATRIX, ROOM))

        # The leader's scheduler (the worker wiring passes the transports) runs the forgetting.
        assert build_scheduler(bot.services, purge_now=True, transports={"matrix": slot}).get_job("forget-erased")
        assert build_scheduler(bot.services).get_job("forget-erased") is None
