"""Master key rotation: seal everything again under a new key, then optionally retire the old.

Retiring is what makes erasure reach old backups: a backup holds the wrapped data keys of
people erased since, but once the master key that wrapped them is gone, so is their data.
Run it with the bot stopped: a running worker still holds the old key ring.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.security import DecryptionError, KeyRing
from bot.services.surveys import answer_context, legacy_answer_context
from bot.storage.models import (
    DialogState,
    Group,
    Organisation,
    OutboxMessage,
    ParticipantKey,
    SurveyAnswer,
    SurveyResponse,
)


@dataclass(frozen=True, slots=True)
class RotationReport:
    participant_keys: int
    organisations: int
    dialog_states: int
    outbox: int
    survey_answers: int

    @property
    def total(self) -> int:
        return self.participant_keys + self.organisations + self.dialog_states + self.outbox + self.survey_answers


async def reseal_database(session: AsyncSession, keys: KeyRing) -> RotationReport:
    """Re-seal every master-key value under ``keys``' current key (``keys`` must still hold the old ones).

    Values bound the way they were before 0005_hardening (outbox payloads and free-text answers
    named only their own row) are bound to their owner on the way, under either kind of key."""

    def again(token: bytes, context: str, legacy: str | None = None) -> bytes | None:
        if not KeyRing.is_master_token(token):
            return None
        try:
            plaintext = keys.open(token, context.encode())
            rebind = False
        except DecryptionError:
            if legacy is None:
                raise
            plaintext, rebind = keys.open(token, legacy.encode()), True
        if keys.sealed_with_current(token) and not rebind:
            return None
        return keys.seal(plaintext, context.encode())

    counts = dict.fromkeys(("participant_keys", "organisations", "dialog_states", "outbox", "survey_answers"), 0)
    for key in await session.scalars(select(ParticipantKey)):
        if (new := again(key.wrapped, f"data-key:{key.participant_id}")) is not None:
            key.wrapped, key.master_key_id = new, keys.current_key_id
            counts["participant_keys"] += 1
    for org in await session.scalars(select(Organisation).where(Organisation.name_enc.is_not(None))):
        if org.name_enc and (new := again(org.name_enc, f"organisations.name:{org.id}")) is not None:
            org.name_enc = new
            counts["organisations"] += 1
    for group in await session.scalars(select(Group).where(Group.name_enc.is_not(None))):
        if group.name_enc and (new := again(group.name_enc, f"groups.name:{group.id}")) is not None:
            group.name_enc = new
            counts["organisations"] += 1
    for state in await session.scalars(select(DialogState)):
        if (new := again(state.data_enc, f"dialog_states.data:{state.pseudonym}")) is not None:
            state.data_enc = new
            counts["dialog_states"] += 1
    for row in await session.scalars(select(OutboxMessage)):
        if (new := again(row.payload_enc, f"outbox.payload:{row.participant_id}:{row.txn_id}",
                         f"outbox.payload:{row.txn_id}")) is not None:
            row.payload_enc = new
            counts["outbox"] += 1
    answers = await session.execute(
        select(SurveyAnswer, SurveyResponse.participant_id)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .where(SurveyAnswer.text_enc.is_not(None))
    )
    for answer, owner in answers:
        token = answer.text_enc
        if not token:
            continue
        if owner is None:
            new = again(token, answer_context(answer), legacy_answer_context(answer))
        else:
            new = await _rebind_with_data_key(session, keys, owner, answer, token)
        if new is not None:
            answer.text_enc = new
            counts["survey_answers"] += 1
    await session.flush()
    return RotationReport(**counts)


async def _rebind_with_data_key(session: AsyncSession, keys: KeyRing, owner: int, answer: SurveyAnswer,
                                token: bytes) -> bytes | None:
    """A person's answer still bound the old way, sealed again under their own key, bound to its owner."""
    wrapped = await session.get(ParticipantKey, owner)
    if wrapped is None:
        return None
    data_key = keys.unwrap(wrapped.wrapped, str(owner))
    try:
        data_key.open(token, answer_context(answer))
        return None  # already bound to its owner
    except DecryptionError:
        return data_key.seal(data_key.open(token, legacy_answer_context(answer)), answer_context(answer))
