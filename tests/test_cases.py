"""Confidential contact requests on the real core and database (SQLite file and PostgreSQL).

People write on a Telegram-like transport; staff read the Matrix-like staff room (threads,
content) and the Telegram-like staff chat (content-free notices). The platform tiers
(tests/telegram, tests/matrix) repeat the cycle against the real servers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.app import StartupError, build_scheduler
from bot.cases.crypto import StaffPrivateKey
from bot.cases.jobs import CaseUpkeepJob
from bot.config import ContactRoute
from bot.core.model import Address, Inbound, Platform
from bot.core.security import KeyRing
from bot.services.audit import AuditLog
from bot.storage.models import AuditEntry, Case, CaseMessage, OutboxMessage, OutboxThread, Participant, utcnow
from tests.cases_support import (
    ALICE,
    TELEGRAM_STAFF,
    case_settings,
    case_world,
    onboard,
    plain,
    request_contact,
)

DESCRIPTION = "My cousin saw the detention site near Raqqa"
ANSWER = "Thank you. Could we call you on Thursday evening?"
FOLLOW_UP = "Thursday works, after 8 pm please"
NOT_PASSED_ON_CONTACT = ("Your message was not passed on to anyone: I only read commands and answers to my "
                         "questions. To write to staff in confidence, send /contact.")


@pytest.fixture
def private() -> StaffPrivateKey:
    return StaffPrivateKey.generate()


async def test_full_cycle_request_notice_claim_reply_answer_close(db_url: str, tmp_path: Path, keys: KeyRing,
                                                                  private: StaffPrivateKey) -> None:
    async with case_world(case_settings(db_url, tmp_path, private), keys, private) as world:
        amira = world.people.person("2001")
        await onboard(amira)
        reference = await request_contact(amira, DESCRIPTION, when="weekdays after 6 pm")
        assert reference.startswith("C-") and len(reference) == 6
        assert amira.last.sensitive  # the receipt is sent with protect_content
        await world.deliver()

        # The staff room (end-to-end encrypted) gets the content, as the root of the case's thread.
        (root,) = world.room
        text = plain(root.text)
        assert text.startswith(f"New case {reference} · meeting · English · Telegram")
        assert DESCRIPTION in text and "weekdays after 6 pm" in text and "For: all staff" in text
        assert root.thread_root is None and root.sensitive
        # The Telegram staff chat gets a content-free notice.
        (notice,) = world.chat
        assert plain(notice.text).startswith(f"New case {reference} · meeting · English · Telegram")
        assert DESCRIPTION not in notice.text and "weekdays" not in notice.text
        root_id = world.room_event_id(f"New case {reference}")

        # Claimed from the Telegram staff chat; the room's thread is told.
        (claimed,) = await world.staff_in_chat(f"/claim {reference.lower()}")
        assert plain(claimed.text) == f"{reference} is yours now."
        await world.deliver()
        assert plain(world.room[-1].text) == f"{reference} was claimed by telegram:{TELEGRAM_STAFF}."
        assert world.room[-1].thread_root == root_id

        # Alice answers by replying in the thread; only the person gets it, with no staff identity.
        (sent,) = await world.staff_in_room(ANSWER, thread_root=root_id)
        assert plain(sent.text) == f"Sent to the person in {reference} ✓" and sent.thread_root == root_id
        await world.deliver()
        message = amira.last
        assert plain(message.text) == f"Message from staff about {reference}:\n{ANSWER}"
        assert message.sensitive and ALICE not in message.text and TELEGRAM_STAFF not in message.text
        assert plain(world.chat[-1].text) == f"{reference}: a staff member answered."

        # The person answers outside any dialog: it goes to the case, into the thread.
        (tick,) = await amira.send(FOLLOW_UP)
        assert tick.text == "Sent to staff ✓"
        await world.deliver()
        assert plain(world.room[-1].text) == f"{reference} · from the person:\n{FOLLOW_UP}"
        assert world.room[-1].thread_root == root_id
        assert FOLLOW_UP not in world.chat[-1].text and plain(world.chat[-1].text) == \
            f"{reference}: a new message from the person."

        status = plain((await amira.send("/case"))[0].text)
        assert f"Your request {reference} (meeting)" in status and "A staff member has taken it up." in status

        # Closed with a command typed in the thread (no reference needed there); the person is told.
        (closed,) = await world.staff_in_room("/close", thread_root=root_id)
        assert plain(closed.text) == f"{reference} is closed; the person was told." and closed.thread_root == root_id
        await world.deliver()
        assert plain(amira.last.text).startswith(f"Staff have closed your request {reference}.")
        assert plain(world.chat[-1].text) == f"{reference} was closed by {ALICE}; the person was told."
        assert "You have no open request" in (await amira.send("/case"))[0].text

        async with world.services.database.sessions() as session:
            actions = [(e.action, e.subject) for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
            assert actions == [("case.claim", reference), ("case.reply", reference), ("case.close", reference)]
            entries = list(await session.scalars(select(AuditEntry)))
            assert all(DESCRIPTION not in e.details and ANSWER not in e.details for e in entries)
            assert (await AuditLog().verify(session)).ok
            # Once delivered, no queued copy of any content is left in the outbox.
            assert all(row.payload_enc is None for row in await session.scalars(select(OutboxMessage)))


def test_database_holds_no_case_text_and_only_the_staff_key_recovers_it(tmp_path: Path, keys: KeyRing,
                                                                         private: StaffPrivateKey) -> None:
    """A byte scan after a full cycle; the staff private key opens every message; after /delete_me
    nothing is left, and a backup made before it can no longer be opened once the old keys are retired."""
    import asyncio
    import shutil

    from bot.cases.service import CLI_ACTOR
    from bot.conversation.feature import FeatureSet
    from bot.services.key_rotation import reseal_database

    db_file = tmp_path / "civicbot.db"
    settings = case_settings(f"sqlite+aiosqlite:///{db_file}", tmp_path, private)

    async def cycle() -> str:
        async with case_world(settings, keys, private) as world:
            person = world.people.person("2002")
            await onboard(person)
            reference = await request_contact(person, DESCRIPTION, when="only on Fridays")
            await world.deliver()
            root_id = world.room_event_id(f"New case {reference}")
            await world.staff_in_room(ANSWER, thread_root=root_id)
            await person.send(FOLLOW_UP)
            await world.deliver()
            await world.staff_in_chat(f"/close {reference}")
            await world.deliver()
            return reference

    reference = asyncio.run(cycle())
    files = [f for f in tmp_path.iterdir() if f.name.startswith("civicbot.db")]
    raw = b"".join(f.read_bytes() for f in files)
    for needle in (DESCRIPTION, ANSWER, FOLLOW_UP, "only on Fridays", "Raqqa", "Thursday"):
        assert needle.encode() not in raw, needle
        assert needle.encode("utf-16-le") not in raw, needle

    async def read(url: str, ring: KeyRing, private_key: StaffPrivateKey) -> list[str | None]:
        async with case_world(settings.model_copy(update={"database": settings.database.model_copy(
                update={"url": url})}), ring, private) as world:
            async with world.services.database.sessions.begin() as session:
                transcript = await world.cases.transcript(session, CLI_ACTOR, reference, private_key)
                assert transcript is not None
                return [entry.body for entry in transcript.entries]

    live = settings.database.url
    bodies = asyncio.run(read(live, keys, private))
    assert len(bodies) == 3 and DESCRIPTION in (bodies[0] or "") and "only on Fridays" in (bodies[0] or "")
    assert bodies[1:] == [ANSWER, FOLLOW_UP]
    # The server's own keys are not enough: another staff key opens nothing.
    assert asyncio.run(read(live, keys, StaffPrivateKey.generate())) == [None, None, None]

    backup = tmp_path / "backup"
    backup.mkdir()
    for f in files:
        shutil.copy(f, backup / f.name)

    async def erase() -> None:
        async with case_world(settings, keys, private) as world:
            person = world.people.person("2002")
            await person.send("/delete_me")
            await person.press("Yes, erase everything")

    asyncio.run(erase())
    assert asyncio.run(read(live, keys, private)) == []  # nothing left in the database

    # A backup made before the erasure still holds the person's wrapped key, until the master key
    # that wrapped it is retired (`civicbot keys rotate --retire`): from then on it opens nothing.
    backup_url = f"sqlite+aiosqlite:///{backup / 'civicbot.db'}"
    assert asyncio.run(read(backup_url, keys, private))[1:] == [ANSWER, FOLLOW_UP]
    rotated = keys.rotated()

    async def rotate() -> None:
        async with case_world(settings, rotated, private) as world:
            async with world.services.database.sessions.begin() as session:
                await reseal_database(session, rotated, world.services.get(FeatureSet).sealed())

    asyncio.run(rotate())
    # The retired key file does not even open the old backup: its key check names the missing key.
    with pytest.raises(StartupError, match="lacks master key"):
        asyncio.run(read(backup_url, rotated.retired(), private))


async def test_delete_me_withdraws_open_cases_and_staff_are_told(db_url: str, tmp_path: Path, keys: KeyRing,
                                                                 private: StaffPrivateKey) -> None:
    async with case_world(case_settings(db_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2003")
        await onboard(person)
        reference = await request_contact(person, DESCRIPTION)
        await world.deliver()
        root_id = world.room_event_id(f"New case {reference}")
        await person.send("/delete_me")
        await person.press("Yes, erase everything")
        await world.deliver()
        assert plain(world.room[-1].text) == f"{reference} was withdrawn: the person erased their data."
        assert world.room[-1].thread_root == root_id
        assert plain(world.chat[-1].text) == f"{reference} was withdrawn: the person erased their data."

        # A staff reply now gets one clear answer, and nothing is queued for anyone.
        (answer,) = await world.staff_in_room(ANSWER, thread_root=root_id)
        assert "the person erased their data, so nothing can be sent to them" in plain(answer.text)
        (by_command,) = await world.staff_in_chat(f"/reply {reference} {ANSWER}")
        assert "erased their data" in plain(by_command.text)
        async with world.services.database.sessions() as session:
            case = await session.scalar(select(Case))
            assert case is not None and case.status == "withdrawn" and case.participant_id is None
            assert await session.scalar(select(CaseMessage)) is None
            pending = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")))
            assert pending == []


async def test_telegram_honesty_step_and_the_matrix_way_out(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                            private: StaffPrivateKey) -> None:
    from bot.config import BrandingSettings

    settings = case_settings(sqlite_url, tmp_path, private)
    settings = settings.model_copy(update={"branding": BrandingSettings(matrix_address="@desk:example.org")})
    async with case_world(settings, keys, private) as world:
        person = world.people.person("2004")
        await onboard(person)
        (warning,) = await person.send("/contact")
        text = plain(warning.text)
        assert text.startswith("Before you go on: Telegram can read this chat")
        assert "Please give no details here unless you decide to continue." in text
        assert "@desk:example.org" in text
        assert [c.label for c in warning.choices] == ["Continue here", "I will use Matrix", "Stop"]
        replies = await person.press("I will use Matrix")
        assert plain(replies[0].text).startswith("Good. On Matrix, write to @desk:example.org")
        async with world.services.database.sessions() as session:
            assert await session.scalar(select(Case)) is None

        # On Matrix (end-to-end encrypted) there is no such step.
        on_matrix = world.matrix_people.person("@someone:example.org")
        await on_matrix.send("/start")
        await on_matrix.send("English")
        await on_matrix.send("I agree")
        await on_matrix.send("Skip")
        (first,) = await on_matrix.send("/contact")
        assert first.text == "What would you like to talk to staff about?"

        # Continuing on Telegram reminds the person again where they may type details.
        await person.send("/contact")
        (topic,) = await person.press("Continue here")
        (description,) = await person.press("A safety concern")
        assert "Remember that Telegram can read this chat." in description.text


async def test_sla_reminders_once_each_with_a_moved_clock(db_url: str, tmp_path: Path, keys: KeyRing,
                                                          private: StaffPrivateKey) -> None:
    """The feature's job as the scheduler runs it (on the leader), on a moved clock; reminders go
    through the outbox to the staff room (in its own timeline, not a thread) and the staff chat."""
    start = utcnow()
    now = [start]
    settings = case_settings(db_url, tmp_path, private, claim_within_hours=24, answer_within_hours=48)
    async with case_world(settings, keys, private, clock=lambda: now[0]) as world:
        person = world.people.person("2005")
        await onboard(person)
        reference = await request_contact(person)
        await world.deliver()
        scheduled = build_scheduler(world.services, clock=lambda: now[0]).get_job("case-upkeep")
        assert scheduled is not None, "declared as a job of the feature"

        async def reminders_after_a_run() -> list[str]:
            room_before, chat_before = len(world.room), len(world.chat)
            await scheduled.func()
            await world.deliver()
            room, chat = [plain(m.text) for m in world.room[room_before:]], [plain(m.text) for m in world.chat[chat_before:]]
            assert room == chat, "the same reminder in both staff places"
            assert all(m.thread_root is None for m in world.room[room_before:])
            return room

        now[0] = start + dt.timedelta(hours=23)
        assert await reminders_after_a_run() == []
        now[0] = start + dt.timedelta(hours=25)
        assert await reminders_after_a_run() == [f"Reminder: {reference} (meeting) has not been claimed for 25 hours."]
        assert await reminders_after_a_run() == [], "once only"

        listing = plain((await world.staff_in_chat("/cases"))[0].text)
        assert "Not claimed: 1 (over 24 h: 1)" in listing and "overdue" in listing

        now[0] = start + dt.timedelta(hours=49)  # waiting for an answer too long
        assert await reminders_after_a_run() == [
            f"Reminder: the person in {reference} has been waiting for an answer for 49 hours."]
        assert await reminders_after_a_run() == []

        # An answer ends the wait; the person writes again: a new spell, a new reminder when it runs long.
        await world.staff_in_chat(f"/reply {reference} {ANSWER}")
        await world.deliver()
        await person.send(FOLLOW_UP)
        await world.deliver()
        now[0] = start + dt.timedelta(hours=49 + 47)
        assert await reminders_after_a_run() == []
        now[0] = start + dt.timedelta(hours=49 + 49)
        assert len(await reminders_after_a_run()) == 1
        listing = plain((await world.staff_in_chat("/cases"))[0].text)
        assert "claimed by you" in listing and "waiting 49 hours" in listing


async def test_non_staff_cannot_see_claim_or_answer(db_url: str, tmp_path: Path, keys: KeyRing,
                                                    private: StaffPrivateKey) -> None:
    async with case_world(case_settings(db_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2006")
        other = world.people.person("2007")
        await onboard(person)
        await onboard(other)
        reference = await request_contact(person, DESCRIPTION)
        await world.deliver()
        root_id = world.room_event_id(f"New case {reference}")
        for command in ("/cases", f"/claim {reference}", f"/reply {reference} hello", f"/close {reference}"):
            (answer,) = await other.send(command)
            assert answer.text == "I do not know that command. Send /help to see what you can do.", command
        # Someone in the staff room who is not configured staff cannot answer through the thread.
        (refused,) = await world.staff_in_room("I am answering", thread_root=root_id, user="@intruder:example.org")
        assert refused.text == "Only staff members can answer cases; nothing was sent."
        await world.deliver()
        assert not any("I am answering" in m.text for m in person.inbox)
        assert all(reference not in m.text for m in other.inbox)
        async with world.services.database.sessions() as session:
            case = await session.scalar(select(Case))
            assert case is not None and case.status == "open" and case.claimed_by is None
            assert await session.scalar(select(AuditEntry)) is None


async def test_replies_reach_the_right_person_only(db_url: str, tmp_path: Path, keys: KeyRing,
                                                   private: StaffPrivateKey) -> None:
    async with case_world(case_settings(db_url, tmp_path, private), keys, private) as world:
        first, second = world.people.person("2008"), world.people.person("2009")
        await onboard(first)
        await onboard(second)
        ref_first = await request_contact(first, "first person's matter")
        ref_second = await request_contact(second, "second person's matter", topic="A safety concern")
        assert ref_first != ref_second
        await world.deliver()
        before_first = len(first.inbox)
        await world.staff_in_room("for the second person only", thread_root=world.room_event_id(f"New case {ref_second}"))
        await world.staff_in_chat(f"/reply {ref_first} for the first person only")
        await world.deliver()
        assert [plain(m.text) for m in first.inbox[before_first:]] == \
            [f"Message from staff about {ref_first}:\nfor the first person only"]
        assert plain(second.last.text) == f"Message from staff about {ref_second}:\nfor the second person only"
        assert not any("first person only" in m.text for m in second.inbox)
        # Each person's follow-up lands in their own case's thread.
        await first.send("from the first")
        await world.deliver()
        assert world.room[-1].thread_root == world.room_event_id(f"New case {ref_first}")


async def test_bad_input_gets_one_clear_answer_each(db_url: str, tmp_path: Path, keys: KeyRing,
                                                    private: StaffPrivateKey) -> None:
    from bot.config import LimitsSettings

    settings = case_settings(db_url, tmp_path, private, max_messages_per_hour=3)
    settings = settings.model_copy(update={"limits": LimitsSettings(flood_messages=10_000, max_message_chars=6000)})
    async with case_world(settings, keys, private) as world:
        person = world.people.person("2010")
        await onboard(person)
        reference = await request_contact(person)
        await world.deliver()

        async def staff(text: str) -> str:
            return plain((await world.staff_in_chat(text))[0].text)

        assert await staff("/claim C-2222") == "There is no case C-2222."
        assert await staff("/claim nonsense") == "There is no case nonsense."
        assert await staff("/claim") == "Usage: /claim C-XXXX"
        assert await staff("/reply") == "Usage: /reply C-XXXX your answer"
        assert await staff(f"/reply {reference}") == "Usage: /reply C-XXXX your answer"
        assert await staff("/close") == "Usage: /close C-XXXX"
        too_long = "x" * 4090
        assert (await staff(f"/reply {reference} {too_long}")).startswith(
            "That answer is too long for the person's messaging service: 4090 characters, at most")
        assert await staff(f"/claim {reference}") == f"{reference} is yours now."
        assert await staff(f"/claim {reference}") == f"{reference} is already yours."
        (taken,) = await world.staff_in_room(f"/claim {reference}")
        assert plain(taken.text) == f"{reference} was claimed by telegram:{TELEGRAM_STAFF}; it is yours now."

        # A flood of case messages: refused with an explanation once over the hourly limit, never lost silently.
        answers = [plain((await person.send(f"message {n}"))[0].text) for n in range(5)]
        assert answers[:3] == ["Sent to staff ✓"] * 3
        assert all(a.startswith("You have sent many messages to staff in the last hour.") for a in answers[3:])

        # Media is refused, with the reason.
        (media,) = await person.send_media()
        assert media.text.startswith("I can only read text messages.")

        assert await staff(f"/close {reference}") == f"{reference} is closed; the person was told."
        assert await staff(f"/close {reference}") == \
            f"{reference} is closed; the person can send a new request if they need to."
        assert await staff(f"/reply {reference} late") == \
            f"{reference} is closed; the person can send a new request if they need to."
        # After the close, the person's text is no longer sent anywhere: they get the menu as before.
        await world.deliver()  # (the notice of the close first: a live reply would queue behind it)
        (menu_answer, *_rest) = await person.send("hello?")
        assert "Sent to staff" not in menu_answer.text
        assert plain(menu_answer.text).startswith(NOT_PASSED_ON_CONTACT), "nobody reads it: /contact is the way"
        async with world.services.database.sessions() as session:
            people_messages = await session.scalars(select(CaseMessage).where(CaseMessage.author == "person"))
            assert len(list(people_messages)) == 4  # the request and three messages


async def test_without_a_staff_public_key_contact_is_not_offered(sqlite_url: str, tmp_path: Path,
                                                                 keys: KeyRing) -> None:
    async with case_world(case_settings(sqlite_url, tmp_path, None), keys, None) as world:
        person = world.people.person("2011")
        await onboard(person)
        assert "Talk to staff in confidence" not in [c.label for c in person.last.choices]
        (answer,) = await person.send("/contact")
        assert answer.text == "Contact requests are not available yet."
        assert "/contact" not in (await person.send("/help"))[0].text
        # Free text reaches nobody, and nothing points to a way that does not exist.
        await person.press("No, thank you")  # the bulletins question; then the main menu
        (nobody, *_menu) = await person.send("is anyone there?")
        assert nobody.text.startswith("Your message was not passed on to anyone") and "/contact" not in nobody.text
        async with world.services.database.sessions() as session:
            assert await session.scalar(select(Case)) is None


async def test_free_text_without_a_case_points_to_contact(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                          private: StaffPrivateKey) -> None:
    """At the menu, typed text is passed on to nobody: the answer says so and points to /contact;
    once a case is open, the same text goes to it."""
    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2019")
        await onboard(person)
        await person.press("No, thank you")  # the bulletins question; then the main menu
        replies = await person.send("is anyone there?")
        assert plain(replies[0].text).startswith(NOT_PASSED_ON_CONTACT), replies[0].text
        reference = await request_contact(person)
        (tick,) = await person.send("is anyone there?")
        assert tick.text == "Sent to staff ✓"
        await world.deliver()
        assert plain(world.room[-1].text) == f"{reference} · from the person:\nis anyone there?"


async def test_menu_entry_withdraw_and_one_open_request_at_a_time(sqlite_url: str, tmp_path: Path,
                                                                  keys: KeyRing, private: StaffPrivateKey) -> None:
    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2012")
        await onboard(person)
        await person.send("/menu")
        (warning,) = await person.press("Talk to staff in confidence")
        assert warning.text.startswith("Before you go on")
        await person.send("/cancel")
        reference = await request_contact(person)
        (already,) = await person.send("/contact")
        assert plain(already.text).startswith(f"You already have an open request, {reference}.")
        # In the menu, a choice still works; other text goes to the case.
        await person.send("/menu")
        help_text = (await person.press("Help"))[0]
        assert "/contact" in help_text.text
        (tick,) = await person.send("a question for staff")
        assert tick.text == "Sent to staff ✓"
        (confirm,) = await person.send("/withdraw")
        assert plain(confirm.text).startswith(f"Withdraw your request {reference}?")
        (kept,) = await person.press("No, keep it")
        assert plain(kept.text) == f"Your request {reference} stays open."
        await person.send("/withdraw")
        (done,) = await person.press("Yes, withdraw it")
        assert plain(done.text).startswith(f"Your request {reference} is withdrawn.")
        await world.deliver()
        assert plain(world.room[-1].text) == f"{reference} was withdrawn by the person."
        assert plain((await world.staff_in_chat(f"/reply {reference} hi"))[0].text) == \
            f"{reference} was withdrawn by the person; nothing can be sent to them about it."
        assert (await person.send("/withdraw"))[0].text.startswith("You have no open request.")


async def test_routes_tell_the_routed_members_and_name_them_in_the_room(sqlite_url: str, tmp_path: Path,
                                                                        keys: KeyRing,
                                                                        private: StaffPrivateKey) -> None:
    routes = [ContactRoute(topics=["safety"], languages=["en"], members=[f"telegram:{TELEGRAM_STAFF}", f"matrix:{ALICE}"])]
    async with case_world(case_settings(sqlite_url, tmp_path, private, routes=routes), keys, private) as world:
        person = world.people.person("2013")
        await onboard(person)
        safety = await request_contact(person, DESCRIPTION, topic="A safety concern")
        await world.deliver()
        room_root = plain(world.room[-1].text)
        assert f"For: telegram:{TELEGRAM_STAFF}, {ALICE}" in room_root
        (private_notice,) = world.telegram.sent[TELEGRAM_STAFF]
        assert plain(private_notice.text).startswith(f"New case {safety} · safety · English · Telegram")
        assert DESCRIPTION not in private_notice.text
        await world.staff_in_chat(f"/close {safety}")
        await world.deliver()
        meeting = await request_contact(person, topic="Ask for a meeting")
        await world.deliver()
        assert "For: all staff" in plain(world.room[-1].text) and meeting in plain(world.room[-1].text)
        assert len(world.telegram.sent[TELEGRAM_STAFF]) == 1  # unmatched: no private notice


async def test_content_on_telegram_when_configured(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                   private: StaffPrivateKey) -> None:
    settings = case_settings(sqlite_url, tmp_path, private, content_on_telegram=True)
    async with case_world(settings, keys, private) as world:
        person = world.people.person("2014")
        await onboard(person)
        await request_contact(person, DESCRIPTION)
        await person.send(FOLLOW_UP)
        await world.deliver()
        assert DESCRIPTION in world.chat[0].text and FOLLOW_UP in world.chat[1].text


async def test_a_thread_waits_for_its_first_message(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                    private: StaffPrivateKey) -> None:
    """The root fails once: the person's next message waits, then goes into the thread, in order."""
    from bot.core.transport import TransientDeliveryError

    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2015")
        await onboard(person)
        reference = await request_contact(person)
        await person.send(FOLLOW_UP)
        world.matrix.failures.append(TransientDeliveryError("homeserver_down"))
        await world.bot.senders["matrix"].drain_once()
        assert world.room == []  # the root failed; the follow-up did not start a thread of its own
        async with world.services.database.sessions.begin() as session:
            await session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
        await world.deliver()
        root, follow_up = world.room
        assert root.thread_root is None and plain(root.text).startswith(f"New case {reference}")
        assert follow_up.thread_root == world.room_event_id(f"New case {reference}")


async def test_retention_purges_ended_cases_and_withdraws_cases_of_expired_people(
        db_url: str, tmp_path: Path, keys: KeyRing, private: StaffPrivateKey) -> None:
    from bot.app import retention_job
    from bot.conversation.feature import FeatureSet
    from bot.services.retention import RetentionJob

    async with case_world(case_settings(db_url, tmp_path, private), keys, private) as world:
        closed_person, idle_person = world.people.person("2016"), world.people.person("2017")
        await onboard(closed_person)
        await onboard(idle_person)
        closed = await request_contact(closed_person)
        idle = await request_contact(idle_person)
        await world.staff_in_chat(f"/close {closed}")
        now = utcnow()
        async with world.services.database.sessions.begin() as session:
            await session.execute(update(Participant).where(Participant.id == 2)
                                  .values(last_seen_on=(now - dt.timedelta(days=800)).date()))
        # Someone erased for inactivity goes through the erasure hooks too: the case is withdrawn, staff told.
        await retention_job(world.services)()
        await world.deliver()
        assert plain(world.room[-1].text) == f"{idle} was withdrawn: the person erased their data."
        rules = world.services.get(FeatureSet).retention()
        policy = world.services.settings.retention
        report = await RetentionJob(world.services.database, policy, rules, clock=lambda: now + dt.timedelta(days=89))()
        assert report is not None and report["cases"] == 0
        report = await RetentionJob(world.services.database, policy, rules, clock=lambda: now + dt.timedelta(days=91))()
        assert report is not None and report["cases"] == 2 and report["case_threads"] == 2
        async with world.services.database.sessions() as session:
            assert await session.scalar(select(Case)) is None and await session.scalar(select(CaseMessage)) is None
            assert await session.scalar(select(OutboxThread)) is None, "the staff-room threads go with their cases"
        assert (await CaseUpkeepJob(world.services.database, world.cases)()) is not None


async def test_staff_room_chatter_is_not_answered(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                  private: StaffPrivateKey) -> None:
    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        assert await world.staff_in_room("good morning everyone") == []
        assert await world.staff_in_room("a thread of our own", thread_root="$unrelated") == []
        # A staff member's own address is never replaced by the shared room.
        await world.bot.router.handle(Inbound(Platform("matrix"), ALICE, Address(Platform("matrix"), "!dm:example.org"),
                                              text="/start"))
        assert world.matrix.sent.get("!dm:example.org")


async def test_logs_carry_no_case_content(sqlite_url: str, tmp_path: Path, keys: KeyRing, private: StaffPrivateKey,
                                          caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2018")
        await onboard(person)
        reference = await request_contact(person, DESCRIPTION)
        await person.send(FOLLOW_UP)
        await world.deliver()
        await world.staff_in_chat(f"/reply {reference} {ANSWER}")
        await world.deliver()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records
    for needle in (DESCRIPTION, FOLLOW_UP, ANSWER, "chat-2018", ALICE):
        assert needle not in text, needle


async def test_a_key_removed_from_the_configuration_stops_new_content_but_not_the_bot(
        sqlite_url: str, tmp_path: Path, keys: KeyRing, private: StaffPrivateKey) -> None:
    async with case_world(case_settings(sqlite_url, tmp_path, private), keys, private) as world:
        person = world.people.person("2019")
        await onboard(person)
        reference = await request_contact(person)
    async with case_world(case_settings(sqlite_url, tmp_path, None), keys, None) as world:
        (answer,) = await world.staff_in_chat(f"/reply {reference} hello")
        assert answer.text == "Contact requests are not available yet."
        assert reference in plain((await world.staff_in_chat("/cases"))[0].text)
        person = world.people.person("2019")
        replies = await person.send("is anyone there?")
        assert all("Sent to staff" not in r.text for r in replies)
        assert plain((await world.staff_in_chat(f"/close {reference}"))[0].text) == \
            f"{reference} is closed; the person was told."
