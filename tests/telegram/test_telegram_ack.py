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
