"""One leader among the workers, for the work that must run in one place at a time.

The Matrix sync (one device is one sync stream), Telegram long polling, the outbox senders
and the scheduler's jobs run on the leader only. PostgreSQL chooses it: the leader holds a
*session* advisory lock on a connection of its own, so the lock goes away with the
connection when the leader dies, and another worker takes it within ``retry_seconds``.

Fencing: a leader that cannot prove it still holds the lock within
``check_seconds + check_timeout_seconds`` steps down by itself. The server is told to give
up on a silent client later than that plus ``step_down_seconds`` (TCP keepalives on the
leader's connection), so a cut-off leader has stopped its duties before anyone else can
start them. With SQLite there
is one process, and it is always the leader.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Two 32-bit keys: a key space of its own, apart from the per-person turn locks (one 64-bit key).
LOCK_NAMESPACE = 0x63697663  # "civc"
LEADER_LOCK = 1

Callback = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeaderTimings:
    """How quickly leadership moves; the defaults move it within about three seconds."""

    retry_seconds: float = 1.0  # how often a follower tries to take the lock
    check_seconds: float = 2.0  # how often the leader proves it still holds it
    check_timeout_seconds: float = 3.0  # an unanswered check after this means the connection is gone
    connect_timeout_seconds: float = 5.0
    step_down_seconds: float = 0.0  # how long stopping the duties may take once a leader steps down

    @property
    def server_keepalive(self) -> dict[str, str]:
        """TCP keepalives after which the server drops a silent leader: strictly later than the
        leader's own step-down (noticing, then stopping its duties), so two leaders never overlap.
        A leader that crashes closes its connection, and the lock is free at once."""
        idle = math.ceil(self.check_seconds + self.check_timeout_seconds + self.step_down_seconds) + 1
        return {"tcp_keepalives_idle": str(idle), "tcp_keepalives_interval": "2",
                "tcp_keepalives_count": "3"}


class Leadership(Protocol):
    """Runs ``on_elected`` when this worker becomes the leader and ``on_deposed`` when it stops
    being one (connection lost, or ``stop`` set); never both at once."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def terms(self) -> int:
        """How many times this worker became the leader."""

    async def run(self, on_elected: Callback, on_deposed: Callback, stop: asyncio.Event) -> None: ...


class SoleLeader:
    """SQLite: a single process, always the leader."""

    def __init__(self) -> None:
        self._leader = False
        self._terms = 0

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def terms(self) -> int:
        return self._terms

    async def run(self, on_elected: Callback, on_deposed: Callback, stop: asyncio.Event) -> None:
        self._leader, self._terms = True, self._terms + 1
        try:
            await on_elected()
            await stop.wait()
        finally:
            self._leader = False
            await on_deposed()


class LeaderConnectionLost(Exception):
    """The leader's own connection broke or stopped answering; it is no longer the leader."""


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, LeaderConnectionLost, asyncpg.PostgresError, asyncpg.InterfaceError,
)


Connect = Callable[..., Awaitable[Any]]


class PostgresLeader:
    """Leader election with ``pg_try_advisory_lock`` on a dedicated asyncpg connection."""

    def __init__(self, database_url: str, timings: LeaderTimings = LeaderTimings(), *,
                 connect: Connect | None = None, application_name: str = "civicbot-leader") -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._timings = timings
        self._connect = connect
        self._application_name = application_name
        self._leader = False
        self._terms = 0

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def terms(self) -> int:
        return self._terms

    async def run(self, on_elected: Callback, on_deposed: Callback, stop: asyncio.Event) -> None:
        """Campaign until ``stop``; lead while the lock is held. Duties' own errors propagate."""
        while not stop.is_set():
            connection: Any = None
            try:
                connection = await self._open()
                if not await self._campaign(connection, stop):
                    break
            except _CONNECTION_ERRORS as exc:
                log.warning("leader election: database connection failed (%s); trying again", type(exc).__name__)
                await _close(connection)
                await _sleep_or_stop(stop, self._timings.retry_seconds)
                continue
            try:
                await self._lead(connection, on_elected, on_deposed, stop)
            finally:
                await _close(connection)
            # A term that ended without a stop ended badly (this worker's connection, most likely):
            # give a healthy follower two tries at the lock before campaigning again.
            await _sleep_or_stop(stop, 2 * self._timings.retry_seconds + 0.1)

    async def _open(self) -> Any:
        connect = self._connect or asyncpg.connect
        settings = {"application_name": self._application_name, **self._timings.server_keepalive}
        return await asyncio.wait_for(
            connect(self._dsn, server_settings=settings, timeout=self._timings.connect_timeout_seconds),
            self._timings.connect_timeout_seconds + 1,
        )

    async def _campaign(self, connection: Any, stop: asyncio.Event) -> bool:
        """Try the lock every ``retry_seconds`` until it is ours (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            got = await asyncio.wait_for(
                connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, LEADER_LOCK),
                self._timings.check_timeout_seconds,
            )
            if got:
                return True
            await _sleep_or_stop(stop, self._timings.retry_seconds)
        return False

    async def _lead(self, connection: Any, on_elected: Callback, on_deposed: Callback, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        self._leader, self._terms = True, self._terms + 1
        log.info("this worker is now the leader")
        # The lock is checked while the duties start too: a slow start (a homeserver that is
        # down) must not outlive the lock.
        starting = asyncio.ensure_future(on_elected())
        holding = asyncio.ensure_future(self._hold(connection, lost, stop))
        try:
            done, _ = await asyncio.wait({starting, holding}, return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()  # a duty that cannot start is the caller's error
                await holding
            else:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                holding.result()
        except _CONNECTION_ERRORS as exc:
            log.warning("leader connection lost (%s); stepping down", type(exc).__name__)
        finally:
            for task in (starting, holding):
                task.cancel()
            await asyncio.gather(starting, holding, return_exceptions=True)
            self._leader = False
            await on_deposed()
            log.info("this worker is no longer the leader")
        if stop.is_set() and not lost.is_set():
            try:  # let a follower take over now rather than when the connection closes
                await asyncio.wait_for(
                    connection.fetchval("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, LEADER_LOCK),
                    self._timings.check_timeout_seconds,
                )
            except _CONNECTION_ERRORS:
                pass  # closing the connection releases it anyway

    async def _hold(self, connection: Any, lost: asyncio.Event, stop: asyncio.Event) -> None:
        """Prove the lock every ``check_seconds``; return at ``stop``, raise when it is gone."""
        while True:
            await _wait_any((stop, lost), self._timings.check_seconds)
            if lost.is_set():
                raise LeaderConnectionLost("terminated")
            if stop.is_set():
                return
            held = await asyncio.wait_for(
                connection.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                    "AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted",
                    _as_oid(LOCK_NAMESPACE), _as_oid(LEADER_LOCK),
                ),
                self._timings.check_timeout_seconds,
            )
            if not held:
                raise LeaderConnectionLost("lock not held")


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy) -> ``postgresql://...`` (asyncpg)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _as_oid(value: int) -> int:
    """pg_locks shows the two int4 keys as oids (unsigned)."""
    return value & 0xFFFFFFFF


async def _close(connection: Any) -> None:
    if connection is None:
        return
    try:
        await asyncio.wait_for(connection.close(), 2.0)
    except Exception:  # a broken connection cannot close politely
        connection.terminate()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    await _wait_any((stop,), seconds)


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
