"""Round-trip cost of civicbot on Matrix (end-to-end encrypted) against bare matrix-nio, in the same run.

Both bots run against the suite's local Synapse (loopback, SQLite, rate limits raised).
K people, each an independent E2EE nio client in an encrypted direct chat with each bot,
send M messages one after the other, each time waiting until the answer has arrived and
been decrypted; the K conversations run at the same time. The clock runs from the first
message until every answer is in. The baseline is a bare nio ``AsyncClient`` with its own
encryption store that joins direct chats and answers every text with a fixed text;
civicbot answers ``/help`` through its Matrix transport, router and SQLite database
(pseudonym, dedupe marker, a transaction per message, sealed checkpoint), wired as
``tests/matrix/test_matrix_router.py`` wires it.

Synapse start, registration, room creation and key exchange (one warm-up message per
chat) are outside the timed part. Both bots long-poll with the same sync timeout; the
people, both bots and this script share one event loop (as in the Telegram benchmark),
Synapse is its own process. Every wait is bounded; Synapse is stopped at the end.

Usage: python -m bench.matrix_round_trip [--peers 10] [--messages 5] [--rounds 3] [--breakdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    MatrixRoom,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)

from bot.app import Bot, assemble, build_platform_transports
from bot.config import LimitsSettings, MatrixSettings
from bot.core.security import KeyRing
from bot.transports.matrix import MatrixTransport, quiet_library_logging
from tests.support import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "matrix"))
from matrix_peer import Peer  # noqa: E402  (the test tier's E2EE person)
from synapse_server import RegisteredUser, SynapseServer  # noqa: E402  (the test tier's Synapse)

TEXT = "/help"
FIXED_ANSWER = "What you can do: …"
SYNC_TIMEOUT_MS = 1000  # both bots; a long poll returns as soon as an event arrives
SETUP_TIMEOUT = 120.0  # seconds for each setup step (bots, people, rooms, warm-up)
LIMITS = {"peers": 50, "messages": 50, "rounds": 10}  # bounded traffic: at most 25,000 round trips


def _round_timeout(peers: int, messages: int) -> float:
    return 60.0 + 1.0 * peers * messages


# -- the people ---------------------------------------------------------------------------------


class Inbox:
    """A person's decrypted answers per room, counted as they arrive and awaited without polling."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.count: dict[str, int] = defaultdict(int)
        self._changed = asyncio.Condition()
        peer.client.add_event_callback(self._on_answer, (RoomMessageText, RoomMessageNotice))

    async def _on_answer(self, room: MatrixRoom, event: Any) -> None:
        if event.sender == self.peer.user_id or not getattr(event, "decrypted", False):
            return
        self.count[room.room_id] += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, room_id: str, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.count[room_id] >= count)


class Person:
    """One person: an E2EE nio client, its inbox and its direct chat with each bot."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.inbox = Inbox(peer)
        self.rooms: dict[str, str] = {}  # bot user id -> room id

    async def open_chat(self, bot_user_id: str) -> None:
        room_id = await self.peer.create_dm(bot_user_id)
        await self.peer.wait_joined(room_id, bot_user_id, timeout=SETUP_TIMEOUT)
        self.rooms[bot_user_id] = room_id

    async def warm_up(self, bot_user_id: str) -> None:
        """One message and its answer: device keys queried, Olm and Megolm sessions in place."""
        room_id = self.rooms[bot_user_id]
        expected = self.inbox.count[room_id] + 1
        await self.peer.send_text(room_id, TEXT, to=bot_user_id)
        await self.inbox.wait(room_id, expected)

    async def converse(self, bot_user_id: str, messages: int, latencies: list[float]) -> None:
        room_id = self.rooms[bot_user_id]
        for _ in range(messages):
            expected = self.inbox.count[room_id] + 1
            sent = time.perf_counter()
            response = await self.peer.client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": TEXT}, ignore_unverified_devices=True
            )
            if not isinstance(response, RoomSendResponse):
                raise RuntimeError(f"a person's message was refused: {response}")
            await self.inbox.wait(room_id, expected)
            latencies.append(time.perf_counter() - sent)


# -- the bots -----------------------------------------------------------------------------------


class BareNioBot:
    """What a minimal matrix-nio E2EE echo bot does: join direct chats, answer every text."""

    def __init__(self, homeserver: str, user: RegisteredUser, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.user_id = user.user_id
        self.client = AsyncClient(homeserver, user.user_id, device_id=user.device_id, store_path=str(store),
                                  config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True))
        self.client.restore_login(user.user_id, user.device_id, user.access_token)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_event_callback(self._on_text, RoomMessageText)
        self.send_seconds: list[float] = []  # filled only with --breakdown
        self.breakdown = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=SYNC_TIMEOUT_MS))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.user_id and event.membership == "invite":
            await self.client.join(room.room_id)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self.user_id:
            return
        started = time.perf_counter()
        await self.client.room_send(room.room_id, "m.room.message", {"msgtype": "m.text", "body": FIXED_ANSWER},
                                    ignore_unverified_devices=True)
        if self.breakdown:
            self.send_seconds.append(time.perf_counter() - started)


class Civicbot:
    """The real Matrix transport, router, services and SQLite database."""

    def __init__(self, synapse: SynapseServer, user: RegisteredUser, workdir: Path) -> None:
        self.user_id = user.user_id
        self.settings = make_settings(
            f"sqlite+aiosqlite:///{workdir / 'civicbot.db'}", workdir,
            matrix=MatrixSettings(homeserver=synapse.url, user_id=user.user_id, password=user.password,  # type: ignore[arg-type]
                                  store_path=workdir / "matrix-store"),
            limits=LimitsSettings(flood_messages=10_000),  # the flood guard is not what is measured
        )
        self.keys = KeyRing.generate()
        self.bot: Bot | None = None
        self.transport: MatrixTransport | None = None
        self.handle_seconds: list[float] = []  # filled only with --breakdown
        self.send_seconds: list[float] = []

    async def start(self, breakdown: bool) -> None:
        """The wiring of ``civicbot run`` (with shorter sync timeouts), optionally timed."""
        options = {"sync_timeout_ms": SYNC_TIMEOUT_MS, "backoff_initial": 0.2, "backoff_max": 1.0,
                   "connect_timeout": 30.0}
        bot = await assemble(self.settings, keys=self.keys,
                             transports=lambda services: build_platform_transports(services, matrix=options))
        transport = bot.transports["matrix"]
        assert isinstance(transport, MatrixTransport)
        self.bot, self.transport = bot, transport
        if breakdown:
            router = bot.router
            router.handle = self._timed(router.handle, self.handle_seconds)  # type: ignore[method-assign]
            transport.send = self._timed(transport.send, self.send_seconds)  # type: ignore[method-assign,assignment]
        await bot.start()

    @staticmethod
    def _timed(function: Callable[..., Awaitable[Any]], into: list[float]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - started)
        return timed

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop()


# -- the run ------------------------------------------------------------------------------------


async def _bounded(what: str, awaitable: Awaitable[Any], timeout: float) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise RuntimeError(f"{what} did not finish within {timeout:.0f}s") from None


async def _round(people: list[Person], bot_user_id: str, messages: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    await _bounded("a round", asyncio.gather(*(p.converse(bot_user_id, messages, latencies) for p in people)),
                   _round_timeout(len(people), messages))
    return time.perf_counter() - started, latencies


def _ms(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else float("nan")


async def run(peers: int, messages: int, rounds: int, breakdown: bool, workdir: Path) -> None:
    quiet_library_logging()
    synapse = SynapseServer(workdir / "synapse")
    await asyncio.to_thread(synapse.start)
    people: list[Person] = []
    bare: BareNioBot | None = None
    ours: Civicbot | None = None
    try:
        bare_user = synapse.register("benchbare")
        our_user = synapse.register("benchcivicbot")
        users = [synapse.register(f"benchperson{index}") for index in range(peers)]

        bare = BareNioBot(synapse.url, bare_user, workdir / "bare-store")
        bare.breakdown = breakdown
        ours = Civicbot(synapse, our_user, workdir / "civicbot")
        await _bounded("starting the bare nio bot", bare.start(), SETUP_TIMEOUT)
        await _bounded("starting civicbot", ours.start(breakdown), SETUP_TIMEOUT)
        for user in users:
            people.append(Person(Peer(synapse.url, user, workdir / f"peer-{user.localpart}")))
        await _bounded("starting the people", asyncio.gather(*(p.peer.start() for p in people)), SETUP_TIMEOUT)
        bots = (bare.user_id, ours.user_id)
        await _bounded("opening the encrypted chats",
                       asyncio.gather(*(p.open_chat(b) for p in people for b in bots)), SETUP_TIMEOUT)
        await _bounded("the warm-up (key exchange)",
                       asyncio.gather(*(p.warm_up(b) for p in people for b in bots)), SETUP_TIMEOUT)
        ours.handle_seconds.clear()
        ours.send_seconds.clear()
        bare.send_seconds.clear()

        total = peers * messages
        print(f"Matrix (E2EE) round trip, {peers} people x {messages} messages one after the other, "
              f"median of {rounds} rounds")
        print(f"{'scenario':<20}{'bare nio s':>12}{'civicbot s':>12}{'ratio':>8}{'ms/msg':>9}"
              f"{'p50 bare ms':>13}{'p50 ours ms':>13}")
        bare_times, our_times, bare_lat, our_lat = [], [], [], []
        for _ in range(rounds):
            elapsed, latencies = await _round(people, bare.user_id, messages)
            bare_times.append(elapsed)
            bare_lat.extend(latencies)
            elapsed, latencies = await _round(people, ours.user_id, messages)
            our_times.append(elapsed)
            our_lat.extend(latencies)
        b, o = statistics.median(bare_times), statistics.median(our_times)
        print(f"{'/help (read only)':<20}{b:>12.3f}{o:>12.3f}{o / b:>8.2f}{1000 * o / total:>9.2f}"
              f"{_ms(bare_lat):>13.1f}{_ms(our_lat):>13.1f}")
        print("ms/msg: civicbot's time per message sent; p50: the median wait of one person for one answer")

        await asyncio.sleep(1.0)  # any extra answer would arrive now
        expected = 1 + rounds * messages
        wrong = [p.peer.user_id for p in people for b in bots if p.inbox.count[p.rooms[b]] != expected]
        undecryptable = sum(len(p.peer.undecryptable) for p in people)
        if wrong or undecryptable:
            raise RuntimeError(f"{len(wrong)} chat(s) got another number of answers than messages sent; "
                               f"{undecryptable} answer(s) could not be decrypted")
        if breakdown:
            print(f"per answer, median: bare nio room_send {_ms(bare.send_seconds):.1f} ms; civicbot handler "
                  f"{_ms(ours.handle_seconds):.1f} ms of which transport.send {_ms(ours.send_seconds):.1f} ms "
                  f"(router + database {_ms(ours.handle_seconds) - _ms(ours.send_seconds):.1f} ms, "
                  "difference of medians)")
    finally:
        for person in people:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(person.peer.stop(), 10)
        for bot in (bare, ours):
            if bot is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bot.stop(), 20)
        await asyncio.to_thread(synapse.stop)


async def main(peers: int = 10, messages: int = 5, rounds: int = 3, breakdown: bool = False) -> None:
    for name, value in (("peers", peers), ("messages", messages), ("rounds", rounds)):
        if not 1 <= value <= LIMITS[name]:
            raise SystemExit(f"--{name} must be between 1 and {LIMITS[name]}")
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # stop Synapse on SIGTERM too
    try:
        with tempfile.TemporaryDirectory(prefix="civicbot-bench-") as tmp:
            await run(peers, messages, rounds, breakdown, Path(tmp))
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time civicbot's handler and sends (adds a wrapper; not for the headline numbers)")
    options = parser.parse_args()
    try:
        asyncio.run(main(options.peers, options.messages, options.rounds, options.breakdown))
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise SystemExit("interrupted; Synapse was stopped") from None
