"""The outbox table as the delivery engine uses it: claim, renew, record, in few statements.

A claim takes, in one transaction, the first due rows of as many recipients as fit, each
recipient's rows as an unbroken prefix of its queue (so nothing is sent out of order), marks
them ``sending`` under a fresh lease token, and reads what sending needs (sealed payload,
sealed address, wrapped data key) in one joined read. Outcomes are written grouped, and only
where the row still carries the token: a row whose lease ran out and was claimed by another
sender is not overwritten by a late outcome.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.model import Pseudonym
from bot.services.outbox import OutboxStatus
from bot.storage.db import Database
from bot.storage.models import OutboxMessage, OutboxThread, Participant, ParticipantAddress, ParticipantKey

PENDING, SENDING = OutboxStatus.PENDING.value, OutboxStatus.SENDING.value
_UNFINISHED = (PENDING, SENDING)

_outbox = cast(Table, OutboxMessage.__table__)
_earlier = _outbox.alias("earlier")


@dataclass(slots=True)
class ClaimedRow:
    """One leased row with what is needed to open and send it (all still sealed)."""

    id: int
    queue: str
    participant_id: int | None
    staff_destination: str | None
    txn_id: str
    attempts: int
    priority: int
    payload_enc: bytes | None
    wrapped_key: bytes | None
    address_enc: bytes | None
    reachable: bool | None
    thread: str | None = None


@dataclass(slots=True)
class Claim:
    """Rows leased together under one token until ``lease_until`` (renewable)."""

    token: str
    lease_until: dt.datetime
    rows: list[ClaimedRow] = field(default_factory=list)
    more: bool = False  # rows were left behind (the limit, or a recipient's prefix cut short)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed row. ``status`` PENDING means: retry at ``retry_at``."""

    row_id: int
    token: str
    status: OutboxStatus
    reason: str | None = None
    retry_at: dt.datetime | None = None
    participant_id: int | None = None  # set for UNREACHABLE: the address to mark
    released: bool = False  # never attempted (lease lost, stopping): the attempt is given back


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return and_(_outbox.c.status == PENDING, _outbox.c.next_attempt_at <= now)


def _lease_expired(now: dt.datetime) -> ColumnElement[bool]:
    return and_(_outbox.c.status == SENDING, _outbox.c.lease_until <= now)


def _blocked(now: dt.datetime) -> Any:
    """An earlier unfinished row of the same recipient that is due (or was): only the first such
    row of a queue is a head; the rows behind it come with it (:meth:`DeliveryStore._prefixes`)."""
    return exists().where(
        _earlier.c.platform == _outbox.c.platform,
        _earlier.c.queue == _outbox.c.queue,
        _earlier.c.id < _outbox.c.id,
        _earlier.c.status.in_(_UNFINISHED),
        or_(_earlier.c.not_before.is_(None), _earlier.c.not_before <= now),
    )


class DeliveryStore:
    """SQL of the delivery engine for one platform. Every method is one short transaction."""

    __slots__ = ("_db", "_platform", "_per_queue", "_only_for")

    def __init__(self, database: Database, platform: str, per_queue: int = 10,
                 only_for: Pseudonym | None = None) -> None:
        """``only_for``: claim one person's rows only. Each console window is one person, and
        several may share a database: a window must not print (and use up) another's messages."""
        self._db = database
        self._platform = platform
        self._per_queue = max(per_queue, 1)
        self._only_for = only_for

    async def claim(self, limit: int, now: dt.datetime, lease_seconds: float) -> Claim:
        """Lease up to ``limit`` rows: recipients by priority, each with an in-order prefix of its queue."""
        claim = Claim(secrets.token_hex(16), now + dt.timedelta(seconds=lease_seconds))
        if limit <= 0:
            return claim
        async with self._db.sessions.begin() as session:
            heads = await self._heads(session, limit, now)
            if not heads:
                return claim
            ids, claim.more = await self._prefixes(session, heads, limit, now)
            claim.more = claim.more or len(heads) >= limit
            await session.execute(
                update(_outbox).where(_outbox.c.id.in_(ids)).values(
                    status=SENDING, lease_token=claim.token, lease_until=claim.lease_until,
                    attempts=_outbox.c.attempts + 1,
                )
            )
            rows = await session.execute(
                select(_outbox.c.id, _outbox.c.queue, _outbox.c.participant_id, _outbox.c.staff_destination,
                       _outbox.c.txn_id, _outbox.c.attempts, _outbox.c.priority, _outbox.c.payload_enc,
                       ParticipantKey.wrapped, ParticipantAddress.address_enc, ParticipantAddress.reachable,
                       _outbox.c.thread)
                .select_from(_outbox)
                .outerjoin(ParticipantKey, ParticipantKey.participant_id == _outbox.c.participant_id)
                .outerjoin(ParticipantAddress, and_(ParticipantAddress.participant_id == _outbox.c.participant_id,
                                                    ParticipantAddress.platform == _outbox.c.platform))
                .where(_outbox.c.id.in_(ids))
                .order_by(_outbox.c.id)  # each recipient's rows in the order they must go out
            )
            claim.rows = [ClaimedRow(*row) for row in rows]
        return claim

    async def _heads(self, session: AsyncSession, limit: int, now: dt.datetime) -> list[tuple[int, str]]:
        """First claimable rows of distinct recipients: expired leases first, then due rows by priority."""
        heads: list[tuple[int, str]] = []
        seen: set[str] = set()
        for condition, order in ((_lease_expired(now), (_outbox.c.priority, _outbox.c.id)),
                                 (_due(now), (_outbox.c.priority, _outbox.c.next_attempt_at, _outbox.c.id))):
            room = limit - len(heads)
            if room <= 0:
                break
            query = (select(_outbox.c.id, _outbox.c.queue)
                     .where(_outbox.c.platform == self._platform, condition, ~_blocked(now))
                     .order_by(*order).limit(room))
            if self._only_for is not None:
                query = query.where(_outbox.c.participant_id.in_(
                    select(Participant.id).where(Participant.pseudonym == self._only_for)))
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=_outbox)
            for row_id, queue in await session.execute(query):
                if queue not in seen:
                    seen.add(queue)
                    heads.append((row_id, queue))
        return heads

    async def _prefixes(self, session: AsyncSession, heads: list[tuple[int, str]], limit: int,
                        now: dt.datetime) -> tuple[list[int], bool]:
        """Each head with the rows right behind it in its queue that can go now too (up to
        ``per_queue``); a row still held (retry pending, another sender's lease) ends the prefix.
        Also whether a prefix was cut short by the limits (so more can be claimed at once)."""
        ids = [row_id for row_id, _ in heads]
        room = limit - len(ids)
        if room <= 0 or self._per_queue == 1:
            return ids, True
        first = {queue: row_id for row_id, queue in heads}
        query = (select(_outbox.c.id, _outbox.c.queue, _outbox.c.status, _outbox.c.next_attempt_at,
                        _outbox.c.lease_until, _outbox.c.not_before)
                 .where(_outbox.c.platform == self._platform, _outbox.c.queue.in_(list(first)),
                        _outbox.c.status.in_(_UNFINISHED))
                 .order_by(_outbox.c.queue, _outbox.c.id))
        if not self._db.is_sqlite:
            query = query.with_for_update(of=_outbox)
        taken: dict[str, int] = {}
        stopped: set[str] = set()
        cut = False
        for row_id, queue, status, next_attempt_at, lease_until, not_before in await session.execute(query):
            if queue in stopped or row_id <= first[queue]:
                continue
            if not_before is not None and _aware(not_before) > now:
                continue  # scheduled for later: takes its place in the order when due
            claimable = (_aware(next_attempt_at) <= now if status == PENDING
                         else lease_until is not None and _aware(lease_until) <= now)
            if claimable and (room <= 0 or taken.get(queue, 1) >= self._per_queue):
                cut = True
            if not claimable or room <= 0 or taken.get(queue, 1) >= self._per_queue:
                stopped.add(queue)
                continue
            ids.append(row_id)
            taken[queue] = taken.get(queue, 1) + 1
            room -= 1
        return ids, cut

    async def renew(self, claim: Claim, row_ids: Sequence[int], until: dt.datetime) -> set[int]:
        """Extend the lease of ``row_ids``; returns the ids still held (others were taken over)."""
        if not row_ids:
            return set()
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                update(_outbox)
                .where(_outbox.c.id.in_(list(row_ids)), _outbox.c.lease_token == claim.token,
                       _outbox.c.status == SENDING)
                .values(lease_until=until)
                .returning(_outbox.c.id)
            )
            held = set(result.scalars().all())
        claim.lease_until = until
        return held

    async def record(self, outcomes: Iterable[Outcome], now: dt.datetime, max_attempts: int) -> int:
        """Write outcomes where the row still carries the lease token; returns how many were written.

        Final rows lose their payload. A retry that has used up its attempts ends ``failed``.
        Recipients that cannot be reached have their address marked in the same transaction.
        """
        final: dict[tuple[str, str, str | None], list[int]] = {}
        retries: list[dict[str, object]] = []
        released: dict[str, list[int]] = {}
        unreachable: dict[int, str] = {}
        total = 0
        for outcome in outcomes:
            total += 1
            if outcome.released:
                released.setdefault(outcome.token, []).append(outcome.row_id)
            elif outcome.status is OutboxStatus.PENDING:
                retries.append({"row_id": outcome.row_id, "token": outcome.token, "retry_at": outcome.retry_at,
                                "reason": (outcome.reason or "transient")[:64]})
            else:
                key = (outcome.token, outcome.status.value, outcome.reason[:64] if outcome.reason else None)
                final.setdefault(key, []).append(outcome.row_id)
                if outcome.status is OutboxStatus.UNREACHABLE and outcome.participant_id is not None:
                    unreachable[outcome.participant_id] = (outcome.reason or "unreachable")[:32]
        if not total:
            return 0
        written = 0
        async with self._db.sessions.begin() as session:
            for (token, status, reason), ids in final.items():
                values: dict[str, object] = {"status": status, "last_error": reason, "payload_enc": None,
                                             "lease_token": None, "lease_until": None}
                if status == OutboxStatus.SENT.value:
                    values["sent_at"] = now
                for start in range(0, len(ids), 500):
                    result = await session.execute(
                        update(_outbox).where(_outbox.c.id.in_(ids[start:start + 500]),
                                              _outbox.c.lease_token == token).values(**values)
                    )
                    written += int(result.rowcount or 0)  # type: ignore[attr-defined]
            if retries:
                written += await self._retry(session, retries, max_attempts)
            for token, ids in released.items():
                result = await session.execute(
                    update(_outbox).where(_outbox.c.id.in_(ids), _outbox.c.lease_token == token)
                    .values(status=PENDING, lease_token=None, lease_until=None, attempts=_outbox.c.attempts - 1)
                )
                written += int(result.rowcount or 0)  # type: ignore[attr-defined]
            for participant_id, reason in unreachable.items():
                await session.execute(
                    update(ParticipantAddress)
                    .where(ParticipantAddress.participant_id == participant_id,
                           ParticipantAddress.platform == self._platform)
                    .values(reachable=False, unreachable_reason=reason, updated_at=now)
                )
        return written

    async def _retry(self, session: AsyncSession, retries: list[dict[str, object]], max_attempts: int) -> int:
        written = 0
        # Out of attempts: failed for good, payload erased.
        exhausted = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"), _outbox.c.lease_token == bindparam("token"),
                   _outbox.c.attempts >= max_attempts)
            .values(status=OutboxStatus.FAILED.value, last_error=bindparam("reason"), payload_enc=None,
                    lease_token=None, lease_until=None)
        )
        again = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"), _outbox.c.lease_token == bindparam("token"),
                   _outbox.c.attempts < max_attempts)
            .values(status=PENDING, last_error=bindparam("reason"), next_attempt_at=bindparam("retry_at"),
                    lease_token=None, lease_until=None)
        )
        for statement in (exhausted, again):
            result = await session.execute(statement.execution_options(synchronize_session=False), retries)
            written += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return written

    async def thread_root(self, destination: str, thread: str, address: str) -> str | None:
        """The first message of a staff destination's thread, if it was sent to this address."""
        async with self._db.sessions.begin() as session:
            return await session.scalar(select(OutboxThread.root_id).where(
                OutboxThread.staff_destination == destination, OutboxThread.thread == thread,
                OutboxThread.address == address))

    async def start_thread(self, destination: str, thread: str, address: str, root_id: str) -> None:
        """Record a thread's first message right after it was sent, before its outcome: the next
        row of the queue cannot be claimed until that outcome is written, so it finds the root."""
        async with self._db.sessions.begin() as session:
            await session.execute(delete(OutboxThread).where(OutboxThread.staff_destination == destination,
                                                             OutboxThread.thread == thread))
            session.add(OutboxThread(staff_destination=destination, thread=thread, address=address, root_id=root_id))

    async def next_due(self, now: dt.datetime) -> dt.datetime | None:
        """When the earliest waiting row becomes due (to sleep exactly until then)."""
        async with self._db.sessions.begin() as session:
            value = await session.scalar(
                select(_outbox.c.next_attempt_at).where(_outbox.c.platform == self._platform,
                                                        _outbox.c.status == PENDING)
                .order_by(_outbox.c.next_attempt_at).limit(1)
            )
        return _aware(value) if value is not None else None


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
