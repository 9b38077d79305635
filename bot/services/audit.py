"""Hash-chained, metadata-only audit log of staff actions.

Each entry's hash covers its content and the previous hash, so an edited, inserted or removed
entry breaks the chain. Entries carry no message content and no platform ids.

Both ends are guarded too. The start: when retention purges old entries it appends an
``audit.checkpoint`` entry naming the hash of the last purged one, so a kept chain that starts
anywhere else was cut by hand. The end: ``civicbot audit head`` prints the newest entry's id and
hash for the operator to keep off the server; ``audit verify --head`` later proves that entry
is still there, so nothing after it was removed unnoticed (nor the chain rewritten from it on).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry, utcnow

GENESIS = "0" * 64
CHECKPOINT = "audit.checkpoint"
_LOCK_KEY = 0x63697669  # advisory lock id for PostgreSQL writers


def _digest(prev_hash: str, at: str, actor: str, action: str, subject: str | None, details: str) -> str:
    body = json.dumps([prev_hash, at, actor, action, subject, details], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def entry_digest(entry: AuditEntry) -> str:
    """The hash an entry must carry, from its stored content."""
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=utcnow().tzinfo)
    return _digest(entry.prev_hash, at.isoformat(), entry.actor, entry.action, entry.subject, entry.details)


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry, as exported (``ID:HASH``) and checked later."""

    entry_id: int
    hash: str

    def __str__(self) -> str:
        return f"{self.entry_id}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """``ID:HASH`` as printed by ``audit head``; ValueError otherwise."""
        entry_id, sep, digest = text.strip().partition(":")
        if not sep or not entry_id.isdecimal() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("a head looks like ID:HASH, as printed by 'civicbot audit head'")
        return cls(int(entry_id), digest)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None  # "changed", "start", "end", "purged"


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

    async def checkpoint(self, session: AsyncSession, purged: list[AuditEntry]) -> AuditEntry | None:
        """After retention deleted ``purged`` (the oldest entries, in order): vouch for the new start."""
        if not purged:
            return None
        last = purged[-1]
        return await self.append(session, "retention", CHECKPOINT,
                                 details={"purged": len(purged), "through_id": last.id, "through_hash": last.hash})

    async def head(self, session: AsyncSession) -> Head | None:
        last = await session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
        return Head(last.id, last.hash) if last is not None else None

    async def verify(self, session: AsyncSession, head: Head | None = None) -> ChainCheck:
        """Walk the chain from the oldest kept entry; with ``head``, also prove that entry is still in it."""
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        vouched = {GENESIS}
        purged_through = 0
        for entry in entries:
            if entry.action == CHECKPOINT:
                details = json.loads(entry.details)
                vouched.add(str(details.get("through_hash")))
                purged_through = max(purged_through, int(details.get("through_id", 0)))
        if entries and entries[0].prev_hash not in vouched:
            return ChainCheck(False, len(entries), entries[0].id, "start")
        prev: str | None = None
        for count, entry in enumerate(entries, start=1):
            if entry_digest(entry) != entry.hash or (prev is not None and entry.prev_hash != prev):
                return ChainCheck(False, count, entry.id, "changed")
            prev = entry.hash
        if head is not None and not any(e.id == head.entry_id and e.hash == head.hash for e in entries):
            problem = "purged" if head.entry_id <= purged_through else "end"
            return ChainCheck(False, len(entries), head.entry_id, problem)
        return ChainCheck(True, len(entries))


async def purge_before(session: AsyncSession, cutoff: dt.datetime) -> int:
    """Retention of the audit log: delete the oldest entries up to the newest one older than
    ``cutoff`` (always a prefix of the chain, whatever the clock did), then append a checkpoint
    that vouches for the new start. Returns how many entries were deleted."""
    through = await session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.at < cutoff))
    if through is None:
        return 0
    purged = list(await session.scalars(select(AuditEntry).where(AuditEntry.id <= through).order_by(AuditEntry.id)))
    await session.execute(delete(AuditEntry).where(AuditEntry.id <= through))
    await AuditLog().checkpoint(session, purged)
    return len(purged)
