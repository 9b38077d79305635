"""Retention: every kind of record has a lifetime, enforced by a scheduled purge."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.services.audit import AuditLog
from bot.services.participants import Participants
from bot.storage.db import Database
from bot.storage.models import (
    AuditEntry,
    DialogState,
    ForgetRequest,
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
    forget_requests: int = 0


async def purge(session: AsyncSession, policy: RetentionSettings, now: dt.datetime,
                participants: Participants | None = None) -> PurgeReport:
    """Delete what has outlived its retention period. Idempotent: a doubled run deletes nothing more.

    With ``participants``, inactive people are erased as ``/delete_me`` erases them (their platforms
    are asked to forget them too); without, their rows are only deleted."""

    def older(days: int) -> dt.datetime:
        return now - dt.timedelta(days=days)

    async def count(statement: object) -> int:
        result = await session.execute(statement)  # type: ignore[call-overload]
        return int(result.rowcount or 0)

    return PurgeReport(
        dialog_states=await count(delete(DialogState).where(DialogState.updated_at < older(policy.dialog_state_days))),
        outbox=await count(delete(OutboxMessage).where(OutboxMessage.created_at < older(policy.outbox_days))),
        audit=await _purge_audit(session, older(policy.audit_days)),
        participants=await _purge_inactive(session, older(policy.inactive_participant_days).date(), participants),
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
        forget_requests=await count(
            delete(ForgetRequest).where(ForgetRequest.created_at < older(policy.outbox_days))
        ),
    )


async def _purge_inactive(session: AsyncSession, last_seen_before: dt.date, participants: Participants | None) -> int:
    ids = list(await session.scalars(select(Participant.id).where(Participant.last_seen_on < last_seen_before)))
    for participant_id in ids:
        if participants is not None:
            await participants.erase_id(session, participant_id)
        else:
            await session.execute(delete(Participant).where(Participant.id == participant_id))
    return len(ids)


async def _purge_audit(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Delete the oldest entries up to the newest one older than ``cutoff`` (always a prefix of the
    chain, whatever the clock did), then append a checkpoint that vouches for the new start."""
    through = await session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.at < cutoff))
    if through is None:
        return 0
    purged = list(await session.scalars(select(AuditEntry).where(AuditEntry.id <= through).order_by(AuditEntry.id)))
    await session.execute(delete(AuditEntry).where(AuditEntry.id <= through))
    await AuditLog().checkpoint(session, purged)
    return len(purged)


class RetentionJob:
    """The scheduled purge; its state is the data itself, so missed or doubled runs are harmless."""

    def __init__(self, database: Database, policy: RetentionSettings, clock: Callable[[], dt.datetime] = utcnow,
                 participants: Participants | None = None) -> None:
        self._db = database
        self._policy = policy
        self._clock = clock
        self._participants = participants

    async def __call__(self) -> PurgeReport | None:
        try:
            async with self._db.sessions.begin() as session:
                report = await purge(session, self._policy, self._clock(), self._participants)
            await self._db.scrub()  # purged rows must not linger in the SQLite log either
        except Exception as exc:
            log.error("retention purge failed: %s", type(exc).__name__)
            return None
        log.info("retention purge: %s", report)
        return report
