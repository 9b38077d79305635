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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_only

from bot.storage import sqlite_driver

log = logging.getLogger(__name__)

_ERASED = "civicbot.erased"
LOCK_TIMEOUT_SECONDS = 30.0  # SQLite's busy timeout, and the wait for this process's write turn
_SIDE_FILES = ("-wal", "-shm", "-journal")


def dialect_insert(dialect: str) -> Callable[..., Any]:
    """The dialect's ``insert`` (SQLite's or PostgreSQL's), the one with ``ON CONFLICT`` clauses."""
    return sqlite_insert if dialect == "sqlite" else postgresql_insert


def mark_erasure(session: AsyncSession) -> None:
    """Note that this transaction erases a person: once it commits, :meth:`Database.scrub` must run."""
    session.info[_ERASED] = True


def erased_in(session: AsyncSession) -> bool:
    return bool(session.info.get(_ERASED))


class Database:
    """Owns the engines and their session factories; passed to the services that need it."""

    __slots__ = ("url", "engine", "sessions", "_turn_sessions", "_checkpoints", "_turn_engine")

    def __init__(self, url: str, *, echo: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
        """``lock_timeout``: how long an SQLite transaction waits for the write lock before it fails."""
        self.url = url
        write_turns = WriteTurns(lock_timeout)  # one queue for the write lock, whichever engine asks
        self.engine = create_engine(url, echo=echo, lock_timeout=lock_timeout, write_turns=write_turns)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)
        self._turn_engine = _inline_engine(url, echo=echo, lock_timeout=lock_timeout, write_turns=write_turns)
        self._turn_sessions = (async_sessionmaker(self._turn_engine, expire_on_commit=False)
                               if self._turn_engine is not None else None)
        self._checkpoints = Checkpoints(self.engine, url, write_turns)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[AsyncSession]:
        """One inbound turn's transaction: committed at the end, rolled back on an error.

        On SQLite its statements, ``BEGIN`` and ``COMMIT`` included, run on the event loop's
        thread (:class:`bot.storage.sqlite_driver.InlineConnection`) and nothing in it waits for
        another round of the loop: every other turn waits for this one's write lock, so the
        lock is held for the turn's own work only. (SQLAlchemy's ``sessions.begin()`` context
        runs its commit and its close as tasks of their own: two more rounds.)
        """
        if self._turn_sessions is None:
            async with self.sessions.begin() as session:
                yield session
            return
        session = self._turn_sessions()
        try:
            async with session.begin():
                yield session
        finally:
            await session.close()  # after COMMIT or ROLLBACK: nothing left that could wait
        self._checkpoints.committed()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self._checkpoints.finish()
        if self._turn_engine is not None:
            await self._turn_engine.dispose()
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
                busy = await conn.run_sync(_checkpoint)
            if not busy:
                return True
            await asyncio.sleep(0.05 * (attempt + 1))
        log.warning("the SQLite write-ahead log could not be truncated now (busy readers); it will be retried")
        return False


def create_engine(url: str, *, echo: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS,
                  write_turns: WriteTurns | None = None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        _private_database_file(Path(parsed.database))
    return _sqlite_engine(url, sqlite_driver.engine_options() or {}, echo=echo, lock_timeout=lock_timeout,
                          write_turns=write_turns or WriteTurns(lock_timeout))


def _inline_engine(url: str, *, echo: bool, lock_timeout: float, write_turns: WriteTurns) -> AsyncEngine | None:
    """The engine for turns (see :meth:`Database.turn`): an SQLite file, where the driver fits."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None  # PostgreSQL's turns take the usual sessions; a memory database is one connection's
    options = sqlite_driver.engine_options(inline_busy_ms=int(lock_timeout * 1000))
    if options is None:
        return None
    return _sqlite_engine(url, options, echo=echo, lock_timeout=lock_timeout, write_turns=write_turns,
                          more_pragmas=sqlite_driver.INLINE_PRAGMAS)


def _sqlite_engine(url: str, options: dict[str, Any], *, echo: bool, lock_timeout: float, write_turns: WriteTurns,
                   more_pragmas: tuple[str, ...] = ()) -> AsyncEngine:
    # A connection goes back to the pool after its COMMIT or ROLLBACK; the pool's own rollback on
    # return would cost one more trip to the connection's thread, with the write lock still held.
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": lock_timeout}, pool_reset_on_return=None,
                                 **options)
    event.listen(engine.sync_engine, "reset", _end_open_transaction)
    event.listen(engine.sync_engine, "connect",
                 partial(_sqlite_pragmas, busy_ms=int(lock_timeout * 1000), more=more_pragmas))
    write_turns.attach(engine)
    return engine


def _end_open_transaction(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """On return to the pool: roll back only a transaction still open (an error, a cancelled task)."""
    if state.asyncio_safe and sqlite_driver.in_transaction(dbapi_connection):
        dbapi_connection.rollback()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int, more: tuple[str, ...] = ()) -> None:
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
        *more,
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


def _checkpoint(connection: Connection, mode: str = "TRUNCATE") -> bool:
    """Run outside any transaction (a checkpoint cannot run inside one). True if readers kept it busy."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(f"PRAGMA wal_checkpoint({mode})")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bool(row and row[0])


class Checkpoints:
    """Copies the write-ahead log into the database file, in a thread, as the log grows.

    Turns commit on the event loop's thread with SQLite's automatic checkpoint off: a checkpoint
    waits for the disk (about 10 ms on these machines), and the loop must not. SQLite's own rule
    is kept: once the log holds about 1,000 pages it is checkpointed, here by a connection of the
    other engine, in aiosqlite's thread, while it holds the write turn as SQLite's automatic
    checkpoint does (a checkpoint that writers keep appending to never completes, and only a
    complete one lets the next writer start the log from its beginning again). ``PASSIVE``: it
    waits for no reader. The log's size is looked at every few turns (one ``stat``).
    """

    __slots__ = ("_engine", "_turns", "_wal", "_commits", "_running")

    CHECK_EVERY = 32  # turns
    LIMIT_BYTES = 1000 * 4096  # SQLite's default: 1,000 pages of 4 KiB

    def __init__(self, engine: AsyncEngine, url: str, turns: WriteTurns) -> None:
        database = make_url(url).database
        self._engine = engine
        self._turns = turns
        self._wal = Path(database + "-wal") if database and database != ":memory:" else None
        self._commits = 0
        self._running: asyncio.Task[None] | None = None

    def committed(self) -> None:
        """A turn committed on the loop's thread: checkpoint if the log has grown past the limit."""
        self._commits += 1
        if self._wal is None or self._commits % self.CHECK_EVERY or (self._running and not self._running.done()):
            return
        try:
            size = self._wal.stat().st_size
        except OSError:  # not there (yet): nothing to copy
            return
        if size >= self.LIMIT_BYTES:
            self._running = asyncio.get_running_loop().create_task(self._checkpoint(), name="sqlite-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            async with self._turns.held(), self._engine.connect() as connection:
                await connection.run_sync(partial(_checkpoint, mode="PASSIVE"))
        except Exception as exc:  # the next check tries again
            log.warning("checkpointing the SQLite write-ahead log failed: %s", type(exc).__name__)

    async def finish(self) -> None:
        """Wait for a checkpoint under way (before the engine is disposed of)."""
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)


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
                await_only(self._take())
            except TimeoutError:  # a transaction left open somewhere: fail as SQLite's busy timeout would
                raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")) \
                    from None
            self._holder = holder
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(holder)
            raise

    async def _take(self) -> None:
        """The write turn, or TimeoutError. A free lock is taken without a round of the loop
        (``asyncio.wait_for`` would run the wait as a task of its own: two rounds per turn)."""
        async with asyncio.timeout(self._timeout):
            await self._lock.acquire()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the write turn without a transaction (a checkpoint runs outside one)."""
        await self._take()
        try:
            yield
        finally:
            self._lock.release()

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
