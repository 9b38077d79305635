"""The delivery engine as real ``civicbot run`` processes: killed with SIGKILL three times during a
5,000-row drain, and two workers draining one PostgreSQL outbox together.

Telegram has no idempotency key, so rows that were sent but not yet recorded when a process
dies are sent again after their lease runs out: at most the in-flight window (``outbox.window``)
per crash. Nothing is lost, and each person's messages first arrive in the order they were queued.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections import Counter
from pathlib import Path

import pytest
from botapi_server import LocalBotApi
from sqlalchemy import func, select
from telegram_support import process_environment
from test_telegram_process import BotProcess

from bot.config import OutboxSettings
from bot.core.model import Address, Outbound, Platform
from bot.core.security import KeyRing
from bot.services.outbox import Outbox, OutboxKind, ToParticipant
from bot.services.participants import Participants
from bot.storage import migrate
from bot.storage.db import Database
from bot.storage.models import OutboxMessage

ROWS = 5_000
PEOPLE = 500  # ten messages each, so per-person order is at stake too
LIFTED_RATE = 100_000.0
WINDOW = OutboxSettings().window_for(LIFTED_RATE)


async def queued_bulletin(url: str, keys: KeyRing, api: LocalBotApi) -> list[int]:
    """PEOPLE registered participants with ROWS // PEOPLE numbered messages each; returns chat ids."""
    database = Database(url)
    await migrate.upgrade(database)
    participants, outbox = Participants(keys), Outbox(keys)
    users = [api.user() for _ in range(PEOPLE)]
    try:
        async with database.sessions.begin() as session:
            ids = [(await participants.register(session, keys.pseudonym("telegram", str(u.id)), "en",
                                                Address(Platform("telegram"), str(u.id)))).id for u in users]
        for n in range(ROWS // PEOPLE):
            async with database.sessions.begin() as session:
                await outbox.enqueue_many(session, [(ToParticipant(pid, "telegram"), Outbound(f"{n:02d}:{pid}"))
                                                    for pid in ids], OutboxKind.BULLETIN, ref="bulletin:1")
    finally:
        await database.dispose()
    return [u.id for u in users]


async def statuses(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        async with database.sessions() as session:
            rows = await session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
            return {status: count for status, count in rows}
    finally:
        await database.dispose()


def environment(api: LocalBotApi, url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return process_environment(api, tmp_path, database_url=url,
                               CIVICBOT_TELEGRAM__RATE_PER_SECOND=str(LIFTED_RATE),
                               CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0",
                               CIVICBOT_OUTBOX__LEASE_SECONDS="4",  # a killed worker's rows come back quickly
                               **extra)


def arrivals(api: LocalBotApi) -> Counter[str]:
    return Counter(m.text for m in api.sent)


def check_order(api: LocalBotApi, chats: list[int]) -> None:
    """Each person's messages first arrived in the order they were queued (repeats aside)."""
    for chat_id in chats:
        firsts: list[str] = []
        for message in api.sent_to(chat_id):
            if message.text not in firsts:
                firsts.append(message.text)
        if firsts != sorted(firsts):
            print("ORDER", [(m.text, round(m.at, 3)) for m in api.sent_to(chat_id)])
        assert firsts == sorted(firsts) and len(firsts) == ROWS // PEOPLE


async def test_sigkill_three_times_during_a_drain_loses_nothing(db_url: str, bot_api: LocalBotApi,
                                                                tmp_path: Path) -> None:
    keys = KeyRing.generate()
    key_file = tmp_path / "keys.json"
    keys.save(key_file)
    chats = await queued_bulletin(db_url, keys, bot_api)
    bot = BotProcess(environment(bot_api, db_url, tmp_path), tmp_path / "civicbot.log")
    try:
        for kill_at in (ROWS // 5, 2 * ROWS // 5, 3 * ROWS // 5):
            await bot.start()
            await bot_api.wait_for(lambda at=kill_at: len(bot_api.sent) >= at, timeout=120)  # type: ignore[misc]
            assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
        await bot.start()
        for _ in range(600):
            if await statuses(db_url) == {"sent": ROWS}:
                break
            await asyncio.sleep(0.2)
        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        await bot.ensure_dead()
    assert await statuses(db_url) == {"sent": ROWS}
    received = arrivals(bot_api)
    assert len(received) == ROWS  # every row arrived
    repeats = sum(received.values()) - ROWS
    print(f"\nsent again after three SIGKILLs: {repeats} (bound: 3 x window of {WINDOW})")
    assert repeats <= 3 * WINDOW
    check_order(bot_api, chats)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.postgres
async def test_two_workers_on_one_postgresql_send_each_row_once(bot_api: LocalBotApi, tmp_path: Path) -> None:
    from tests.support import postgres_database, postgres_reachable

    if reason := await postgres_reachable():
        pytest.skip(reason)
    keys = KeyRing.generate()
    key_file = tmp_path / "keys.json"
    keys.save(key_file)
    async with postgres_database() as url:
        chats = await queued_bulletin(url, keys, bot_api)
        workers = []
        for n in range(2):  # several workers run in webhook mode (one poller per bot at most)
            port = free_port()
            env = environment(bot_api, url, tmp_path, CIVICBOT_TELEGRAM__MODE="webhook",
                              CIVICBOT_TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
                              CIVICBOT_TELEGRAM__WEBHOOK_PORT=str(port),
                              CIVICBOT_TELEGRAM__WEBHOOK_SECRET=f"secret{n}")
            workers.append(BotProcess(env, tmp_path / f"worker{n}.log"))
        try:
            await asyncio.gather(*(worker.start() for worker in workers))
            await bot_api.wait_for(lambda: len(bot_api.sent) >= ROWS, timeout=180)
            for _ in range(300):
                if await statuses(url) == {"sent": ROWS}:
                    break
                await asyncio.sleep(0.2)
            assert [await worker.signal(signal.SIGTERM) for worker in workers] == [0, 0]
        finally:
            for worker in workers:
                await worker.ensure_dead()
        assert await statuses(url) == {"sent": ROWS}
    received = arrivals(bot_api)
    assert len(received) == ROWS and set(received.values()) == {1}  # each row exactly once
    check_order(bot_api, chats)
