"""Contact persons: the members an association named to answer its check-ins.

Staff never see who a person is; they see a short reference per member (a keyed digest of the
member, meaningless outside this bot) to list contact persons and to change them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.checkins.problems import CheckinProblem
from bot.core.i18n import N_
from bot.core.security import KeyRing
from bot.storage.models import Organisation, OrganisationContact, Participant, ParticipantAddress, utcnow

UNKNOWN_MEMBER = N_("Association %(code)s has no member with the reference %(ref)s. See /checkin contacts %(code)s.")


@dataclass(frozen=True, slots=True)
class Member:
    """A member as staff may see them: a reference, whether they answer for the association,
    since when, where they are reachable and in which language."""

    ref: str
    participant_id: int
    contact_since: dt.date | None
    platform: str
    language: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class Recipient:
    participant_id: int
    pseudonym: str
    platform: str
    language: str


class ContactPersons:
    """Repository of contact persons; who receives an association's check-in."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    def ref(self, participant_id: int) -> str:
        return self._keys.secret_digest("member-ref", str(participant_id))[:8]

    async def members(self, session: AsyncSession, organisation: Organisation) -> list[Member]:
        """Contact persons first, then the other members."""
        rows = await session.execute(
            select(Participant.id, Participant.platform, Participant.language, OrganisationContact.since,
                   ParticipantAddress.reachable)
            .outerjoin(OrganisationContact, (OrganisationContact.participant_id == Participant.id)
                       & (OrganisationContact.organisation_id == organisation.id))
            .outerjoin(ParticipantAddress, (ParticipantAddress.participant_id == Participant.id)
                       & (ParticipantAddress.platform == Participant.platform))
            .where(Participant.organisation_id == organisation.id)
            .order_by(Participant.id)
        )
        members = [Member(self.ref(pid), pid, since, platform, language, bool(reachable))
                   for pid, platform, language, since, reachable in rows]
        return sorted(members, key=lambda m: m.contact_since is None)

    async def member(self, session: AsyncSession, organisation: Organisation, ref: str) -> Member:
        wanted = ref.strip().lower()
        for member in await self.members(session, organisation):
            if member.ref == wanted:
                return member
        raise CheckinProblem(UNKNOWN_MEMBER, code=organisation.code, ref=ref)

    async def set_contact(self, session: AsyncSession, organisation: Organisation, member: Member,
                          contact: bool) -> bool:
        """Make or unmake a contact person; False when nothing changed."""
        if (member.contact_since is not None) == contact:
            return False
        if contact:
            session.add(OrganisationContact(organisation_id=organisation.id, participant_id=member.participant_id,
                                            since=utcnow().date()))
        else:
            await session.execute(delete(OrganisationContact).where(
                OrganisationContact.organisation_id == organisation.id,
                OrganisationContact.participant_id == member.participant_id))
        await session.flush()
        return True

    async def is_eligible(self, session: AsyncSession, organisation_id: int, participant: Participant) -> bool:
        """Whether this person answers for the association now: a contact person, or any member
        while it has none."""
        if participant.organisation_id != organisation_id:
            return False
        mine = await session.scalar(select(exists().where(
            OrganisationContact.organisation_id == organisation_id,
            OrganisationContact.participant_id == participant.id)))
        return bool(mine) or not await self._has_contacts(session, organisation_id)

    async def recipients(self, session: AsyncSession, organisation_id: int) -> list[Recipient]:
        """Reachable contact persons, or every reachable member when none is marked."""
        query = (
            select(Participant.id, Participant.pseudonym, Participant.platform, Participant.language)
            .join(ParticipantAddress, (ParticipantAddress.participant_id == Participant.id)
                  & (ParticipantAddress.platform == Participant.platform))
            .where(Participant.organisation_id == organisation_id, ParticipantAddress.reachable.is_(True))
            .order_by(Participant.id)
        )
        if await self._has_contacts(session, organisation_id):
            query = query.join(OrganisationContact, (OrganisationContact.participant_id == Participant.id)
                               & (OrganisationContact.organisation_id == organisation_id))
        return [Recipient(pid, pseudonym, platform, language)
                for pid, pseudonym, platform, language in await session.execute(query)]

    async def _has_contacts(self, session: AsyncSession, organisation_id: int) -> bool:
        """Contact persons who are still members (someone who joined another organisation no longer counts)."""
        found = await session.scalar(
            select(OrganisationContact.participant_id)
            .join(Participant, Participant.id == OrganisationContact.participant_id)
            .where(OrganisationContact.organisation_id == organisation_id,
                   Participant.organisation_id == organisation_id)
            .limit(1))
        return found is not None
