"""Two real ``civicbot run`` workers on the real PostgreSQL, Telegram in webhook mode behind a
round-robin proxy, against the local Bot API server.

People's updates land on both workers; the leader alone sends the outbox; a wrong webhook
secret is refused; /metrics parses with the Prometheus text parser; SIGTERM exits 0 and
loses nothing; a 2,000-row fan-out keeps Telegram's limits on the server's own clock.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from botapi_server import LocalBotApi
from sqlalchemy import text
from telegram_support import Conversation

from bot.core.model import Address, Outbound, Platform
from bot.core.security import KeyRing
from bot.services.outbox import Outbox, OutboxKind, ToParticipant
from bot.services.participants import Participants
from bot.storage.db import Database
from tests.conftest import _postgres_skip_reason
from tests.support import postgres_database
from tests.workers_support import REPO, Cluster, civicbot, cluster_env, telegram_env

pytestmark = pytest.mark.postgres

CODE = re.compile(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")
SURVEY = "families-of-the-missing"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    KeyRing.generate().save(path)
    return path


async def start_cluster(bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path,
                        **extra: str) -> Cluster:
    cluster = Cluster(cluster_env(tmp_path, pg_url, key_file, **extra), tmp_path)
    await cluster.upgrade_database()  # once, before the workers (as docker-compose.yml does)
    cluster.add_workers(2, webhook=True)
    proxy = await cluster.start_proxy()
    for worker in cluster.workers:
        worker.env.update(telegram_env(bot_api.base_url, bot_api.token, proxy.port, **{
            k: v for k, v in extra.items() if k.startswith("CIVICBOT_TELEGRAM__")}))
        await worker.start()
    await cluster.wait_ready()
    return cluster


def assert_private_logs(cluster: Cluster, *secrets: str) -> None:
    text = cluster.logs()
    for line in filter(None, text.splitlines()):
        json.loads(line)  # every line is one JSON object
    for secret in secrets:
        assert secret not in text


async def test_two_workers_share_onboarding_and_a_survey_and_stop_cleanly(
    bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path
) -> None:
    coordinator = Conversation(bot_api, bot_api.user(language_code="en", first_name="Coordinator"))
    amira = Conversation(bot_api, bot_api.user(language_code="en", first_name="Amira"))
    cluster = await start_cluster(bot_api, tmp_path, pg_url, key_file,
                                  CIVICBOT_STAFF__MEMBERS=f'["telegram:{coordinator.user.id}"]',
                                  CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0.05")
    try:
        leader = await cluster.leader()
        follower = next(w for w in cluster.workers if w is not leader)

        # Staff set up a group and a code; Amira onboards with it; the coordinator launches a survey.
        await coordinator.say("/org add families association Families Association")
        await coordinator.say("/group add fg-missing focus_group families")
        (invite,) = await coordinator.say("/invite families fg-missing")
        code = CODE.search(invite.text).group(1)  # type: ignore[union-attr]
        (languages,) = await amira.say("/start")
        (consent,) = await amira.press(languages, label="English")
        (code_prompt,) = await amira.press(consent, label=consent.labels[0])
        joined, bulletins = await amira.say(code, count=2)
        _, menu = await amira.press(bulletins, index=0, count=2)  # the onboarding's question about bulletins
        assert "You have joined" in joined.text and menu.text.startswith("Main menu")
        (launched,) = await coordinator.say(f"/survey launch {SURVEY} fg-missing")
        assert "person invited" in launched.text
        (invitation,) = await amira.replies()  # from the outbox, which only the leader sends
        assert invitation.text.startswith("New survey:")

        # Amira answers; her updates alternate between the workers.
        (intro,) = await amira.say("/surveys")
        (relation,) = await amira.press(intro, "Start")
        (since,) = await amira.press(relation, "Spouse")
        (reported,) = await amira.press(since, "Skip")
        (to_whom,) = await amira.press(reported, "Yes")
        assert "To whom" in to_whom.text

        assert cluster.proxy is not None
        assert all(count >= 5 for count in cluster.proxy.forwarded.values()), cluster.proxy.forwarded
        for worker in (leader, follower):
            assert await worker.metric("civicbot_inbound_turns_total", platform="telegram", kind="text") > 0
            assert await worker.metric("civicbot_inbound_turns_total", platform="telegram", kind="choice") > 0
        assert await leader.metric("civicbot_outbound_sends_total", platform="telegram", outcome="sent") > 0
        assert await leader.metric("civicbot_leader") == 1 and await follower.metric("civicbot_leader") == 0
        page = await follower.metrics()
        assert ("civicbot_dialogs_in_progress", (("dialog", "survey"),)) in page
        assert page[("civicbot_turn_duration_seconds_count", (("platform", "telegram"),))] > 0
        _, text = await follower.get("/metrics")
        for secret in (str(amira.user.id), str(coordinator.user.id), code, "Spouse"):
            assert secret not in text

        # A webhook call without the right secret is refused by every worker, before it is read.
        async with aiohttp.ClientSession() as http:
            for worker in cluster.workers:
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(f"http://127.0.0.1:{worker.webhook_port}/telegram",
                                         json={"update_id": 1, "message": {"text": "/start"}},
                                         headers=headers) as response:
                        assert response.status == 403
                assert await worker.metric("civicbot_webhook_refused_total") == 2

        # SIGTERM on the leader while Amira keeps answering: it finishes what it holds and exits 0;
        # the other worker becomes the leader; every answer is answered.
        amira.user.press(to_whom, label="The authorities")
        amira.presses += 1
        assert await leader.signal(signal.SIGTERM) == 0
        (ticked,) = await amira.replies(timeout=30)
        (needs,) = await amira.press(ticked, "Done")
        assert "need most" in needs.text
        assert await cluster.leader() is follower
        assert len(bot_api.callback_answers) == amira.presses + coordinator.presses
        assert await follower.signal(signal.SIGTERM) == 0
    finally:
        await cluster.close()
    assert_private_logs(cluster, str(amira.user.id), str(coordinator.user.id), code, bot_api.token, "Spouse")
    assert [c for c in bot_api.calls if c.status == 429] == []


def sliding_max(times: list[float], window: float) -> int:
    """The most calls within any ``window`` seconds (inclusive of its start)."""
    most, recent = 0, deque[float]()
    for at in sorted(times):
        recent.append(at)
        while recent[0] <= at - window:
            recent.popleft()
        most = max(most, len(recent))
    return most


async def enqueue_fanout(pg_url: str, key_file: Path, bot_api: LocalBotApi, people: int,
                         per_person: dict[int, int]) -> list[int]:
    """``people`` participants with Telegram chats, one bulletin row each (more for some)."""
    keys = KeyRing.load(key_file)
    database = Database(pg_url)
    participants, outbox = Participants(keys), Outbox(keys)
    chats = [bot_api.user(language_code="en").id for _ in range(people)]
    try:
        async with database.sessions.begin() as session:
            for index, chat in enumerate(chats):
                address = Address(Platform("telegram"), str(chat))
                participant = await participants.register(session, keys.pseudonym("telegram", str(chat)), "en", address)
                for n in range(per_person.get(index, 1)):
                    await outbox.enqueue(session, ToParticipant(participant.id, "telegram"), OutboxKind.BULLETIN,
                                         Outbound(text=f"Bulletin {n + 1}"), ref="bulletin:1")
    finally:
        await database.dispose()
    return chats


@pytest.fixture
async def strict_bot_api() -> AsyncIterator[LocalBotApi]:
    """A Bot API server that answers 429 to anything beyond Telegram's limits, as Telegram does."""
    api = LocalBotApi(enforce_limits=True)
    await api.start()
    try:
        yield api
    finally:
        await api.close()


async def test_a_fanout_from_two_workers_keeps_telegrams_limits_on_the_servers_clock(
    strict_bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path
) -> None:
    bot_api = strict_bot_api
    cluster = await start_cluster(bot_api, tmp_path, pg_url, key_file,
                                  CIVICBOT_TELEGRAM__RATE_PER_SECOND="30",
                                  CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="1.0",
                                  CIVICBOT_OUTBOX__BATCH_SIZE="200", CIVICBOT_OUTBOX__CONCURRENCY="64")
    try:
        leader = await cluster.leader()
        # 1,980 people with one message each, ten of them with two more: 2,000 rows.
        chats = await enqueue_fanout(pg_url, key_file, bot_api, 1_980, {i: 3 for i in range(10)})
        sends_before = len(bot_api.calls_to("sendMessage"))
        await bot_api.wait_for(lambda: len(bot_api.calls_to("sendMessage")) - sends_before >= 2_000, timeout=150)
        page = await leader.metrics()
    finally:
        await cluster.close()
    sends = [c for c in bot_api.calls_to("sendMessage") if c.chat_id in set(chats)]
    assert len(sends) == 2_000 and all(c.status == 200 for c in sends)
    assert [c for c in bot_api.calls if c.status == 429] == []
    times = [c.at for c in sends]
    assert sliding_max(times, 1.0) <= 30  # Telegram's 30 messages per second, on its own clock
    by_chat: dict[int, list[float]] = {}
    for call in sends:
        by_chat.setdefault(int(call.chat_id or 0), []).append(call.at)
    gaps = [b - a for at in by_chat.values() for a, b in zip(sorted(at), sorted(at)[1:], strict=False)]
    assert len(gaps) == 20 and min(gaps) >= 1.0  # one message per second per chat
    assert len({len(v) for v in by_chat.values()}) == 2  # each got exactly what was queued for them
    assert page[("civicbot_rate_limited_total", (("platform", "telegram"),))] == 0
    assert page[("civicbot_outbound_sends_total", (("outcome", "sent"), ("platform", "telegram")))] >= 2_000
    span = max(times) - min(times)
    print(f"fan-out of 2,000 rows, two workers: {span:.1f} s on the server's clock, {len(times) / span:.1f} msg/s, "
          f"at most {sliding_max(times, 1.0)} in any second")


async def test_in_polling_mode_only_the_leader_polls_and_the_other_takes_over(
    bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path
) -> None:
    cluster = Cluster(cluster_env(tmp_path, pg_url, key_file,
                                  CIVICBOT_TELEGRAM__TOKEN=bot_api.token,
                                  CIVICBOT_TELEGRAM__API_BASE_URL=bot_api.base_url,
                                  CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0.05"), tmp_path)
    await cluster.upgrade_database()
    first, second = cluster.add_workers(2, webhook=False)
    person = Conversation(bot_api, bot_api.user(language_code="en"))
    try:
        await first.start()
        await cluster.wait_ready([first])
        await second.start()
        await cluster.wait_ready([second])
        leader = await cluster.leader()
        follower = second if leader is first else first
        (languages,) = await person.say("/start")
        # Two pollers on one token would knock each other out (409): only the leader polls.
        assert [c for c in bot_api.calls_to("getUpdates") if c.status != 200] == []

        assert await leader.signal(signal.SIGKILL) == -signal.SIGKILL
        (consent,) = await person.press(languages, label="English")  # answered by the new leader
        assert "Do you agree" in consent.text
        assert await cluster.leader() is follower
        assert await follower.signal(signal.SIGTERM) == 0
    finally:
        await cluster.close()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_update_whose_turn_never_committed_on_the_leader_is_answered_once_by_the_next(
    bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path, stop: signal.Signals
) -> None:
    """Polling on the leader: an update fetched but not handled when the leader goes (a SIGTERM
    whose grace runs out with the turn still waiting, or a kill) is not confirmed to Telegram, so
    the next leader fetches it again and answers it exactly once."""
    cluster = Cluster(cluster_env(tmp_path, pg_url, key_file,
                                  CIVICBOT_TELEGRAM__TOKEN=bot_api.token,
                                  CIVICBOT_TELEGRAM__API_BASE_URL=bot_api.base_url,
                                  CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0.05",
                                  CIVICBOT_RUNTIME__SHUTDOWN_GRACE_SECONDS="4"), tmp_path)
    await cluster.upgrade_database()
    first, second = cluster.add_workers(2, webhook=False)
    user = bot_api.user(language_code="en")
    pseudonym = KeyRing.load(key_file).pseudonym("telegram", str(user.id))
    database = Database(pg_url)
    try:
        await first.start()
        await cluster.wait_ready([first])
        await second.start()
        await cluster.wait_ready([second])
        leader = await cluster.leader()
        follower = second if leader is first else first
        async with database.engine.connect() as holder:
            # The person's turn lock, held here: the leader fetches the update and its turn waits.
            await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": int(pseudonym[:15], 16)})
            await holder.commit()
            fetched = len(bot_api.fetched)
            user.say("/start")
            await bot_api.wait_for(lambda: len(bot_api.fetched) > fetched, timeout=30)
            polls = len(bot_api.calls_to("getUpdates"))
            await bot_api.wait_for(lambda: len(bot_api.calls_to("getUpdates")) > polls + 1, timeout=30)
            assert not bot_api.sent_to(user.id)  # polls went on; the turn has not committed
            code = await leader.signal(stop)
            assert code == (0 if stop is signal.SIGTERM else -signal.SIGKILL)
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": int(pseudonym[:15], 16)})
            await holder.commit()
        assert await cluster.leader() is follower
        (languages,) = await bot_api.next_messages(user.id, 0, 1, timeout=60)
        assert "Choose your language" in languages.text
        await asyncio.sleep(2.0)  # a doubled answer would come within a poll or two
        assert len(bot_api.sent_to(user.id)) == 1, "answered exactly once"
        assert await follower.signal(signal.SIGTERM) == 0
    finally:
        await database.dispose()
        await cluster.close()


async def test_keys_rotate_refuses_while_a_worker_runs_even_from_another_host(
    bot_api: LocalBotApi, tmp_path: Path, pg_url: str, key_file: Path
) -> None:
    """Every worker holds the running lock for its whole life: a rotation beside it (here, or on
    another host with its own copy of the key file) would leave it sealing with the old keys."""
    env = cluster_env(tmp_path, pg_url, key_file, CIVICBOT_TELEGRAM__TOKEN=bot_api.token,
                      CIVICBOT_TELEGRAM__API_BASE_URL=bot_api.base_url,
                      CIVICBOT_MATRIX__STORE_PATH=str(tmp_path / "no-matrix"))
    cluster = Cluster(env, tmp_path)
    await cluster.upgrade_database()
    (worker,) = cluster.add_workers(1, webhook=False)
    elsewhere = tmp_path / "elsewhere" / "keys.json"
    elsewhere.parent.mkdir()
    shutil.copy2(key_file, elsewhere)
    before = key_file.read_bytes()

    def rotate(key: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(civicbot("keys", "rotate", "--retire"), cwd=REPO, capture_output=True, text=True,
                              timeout=120, env={**env, "CIVICBOT_SECURITY__KEY_FILE": str(key)})

    try:
        await worker.start()
        await cluster.wait_ready([worker])
        for key in (key_file, elsewhere):
            refused = await asyncio.to_thread(rotate, key)
            assert refused.returncode == 2 and "running" in refused.stderr, refused.stderr
            assert key.read_bytes() == before, "nothing was rotated"
        assert await worker.signal(signal.SIGTERM) == 0
        done = await asyncio.to_thread(rotate, key_file)
        assert done.returncode == 0, done.stderr
        assert key_file.read_bytes() != before
    finally:
        await cluster.close()
