"""The worker wiring in one process: Telegram long polling is a leader duty (SQLite: the sole
leader), answered as before, and a requested stop ends the worker with 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

from botapi_server import LocalBotApi
from telegram_support import Conversation

from bot.app import assemble_worker
from bot.config import LimitsSettings, ObservabilitySettings, TelegramSettings
from bot.core.security import KeyRing
from bot.operations.duties import LeaderTransportDuty, SchedulerDuty, SenderDuty
from bot.operations.leader import SoleLeader
from tests.support import make_settings
from tests.workers_support import free_port


async def test_polling_runs_on_the_leader_and_a_stop_request_ends_the_worker(
    bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing
) -> None:
    port = free_port()
    telegram = TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                per_chat_interval_seconds=0.0)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path, telegram=telegram,
                             limits=LimitsSettings(flood_messages=1000),
                             observability=ObservabilitySettings(listen=f"127.0.0.1:{port}"))
    bot, worker = await assemble_worker(settings, keys=keys)
    try:
        assert isinstance(worker.leadership, SoleLeader) and worker.shared_transports == []
        # the polling transport, the outbox senders, the bulletin progress reporter, the scheduler
        assert [type(d) for d in worker.duties] == [LeaderTransportDuty, SenderDuty, SenderDuty, SchedulerDuty]
        running = asyncio.create_task(worker.run(signals=False))
        person = Conversation(bot_api, bot_api.user(language_code="en"))
        (languages,) = await person.say("/start")
        assert "English" in languages.labels
        assert worker.leadership.is_leader
        worker.stop_requested.set()
        assert await asyncio.wait_for(running, 20) == 0
        assert not worker.leadership.is_leader
    finally:
        await bot.stop()
