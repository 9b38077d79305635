"""How far a send is: counted from the outbox rows of its recipients, per platform and language.

The counts carry no identities. When a send ends they are frozen into the send's summary,
so its report outlives the outbox rows (which retention deletes).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import BulletinRecipient, OutboxMessage

# Outcome of one recipient, as shown to staff.
SENT, WAITING, FAILED, UNREACHABLE, WITHDRAWN = "sent", "waiting", "failed", "unreachable", "withdrawn"
STATES = (SENT, WAITING, FAILED, UNREACHABLE, WITHDRAWN)


@dataclass(slots=True)
class Progress:
    total: int = 0
    states: Counter[str] = field(default_factory=Counter)
    failed_reasons: Counter[str] = field(default_factory=Counter)
    unreachable_reasons: Counter[str] = field(default_factory=Counter)
    by_platform: dict[str, Counter[str]] = field(default_factory=dict)
    by_language: dict[str, Counter[str]] = field(default_factory=dict)
    fallback: int = 0

    @property
    def waiting(self) -> int:
        return self.states[WAITING]

    @property
    def handled(self) -> int:
        return self.total - self.waiting

    @property
    def finished(self) -> bool:
        return self.waiting == 0

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else self.handled * 100 // self.total

    def add(self, state: str, reason: str | None, platform: str, language: str, fallback: bool, count: int) -> None:
        self.total += count
        self.states[state] += count
        if state == FAILED:
            self.failed_reasons[reason or "error"] += count
        elif state == UNREACHABLE:
            self.unreachable_reasons[reason or "unreachable"] += count
        self.by_platform.setdefault(platform, Counter())[state] += count
        self.by_language.setdefault(language, Counter())[state] += count
        if fallback:
            self.fallback += count

    def to_json(self) -> str:
        return json.dumps({
            "total": self.total, "states": self.states, "failed_reasons": self.failed_reasons,
            "unreachable_reasons": self.unreachable_reasons, "by_platform": self.by_platform,
            "by_language": self.by_language, "fallback": self.fallback,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, data: str) -> Progress:
        raw = json.loads(data)
        return cls(
            total=int(raw["total"]), states=Counter(raw["states"]), failed_reasons=Counter(raw["failed_reasons"]),
            unreachable_reasons=Counter(raw["unreachable_reasons"]),
            by_platform={k: Counter(v) for k, v in raw["by_platform"].items()},
            by_language={k: Counter(v) for k, v in raw["by_language"].items()}, fallback=int(raw["fallback"]),
        )


def _state(outbox_id: int | None, status: str | None) -> str:
    if outbox_id is None:
        return UNREACHABLE  # known unreachable when the send started: nothing was queued
    if status is None:
        return WITHDRAWN  # the row was removed: the send was cancelled, or the person unsubscribed
    if status == "sent":
        return SENT
    if status == "failed":
        return FAILED
    if status == "unreachable":
        return UNREACHABLE
    return WAITING


async def count(session: AsyncSession, send_id: int) -> Progress:
    """One grouped query over the recipients and their outbox rows."""
    rows = await session.execute(
        select(BulletinRecipient.platform, BulletinRecipient.language, BulletinRecipient.fallback,
               BulletinRecipient.outbox_id.is_(None), OutboxMessage.status, OutboxMessage.last_error,
               func.count())
        .outerjoin(OutboxMessage, OutboxMessage.id == BulletinRecipient.outbox_id)
        .where(BulletinRecipient.send_id == send_id)
        .group_by(BulletinRecipient.platform, BulletinRecipient.language, BulletinRecipient.fallback,
                  BulletinRecipient.outbox_id.is_(None), OutboxMessage.status, OutboxMessage.last_error)
    )
    progress = Progress()
    for platform, language, fallback, not_queued, status, reason, number in rows:
        state = _state(None if not_queued else 0, status)
        progress.add(state, reason if state != UNREACHABLE or not not_queued else "known_unreachable",
                     platform, language, bool(fallback), int(number))
    return progress
