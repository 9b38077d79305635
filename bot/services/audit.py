"""Hash-chained, metadata-only audit log of staff actions.

Each entry's hash covers its content and the previous hash, so an edited, inserted or
removed entry breaks the chain. Entries carry no message content and no platform ids.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry, utcnow

GENESIS = "0" * 64
_LOCK_KEY = 0x63697669  # advisory lock id for PostgreSQL writers


def _digest(prev_hash: str, at: str, actor: str, action: str, subject: str | None, details: str) -> str:
    body = json.dumps([prev_hash, at, actor, action, subject, details], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    entries: int
    first_bad_id: int | None = None


class AuditLog:
    """Appends and verifies entries. ``actor`` is a staff pseudonym (short prefix)."""

    __slots__ = ()

    async def append(
        self, session: AsyncSession, actor: str, action: str, subject: str | None = None,
        details: dict[str, str | int] | None = None,
    ) -> AuditEntry:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        last = await session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        prev = last.hash if last is not None else GENESIS
        at = utcnow().replace(microsecond=0)
        details_json = json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        entry = AuditEntry(
            at=at, actor=actor[:64], action=action, subject=subject, details=details_json, prev_hash=prev,
            hash=_digest(prev, at.isoformat(), actor[:64], action, subject, details_json),
        )
        session.add(entry)
        await session.flush()
        return entry

    async def verify(self, session: AsyncSession) -> ChainCheck:
        """Walk the chain from the oldest kept entry (older ones may be purged by retention)."""
        prev: str | None = None
        count = 0
        for entry in await session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
            count += 1
            at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=utcnow().tzinfo)
            expected = _digest(entry.prev_hash, at.isoformat(), entry.actor, entry.action, entry.subject, entry.details)
            if expected != entry.hash or (prev is not None and entry.prev_hash != prev):
                return ChainCheck(False, count, entry.id)
            prev = entry.hash
        return ChainCheck(True, count)
