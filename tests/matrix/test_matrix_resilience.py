"""Missing room keys, homeserver outages and rate limits, against the real Synapse."""

from __future__ import annotations

import pytest
from matrix_peer import eventually
from matrix_support import NOTICES, MakeBot, MakePeer, unique
from synapse_server import SynapseServer

from bot.core.model import Address, Outbound, SendOptions
from bot.core.transport import TransientDeliveryError


async def _dm(make_bot: MakeBot, make_peer: MakePeer, **bot_options: object):  # type: ignore[no-untyped-def]
    bot = await make_bot(**bot_options)
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "hello")
    return bot, peer, room_id


async def test_withheld_room_key_gets_a_notice_after_the_grace_period(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot, peer, room_id = await _dm(make_bot, make_peer, undecryptable_grace=2.0)
    await peer.send_withholding_key(room_id, "secret the bot cannot read", to=bot.user_id)
    messages = await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert messages[1].msgtype == "m.notice" and messages[1].body == NOTICES["undecryptable"]
    assert messages[1].decrypted, "the notice itself is encrypted"
    assert [i.text for i in bot.core.inbound] == ["hello"]

    # The conversation goes on normally afterwards, and the notice is not repeated.
    await peer.send_text(room_id, "sending it again", to=bot.user_id)
    messages = await peer.wait_from_bot(room_id, bot.user_id, 3)
    assert messages[2].body.startswith("echo: sending it again")
    assert [i.text for i in bot.core.inbound] == ["hello", "sending it again"]


async def test_late_room_key_decrypts_the_kept_event(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot, peer, room_id = await _dm(make_bot, make_peer, undecryptable_grace=60.0)
    _, held = await peer.send_withholding_key(room_id, "delayed answer", to=bot.user_id)
    await eventually(lambda: bot.transport._checkpoint.pending, what="the event to be kept as undecryptable")
    assert [i.text for i in bot.core.inbound] == ["hello"]

    await peer.deliver_held_key(held)
    messages = await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert messages[1].body.startswith("echo: delayed answer")
    assert [i.text for i in bot.core.inbound] == ["hello", "delayed answer"]
    assert not bot.transport._checkpoint.pending


async def test_synapse_restart_mid_dialog_loses_and_doubles_nothing(
    make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer
) -> None:
    bot, peer, room_id = await _dm(make_bot, make_peer, send_retry_budget=1.0)
    address = Address("matrix", room_id)

    synapse.stop()
    try:
        with pytest.raises(TransientDeliveryError):
            await bot.transport.send(address, Outbound(text="queued bulletin"), SendOptions(transaction_id="row-1"))
        failures = bot.transport.sync_failures
        await eventually(lambda: bot.transport.sync_failures > failures, timeout=30,
                         what="the sync loop to notice the outage")
    finally:
        synapse.start()

    # The outbox retries its row with the same transaction id: delivered once.
    delivery = await bot.transport.send(address, Outbound(text="queued bulletin"), SendOptions(transaction_id="row-1"))
    again = await bot.transport.send(address, Outbound(text="queued bulletin"), SendOptions(transaction_id="row-1"))
    assert delivery.message_id == again.message_id

    await peer.send_text(room_id, "after the outage", to=bot.user_id)
    await eventually(lambda: len(bot.core.inbound) == 2, timeout=30, what="the bot to hear after the outage")
    await peer.send_text(room_id, "marker", to=bot.user_id)
    # Events of a room are handled in order: a doubled answer would have come before the marker's.
    await peer.wait_from_bot(room_id, bot.user_id, 4, timeout=30)
    assert [i.text for i in bot.core.inbound] == ["hello", "after the outage", "marker"]
    bodies = [m.body.split("\n")[0] for m in peer.from_bot(room_id, bot.user_id)]
    assert bodies == ["echo: hello", "queued bulletin", "echo: after the outage", "echo: marker"]


async def test_rate_limit_is_obeyed(make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer) -> None:
    bot, peer, room_id = await _dm(make_bot, make_peer)
    admin = synapse.register(unique("admin"), admin=True)
    synapse.override_ratelimit(admin, bot.user_id, messages_per_second=2, burst_count=1)
    try:
        address = Address("matrix", room_id)
        for n in range(4):
            await bot.transport.send(address, Outbound(text=f"bulletin {n}"), SendOptions(transaction_id=f"rl-{n}"))
    finally:
        synapse.override_ratelimit(admin, bot.user_id, messages_per_second=0, burst_count=0)
    assert bot.transport.rate_limited >= 1, "Synapse should have answered M_LIMIT_EXCEEDED at least once"
    messages = await peer.wait_from_bot(room_id, bot.user_id, 5)
    assert [m.body for m in messages[1:]] == [f"bulletin {n}" for n in range(4)]
