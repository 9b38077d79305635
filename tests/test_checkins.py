"""Check-ins through the real core on SQLite and PostgreSQL, with the feature's clock moved by the test.

The transports are in-process recorders (genuine Transport implementations); the tiers in
``tests/telegram`` and ``tests/matrix`` run the same journeys over the real platforms.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.app import Bot, build_scheduler
from bot.app import running as run_bot
from bot.checkins.export import cycle_table
from bot.checkins.job import CheckinJob
from bot.checkins.service import Checkins
from bot.config import CheckinSettings, LimitsSettings, RetentionSettings, Settings, StaffSettings
from bot.core.model import Outbound, Platform
from bot.core.security import KeyRing
from bot.services.key_rotation import reseal_database
from bot.services.retention import purge
from bot.storage.models import (
    AuditEntry,
    CheckinAnswer,
    CheckinCycle,
    CheckinDelivery,
    CheckinFlag,
    OrganisationContact,
    OutboxMessage,
    Participant,
    checkin_answer_context,
)
from bot.surveys.export import to_xlsx
from tests.support import (
    CHECKINS_DIR,
    Chat,
    MovedClock,
    Person,
    RecordingTransport,
    make_settings,
    with_clock,
)

BERLIN = ZoneInfo("Europe/Berlin")
STAFF_ROOM = "!staff:example.org"
STAFF_CHAT = -100555
CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
START = dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC)  # a Friday, 08:00 in Berlin
UPDATE = "Three families displaced from Sinjar need documents"


def fsi(value: object) -> str:
    return f"\u2068{value}\u2069"


def settings_for(db_url: str, tmp_path: Path, **checkins: object) -> Settings:
    return make_settings(
        db_url, tmp_path, staff=["matrix:boss"], limits=LimitsSettings(flood_messages=10_000),
        checkins=CheckinSettings(directory=CHECKINS_DIR, **checkins),  # type: ignore[arg-type]
    ).model_copy(update={"staff": StaffSettings(members=["matrix:boss"], matrix_room=STAFF_ROOM,
                                                telegram_chat=STAFF_CHAT)})


class Instance:
    """One running bot: a Matrix and a Telegram recorder, the feature's job and the outbox senders."""

    def __init__(self, bot: Bot, matrix: RecordingTransport, telegram: RecordingTransport) -> None:
        self.bot, self.matrix, self.telegram = bot, matrix, telegram
        self.chat = Chat(bot, matrix)
        self.checkins = bot.services.get(Checkins)
        self.job = CheckinJob(bot.services.database, self.checkins)

    async def tick(self) -> tuple[int, int]:
        """What the scheduler does (it only wakes the feature), then what the senders do."""
        report = await self.job()
        await self.drain()
        return report.opened, report.reminded

    async def drain(self) -> None:
        for sender in self.bot.senders.values():
            while (await sender.drain_once()).handled:
                pass

    def staff_room(self) -> list[Outbound]:
        return self.matrix.sent.get(STAFF_ROOM, [])

    def staff_chat(self) -> list[Outbound]:
        return self.telegram.sent.get(str(STAFF_CHAT), [])

    async def count(self, model: type, *where: object) -> int:
        async with self.bot.services.database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@asynccontextmanager
async def running(settings: Settings, keys: KeyRing, clock: MovedClock) -> AsyncIterator[Instance]:
    """The application's wiring with a Matrix and a Telegram recorder; senders and scheduler not
    running (the test drains and wakes)."""
    matrix = RecordingTransport(platform=Platform("matrix"))
    telegram = RecordingTransport(platform=Platform("telegram"))
    async with run_bot(settings, keys=keys, transports=lambda services: [matrix, telegram],
                       features=with_clock(clock), upgrade=True, senders=False) as bot:
        yield Instance(bot, matrix, telegram)


async def onboard(person: Person, code: str, language: str = "4") -> None:
    for step in ("/start", language, "1"):
        await person.send(step)
    replies = await person.send(code)
    assert "You have joined" in replies[0].text or "fam" in replies[0].text, replies[0].text
    await person.send("1")  # yes to the bulletins, the last question of onboarding


async def association(instance: Instance, contacts: int = 2, languages: tuple[str, ...] = ("4", "1")) -> list[Person]:
    """Staff register the association and make one contact-person code per contact."""
    staff = instance.chat.person("boss")
    (added,) = await staff.send("/org add fam association Families of Sinjar")
    assert "added" in added.text
    people = []
    for index in range(contacts):
        (invite,) = await staff.send("/checkin invite fam")
        assert invite.sensitive and "Contact-person code" in invite.text
        person = instance.chat.person(f"contact{index}")
        await onboard(person, CODE.search(invite.text).group(0), languages[index % len(languages)])  # type: ignore[union-attr]
        people.append(person)
    return people


def offers(person: Person) -> list[Outbound]:
    return [m for m in person.inbox if [c.key for c in m.choices] == ["answer", "nothing", "later"]]


async def test_schedule_fires_at_local_time_across_daylight_saving_reminds_once_and_nothing_new_is_one_tap(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path), keys, clock) as bot:
        amal, _noor = await association(bot)
        staff = bot.chat.person("boss")
        (scheduled,) = await staff.send("/checkin schedule fam --every 7d --at 10:00 --tz Europe/Berlin")
        rhythm = f"every week at {fsi('10:00')}, {fsi('Europe/Berlin')}"
        assert scheduled.text == (f"Check-ins with {fsi('fam')}: {fsi(rhythm)}, template {fsi('default')}. "
                                  f"The next one is due {fsi('2026-03-20 10:00 (UTC+01:00)')}.")

        clock.set(dt.datetime(2026, 3, 20, 8, 59, tzinfo=dt.UTC))
        assert await bot.tick() == (0, 0)
        assert not offers(amal)
        clock.set(dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC))  # 10:00 in Berlin (CET)
        assert await bot.tick() == (1, 0)
        assert await bot.tick() == (0, 0), "a doubled trigger changes nothing"
        (offer,) = offers(amal)
        assert offer.text.startswith("Regular check-in with your association") and offer.sensitive
        assert [c.label for c in offer.choices] == ["Answer now", "Nothing new", "Later"]
        arabic = offers(_noor)[0]
        assert arabic.text.lstrip("\u200f").startswith("المتابعة الدورية")
        assert "لا جديد" in [c.label.lstrip("\u200f") for c in arabic.choices]

        thanks, menu = await amal.press("Nothing new")  # one tap
        assert thanks.text == "Thank you. We have noted that there is nothing new." and "Main menu" in menu.text
        async with bot.bot.services.database.sessions() as session:
            first = await session.scalar(select(CheckinCycle).where(CheckinCycle.seq == 1))
            assert first is not None and first.status == "answered" and first.nothing_new
            assert await session.scalar(select(func.count()).select_from(CheckinAnswer)) == 0

        clock.set(dt.datetime(2026, 3, 27, 9, 0, tzinfo=dt.UTC))
        assert await bot.tick() == (1, 0)
        clock.advance(hours=47, minutes=59)
        assert await bot.tick() == (0, 0)
        clock.advance(minutes=1)
        assert await bot.tick() == (0, 2), "one reminder to each contact person, after 48 hours"
        reminder = offers(amal)[-1]
        assert reminder.text.startswith("Reminder: your association has not answered this check-in yet.")
        clock.advance(hours=30)
        assert await bot.tick() == (0, 0), "only one reminder"

        clock.set(dt.datetime(2026, 4, 3, 7, 59, tzinfo=dt.UTC))  # 09:59 in Berlin: summer time began on 29 March
        assert await bot.tick() == (0, 0)
        clock.set(dt.datetime(2026, 4, 3, 8, 0, tzinfo=dt.UTC))
        assert await bot.tick() == (1, 0)
        async with bot.bot.services.database.sessions() as session:
            cycles = list(await session.scalars(select(CheckinCycle).order_by(CheckinCycle.seq)))
        assert [c.status for c in cycles] == ["answered", "missed", "open"]
        assert [c.due_at.astimezone(BERLIN).strftime("%d %H:%M %Z") for c in cycles] == [
            "20 10:00 CET", "27 10:00 CET", "03 10:00 CEST"]

        (overview,) = await staff.send("/checkins")
        assert "fam — every week at" in overview.text and "check-in \u20683\u2069 open since" in overview.text
        assert "last answer: \u20682026-03-20\u2069 (nothing new)" in overview.text
        assert "missed in a row: \u20681\u2069" in overview.text


async def test_two_contact_persons_one_answer_and_a_flag_tells_staff_at_once_with_content_only_on_matrix(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path), keys, clock) as bot:
        amal, noor = await association(bot, languages=("4", "4"))
        staff = bot.chat.person("boss")
        await staff.send("/checkin now fam")
        await bot.drain()
        assert len(offers(amal)) == len(offers(noor)) == 1

        (first,) = await amal.press("Answer now")
        assert first.text.startswith("Question \u20681\u2069 of \u20684\u2069\n\nHow is your association doing")
        await noor.press("Answer now")  # both start; the first to finish answers for the association
        await amal.press("Our members or our work are in danger")
        await amal.press("Legal advice or assistance")
        await amal.press("Civil documents")
        (updates,) = await amal.press("Done")
        assert "update you would like to share" in updates.text
        (call,) = await amal.send(UPDATE)
        closing, told, menu = await amal.press("Yes, please call us")
        assert closing.text == "Thank you. Your answer has reached our team."
        assert told.text == "Our team has been told at once about what you reported."

        late = await noor.press("Stable: our work continues as usual")
        assert late[0].text == ("Another contact person of your association has already answered this check-in. "
                                "Thank you.") and "Main menu" in late[-1].text
        (again,) = await noor.send("/checkin")
        assert again.text.startswith("Another contact person of your association has already answered")

        await bot.drain()
        (room,) = bot.staff_room()
        assert room.text.startswith(f"Check-in {fsi(1)} of association {fsi('fam (Families of Sinjar)')} raised: "
                                    f"{fsi('safety concern, urgent need, call requested')}.")
        assert UPDATE in room.text and "Our members or our work are in danger" in room.text
        assert "Legal advice or assistance; Civil documents" in room.text and "/checkin ack" in room.text
        (chat,) = bot.staff_chat()
        assert chat.text.startswith(f"Check-in {fsi(1)} of association {fsi('fam')} raised:")
        for content in (UPDATE, "danger", "Legal", "Families of Sinjar"):
            assert content not in chat.text, "the Telegram staff chat gets a notice without the content"
        assert "/checkin show" in chat.text

        async with bot.bot.services.database.sessions() as session:
            cycle = await session.scalar(select(CheckinCycle))
            assert cycle is not None and cycle.status == "answered"
            flags = sorted(f.flag for f in await session.scalars(select(CheckinFlag)))
            assert flags == ["call_request", "need", "need", "safety"]
            noor_id = await session.scalar(select(Participant.id).where(
                Participant.pseudonym == keys.pseudonym("matrix", "contact1")))
            assert cycle.answered_by != noor_id

        (show,) = await staff.send("/checkin show fam")
        assert UPDATE in show.text and "4 open flags" in show.text.replace("\u2068", "").replace("\u2069", "")
        (same,) = await staff.send("/checkins show fam")
        assert same.text == show.text

        async with bot.bot.services.database.sessions() as session:
            header, rows = await cycle_table(session, bot.checkins)
        book = openpyxl.load_workbook(io.BytesIO(to_xlsx(header, rows, "checkins")))
        sheet = [[cell.value for cell in row] for row in book.active.iter_rows()]
        assert sheet[0][:9] == ["association", "checkin", "template", "due_at", "status", "answered_on", "language",
                                "nothing_new", "flags"]
        record = dict(zip(sheet[0], sheet[1], strict=True))
        assert record["updates"] == UPDATE and record["needs"] == "documents;legal" and record["call"] == "yes-call"
        assert record["flags"] == "safety;need;call_request" and record["status"] == "answered"
        (ack,) = await staff.send("/checkin ack fam")
        assert ack.text == f"{fsi(4)} flags of {fsi('fam')} closed."
        (ack,) = await staff.send("/checkin ack fam")
        assert ack.text == f"Association {fsi('fam')} has no open flags."
        assert await bot.count(AuditEntry, AuditEntry.action == "checkin.ack") == 1
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    assert raw == b"" or UPDATE.encode() not in raw, "the free text is sealed at rest"


async def test_missed_cycles_escalate_once_per_silence(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path, escalate_after_missed=2), keys, clock) as bot:
        (amal,) = await association(bot, contacts=1)
        staff = bot.chat.person("boss")
        await staff.send("/checkin schedule fam --cron 0 10 * * fri --tz Europe/Berlin")

        async def week(n: int) -> None:
            """Friday 10:00 in Berlin, ``n`` weeks after the first."""
            day = dt.date(2026, 3, 20) + dt.timedelta(days=7 * n)
            clock.set(dt.datetime.combine(day, dt.time(10), BERLIN).astimezone(dt.UTC))
            assert (await bot.tick())[0] == 1

        await week(0)
        await week(1)  # cycle 1 missed
        assert bot.staff_room() == []
        await week(2)  # cycle 2 missed: two in a row
        (notice,) = bot.staff_room()
        assert notice.text == (f"Association {fsi('fam')} has not answered the last {fsi(2)} check-ins.\n"
                               "It has never answered a check-in.")
        (telegram,) = bot.staff_chat()
        assert telegram.text == notice.text
        await week(3)  # three in a row: the same silence, no second notice
        assert len(bot.staff_room()) == 1
        await amal.press("Nothing new")  # answers cycle 4
        await week(4)
        await week(5)  # cycle 5 missed: one
        await week(6)  # cycle 6 missed: a new silence of two
        assert len(bot.staff_room()) == 2
        assert "Last answer: \u20682026-04-10\u2069." in bot.staff_room()[-1].text
        async with bot.bot.services.database.sessions() as session:
            statuses = [c.status for c in await session.scalars(select(CheckinCycle).order_by(CheckinCycle.seq))]
        assert statuses == ["missed", "missed", "missed", "answered", "missed", "missed", "open"]


async def test_bad_input_gets_one_clear_answer_and_changes_nothing(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path), keys, clock) as bot:
        (amal,) = await association(bot, contacts=1)
        staff = bot.chat.person("boss")
        await staff.send("/org add ngo cso Some NGO")
        before = await bot.count(AuditEntry)
        cases = {
            "/checkin schedule nowhere --every 7d --at 10:00 --tz UTC":
                f"There is no organisation with the code {fsi('nowhere')}.",
            "/checkin schedule ngo --every 7d --at 10:00 --tz UTC":
                f"{fsi('ngo')} is not an association (it is registered as {fsi('cso')}); check-ins are for associations.",
            "/checkin schedule fam --every 7d --at 10:00 --tz Europe/Atlantis":
                f"There is no time zone called {fsi('Europe/Atlantis')}. Use a name like Asia/Damascus or Europe/Berlin.",
            "/checkin schedule fam --cron 0 10 * * --tz UTC":
                f"{fsi('0 10 * *')} is not a valid cron expression. Give five fields: minute, hour, day of the month, "
                "month and day of the week, like “0 10 * * mon”.",
            "/checkin schedule fam --every 7d --at 10:00 --tz UTC --template nope":
                f"There is no check-in template with the id {fsi('nope')}.",
            "/checkin schedule fam --every 7d --at 10:00 --tz UTC --cron 0 10 * * *":
                "Give either --every with --at, or --cron, not both.",
            "/checkin schedule fam every 7d":
                "I could not read the options. Write them like: --every 14d --at 10:00 --tz Asia/Damascus",
            "/checkin pause fam": f"Association {fsi('fam')} has no check-in schedule. Set one with /checkin schedule.",
            "/checkin now ngo": f"{fsi('ngo')} is not an association (it is registered as {fsi('cso')}); check-ins "
                                "are for associations.",
            "/checkin contact fam add 00000000": f"Association {fsi('fam')} has no member with the reference "
                                                 f"{fsi('00000000')}. See /checkin contacts {fsi('fam')}.",
        }
        for command, answer in cases.items():
            (reply,) = await staff.send(command)
            assert reply.text == answer, command
        (usage,) = await staff.send("/checkin frobnicate fam")
        assert usage.text.startswith("Check-ins with associations:")
        assert await bot.count(AuditEntry) == before
        assert await bot.count(OutboxMessage) == 0

        # A participant never sees the staff verbs: /checkin with arguments is their own check-in.
        (none,) = await amal.send("/checkin schedule fam --every 1d --at 10:00 --tz UTC")
        assert none.text == "There is no check-in waiting for your association right now."
        (unknown,) = await amal.send("/checkins")
        assert unknown.text.startswith("Unknown command") or "not know" in unknown.text or "/help" in unknown.text

        # An answer after the cycle closed: said once, nothing recorded.
        await staff.send("/checkin schedule fam --every 7d --at 10:00 --tz Europe/Berlin")
        clock.set(dt.datetime(2026, 3, 20, 9, tzinfo=dt.UTC))
        await bot.tick()
        (old_offer,) = offers(amal)
        await amal.send("/cancel")  # leaves the offer unanswered; its button is still in the chat
        clock.set(dt.datetime(2026, 3, 27, 9, tzinfo=dt.UTC))
        await bot.tick()  # cycle 1 missed, cycle 2 sent
        await amal.send("/cancel")
        replies = await amal.press("Nothing new", prompt_id=str(old_offer.prompt_id))
        assert replies[0].text.startswith("This button is no longer valid")
        async with bot.bot.services.database.sessions() as session:
            statuses = [c.status for c in await session.scalars(select(CheckinCycle).order_by(CheckinCycle.seq))]
        assert statuses == ["missed", "open"]
        (reopened,) = await amal.send("/checkin")  # the open one is offered again
        assert [c.label for c in reopened.choices] == ["Answer now", "Nothing new", "Later"]


async def test_an_answer_started_before_the_next_cycle_is_refused_once_closed(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path), keys, clock) as bot:
        (amal,) = await association(bot, contacts=1)
        staff = bot.chat.person("boss")
        await staff.send("/checkin schedule fam --every 7d --at 10:00 --tz Europe/Berlin")
        clock.set(dt.datetime(2026, 3, 20, 9, tzinfo=dt.UTC))
        await bot.tick()
        await amal.press("Answer now")
        await amal.press("Stable: our work continues as usual")  # progress saved for cycle 1
        clock.set(dt.datetime(2026, 3, 27, 9, tzinfo=dt.UTC))
        await bot.tick()  # cycle 1 missed while she was answering; cycle 2 does not interrupt her
        waiting = amal.inbox[-1]  # sent without buttons: she is in the middle of answering
        assert waiting.text.startswith("Regular check-in") and not waiting.choices and waiting.prompt_id is None
        assert waiting.text.endswith("When you are ready, send /checkin to answer.")
        closed, newer = await amal.press("Skip")
        assert closed.text == ("This check-in is closed: it was not answered before the next one was due. "
                               "Your answer was not recorded.")
        assert [c.label for c in newer.choices] == ["Answer now", "Nothing new", "Later"]
        assert await bot.count(CheckinAnswer) == 0
        await amal.press("Nothing new")
        async with bot.bot.services.database.sessions() as session:
            statuses = [c.status for c in await session.scalars(select(CheckinCycle).order_by(CheckinCycle.seq))]
        assert statuses == ["missed", "answered"]


async def test_a_restart_between_the_trigger_and_the_answer_loses_nothing(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    settings = settings_for(db_url, tmp_path)
    async with running(settings, keys, clock) as bot:
        (amal,) = await association(bot, contacts=1)
        await bot.chat.person("boss").send("/checkin schedule fam --every 14d --at 10:00 --tz Europe/Berlin")
        clock.set(dt.datetime(2026, 3, 20, 9, 30, tzinfo=dt.UTC))
        assert (await bot.job()).opened == 1  # triggered; the messages are still in the outbox
        matrix_sent = bot.matrix.sent
    async with running(settings, keys, clock) as bot:  # a new process on the same database
        bot.matrix.sent = matrix_sent
        assert await bot.tick() == (0, 0), "the restarted bot does not open the cycle again"
        (offer,) = offers(amal)
        amal.chat = bot.chat
        thanks, _menu = await amal.press("Nothing new")
        assert thanks.text.startswith("Thank you. We have noted")
        assert await bot.count(CheckinCycle, CheckinCycle.status == "answered") == 1


async def test_contact_persons_are_listed_and_changed_and_erasure_keeps_the_association_history(
        db_url: str, tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = MovedClock(START)
    async with running(settings_for(db_url, tmp_path), keys, clock) as bot:
        (amal,) = await association(bot, contacts=1)
        staff = bot.chat.person("boss")
        (member_code,) = await staff.send("/invite fam")
        sara = bot.chat.person("sara")
        await onboard(sara, CODE.search(member_code.text).group(0))  # type: ignore[union-attr]
        (listing,) = await staff.send("/checkin contacts fam")
        lines = listing.text.split("\n")
        assert "contact person since" in lines[1] and lines[2].endswith("member\u2069 (matrix, en)") or \
            "member" in lines[2]
        sara_ref = lines[2].split(":")[0].removeprefix("• ")
        assert len(sara_ref) == 8 and "sara" not in listing.text
        (made,) = await staff.send(f"/checkin contact fam add {sara_ref}")
        assert made.text == f"{fsi(sara_ref)} is a contact person of {fsi('fam')}."
        await staff.send("/checkin now fam")
        await bot.drain()
        assert len(offers(sara)) == 1 and len(offers(amal)) == 1

        await amal.press("Answer now")
        await amal.press("We are facing difficulties")
        await amal.press("Skip")
        await amal.send(UPDATE)
        await amal.press("No, not now")
        (confirm,) = await amal.send("/delete_me")
        await amal.press(confirm.choices[0].label)
        async with bot.bot.services.database.sessions() as session:
            cycle = await session.scalar(select(CheckinCycle))
            assert cycle is not None and cycle.status == "answered" and cycle.answered_by is None
            assert await session.scalar(select(func.count()).select_from(CheckinAnswer)) == 3
            assert await session.scalar(select(func.count()).select_from(OrganisationContact)) == 1
            answers = await bot.checkins.answers_of(session, cycle)
        assert answers == {"situation": "difficulties", "updates": UPDATE, "call": "no-call"}
        assert await bot.count(AuditEntry, AuditEntry.action == "checkin.contact.add") == 1
        logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
        for secret in (UPDATE, "contact0", "sara", keys.pseudonym("matrix", "contact0"), sara_ref):
            assert secret not in logged, "logs carry no content and no ids"

        # Key rotation reaches the association's free text (sealed with the master key) ...
        rotated = keys.rotated()
        async with bot.bot.services.database.sessions.begin() as session:
            report = await reseal_database(session, rotated, bot.bot.features.sealed())
        assert report["checkin_answers.text_enc"] == 1
        retired = rotated.retired()
        async with bot.bot.services.database.sessions() as session:
            row = await session.scalar(select(CheckinAnswer).where(CheckinAnswer.text_enc.is_not(None)))
            assert row is not None and retired.open_text(row.text_enc or b"", checkin_answer_context(row)) == UPDATE

        # ... and the history expires after retention.checkin_days.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=731)
        async with bot.bot.services.database.sessions.begin() as session:
            purged = await purge(session, RetentionSettings(), later, bot.bot.features.retention())
        assert purged["checkin_cycles"] == 1
        assert await bot.count(CheckinAnswer) == 0 and await bot.count(CheckinDelivery) == 0


async def test_two_workers_send_each_cycle_once(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    """Two bot instances on one database run the job at the same moments, again and again."""
    clock = MovedClock(START)
    settings = settings_for(db_url, tmp_path)
    async with running(settings, keys, clock) as first, running(settings, keys, clock) as second:
        staff = first.chat.person("boss")
        for code in ("fam", "yaz", "sin"):
            await staff.send(f"/org add {code} association")
            for index in range(2):
                (invite,) = await staff.send(f"/checkin invite {code}")
                await onboard(first.chat.person(f"{code}{index}"), CODE.search(invite.text).group(0))  # type: ignore[union-attr]
            await staff.send(f"/checkin schedule {code} --every 1d --at 10:00 --tz Asia/Damascus")
        for day in range(3):
            clock.set(dt.datetime(2026, 3, 21 + day, 7, 0, tzinfo=dt.UTC))  # 10:00 in Damascus
            reports = await asyncio.gather(*(worker.job() for worker in (first, second, first, second)))
            assert sum(r.opened for r in reports) == 3, reports
        assert await first.count(CheckinCycle) == 9
        assert await first.count(OutboxMessage, OutboxMessage.kind == "checkin") == 18


async def test_the_scheduler_wakes_the_feature(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    """Wired as ``civicbot run`` wires it: the scheduler's job opens the due check-in."""
    clock = MovedClock(START)
    async with running(settings_for(sqlite_url, tmp_path, check_minutes=0.002), keys, clock) as bot:
        await association(bot, contacts=1)
        await bot.chat.person("boss").send("/checkin schedule fam --every 7d --at 10:00 --tz Europe/Berlin")
        clock.set(dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC))
        scheduler = build_scheduler(bot.bot.services)
        assert "checkins" in {job.id for job in scheduler.get_jobs()}
        scheduler.start()
        try:
            async def opened() -> None:
                while not await bot.count(CheckinCycle):
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(opened(), 10)
        finally:
            scheduler.shutdown(wait=False)
        assert await bot.count(OutboxMessage, OutboxMessage.kind == "checkin") == 1


async def test_an_answer_cancels_the_reminders_still_waiting_in_the_outbox(
        sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    clock = MovedClock(START)
    async with running(settings_for(sqlite_url, tmp_path), keys, clock) as bot:
        amal, noor = await association(bot, languages=("4", "4"))
        await bot.chat.person("boss").send("/checkin schedule fam --every 7d --at 10:00 --tz Europe/Berlin")
        clock.set(dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC))
        await bot.tick()
        clock.advance(hours=48)
        assert (await bot.job()).reminded == 2  # queued, not delivered yet (a slow platform, say)
        await amal.send("2")  # "Nothing new", typed, on the reminder she has not received yet
        await bot.drain()
        assert [m.text for m in amal.inbox[-2:]][0] == "Thank you. We have noted that there is nothing new."
        assert len(offers(noor)) == len(offers(amal)) == 1, "the reminders of an answered check-in are not sent"
        assert await bot.count(OutboxMessage, OutboxMessage.kind == "checkin.reminder",
                               OutboxMessage.status == "pending") == 0
