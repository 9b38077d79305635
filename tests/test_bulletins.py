"""Bulletins end to end on a real database through the real router and outbox: audiences,
languages and fallback, subscription and stop words, scheduling across restarts, four eyes,
cancel, progress edited in place, bad input that changes nothing, audit and erasure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, insert, select, update

from bot.bulletins.definition import Bulletin
from bot.bulletins.feature import BulletinJob
from bot.bulletins.loader import load_bulletin, parse_bulletin
from bot.bulletins.reporter import BulletinReporter
from bot.bulletins.service import Bulletins
from bot.config import BulletinSettings, LimitsSettings, OutboxSettings
from bot.core.model import Direction
from bot.core.security import KeyRing
from bot.services.delivery import OutboxSender
from bot.storage.models import (
    AuditEntry,
    Base,
    BulletinRecipient,
    BulletinSend,
    BulletinSubscription,
    OutboxMessage,
    Participant,
    memberships,
)
from tests.support import Chat, Person, make_settings, open_chat

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "bulletins"
LANGUAGE_NUMBER = {"ar": "1", "ckb": "2", "ku": "3", "en": "4"}
STAFF = "console:staff-a"
OTHER_STAFF = "console:staff-b"

TWO_LANGUAGES = """id: short-note
en:
  title: A short note
  body: |
    Consultations **resume** next week.
ar:
  title: ملاحظة قصيرة
  body: |
    تُستأنف المشاورات **الأسبوع المقبل**.
"""


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def settings_for(db_url: str, tmp_path: Path, **bulletins: object):  # type: ignore[no-untyped-def]
    return make_settings(db_url, tmp_path, staff=[STAFF, OTHER_STAFF], bulletins=BulletinSettings(**bulletins),  # type: ignore[arg-type]
                         limits=LimitsSettings(flood_messages=1000))


async def onboard(chat: Chat, user_id: str, language: str, bulletins: str = "1") -> Person:
    person = chat.person(user_id)
    for step in ("/start", LANGUAGE_NUMBER[language], "1", "1", bulletins):
        await person.send(step)
    return person


async def crowd(chat: Chat, per_language: int = 2) -> dict[str, list[Person]]:
    people: dict[str, list[Person]] = {}
    for n, language in enumerate(("en", "ar", "ckb", "ku")):
        people[language] = [await onboard(chat, f"{n}{k:03d}", language) for k in range(per_language)]
    return people


def sender(chat: Chat, clock: Clock) -> OutboxSender:
    services = chat.bot.services
    return OutboxSender(services.database, services.outbox, services.keys, chat.transport,
                        OutboxSettings(base_backoff_seconds=1, batch_size=500), rate_per_second=10_000, clock=clock)


async def count_rows(chat: Chat, model: type) -> int:
    async with chat.bot.services.database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def audit_actions(chat: Chat) -> list[str]:
    async with chat.bot.services.database.sessions() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def store(chat: Chat, bulletin: Bulletin, author: str = "cli") -> None:
    from bot.bulletins.actions import BulletinActions

    services = chat.bot.services
    async with services.database.sessions.begin() as session:
        await BulletinActions(services.get(Bulletins), services.audit).create(session, bulletin, author)


def bare(text: str) -> str:
    """Without the Unicode isolates around inserted values."""
    return text.replace("\u2068", "").replace("\u2069", "")


def received(person: Person, marker: str) -> list[str]:
    return [m.text for m in person.inbox if marker in m.text]


async def test_bulletin_reaches_every_subscriber_in_their_language_with_fallback(db_url: str, tmp_path: Path,
                                                                                 keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        clock = Clock()
        people = await crowd(chat)
        refuser = await onboard(chat, "9999", "en", bulletins="2")  # "No, thank you" at onboarding
        assert "You will not receive bulletins" in refuser.inbox[-3].text
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        staff = chat.person("staff-a")
        dry = await staff.send("/bulletin send short-note all --dry-run")
        assert "8 people would receive it" in bare(dry[0].text)
        assert await count_rows(chat, BulletinSend) == 0  # a dry run changes nothing
        reply = await staff.send("/bulletin send short-note all")
        assert "Sending" in reply[0].text and "short-note" in reply[0].text
        await sender(chat, clock).drain_once()

        for language, persons in people.items():
            for person in persons:
                (copy,) = [m for m in person.inbox if "Consultations" in m.text or "المشاورات" in m.text]
                if language == "en":
                    assert copy.text == "A short note\n\nConsultations resume next week."
                elif language == "ar":
                    assert copy.text.startswith("ملاحظة قصيرة") and copy.direction is Direction.RTL
                else:  # Sorani and Kurmanji readers get English, with one line in their language saying so
                    first_line = copy.text.split("\n\n")[0]
                    assert "English" in first_line and "Consultations" not in first_line
                    assert copy.language == "en" and copy.text.endswith("Consultations resume next week.")
        assert not received(refuser, "Consultations")

        async with chat.bot.services.database.sessions() as session:
            recipients = list(await session.scalars(select(BulletinRecipient)))
            assert len(recipients) == 8 and sum(r.fallback for r in recipients) == 4
        assert await audit_actions(chat) == ["bulletin.create", "bulletin.send"]


async def test_stop_words_and_commands_change_the_subscription(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        en = await onboard(chat, "1", "en")
        ar = await onboard(chat, "2", "ar")
        ckb = await onboard(chat, "3", "ckb")
        ku = await onboard(chat, "4", "ku")
        await en.send("/surveys")  # in the middle of anything, a stop word still works
        for person, word in ((en, "Stop"), (ar, "تَوَقَّف"), (ckb, "ڕاوەستە"), (ku, "raweste!")):
            (reply,) = await person.send(word)
            assert "/subscribe" in reply.text and reply.language == person.inbox[-2].language
        assert "/subscribe" in en.last.text and "not receive any more" in en.last.text
        async with chat.bot.services.database.sessions() as session:
            assert list(await session.scalars(select(BulletinSubscription.subscribed))) == [False] * 4
        (back,) = await en.send("/subscribe")
        assert "You will receive the bulletins" in back.text and "STOP" in back.text
        (again,) = await en.send("/subscribe")
        assert "already receive" in again.text
        (off,) = await ar.send("/unsubscribe")
        assert "/subscribe" in off.text and off.direction is Direction.RTL
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        staff = chat.person("staff-a")
        reply = await staff.send("/bulletin send short-note all")
        assert "1 person" in bare(reply[0].text)


async def test_unsubscribing_withdraws_what_is_still_queued(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await crowd(chat, 1)
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        await chat.person("staff-a").send("/bulletin send short-note all")
        await people["en"][0].send("STOP")
        await sender(chat, Clock()).drain_once()
        assert not received(people["en"][0], "Consultations")
        services = chat.bot.services
        async with services.database.sessions() as session:
            send = await session.scalar(select(BulletinSend))
            assert send is not None
            progress = await services.get(Bulletins).progress(session, send)
        assert progress.states["withdrawn"] == 1 and progress.states["sent"] == 3


async def test_audiences_combine_and_bad_input_changes_nothing(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        people = await crowd(chat)
        services = chat.bot.services
        async with services.database.sessions.begin() as session:
            org = await services.organisations.add_organisation(session, "ngo1", "cso", None)
            group = await services.organisations.add_group(session, "fg1", "focus_group", org)
            ids = {p.user_id: (await services.participants.find(session, keys.pseudonym("console", p.user_id))).id  # type: ignore[union-attr]
                   for persons in people.values() for p in persons}
            members = [ids[people["en"][0].user_id], ids[people["ar"][0].user_id], ids[people["ar"][1].user_id]]
            await session.execute(insert(memberships), [{"participant_id": pid, "group_id": group.id,
                                                          "joined_on": dt.date.today()} for pid in members])
            await session.execute(update(Participant).where(Participant.id == ids[people["ku"][0].user_id])
                                  .values(organisation_id=org.id))
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        staff = chat.person("staff-a")

        async def dry(audience: str) -> str:
            (reply,) = await staff.send(f"/bulletin send short-note {audience} --dry-run")
            return bare(reply.text)

        assert (await dry("group:fg1")).startswith("3 people")
        assert (await dry("group:fg1 lang:ar")).startswith("2 people")  # kinds narrow down
        assert (await dry("lang:ar lang:en")).startswith("4 people")  # one kind adds up
        assert (await dry("org:ngo1,group:fg1")).startswith("0 people")
        assert (await dry("org:ngo1")).startswith("1 person") and "English" in await dry("org:ngo1")
        audit_before, sends_before = await audit_actions(chat), await count_rows(chat, BulletinSend)
        future = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        for command, answer in [
            ("/bulletin send short-note group:nope", "There is no group with the code"),
            ("/bulletin send short-note org:nope", "There is no organisation with the code"),
            ("/bulletin send short-note lang:fr", "is not a language of the bot"),
            ("/bulletin send short-note everybody", "I do not understand the audience"),
            ("/bulletin send short-note org:ngo1 group:fg1", "Nobody who receives bulletins is in the audience"),
            (f"/bulletin send short-note all --at {future}", "That time is in the past"),
            ("/bulletin send short-note all --at tomorrow", "I do not understand the time"),
            ("/bulletin send unknown-id all", "There is no bulletin with the id"),
            ("/bulletin cancel short-note", "nothing to cancel"),
            ("/bulletin frobnicate", "Usage: /bulletin"),
            ("/bulletin send", "Usage: /bulletin"),
        ]:
            replies = await staff.send(command)
            assert len(replies) == 1 and answer in replies[0].text, (command, replies[0].text)
        assert await audit_actions(chat) == audit_before and await count_rows(chat, BulletinSend) == sends_before
        (nobody,) = await people["en"][0].send("/bulletin list")  # a participant: staff commands do not exist
        assert "I do not know that command" in nobody.text
        await staff.send("/bulletin send short-note all")
        (second,) = await staff.send("/bulletin send short-note group:fg1")
        assert "already been sent" in second.text
        assert await count_rows(chat, BulletinSend) == 1


async def test_scheduled_send_survives_restarts_and_goes_out_once(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = settings_for(db_url, tmp_path, late_after_minutes=5)
    clock = Clock()
    at = (clock.now + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    async with open_chat(settings, keys) as chat:
        people = await crowd(chat, 1)
        await store(chat, load_bulletin(EXAMPLES / "digital-safety.yaml"))
        chat.bot.services.get(Bulletins).clock = clock
        (reply,) = await chat.person("staff-a").send(f"/bulletin send digital-safety all --at {at.isoformat()}")
        assert "will be sent at" in reply.text
        assert await BulletinJob(chat.bot.services.database, chat.bot.services.get(Bulletins))() == []
        assert await count_rows(chat, OutboxMessage) == 0
    clock.advance(hours=3)  # the bot was down when it was due
    for _ in range(2):  # two restarts (or two workers): started once
        async with open_chat(settings, keys) as restarted:
            restarted.bot.services.get(Bulletins).clock = clock
            await BulletinJob(restarted.bot.services.database, restarted.bot.services.get(Bulletins))()
            await BulletinJob(restarted.bot.services.database, restarted.bot.services.get(Bulletins))()
    async with open_chat(settings, keys) as chat:
        chat.bot.services.get(Bulletins).clock = clock
        assert await count_rows(chat, OutboxMessage) == 4
        await sender(chat, clock).drain_once()
        await BulletinJob(chat.bot.services.database, chat.bot.services.get(Bulletins))()
        (status,) = await chat.person("staff-a").send("/bulletin status digital-safety")
        text = bare(status.text)
        assert "Sent: 4 of 4" in text and "because the bot was not running" in text
        assert f"scheduled for {at:%Y-%m-%d %H:%M} UTC" in text
        for persons in people.values():
            assert len([m for m in chat.transport.sent.get(persons[0].address.value, [])
                        if m.language in ("en", "ar", "ckb", "ku") and "PIN" in m.text]) == 1


async def test_four_eyes(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path, require_approval=True), keys) as chat:
        await crowd(chat, 1)
        author, other = chat.person("staff-a"), chat.person("staff-b")
        await store(chat, parse_bulletin(TWO_LANGUAGES), author="staff:" + keys.pseudonym("console", "staff-a")[:12])
        (held,) = await author.send("/bulletin send short-note all")
        assert "once another staff member approves it" in held.text
        assert await count_rows(chat, OutboxMessage) == 0
        (own,) = await author.send("/bulletin approve short-note")
        assert "another staff member must approve it" in own.text
        assert await count_rows(chat, OutboxMessage) == 0
        (ok,) = await other.send("/bulletin approve short-note")
        assert "approved" in ok.text and "Its send has started" in ok.text
        assert await count_rows(chat, OutboxMessage) == 4
        (twice,) = await other.send("/bulletin approve short-note")
        assert "already approved" in twice.text
        # A changed text is a new version: approval again before it can go out.
        changed = parse_bulletin(TWO_LANGUAGES.replace("next week", "on Monday").replace("id: short-note", "id: n2"))
        await store(chat, changed, author="cli")
        await store(chat, Bulletin("n2", changed.texts[:1]), author="cli")
        (status,) = await other.send("/bulletin status n2")
        assert "version \u20682\u2069" in status.text and "not approved" in status.text
        assert await audit_actions(chat) == ["bulletin.create", "bulletin.send", "bulletin.approve",
                                             "bulletin.create", "bulletin.create"]


async def test_cancel_before_and_during(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await crowd(chat, 3)
        staff = chat.person("staff-a")
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        await staff.send(f"/bulletin send short-note all --at {later}")
        (cancelled,) = await staff.send("/bulletin cancel short-note")
        assert "nothing was sent" in cancelled.text
        assert await BulletinJob(chat.bot.services.database, chat.bot.services.get(Bulletins))() == []
        await staff.send("/bulletin send short-note all")  # cancelled before it went out: may be sent after all
        clock = Clock()
        drain = sender(chat, clock)
        async with chat.bot.services.database.sessions.begin() as session:  # five are on their way already
            ids = list(await session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id).limit(5)))
            await session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(status="sent"))
        (stopped,) = await staff.send("/bulletin cancel short-note")
        assert "7 messages not yet sent were withdrawn" in bare(stopped.text)
        assert (await drain.drain_once()).handled == 0
        await BulletinJob(chat.bot.services.database, chat.bot.services.get(Bulletins))()
        (status,) = await staff.send("/bulletin status short-note")
        text = bare(status.text)
        assert "Cancelled while sending" in text and "Sent: 5 of 12" in text and "cancelled, or the person" in text
        assert (await audit_actions(chat)).count("bulletin.cancel") == 2


async def test_progress_message_is_edited_then_a_summary(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await crowd(chat, 2)
        staff = chat.person("staff-a")
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        await staff.send("/bulletin send short-note all")
        services = chat.bot.services
        reporter = BulletinReporter(services.database, services.get(Bulletins), services.i18n, chat.bot.transports)
        await reporter.report_once()
        progress = staff.last
        assert "0 / 8 (0 %)" in bare(progress.text)
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(BulletinSend).values(reporter_lease_until=None))
        await sender(chat, Clock()).drain_once()
        await reporter.report_once()
        assert chat.transport.edits and "8 / 8 (100 %)" in bare(staff.inbox[-2].text)
        summary = bare(staff.last.text)
        assert "finished" in summary and "Sent: 8 of 8" in summary and "console: 8 sent" in summary
        assert "English: 6 sent" in summary and "Received it in the first language instead of their own: 4" in summary
        edits, messages = len(chat.transport.edits), len(staff.inbox)
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(BulletinSend).values(reporter_lease_until=None))
        await reporter.report_once()  # nothing changed: no edit, no second summary
        assert len(chat.transport.edits) == edits and len(staff.inbox) == messages


async def test_participants_read_the_last_five(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        reader = await onboard(chat, "7", "ar")
        (nothing,) = await reader.send("/bulletins")
        assert nothing.direction is Direction.RTL
        staff = chat.person("staff-a")
        for n in range(6):
            await store(chat, parse_bulletin(TWO_LANGUAGES.replace("short-note", f"note-{n}")
                                             .replace("ملاحظة قصيرة", f"ملاحظة {n}")))
            await staff.send(f"/bulletin send note-{n} all")
        await sender(chat, Clock()).drain_once()  # delivered: replies no longer wait behind them
        replies = await reader.send("/bulletins")
        labels = [c.label for c in replies[-1].choices]
        assert labels[:5] == [f"ملاحظة {n}" for n in (5, 4, 3, 2, 1)] and len(labels) == 6
        shown = await reader.press(f"ملاحظة {3}")
        assert shown[0].text.startswith("ملاحظة 3") and shown[0].formatted
        await reader.press(len(labels) - 1)  # back to the menu
        assert reader.last.choices and reader.last.choices[0].key == "surveys"


async def test_compose_in_chat_with_preview_audience_and_time(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await crowd(chat, 1)
        staff = chat.person("staff-a")
        await staff.send("/bulletin new")
        assert "short id" in staff.last.text
        await staff.send("Not An Id")
        assert "lowercase Latin letters" in staff.inbox[-2].text
        await staff.send("june-note")
        await staff.press("العربية")
        await staff.send("نشرة حزيران")
        await staff.send("الفقرة الأولى مع [رابط](https://example.org")
        await staff.send("Done")
        assert "Line 1:" in bare(staff.inbox[-2].text) and "not closed" in staff.inbox[-2].text
        await staff.send("الفقرة **الأولى** مع [رابط](https://example.org)")
        await staff.send("- بند\n- بند آخر")
        await staff.send("Done")
        preview = staff.inbox[-2]
        assert preview.formatted and preview.text.startswith("نشرة حزيران\n\nالفقرة الأولى مع رابط (https://example.org)")
        await staff.press("Keep it")
        await staff.press("English")
        await staff.send("June note")
        await staff.send("The first paragraph.")
        await staff.press("Done")
        await staff.press("Keep it")
        await staff.press("Finished: save the bulletin")
        assert "saved as version" in staff.inbox[-2].text
        await staff.send("group:nope")
        assert "There is no group" in staff.inbox[-2].text
        await staff.press("Everyone who receives bulletins")
        assert "4 people would receive it" in bare(staff.last.text)
        assert "Kurdî (Kurmancî)" in staff.last.text  # who gets the first language instead
        await staff.press("At a time I choose")
        await staff.send("2020-01-01 10:00")
        assert "in the past" in staff.inbox[-2].text, [m.text for m in staff.inbox[-4:]]
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
        await staff.send(later)
        assert "will be sent at" in staff.last.text
        async with chat.bot.services.database.sessions() as session:
            bulletin, version = await chat.bot.services.get(Bulletins).bulletin(session, "june-note")
            assert bulletin.languages == ("ar", "en") and version.author.startswith("staff:")
        assert await audit_actions(chat) == ["bulletin.create", "bulletin.send"]


async def test_erasure_removes_subscription_and_receipts(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        person = await onboard(chat, "8", "en")
        await person.send("/unsubscribe")
        await person.send("/subscribe")
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        await chat.person("staff-a").send("/bulletin send short-note all")
        assert await count_rows(chat, BulletinRecipient) == 1
        await sender(chat, Clock()).drain_once()
        await person.send("/delete_me")
        await person.press("Yes, erase everything")
        for model in (BulletinRecipient, BulletinSubscription, OutboxMessage, Participant):
            assert await count_rows(chat, model) == 0, model
        tables = {t.name for t in Base.metadata.sorted_tables}
        assert {"bulletin_recipients", "bulletin_subscriptions"} <= tables


async def test_retention_deletes_old_sends_with_their_recipients(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    from bot.config import RetentionSettings
    from bot.services.retention import purge

    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await crowd(chat, 1)
        staff = chat.person("staff-a")
        for name in ("old-one", "new-one"):
            await store(chat, parse_bulletin(TWO_LANGUAGES.replace("short-note", name)))
            await staff.send(f"/bulletin send {name} all")
        await sender(chat, Clock()).drain_once()
        await BulletinJob(chat.bot.services.database, chat.bot.services.get(Bulletins))()
        now = dt.datetime.now(dt.UTC)
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(BulletinSend).where(BulletinSend.bulletin_id == "old-one")
                                  .values(finished_at=now - dt.timedelta(days=366)))
            report = await purge(session, RetentionSettings(), now, chat.bot.features.retention())
        assert report["bulletin_sends"] == 1
        async with chat.bot.services.database.sessions() as session:
            assert list(await session.scalars(select(BulletinSend.bulletin_id))) == ["new-one"]
            assert await session.scalar(select(func.count()).select_from(BulletinRecipient)) == 4


async def test_key_rotation_reseals_bulletin_content_and_staff_addresses(db_url: str, tmp_path: Path,
                                                                         keys: KeyRing) -> None:
    from bot.services import key_check
    from bot.services.key_rotation import reseal_database
    from bot.storage.models import BulletinNotice

    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await crowd(chat, 1)
        await store(chat, parse_bulletin(TWO_LANGUAGES))
        await chat.person("staff-a").send("/bulletin send short-note all")
        rotated = keys.rotated()
        async with chat.bot.services.database.sessions.begin() as session:
            report = await reseal_database(session, rotated, chat.bot.features.sealed())
            await key_check.record(session, rotated)  # as ``keys rotate`` does: the database needs the new key only
        # the version's content and the notice's address: declared by the feature, reached by rotation
        assert report["bulletin_versions.content_enc"] == 1 and report["bulletin_notices.address_enc"] == 1
    retired = rotated.retired()
    async with open_chat(settings_for(db_url, tmp_path), retired) as chat:
        async with chat.bot.services.database.sessions() as session:
            bulletin, _ = await chat.bot.services.get(Bulletins).bulletin(session, "short-note")
            notice = await session.scalar(select(BulletinNotice))
            assert notice is not None
            address = chat.bot.services.get(Bulletins).notice_address(notice)
        assert bulletin.first.title == "A short note" and address.value == "chat-staff-a"
