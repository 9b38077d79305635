"""Organisations (CSOs, survivor associations, protocol signatories), groups and invites."""

from __future__ import annotations

import datetime as dt
import enum
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.i18n import western_digits
from bot.core.security import KeyRing
from bot.storage.db import dialect_insert
from bot.storage.models import (
    Group,
    InviteCode,
    Organisation,
    OrganisationContact,
    Participant,
    invite_groups,
    memberships,
    organisation_name_context,
    utcnow,
)

ORGANISATION_KINDS = ("cso", "association", "signatory", "other")
GROUP_KINDS = ("focus_group", "association", "audience")
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,31}$")

# Crockford base32: no I, L, O, U, so codes survive being read aloud or retyped.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


class RedeemResult(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


@dataclass(frozen=True, slots=True)
class NewInvite:
    code: str
    expires_at: dt.datetime
    organisation: str
    groups: tuple[str, ...]


def normalise_code(text: str) -> str:
    """What a person typed, made comparable: case, dashes, spaces, look-alike letters, Arabic digits."""
    cleaned = western_digits(text).upper().translate(_CONFUSABLE)
    return "".join(ch for ch in cleaned if ch in _ALPHABET)


def valid_slug(code: str) -> bool:
    return bool(CODE_PATTERN.match(code))


class Organisations:
    """Repository for organisations, groups, memberships and invite codes."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def add_organisation(self, session: AsyncSession, code: str, kind: str, name: str | None) -> Organisation:
        org = Organisation(code=code, kind=kind)
        session.add(org)
        await session.flush()
        if name:
            org.name_enc = self._keys.seal_text(name, organisation_name_context(org.id))
        return org

    async def organisation(self, session: AsyncSession, code: str) -> Organisation | None:
        return await session.scalar(select(Organisation).where(Organisation.code == code))

    async def organisation_by_id(self, session: AsyncSession, org_id: int) -> Organisation | None:
        return await session.get(Organisation, org_id)

    def organisation_name(self, org: Organisation) -> str | None:
        return self._keys.open_text(org.name_enc, organisation_name_context(org.id)) if org.name_enc else None

    async def list_organisations(self, session: AsyncSession) -> list[Organisation]:
        return list(await session.scalars(select(Organisation).order_by(Organisation.code)))

    async def add_group(self, session: AsyncSession, code: str, kind: str, organisation: Organisation | None) -> Group:
        group = Group(code=code, kind=kind, organisation_id=organisation.id if organisation else None)
        session.add(group)
        await session.flush()
        return group

    async def group(self, session: AsyncSession, code: str) -> Group | None:
        return await session.scalar(select(Group).where(Group.code == code))

    async def list_groups(self, session: AsyncSession) -> list[Group]:
        return list(await session.scalars(select(Group).order_by(Group.code)))

    async def groups_of(self, session: AsyncSession, participant_id: int) -> list[Group]:
        return list(
            await session.scalars(
                select(Group).join(memberships, memberships.c.group_id == Group.id)
                .where(memberships.c.participant_id == participant_id).order_by(Group.code)
            )
        )

    async def create_invite(
        self, session: AsyncSession, organisation: Organisation, groups: list[Group], valid_days: int,
        *, contact_person: bool = False,
    ) -> NewInvite:
        """``contact_person``: whoever redeems it also answers for the organisation (check-ins)."""
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
        expires = utcnow() + dt.timedelta(days=valid_days)
        invite = InviteCode(
            code_digest=self._keys.secret_digest("invite", raw), organisation_id=organisation.id, expires_at=expires,
            contact_person=contact_person,
        )
        session.add(invite)
        await session.flush()
        if groups:
            await session.execute(insert(invite_groups), [{"invite_id": invite.id, "group_id": g.id} for g in groups])
        pretty = "-".join(raw[i : i + 4] for i in range(0, 12, 4))
        return NewInvite(pretty, expires, organisation.code, tuple(g.code for g in groups))

    async def redeem(self, session: AsyncSession, typed: str, participant: Participant) -> tuple[RedeemResult, Organisation | None]:
        """Use a code once: join its organisation and groups. Who redeemed it is not recorded."""
        code = normalise_code(typed)
        if len(code) != 12:
            return RedeemResult.UNKNOWN, None
        invite = await session.scalar(
            select(InviteCode).where(InviteCode.code_digest == self._keys.secret_digest("invite", code)).with_for_update()
        )
        if invite is None:
            return RedeemResult.UNKNOWN, None
        if invite.redeemed_at is not None:
            return RedeemResult.USED, None
        expires = invite.expires_at if invite.expires_at.tzinfo else invite.expires_at.replace(tzinfo=dt.UTC)
        if expires <= utcnow():
            return RedeemResult.EXPIRED, None
        invite.redeemed_at = utcnow()
        if participant.organisation_id != invite.organisation_id:
            # Someone who moves to another organisation no longer answers for the one they left.
            await session.execute(delete(OrganisationContact).where(OrganisationContact.participant_id == participant.id))
        participant.organisation_id = invite.organisation_id
        if invite.contact_person:
            await self._add_contact(session, invite.organisation_id, participant.id)
        group_ids = list(await session.scalars(select(invite_groups.c.group_id).where(invite_groups.c.invite_id == invite.id)))
        if group_ids:
            await self._join(session, participant.id, group_ids)
        org = await session.get(Organisation, invite.organisation_id)
        return RedeemResult.OK, org

    async def _add_contact(self, session: AsyncSession, organisation_id: int, participant_id: int) -> None:
        row = {"organisation_id": organisation_id, "participant_id": participant_id, "since": utcnow().date()}
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        stmt = dialect_insert(dialect)(OrganisationContact).values([row])
        await session.execute(stmt.on_conflict_do_nothing())

    async def _join(self, session: AsyncSession, participant_id: int, group_ids: list[int]) -> None:
        rows = [{"participant_id": participant_id, "group_id": gid, "joined_on": utcnow().date()} for gid in group_ids]
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        stmt = dialect_insert(dialect)(memberships).values(rows)
        await session.execute(stmt.on_conflict_do_nothing())
