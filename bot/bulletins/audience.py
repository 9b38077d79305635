"""Who a bulletin goes to: ``all``, ``group:CODE``, ``org:CODE``, ``lang:CODE``, several at once.

Terms of one kind add up, kinds narrow each other down: ``group:a group:b lang:ar`` is
everyone in group a or b whose language is Arabic. Only subscribed participants count, and
the audience is resolved again when the send starts, so who unsubscribed in between is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulletins.definition import LANGUAGES
from bot.storage.models import (
    BulletinSubscription,
    Group,
    Organisation,
    Participant,
    ParticipantAddress,
    memberships,
)

_TERM = re.compile(r"^(group|org|lang):([a-z0-9][a-z0-9_-]{0,31})$")


class AudienceError(Exception):
    """``reason`` is ``syntax``, ``language``, ``group`` or ``org``; ``term`` what was typed."""

    def __init__(self, reason: str, term: str) -> None:
        super().__init__(f"{reason}: {term}")
        self.reason = reason
        self.term = term


@dataclass(frozen=True, slots=True)
class Audience:
    groups: frozenset[str] = frozenset()
    organisations: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()

    @property
    def everyone(self) -> bool:
        return not (self.groups or self.organisations or self.languages)

    def __str__(self) -> str:
        if self.everyone:
            return "all"
        return " ".join([*(f"group:{g}" for g in sorted(self.groups)), *(f"org:{o}" for o in sorted(self.organisations)),
                         *(f"lang:{lang}" for lang in sorted(self.languages))])


def parse_audience(terms: Iterable[str]) -> Audience:
    """Terms as typed (spaces or commas between them); raises :class:`AudienceError` on the first bad one."""
    groups: set[str] = set()
    organisations: set[str] = set()
    languages: set[str] = set()
    words = [w for term in terms for w in re.split(r"[\s,]+", term.strip()) if w]
    if not words:
        raise AudienceError("syntax", "")
    for word in words:
        lowered = word.lower()
        if lowered == "all":
            continue
        match = _TERM.match(lowered)
        if match is None:
            raise AudienceError("syntax", word)
        kind, code = match.groups()
        if kind == "lang":
            if code not in LANGUAGES:
                raise AudienceError("language", word)
            languages.add(code)
        elif kind == "group":
            groups.add(code)
        else:
            organisations.add(code)
    return Audience(frozenset(groups), frozenset(organisations), frozenset(languages))


@dataclass(frozen=True, slots=True)
class Member:
    participant_id: int
    language: str
    platform: str
    reachable: bool


async def resolve(session: AsyncSession, audience: Audience) -> list[Member]:
    """Every subscribed participant in the audience, in a stable order; raises AudienceError for unknown codes."""
    query = (
        select(Participant.id, Participant.language, Participant.platform, ParticipantAddress.reachable)
        .join(ParticipantAddress, (ParticipantAddress.participant_id == Participant.id)
              & (ParticipantAddress.platform == Participant.platform))
        .outerjoin(BulletinSubscription, BulletinSubscription.participant_id == Participant.id)
        .where(or_(BulletinSubscription.subscribed.is_(None), BulletinSubscription.subscribed.is_(True)))
        .order_by(Participant.id)
    )
    if audience.groups:
        group_ids = await _ids(session, Group, audience.groups, "group")
        query = query.where(Participant.id.in_(
            select(memberships.c.participant_id).where(memberships.c.group_id.in_(group_ids))))
    if audience.organisations:
        org_ids = await _ids(session, Organisation, audience.organisations, "org")
        query = query.where(Participant.organisation_id.in_(org_ids))
    if audience.languages:
        query = query.where(Participant.language.in_(sorted(audience.languages)))
    return [Member(pid, language, platform, bool(reachable)) for pid, language, platform, reachable
            in await session.execute(query)]


async def _ids(session: AsyncSession, model: type[Group] | type[Organisation], codes: Sequence[str] | frozenset[str],
               kind: str) -> list[int]:
    rows = dict((await session.execute(select(model.code, model.id).where(model.code.in_(sorted(codes))))).all())
    for code in sorted(codes):
        if code not in rows:
            raise AudienceError(kind, f"{kind}:{code}")
    return list(rows.values())
