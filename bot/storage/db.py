"""Engine and sessions for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class Database:
    """Owns one engine and its session factory; passed to the services that need it."""

    __slots__ = ("url", "engine", "sessions")

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL for concurrent readers; foreign keys for cascades; secure_delete so erased
    rows are overwritten in the file instead of lingering in free pages; the rest for speed."""
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_immediate, not the driver
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
        "PRAGMA synchronous=NORMAL",  # with WAL: durable at checkpoints, consistent always
        "PRAGMA busy_timeout=30000",
        "PRAGMA temp_store=MEMORY",  # sorts and temporary indexes stay off the disk
        "PRAGMA journal_size_limit=67108864",  # the WAL file shrinks back to 64 MB after a checkpoint
    ):
        cursor.execute(pragma)
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    """Take SQLite's write lock when a transaction begins, not at its first write: a turn reads
    the dialog state and writes it back, and another worker must not slip in between."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def lock_person(session: AsyncSession, pseudonym: str) -> None:
    """Work on one person's conversation one transaction at a time, across workers: a PostgreSQL
    advisory lock held until the transaction ends (SQLite transactions already hold the write lock)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(pseudonym[:15], 16)})
