"""SQLite statements in one trip to aiosqlite's thread instead of three or four.

aiosqlite runs each SQLite connection in a thread of its own, and SQLAlchemy's adapter makes
a separate trip there to open a cursor, to execute, to fetch the rows and to close the
cursor. Each trip waits for the event loop to come round again, and every SQLite transaction
of the process holds the write lock meanwhile (:class:`bot.storage.db.WriteTurns`): under a
burst of turns those waits were most of a turn's time. Here a statement is executed, fetched
and closed by one function in that thread, and the adapter is handed the finished result.

This leans on two internals: SQLAlchemy's ``AsyncAdapt_aiosqlite_connection._cursor_cls`` and
aiosqlite's ``Connection._execute`` (which SQLAlchemy's own adapter uses too). Where either
is missing, :func:`engine_options` returns nothing and the engine keeps the stock adapter.
"""

from __future__ import annotations

import collections
import logging
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
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        connection = self._connection
        async with self._adapt_connection._execute_mutex:
            self._rowcount, self._lastrowid = await connection._execute(
                _run_many, connection._conn, operation, seq_of_parameters)


class _Connection(adapter.AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class _Dbapi(adapter.AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *args: Any, **kwargs: Any) -> Any:
        stock = super().connect(*args, **kwargs)
        return _Connection(self, stock._connection)


def _slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())}


def _fits() -> bool:
    """Whether the installed SQLAlchemy and aiosqlite have the internals this driver uses."""
    return (hasattr(adapter.AsyncAdapt_aiosqlite_connection, "_cursor_cls")
            and "_execute_mutex" in _slots(adapter.AsyncAdapt_aiosqlite_connection)
            and {"_adapt_connection", "_connection", "_cursor", "_rows", "_soft_closed_memoized"}
            <= _slots(adapter.AsyncAdapt_aiosqlite_cursor)
            and hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn"))


def engine_options() -> dict[str, Any]:
    """``create_async_engine`` keyword arguments for an SQLite URL: this driver where it fits."""
    if not _fits():
        log.info("SQLite: the installed SQLAlchemy or aiosqlite differs; using the stock adapter")
        return {}
    return {"module": _Dbapi(aiosqlite, sqlite3)}
