"""Two real ``civicbot run`` workers on the real PostgreSQL, one Matrix account and device (a
shared store): only the leader syncs. Killing it moves the Matrix sync and the scheduler to
the other worker within 10 seconds, and the person's conversation goes on."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from matrix_peer import Peer
from matrix_support import unique
from synapse_server import SynapseServer

from bot.core.security import KeyRing
from tests.conftest import _postgres_skip_reason
from tests.support import postgres_database
from tests.workers_support import Cluster, cluster_env

pytestmark = pytest.mark.postgres

TAKEOVER_LIMIT = 10.0


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    reason = await _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


async def test_killing_the_leader_moves_the_matrix_sync_and_the_scheduler_within_ten_seconds(
    synapse: SynapseServer, make_peer, tmp_path: Path, pg_url: str
) -> None:
    key_file = tmp_path / "keys.json"
    KeyRing.generate().save(key_file)
    account = synapse.register(unique("bot"))
    cluster = Cluster(cluster_env(
        tmp_path, pg_url, key_file,
        CIVICBOT_MATRIX__HOMESERVER=synapse.url, CIVICBOT_MATRIX__USER_ID=account.user_id,
        CIVICBOT_MATRIX__PASSWORD=account.password,
        CIVICBOT_MATRIX__STORE_PATH=str(tmp_path / "matrix-store"),  # one device, shared by the workers
    ), tmp_path)
    await cluster.upgrade_database()
    cluster.add_workers(2, webhook=False)
    peer: Peer = await make_peer()
    try:
        first = cluster.workers[0]
        await first.start()
        await cluster.wait_ready([first])
        assert await cluster.leader() is first
        second = cluster.workers[1]
        await second.start()
        await cluster.wait_ready([second])  # a follower is ready: it runs no Matrix sync of its own
        assert await second.metric("civicbot_leader") == 0

        room = await peer.chat_with(account.user_id, "/start")  # answered by the leader's sync
        assert "English" in peer.from_bot(room, account.user_id)[0].body

        assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
        loop = asyncio.get_running_loop()
        killed_at = loop.time()

        async def took_over() -> bool:
            return (await second.is_leader() and await second.ready()
                    and await second.metric("civicbot_scheduled_job_runs_total", job="retention", outcome="ok") >= 1)

        await cluster.wait_until(took_over, TAKEOVER_LIMIT, "takeover by the second worker")
        takeover = loop.time() - killed_at
        assert takeover < TAKEOVER_LIMIT

        # The conversation goes on with the new leader's sync: the language prompt is answered.
        await peer.send_text(room, "English", to=account.user_id)
        replies = await peer.wait_from_bot(room, account.user_id, 2, timeout=30)
        assert "Do you agree" in replies[1].body  # the consent step: the dialog went on where it was
        assert await second.metric("civicbot_inbound_turns_total", platform="matrix", kind="text") >= 1
        assert await second.metric("civicbot_leader_terms_total") == 1
        assert await second.signal(signal.SIGTERM) == 0
    finally:
        await cluster.close()
    second_log = cluster.workers[1].log.read_text()
    assert "leader duty started: matrix transport" in second_log
    assert "leader duty started: scheduler" in second_log
    for secret in (peer.user_id, room, account.password):
        assert secret not in cluster.logs()
    print(f"leader takeover after SIGKILL: {takeover:.1f} s")
