"""Engine and sessions for SQLite (embedded default) and PostgreSQL (scale-out).

SQLite files are created readable by their owner only, and after an erasure the write-ahead
log is checkpointed and truncated (:meth:`Database.scrub`): otherwise a copy of
``civicbot.db-wal`` would still hold the erased rows, the person's wrapped data key among them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only

from bot.storage import sqlite_driver

log = logging.getLogger(__name__)

_ERASED = "civicbot.erased"
LOCK_TIMEOUT_SECONDS = 30.0  # SQLite's busy timeout, and the wait for this process's write turn
_SIDE_FILES = ("-wal", "-shm", "-journal")


def mark_erasure(session: AsyncSession) -> None:
    """Note that this transaction erases a person: once it commits, :meth:`Database.scrub` must run."""
    session.info[_ERASED] = True


def erased_in(session: AsyncSession) -> bool:
    return bool(session.info.get(_ERASED))


class Database:
    """Owns one engine and its session factory; passed to the services that need it."""

    __slots__ = ("url", "engine", "sessions")

    def __init__(self, url: str, *, echo: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        """``lock_timeout``: how long an SQLite transaction waits for the write lock before it fails."""
        self.url = url
        self.engine = create_engine(url, echo=echo, lock_timeout=lock_timeout)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def scrub(self, attempts: int = 5) -> bool:
        """Copy the write-ahead log into the database file and truncate it to zero bytes.

        With ``secure_delete`` on, erased rows are then overwritten in the file, and the log no
        longer holds older page images of them. Waits for readers (busy timeout) and retries;
        returns False if readers kept the log busy (the next erasure or purge tries again).
        PostgreSQL has no such file to scrub: there, crypto-shredding and key retirement cover it.
        """
        if not self.is_sqlite:
            return True
        for attempt in range(attempts):
            async with self.engine.connect() as conn:
                busy = await conn.run_sync(_checkpoint_truncate)
            if not busy:
                return True
            await asyncio.sleep(0.05 * (attempt + 1))
        log.warning("the SQLite write-ahead log could not be truncated now (busy readers); it will be retried")
        return False


def create_engine(url: str, *, echo: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        _private_database_file(Path(parsed.database))
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": lock_timeout},
                                 **sqlite_driver.engine_options())
    event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, busy_ms=int(lock_timeout * 1000)))
    WriteTurns(lock_timeout).attach(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    """WAL for concurrent readers; foreign keys for cascades; secure_delete so erased
    rows are overwritten in the file instead of lingering in free pages; the rest for speed."""
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_immediate, not the driver
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA secure_delete=ON",
        "PRAGMA synchronous=NORMAL",  # with WAL: durable at checkpoints, consistent always
        f"PRAGMA busy_timeout={busy_ms}",
        "PRAGMA temp_store=MEMORY",  # sorts and temporary indexes stay off the disk
        # A log that was checkpointed and restarts is truncated to nothing, not kept at some size with
        # old page images in it (one truncation per checkpoint cycle: cheap). Erasures and purges
        # also checkpoint and truncate at once (Database.scrub).
        "PRAGMA journal_size_limit=0",
    ):
        cursor.execute(pragma)
    cursor.close()


def _private_database_file(path: Path) -> None:
    """Create the database file (and its directory) for its owner only, or make an existing one so.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode, so they follow.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        os.chmod(path.parent, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(file, mode & 0o700)
            log.warning("%s was readable by other users; it is now readable by its owner only", file.name)


def _checkpoint_truncate(connection: Connection) -> bool:
    """Run outside any transaction (a checkpoint cannot run inside one). True if readers kept it busy."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bool(row and row[0])


class WriteTurns:
    """This process's transactions take SQLite's write lock one after the other, in arrival order.

    Every transaction begins ``IMMEDIATE`` (takes the write lock at once): a turn reads the
    dialog state and writes it back, and another worker must not slip in between. Left to
    SQLite, connections that find the lock taken sleep in its busy handler (1, 2, 5 ... 100 ms)
    and the lock sits free while they sleep. Here a connection of this process first waits for
    its turn on an ``asyncio.Lock`` (FIFO), held until the connection goes back to the pool,
    i.e. after its ``COMMIT`` or ``ROLLBACK`` really ran; the busy timeout still arbitrates
    between processes (a CLI command beside the running bot).
    """

    __slots__ = ("_holder", "_lock", "_timeout")

    def __init__(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        self._lock = asyncio.Lock()
        self._holder: int | None = None  # id() of the DB-API connection whose turn it is
        self._timeout = timeout

    def attach(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        event.listen(sync, "begin", self._begin)
        # However a transaction ends (commit, rollback, an error, a cancelled task, invalidation),
        # its connection goes back to the pool or is closed: that ends the turn.
        event.listen(sync.pool, "checkin", self._released)
        event.listen(sync.pool, "close", self._released)
        event.listen(sync.pool, "detach", self._released)
        event.listen(sync.pool, "invalidate", lambda dbapi, record, exc: self._released(dbapi, record))

    def _begin(self, connection: Connection) -> None:
        holder = id(connection.connection.dbapi_connection)
        if self._holder != holder:  # a connection keeps its turn for its next transaction
            try:  # runs inside SQLAlchemy's greenlet: awaits the event loop
                await_only(asyncio.wait_for(self._lock.acquire(), self._timeout))
            except TimeoutError:  # a transaction left open somewhere: fail as SQLite's busy timeout would
                raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")) \
                    from None
            self._holder = holder
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(holder)
            raise

    def _released(self, dbapi: Any, _record: Any) -> None:
        self._release(id(dbapi))

    def _release(self, holder: int) -> None:
        if self._holder == holder and self._lock.locked():
            self._holder = None
            self._lock.release()


async def lock_person(session: AsyncSession, pseudonym: str) -> None:
    """Work on one person's conversation one transaction at a time, across workers: a PostgreSQL
    advisory lock held until the transaction ends (SQLite transactions already hold the write lock)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(pseudonym[:15], 16)})
