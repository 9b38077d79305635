"""Fan-out on PostgreSQL with one and with two ``civicbot run`` workers, against bare PTB.

N people (2,000 by default) each get one queued message. The workers are real processes
(Telegram in webhook mode behind a round-robin proxy, as in ``docker-compose.yml``) on a
fresh PostgreSQL database; the local Bot API server runs in this process. Rate limits are
lifted, so what is measured is the senders' own work. The baseline, on the same server in
the same run, is a bare python-telegram-bot ``send_message`` loop, 16 at a time.

Bulk sending is the leader's (one sender per platform, so the platform's per-bot limits
hold whatever the number of workers): a second worker is expected to take webhook traffic,
not to raise the fan-out rate. This benchmark shows it does not lower it either.

Usage: python -m bench.workers [--people N]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "telegram"))  # the suite's local Bot API server

from botapi_server import LocalBotApi  # noqa: E402

from bot.core.model import Address, Outbound, Platform  # noqa: E402
from bot.core.security import KeyRing  # noqa: E402
from bot.services.outbox import Outbox, OutboxKind, ToParticipant  # noqa: E402
from bot.services.participants import Participants  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from tests.support import postgres_database, postgres_reachable  # noqa: E402
from tests.workers_support import Cluster, cluster_env, telegram_env  # noqa: E402

CONCURRENCY = 16
TEXT = "Bulletin: the next consultation is on Thursday. Reply /help for options."


class SendCounter:
    """Sends to ``chats`` that reached the server, counted incrementally (the server shares this
    process: a scan of every call at each check would slow it down)."""

    def __init__(self, api: LocalBotApi, chats: set[int]) -> None:
        self._api, self._chats, self._seen, self._count = api, chats, len(api.calls), 0

    def __call__(self) -> int:
        calls = self._api.calls
        for call in calls[self._seen:]:
            if call.method == "sendMessage" and call.chat_id in self._chats and call.status == 200:
                self._count += 1
        self._seen = len(calls)
        return self._count


async def bare_ptb(api: LocalBotApi, chats: list[int]) -> float:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    bot = Bot(api.token, base_url=api.base_url, request=HTTPXRequest(connection_pool_size=CONCURRENCY))
    todo = iter(chats)
    async with bot:
        async def worker() -> None:
            for chat_id in todo:
                await bot.send_message(chat_id, TEXT)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def enqueue(url: str, key_file: Path, chats: list[int]) -> None:
    keys = KeyRing.load(key_file)
    database = Database(url)
    participants, outbox = Participants(keys), Outbox(keys)
    try:
        async with database.sessions.begin() as session:
            recipients = []
            for chat in chats:
                address = Address(Platform("telegram"), str(chat))
                participant = await participants.register(session, keys.pseudonym("telegram", str(chat)), "en",
                                                          address)
                recipients.append((ToParticipant(participant.id, "telegram"), Outbound(text=TEXT)))
            await outbox.enqueue_many(session, recipients, OutboxKind.BULLETIN, ref="bench")
    finally:
        await database.dispose()


async def with_workers(api: LocalBotApi, workers: int, chats: list[int], workdir: Path) -> tuple[float, list[float]]:
    """Seconds from the commit of the rows to the last send reaching the server; sends per worker."""
    key_file = workdir / "keys.json"
    KeyRing.generate().save(key_file)
    async with postgres_database() as url:
        cluster = Cluster(cluster_env(workdir, url, key_file, CIVICBOT_LOGGING__FORMAT="text",
                                      CIVICBOT_OUTBOX__BATCH_SIZE="200", CIVICBOT_OUTBOX__CONCURRENCY="64"),
                          workdir)
        try:
            await cluster.upgrade_database()
            cluster.add_workers(workers, webhook=True)
            proxy = await cluster.start_proxy()
            for worker in cluster.workers:
                worker.env.update(telegram_env(api.base_url, api.token, proxy.port,
                                               CIVICBOT_TELEGRAM__RATE_PER_SECOND="100000",
                                               CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0"))
                await worker.start()
            await cluster.wait_ready()
            await cluster.leader()
            count = SendCounter(api, set(chats))
            await enqueue(url, key_file, chats)
            started = time.perf_counter()
            await api.wait_for(lambda: count() >= len(chats), timeout=600)
            elapsed = time.perf_counter() - started
            per_worker = [await w.metric("civicbot_outbound_sends_total", platform="telegram", outcome="sent")
                          for w in cluster.workers]
            for worker in cluster.workers:
                await worker.signal(signal.SIGTERM)
            return elapsed, per_worker
        finally:
            await cluster.close()


async def main(people: int) -> int:
    reason = await postgres_reachable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    api = LocalBotApi()
    await api.start()
    try:
        baseline_chats = [api.user().id for _ in range(people)]
        baseline = await bare_ptb(api, baseline_chats)
        print(f"fan-out of {people} messages, rate limits lifted, PostgreSQL")
        print(f"  bare PTB send_message x{CONCURRENCY}: {baseline:7.2f} s  {people / baseline:7.0f} msg/s")
        for workers in (1, 2):
            chats = [api.user().id for _ in range(people)]
            with TemporaryDirectory() as tmp:
                elapsed, per_worker = await with_workers(api, workers, chats, Path(tmp))
            sends = ", ".join(f"{int(n)}" for n in per_worker)
            print(f"  civicbot, {workers} worker(s):          {elapsed:7.2f} s  {people / elapsed:7.0f} msg/s  "
                  f"ratio to bare PTB {baseline / elapsed:4.2f}  (sends per worker: {sends})")
    finally:
        await api.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    arguments = parser.parse_args()
    raise SystemExit(asyncio.run(main(arguments.people)))
