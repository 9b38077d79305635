"""SQLite statements in one trip to aiosqlite's thread instead of three or four.

aiosqlite runs each SQLite connection in a thread of its own, and SQLAlchemy's adapter makes
a separate trip there to open a cursor, to execute, to fetch the rows and to close the
cursor. Each trip waits for the event loop to come round again, and every SQLite transaction
of the process holds the write lock meanwhile (:class:`bot.storage.db.WriteTurns`): under a
burst of turns those waits were most of a turn's time. Here a statement is executed, fetched
and closed by one function in that thread, and the adapter is handed the finished result.
An inbound turn goes further (:class:`InlineConnection`): its transaction makes no trip at all.

This leans on two internals: SQLAlchemy's ``AsyncAdapt_aiosqlite_connection._cursor_cls`` and
aiosqlite's ``Connection._execute`` (which SQLAlchemy's own adapter uses too). Where either
is missing, :func:`engine_options` returns nothing and the engine keeps the stock adapter.
"""

from __future__ import annotations

import collections
import logging
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite import aiosqlite as adapter
from sqlalchemy.util import EMPTY_DICT

log = logging.getLogger(__name__)

_Result = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Result:
    """In aiosqlite's thread: the whole statement, its rows and its counts."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        return description, cursor.fetchall() if description else [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: str, parameters: Sequence[Any]) -> tuple[int, int | None]:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(adapter.AsyncAdapt_aiosqlite_cursor):
    """A cursor whose results arrive complete: nothing is left open in the thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no cursor is opened in the thread up front
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _async_soft_close(self) -> None:
        return None  # the thread's cursor is already closed; the rows stay readable here

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            result: _Result = await connection._execute(_run, connection._conn, operation, parameters)
        self._keep(result)

    def _keep(self, result: _Result) -> None:
        """What SQLAlchemy reads from the cursor: the rows, their description and the counts."""
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            self._rowcount, self._lastrowid = await connection._execute(
                _run_many, connection._conn, operation, seq_of_parameters)


class InlineCursor(OneTripCursor):
    """Runs a transaction's statements on the event loop's own thread.

    Inside ``BEGIN IMMEDIATE`` the connection holds SQLite's write lock, so no statement waits
    for a lock, and a turn's statements read and write a handful of rows by key: tens of
    microseconds. A trip to aiosqlite's thread costs more than that and, worse, a whole round of
    a busy event loop with the write lock held, which is what every other turn waits for.
    ``BEGIN`` runs here too when the lock is free; when another process holds it, it waits in
    the thread (with the busy timeout), never on the loop. Statements outside a transaction
    keep to the thread.
    """

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        adapt: InlineConnection = self._adapt_connection  # type: ignore[assignment]
        sqlite = self._connection._conn
        if not sqlite.in_transaction and not _BEGIN.match(operation):
            return await super()._execute_async(operation, parameters)
        async with adapt._execute_mutex:
            try:
                result = _run(sqlite, operation, parameters)
            except sqlite3.OperationalError as exc:
                if sqlite.in_transaction or not _busy(exc):
                    raise
                # Another process holds the write lock: wait for it in the thread, as usual.
                result = await self._connection._execute(_run_waiting, sqlite, operation, parameters, adapt.busy_ms)
        self._keep(result)


_BEGIN = re.compile(r"\s*BEGIN\b", re.IGNORECASE)


def _busy(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _run_waiting(connection: sqlite3.Connection, operation: str, parameters: Any, busy_ms: int) -> _Result:
    """In aiosqlite's thread: the statement with the busy timeout on (inline it is off)."""
    connection.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        return _run(connection, operation, parameters)
    finally:
        connection.execute("PRAGMA busy_timeout=0")


class _Connection(adapter.AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class InlineConnection(adapter.AsyncAdapt_aiosqlite_connection):
    """A connection whose transactions run on the event loop's thread (:class:`InlineCursor`),
    ``COMMIT`` and ``ROLLBACK`` included: with WAL and ``synchronous=NORMAL`` a commit appends
    to the log without waiting for the disk. What does wait for the disk, the checkpoint, is
    turned off here (``wal_autocheckpoint=0``) and left to another connection, in a thread (see
    :class:`bot.storage.db.Checkpoints`). Its busy timeout is 0 on the loop; ``busy_ms`` is the
    wait for a ``BEGIN`` in the thread."""

    __slots__ = ("busy_ms",)
    _cursor_cls = InlineCursor

    def __init__(self, dbapi: Any, connection: Any, busy_ms: int) -> None:
        super().__init__(dbapi, connection)
        self.busy_ms = busy_ms

    def commit(self) -> None:
        self._end("commit")

    def rollback(self) -> None:
        self._end("rollback")

    def _end(self, how: str) -> None:
        if not self._connection._connection:  # closed: nothing to end
            return
        try:
            getattr(self._connection._conn, how)()
        except Exception as error:
            self._handle_exception(error)


INLINE_PRAGMAS = ("PRAGMA busy_timeout=0", "PRAGMA wal_autocheckpoint=0")
"""What an inline connection sets after the usual pragmas (see :class:`InlineConnection`)."""


class _Dbapi(adapter.AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, aiosqlite: Any, sqlite: Any, *, inline_busy_ms: int | None = None) -> None:
        super().__init__(aiosqlite, sqlite)
        self._inline_busy_ms = inline_busy_ms

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self._inline_busy_ms is None:
            return _Connection(self, super().connect(*args, **kwargs)._connection)
        kwargs["check_same_thread"] = False  # used by two threads, never at once (the mutex, awaited trips)
        return InlineConnection(self, super().connect(*args, **kwargs)._connection, self._inline_busy_ms)


def in_transaction(connection: Any) -> bool:
    """Whether an adapted connection (this driver's or the stock one) has a transaction open;
    true when unsure."""
    try:
        return bool(connection._connection._conn.in_transaction)
    except (AttributeError, ValueError, sqlite3.ProgrammingError):  # not open, or closed meanwhile
        return True


def _slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}


def _fits() -> bool:
    """Whether the installed SQLAlchemy and aiosqlite have the internals this driver uses."""
    return (hasattr(adapter.AsyncAdapt_aiosqlite_connection, "_cursor_cls")
            and "_execute_mutex" in _slots(adapter.AsyncAdapt_aiosqlite_connection)
            and {"_adapt_connection", "_connection", "_cursor", "_rows", "_soft_closed_memoized"}
            <= _slots(adapter.AsyncAdapt_aiosqlite_cursor)
            and hasattr(adapter.AsyncAdapt_aiosqlite_connection, "_handle_exception")
            and hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn"))


def engine_options(*, inline_busy_ms: int | None = None) -> dict[str, Any] | None:
    """``create_async_engine`` keyword arguments for an SQLite URL: this driver where it fits.
    With ``inline_busy_ms``, connections are :class:`InlineConnection` (and None where the
    driver does not fit: there is no inline engine then)."""
    if not _fits():
        log.info("SQLite: the installed SQLAlchemy or aiosqlite differs; using the stock adapter")
        return None if inline_busy_ms is not None else {}
    return {"module": _Dbapi(aiosqlite, sqlite3, inline_busy_ms=inline_busy_ms)}
