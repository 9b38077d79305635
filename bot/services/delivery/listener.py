"""Wake-ups between workers on PostgreSQL: ``LISTEN`` on the outbox channel.

:meth:`bot.services.outbox.Outbox.enqueue` issues ``pg_notify`` inside the caller's
transaction, so PostgreSQL delivers it to every listening worker when (and only if) the
transaction commits. This listener rings the local :class:`~bot.services.outbox.Wakeup`
for the platform named in the notification. If the connection drops it reconnects with
backoff; meanwhile the senders' polling still finds every row.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.engine import make_url

from bot.services.outbox import NOTIFY_CHANNEL, Wakeup

log = logging.getLogger(__name__)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+asyncpg://...`` as the plain DSN asyncpg itself takes."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class NotifyListener:
    """Keeps one ``LISTEN`` connection open until ``stop`` is set."""

    __slots__ = ("_dsn", "_wakeup", "connected")

    def __init__(self, database_url: str, wakeup: Wakeup) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._wakeup = wakeup
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        import asyncpg

        delay = 0.5
        while not stop.is_set():
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                self.connected.set()
                delay = 0.5
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
            except Exception as exc:
                log.warning("outbox listener: %s; reconnecting in %.1f s", type(exc).__name__, delay)
            finally:
                self.connected.clear()
                if connection is not None and not connection.is_closed():
                    try:
                        await asyncio.wait_for(connection.close(), 5)
                    except Exception:  # already broken: nothing left to release
                        connection.terminate()
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._wakeup.ring(payload)
