"""Telegram updates are acknowledged only once their turn has committed: the getUpdates offset
(polling) or the webhook's 200 (webhook) waits for it. A process killed after fetching an update
but before handling it gets the update again on restart, and it is answered exactly once."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
from botapi_server import LocalBotApi
from hypothesis import given
from hypothesis import strategies as st
from telegram_support import process_environment
from test_telegram_process import BotProcess, next_message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(bot_api: LocalBotApi, tmp_path: Path, mode: str) -> dict[str, str]:
    if mode != "webhook":
        return process_environment(bot_api, tmp_path)
    port = free_port()
    return process_environment(bot_api, tmp_path, CIVICBOT_TELEGRAM__MODE="webhook",
                               CIVICBOT_TELEGRAM__WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
                               CIVICBOT_TELEGRAM__WEBHOOK_PORT=str(port),
                               CIVICBOT_TELEGRAM__WEBHOOK_SECRET="s3cret-token")


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_an_update_fetched_but_not_handled_survives_a_kill(bot_api: LocalBotApi, tmp_path: Path,
                                                                 mode: str) -> None:
    env = _env(bot_api, tmp_path, mode)
    bot = BotProcess(env, tmp_path / "civicbot.log")
    user = bot_api.user(language_code="en")
    ready = "setWebhook" if mode == "webhook" else "getUpdates"
    blocker = sqlite3.connect(tmp_path / "civicbot.db", isolation_level=None, timeout=60)
    try:
        await bot.start()
        await bot_api.wait_for(lambda: bool(bot_api.calls_to(ready)), timeout=60)
        blocker.execute("BEGIN IMMEDIATE")  # every turn now waits for the database: fetched, not handled
        user.say("/start")
        if mode == "polling":
            await bot_api.wait_for(lambda: bool(bot_api.fetched), timeout=30)  # fetched by the bot
        else:
            await bot_api.wait_for(lambda: bot_api.webhook_attempts > 0, timeout=30)  # posted to the bot
        await asyncio.sleep(1.5)  # the turn is stuck on the database lock; polls (or the 200) went on
        assert not bot_api.sent_to(user.id)
        assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
        blocker.execute("ROLLBACK")

        await bot.start()
        languages = await next_message(bot_api, user, 0, timeout=60)
        assert "Choose your language" in languages.text
        await asyncio.sleep(2.0)  # a doubled answer would come within a poll or two
        assert len(bot_api.sent_to(user.id)) == 1, "answered exactly once"
        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        blocker.close()
        await bot.ensure_dead()


def test_the_offset_confirms_only_finished_updates() -> None:
    from bot.transports.telegram_ack import AckTracker

    acks = AckTracker()
    assert acks.offset is None
    assert acks.fetched(10) and acks.fetched(11) and acks.fetched(12)
    assert acks.offset == 10  # nothing handled yet: nothing confirmed
    acks.finished(11)
    acks.finished(12)
    assert acks.offset == 10, "a slow chat's update holds the offset"
    assert not acks.fetched(11) and not acks.fetched(10), "fetched again meanwhile: not handled twice"
    acks.finished(10)
    assert acks.offset == 13
    assert not acks.fetched(12) and acks.fetched(13)
    acks.finished(13)
    acks.finished(13)  # twice: harmless
    assert acks.offset == 14 and acks.in_flight == 0


class _SimpleOffset:
    """The rule in its plainest form: the offset is the oldest update still in flight."""

    def __init__(self) -> None:
        self.highest: int | None = None
        self.in_flight: set[int] = set()
        self.done: set[int] = set()

    @property
    def offset(self) -> int | None:
        if self.in_flight:
            return min(self.in_flight)
        return None if self.highest is None else self.highest + 1

    def fetched(self, update_id: int) -> bool:
        offset = self.offset
        if update_id in self.in_flight or update_id in self.done or (offset is not None and update_id < offset):
            return False
        self.in_flight.add(update_id)
        self.highest = update_id if self.highest is None else max(self.highest, update_id)
        return True

    def finished(self, update_id: int) -> None:
        if update_id in self.in_flight:
            self.in_flight.discard(update_id)
            self.done.add(update_id)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=200))
def test_the_offset_is_always_the_oldest_update_in_flight(steps: list[tuple[bool, int]]) -> None:
    """Kept cheap (a heap instead of a scan per fetched update), and still exactly the rule."""
    from bot.transports.telegram_ack import AckTracker

    acks, model = AckTracker(), _SimpleOffset()
    for fetch, update_id in steps:
        if fetch:
            assert acks.fetched(update_id) == model.fetched(update_id)
        else:
            acks.finished(update_id)
            model.finished(update_id)
        assert acks.offset == model.offset and acks.in_flight == len(model.in_flight)


async def test_the_poller_waits_for_a_number_of_finished_updates_or_the_time() -> None:
    from bot.transports.telegram_ack import AckTracker

    acks = AckTracker()
    for update_id in range(1, 5):
        acks.fetched(update_id)
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(acks.wait_for(acks.finished_count + 2, timeout=10))
    acks.finished(3)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    acks.finished(1)
    await asyncio.wait_for(waiting, timeout=1)  # two finished: no need to wait for the others
    started = loop.time()
    await acks.wait_for(acks.finished_count + 1, timeout=0.2)  # nobody finishes: the time runs out
    assert loop.time() - started >= 0.19
    acks.finished(2)
    acks.finished(4)
    started = loop.time()
    await acks.wait_for(acks.finished_count + 5, timeout=5)  # nothing in flight: nothing to wait for
    assert loop.time() - started < 1
