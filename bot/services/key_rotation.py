"""Master key rotation: seal everything again under a new key, then optionally retire the old.

Retiring is what makes erasure reach old backups: a backup holds the wrapped data keys of
people erased since, but once the master key that wrapped them is gone, so is their data.
Run it with the bot stopped: a running worker still holds the old key ring.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.security import KeyRing
from bot.storage.models import (
    BulletinNotice,
    BulletinVersion,
    DialogState,
    Group,
    Organisation,
    OutboxMessage,
    ParticipantKey,
    SurveyAnswer,
)


@dataclass(frozen=True, slots=True)
class RotationReport:
    participant_keys: int
    organisations: int
    dialog_states: int
    outbox: int
    survey_answers: int
    bulletins: int = 0

    @property
    def total(self) -> int:
        return (self.participant_keys + self.organisations + self.dialog_states + self.outbox + self.survey_answers
                + self.bulletins)


async def reseal_database(session: AsyncSession, keys: KeyRing) -> RotationReport:
    """Re-seal every master-key value under ``keys``' current key (``keys`` must still hold the old ones)."""

    def again(token: bytes, context: str) -> bytes | None:
        if not KeyRing.is_master_token(token) or keys.sealed_with_current(token):
            return None
        return keys.seal(keys.open(token, context.encode()), context.encode())

    counts = dict.fromkeys(("participant_keys", "organisations", "dialog_states", "outbox", "survey_answers",
                            "bulletins"), 0)
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
        if (new := again(row.payload_enc, f"outbox.payload:{row.txn_id}")) is not None:
            row.payload_enc = new
            counts["outbox"] += 1
    for answer in await session.scalars(select(SurveyAnswer).where(SurveyAnswer.text_enc.is_not(None))):
        if answer.text_enc and (new := again(answer.text_enc, f"survey_answers.text:{answer.id}")) is not None:
            answer.text_enc = new
            counts["survey_answers"] += 1
    for version in await session.scalars(select(BulletinVersion)):
        context = f"bulletin_versions.content:{version.bulletin_id}:{version.number}"
        if (new := again(version.content_enc, context)) is not None:
            version.content_enc = new
            counts["bulletins"] += 1
    for notice in await session.scalars(select(BulletinNotice)):
        if (new := again(notice.address_enc, f"bulletin_notices.address:{notice.token}")) is not None:
            notice.address_enc = new
            counts["bulletins"] += 1
    await session.flush()
    return RotationReport(**counts)
