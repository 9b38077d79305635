"""Round-trip cost of civicbot on Telegram against bare python-telegram-bot, in the same run.

Both bots run against the suite's local Bot API server over HTTP, in a process of its own (as
Telegram is not in the bot's event loop: the server's work must not count as the bot's, nor
compete with it). N people each send one message at once; the clock runs until every person has
an answer. The baseline is a bare PTB Application answering a fixed text; civicbot answers
through its transport, router, dialog engine and SQLite database (pseudonym, sealed state, a
transaction per message). Rate limits are lifted on both sides, so the ratio measures the
bot's own work, not pacing. Latencies are on the server's clock.

Usage: python -m bench.telegram_round_trip [--people 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.botapi_process import BotApiProcess
from bot.app import build_platform_transports, running
from bot.config import LimitsSettings, TelegramSettings
from bot.core.security import KeyRing
from tests.support import make_settings


async def _measure(api: BotApiProcess, people: list[int], text: str) -> tuple[float, list[float]]:
    """Everyone says ``text`` at once; the time until all have an answer, and each one's wait."""
    started = time.perf_counter()
    said = await api.say_all(people, text)
    await api.wait_answered(len(people), timeout=120)
    elapsed = time.perf_counter() - started
    answers = await api.first_answers()
    return elapsed, [answers[person] - at for person, at in said.items()]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bare_ptb(people_count: int, text: str) -> tuple[float, list[float]]:
    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "What you can do: …")

    async with BotApiProcess() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).concurrent_updates(64).build()
        app.add_handler(MessageHandler(filters.TEXT, answer))
        people = await api.users(people_count)
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0, timeout=2)
            result = await _measure(api, people, text)
            await app.updater.stop()
            await app.stop()
    return result


async def civicbot(people_count: int, text: str, workdir: Path) -> tuple[float, list[float]]:
    async with BotApiProcess() as api:
        telegram = TelegramSettings(token=api.token, api_base_url=api.base_url,  # type: ignore[arg-type]
                                    rate_per_second=100_000, per_chat_interval_seconds=0)
        settings = make_settings(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", workdir, telegram=telegram,
                                 limits=LimitsSettings(flood_messages=10_000))
        people = await api.users(people_count)
        # The wiring of ``civicbot run`` itself, with a shorter long-poll.
        async with running(settings, keys=KeyRing.generate(), transports=lambda services: build_platform_transports(
                services, telegram={"poll_timeout_seconds": 2})):
            return await _measure(api, people, text)


TARGET_RATIO = 1.5


async def main(people: int, rounds: int) -> bool:
    """Prints the table and each target; returns whether every target is met."""
    print(f"Telegram round trip, {people} people, one message each, median of {rounds} rounds; "
          f"p99 = 99th percentile of the per-message latency over all rounds")
    print(f"{'scenario':<28}{'bare PTB s':>12}{'civicbot s':>12}{'ratio':>8}{'ms/msg':>9}"
          f"{'p99 bare ms':>13}{'p99 ours ms':>13}")
    met = True
    for name, text in (("/help (read only)", "/help"), ("/start (dialog written)", "/start")):
        bare, ours = [], []
        bare_latency: list[float] = []
        our_latency: list[float] = []
        for _ in range(rounds):
            elapsed, latencies = await bare_ptb(people, text)
            bare.append(elapsed)
            bare_latency += latencies
            with tempfile.TemporaryDirectory() as tmp:
                elapsed, latencies = await civicbot(people, text, Path(tmp))
            ours.append(elapsed)
            our_latency += latencies
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"{name:<28}{b:>12.3f}{o:>12.3f}{o / b:>8.2f}{1000 * o / people:>9.2f}"
              f"{1000 * _percentile(bare_latency, 0.99):>13.1f}{1000 * _percentile(our_latency, 0.99):>13.1f}")
        ok = o / b <= TARGET_RATIO
        met &= ok
        print(f"  target {name.split()[0]} <= {TARGET_RATIO} x bare PTB: {o / b:.2f} -> {'met' if ok else 'NOT MET'}")
    return met


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    raise SystemExit(0 if asyncio.run(main(options.people, options.rounds)) else 1)
