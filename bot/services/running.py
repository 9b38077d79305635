"""Who is using the key file and the database: running bots, or a key rotation.

A running bot holds a shared lock for its whole life; ``keys rotate`` needs an exclusive one.
A bot that kept running during a rotation would go on sealing with the old key ring, and
``--retire`` would then make what it sealed unreadable. Two locks, so every layout is covered:

- ``flock`` on the key file itself (works on a read-only mount; every process on this host);
- on PostgreSQL, an advisory lock in the database (workers on other hosts, with their own
  copy of the key file).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import Database

_ADVISORY_KEY = 0x63697672  # "civr": one lock id for running bots and rotations


class BotRunning(Exception):
    """A bot is running with this key file or on this database."""


class RotationRunning(Exception):
    """A key rotation is running; a bot must not start now."""


@asynccontextmanager
async def as_running_bot(key_file: Path, database: Database) -> AsyncIterator[None]:
    """Held by ``civicbot run`` from start to exit. Raises :class:`RotationRunning`."""
    async with _held(key_file, database, exclusive=False):
        yield


@asynccontextmanager
async def as_key_rotation(key_file: Path, database: Database) -> AsyncIterator[None]:
    """Held by ``civicbot keys rotate``. Raises :class:`BotRunning` if any bot is running."""
    async with _held(key_file, database, exclusive=True):
        yield


@asynccontextmanager
async def _held(key_file: Path, database: Database, *, exclusive: bool) -> AsyncIterator[None]:
    busy: type[Exception] = BotRunning if exclusive else RotationRunning
    fd = os.open(key_file, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        if database.is_sqlite:
            yield
            return
        conn = await (await database.engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
        try:
            if not await _try_advisory(conn, exclusive):
                raise busy()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)" if exclusive
                                        else "SELECT pg_advisory_unlock_shared(:k)"), {"k": _ADVISORY_KEY})
        finally:
            await conn.close()
    finally:
        os.close(fd)  # releases the flock


async def _try_advisory(conn: AsyncConnection, exclusive: bool) -> bool:
    query = "SELECT pg_try_advisory_lock(:k)" if exclusive else "SELECT pg_try_advisory_lock_shared(:k)"
    return bool(await conn.scalar(text(query), {"k": _ADVISORY_KEY}))
