"""Leader election on the real PostgreSQL: one leader at a time, a quick takeover when it
dies or steps down, and a leader that loses its connection stops its duties."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.operations.leader import LeaderTimings, PostgresLeader, SoleLeader, asyncpg_dsn
from tests.conftest import _postgres_skip_reason
from tests.support import postgres_database

FAST = LeaderTimings(retry_seconds=0.2, check_seconds=0.2, check_timeout_seconds=1.0)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


class Candidate:
    """One worker's election, with a log of its terms."""

    def __init__(self, url: str, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.election = PostgresLeader(url, FAST, application_name=f"civicbot-test-{name}")
        self.stop = asyncio.Event()
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def on_elected(self) -> None:
        self.log.append(f"+{self.name}")
        self.deposed.clear()
        self.elected.set()

    async def on_deposed(self) -> None:
        self.log.append(f"-{self.name}")
        self.elected.clear()
        self.deposed.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self.election.run(self.on_elected, self.on_deposed, self.stop))

    async def finish(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


def leaders_at_once(log: list[str]) -> int:
    """The most leaders the log ever shows at the same time."""
    current, most = 0, 0
    for entry in log:
        current += 1 if entry.startswith("+") else -1
        most = max(most, current)
    return most


async def test_one_leader_and_a_quick_takeover_when_it_steps_down(pg_url: str) -> None:
    log: list[str] = []
    a, b = Candidate(pg_url, "a", log), Candidate(pg_url, "b", log)
    a.start()
    await asyncio.wait_for(a.elected.wait(), 10)
    b.start()
    await asyncio.sleep(FAST.retry_seconds * 3)  # b has tried several times by now
    assert a.election.is_leader and not b.election.is_leader and log == ["+a"]

    await a.finish()  # a graceful stop releases the lock at once
    await asyncio.wait_for(b.elected.wait(), 5)
    assert log == ["+a", "-a", "+b"] and b.election.is_leader and b.election.terms == 1
    await b.finish()
    assert log[-1] == "-b" and leaders_at_once(log) == 1


async def test_a_leader_whose_connection_dies_steps_down_and_another_takes_over(pg_url: str) -> None:
    log: list[str] = []
    a, b = Candidate(pg_url, "a", log), Candidate(pg_url, "b", log)
    a.start()
    await asyncio.wait_for(a.elected.wait(), 10)
    b.start()
    admin = await asyncpg.connect(asyncpg_dsn(pg_url))
    try:
        killed = await admin.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'civicbot-test-a'")
        assert killed
        await asyncio.wait_for(a.deposed.wait(), 5)  # a noticed by itself
        await asyncio.wait_for(b.elected.wait(), 5)
        assert not a.election.is_leader and b.election.is_leader
        # a campaigns again as a follower, and leads again once b is gone.
        await b.finish()
        await asyncio.wait_for(a.elected.wait(), 5)
        assert a.election.terms == 2
    finally:
        await admin.close()
        await a.finish()
        await b.finish()
    assert leaders_at_once(log) == 1


async def test_a_duty_that_cannot_start_ends_the_election_with_its_error(pg_url: str) -> None:
    deposed: list[bool] = []

    async def elected() -> None:
        raise RuntimeError("the homeserver refused the login")

    async def on_deposed() -> None:
        deposed.append(True)

    election = PostgresLeader(pg_url, FAST)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(election.run(elected, on_deposed, asyncio.Event()), 10)
    assert deposed == [True] and not election.is_leader
    # The lock went with the connection: another worker can lead.
    other = Candidate(pg_url, "c", [])
    other.start()
    await asyncio.wait_for(other.elected.wait(), 5)
    await other.finish()


async def test_an_unreachable_database_is_retried_until_stop() -> None:
    stop = asyncio.Event()
    election = PostgresLeader("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", FAST)

    async def never() -> None:
        raise AssertionError("elected without a database")

    task = asyncio.create_task(election.run(never, never, stop))
    await asyncio.sleep(0.6)
    assert not task.done() and not election.is_leader
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_sqlite_has_a_sole_leader() -> None:
    stop, log = asyncio.Event(), []

    async def elected() -> None:
        log.append("+")
        stop.set()

    async def deposed() -> None:
        log.append("-")

    leader = SoleLeader()
    await leader.run(elected, deposed, stop)
    assert log == ["+", "-"] and leader.terms == 1 and not leader.is_leader


def test_the_server_drops_a_silent_leader_only_after_it_stepped_down() -> None:
    timings = LeaderTimings(check_seconds=2.0, check_timeout_seconds=3.0, step_down_seconds=20.0)
    keepalive = timings.server_keepalive
    server_gives_up = int(keepalive["tcp_keepalives_idle"]) + \
        int(keepalive["tcp_keepalives_interval"]) * int(keepalive["tcp_keepalives_count"])
    assert server_gives_up > timings.check_seconds + timings.check_timeout_seconds + timings.step_down_seconds
