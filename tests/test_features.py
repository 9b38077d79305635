"""Features are declared once: the menu, /help, Telegram's commands, key rotation, retention and
erasure are built from the list, and nothing declared is left out of any of them."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Integer, LargeBinary, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.app import build_scheduler, retention_job
from bot.config import RetentionSettings
from bot.conversation.commands import Command, Usage
from bot.conversation.engine import DialogEngine, State
from bot.conversation.feature import Feature, FeatureSet, Job, MenuEntry, RetentionRule, SealedColumn, SealKey
from bot.conversation.turn import Services, Turn
from bot.core.i18n import N_, I18n
from bot.core.security import DecryptionError, KeyRing
from bot.features import FEATURES
from bot.services.key_rotation import reseal_database
from bot.storage.models import Base, Participant
from tests.support import make_settings, open_chat

# -- a throwaway feature, declared in one place -------------------------------------------------


class NotesBase(DeclarativeBase):
    """Its own metadata: the table exists only in this test's database."""


class Note(NotesBase):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(Integer, index=True)
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(16), default="note")


def note_context(note_id: int) -> str:
    return f"notes.text:{note_id}"


async def note(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    assert turn.participant is not None
    row = Note(participant_id=turn.participant.id, text_enc=b"")
    turn.session.add(row)
    await turn.session.flush()
    row.text_enc = turn.services.keys.seal_text(" ".join(args), note_context(row.id))
    turn.say("Noted.")


async def count_notes(turn: Turn) -> State | None:
    assert turn.participant is not None
    count = await turn.session.scalar(select(func.count()).select_from(Note)
                                      .where(Note.participant_id == turn.participant.id))
    turn.say(f"You have {count} notes.")
    return None


async def erase_notes(session: object, services: Services, participant: Participant) -> None:
    from sqlalchemy import delete

    await session.execute(delete(Note).where(Note.participant_id == participant.id))  # type: ignore[attr-defined]


NOTES = Feature(
    name="notes",
    commands=(Command("note", note, "Keep a note", needs_participant=True, usage=(Usage("<text>", "keep a note"),)),),
    menu=(MenuEntry("notes", "My notes", 25, count_notes),),
    sealed=(SealedColumn(Note.text_enc, lambda row: note_context(row.id), SealKey.MASTER),),
    retention=(RetentionRule("notes", Note, lambda cutoff: Note.kind == "expired", "outbox_days"),),
    erase=erase_notes,
)


async def test_a_feature_declared_once_is_in_the_menu_help_rotation_and_erasure(
        sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    async with open_chat(settings, keys, features=(*FEATURES, NOTES)) as chat:
        async with chat.bot.services.database.engine.begin() as connection:
            await connection.run_sync(NotesBase.metadata.create_all)
        person = chat.person("7")
        for step in ("/start", "4", "1", "1", "1"):  # ..., skip the code, yes to bulletins
            await person.send(step)
        menu = person.last_prompt
        labels = [c.label for c in menu.choices]
        assert labels == ["Surveys", "Bulletins", "Enter an invitation code", "My notes", "Help", "Change language",
                          "Privacy", "Erase my data", "Erase everything now"], "the entry sits where its order puts it"
        assert "/note <text> – keep a note" in (await person.send("/help"))[0].text

        await person.send("/note meet at the usual place")
        await person.send("/menu")
        assert (await person.press("My notes"))[0].text == "You have 1 notes."

        # erasure calls the feature's hook: the other person's note goes, this one stays
        other = chat.person("17")
        for step in ("/start", "4", "1", "1", "/note my brother's name"):
            await other.send(step)
        await other.send("/delete_me")
        await other.press("Yes, erase everything")
        async with chat.bot.services.database.sessions() as session:
            kept = await session.scalar(select(Participant.id).where(Participant.pseudonym == keys.pseudonym("console", "7")))
            assert [n.participant_id for n in await session.scalars(select(Note))] == [kept]

        # key rotation reaches the new column without being told about it (run with the bot stopped)
        rotated = keys.rotated()
        async with chat.bot.services.database.sessions.begin() as session:
            report = await reseal_database(session, rotated, chat.bot.features.sealed())
        assert report["notes.text_enc"] == 1
        async with chat.bot.services.database.sessions() as session:
            sealed = (await session.scalars(select(Note))).one()
            assert rotated.sealed_with_current(sealed.text_enc)
            with pytest.raises(DecryptionError):
                keys.open_text(sealed.text_enc, note_context(sealed.id))  # the old ring alone cannot open it
            assert rotated.retired().open_text(sealed.text_enc, note_context(sealed.id)) == "meet at the usual place"


async def test_people_who_expire_go_through_every_erasure_hook(sqlite_url: str, tmp_path: Path,
                                                               keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    async with open_chat(settings, keys, features=(*FEATURES, NOTES)) as chat:
        async with chat.bot.services.database.engine.begin() as connection:
            await connection.run_sync(NotesBase.metadata.create_all)
        for user in ("old", "recent"):
            for step in ("/start", "4", "1", "1", f"/note a note of {user}"):
                await chat.person(user).send(step)
        async with chat.bot.services.database.sessions.begin() as session:
            await session.execute(update(Participant).where(Participant.pseudonym == keys.pseudonym("console", "old"))
                                  .values(last_seen_on=dt.date.today() - dt.timedelta(days=800)))
        report = await retention_job(chat.bot.services)()
        assert report is not None and report["participants"] == 1
        async with chat.bot.services.database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Note)) == 1  # only the recent one's


async def test_a_feature_that_is_off_is_nowhere(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    off = Feature(name="notes", commands=NOTES.commands, menu=NOTES.menu, sealed=NOTES.sealed,
                  enabled=lambda settings: False)
    settings = make_settings(sqlite_url, tmp_path)
    async with open_chat(settings, keys, features=(*FEATURES, off)) as chat:
        person = chat.person("8")
        for step in ("/start", "4", "1", "1"):
            await person.send(step)
        assert "My notes" not in [c.label for c in person.last_prompt.choices]
        assert "/note" not in (await person.send("/help"))[0].text
        assert "do not know that command" in (await person.send("/note hello"))[0].text
        menus = chat.bot.features.command_table().menus(I18n())
        assert "note" not in {name for name, _ in menus["en"]}
        assert Note.text_enc in [s.column for s in chat.bot.features.sealed()], \
            "data written while it was on is still rotated"


async def test_scheduled_jobs_of_features_run_on_the_event_loop(sqlite_url: str, tmp_path: Path,
                                                                keys: KeyRing) -> None:
    ran = asyncio.Event()

    class Tick:
        """A callable object, as the jobs of the features are (e.g. the survey reminders)."""

        async def __call__(self) -> None:
            ran.set()

    ticking = Feature(name="ticking", jobs=(Job("tick", lambda settings: IntervalTrigger(seconds=0.05),
                                                 lambda services, clock: Tick()),))
    async with open_chat(make_settings(sqlite_url, tmp_path), keys, features=(*FEATURES, ticking)) as chat:
        scheduler = build_scheduler(chat.bot.services)
        assert {job.id for job in scheduler.get_jobs()} >= {"retention", "survey-reminders", "tick"}
        scheduler.start()
        try:
            await asyncio.wait_for(ran.wait(), 10)
        finally:
            scheduler.shutdown(wait=False)


# -- the real list ------------------------------------------------------------------------------


def test_every_encrypted_column_is_declared() -> None:
    """A new ``*_enc`` column that no feature declares would be left behind by key rotation."""
    declared = {(s.table, s.column.key) for s in FeatureSet(FEATURES, make_settings("sqlite+aiosqlite://", Path("."))).sealed()}
    encrypted = {(table.name, column.name) for table in Base.metadata.tables.values()
                 for column in table.columns if column.name.endswith("_enc")}
    assert encrypted, "the models have sealed columns"
    assert encrypted <= declared, f"not declared by any feature: {sorted(encrypted - declared)}"
    assert ("participant_keys", "wrapped") in declared, "wrapped data keys are master-sealed too"


def test_every_retention_rule_names_a_setting_and_every_table_with_time_is_covered() -> None:
    features = FeatureSet(FEATURES, make_settings("sqlite+aiosqlite://", Path(".")))
    for rule in features.retention():
        assert isinstance(getattr(RetentionSettings(), rule.days_key, None), int), rule.name
        rule.expired(dt.datetime.now(dt.UTC))  # builds a condition
    covered = {rule.model.__tablename__ for rule in features.retention()}
    assert {"dialog_states", "outbox", "audit_log", "participants", "invite_codes", "processed_events"} <= covered


async def test_help_and_menu_list_exactly_the_command_table(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        table = chat.bot.features.command_table()
        participant = chat.person("9")
        for step in ("/start", "4", "1", "1"):
            await participant.send(step)
        helped = (await participant.send("/help"))[0].text
        shown = {line.split()[0][1:] for line in helped.splitlines() if line.startswith("/")}
        assert shown == {c.name for c in table if not c.staff_only and c.listed}, \
            "participants see every participant command"
        assert "contact" in {c.name for c in table}, "without a staff key /contact exists, to say it is not available"
        assert "contact" not in shown

        staff = chat.person("boss")
        staff_help = (await staff.send("/help"))[0].text
        staff_part = staff_help.split("Staff commands:", 1)[1]
        listed = {line.split()[0][1:] for line in staff_part.splitlines() if line.startswith("/")}
        assert listed == {c.name for c in table if c.listed and (c.staff_only or c.staff_usage)}, \
            "staff help lists every staff command"
        assert {"survey", "results"} <= listed

        await participant.send("/menu")
        expected = [e.label for e in chat.bot.features.menu()]
        assert [c.label for c in participant.last_prompt.choices] == expected


def test_clashing_declarations_stop_the_bot() -> None:
    settings = make_settings("sqlite+aiosqlite://", Path("."))
    twin = Feature(name="twin", commands=(Command("help", NOTES.commands[0].handler, N_("What this bot can do")),))
    with pytest.raises(ValueError, match="command declared twice: help"):
        FeatureSet((*FEATURES, twin), settings)
