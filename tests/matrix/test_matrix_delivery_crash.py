"""A real ``civicbot run`` process on Matrix, killed with SIGKILL three times during a 5,000-row drain
and started again: every row ends ``sent``, and every person receives each message exactly once,
in order. Rows sent but not yet recorded at a crash are sent again after their lease, with the
same transaction id, so the homeserver answers with the first event instead of posting another."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest
from matrix_peer import Peer, eventually
from matrix_support import MakePeer, unique
from sqlalchemy import func, select
from synapse_server import SynapseServer

from bot.core.model import Address, Outbound, Platform
from bot.core.security import KeyRing
from bot.services.outbox import Outbox, OutboxKind, ToParticipant
from bot.services.participants import Participants
from bot.storage import migrate
from bot.storage.db import Database
from bot.storage.models import OutboxMessage

REPO = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("CIVICBOT_TEST_MATRIX_CRASH_ROWS", "5000"))  # 5,000: about 15 min on a busy 2-core box
PEOPLE = 50  # ROWS / 50 messages in each encrypted direct chat: the chats are served concurrently


class BotProcess:
    """``civicbot run`` with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        script = Path(sys.executable).with_name("civicbot")
        command = [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *command, cwd=REPO, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)

    async def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 60)

    async def ensure_dead(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def sent_rows(url: str) -> int:
    database = Database(url)
    try:
        async with database.sessions() as session:
            return int(await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")) or 0)
    finally:
        await database.dispose()


async def queue(url: str, keys: KeyRing, rooms: list[str]) -> None:
    """One participant per direct chat, ROWS // PEOPLE numbered messages each."""
    database = Database(url)
    await migrate.upgrade(database)
    participants, outbox = Participants(keys), Outbox(keys)
    try:
        async with database.sessions.begin() as session:
            ids = [(await participants.register(session, keys.pseudonym("matrix", f"@p{n}:test"), "en",
                                                Address(Platform("matrix"), room))).id for n, room in enumerate(rooms)]
        async with database.sessions.begin() as session:
            for n in range(ROWS // PEOPLE):
                await outbox.enqueue_many(session, [(ToParticipant(pid, "matrix"), Outbound(f"{n:03d}"))
                                                    for pid in ids], OutboxKind.BULLETIN, ref="bulletin:1")
    finally:
        await database.dispose()


@pytest.mark.timeout(1200)  # 5,000 encrypted sends and three restarts on a shared two-core machine
async def test_sigkill_three_times_during_a_matrix_drain_sends_each_message_once(
        synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    keys = KeyRing.generate()
    key_file = tmp_path / "keys.json"
    keys.save(key_file)
    url = f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"
    bot_user = synapse.register(unique("bot"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({
        "CIVICBOT_MATRIX__HOMESERVER": synapse.url, "CIVICBOT_MATRIX__USER_ID": bot_user.user_id,
        "CIVICBOT_MATRIX__PASSWORD": bot_user.password, "CIVICBOT_MATRIX__STORE_PATH": str(tmp_path / "store"),
        "CIVICBOT_MATRIX__RATE_PER_SECOND": "10000",
        "CIVICBOT_DATABASE__URL": url, "CIVICBOT_SECURITY__KEY_FILE": str(key_file),
        "CIVICBOT_OUTBOX__LEASE_SECONDS": "6", "CIVICBOT_OUTBOX__POLL_SECONDS": "0.5",
    })
    bot = BotProcess(env, tmp_path / "civicbot.log")
    peers: list[Peer] = []
    try:
        await bot.start()
        peers = list(await asyncio.gather(*(make_peer() for _ in range(PEOPLE))))
        rooms = list(await asyncio.gather(*(peer.create_dm(bot_user.user_id) for peer in peers)))
        await asyncio.gather(*(peer.wait_joined(room, bot_user.user_id, timeout=90)
                               for peer, room in zip(peers, rooms, strict=True)))
        await queue(url, keys, rooms)
        for kill_at in (ROWS // 5, 2 * ROWS // 5, 3 * ROWS // 5):
            await eventually(lambda at=kill_at: _at_least(url, at), timeout=600, interval=0.2,  # type: ignore[misc]
                             what=f"{kill_at} rows sent")
            assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
            await bot.start()
        await eventually(lambda: _at_least(url, ROWS), timeout=900, interval=0.5, what="every row sent")
        for peer, room in zip(peers, rooms, strict=True):
            await peer.wait_from_bot(room, bot_user.user_id, ROWS // PEOPLE, timeout=300)
        await asyncio.sleep(2.0)  # a message sent twice would arrive now
        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        await bot.ensure_dead()
    assert await sent_rows(url) == ROWS
    for peer, room in zip(peers, rooms, strict=True):
        received = peer.from_bot(room, bot_user.user_id)
        bodies = [m.body for m in received]
        assert Counter(bodies).most_common(1)[0][1] == 1, "a message was delivered twice"
        assert bodies == [f"{n:03d}" for n in range(ROWS // PEOPLE)]  # all, once, in order
        assert all(m.decrypted for m in received) and not peer.undecryptable


async def _at_least(url: str, count: int) -> bool:
    return await sent_rows(url) >= count
