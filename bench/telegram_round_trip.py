"""Round-trip cost of civicbot on Telegram against bare python-telegram-bot, in the same run.

Both bots run against the suite's local Bot API server over HTTP. N people each send one
message; the clock runs until every person has an answer. The baseline is a bare PTB
Application answering a fixed text; civicbot answers through its transport, router, dialog
engine and SQLite database (pseudonym, sealed state, a transaction per message). Rate
limits are lifted on both sides, so the ratio measures the bot's own work, not pacing.

Usage: python -m bench.telegram_round_trip [--people 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.app import build_platform_transports, running
from bot.config import LimitsSettings, TelegramSettings
from bot.core.security import KeyRing
from tests.support import make_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "telegram"))
from botapi_server import LocalBotApi, SimUser  # noqa: E402  (the test tier's local Bot API server)


async def _everyone_answered(api: LocalBotApi, people: list[SimUser], timeout: float) -> None:
    await api.wait_for(lambda: all(api.sent_to(p.id) for p in people), timeout=timeout)


async def bare_ptb(people_count: int, text: str) -> float:
    api = LocalBotApi()
    await api.start()

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "What you can do: …")

    app = ApplicationBuilder().token(api.token).base_url(api.base_url).concurrent_updates(64).build()
    app.add_handler(MessageHandler(filters.TEXT, answer))
    try:
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0, timeout=2)
            people = [api.user() for _ in range(people_count)]
            started = time.perf_counter()
            for person in people:
                person.say(text)
            await _everyone_answered(api, people, timeout=120)
            elapsed = time.perf_counter() - started
            await app.updater.stop()
            await app.stop()
    finally:
        await api.close()
    return elapsed


async def civicbot(people_count: int, text: str, workdir: Path) -> float:
    api = LocalBotApi()
    await api.start()
    telegram = TelegramSettings(token=api.token, api_base_url=api.base_url,  # type: ignore[arg-type]
                                rate_per_second=100_000, per_chat_interval_seconds=0)
    settings = make_settings(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", workdir, telegram=telegram,
                             limits=LimitsSettings(flood_messages=10_000))
    try:
        # The wiring of ``civicbot run`` itself, with a shorter long-poll.
        async with running(settings, keys=KeyRing.generate(), transports=lambda services: build_platform_transports(
                services, telegram={"poll_timeout_seconds": 2})):
            people = [api.user() for _ in range(people_count)]
            started = time.perf_counter()
            for person in people:
                person.say(text)
            await _everyone_answered(api, people, timeout=120)
            elapsed = time.perf_counter() - started
    finally:
        await api.close()
    return elapsed


async def main(people: int, rounds: int) -> None:
    print(f"Telegram round trip, {people} people, one message each, median of {rounds} rounds")
    print(f"{'scenario':<28}{'bare PTB s':>12}{'civicbot s':>12}{'ratio':>8}{'ms/msg':>9}")
    for name, text in (("/help (read only)", "/help"), ("/start (dialog written)", "/start")):
        bare, ours = [], []
        for _ in range(rounds):
            bare.append(await bare_ptb(people, text))
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(await civicbot(people, text, Path(tmp)))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"{name:<28}{b:>12.3f}{o:>12.3f}{o / b:>8.2f}{1000 * o / people:>9.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.people, options.rounds))
