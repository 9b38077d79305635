"""Small things a review found: digits that are not decimal, lone surrogates, key bytes in a repr,
a key file readable by others, and ciphertexts that could be swapped between rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import LimitsSettings
from bot.conversation.engine import match_choice
from bot.core.model import Choice, Outbound
from bot.core.notices import INTERNAL_ERROR
from bot.core.security import DecryptionError, KeyFileError, KeyRing
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.models import OutboxMessage, Participant, SurveyAnswer, SurveyResponse
from bot.surveys.service import Surveys
from tests.support import make_settings, open_chat, store_anonymous_answers
from tests.test_surveys import STAFF, launch, settings_for, setup_group

NOT_DECIMAL = ["❶", "፩", "፪፫", "1" * 5000, "٣" * 5000]


@pytest.mark.parametrize("text", NOT_DECIMAL)
def test_the_choice_matcher_takes_only_decimal_numbers(text: str) -> None:
    choices = (Choice("a", "Alpha"), Choice("b", "Beta"))
    assert match_choice(text, choices) is None
    assert match_choice("٢", choices) == choices[1]  # Eastern Arabic digits still count
    assert match_choice("①", choices) == choices[0]  # compatibility digits fold to 1


async def test_odd_digits_get_a_clear_answer_in_a_choice_and_in_a_number_question(
        sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path, staff=[STAFF],
                             limits=LimitsSettings(flood_messages=10_000, max_message_chars=20_000))
    async with open_chat(settings, keys) as chat:
        person = chat.person("8801")
        await person.send("/start")
        for text in NOT_DECIMAL:
            replies = await person.send(text)
            assert replies and INTERNAL_ERROR not in replies[0].text
            assert "Please answer with one of the options" in replies[0].text
        person = (await setup_group(chat, {"8802": "en"}))["8802"]
        await launch(chat, "families-of-the-missing")
        for step in ("/surveys", "Start", "2", "Skip", "no"):
            await person.send(step)
        for step in ("1", "3", "Done", "4"):  # needs: tick, tick, done; trust: 4
            await person.send(step)
        assert "How many people live in your household" in person.last.text
        for text in NOT_DECIMAL:
            replies = await person.send(text)
            assert "That is not a valid answer" in replies[0].text, (text, replies[0].text)
        assert "Thank you" not in person.last.text
        await person.send("5")
        assert "household" not in person.last.text


LONE = "I am fine \ud83d and you"


async def test_a_lone_surrogate_is_accepted_everywhere_text_goes(sqlite_url: str, tmp_path: Path,
                                                                 keys: KeyRing) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with open_chat(settings, keys) as chat:
        fresh = chat.person("8803")
        for text in ("\ud800", "/start", "4", "1", "CODE-\udfff"):  # the last one: as an invitation code
            replies = await fresh.send(text)
            assert replies and all(INTERNAL_ERROR not in r.text for r in replies), text
        person = (await setup_group(chat, {"8804": "en"}))["8804"]
        await launch(chat, "bulletin-feedback")
        for step in ("/surveys", "Start", "no", "1", "yes"):
            await person.send(step)
        replies = await person.send(LONE)  # free text, sealed with the person's key
        assert all(INTERNAL_ERROR not in r.text for r in replies)
        assert "Thank you for your feedback" in replies[0].text
        async with chat.bot.services.database.sessions() as session:
            answer = (await session.scalars(select(SurveyAnswer).where(SurveyAnswer.text_enc.is_not(None)))).one()
            response = await session.get(SurveyResponse, answer.response_id)
            assert response is not None
            stored = await chat.bot.services.get(Surveys).read_text(session, answer, response.participant_id)
        assert stored == "I am fine \ufffd and you"


def test_a_data_key_never_shows_its_bytes(keys: KeyRing) -> None:
    key, _wrapped = keys.new_data_key("1")
    for shown in (repr(key), str(key), f"{key!r}", repr([key])):
        assert key.raw.hex() not in shown and repr(key.raw) not in shown and str(key.raw) not in shown


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    KeyRing.generate().save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        KeyRing.load(path)
    os.chmod(path, 0o600)
    assert KeyRing.load(path)
    os.chmod(path, 0o400)
    assert KeyRing.load(path)


async def test_outbox_payloads_cannot_be_swapped_between_people(db_url: str, tmp_path: Path,
                                                                 keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, limits=LimitsSettings(flood_messages=10_000))
    async with open_chat(settings, keys) as chat:
        for user in ("8805", "8806"):
            for step in ("/start", "4", "1", "1"):
                await chat.person(user).send(step)
        services = chat.bot.services
        async with services.database.sessions() as session:
            first, second = (await session.scalars(select(Participant.id).order_by(Participant.id))).all()
            staff = await services.outbox.enqueue(session, ToParticipant(first, "console"), OutboxKind.REPLY,
                                                  Outbound("for the first person"))
            other = await services.outbox.enqueue(session, ToParticipant(second, "console"), OutboxKind.REPLY,
                                                  Outbound("for the second"))
            a, b = await session.get(OutboxMessage, staff), await session.get(OutboxMessage, other)
            assert a is not None and b is not None
            assert (await services.outbox.read(session, a)).text == "for the first person"  # type: ignore[union-attr]
            # Someone with write access to the database copies the first person's message, with the
            # transaction id it was sealed with, into the second person's row.
            with session.no_autoflush:  # tampered in memory only: the test reads, it does not write
                b.payload_enc, b.txn_id = a.payload_enc, a.txn_id
                with pytest.raises(DecryptionError):
                    await services.outbox.read(session, b)
                # ...or rewrites which person a row is for (the sealed text stays where it was).
                a.participant_id, a.queue = second, b.queue
                with pytest.raises(DecryptionError):
                    await services.outbox.read(session, a)
            await session.rollback()


async def test_free_text_answers_cannot_be_swapped_between_responses(tmp_path: Path, keys: KeyRing) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"
    async with open_chat(settings_for(db, tmp_path), keys) as chat:
        people = await setup_group(chat, {"8807": "en", "8808": "en"})
        await launch(chat, "families-of-the-missing")  # anonymous: sealed with the master key
        for user, comment in (("8807", "first comment"), ("8808", "second comment")):
            person = people[user]
            for step in ("/surveys", "Start", "2", "Skip", "no", "1", "Done", "4", "5", "1", comment):
                await person.send(step)
            assert "Thank you" in person.inbox[-2].text, [m.text for m in person.inbox[-3:]]
        await store_anonymous_answers(chat.bot.services)  # handed off, then stored in a batch
        surveys = chat.bot.services.get(Surveys)
        async with chat.bot.services.database.sessions() as session:
            one, two = await session.scalars(select(SurveyAnswer).where(SurveyAnswer.text_enc.is_not(None)))
            assert one.response_id != two.response_id
            assert {await surveys.read_text(session, row, None) for row in (one, two)} == {
                "first comment", "second comment"}
            # Move one response's sealed text, with the answer id it was bound to, into the other response.
            two.text_enc, two.id = one.text_enc, one.id
            with pytest.raises(DecryptionError):
                await surveys.read_text(session, two, None)
            session.expunge_all()


def test_key_file_json_never_printed_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    KeyRing.generate().save(path)
    data = json.loads(path.read_text())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError) as caught:
        KeyRing.load(path)
    assert data["hmac_key"] not in str(caught.value)


async def test_key_rotation_binds_values_sealed_the_old_way_to_their_owner(tmp_path: Path, keys: KeyRing) -> None:
    """Values written before the owner binding still open, and ``keys rotate`` binds those under the
    master key (a person's own key is not the rotation's to use: such values still open as before)."""
    from bot.conversation.feature import FeatureSet
    from bot.features import FEATURES
    from bot.services.key_rotation import reseal_database
    from bot.services.outbox import encode_message
    from bot.storage.models import legacy_survey_answer_context, survey_answer_context

    db = f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"
    settings = settings_for(db, tmp_path)
    async with open_chat(settings, keys) as chat:
        people = await setup_group(chat, {"8809": "en", "8810": "en"})
        await launch(chat, "families-of-the-missing")  # anonymous: the master key
        for step in ("/surveys", "Start", "2", "Skip", "no", "1", "Done", "4", "5", "1", "anonymous words"):
            await people["8809"].send(step)
        await launch(chat, "bulletin-feedback")  # not anonymous: the person's key
        for step in ("/surveys", "Feedback on the periodic bulletin", "Start", "no", "1", "yes", "my suggestion"):
            await people["8810"].send(step)
        services = chat.bot.services
        await store_anonymous_answers(services)
        surveys = services.get(Surveys)
        async with services.database.sessions.begin() as session:
            rows = list(await session.scalars(select(SurveyAnswer).where(SurveyAnswer.text_enc.is_not(None))))
            owners = {row.id: (await session.get(SurveyResponse, row.response_id)).participant_id  # type: ignore[union-attr]
                      for row in rows}
            anonymous = next(row for row in rows if owners[row.id] is None)
            personal = next(row for row in rows if owners[row.id] is not None)
            owner = owners[personal.id]
            assert owner is not None
            data_key = await services.participants.data_key(session, owner)
            anonymous.text_enc = keys.seal_text("anonymous words", legacy_survey_answer_context(anonymous))
            personal.text_enc = data_key.seal("my suggestion", legacy_survey_answer_context(personal))
            queued_id = await services.outbox.enqueue(session, ToParticipant(owner, "console"), OutboxKind.REPLY,
                                                      Outbound("queued before the upgrade"))
            queued = await session.get(OutboxMessage, queued_id)
            assert queued is not None  # as queued by a version that sealed payloads with the master key:
            queued.payload_enc = keys.seal_text(encode_message(Outbound("queued before the upgrade")),
                                                f"outbox.payload:{queued.txn_id}")
            assert (await services.outbox.read(session, queued)).text == "queued before the upgrade"  # type: ignore[union-attr]
            assert await surveys.read_text(session, anonymous, None) == "anonymous words"
            assert await surveys.read_text(session, personal, owner) == "my suggestion"

        rotated = keys.rotated()
        async with services.database.sessions.begin() as session:
            report = await reseal_database(session, rotated, FeatureSet(FEATURES, settings).sealed())
            assert report["survey_answers.text_enc"] == 1 and report["outbox.payload_enc"] >= 1
        async with services.database.sessions() as session:
            anonymous = await session.get(SurveyAnswer, anonymous.id)
            personal = await session.get(SurveyAnswer, personal.id)
            assert anonymous is not None and anonymous.text_enc is not None
            assert rotated.open_text(anonymous.text_enc, survey_answer_context(anonymous)) == "anonymous words"
            with pytest.raises(DecryptionError):
                rotated.open_text(anonymous.text_enc, legacy_survey_answer_context(anonymous))
            assert personal is not None and personal.text_enc is not None
            assert data_key.open(personal.text_enc, legacy_survey_answer_context(personal)) == "my suggestion"
            row = await session.get(OutboxMessage, queued.id)
            assert row is not None
            with pytest.raises(DecryptionError):
                rotated.open_text(row.payload_enc, f"outbox.payload:{row.txn_id}")
            assert row.payload_enc is not None
            assert rotated.open_text(row.payload_enc, f"outbox.payload:{row.queue}:{row.txn_id}")
