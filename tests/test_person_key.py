"""Everything about a person is sealed with that person's own key, so destroying it erases them
everywhere: their conversation state (which holds references, never copies of their answers)
and the messages queued for them. The master key alone opens none of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.model import Outbound
from bot.core.security import DecryptionError, KeyRing
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.models import DialogState, OutboxMessage, Participant, dialog_state_context
from tests.support import open_chat
from tests.test_surveys import launch, settings_for, setup_group

SECRET = "my brother Karim, taken in 2013"


async def test_dialog_state_is_sealed_with_the_persons_key_and_holds_no_answers(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        person = (await setup_group(chat, {"6601": "en"}))["6601"]
        await launch(chat, "bulletin-feedback")
        for step in ("/surveys", "Start", "no", "1"):  # two answers given, the third question asked
            await person.send(step)
        assert "Question" in person.last.text
        services = chat.bot.services
        pseudonym = keys.pseudonym("console", "6601")
        async with services.database.sessions() as session:
            row = await session.get(DialogState, pseudonym)
            assert row is not None
            with pytest.raises(DecryptionError):
                keys.open_text(row.data_enc, dialog_state_context(pseudonym))  # not the master key
            participant = await session.scalar(select(Participant).where(Participant.pseudonym == pseudonym))
            assert participant is not None
            data_key = await services.participants.data_key(session, participant.id)
            data = json.loads(data_key.open(row.data_enc, dialog_state_context(pseudonym)))
        assert "answers" not in data and "history" not in data, data  # references, not copies
        assert set(data) <= {"invitation", "survey"}, data

        # Resuming from those references continues where the person was.
        await person.send("/cancel")
        await person.send("/surveys")
        assert "Welcome back" in person.inbox[-2].text and "Question" in person.last.text
        await person.send("yes")
        await person.send(SECRET)
        assert "Thank you for your feedback" in person.inbox[-2].text


async def test_messages_queued_for_a_person_are_sealed_with_their_key(db_url: str, tmp_path: Path,
                                                                      keys: KeyRing) -> None:
    async with open_chat(settings_for(db_url, tmp_path), keys) as chat:
        await setup_group(chat, {"6602": "en"})
        services = chat.bot.services
        pseudonym = keys.pseudonym("console", "6602")
        async with services.database.sessions.begin() as session:
            participant = await session.scalar(select(Participant).where(Participant.pseudonym == pseudonym))
            assert participant is not None
            await services.outbox.enqueue(session, ToParticipant(participant.id, "console"), OutboxKind.REPLY,
                                          Outbound(SECRET))
        async with services.database.sessions() as session:
            rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.participant_id == participant.id)))
            assert rows
            for row in rows:
                assert not KeyRing.is_master_token(row.payload_enc), "a person's queued message under the master key"
