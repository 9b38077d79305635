"""An inbound turn's transaction on SQLite (``Database.turn``) runs on the event loop's own thread:
its statements, ``BEGIN`` and ``COMMIT`` never make a trip to aiosqlite's thread while the lock is
free, yet a turn that must wait for another process waits in that thread, the loop carries on,
the write turns still queue in arrival order with the other engine's transactions, an error or a
cancellation rolls back, and the write-ahead log is checkpointed elsewhere as it grows."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.db import Checkpoints, Database
from tests.support import CountingQueue


@pytest.fixture
async def database(sqlite_url: str) -> Database:  # type: ignore[misc]
    database = Database(sqlite_url)
    async with database.sessions.begin() as session:
        await session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)"))
    yield database
    await database.dispose()


def _file(url: str) -> Path:
    return Path(url.split("///", 1)[1])


async def _thread_of(session: AsyncSession) -> int:
    """The thread that runs the session's statements (asked of SQLite itself)."""
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    raw._conn.create_function("thread_id", 0, threading.get_ident)  # type: ignore[union-attr]
    return int((await session.execute(text("SELECT thread_id()"))).scalar_one())


class _Ticker:
    """Counts rounds of the event loop while it runs: a loop that is blocked does not tick."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Ticker:
        async def tick() -> None:
            while True:
                self.ticks += 1
                await asyncio.sleep(0.01)
        self._task = asyncio.create_task(tick())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_a_turn_runs_on_the_loops_thread_without_a_trip(database: Database) -> None:
    async with database.turn() as session:
        assert await _thread_of(session) == threading.get_ident()
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
    trips = driver._tx = CountingQueue(driver._tx)  # type: ignore[union-attr]
    try:
        async with database.turn() as session:  # the same pooled connection: BEGIN ... COMMIT counted
            assert (await (await session.connection()).get_raw_connection()).driver_connection is driver
            await session.execute(text("INSERT INTO notes (body) VALUES (x'01')"))
            assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 1
    finally:
        driver._tx = trips.queue  # type: ignore[union-attr]
    assert trips.trips == 0, "BEGIN, the statements and COMMIT ran on the loop's thread"
    async with database.sessions.begin() as other:  # committed: the other engine sees it
        assert (await other.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 1
        assert await _thread_of(other) != threading.get_ident()  # everything else stays in a thread


async def test_a_turn_that_must_wait_for_another_process_waits_in_the_thread(database: Database,
                                                                              sqlite_url: str) -> None:
    other_process = sqlite3.connect(_file(sqlite_url), isolation_level=None, check_same_thread=False)
    try:
        other_process.execute("BEGIN IMMEDIATE")  # a CLI command beside the bot, say

        async def turn() -> None:
            async with database.turn() as session:
                await session.execute(text("INSERT INTO notes (body) VALUES (x'02')"))

        async with _Ticker() as ticker:
            waiting = asyncio.create_task(turn())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            assert ticker.ticks >= 20, "the loop went on while the turn waited"
            other_process.execute("COMMIT")
            await asyncio.wait_for(waiting, timeout=10)
        async with database.turn() as session:  # and the next turn runs inline again
            assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 1
    finally:
        other_process.close()


async def test_a_turn_gives_up_as_a_busy_database_would(sqlite_url: str) -> None:
    database = Database(sqlite_url, lock_timeout=0.3)
    other_process = sqlite3.connect(_file(sqlite_url), isolation_level=None, check_same_thread=False)
    try:
        other_process.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            async with database.turn() as session:
                await session.execute(text("SELECT 1"))
        other_process.execute("COMMIT")
        async with database.turn() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        other_process.close()
        await database.dispose()


async def test_turns_and_other_transactions_share_one_queue(database: Database) -> None:
    """A turn and a transaction of the other engine never hold SQLite's write lock at once: both
    queue for the one write turn, in arrival order."""
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def background() -> None:
        async with database.sessions.begin() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (x'03')"))
            order.append("background")
            holding.set()
            await release.wait()

    async def turn() -> None:
        async with database.turn() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (x'04')"))
            order.append("turn")

    first = asyncio.create_task(background())
    await holding.wait()
    second = asyncio.create_task(turn())
    await asyncio.sleep(0.2)
    assert order == ["background"], "the turn waits for its turn, not in SQLite's busy handler"
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
    assert order == ["background", "turn"]


async def test_an_error_or_a_cancellation_rolls_the_turn_back(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.turn() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (x'05')"))
            raise RuntimeError("a bug in the middle of a turn")

    inside = asyncio.Event()

    async def stuck() -> None:
        async with database.turn() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (x'06')"))
            inside.set()
            await asyncio.sleep(3600)  # a follow-up that hangs, say

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    async with database.turn() as session:  # the write turn is free, nothing was kept
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 0
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
    assert not raw._conn.in_transaction  # type: ignore[union-attr]  # back in the pool, nothing left open


async def test_the_log_is_checkpointed_although_turns_never_do_it(database: Database, sqlite_url: str) -> None:
    """Turns commit with SQLite's automatic checkpoint off (a checkpoint waits for the disk); the
    log is copied into the database file in a thread instead, and starts again from its beginning,
    so it does not grow without end however many turns write."""
    wal = Path(str(_file(sqlite_url)) + "-wal")
    blob = bytes(64 * 1024)
    largest = written = 0
    for _ in range(12 * Checkpoints.CHECK_EVERY):  # about 25 MB through turns alone
        async with database.turn() as session:
            await session.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": blob})
        written += len(blob)
        await asyncio.sleep(0)  # a bot waits for the network between turns: the checkpoint runs then
        largest = max(largest, wal.stat().st_size)
    assert written > 6 * Checkpoints.LIMIT_BYTES
    assert largest < 2 * Checkpoints.LIMIT_BYTES
