"""Contact requests with two real ``civicbot run`` workers on the real PostgreSQL, Telegram in
webhook mode behind a round-robin proxy: the person's and the staff's updates land on both
workers, and what goes through the outbox (the notice to the staff group, the relayed answer,
the person's message to staff) is sent by the leader alone, and by the next leader once the
first one stops."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botapi_server import LocalBotApi
from telegram_support import Conversation

from bot.cases.crypto import StaffPrivateKey
from bot.core.security import KeyRing
from tests.conftest import _postgres_skip_reason
from tests.support import postgres_database
from tests.workers_support import Cluster, cluster_env, telegram_env

pytestmark = pytest.mark.postgres

DESCRIPTION = "The families in the camp want to meet"
ANSWER = "We can meet on Sunday"
FOLLOW_UP = "Sunday morning suits us"


def plain(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


async def test_a_case_through_two_workers_is_sent_by_the_leader(bot_api: LocalBotApi, tmp_path: Path,
                                                                pg_url: str) -> None:
    key_file = tmp_path / "keys.json"
    KeyRing.generate().save(key_file)
    private = StaffPrivateKey.generate()
    coordinator = bot_api.user(language_code="en", first_name="Coordinator")
    amira = Conversation(bot_api, bot_api.user(language_code="en", first_name="Amira"))
    group = bot_api.group()
    extra = {"CIVICBOT_STAFF__MEMBERS": f'["telegram:{coordinator.id}"]',
             "CIVICBOT_STAFF__TELEGRAM_CHAT": str(group["id"]),
             "CIVICBOT_CONTACTS__STAFF_PUBLIC_KEY": private.public.text,
             "CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS": "0.05"}
    cluster = Cluster(cluster_env(tmp_path, pg_url, key_file, **extra), tmp_path)
    await cluster.upgrade_database()
    cluster.add_workers(2, webhook=True)
    proxy = await cluster.start_proxy()
    for worker in cluster.workers:
        worker.env.update(telegram_env(bot_api.base_url, bot_api.token, proxy.port,
                                       CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS="0.05"))
        await worker.start()
    await cluster.wait_ready()
    try:
        leader = await cluster.leader()
        follower = next(w for w in cluster.workers if w is not leader)

        (languages,) = await amira.say("/start")
        (consent,) = await amira.press(languages, label="English")
        (invite,) = await amira.press(consent, label="I agree")
        (bulletins,) = await amira.press(invite, label="Skip")
        await amira.press(bulletins, label="No, thank you", count=3)
        (warning,) = await amira.say("/contact")
        (topic,) = await amira.press(warning, label="Continue here")
        (description,) = await amira.press(topic, label="Ask for a meeting")
        (way,) = await amira.say(DESCRIPTION)
        (when,) = await amira.press(way, label="By message, here")
        (confirm,) = await amira.press(when, label="Evenings")
        (receipt,) = await amira.press(confirm, label="Send")
        reference = plain(receipt.text).split("Your reference is ")[1].split(".")[0]
        (notice,) = await bot_api.next_messages(group["id"], 0, 1, timeout=15)
        assert plain(notice.text).startswith(f"New case {reference} · meeting · English · Telegram")
        assert DESCRIPTION not in notice.text
        assert cluster.proxy is not None and all(n > 0 for n in cluster.proxy.forwarded.values())
        for worker in (leader, follower):
            assert await worker.metric("civicbot_inbound_turns_total", platform="telegram", kind="text") > 0

        # The leader stops; the other worker leads now and sends what the outbox holds.
        assert await leader.signal(signal.SIGTERM) == 0
        assert await cluster.leader() is follower
        coordinator.say(f"/reply {reference} {ANSWER}", chat=group)  # type: ignore[arg-type]
        (message,) = await amira.replies(timeout=30)
        assert plain(message.text) == f"Message from staff about {reference}:\n{ANSWER}"
        (tick,) = await amira.say(FOLLOW_UP)
        assert tick.text == "Sent to staff ✓"
        # The group: the answer to the command (direct), and the content-free notice (outbox).
        messages = await bot_api.next_messages(group["id"], 1, 2, timeout=30)
        assert {plain(m.text) for m in messages} == {f"Sent to the person in {reference} ✓",
                                                     f"{reference}: a new message from the person."}
        assert await follower.signal(signal.SIGTERM) == 0
    finally:
        await cluster.close()
    text = cluster.logs()
    for secret in (DESCRIPTION, ANSWER, FOLLOW_UP, str(amira.user.id), str(coordinator.id)):
        assert secret not in text
