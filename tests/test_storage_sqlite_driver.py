"""The SQLite driver: one trip to aiosqlite's thread per statement, with everything SQLAlchemy
reads from a cursor (rows, row counts, the last row id, errors) as the stock adapter gives it."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, text, update

from bot.storage.db import Database
from bot.storage.sqlite_driver import OneTripCursor
from tests.support import CountingQueue

_meta = MetaData()
_notes = Table("notes", _meta, Column("id", Integer, primary_key=True), Column("body", String, unique=True))


@pytest.fixture
async def database(sqlite_url: str) -> Database:  # type: ignore[misc]
    database = Database(sqlite_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
    yield database
    await database.dispose()


async def test_the_engine_uses_the_one_trip_cursor(database: Database) -> None:
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert type(raw.dbapi_connection)._cursor_cls is OneTripCursor  # type: ignore[union-attr]


async def test_one_trip_per_statement(database: Database) -> None:
    async with database.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        counting = CountingQueue(driver._tx)  # type: ignore[union-attr]
        driver._tx = counting  # type: ignore[union-attr]
        await conn.execute(text("SELECT 1"))  # begins the transaction (BEGIN IMMEDIATE) first
        begun = counting.trips
        assert begun == 2
        assert (await conn.execute(select(_notes.c.id))).all() == []
        await conn.execute(insert(_notes).values(body="a"))
        assert counting.trips == begun + 2
        await conn.commit()
        assert counting.trips == begun + 3


async def test_rows_counts_ids_and_errors_are_those_sqlalchemy_expects(database: Database) -> None:
    async with database.engine.begin() as conn:
        first = await conn.execute(insert(_notes).values(body="first"))
        assert first.inserted_primary_key == (1,) and first.rowcount == 1
        many = await conn.execute(insert(_notes), [{"body": f"n{i}"} for i in range(5)])
        assert many.rowcount == 5
        returned = await conn.execute(insert(_notes).values(body="back").returning(_notes.c.id, _notes.c.body))
        assert returned.one() == (7, "back")
        changed = await conn.execute(update(_notes).where(_notes.c.body.like("n%")).values(body=_notes.c.body + "!"))
        assert changed.rowcount == 5
        rows = (await conn.execute(select(_notes.c.body).order_by(_notes.c.id))).scalars().all()
        assert rows == ["first", "n0!", "n1!", "n2!", "n3!", "n4!", "back"]
        streamed = await conn.stream(select(_notes.c.id).order_by(_notes.c.id))  # a server-side cursor
        assert [row.id async for row in streamed] == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(exc.IntegrityError):
        async with database.engine.begin() as conn:
            await conn.execute(insert(_notes).values(body="first"))
    with pytest.raises(exc.OperationalError):
        async with database.engine.begin() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    async with database.sessions.begin() as session:  # the failed transactions left nothing behind
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 7


async def test_without_the_internals_it_needs_the_stock_adapter_is_kept(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.storage import sqlite_driver

    monkeypatch.setattr(sqlite_driver, "_fits", lambda: False)
    assert sqlite_driver.engine_options() == {}
    database = Database(sqlite_url)
    try:
        async with database.sessions.begin() as session:
            assert (await session.execute(text("SELECT 41 + 1"))).scalar_one() == 42
        async with database.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert type(raw.dbapi_connection)._cursor_cls is not OneTripCursor  # type: ignore[union-attr]
    finally:
        await database.dispose()
