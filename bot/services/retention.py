"""Retention: every kind of record has a lifetime, enforced by a scheduled purge.

The purge knows no table of its own: it applies the :class:`RetentionRule` declarations of
every feature (see ``Feature.retention``), each with its ``[retention]`` setting. People who
expire (inactivity) go through the same erasure as ``/delete_me``: every feature's hook runs
before their row is deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.storage.db import Database
from bot.storage.lifecycle import RetentionRule
from bot.storage.models import Participant, utcnow

log = logging.getLogger(__name__)

EraseParticipant = Callable[[AsyncSession, Participant], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PurgeReport(Mapping[str, int]):
    """Rows deleted per rule name (``report["dialog_states"]``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in self.counts.items())


def days_of(policy: RetentionSettings, rule: RetentionRule) -> int:
    """The rule's lifetime from ``[retention]``; a rule naming a missing key is a programming error."""
    days = getattr(policy, rule.days_key, None)
    if not isinstance(days, int):
        raise LookupError(f"retention rule {rule.name}: no setting retention.{rule.days_key}")
    return days


async def purge(session: AsyncSession, policy: RetentionSettings, now: dt.datetime,
                rules: Iterable[RetentionRule], erase: EraseParticipant | None = None) -> PurgeReport:
    """Delete what has outlived its retention period. Idempotent: a doubled run deletes nothing more."""
    counts: dict[str, int] = {}
    for rule in rules:
        cutoff = now - dt.timedelta(days=days_of(policy, rule))
        if rule.model is Participant and erase is not None:
            for participant in list(await session.scalars(select(Participant).where(rule.expired(cutoff)))):
                await erase(session, participant)
        if rule.purge is not None:  # rows that must leave a trace of their going (the audit log)
            deleted = await rule.purge(session, cutoff)
        else:
            result = await session.execute(delete(rule.model).where(rule.expired(cutoff)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
        counts[rule.name] = counts.get(rule.name, 0) + deleted
    return PurgeReport(counts)


class RetentionJob:
    """The scheduled purge; its state is the data itself, so missed or doubled runs are harmless."""

    def __init__(self, database: Database, policy: RetentionSettings, rules: Iterable[RetentionRule],
                 clock: Callable[[], dt.datetime] = utcnow, erase: EraseParticipant | None = None) -> None:
        self._db = database
        self._policy = policy
        self._rules = tuple(rules)
        self._clock = clock
        self._erase = erase

    async def __call__(self) -> PurgeReport | None:
        try:
            async with self._db.sessions.begin() as session:
                report = await purge(session, self._policy, self._clock(), self._rules, self._erase)
            await self._db.scrub()  # purged rows must not linger in the SQLite log either
        except Exception as exc:
            log.error("retention purge failed: %s", type(exc).__name__)
            return None
        log.info("retention purge: %s", report)
        return report
