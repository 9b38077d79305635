"""Participants: registration after consent, sealed addresses, complete erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.model import Address, Platform, Pseudonym
from bot.core.security import DataKey, KeyRing
from bot.services.forget import request_forget
from bot.storage.db import mark_erasure
from bot.storage.models import (
    DialogState,
    Participant,
    ParticipantAddress,
    ParticipantKey,
    ProcessedEvent,
    address_context,
    utcnow,
)


def _cache(session: AsyncSession, name: str) -> dict[Any, Any]:
    """Per-transaction memory (``session.info``): gone with the session, so a key unwrapped for
    one turn never outlives it (an erased person's key is not kept anywhere)."""
    return session.info.setdefault(name, {})  # type: ignore[no-any-return]


class Participants:
    """Repository for people. Every stored detail is sealed with the person's own key."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def find(self, session: AsyncSession, pseudonym: Pseudonym) -> Participant | None:
        return await session.scalar(select(Participant).where(Participant.pseudonym == pseudonym))

    @staticmethod
    def turn_query(also: ColumnElement[bool] | None = None) -> Select[Participant, bytes, ParticipantAddress, bool]:
        """The statement a turn starts with (see :meth:`find_for_turn`), built once: rebuilding it
        each turn cost more than running it. ``also`` may use bound parameters of its own."""
        return (
            select(Participant, ParticipantKey.wrapped, ParticipantAddress,
                   also if also is not None else literal(False))
            .outerjoin(ParticipantKey, ParticipantKey.participant_id == Participant.id)
            .outerjoin(ParticipantAddress, and_(ParticipantAddress.participant_id == Participant.id,
                                                ParticipantAddress.platform == bindparam("platform")))
            .where(Participant.pseudonym == bindparam("pseudonym"))
        )

    async def find_for_turn(self, session: AsyncSession, query: Select[Participant, bytes, ParticipantAddress, bool], pseudonym: Pseudonym, platform: str,
                            **params: Any) -> tuple[Participant | None, bool]:
        """The person with their wrapped key and their address on ``platform``, in one statement
        (what a turn needs: :meth:`data_key` and :meth:`remember_address` then read nothing more),
        and the value of the query's ``also`` for them (e.g. whether messages are queued for them).
        ``query`` comes from :meth:`turn_query`; ``params`` are its ``also``'s parameters."""
        row = (await session.execute(query, {"pseudonym": pseudonym, "platform": platform, **params})).first()
        if row is None:
            return None, False
        participant, wrapped, address, flag = row
        if wrapped is not None:
            _cache(session, "wrapped_keys")[participant.id] = wrapped
        _cache(session, "addresses")[(participant.id, platform)] = address
        return participant, bool(flag)

    async def register(
        self, session: AsyncSession, pseudonym: Pseudonym, language: str, address: Address
    ) -> Participant:
        participant = Participant(pseudonym=pseudonym, platform=address.platform, language=language)
        session.add(participant)
        await session.flush()
        data_key, wrapped = self._keys.new_data_key(str(participant.id))
        _cache(session, "data_keys")[participant.id] = data_key
        session.add(ParticipantKey(participant_id=participant.id, wrapped=wrapped.blob, master_key_id=wrapped.key_id))
        await self._store_address(session, participant.id, data_key, address)
        await session.flush()
        return participant

    async def data_key(self, session: AsyncSession, participant_id: int) -> DataKey:
        """The person's key, unwrapped once per transaction however often a turn needs it."""
        keys: dict[int, DataKey] = _cache(session, "data_keys")
        key = keys.get(participant_id)
        if key is None:
            wrapped = _cache(session, "wrapped_keys").get(participant_id)
            if wrapped is None:
                row = await session.get(ParticipantKey, participant_id)
                if row is None:
                    raise LookupError("participant has no data key (erased)")
                wrapped = row.wrapped
            key = keys[participant_id] = self._keys.unwrap(wrapped, str(participant_id))
        return key

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
        return Address(Platform(platform), key.open(row.address_enc, address_context(participant_id, platform)))

    async def mark_unreachable(self, session: AsyncSession, participant_id: int, platform: str, reason: str) -> None:
        await session.execute(
            update(ParticipantAddress)
            .where(ParticipantAddress.participant_id == participant_id, ParticipantAddress.platform == platform)
            .values(reachable=False, unreachable_reason=reason[:32], updated_at=utcnow())
        )

    def event_owner(self, pseudonym: Pseudonym) -> str:
        """Whose handled-event records these are: a keyed digest, deleted with the person."""
        return self._keys.secret_digest("event-owner", pseudonym)

    async def forget_events(self, session: AsyncSession, pseudonym: Pseudonym) -> None:
        """Delete the person's handled-event records (the one of this very turn included)."""
        await session.execute(delete(ProcessedEvent).where(ProcessedEvent.owner == self.event_owner(pseudonym)))

    async def erase(self, session: AsyncSession, pseudonym: Pseudonym) -> bool:
        """Delete the person and, by cascade, their key, addresses, memberships and outbox rows.

        The caller's transaction is marked, so the database's log is scrubbed once it commits, and
        each of the person's addresses is handed to its platform to forget (a Matrix room to leave)."""
        await session.execute(delete(DialogState).where(DialogState.pseudonym == pseudonym))
        await self.forget_events(session, pseudonym)
        mark_erasure(session)
        participant = await self.find(session, pseudonym)
        if participant is None:
            return False
        await self.erase_id(session, participant.id)
        return True

    async def erase_id(self, session: AsyncSession, participant_id: int) -> None:
        """Erase by row id; the same cascade, scrub and forgetting."""
        await self.prepare_erasure(session, participant_id)
        await session.execute(delete(Participant).where(Participant.id == participant_id))
        for name in ("data_keys", "wrapped_keys"):
            _cache(session, name).pop(participant_id, None)

    async def prepare_erasure(self, session: AsyncSession, participant_id: int) -> None:
        """Before the person's row goes (``/delete_me``, or retention of inactive people): ask each
        platform to forget their address, and have the database's log scrubbed after the commit."""
        mark_erasure(session)
        participant = await session.get(Participant, participant_id)
        if participant is not None:
            await self.forget_events(session, Pseudonym(participant.pseudonym))
        for address in await self._all_addresses(session, participant_id):
            await request_forget(session, self._keys, address)

    async def _all_addresses(self, session: AsyncSession, participant_id: int) -> list[Address]:
        """Every address of the person, reachable or not (an unreachable room is still to be left)."""
        rows = list(await session.scalars(
            select(ParticipantAddress).where(ParticipantAddress.participant_id == participant_id)))
        if not rows:
            return []
        try:
            key = await self.data_key(session, participant_id)
        except LookupError:
            return []
        return [Address(Platform(row.platform), key.open(row.address_enc, address_context(participant_id, row.platform)))
                for row in rows]

    async def _store_address(self, session: AsyncSession, participant_id: int, key: DataKey, address: Address) -> None:
        loaded: dict[tuple[int, str], ParticipantAddress | None] = _cache(session, "addresses")
        if (participant_id, address.platform) in loaded:
            row = loaded[(participant_id, address.platform)]
        else:
            row = await session.scalar(
                select(ParticipantAddress).where(
                    ParticipantAddress.participant_id == participant_id, ParticipantAddress.platform == address.platform
                )
            )
        sealed = key.seal(address.value, address_context(participant_id, address.platform))
        if row is None:
            row = ParticipantAddress(participant_id=participant_id, platform=address.platform, address_enc=sealed)
            session.add(row)
            loaded[(participant_id, address.platform)] = row
            return
        if row.reachable and key.open(row.address_enc, address_context(participant_id, address.platform)) == address.value:
            return
        row.address_enc, row.reachable, row.unreachable_reason = sealed, True, None
