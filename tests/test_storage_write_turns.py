"""SQLite transactions of one process queue for the write lock in arrival order (WriteTurns)
instead of sleeping in SQLite's busy handler, and a transaction that ends badly never keeps the
queue waiting."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, text

from bot.storage.db import Database


@pytest.fixture
async def counter(sqlite_url: str) -> Database:  # type: ignore[misc]
    database = Database(sqlite_url)
    async with database.sessions.begin() as session:
        await session.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await session.execute(text("INSERT INTO counter VALUES (0)"))
    yield database
    await database.dispose()


async def _increment(database: Database, order: list[int], index: int) -> None:
    async with database.sessions.begin() as session:
        order.append(index)
        value = (await session.execute(text("SELECT n FROM counter"))).scalar_one()
        await asyncio.sleep(0)  # let everyone else try to begin meanwhile
        await session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})


async def test_transactions_take_turns_in_arrival_order(counter: Database) -> None:
    """A read-then-write in one transaction never loses an update, turns go first come, first served,
    and no connection asks SQLite for the write lock while another one of this process holds it."""
    inside: set[int] = set()  # connections between BEGIN and going back to the pool
    overlaps: list[int] = []

    def before(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement == "BEGIN IMMEDIATE":
            overlaps.append(len(inside))

    def after(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement == "BEGIN IMMEDIATE":
            inside.add(id(conn.connection.dbapi_connection))

    event.listen(counter.engine.sync_engine, "before_cursor_execute", before)
    event.listen(counter.engine.sync_engine, "after_cursor_execute", after)
    event.listen(counter.engine.sync_engine.pool, "checkin", lambda dbapi, _record: inside.discard(id(dbapi)))
    order: list[int] = []
    tasks = []
    for index in range(40):
        tasks.append(asyncio.create_task(_increment(counter, order, index)))
        await asyncio.sleep(0)  # each asks for its turn before the next is created
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    async with counter.sessions.begin() as session:
        assert (await session.execute(text("SELECT n FROM counter"))).scalar_one() == 40
    assert order == sorted(order)
    assert len(overlaps) >= 40 and set(overlaps) == {0}


async def test_a_failed_or_cancelled_transaction_frees_the_turn(counter: Database) -> None:
    with pytest.raises(RuntimeError):
        async with counter.sessions.begin() as session:
            await session.execute(text("UPDATE counter SET n = 100"))
            raise RuntimeError("a bug in the middle of a turn")

    started = asyncio.Event()

    async def stuck() -> None:
        async with counter.sessions.begin() as session:
            await session.execute(text("UPDATE counter SET n = 200"))
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stuck())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    with pytest.raises(Exception):  # noqa: B017 (the statement's own error, whatever the driver calls it)
        async with counter.sessions.begin() as session:
            await session.execute(text("UPDATE no_such_table SET n = 1"))

    order: list[int] = []
    await asyncio.wait_for(_increment(counter, order, 0), timeout=5)  # nobody holds the turn any more
    async with counter.sessions.begin() as session:
        assert (await session.execute(text("SELECT n FROM counter"))).scalar_one() == 1


async def test_a_transaction_left_open_makes_others_fail_as_a_busy_database_would(sqlite_url: str) -> None:
    """Not wait forever: after the lock timeout, the same error SQLite's busy timeout gives."""
    from sqlalchemy.exc import OperationalError

    database = Database(sqlite_url, lock_timeout=0.2)
    try:
        async with database.sessions() as left_open:
            await left_open.execute(text("CREATE TABLE t (n INTEGER)"))  # begins, and is not committed
            with pytest.raises(OperationalError, match="database is locked"):
                async with database.sessions.begin() as session:
                    await session.execute(text("SELECT 1"))
            await left_open.commit()
        async with database.sessions.begin() as session:  # the turn is free again
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    finally:
        await database.dispose()
