"""Memory of a running bot: 100,000 participants, 10,000 surveys in progress, traffic on top.

``civicbot run`` runs as its own process (configured through the environment, as containers
start it) on an SQLite database holding 100,000 registered participants (sealed addresses,
wrapped keys) and a survey launched to 10,000 of them, each with sealed progress. The local
Bot API server (its own process) then carries traffic: 1,000 people ask ``/help``, 500 of
those answering the survey ask ``/surveys``, and a 10,000-row bulletin drains through the
outbox. Reported: the bot's peak resident memory (``VmHWM``) and its resident memory at the
end (``VmRSS``), from ``/proc``. Target: peak below 200 MB.

Usage: python -m bench.memory [--people 100000] [--surveys 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.botapi_process import BotApiProcess

REPO = Path(__file__).resolve().parent.parent
TARGET_MB = 200.0
SURVEY = "families-of-the-missing"


async def populate(workdir: Path, people: int, surveys: int, user_ids: list[int]) -> None:
    """The database, written by this (separate) process so that its memory is not the bot's."""
    import datetime as dt

    from sqlalchemy import insert, select, update

    from bench.population import register
    from bot.core.security import KeyRing
    from bot.storage import migrate
    from bot.storage.db import Database
    from bot.storage.models import Group, ParticipantKey, SurveyInvitation, SurveyRun, memberships

    keys = KeyRing.load(workdir / "keys.json")
    database = Database(f"sqlite+aiosqlite:///{workdir / 'civicbot.db'}")
    await migrate.upgrade(database)
    ids = await register(database, keys, "telegram", user_ids[:people])
    async with database.sessions.begin() as session:
        group = Group(code="fg-missing", kind="focus_group")
        session.add(group)
        await session.flush()
        run = SurveyRun(survey_id=SURVEY, group_id=group.id, status="open")
        session.add(run)
        await session.flush()
        answering = ids[:surveys]
        today = dt.date.today()
        await session.execute(insert(memberships), [{"participant_id": pid, "group_id": group.id, "joined_on": today}
                                                    for pid in answering])
        wrapped = dict((await session.execute(
            select(ParticipantKey.participant_id, ParticipantKey.wrapped)
            .where(ParticipantKey.participant_id.in_(answering)))).all())
        rows = []
        for pid in answering:
            rows.append({"run_id": run.id, "participant_id": pid, "status": "in_progress"})
        result = await session.execute(insert(SurveyInvitation).returning(SurveyInvitation.id,
                                                                          sort_by_parameter_order=True), rows)
        invitation_ids = list(result.scalars().all())
        progress = json.dumps({"answers": {"relation": "spouse", "missing-since": "2013", "reported": "yes"},
                               "current": "needs", "history": ["relation", "missing-since", "reported"]})
        updates = []
        for pid, invitation_id in zip(answering, invitation_ids, strict=True):
            key = keys.unwrap(wrapped[pid], str(pid))
            updates.append({"id": invitation_id,
                            "progress_enc": key.seal(progress, f"survey_invitations.progress:{invitation_id}")})
        await session.execute(update(SurveyInvitation), updates)
    await database.dispose()
    (workdir / "participants.json").write_text(json.dumps(ids))


def bot_memory(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process in MB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


async def measure(people: int, surveys: int) -> tuple[float, float, dict[str, float]]:
    from bot.core.security import KeyRing

    async with BotApiProcess() as api:
        with tempfile.TemporaryDirectory(prefix="civicbot-memory-") as tmp:
            workdir = Path(tmp)
            KeyRing.generate().save(workdir / "keys.json")
            user_ids = await api.users(people)
            (workdir / "users.json").write_text(json.dumps(user_ids))
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bench.memory", "--populate", str(workdir), "--people", str(people),
                            "--surveys", str(surveys)], cwd=REPO, check=True, timeout=1800)
            timings = {"populate_seconds": time.perf_counter() - started}
            env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
            env.update({
                "CIVICBOT_TELEGRAM__TOKEN": api.token, "CIVICBOT_TELEGRAM__API_BASE_URL": api.base_url,
                "CIVICBOT_TELEGRAM__RATE_PER_SECOND": "100000", "CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS": "0",
                "CIVICBOT_DATABASE__URL": f"sqlite+aiosqlite:///{workdir / 'civicbot.db'}",
                "CIVICBOT_SECURITY__KEY_FILE": str(workdir / "keys.json"),
                "CIVICBOT_SURVEYS__DIRECTORY": str(REPO / "config" / "surveys"),
                "CIVICBOT_LIMITS__FLOOD_MESSAGES": "1000",
            })
            with (workdir / "bot.log").open("wb") as log:
                bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=REPO, env=env,
                                       stdout=subprocess.DEVNULL, stderr=log)
            try:
                await wait_started(workdir / "bot.log")
                timings["idle_rss_mb"] = bot_memory(bot.pid)[1]
                rng = random.Random(7)
                askers = rng.sample(user_ids[:people], 1000)
                before = (await api.stats())["sent"]
                for user_id in askers:
                    await api.say(user_id, "/help")
                for user_id in user_ids[:min(500, surveys)]:
                    await api.say(user_id, "/surveys")
                await api.wait_sent(before + len(askers) + min(500, surveys), timeout=600)
                ids = json.loads((workdir / "participants.json").read_text())
                sent_before = (await api.stats())["sent"]
                started = time.perf_counter()
                await bulletin(workdir, ids[:surveys])
                await api.wait_sent(sent_before + surveys, timeout=600)
                timings["bulletin_seconds"] = time.perf_counter() - started
                peak, current = bot_memory(bot.pid)
            finally:
                bot.send_signal(signal.SIGTERM)
                try:
                    bot.wait(30)
                except subprocess.TimeoutExpired:
                    bot.kill()
            return peak, current, timings


async def wait_started(log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while b"telegram transport started" not in log.read_bytes():
        if time.monotonic() > deadline:
            raise RuntimeError("the bot did not start: " + log.read_text()[-500:])
        await asyncio.sleep(0.2)


async def bulletin(workdir: Path, participant_ids: list[int]) -> None:
    """A bulletin queued by another process (as ``civicbot bulletin send`` would): the running
    bot finds it by polling (SQLite has no cross-process notification)."""
    from bot.core.model import Outbound
    from bot.core.security import KeyRing
    from bot.services.outbox import Outbox, OutboxKind, ToParticipant
    from bot.storage.db import Database

    keys = KeyRing.load(workdir / "keys.json")
    database = Database(f"sqlite+aiosqlite:///{workdir / 'civicbot.db'}")
    try:
        async with database.sessions.begin() as session:
            await Outbox(keys).enqueue_many(
                session, [(ToParticipant(pid, "telegram"), Outbound("Bulletin: consultation on Thursday."))
                          for pid in participant_ids], OutboxKind.BULLETIN, ref="memory")
    finally:
        await database.dispose()


def report(people: int, surveys: int) -> bool:
    peak, current, timings = asyncio.run(measure(people, surveys))
    print(f"Memory of a running bot (civicbot run, SQLite): {people} participants, {surveys} surveys in progress; "
          f"1,000 x /help, 500 x /surveys, a {surveys}-row bulletin drained")
    print(f"  resident memory: at start {timings['idle_rss_mb']:.0f} MB, peak {peak:.0f} MB, at the end {current:.0f} MB "
          f"(database written in {timings['populate_seconds']:.0f} s; bulletin drained in "
          f"{timings['bulletin_seconds']:.1f} s)")
    ok = peak < TARGET_MB
    print(f"target peak < {TARGET_MB:.0f} MB: {peak:.0f} MB -> {'met' if ok else 'NOT MET'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--surveys", type=int, default=10_000)
    parser.add_argument("--populate", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.populate:
        users = json.loads((options.populate / "users.json").read_text())
        asyncio.run(populate(options.populate, options.people, options.surveys, users))
        return 0
    return 0 if report(options.people, options.surveys) else 1


if __name__ == "__main__":
    raise SystemExit(main())
