"""What a stranger can make the Matrix transport keep or send is bounded: notice timestamps per
room, undecryptable events waiting for their key, and "could not read" notices (one per room per
interval, however many unreadable messages arrive)."""

from __future__ import annotations

import asyncio

from matrix_peer import eventually
from matrix_support import NOTICES, MakeBot, MakePeer

from bot.transports.matrix_session import PENDING_LIMIT, PENDING_PER_ROOM, Checkpoint, PendingEvent
from bot.transports.matrix_throttle import NoticeThrottle


def _pending(room: str) -> PendingEvent:
    return PendingEvent(room, {"type": "m.room.encrypted", "sender": "@x:hs", "content": {}}, 0.0)


def test_undecryptable_events_kept_are_bounded_in_total_and_per_room() -> None:
    checkpoint = Checkpoint()
    for n in range(PENDING_PER_ROOM + 5):
        checkpoint.keep_pending(f"$same{n}", _pending("!one:hs"))
    assert len(checkpoint.pending) == PENDING_PER_ROOM
    assert checkpoint.was_seen(f"$same{PENDING_PER_ROOM}"), "an event over the room's share is dropped as handled"

    checkpoint = Checkpoint()
    for n in range(PENDING_LIMIT + 50):
        checkpoint.keep_pending(f"$e{n}", _pending(f"!room{n}:hs"))
    assert len(checkpoint.pending) == PENDING_LIMIT
    assert "$e0" not in checkpoint.pending and checkpoint.was_seen("$e0"), "the oldest make room"
    assert f"$e{PENDING_LIMIT + 49}" in checkpoint.pending


def test_notice_throttle_allows_one_per_room_per_interval_and_forgets_old_rooms() -> None:
    throttle = NoticeThrottle(interval=60.0, capacity=100)
    assert throttle.allow("!a:hs", now=0.0) and not throttle.allow("!a:hs", now=59.0)
    assert throttle.allow("!a:hs", now=61.0)
    for n in range(1000):
        assert throttle.allow(f"!room{n}:hs", now=100.0 + n / 1000)
    assert len(throttle) <= 100


async def test_many_unreadable_messages_get_one_could_not_read_notice(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot(undecryptable_grace=1.5, encryption_notice_interval=600.0)
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "hello")
    for n in range(4):
        await peer.send_withholding_key(room_id, f"unreadable {n}", to=bot.user_id)
    await eventually(lambda: len(bot.transport._checkpoint.pending) == 4 or len(peer.from_bot(room_id, bot.user_id)) > 1,
                     what="the events to be kept")
    messages = await peer.wait_from_bot(room_id, bot.user_id, 2)
    await asyncio.sleep(4.0)  # every grace period has run out by now
    messages = peer.from_bot(room_id, bot.user_id)
    notices = [m for m in messages if m.body == NOTICES["undecryptable"]]
    assert len(notices) == 1, [m.body for m in messages]
    assert not bot.transport._checkpoint.pending
