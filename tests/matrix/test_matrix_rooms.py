"""Unencrypted rooms, history on first start, and a bot restarted on its store."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from matrix_peer import ENCRYPTION_STATE, eventually
from matrix_support import NOTICES, MakeBot, MakePeer, unique
from synapse_server import RegisteredUser, SynapseServer

from bot.core.model import Address, Outbound
from bot.core.transport import PermanentDeliveryError


async def test_unencrypted_room_gets_only_the_request_to_enable_encryption(
    make_bot: MakeBot, make_peer: MakePeer
) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.create_dm(bot.user_id, encrypted=False)
    await peer.wait_joined(room_id, bot.user_id)

    await peer.send_text(room_id, "my name is ...")
    await peer.send_text(room_id, "hello?")
    [notice] = await peer.wait_from_bot(room_id, bot.user_id, 1)
    assert notice.msgtype == "m.notice" and notice.body == NOTICES["enable_encryption"]
    assert bot.core.inbound == [], "nothing said in an unencrypted room may reach the core"
    with pytest.raises(PermanentDeliveryError):
        await bot.transport.send(Address("matrix", room_id), Outbound(text="confidential"))

    # Once the person turns encryption on, the conversation starts.
    await peer.client.room_put_state(room_id, "m.room.encryption", ENCRYPTION_STATE["content"])
    await eventually(lambda: bot.transport.client.rooms[room_id].encrypted, what="the room to become encrypted")
    await eventually(lambda: peer.client.rooms[room_id].encrypted, what="the peer to see encryption")
    await peer.send_text(room_id, "now encrypted", to=bot.user_id)
    replies = await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert replies[1].decrypted and replies[1].body.startswith("echo: now encrypted")
    assert [i.text for i in bot.core.inbound] == ["now encrypted"]
    assert len(peer.from_bot(room_id, bot.user_id)) == 2


def _join_with_registration_device(synapse: SynapseServer, user: RegisteredUser, room_id: str) -> None:
    request = urllib.request.Request(f"{synapse.url}/_matrix/client/v3/join/{room_id}", data=b"{}", method="POST")
    request.add_header("Authorization", f"Bearer {user.access_token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["room_id"] == room_id


async def test_first_start_does_not_answer_history(
    make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer
) -> None:
    user = synapse.register(unique("bot"))
    peer = await make_peer()
    room_id = await peer.create_dm(user.user_id)
    _join_with_registration_device(synapse, user, room_id)
    await peer.wait_joined(room_id, user.user_id)
    await peer.send_text(room_id, "old question 1")
    await peer.send_text(room_id, "old question 2")

    bot = await make_bot(user=user)  # first start ever: the store is empty
    await peer.send_text(room_id, "new question", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 1)
    # History is neither answered nor kept waiting for keys, so no "could not read" notice can follow.
    assert not bot.transport._checkpoint.pending
    assert [i.text for i in bot.core.inbound] == ["new question"]
    assert [m.body.split("\n")[0] for m in peer.from_bot(room_id, bot.user_id)] == ["echo: new question"]


async def test_restart_keeps_device_decrypts_and_catches_up(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "one")
    device_id = bot.transport.device_id

    # Abrupt end: the sync task dies and the connection drops; no orderly stop, no logout.
    task = bot.transport._task
    assert task is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await bot.transport.client.close()

    await peer.send_text(room_id, "sent while the bot was down", to=bot.user_id)
    restarted = await make_bot(user=bot.user, store=bot.options.store_path)
    assert restarted.transport.device_id == device_id
    await peer.wait_from_bot(room_id, bot.user_id, 2)
    await peer.send_text(room_id, "after the restart", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 3)

    assert [i.text for i in bot.core.inbound] == ["one"]
    assert [i.text for i in restarted.core.inbound] == ["sent while the bot was down", "after the restart"]
    bodies = [m.body.split("\n")[0] for m in peer.from_bot(room_id, bot.user_id)]
    assert bodies == ["echo: one", "echo: sent while the bot was down", "echo: after the restart"]
    assert all(m.decrypted for m in peer.from_bot(room_id, bot.user_id))


async def test_many_messages_missed_during_downtime_are_all_answered_once(
    make_bot: MakeBot, make_peer: MakePeer
) -> None:
    # A small timeline per sync, so the catch-up sync is "limited" and the rest must be paged in.
    bot = await make_bot(timeline_limit=3)
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "before")
    await bot.transport.stop()

    missed = [f"missed {n}" for n in range(8)]
    for text in missed:
        await peer.send_text(room_id, text, to=bot.user_id)
    restarted = await make_bot(user=bot.user, store=bot.options.store_path, timeline_limit=3)
    await peer.wait_from_bot(room_id, bot.user_id, 1 + len(missed), timeout=40)
    await peer.send_text(room_id, "marker", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 2 + len(missed))
    assert [i.text for i in restarted.core.inbound] == [*missed, "marker"]
    assert len(peer.from_bot(room_id, bot.user_id)) == 2 + len(missed)


async def test_staff_room_is_joined_and_group_invites_elsewhere_declined(
    make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer
) -> None:
    staff = await make_peer()
    user = synapse.register(unique("bot"))
    created = await staff.client.room_create(invite=[user.user_id], initial_state=[ENCRYPTION_STATE],
                                             alias=unique("staff"))
    staff_room = created.room_id
    bot = await make_bot(user=user, staff_room=staff_room)
    await staff.wait_joined(staff_room, bot.user_id)
    await staff.send_text(staff_room, "/cases", to=bot.user_id)
    await staff.wait_from_bot(staff_room, bot.user_id, 1)
    assert [(i.text, i.address.value) for i in bot.core.inbound] == [("/cases", staff_room)]
    assert bot.core.inbound[0].in_staff_room, "the staff room is shared: never anyone's address, only staff commands"

    # An invite to some other group room (not a direct chat) is declined.
    group = await staff.client.room_create(invite=[bot.user_id], initial_state=[ENCRYPTION_STATE])
    await staff.wait_left(group.room_id, bot.user_id)


async def test_bot_opens_an_encrypted_direct_chat(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    address = await bot.transport.open_direct_room(peer.user_id)
    await eventually(lambda: address.value in peer.client.invited_rooms, what="the invite to arrive")
    await peer.client.join(address.value)
    await eventually(lambda: bot.transport.client.rooms[address.value].joined_count == 2,
                     what="the bot to see the person join")
    await bot.transport.send(address, Outbound(text="Your check-in is due."))
    [message] = await peer.wait_from_bot(address.value, bot.user_id, 1)
    assert message.decrypted and message.body == "Your check-in is due."
    assert peer.client.rooms[address.value].encrypted


async def test_a_direct_chat_that_gains_a_member_is_no_longer_used(make_bot: MakeBot, make_peer: MakePeer) -> None:
    """If a third person joins (or is invited), nothing the participant says reaches the core and
    nothing is sent there: the bot asks for a new direct chat instead."""
    from bot.core.transport import RecipientUnreachable

    bot = await make_bot()
    peer = await make_peer()
    onlooker = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "just us")

    await peer.client.room_invite(room_id, onlooker.user_id)
    await eventually(lambda: room_id in onlooker.client.invited_rooms, what="the invitation")
    await onlooker.client.join(room_id)
    await eventually(lambda: bot.transport.client.rooms[room_id].joined_count == 3, what="the bot to see 3 members")

    await peer.send_text(room_id, "my brother's name is ...", to=bot.user_id)
    replies = await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert replies[1].msgtype == "m.notice" and replies[1].body == NOTICES["not_private"]
    assert [i.text for i in bot.core.inbound] == ["just us"], "nothing said with others present reaches the core"
    with pytest.raises(RecipientUnreachable):
        await bot.transport.send(Address("matrix", room_id), Outbound(text="your survey answers"))
