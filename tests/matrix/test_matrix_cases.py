"""Contact requests on Matrix: the real core behind the Matrix transport on the suite's Synapse.

A person asks to talk to staff in their encrypted direct chat; in the end-to-end encrypted
staff room the case becomes a thread (``m.thread``) holding the request and the person's
messages; a staff member answers by replying in that thread and the answer reaches the person
(and nobody else); someone in the room who is not staff cannot answer; ``/close`` typed in the
thread closes the case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from matrix_peer import ENCRYPTION_STATE, Peer, Received, eventually
from matrix_support import Conversation, MakePeer, bot_settings, open_conversation, unique
from synapse_server import SynapseServer
from test_matrix_survey import start_bot

from bot.app import build_scheduler
from bot.cases.crypto import StaffPrivateKey
from bot.config import (
    ContactsSettings,
    LimitsSettings,
    OutboxSettings,
    StaffSettings,
)
from bot.core.security import KeyRing
from bot.storage.models import utcnow

DESCRIPTION = "Threats against our association in Sinjar"
ANSWER = "Thank you for telling us. Are you safe tonight?"
FOLLOW_UP = "Yes, we are with relatives"


def plain(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


def in_thread(root: str, text: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                             "m.in_reply_to": {"event_id": root}}}


async def room_message(peer: Peer, room_id: str, bot_user_id: str, text: str, since: int = 0) -> Received:
    def found() -> Received | None:
        return next((m for m in peer.from_bot(room_id, bot_user_id)[since:] if text in plain(m.body)), None)
    message: Received = await eventually(found, 30, what=f"{text!r} in the staff room")
    return message


async def test_contact_request_as_a_thread_in_the_encrypted_staff_room(
        synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    bot_user = synapse.register(unique("bot"))
    staff_peer, person_peer, intruder = await make_peer(), await make_peer(), await make_peer()
    created = await staff_peer.client.room_create(invite=[bot_user.user_id, intruder.user_id],
                                                  initial_state=[ENCRYPTION_STATE], alias=unique("staff"))
    staff_room = created.room_id
    await intruder.client.join(staff_room)
    private = StaffPrivateKey.generate()
    settings = bot_settings(synapse, bot_user, tmp_path,
        staff=StaffSettings(members=[f"matrix:{staff_peer.user_id}"], matrix_room=staff_room),
        outbox=OutboxSettings(poll_seconds=0.2),
        limits=LimitsSettings(flood_messages=10_000),
        contacts=ContactsSettings(staff_public_key=private.public.text),
    )
    keys = KeyRing.generate()
    bot, _transport = await start_bot(settings, keys)
    bot_id = bot_user.user_id
    try:
        await staff_peer.wait_joined(staff_room, bot_id, timeout=60)
        chat: Conversation = await open_conversation(person_peer, bot_id)
        await chat.say("/start", "Choose your language.")
        await chat.say("English", "Do you agree")
        await chat.say("1", "invitation code")
        await chat.say("skip", "Would you like to receive it?")
        await chat.say("no, thank you", "Main menu")

        # No warning step on Matrix: the chat is end-to-end encrypted.
        await chat.say("/contact", "What would you like to talk to staff about?")
        await chat.say("3", "describe briefly")  # a safety concern, by number
        await chat.say(DESCRIPTION, "How would you prefer staff to contact you?")
        await chat.say("1", "When is it safe")
        await chat.say("evenings", "Send it to staff?")
        receipt = (await chat.say("send", "Your reference is"))[-1]
        reference = plain(receipt.body).split("Your reference is ")[1].split(".")[0]

        # The staff room: the case's first message, with its content, starts the thread.
        root = await room_message(staff_peer, staff_room, bot_id, f"New case {reference} · safety · English · Matrix")
        assert DESCRIPTION in root.body and root.decrypted and root.thread_root is None

        # Nobody claimed it in time: the feature's job, as the leader's scheduler runs it on a moved
        # clock, reminds the room once, in the room's own timeline, through the outbox.
        later = utcnow() + dt.timedelta(hours=25)
        scheduled = build_scheduler(bot.services, clock=lambda: later).get_job("case-upkeep")
        assert scheduled is not None
        await scheduled.func()
        reminder = await room_message(staff_peer, staff_room, bot_id,
                                      f"Reminder: {reference} (safety) has not been claimed for 25 hours.")
        assert reminder.thread_root is None and reminder.decrypted

        # Someone in the room who is not staff answers in the thread: refused, nothing relayed.
        before = len(staff_peer.from_bot(staff_room, bot_id))
        await intruder.send_content(staff_room, in_thread(root.event_id, "I am not staff"), to=bot_id)
        refused = await room_message(staff_peer, staff_room, bot_id, "Only staff members can answer cases", before)
        assert refused.thread_root == root.event_id

        # /claim typed in the thread needs no reference.
        await staff_peer.send_content(staff_room, in_thread(root.event_id, "/claim"), to=bot_id)
        claimed = await room_message(staff_peer, staff_room, bot_id, f"{reference} is yours now.")
        assert claimed.thread_root == root.event_id

        # The staff member answers in the thread; the person gets it, without any staff identity.
        before_person = len(chat.messages)
        await staff_peer.send_content(staff_room, in_thread(root.event_id, ANSWER), to=bot_id)
        relayed = (await chat.expect(f"Message from staff about \u2068{reference}\u2069", since=before_person))[-1]
        assert plain(relayed.body).endswith(ANSWER) and relayed.decrypted
        assert staff_peer.user_id not in relayed.body
        assert not any("I am not staff" in m.body for m in chat.messages)
        confirmed = await room_message(staff_peer, staff_room, bot_id, f"Sent to the person in {reference} ✓")
        assert confirmed.thread_root == root.event_id

        # The person answers; it lands in the case's thread.
        await chat.say(FOLLOW_UP, "Sent to staff ✓")
        follow_up = await room_message(staff_peer, staff_room, bot_id, f"{reference} · from the person:")
        assert follow_up.thread_root == root.event_id and FOLLOW_UP in follow_up.body

        # /close typed in the thread needs no reference; the person is told.
        before_person = len(chat.messages)
        await staff_peer.send_content(staff_room, in_thread(root.event_id, "/close"), to=bot_id)
        closed = await room_message(staff_peer, staff_room, bot_id, f"{reference} is closed; the person was told.")
        assert closed.thread_root == root.event_id
        await chat.expect("Staff have closed your request", since=before_person)
        assert all(m.decrypted for m in staff_peer.from_bot(staff_room, bot_id) + chat.messages)
    finally:
        await bot.stop()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    for secret in (DESCRIPTION, ANSWER, FOLLOW_UP):
        assert secret.encode() not in raw
