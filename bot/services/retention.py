"""Retention: every kind of record has a lifetime, enforced by a scheduled purge."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.storage.db import Database
from bot.storage.models import (
    AuditEntry,
    BulletinSend,
    DialogState,
    InviteCode,
    OutboxMessage,
    Participant,
    ProcessedEvent,
    utcnow,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    dialog_states: int
    outbox: int
    audit: int
    participants: int
    invites: int
    processed_events: int = 0
    bulletin_sends: int = 0


async def purge(session: AsyncSession, policy: RetentionSettings, now: dt.datetime) -> PurgeReport:
    """Delete what has outlived its retention period. Idempotent: a doubled run deletes nothing more."""

    def older(days: int) -> dt.datetime:
        return now - dt.timedelta(days=days)

    async def count(statement: object) -> int:
        result = await session.execute(statement)  # type: ignore[call-overload]
        return int(result.rowcount or 0)

    return PurgeReport(
        dialog_states=await count(delete(DialogState).where(DialogState.updated_at < older(policy.dialog_state_days))),
        outbox=await count(delete(OutboxMessage).where(OutboxMessage.created_at < older(policy.outbox_days))),
        audit=await count(delete(AuditEntry).where(AuditEntry.at < older(policy.audit_days))),
        participants=await count(
            delete(Participant).where(Participant.last_seen_on < older(policy.inactive_participant_days).date())
        ),
        invites=await count(
            delete(InviteCode).where(
                or_(
                    InviteCode.expires_at < older(policy.expired_invite_days),
                    InviteCode.redeemed_at < older(policy.expired_invite_days),
                )
            )
        ),
        processed_events=await count(
            delete(ProcessedEvent).where(ProcessedEvent.seen_at < older(policy.processed_event_days))
        ),
        bulletin_sends=await count(delete(BulletinSend).where(BulletinSend.finished_at < older(policy.bulletin_days))),
    )


class RetentionJob:
    """The scheduled purge; its state is the data itself, so missed or doubled runs are harmless."""

    def __init__(self, database: Database, policy: RetentionSettings, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._db = database
        self._policy = policy
        self._clock = clock

    async def __call__(self) -> PurgeReport | None:
        try:
            async with self._db.sessions.begin() as session:
                report = await purge(session, self._policy, self._clock())
        except Exception as exc:
            log.error("retention purge failed: %s", type(exc).__name__)
            return None
        log.info("retention purge: %s", report)
        return report
