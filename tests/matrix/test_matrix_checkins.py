"""Issue 11's "done when" on Matrix: check-ins in end-to-end encrypted chats on the suite's Synapse,
with the real core, outbox sender and SQLite, and the feature's clock moved by the test (which
wakes the feature as the scheduler would).

Two contact persons answer by typing (a number is the one tap of Matrix); the schedule fires at
10:00 Berlin time on both sides of the change to summer time; one reminder; a missed check-in; a
real restart between the trigger and the answer; a flagged answer reaches the encrypted staff room
at once with the content; two missed check-ins in a row reach it once.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from matrix_peer import ENCRYPTION_STATE, Peer, Received, eventually
from matrix_support import FAST, MakePeer, bot_settings, open_conversation, unique
from synapse_server import RegisteredUser, SynapseServer

from bot.app import Bot, assemble, build_platform_transports
from bot.checkins.job import CheckinJob
from bot.checkins.service import Checkins
from bot.config import (
    CheckinSettings,
    LimitsSettings,
    OutboxSettings,
    Settings,
    StaffSettings,
)
from bot.core.security import KeyRing
from tests.support import CHECKINS_DIR, MovedClock, with_clock

CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
UPDATE = "Three families displaced from Sinjar need documents"
BERLIN = ZoneInfo("Europe/Berlin")


def fsi(value: object) -> str:
    return f"\u2068{value}\u2069"


def berlin(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T10:00").replace(tzinfo=BERLIN).astimezone(dt.UTC)


class RunningBot:
    """One run of the bot, wired as ``civicbot run`` wires it, with the feature's clock; stopping
    and starting again is a real restart (same store, database and device)."""

    def __init__(self, settings: Settings, keys: KeyRing, clock: MovedClock) -> None:
        self.settings, self.keys, self.clock = settings, keys, clock

    async def start(self) -> RunningBot:
        self.bot: Bot = await assemble(self.settings, keys=self.keys, features=with_clock(self.clock),
                                       transports=lambda services: build_platform_transports(services, matrix=FAST))
        await self.bot.start(scheduler=False)  # the test wakes the feature, as the scheduler would
        self.job = CheckinJob(self.bot.services.database, self.bot.services.get(Checkins))
        return self

    async def stop(self) -> None:
        await self.bot.stop()


def settings_for(synapse: SynapseServer, bot: RegisteredUser, staff: Peer, staff_room: str, tmp_path: Path) -> Settings:
    return bot_settings(synapse, bot, tmp_path,
        staff=StaffSettings(members=[f"matrix:{staff.user_id}"], matrix_room=staff_room),
        checkins=CheckinSettings(directory=CHECKINS_DIR, escalate_after_missed=2),
        outbox=OutboxSettings(poll_seconds=0.3),
        limits=LimitsSettings(flood_messages=10_000),
    )


async def staff_room_messages(staff: Peer, room_id: str, bot_user_id: str, count: int) -> list[Received]:
    found: list[Received] = await eventually(
        lambda: (m := staff.from_bot(room_id, bot_user_id)) and len(m) >= count and m, 30,
        what=f"{count} messages in the staff room")
    return found


async def test_checkins_on_matrix(synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    bot_user = synapse.register(unique("bot"))
    staff_peer, amal_peer, noor_peer = await make_peer(), await make_peer(), await make_peer()
    created = await staff_peer.client.room_create(invite=[bot_user.user_id], initial_state=[ENCRYPTION_STATE],
                                                  alias=unique("staff"))
    staff_room = created.room_id
    keys = KeyRing.generate()
    clock = MovedClock(dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC))
    settings = settings_for(synapse, bot_user, staff_peer, staff_room, tmp_path)
    running = await RunningBot(settings, keys, clock).start()
    try:
        await staff_peer.wait_joined(staff_room, bot_user.user_id, timeout=60)
        staff = await open_conversation(staff_peer, bot_user.user_id)
        await staff.say("/org add sinjar association Families of Sinjar", "added")
        codes = []
        for _ in range(2):
            invite = (await staff.say("/checkin invite sinjar", "Contact-person code"))[-1]
            codes.append(CODE.search(invite.body).group(0))  # type: ignore[union-attr]
        amal = await open_conversation(amal_peer, bot_user.user_id)
        noor = await open_conversation(noor_peer, bot_user.user_id)
        for person, code in ((amal, codes[0]), (noor, codes[1])):
            await person.say("/start", "Choose your language.")
            await person.say("English", "Do you agree")
            await person.say("1", "invitation code")
            await person.say(code, "You have joined \u2068sinjar\u2069", "Would you like to receive it?")
            await person.say("1", "Main menu")
        await staff.say("/checkin schedule sinjar --every 7d --at 10:00 --tz Europe/Berlin",
                        f"The next one is due {fsi('2026-03-20 10:00 (UTC+01:00)')}.")

        # -- winter time; "2" is the one tap of Matrix; the second contact person is told ----------
        before = len(amal.messages), len(noor.messages)
        clock.set(berlin("2026-03-20"))
        assert (await running.job()).opened == 1
        offer = (await amal.expect("Regular check-in with your association", since=before[0]))[-1]
        assert offer.body.endswith("1. Answer now\n2. Nothing new\n3. Later") and offer.decrypted
        await noor.expect("Regular check-in with your association", since=before[1])
        await amal.say("2", "Thank you. We have noted that there is nothing new.")
        await noor.say("1", "Another contact person of your association has already answered this check-in.")

        # -- unanswered: one reminder after 48 hours; then missed when the next one is due ---------
        clock.set(berlin("2026-03-27"))
        assert (await running.job()).opened == 1
        clock.set(dt.datetime(2026, 3, 29, 9, 0, tzinfo=dt.UTC))
        since = len(amal.messages)
        assert (await running.job()).reminded == 2
        await amal.expect("Reminder: your association has not answered this check-in yet.", since=since)
        clock.set(dt.datetime(2026, 4, 3, 7, 59, tzinfo=dt.UTC))
        assert (await running.job()).opened == 0
        clock.set(dt.datetime(2026, 4, 3, 8, 0, tzinfo=dt.UTC))  # 10:00 in Berlin, summer time
        since = len(amal.messages)
        assert (await running.job()).opened == 1
    finally:
        await running.stop()

    # -- a real restart between the trigger and the answer ------------------------------------------
    running = await RunningBot(settings, keys, clock).start()
    try:
        assert (await running.job()).opened == 0
        await amal.expect("Regular check-in with your association", since=since)
        await amal.say("answer now", f"Question {fsi(1)} of {fsi(4)}")
        await amal.say("3", "urgent needs")  # in danger: a safety flag
        await amal.say("legal", "Selected:")
        await amal.say("done", "update you would like to share")
        await amal.say(UPDATE, "call you")
        await amal.say("1", "Thank you. Your answer has reached our team.",
                       "Our team has been told at once about what you reported.")
        (notice,) = await staff_room_messages(staff_peer, staff_room, bot_user.user_id, 1)
        assert notice.decrypted, "the staff room is end-to-end encrypted"
        assert notice.body.startswith(f"Check-in {fsi(3)} of association {fsi('sinjar (Families of Sinjar)')} "
                                      f"raised: {fsi('safety concern, urgent need, call requested')}.")
        for content in (UPDATE, "Our members or our work are in danger", "Legal advice or assistance",
                        "Yes, please call us", "/checkin ack"):
            assert content in notice.body

        show = (await staff.say("/checkin show sinjar", "Answer to check-in"))[-1]
        assert UPDATE in show.body, "Matrix may show the content"

        for day in ("2026-04-10", "2026-04-17", "2026-04-24"):
            clock.set(berlin(day))
            assert (await running.job()).opened == 1
        (_, silence) = await staff_room_messages(staff_peer, staff_room, bot_user.user_id, 2)
        assert silence.body == (f"Association {fsi('sinjar')} has not answered the last {fsi(2)} check-ins.\n"
                                f"Last answer: {fsi('2026-04-03')}.")
        clock.set(berlin("2026-05-01"))
        assert (await running.job()).opened == 1
        overview = (await staff.say("/checkins", "missed in a row"))[-1]
        assert "missed in a row: \u20683\u2069" in overview.body
        assert len(staff_peer.from_bot(staff_room, bot_user.user_id)) == 2, "one notice per silence"
    finally:
        await running.stop()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    assert raw and UPDATE.encode() not in raw
