"""Participants: registration after consent, sealed addresses, complete erasure."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.model import Address, Platform, Pseudonym
from bot.core.security import DataKey, KeyRing
from bot.storage.models import (
    DialogState,
    Participant,
    ParticipantAddress,
    ParticipantKey,
    address_context,
    utcnow,
)


def _address_context(participant_id: int, platform: str) -> str:
    return address_context(participant_id, platform)


class Participants:
    """Repository for people. Every stored detail is sealed with the person's own key."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def find(self, session: AsyncSession, pseudonym: Pseudonym) -> Participant | None:
        return await session.scalar(select(Participant).where(Participant.pseudonym == pseudonym))

    async def register(
        self, session: AsyncSession, pseudonym: Pseudonym, language: str, address: Address
    ) -> Participant:
        participant = Participant(pseudonym=pseudonym, platform=address.platform, language=language)
        session.add(participant)
        await session.flush()
        data_key, wrapped = self._keys.new_data_key(str(participant.id))
        session.add(ParticipantKey(participant_id=participant.id, wrapped=wrapped.blob, master_key_id=wrapped.key_id))
        await self._store_address(session, participant.id, data_key, address)
        await session.flush()
        return participant

    async def data_key(self, session: AsyncSession, participant_id: int) -> DataKey:
        row = await session.get(ParticipantKey, participant_id)
        if row is None:
            raise LookupError("participant has no data key (erased)")
        return self._keys.unwrap(row.wrapped, str(participant_id))

    async def remember_address(self, session: AsyncSession, participant: Participant, address: Address) -> None:
        """Keep the reply address current (a Matrix DM room can change) and mark it reachable."""
        key = await self.data_key(session, participant.id)
        await self._store_address(session, participant.id, key, address)
        today = utcnow().date()
        if participant.last_seen_on != today:
            participant.last_seen_on = today

    async def address_of(self, session: AsyncSession, participant_id: int, platform: str) -> Address | None:
        row = await session.scalar(
            select(ParticipantAddress).where(
                ParticipantAddress.participant_id == participant_id, ParticipantAddress.platform == platform
            )
        )
        if row is None or not row.reachable:
            return None
        key = await self.data_key(session, participant_id)
        return Address(Platform(platform), key.open(row.address_enc, _address_context(participant_id, platform)))

    async def mark_unreachable(self, session: AsyncSession, participant_id: int, platform: str, reason: str) -> None:
        await session.execute(
            update(ParticipantAddress)
            .where(ParticipantAddress.participant_id == participant_id, ParticipantAddress.platform == platform)
            .values(reachable=False, unreachable_reason=reason[:32], updated_at=utcnow())
        )

    async def erase(self, session: AsyncSession, pseudonym: Pseudonym) -> bool:
        """Delete the person and, by cascade, their key, addresses, memberships and outbox rows."""
        await session.execute(delete(DialogState).where(DialogState.pseudonym == pseudonym))
        participant = await self.find(session, pseudonym)
        if participant is None:
            return False
        await session.execute(delete(Participant).where(Participant.id == participant.id))
        return True

    async def _store_address(self, session: AsyncSession, participant_id: int, key: DataKey, address: Address) -> None:
        row = await session.scalar(
            select(ParticipantAddress).where(
                ParticipantAddress.participant_id == participant_id, ParticipantAddress.platform == address.platform
            )
        )
        sealed = key.seal(address.value, _address_context(participant_id, address.platform))
        if row is None:
            session.add(ParticipantAddress(participant_id=participant_id, platform=address.platform, address_enc=sealed))
            return
        if row.reachable and key.open(row.address_enc, _address_context(participant_id, address.platform)) == address.value:
            return
        row.address_enc, row.reachable, row.unreachable_reason = sealed, True, None
