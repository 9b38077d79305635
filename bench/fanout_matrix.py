"""Matrix fan-out: one encrypted message to each of K direct chats (default 50) through civicbot's
outbox, delivery engine and Matrix transport, against a bare matrix-nio ``room_send`` loop, on the
suite's Synapse in the same run.

K people each open an encrypted direct chat with both bots; setup ends when both bots have
joined every chat (no message has been sent yet, so no Megolm session exists: the timed part
includes establishing Olm sessions and sharing one room key per chat, for both bots). The bare
bot sends one text per chat, one after the other; civicbot's outbox holds one row per chat and
its sender drains them (rate limit lifted). The clock stops when every send is done (bare) or
every row is recorded ``sent`` (civicbot). Every person then checks that they could decrypt
exactly one message from each bot. The ratio is bare time / civicbot time: above 1, civicbot
is faster.

Usage: python -m bench.fanout_matrix [--people 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nio import RoomSendResponse  # type: ignore[import-untyped]

from bench.matrix_round_trip import SETUP_TIMEOUT, BareNioBot, Person, _bounded
from bench.population import register
from bot.app import assemble, build_platform_transports
from bot.config import MatrixSettings
from bot.core.model import Outbound
from bot.core.security import KeyRing
from bot.services.delivery import run_delivery
from bot.services.outbox import OutboxKind, OutboxStatus, ToParticipant
from bot.transports.matrix import MatrixTransport, quiet_library_logging
from tests.support import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "matrix"))
from matrix_peer import Peer  # noqa: E402
from synapse_server import RegisteredUser, SynapseServer  # noqa: E402

TEXT = "Bulletin: the next consultation is on Thursday."
TARGET = 0.8


class CivicbotSender:
    """civicbot wired as ``civicbot run`` wires it, Matrix only, rate limit lifted."""

    def __init__(self, synapse: SynapseServer, user: RegisteredUser, workdir: Path) -> None:
        self.user_id = user.user_id
        self.settings = make_settings(
            f"sqlite+aiosqlite:///{workdir / 'civicbot.db'}", workdir,
            matrix=MatrixSettings(homeserver=synapse.url, user_id=user.user_id, password=user.password,  # type: ignore[arg-type]
                                  store_path=workdir / "matrix-store", rate_per_second=1000),
        )
        self.keys = KeyRing.generate()
        self.transport: MatrixTransport | None = None
        self.bot: Any = None

    async def start(self) -> None:
        """The wiring of ``civicbot run``; the senders are started by the benchmark, once rows are queued."""
        options = {"sync_timeout_ms": 1000, "backoff_initial": 0.2, "backoff_max": 1.0, "connect_timeout": 30.0}
        self.bot = await assemble(self.settings, keys=self.keys, upgrade=True,
                                  transports=lambda services: build_platform_transports(services, matrix=options))
        transport = self.bot.transports["matrix"]
        assert isinstance(transport, MatrixTransport)
        self.transport = transport
        await self.bot.start(senders=False, scheduler=False)

    async def joined(self, room_ids: list[str]) -> bool:
        assert self.transport is not None
        rooms = self.transport.client.rooms
        return all(room_id in rooms and rooms[room_id].joined_count == 2 for room_id in room_ids)

    async def fan_out(self, room_ids: list[str]) -> float:
        services = self.bot.services
        database = services.database
        ids = await register(database, self.keys, "matrix", room_ids)
        async with database.sessions.begin() as session:
            await services.outbox.enqueue_many(session, [(ToParticipant(pid, "matrix"), Outbound(TEXT)) for pid in ids],
                                               OutboxKind.BULLETIN, ref="bench")
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(run_delivery(self.bot.senders, database, services.outbox.wakeup, stop))
        try:
            while True:
                async with database.sessions() as session:
                    progress = await services.outbox.progress(session, "bench")
                if progress.finished == len(ids):
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            await task
        if progress.by_status.get(OutboxStatus.SENT) != len(ids):
            raise RuntimeError(f"not every row was sent: {progress.by_status} {progress.by_reason}")
        return elapsed

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop()


async def bare_loop(bare: BareNioBot, room_ids: list[str]) -> float:
    started = time.perf_counter()
    for room_id in room_ids:
        response = await bare.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": TEXT},
                                               ignore_unverified_devices=True)
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"the bare bot's send was refused: {response}")
    return time.perf_counter() - started


async def wait_until(predicate: Any, what: str, timeout: float = SETUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def run(people_count: int, workdir: Path) -> tuple[float, float]:
    quiet_library_logging()
    synapse = SynapseServer(workdir / "synapse")
    await asyncio.to_thread(synapse.start)
    people: list[Person] = []
    bare: BareNioBot | None = None
    ours: CivicbotSender | None = None
    try:
        bare_user, our_user = synapse.register("fanoutbare"), synapse.register("fanoutcivicbot")
        users = [synapse.register(f"fanoutperson{n}") for n in range(people_count)]
        bare = BareNioBot(synapse.url, bare_user, workdir / "bare-store")
        ours = CivicbotSender(synapse, our_user, workdir / "civicbot")
        await _bounded("starting the bare nio bot", bare.start(), SETUP_TIMEOUT)
        await _bounded("starting civicbot", ours.start(), SETUP_TIMEOUT)
        people = [Person(Peer(synapse.url, user, workdir / f"peer-{user.localpart}")) for user in users]
        await _bounded("starting the people", asyncio.gather(*(p.peer.start() for p in people)), SETUP_TIMEOUT)
        await _bounded("opening the encrypted chats",
                       asyncio.gather(*(p.open_chat(b) for p in people for b in (bare.user_id, ours.user_id))),
                       SETUP_TIMEOUT)
        bare_rooms = [p.rooms[bare.user_id] for p in people]
        our_rooms = [p.rooms[ours.user_id] for p in people]

        async def bare_joined() -> bool:
            assert bare is not None
            return all(r in bare.client.rooms and bare.client.rooms[r].joined_count == 2 for r in bare_rooms)

        await wait_until(bare_joined, "the bare bot joining every chat")
        await wait_until(lambda: ours.joined(our_rooms), "civicbot joining every chat")  # type: ignore[union-attr]
        bare_seconds = await _bounded("the bare loop", bare_loop(bare, bare_rooms), 600)
        our_seconds = await _bounded("civicbot's fan-out", ours.fan_out(our_rooms), 600)

        async def everyone_read() -> bool:
            return all(p.inbox.count[p.rooms[b]] >= 1 for p in people for b in (bare.user_id, ours.user_id))  # type: ignore[union-attr]

        await wait_until(everyone_read, "every person decrypting both messages", 120)
        await asyncio.sleep(1.0)
        extra = [p.peer.user_id for p in people for b in (bare.user_id, ours.user_id) if p.inbox.count[p.rooms[b]] != 1]
        if extra or any(p.peer.undecryptable for p in people):
            raise RuntimeError("a person got a message twice, or could not decrypt one")
        return bare_seconds, our_seconds
    finally:
        for person in people:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(person.peer.stop(), 10)
        for bot in (bare, ours):
            if bot is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bot.stop(), 20)
        await asyncio.to_thread(synapse.stop)


def report(people: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="civicbot-fanout-") as tmp:
        bare_seconds, our_seconds = asyncio.run(run(people, Path(tmp)))
    ratio = bare_seconds / our_seconds
    print(f"Matrix fan-out: one encrypted message to each of {people} direct chats (room keys shared in the timed part)")
    print(f"{'sender':<34}{'seconds':>9}{'msg/s':>9}")
    print(f"{'bare nio room_send loop':<34}{bare_seconds:>9.2f}{people / bare_seconds:>9.1f}")
    print(f"{'civicbot outbox + Matrix transport':<34}{our_seconds:>9.2f}{people / our_seconds:>9.1f}")
    ok = ratio >= TARGET
    print(f"target >= {TARGET} x bare nio: {ratio:.2f} -> {'met' if ok else 'NOT MET'}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50)
    raise SystemExit(0 if report(parser.parse_args().people) else 1)
