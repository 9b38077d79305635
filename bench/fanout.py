"""Fan-out through the outbox against bare-library baselines, in the same run.

Telegram (default): N recipients (10,000; 2,000 with ``--quick``), one message each, through
civicbot's real outbox, delivery engine and Telegram transport, against the suite's local Bot
API server running in a process of its own. Rate limits are lifted on both sides, so what is
measured is each sender's own work. Baselines on the same server in the same run: a bare
python-telegram-bot ``send_message`` loop and raw aiohttp POSTs, both 16 at a time. civicbot
runs on SQLite and on PostgreSQL (when reachable). Then, with Telegram's real limits (30 a
second overall, one a second per chat; the server answers 429 to anything beyond them), a
50,000-row bulletin (10,000 with ``--quick``) drains while people not in its audience write to
the bot: the sustained rate, the 429s, and how long their answers took are reported; the
bulletin is then cancelled. Every scenario runs in a fresh process; its peak RSS is reported.
A bulletin also goes end to end: ``civicbot bulletin create`` and ``civicbot bulletin send --to
all`` (the real commands, each in its own process) queue the example bulletin for the same N
people in four languages, and the bot's delivery engine sends it; its rate is reported beside
the engine's.

``--matrix``: one encrypted message to each of 50 direct chats on the suite's Synapse through
the outbox and the Matrix transport, against a bare matrix-nio ``room_send`` loop.

Usage: python -m bench.fanout [--quick] [--matrix] [--people N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bench.botapi_process import BotApiProcess
from bench.population import register

CONCURRENCY = 16  # the baselines' sends in flight, as in the issue's measurement
TEXT = "Bulletin: the next consultation is on Thursday. Reply /help for options."
TARGETS = {"sqlite_rate": 1000.0, "sqlite_vs_ptb": 2.0, "postgres_rate": 1000.0, "real_rate": 29.0,
           "real_429": 0, "reply_seconds": 2.0, "matrix_vs_nio": 0.8}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- baselines
async def raw_aiohttp(api: BotApiProcess, chats: list[int]) -> float:
    url = f"{api.base_url}{api.token}/sendMessage"
    todo = iter(chats)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        async def worker() -> None:
            for chat_id in todo:
                async with http.post(url, json={"chat_id": chat_id, "text": TEXT}) as response:
                    body = await response.json()
                    assert body["ok"], body
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def bare_ptb(api: BotApiProcess, chats: list[int]) -> float:
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


# ---------------------------------------------------------------------- civicbot
@asynccontextmanager
async def database_url(kind: str, workdir: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        return
    from tests.support import postgres_database

    async with postgres_database() as url:
        yield url


@asynccontextmanager
async def civicbot(api: BotApiProcess, url: str, workdir: Path, *, lifted: bool, keys: Any = None,
                   poll_seconds: float | None = None) -> AsyncIterator[Any]:
    """The bot as ``civicbot run`` wires it: services, router, Telegram transport, senders."""
    from bot.app import build_platform_transports, running
    from bot.config import LimitsSettings, OutboxSettings, TelegramSettings
    from bot.core.security import KeyRing
    from tests.support import make_settings

    rates = {"rate_per_second": 100_000, "per_chat_interval_seconds": 0} if lifted else {}
    telegram = TelegramSettings(token=api.token, api_base_url=api.base_url, **rates)  # type: ignore[arg-type]
    extra = {"outbox": OutboxSettings(poll_seconds=poll_seconds)} if poll_seconds is not None else {}
    settings = make_settings(url, workdir, telegram=telegram, limits=LimitsSettings(flood_messages=10_000), **extra)
    # The wiring of ``civicbot run``; the senders are started by the benchmark, once the rows are queued.
    async with running(settings, keys=keys or KeyRing.generate(), upgrade=True, senders=False,
                       transports=lambda services: build_platform_transports(
                           services, telegram={"poll_timeout_seconds": 2})) as bot:
        yield bot


async def enqueue(bot: Any, participant_ids: list[int], ref: str) -> float:
    from bot.core.model import Outbound
    from bot.services.outbox import OutboxKind, ToParticipant

    started = time.perf_counter()
    for start in range(0, len(participant_ids), 5000):
        async with bot.services.database.sessions.begin() as session:
            await bot.services.outbox.enqueue_many(
                session, [(ToParticipant(pid, "telegram"), Outbound(TEXT)) for pid in participant_ids[start:start + 5000]],
                OutboxKind.BULLETIN, ref=ref)
    return time.perf_counter() - started


async def run_senders(bot: Any, stop: asyncio.Event) -> asyncio.Task[None]:
    from bot.services.delivery import run_delivery

    return asyncio.create_task(run_delivery(bot.senders, bot.services.database, bot.services.outbox.wakeup, stop))


async def civicbot_lifted(api: BotApiProcess, chats: list[int], kind: str, workdir: Path) -> dict[str, Any]:
    async with database_url(kind, workdir) as url, civicbot(api, url, workdir, lifted=True) as bot:
        ids = await register(bot.services.database, bot.services.keys, "telegram", chats)
        enqueue_seconds = await enqueue(bot, ids, "bench")
        stop = asyncio.Event()
        started = time.perf_counter()
        task = await run_senders(bot, stop)
        stats = await api.wait_sent(len(chats), timeout=600)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        return {"seconds": elapsed, "enqueue_seconds": enqueue_seconds, "duplicates": stats["repeated_texts"],
                "status": stats["status"]}


async def civicbot_bulletin(api: BotApiProcess, chats: list[int], workdir: Path) -> dict[str, Any]:
    """The example bulletin to every chat through the real ``civicbot bulletin create`` and ``send``
    (each its own process, as staff run them), delivered by the running bot's engine."""
    import os

    from bot.core.security import KeyRing

    keys = KeyRing.generate()
    keys.save(workdir / "keys.json")
    bulletin = Path(__file__).resolve().parent.parent / "config" / "bulletins" / "2026-06-periodic-update.yaml"
    async with database_url("sqlite", workdir) as url, \
            civicbot(api, url, workdir, lifted=True, keys=keys, poll_seconds=0.1) as bot:
        await register(bot.services.database, bot.services.keys, "telegram", chats)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
        env.update(CIVICBOT_DATABASE__URL=url, CIVICBOT_SECURITY__KEY_FILE=str(workdir / "keys.json"))

        async def command(*args: str) -> float:
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "bulletin", *args, env=env,
                                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, err = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"civicbot bulletin {args[0]} failed: {err.decode().strip()[-200:]}")
            return time.perf_counter() - started

        await command("create", str(bulletin))
        stop = asyncio.Event()
        task = await run_senders(bot, stop)
        started = time.perf_counter()
        send_seconds = await command("send", "2026-06-periodic-update", "--to", "all")
        stats = await api.wait_sent(len(chats), timeout=600)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        return {"seconds": elapsed, "send_seconds": send_seconds, "duplicates": stats["repeated_texts"],
                "status": stats["status"]}


async def civicbot_real_limits(api: BotApiProcess, bulk: int, seconds: float, workdir: Path) -> dict[str, Any]:
    from bot.services.outbox import Outbox

    per_person = 10  # each recipient gets several rows, so the one-a-second-per-chat limit is exercised
    recipients = await api.users(bulk // per_person)
    askers = await api.users(10)
    async with database_url("sqlite", workdir) as url, civicbot(api, url, workdir, lifted=False) as bot:
        registered = await register(bot.services.database, bot.services.keys, "telegram", askers + recipients)
        ids = registered[len(askers):]  # the askers are registered people outside the bulletin's audience
        enqueue_seconds = await enqueue(bot, list(itertools.chain.from_iterable([ids] * per_person)), "bulletin")
        before = (await api.stats())["sent"]
        stop = asyncio.Event()
        task = await run_senders(bot, stop)
        latencies: list[float] = []
        await asyncio.sleep(seconds / (len(askers) + 1))
        for asker in askers:  # one at a time, spread over the measured period
            asked_at = await api.say(asker, "/help")
            latencies.append(await answered_after(api, asker, asked_at, timeout=30))
            await asyncio.sleep(seconds / (len(askers) + 1))
        stop.set()
        await task
        stats = await api.stats()
        async with bot.services.database.sessions.begin() as session:
            outbox: Outbox = bot.services.outbox
            progress = await outbox.progress(session, "bulletin")
            cancelled = await outbox.cancel(session, "bulletin")
        duration = stats["last_at"] - stats["first_at"]
        sent = stats["sent"] - before
        return {"enqueue_seconds": enqueue_seconds, "bulk": bulk, "sent": sent, "cancelled": cancelled,
                "rate": (stats["send_calls"] - before - 1) / duration if duration else 0.0,
                "refused": stats["refused_by_limits"], "status": stats["status"],
                "max_in_any_second": stats["max_in_any_second"], "reply_seconds": latencies,
                "progress_sent": progress.by_status.get("sent", 0)}  # type: ignore[call-overload]


async def answered_after(api: BotApiProcess, user_id: int, asked_at: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = [m["at"] for m in await api.chat(user_id) if m["at"] > asked_at]
        if answers:
            return float(answers[0] - asked_at)
        await asyncio.sleep(0.02)
    raise TimeoutError("no answer")


# ---------------------------------------------------------------------- one scenario per process
async def scenario(name: str, people: int, seconds: float) -> dict[str, Any]:
    limits = name == "real-limits"
    async with BotApiProcess(enforce_limits=limits) as api:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            if name == "real-limits":
                result = await civicbot_real_limits(api, people, seconds, workdir)
            else:
                chats = await api.users(people)
                runs: dict[str, Callable[[], Awaitable[Any]]] = {
                    "raw": lambda: raw_aiohttp(api, chats),
                    "ptb": lambda: bare_ptb(api, chats),
                    "sqlite": lambda: civicbot_lifted(api, chats, "sqlite", workdir),
                    "postgresql": lambda: civicbot_lifted(api, chats, "postgresql", workdir),
                    "bulletin": lambda: civicbot_bulletin(api, chats, workdir),
                }
                outcome = await runs[name]()
                result = outcome if isinstance(outcome, dict) else {"seconds": outcome}
                stats = await api.stats()
                result["arrived"] = stats["sent"]
            result["peak_rss_mb"] = peak_rss_mb()
            return result


def in_child(name: str, people: int, seconds: float = 0.0) -> dict[str, Any] | None:
    command = [sys.executable, "-m", "bench.fanout", "--scenario", name, "--people", str(people),
               "--seconds", str(seconds)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                          timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {name}: failed ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    return dict(json.loads(lines[-1]))


def postgres_available() -> bool:
    from tests.support import postgres_reachable

    return asyncio.run(postgres_reachable()) is None


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def telegram_report(people: int, bulk: int, seconds: float) -> bool:
    print(f"Telegram fan-out: {people} recipients, one message each, local Bot API server in its own process, "
          f"rate limits lifted; baselines {CONCURRENCY} at a time")
    results: dict[str, dict[str, Any] | None] = {}
    for name in ("raw", "ptb", "sqlite", "postgresql", "bulletin"):
        if name == "postgresql" and not postgres_available():
            print("  postgresql: skipped (not reachable)")
            results[name] = None
            continue
        results[name] = in_child(name, people)
    print(f"{'sender':<26}{'seconds':>9}{'msg/s':>9}{'x PTB':>8}{'peak RSS MB':>13}")
    ptb = results.get("ptb")
    ptb_rate = people / ptb["seconds"] if ptb else float("nan")
    for name, label in (("raw", "raw aiohttp POSTs"), ("ptb", "bare PTB send_message"),
                        ("sqlite", "civicbot outbox, SQLite"), ("postgresql", "civicbot outbox, PostgreSQL"),
                        ("bulletin", "bulletin send, SQLite")):
        r = results.get(name)
        if r is None:
            continue
        rate = people / r["seconds"]
        rss = f"{r['peak_rss_mb']:.0f}" if name in ("sqlite", "postgresql", "bulletin") else "-"
        print(f"{label:<26}{r['seconds']:>9.2f}{rate:>9.0f}{rate / ptb_rate:>8.2f}{rss:>13}")
        if "enqueue_seconds" in r:
            print(f"{'':<26}(enqueue {people} rows: {r['enqueue_seconds']:.2f} s; arrived {r['arrived']}, "
                  f"sent twice {r['duplicates']})")
        if "send_seconds" in r:
            print(f"{'':<26}(from `civicbot bulletin send` to the last arrival, in four languages; the command "
                  f"itself {r['send_seconds']:.2f} s with its interpreter start; arrived {r['arrived']}, "
                  f"sent twice {r['duplicates']})")
    ok = True
    sqlite, postgres = results.get("sqlite"), results.get("postgresql")
    if sqlite:
        rate = people / sqlite["seconds"]
        print(f"target SQLite >= {TARGETS['sqlite_rate']:.0f} msg/s: {rate:.0f} -> {met(rate >= TARGETS['sqlite_rate'])}")
        print(f"target SQLite >= {TARGETS['sqlite_vs_ptb']:.1f} x bare PTB: {rate / ptb_rate:.2f} -> "
              f"{met(rate / ptb_rate >= TARGETS['sqlite_vs_ptb'])}")
        ok &= rate >= TARGETS["sqlite_rate"] and rate / ptb_rate >= TARGETS["sqlite_vs_ptb"]
    if postgres:
        rate = people / postgres["seconds"]
        print(f"target PostgreSQL >= {TARGETS['postgres_rate']:.0f} msg/s: {rate:.0f} -> "
              f"{met(rate >= TARGETS['postgres_rate'])}")
        ok &= rate >= TARGETS["postgres_rate"]
    print()
    print(f"Telegram's real limits (30/s overall, 1/s per chat, enforced by the server with 429): a {bulk}-row "
          f"bulletin drains for {seconds:.0f} s while 10 people outside its audience ask /help")
    real = in_child("real-limits", bulk, seconds)
    if real:
        replies = real["reply_seconds"]
        print(f"  sent {real['sent']} at {real['rate']:.2f} msg/s sustained (max {real['max_in_any_second']} in any "
              f"second), 429s from the limits: {real['refused']}, answers to /help: median {statistics.median(replies):.2f} s, "
              f"max {max(replies):.2f} s; then cancelled {real['cancelled']} unsent rows; "
              f"enqueue {bulk} rows {real['enqueue_seconds']:.1f} s; peak RSS {real['peak_rss_mb']:.0f} MB")
        print(f"target >= {TARGETS['real_rate']:.0f} msg/s sustained: {real['rate']:.2f} -> "
              f"{met(real['rate'] >= TARGETS['real_rate'])}")
        print(f"target zero 429s: {real['refused']} -> {met(real['refused'] == 0)}")
        print(f"target answers within {TARGETS['reply_seconds']:.0f} s during the bulletin: max {max(replies):.2f} s -> "
              f"{met(max(replies) <= TARGETS['reply_seconds'])}")
        ok &= real["rate"] >= TARGETS["real_rate"] and real["refused"] == 0 and max(replies) <= TARGETS["reply_seconds"]
    else:
        ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 recipients; a 10,000-row bulletin")
    parser.add_argument("--matrix", action="store_true", help="the Matrix fan-out (50 encrypted direct chats)")
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.scenario:
        print(json.dumps(asyncio.run(scenario(options.scenario, options.people, options.seconds or 0.0))))
        return 0
    if options.matrix:
        from bench.fanout_matrix import report as matrix_report

        return 0 if matrix_report(options.people or 50) else 1
    people = options.people or (2_000 if options.quick else 10_000)
    bulk = 10_000 if options.quick else 50_000
    seconds = options.seconds or (15.0 if options.quick else 30.0)
    return 0 if telegram_report(people, bulk, seconds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
