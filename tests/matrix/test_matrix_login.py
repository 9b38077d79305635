"""One device for the bot's life: login paths and the clear errors when the device is gone."""

from __future__ import annotations

import json
import urllib.request

import pytest
from matrix_support import MakeBot, MakePeer, unique
from synapse_server import SynapseServer

from bot.core.security import KeyRing
from bot.transports.matrix import MatrixStartupError


def _post(synapse: SynapseServer, path: str, token: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(f"{synapse.url}{path}", data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, object] = json.loads(response.read() or b"{}")
        return result


async def test_access_token_login_uses_that_device_and_survives_restart(
    make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer
) -> None:
    user = synapse.register(unique("bot"))
    bot = await make_bot(user=user, password=None, access_token=user.access_token)
    assert bot.transport.device_id == user.device_id
    assert bot.transport.cross_signing is not None, "a first cross-signing upload needs no password"
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "hello")
    await bot.transport.stop()

    # The token is kept sealed in the store: the configured one is not needed again.
    again = await make_bot(user=user, store=bot.options.store_path, password=None, access_token=None)
    assert again.transport.device_id == user.device_id
    await peer.send_text(room_id, "again", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert [i.text for i in again.core.inbound] == ["again"]


async def test_a_logged_out_device_is_reported_clearly(make_bot: MakeBot, synapse: SynapseServer) -> None:
    bot = await make_bot()
    token = bot.transport.client.access_token
    await bot.transport.stop()
    _post(synapse, "/_matrix/client/v3/logout", token, {})

    with pytest.raises(MatrixStartupError, match="no longer accepts the bot's access token"):
        await make_bot(user=bot.user, store=bot.options.store_path)


async def test_a_wrong_password_is_reported_clearly(make_bot: MakeBot, synapse: SynapseServer) -> None:
    user = synapse.register(unique("bot"))
    with pytest.raises(MatrixStartupError, match="refused the bot's login"):
        await make_bot(user=user, password="not the password")


async def test_start_refuses_a_store_sealed_with_another_key_file(make_bot: MakeBot) -> None:
    bot = await make_bot()
    await bot.transport.stop()
    with pytest.raises(MatrixStartupError, match="cannot be opened with this key file"):
        await make_bot(user=bot.user, store=bot.options.store_path, keys=KeyRing.generate())


async def test_a_store_of_another_account_is_refused(make_bot: MakeBot, synapse: SynapseServer) -> None:
    bot = await make_bot()
    await bot.transport.stop()
    other = synapse.register(unique("bot"))
    with pytest.raises(MatrixStartupError, match="belongs to another account"):
        await make_bot(user=other, store=bot.options.store_path)
